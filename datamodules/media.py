"""Writing and reading pictures and mp4 files (PyAV), atomically: a reader never sees half a file."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import av
import numpy as np
from PIL import Image


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f"{path.suffix}.tmp", dir=path.parent)
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes 0600; a finished file gets the usual mode
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """Float images in [0, 1] (or uint8 already) → uint8."""
    frames = np.asarray(frames)
    if frames.dtype == np.uint8:
        return frames
    return (np.clip(frames, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def crop_to_even(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) frames without a last odd row or column (yuv420p needs even sizes)."""
    return frames[:, : frames.shape[1] // 2 * 2, : frames.shape[2] // 2 * 2]


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write an (H, W, 3) image, float in [0, 1] or uint8, as PNG."""
    with atomic_path(path) as temporary:
        Image.fromarray(to_uint8(image)).save(temporary, format="PNG")


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: int = 10, codec: str = "libx264", crf: int = 18) -> None:
    """Write (T, H, W, 3) frames (float in [0, 1] or uint8) as an mp4 whose stream rate is `fps`, so
    frame i has timestamp i / fps exactly. H and W must be even for yuv420p."""
    frames = to_uint8(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{path}: video frames must have shape (T, H, W, 3), got {frames.shape}")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"{path}: H and W must be even for yuv420p, got {height}×{width}")
    with atomic_path(path) as temporary:
        with av.open(str(temporary), mode="w", format="mp4") as container:
            stream = container.add_stream(codec, rate=fps)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = {"crf": str(crf)} if codec == "libx264" else {}
            for frame in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode())


def read_video(path: str | os.PathLike) -> np.ndarray:
    """All frames of an mp4 as (T, H, W, 3) uint8; a clear error names a missing or corrupt file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"video file not found: {path}")
    try:
        with av.open(str(path)) as container:
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    except (av.error.FFmpegError, ValueError) as error:
        raise ValueError(f"corrupt or unreadable video file {path}: {error}") from None
    if not frames:
        raise ValueError(f"video file {path} has no frames")
    return np.stack(frames)
