"""The backbone: Wan plus zero-initialised camera conditioning, loading Wan weights from a local folder."""

import logging

import pytest
import torch
from diffusers import WanTransformer3DModel

from action_images.transformer import ActionImagesTransformer

TINY = dict(
    patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=4,
    text_dim=12, freq_dim=16, ffn_dim=32, num_layers=2, rope_max_seq_len=64,
)


def inputs(batch=2, frames=3, size=4):
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(batch, 4, frames, size, size, generator=generator)
    text = torch.randn(batch, 5, 12, generator=generator)
    plucker = torch.randn(batch, 6, frames, size, size, generator=generator)
    return latents, text, plucker


def test_camera_branch_is_a_no_op_at_initialisation():
    model = ActionImagesTransformer(**TINY).eval()
    latents, text, plucker = inputs()
    timestep = torch.tensor([300.0, 700.0])
    with torch.no_grad():
        reference = model.wan(latents, timestep, text, return_dict=False)[0]
        assert torch.equal(model(latents, timestep, text, plucker=None), reference)
        assert torch.equal(model(latents, timestep, text, plucker=plucker), reference)
        torch.nn.init.normal_(model.camera_projections[1].weight, std=0.1)
        assert not torch.allclose(model(latents, timestep, text, plucker=plucker), reference)


def test_camera_terms_computed_once_give_the_same_prediction():
    model = ActionImagesTransformer(**TINY).eval()
    for projection in model.camera_projections:  # a trained camera branch, not the zero one
        torch.nn.init.normal_(projection.weight, std=0.1)
    latents, text, plucker = inputs()
    timestep = torch.tensor([300.0, 700.0])
    with torch.no_grad():
        terms = model.camera_terms(plucker, latents.shape)
        assert torch.equal(model(latents, timestep, text, camera_terms=terms), model(latents, timestep, text, plucker=plucker))
        with pytest.raises(ValueError, match="not both"):
            model(latents, timestep, text, plucker=plucker, camera_terms=terms)


def test_per_token_timesteps_match_wan():
    model = ActionImagesTransformer(**TINY).eval()
    latents, text, _ = inputs()
    tokens = 3 * 2 * 2
    per_token = torch.tensor([[300.0] * tokens, [700.0] * tokens])
    with torch.no_grad():
        same = model(latents, per_token, text)
        assert torch.allclose(same, model.wan(latents, torch.tensor([300.0, 700.0]), text, return_dict=False)[0], atol=1e-5)
        mixed = per_token.clone()
        mixed[:, :4] = 0.0  # the first latent frame given: timestep 0
        assert torch.allclose(model(latents, mixed, text), model.wan(latents, mixed, text, return_dict=False)[0], atol=1e-6)


def test_gradients_reach_the_camera_layers():
    model = ActionImagesTransformer(**TINY)
    latents, text, plucker = inputs()
    model(latents, torch.tensor([10.0, 900.0]), text, plucker=plucker).square().mean().backward()
    assert model.camera_projections[0].weight.grad.abs().sum() > 0


def test_slot_embedding_starts_at_zero():
    model = ActionImagesTransformer(**TINY, num_slot_ids=4).eval()
    latents, text, _ = inputs()
    with torch.no_grad():
        reference = model(latents, torch.tensor([5.0, 5.0]), text)
        assert torch.equal(model(latents, torch.tensor([5.0, 5.0]), text, slot_ids=torch.tensor([0, 1, 2])), reference)


def test_pooled_text_starts_as_wan_and_then_makes_the_prompt_modulate_every_block():
    model = ActionImagesTransformer(**TINY, pooled_text=True).eval()
    latents, text, _ = inputs()
    text[:, 3:] = 0.0  # padding, as every text encoder writes it
    per_token = torch.tensor([[0.0] * 4 + [300.0] * 8, [0.0] * 4 + [700.0] * 8])
    with torch.no_grad():
        reference = model.wan(latents, per_token, text, return_dict=False)[0]
        assert torch.equal(model(latents, per_token, text), reference)  # zero-initialised: Wan exactly
        torch.nn.init.normal_(model.text_pooling.weight, std=0.5)
        trained = model(latents, per_token, text)
        assert not torch.allclose(trained, reference)
        # the mean runs over real tokens only: more padding changes nothing, the empty prompt adds nothing
        padded = torch.cat([text, torch.zeros(2, 4, 12)], 1)
        assert torch.allclose(model.pooled_text_term(padded, True), model.pooled_text_term(text, True), atol=1e-6)
        assert torch.equal(model.pooled_text_term(torch.zeros(2, 5, 12), False), torch.zeros(2, 8 * 2))
    assert "text_pooling" in model.new_layer_prefixes


def test_loading_a_wan_folder_keeps_its_weights_and_says_what_is_new(tmp_path, caplog):
    wan = WanTransformer3DModel(**TINY).eval()
    wan.save_pretrained(tmp_path / "transformer")
    with caplog.at_level(logging.INFO, logger="action_images.transformer"):
        model = ActionImagesTransformer.from_wan(str(tmp_path)).eval()
    assert "camera_embedding" in caplog.text and "camera_projections" in caplog.text
    for name, value in wan.state_dict().items():
        assert torch.equal(model.wan.state_dict()[name], value), name
    latents, text, plucker = inputs()
    with torch.no_grad():
        assert torch.equal(model(latents, torch.tensor([1.0, 2.0]), text, plucker), wan(latents, torch.tensor([1.0, 2.0]), text, return_dict=False)[0])


def test_save_and_load_round_trip(tmp_path):
    model = ActionImagesTransformer(**TINY).eval()
    torch.nn.init.normal_(model.camera_projections[0].weight)
    model.save_pretrained(tmp_path / "model")
    assert (tmp_path / "model" / "diffusion_pytorch_model.safetensors").exists()
    loaded = ActionImagesTransformer.from_pretrained(tmp_path / "model").eval()
    latents, text, plucker = inputs()
    with torch.no_grad():
        assert torch.equal(loaded(latents, torch.tensor([3.0, 4.0]), text, plucker), model(latents, torch.tensor([3.0, 4.0]), text, plucker))


def test_bad_inputs_are_clear_errors():
    model = ActionImagesTransformer(**TINY)
    latents, text, plucker = inputs()
    with pytest.raises(ValueError, match="Plücker rays must be"):
        model(latents, torch.tensor([1.0, 1.0]), text, plucker=plucker[:, :, :2])
    with pytest.raises(ValueError, match="not divisible by the patch size"):
        model(latents[..., :3], torch.tensor([1.0, 1.0]), text)
    plain = ActionImagesTransformer(**TINY, camera_conditioning=False)
    with pytest.raises(ValueError, match="no camera conditioning"):
        plain(latents, torch.tensor([1.0, 1.0]), text, plucker=plucker)
