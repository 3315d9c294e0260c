"""Decode only the frames a sample needs: decord (the reference choice) with PyAV as the fallback.

decord seeks and decodes a batch of frame indices in C; PyAV decodes from the nearest keyframe.
Files decord cannot open (e.g. AV1, which its bundled FFmpeg lacks) fall back to PyAV.
"""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np

try:  # decord is optional: some platforms have no wheel
    import decord

    decord.bridge.set_bridge("native")
except ImportError:  # pragma: no cover - depends on the platform
    decord = None

_BACKEND = os.environ.get("ACTION_IMAGES_VIDEO_BACKEND", "decord" if decord is not None else "pyav")


def read_frames(path: str | os.PathLike, indices: np.ndarray | list[int], backend: str | None = None) -> np.ndarray:
    """Frames `indices` (positions in the file, 0-based) of an mp4 as (N, H, W, 3) uint8.

    Raises FileNotFoundError for a missing file and ValueError, naming the file, for a corrupt one or
    for indices past its end (a truncated video).
    """
    path = Path(path)
    indices = np.asarray(indices, dtype=np.int64)
    if not path.exists():
        raise FileNotFoundError(f"video file not found: {path}")
    if indices.size and indices.min() < 0:
        raise ValueError(f"{path}: negative frame index {int(indices.min())}")
    backend = backend or _BACKEND
    if backend == "decord" and decord is not None:
        try:
            return _read_decord(path, indices)
        except (decord.DECORDError, RuntimeError):
            pass  # fall back to PyAV, which also produces the clear error for a broken file
    return _read_pyav(path, indices)


_READERS: dict[str, "decord.VideoReader"] = {}
_INHERITED: list[dict] = []  # readers a forked child inherited: never used, never freed there
MAX_OPEN_READERS = 64


def _forget_inherited_readers() -> None:
    # A decord reader must not be used or destroyed in a forked child (its threads stay in the
    # parent; its destructor deadlocks there). Keep the inherited ones alive, out of the way.
    _INHERITED.append(dict(_READERS))
    _READERS.clear()


os.register_at_fork(after_in_child=_forget_inherited_readers)


def _decord_reader(path: str) -> "decord.VideoReader":
    """Opening a file costs more than decoding a few small frames: keep readers open, per process."""
    if path not in _READERS:
        if len(_READERS) >= MAX_OPEN_READERS:
            _READERS.pop(next(iter(_READERS)))  # oldest first
        _READERS[path] = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
    return _READERS[path]


def _read_decord(path: Path, indices: np.ndarray) -> np.ndarray:
    reader = _decord_reader(str(path))
    if indices.size and indices.max() >= len(reader):
        raise ValueError(f"{path}: frame {int(indices.max())} requested but the video has {len(reader)} frames (truncated?)")
    return reader.get_batch(indices.tolist()).asnumpy()


def _read_pyav(path: Path, indices: np.ndarray) -> np.ndarray:
    wanted = set(indices.tolist())
    last = int(indices.max()) if indices.size else -1
    found: dict[int, np.ndarray] = {}
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            for position, frame in enumerate(container.decode(stream)):
                if position in wanted:
                    found[position] = frame.to_ndarray(format="rgb24")
                if position >= last:
                    break
    except (av.error.FFmpegError, ValueError) as error:
        raise ValueError(f"corrupt or unreadable video file {path}: {error}") from None
    missing = wanted - found.keys()
    if missing:
        raise ValueError(f"{path}: frame {max(missing)} requested but the video has fewer frames (truncated?)")
    return np.stack([found[i] for i in indices.tolist()]) if indices.size else np.zeros((0, 0, 0, 3), np.uint8)
