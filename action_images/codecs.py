"""Latent codecs: video ↔ latents for the diffusion transformer.

Action images are encoded exactly like RGB video, so one codec serves every segment of the canvas.

Conventions (every codec):
- video: float ``(B, 3, T, H, W)`` in [-1, 1] (SPEC §2: [-1, 1] inside the model).
- latents: float32 ``(B, C, T_l, H / f, W / f)`` with ``C = channels``, ``f = spatial_factor`` and
  ``T_l = latent_frames(T)``.
- ``decode(encode(video))`` has the input's shape and is clamped to [-1, 1].

Two codecs:
- ``PatchCodec``: training-free space-to-depth, exactly invertible; for small CPU configs.
- ``WanVAECodec``: the frozen Wan VAE (diffusers ``AutoencoderKLWan``) for pretrained configs; its
  latents are normalised with the VAE config's per-channel statistics, exactly as ``WanPipeline`` does.

Latents of a dataset can be cached to disk once with ``cache_latents`` and read back with
``load_cached_latents``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import torch
from einops import rearrange
from safetensors.torch import load_file, save_file
from torch import Tensor


class LatentCodec(torch.nn.Module):
    """The interface: a fixed map between video and latents.

    Attributes:
        channels: latent channels ``C``.
        spatial_factor: ``H / h`` (and ``W / w``).
        temporal_factor: video frames per latent frame after the first. Wan codecs give the first
            frame a latent frame of its own, so ``T = 1 + temporal_factor * (T_l - 1)``.
    """

    channels: int
    spatial_factor: int
    temporal_factor: int

    def latent_frames(self, frames: int) -> int:
        """Latent frames for a video of ``frames`` frames; a ValueError when none fits exactly."""
        raise NotImplementedError

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """``(C, T_l, h, w)`` of one video's latents, checking that the frame size divides."""
        self._check_frame_size(height, width)
        f = self.spatial_factor
        return self.channels, self.latent_frames(frames), height // f, width // f

    def encode(self, video: Tensor) -> Tensor:
        """``(B, 3, T, H, W)`` in [-1, 1] → float32 latents ``(B, C, T_l, H/f, W/f)``."""
        raise NotImplementedError

    def decode(self, latents: Tensor) -> Tensor:
        """Latents ``(B, C, T_l, h, w)`` → float32 video ``(B, 3, T, h*f, w*f)`` clamped to [-1, 1]."""
        raise NotImplementedError

    def _check_video(self, video: Tensor) -> None:
        if video.ndim != 5 or video.shape[1] != 3:
            raise ValueError(f"expected video of shape (B, 3, T, H, W), got {tuple(video.shape)}")
        self._check_frame_size(video.shape[-2], video.shape[-1])
        self.latent_frames(video.shape[2])

    def _check_latents(self, latents: Tensor) -> None:
        if latents.ndim != 5 or latents.shape[1] != self.channels:
            raise ValueError(
                f"expected latents of shape (B, {self.channels}, T_l, h, w), got {tuple(latents.shape)}"
            )

    def _check_frame_size(self, height: int, width: int) -> None:
        f = self.spatial_factor
        if height % f or width % f:
            raise ValueError(
                f"{type(self).__name__} needs frame height and width divisible by {f}, got {height}×{width}"
            )


class PatchCodec(LatentCodec):
    """Space-to-depth: each ``patch × patch`` block of a frame becomes ``3 · patch²`` channels.

    Training-free and exactly invertible (``decode(encode(v)) == v`` bit for bit for v in [-1, 1]), so
    small CPU configs spend no time or error on a learned autoencoder. Channels are ordered
    ``(colour, row in patch, column in patch)``. Frames map one to one (``temporal_factor = 1``).
    """

    def __init__(self, patch: int = 4):
        super().__init__()
        if patch < 1:
            raise ValueError(f"patch must be a positive integer, got {patch}")
        self.patch = patch
        self.channels = 3 * patch**2
        self.spatial_factor = patch
        self.temporal_factor = 1

    def latent_frames(self, frames: int) -> int:
        if frames < 1:
            raise ValueError(f"a video needs at least one frame, got {frames}")
        return frames

    def encode(self, video: Tensor) -> Tensor:
        self._check_video(video)
        p = self.patch
        return rearrange(video.float(), "b c t (h p) (w q) -> b (c p q) t h w", p=p, q=p)

    def decode(self, latents: Tensor) -> Tensor:
        self._check_latents(latents)
        p = self.patch
        video = rearrange(latents.float(), "b (c p q) t h w -> b c t (h p) (w q)", c=3, p=p, q=p)
        return video.clamp(-1.0, 1.0)


class WanVAECodec(LatentCodec):
    """The Wan VAE (diffusers ``AutoencoderKLWan``), frozen and always in eval mode.

    ``encode`` takes the posterior's mode (its mean; no sampling, so latents are deterministic and can
    be cached) and normalises per channel, ``(z - latents_mean) / latents_std``, with the statistics
    from the VAE's config, as ``WanPipeline`` / ``WanImageToVideoPipeline`` do; ``decode`` inverts that
    and runs the VAE decoder. The VAE runs in its own dtype; latents and video come out as float32.

    The factors are read off the architecture rather than ``config.scale_factor_*``, because those
    config fields keep Wan2.1's defaults even when a config changes the architecture:
    ``spatial_factor = 2 ** (len(dim_mult) - 1) · (patch_size or 1)`` and
    ``temporal_factor = 2 ** (number of temporal downsamples)``. For the released Wan2.1 (8, 4) and
    Wan2.2 (16, 4) VAEs the two agree.
    """

    def __init__(self, vae: torch.nn.Module):
        super().__init__()
        config = vae.config
        self.vae = vae.eval().requires_grad_(False)
        levels = len(config.dim_mult) - 1
        self.channels = config.z_dim
        self.spatial_factor = 2**levels * (config.patch_size or 1)
        self.temporal_factor = 2 ** sum(bool(d) for d in config.temperal_downsample[:levels])

        statistics = {"latents_mean": config.latents_mean, "latents_std": config.latents_std}
        for name, values in statistics.items():
            if values is None or len(values) != config.z_dim:
                raise ValueError(f"the VAE config's {name} must list z_dim={config.z_dim} values, got {values}")
        shape = (1, config.z_dim, 1, 1, 1)
        # Not persistent: they belong to the VAE's config, not to any checkpoint of ours.
        self.register_buffer("latents_mean", torch.tensor(config.latents_mean).view(shape), persistent=False)
        self.register_buffer("latents_std", torch.tensor(config.latents_std).view(shape), persistent=False)

    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike, subfolder: str | None = "vae", dtype: torch.dtype = torch.float32
    ) -> WanVAECodec:
        """Load the VAE from a local folder (e.g. a Wan checkpoint, whose VAE is under ``vae/``)."""
        from diffusers import AutoencoderKLWan

        vae = AutoencoderKLWan.from_pretrained(str(path), subfolder=subfolder, torch_dtype=dtype)
        return cls(vae)

    def train(self, mode: bool = True) -> WanVAECodec:
        # A parent module's .train() must not switch the frozen VAE out of eval mode.
        super().train(mode)
        self.vae.eval()
        return self

    def latent_frames(self, frames: int) -> int:
        if frames < 1 or (frames - 1) % self.temporal_factor:
            raise ValueError(
                f"the Wan VAE needs 1 + {self.temporal_factor}·k frames (its first frame is a latent "
                f"frame of its own), got {frames}"
            )
        return 1 + (frames - 1) // self.temporal_factor

    def _normalise(self, z: Tensor) -> Tensor:
        return (z.float() - self.latents_mean) * (1.0 / self.latents_std)

    def _denormalise(self, latents: Tensor) -> Tensor:
        return latents.float() / (1.0 / self.latents_std) + self.latents_mean

    @torch.no_grad()  # the VAE is frozen and nothing upstream of a video needs a gradient
    def encode(self, video: Tensor) -> Tensor:
        self._check_video(video)
        z = self.vae.encode(video.to(self.vae.dtype)).latent_dist.mode()
        return self._normalise(z)

    def decode(self, latents: Tensor) -> Tensor:
        self._check_latents(latents)
        z = self._denormalise(latents).to(self.vae.dtype)
        return self.vae.decode(z).sample.float().clamp(-1.0, 1.0)


def make_codec(name: str, **kwargs) -> LatentCodec:
    """Build a codec by name: ``"patch"`` → ``PatchCodec(**kwargs)``,
    ``"wan_vae"`` → ``WanVAECodec.from_pretrained(**kwargs)``."""
    builders = {"patch": PatchCodec, "wan_vae": WanVAECodec.from_pretrained}
    if name not in builders:
        raise ValueError(f"unknown codec {name!r}; known codecs: {', '.join(sorted(builders))}")
    return builders[name](**kwargs)


def _cache_file(folder: str | os.PathLike, key: str) -> Path:
    """``folder/key.safetensors``; a key may name subfolders (``episode_3/clip_0``) but never leave
    the folder."""
    if not key or Path(key).is_absolute() or ".." in Path(key).parts:
        raise ValueError(f"a cache key must be a relative path inside the cache folder, got {key!r}")
    return Path(folder) / f"{key}.safetensors"


def cache_latents(
    codec: LatentCodec,
    videos: Iterable[tuple[str, Tensor]],
    folder: str | os.PathLike,
    overwrite: bool = False,
) -> None:
    """Encode each ``(key, video)`` and store its latents in ``folder/<key>.safetensors``.

    ``video`` is ``(3, T, H, W)`` or a batch ``(N, 3, T, H, W)`` (e.g. the views of one clip) in
    [-1, 1]; the file holds one tensor ``"latents"`` with the same leading shape, ``(C, T_l, h, w)`` or
    ``(N, C, T_l, h, w)``, float32 on the CPU. Each file is written to a temporary name and renamed,
    so an interrupted run never leaves a truncated file; keys already cached are skipped unless
    ``overwrite``, so such a run resumes where it stopped.
    """
    for key, video in videos:
        path = _cache_file(folder, key)
        if path.exists() and not overwrite:
            continue
        single = video.ndim == 4
        latents = codec.encode(video.unsqueeze(0) if single else video)
        latents = latents[0] if single else latents
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        save_file({"latents": latents.detach().float().cpu().contiguous()}, str(temporary))
        os.replace(temporary, path)


def load_cached_latents(folder: str | os.PathLike, key: str) -> Tensor:
    """The latents ``cache_latents`` stored for ``key``; FileNotFoundError naming the file if absent."""
    path = _cache_file(folder, key)
    if not path.is_file():
        raise FileNotFoundError(f"no cached latents for key {key!r}: {path} does not exist")
    return load_file(str(path))["latents"]
