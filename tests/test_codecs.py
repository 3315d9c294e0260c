"""Latent codecs: the exact patch codec, the frozen Wan VAE (a tiny one built in code, saved and loaded
back the way users load real weights) and the latent cache."""

import pytest
import torch
from diffusers import AutoencoderKLWan

from action_images.codecs import (
    PatchCodec,
    WanVAECodec,
    cache_latents,
    load_cached_latents,
    make_codec,
)

LATENTS_MEAN = [0.1, -0.2, 0.3, 0.5]
LATENTS_STD = [0.5, 2.0, 1.5, 3.0]


def random_video(*shape: int) -> torch.Tensor:
    return torch.rand(*shape) * 2 - 1


# --- PatchCodec ------------------------------------------------------------------------------------


def test_patch_codec_shapes_and_exact_round_trip():
    codec = PatchCodec(patch=4)
    video = random_video(2, 3, 3, 8, 12)
    latents = codec.encode(video)
    assert (codec.channels, codec.spatial_factor, codec.temporal_factor) == (48, 4, 1)
    assert latents.shape == (2, 48, 3, 2, 3) and latents.dtype == torch.float32
    assert codec.latent_frames(3) == 3
    assert codec.latent_shape(3, 8, 12) == (48, 3, 2, 3)
    assert torch.equal(codec.decode(latents), video)


def test_patch_codec_channel_layout_is_colour_row_column():
    codec, p = PatchCodec(patch=2), 2
    video = random_video(1, 3, 1, 4, 4)
    latents = codec.encode(video)
    colour, row, column, y, x = 2, 1, 0, 1, 1
    assert latents[0, colour * p * p + row * p + column, 0, y, x] == video[0, colour, 0, y * p + row, x * p + column]


def test_patch_codec_rejects_frames_not_divisible_by_the_patch():
    codec = PatchCodec(patch=4)
    with pytest.raises(ValueError, match="divisible by 4.*10×8"):
        codec.encode(random_video(1, 3, 2, 10, 8))
    with pytest.raises(ValueError, match=r"\(B, 3, T, H, W\)"):
        codec.encode(random_video(3, 2, 8, 8))


def test_patch_codec_decode_clamps_to_the_video_range():
    codec = PatchCodec(patch=2)
    video = codec.decode(torch.full((1, 12, 1, 2, 2), 5.0))
    assert video.max() == 1.0


# --- WanVAECodec -----------------------------------------------------------------------------------


def save_tiny_wan_vae(folder, **overrides) -> AutoencoderKLWan:
    """A ~50k-parameter Wan VAE: spatial ×4 (two levels), temporal ×4 (both levels downsample time)."""
    config = dict(
        base_dim=8,
        z_dim=4,
        dim_mult=[1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[True, True],
        latents_mean=LATENTS_MEAN,
        latents_std=LATENTS_STD,
        scale_factor_spatial=4,
    )
    vae = AutoencoderKLWan(**(config | overrides))
    vae.save_pretrained(folder)
    return vae


@pytest.fixture(scope="module")
def saved_wan_vae(tmp_path_factory):
    """(folder, the VAE saved in folder/vae)."""
    folder = tmp_path_factory.mktemp("wan")
    torch.manual_seed(0)
    return folder, save_tiny_wan_vae(folder / "vae")


@pytest.fixture(scope="module")
def wan_folder(saved_wan_vae):
    return saved_wan_vae[0]


@pytest.fixture(scope="module")
def wan_codec(wan_folder):
    return WanVAECodec.from_pretrained(wan_folder)


def test_wan_codec_loads_the_saved_weights(wan_codec, saved_wan_vae):
    saved, loaded = saved_wan_vae[1].state_dict(), wan_codec.vae.state_dict()
    assert saved.keys() == loaded.keys()
    assert all(torch.equal(saved[name], loaded[name]) for name in saved)


def test_wan_codec_reads_its_factors_from_the_vae(wan_codec):
    assert (wan_codec.channels, wan_codec.spatial_factor, wan_codec.temporal_factor) == (4, 4, 4)
    assert [wan_codec.latent_frames(t) for t in (1, 5, 9)] == [1, 2, 3]
    with pytest.raises(ValueError, match="1 \\+ 4·k frames"):
        wan_codec.latent_frames(4)


@pytest.mark.parametrize("frames", [1, 5, 9])
def test_wan_codec_latent_and_decoded_shapes(wan_codec, frames):
    video = random_video(2, 3, frames, 16, 16)
    latents = wan_codec.encode(video)
    assert latents.shape == (2, 4, wan_codec.latent_frames(frames), 4, 4) == (2, *wan_codec.latent_shape(frames, 16, 16))
    decoded = wan_codec.decode(latents)
    assert decoded.shape == video.shape and decoded.dtype == torch.float32
    assert decoded.abs().max() <= 1.0


def test_wan_codec_normalises_like_the_wan_pipeline(wan_codec):
    video = random_video(1, 3, 5, 16, 16)
    with torch.no_grad():
        z = wan_codec.vae.encode(video).latent_dist.mode()
    mean = torch.tensor(LATENTS_MEAN).view(1, 4, 1, 1, 1)
    std = torch.tensor(LATENTS_STD).view(1, 4, 1, 1, 1)
    torch.testing.assert_close(wan_codec.encode(video), (z - mean) / std)
    torch.testing.assert_close(wan_codec._denormalise(wan_codec._normalise(z)), z)


def test_wan_codec_is_frozen_and_stays_in_eval_mode(wan_codec):
    assert not any(p.requires_grad for p in wan_codec.parameters())
    wan_codec.train()
    assert not wan_codec.vae.training
    assert "latents_mean" not in wan_codec.state_dict()


def test_wan22_style_patched_vae_has_a_larger_spatial_factor(tmp_path):
    torch.manual_seed(0)
    save_tiny_wan_vae(
        tmp_path / "vae", in_channels=12, out_channels=12, patch_size=2, is_residual=True, scale_factor_spatial=8
    )
    codec = WanVAECodec.from_pretrained(tmp_path)
    assert codec.spatial_factor == 8
    video = random_video(1, 3, 5, 16, 16)
    latents = codec.encode(video)
    assert latents.shape == (1, 4, 2, 2, 2)
    assert codec.decode(latents).shape == video.shape


def test_wan_codec_rejects_statistics_that_do_not_match_z_dim(tmp_path):
    save_tiny_wan_vae(tmp_path / "vae", latents_mean=[0.0] * 16)
    with pytest.raises(ValueError, match="latents_mean must list z_dim=4"):
        WanVAECodec.from_pretrained(tmp_path)


# --- make_codec ------------------------------------------------------------------------------------


def test_make_codec_builds_by_name(wan_folder):
    assert make_codec("patch", patch=2).channels == 12
    assert isinstance(make_codec("wan_vae", path=wan_folder), WanVAECodec)
    with pytest.raises(ValueError, match="unknown codec 'vqgan'.*patch, wan_vae"):
        make_codec("vqgan")


# --- latent cache ----------------------------------------------------------------------------------


def test_cache_latents_round_trip(tmp_path):
    codec = PatchCodec(patch=2)
    one_view = random_video(3, 2, 4, 4)
    two_views = random_video(2, 3, 2, 4, 4)
    cache_latents(codec, [("clip_a", one_view), ("episode_1/clip_0", two_views)], tmp_path)

    torch.testing.assert_close(load_cached_latents(tmp_path, "clip_a"), codec.encode(one_view[None])[0])
    torch.testing.assert_close(load_cached_latents(tmp_path, "episode_1/clip_0"), codec.encode(two_views))
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["clip_a.safetensors", "episode_1/clip_0.safetensors"]  # no temporary left behind


def test_cache_latents_skips_cached_keys_unless_told_to_overwrite(tmp_path):
    codec = PatchCodec(patch=2)
    first, second = random_video(3, 1, 2, 2), random_video(3, 1, 2, 2)
    cache_latents(codec, [("clip", first)], tmp_path)
    cache_latents(codec, [("clip", second)], tmp_path)
    torch.testing.assert_close(load_cached_latents(tmp_path, "clip"), codec.encode(first[None])[0])
    cache_latents(codec, [("clip", second)], tmp_path, overwrite=True)
    torch.testing.assert_close(load_cached_latents(tmp_path, "clip"), codec.encode(second[None])[0])


def test_cache_errors_name_the_file_or_the_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="'missing'.*missing.safetensors"):
        load_cached_latents(tmp_path, "missing")
    with pytest.raises(ValueError, match="inside the cache folder"):
        cache_latents(PatchCodec(), [("../outside", random_video(3, 1, 4, 4))], tmp_path)
