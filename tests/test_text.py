"""Text encoders: the offline vocabulary encoder, and UMT5 (a tiny one and its tokenizer built in code,
saved and loaded back the way users load Wan's text encoder)."""

from types import SimpleNamespace

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

from action_images.text import (
    UMT5TextEncoder,
    VocabularyTextEncoder,
    make_text_encoder,
    split_words,
)

INSTRUCTIONS = ["Pick up the red cube.", "push the cube to the goal", "open_drawer 2"]

# --- VocabularyTextEncoder -------------------------------------------------------------------------


def test_vocabulary_comes_from_the_instructions_sorted_after_pad_and_unk():
    encoder = VocabularyTextEncoder.from_instructions(INSTRUCTIONS, dim=8)
    assert split_words("open_drawer 2, Red-cube!") == ["open", "drawer", "2", "red", "cube"]
    assert encoder.vocabulary == ["2", "cube", "drawer", "goal", "open", "pick", "push", "red", "the", "to", "up"]
    ids = encoder.tokenize(["the red cube", "the blue cube"])
    assert ids[0, :3].tolist() == [2 + 8, 2 + 7, 2 + 1]
    assert ids[1, 1] == 1  # "blue" was never seen: <unk>
    assert (ids[:, 3:] == 0).all()  # <pad>


def test_vocabulary_encoder_shapes_mask_and_truncation():
    encoder = VocabularyTextEncoder.from_instructions(INSTRUCTIONS, dim=8, max_length=4)
    embeddings, mask = encoder(["pick up the red cube", "push"])
    assert embeddings.shape == (2, 4, 8) and embeddings.dtype == torch.float32
    assert mask.dtype == torch.bool
    assert mask.tolist() == [[True] * 4, [True, False, False, False]]
    assert (embeddings[1, 1:] == 0).all() and (embeddings[1, 0] != 0).any()


def test_empty_prompt_is_all_padding_with_exactly_zero_embeddings():
    encoder = VocabularyTextEncoder.from_instructions(INSTRUCTIONS, dim=8)
    embeddings, mask = encoder(["", "  ...  "])
    assert not mask.any()
    assert torch.equal(embeddings, torch.zeros(2, 16, 8))


def test_gradients_reach_the_word_embedding_of_used_words_only():
    encoder = VocabularyTextEncoder.from_instructions(INSTRUCTIONS, dim=8)
    embeddings, _ = encoder(["red cube"])
    embeddings.square().sum().backward()
    grad = encoder.word_embedding.weight.grad
    used = [encoder.vocabulary.index(word) + 2 for word in ("red", "cube")]
    assert grad[used].abs().sum(dim=1).gt(0).all()
    assert grad[0].eq(0).all()  # padding learns nothing
    assert encoder.position_embedding.grad is not None


def test_rebuild_from_config_and_state_dict_gives_identical_outputs():
    encoder = VocabularyTextEncoder.from_instructions(INSTRUCTIONS, dim=8, max_length=6)
    with torch.no_grad():
        encoder.norm.bias.normal_()  # not the default, so loading it is what makes the outputs match
    rebuilt = VocabularyTextEncoder(**encoder.config)
    rebuilt.load_state_dict(encoder.state_dict())
    prompts = ["push the red cube to the goal", "", "unknown words"]
    for a, b in zip(encoder(prompts), rebuilt(prompts)):
        assert torch.equal(a, b)


def test_context_layers_make_a_word_depend_on_its_neighbours_and_keep_padding_zero():
    instructions = ["put the red cube on the blue pad", "put the blue cube on the red pad"]
    plain = VocabularyTextEncoder.from_instructions(instructions, dim=8)
    contextual = VocabularyTextEncoder.from_instructions(instructions, dim=8, context_layers=2, context_heads=2)
    for encoder, binds in ((plain, False), (contextual, True)):
        embeddings, mask = encoder(instructions + [""])
        assert torch.isfinite(embeddings).all()
        assert torch.equal(embeddings[2], torch.zeros(16, 8)) and not mask[2].any()  # guidance's empty prompt
        assert (embeddings[:2, 8:] == 0).all()
        # The same word at the same position: without context the same token whatever follows it.
        swapped_positions = encoder(["red cube", "red pad"])[0][:, 0]
        assert torch.allclose(swapped_positions[0], swapped_positions[1]) != binds
    rebuilt = VocabularyTextEncoder(**contextual.config)
    rebuilt.load_state_dict(contextual.state_dict())
    assert torch.equal(rebuilt(instructions)[0], contextual(instructions)[0])
    assert "context_layers" not in plain.config  # checkpoints written before context layers rebuild unchanged


def test_make_text_encoder_builds_by_name():
    assert make_text_encoder("vocabulary", vocabulary=["a", "b"], dim=4).dim == 4
    assert make_text_encoder("vocabulary", instructions=INSTRUCTIONS).vocabulary[0] == "2"
    with pytest.raises(ValueError, match="unknown text encoder 'clip'.*umt5, vocabulary"):
        make_text_encoder("clip")


# --- UMT5TextEncoder -------------------------------------------------------------------------------

WORDS = ["pick", "up", "the", "red", "cube", "push", "to", "goal"]


def save_tiny_umt5(folder) -> UMT5EncoderModel:
    """A word-level tokenizer that appends </s> as T5's does, and a one-layer UMT5 encoder."""
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2} | {word: 3 + i for i, word in enumerate(WORDS)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    ).save_pretrained(folder / "tokenizer")
    config = UMT5Config(
        vocab_size=len(vocab), d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8,
        pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    )  # fmt: skip
    model = UMT5EncoderModel(config)
    model.save_pretrained(folder / "text_encoder")
    return model


@pytest.fixture(scope="module")
def saved_umt5(tmp_path_factory):
    """(folder, the model saved in it)."""
    folder = tmp_path_factory.mktemp("umt5")
    torch.manual_seed(0)
    return folder, save_tiny_umt5(folder)


@pytest.fixture(scope="module")
def umt5(saved_umt5):
    return UMT5TextEncoder.from_pretrained(saved_umt5[0], max_length=8)


def test_umt5_shapes_mask_and_zeros_past_the_length(umt5):
    embeddings, mask = umt5(["pick up the red cube", "push", ""])
    assert umt5.dim == 16
    assert embeddings.shape == (3, 8, 16) and embeddings.dtype == torch.float32
    assert mask.sum(dim=1).tolist() == [6, 2, 1]  # words + </s>
    assert (embeddings[~mask] == 0).all()
    assert embeddings[mask].abs().sum(dim=-1).gt(0).all()


def test_umt5_truncates_to_max_length(umt5):
    embeddings, mask = umt5([" ".join(WORDS * 2)])
    assert embeddings.shape == (1, 8, 16) and mask.all()


def test_umt5_matches_the_wan_pipeline_prompt_embeddings(umt5):
    from diffusers import WanPipeline

    prompts = ["pick  up the <b>red</b>   cube", "push &amp; goal"]
    pipeline = SimpleNamespace(
        tokenizer=umt5.tokenizer, text_encoder=umt5.text_encoder, _execution_device=torch.device("cpu")
    )
    expected = WanPipeline._get_t5_prompt_embeds(pipeline, prompts, max_sequence_length=8)
    embeddings, _ = umt5(prompts)
    assert torch.equal(embeddings, expected)


def test_umt5_loads_the_saved_weights(umt5, saved_umt5):
    saved, loaded = saved_umt5[1].state_dict(), umt5.text_encoder.state_dict()
    assert saved.keys() == loaded.keys()
    assert all(torch.equal(saved[name], loaded[name]) for name in saved)


def test_umt5_is_frozen_and_stays_in_eval_mode(umt5):
    assert not any(p.requires_grad for p in umt5.parameters())
    umt5.train()
    assert not umt5.text_encoder.training


def test_make_text_encoder_loads_umt5(saved_umt5):
    encoder = make_text_encoder("umt5", path=saved_umt5[0], max_length=4)
    assert encoder(["the cube"])[0].shape == (1, 4, 16)
