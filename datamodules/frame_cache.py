"""A decoded-frame cache on disk: every frame of a dataset, decoded once at the clip's image size.

Decoding mp4 dominates loading when a dataset has thousands of short episodes: a per-worker memory
cache thrashes, and every worker of every run decodes the same frames again. This cache decodes each
episode once (in parallel processes, with a progress bar) into one uint8 array on disk,
`(frames, views, 3, size, size)`, that later runs memory-map: the workers of a run, and the ranks of a
DDP run on one machine, share its pages through the operating system.

A cache is named by a fingerprint of what it was made from (the dataset's `meta/info.json` and the size
and modification time of its files, the cameras, the image size and the resize), so a changed dataset
or clip shape builds a new one and a stale one is never read. It is written atomically: the array
under a temporary name, renamed, then its index (`.json`), whose presence marks a complete cache. The
dataset itself is never touched.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

# Bump when the decoded pixels would change for the same inputs (e.g. the resize in `resize_frames`).
FORMAT_VERSION = 1


def dataset_fingerprint(root: Path, cameras: list[str], image_size: int | None) -> str:
    """A short hash of the dataset's files (names, sizes, modification times) and the clip shape."""
    digest = hashlib.sha256(f"v{FORMAT_VERSION} {cameras} {image_size}".encode())
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        status = path.stat()
        digest.update(f"{path.relative_to(root)} {status.st_size} {status.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


@dataclass
class DecodedFrames:
    """The frames of every episode of one dataset, memory-mapped; `clip(e, frames)` copies out the
    uint8 (V, K, 3, H, W) of one clip."""

    array: np.ndarray  # (total frames, V, 3, H, W)
    starts: np.ndarray  # first row of each episode; len = episodes + 1
    source_size: tuple[int, int]  # (H, W) of the videos before resizing, for the cameras' intrinsics

    def clip(self, episode: int, frame_indices: np.ndarray) -> torch.Tensor:
        rows = self.starts[episode] + np.asarray(frame_indices)
        return torch.from_numpy(np.ascontiguousarray(self.array[rows].swapaxes(0, 1)))


def _decode_episode(dataset, episode: int) -> np.ndarray:
    """(T, V, 3, H, W) uint8 — one episode through the clip dataset's own decode and resize."""
    length = dataset.source.episode_length(episode)
    return dataset._decode(episode, np.arange(length)).numpy().swapaxes(0, 1)


_worker_dataset = None


def _init_worker(dataset) -> None:
    global _worker_dataset
    torch.set_num_threads(1)
    _worker_dataset = dataset


def _decode_in_worker(episode: int) -> tuple[int, np.ndarray]:
    return episode, _decode_episode(_worker_dataset, episode)


def cache_paths(cache_dir: Path, root: Path, cameras: list[str], image_size: int | None) -> tuple[Path, Path]:
    stem = f"{root.resolve().name}-{image_size or 'full'}-{dataset_fingerprint(root, cameras, image_size)}"
    return cache_dir / f"{stem}.npy", cache_dir / f"{stem}.json"


def open_frame_cache(dataset, cache_dir: str | Path, workers: int = 2) -> DecodedFrames:
    """The decoded frames of every episode of `dataset.source` (a `ClipDataset`'s source, at its
    cameras and image size), building the cache in `cache_dir` first when it is missing."""
    source = dataset.source
    root = Path(getattr(source, "root"))
    cache_dir = Path(cache_dir)
    array_path, index_path = cache_paths(cache_dir, root, dataset.cameras, dataset.config.image_size)
    if not index_path.exists():
        build_frame_cache(dataset, array_path, index_path, workers)
    index = json.loads(index_path.read_text())
    starts = np.asarray(index["starts"], dtype=np.int64)
    if len(starts) != source.num_episodes + 1:
        raise ValueError(f"{index_path}: indexes {len(starts) - 1} episodes, {root} has {source.num_episodes}; delete the cache to rebuild it")
    array = np.load(array_path, mmap_mode="r")
    if array.shape[0] != starts[-1]:
        raise ValueError(f"{array_path}: holds {array.shape[0]} frames, its index says {starts[-1]} (truncated?); delete it to rebuild")
    return DecodedFrames(array, starts, tuple(index["source_size"]))


def build_frame_cache(dataset, array_path: Path, index_path: Path, workers: int = 2) -> None:
    source = dataset.source
    episodes = range(source.num_episodes)
    lengths = np.array([source.episode_length(e) for e in episodes], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    first = _decode_episode(dataset, 0)
    array_path.parent.mkdir(parents=True, exist_ok=True)
    partial = array_path.with_name(array_path.name + f".{os.getpid()}.partial")
    array = np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=(int(starts[-1]), *first.shape[1:]))
    array[: lengths[0]] = first
    columns = (TextColumn("decoding {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, transient=True) as progress:
            task = progress.add_task(f"{source.root} once into {array_path.parent}", total=len(lengths), completed=1)
            if workers > 1 and len(lengths) > 1:
                with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(dataset,)) as pool:
                    for episode, frames in pool.map(_decode_in_worker, range(1, len(lengths)), chunksize=8):
                        array[starts[episode] : starts[episode + 1]] = frames
                        progress.advance(task)
            else:
                for episode in range(1, len(lengths)):
                    array[starts[episode] : starts[episode + 1]] = _decode_episode(dataset, episode)
                    progress.advance(task)
        array.flush()
        del array
        os.replace(partial, array_path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    temporary_index = index_path.with_name(index_path.name + f".{os.getpid()}.partial")
    temporary_index.write_text(json.dumps({"dataset": str(source.root), "cameras": dataset.cameras,
                                           "image_size": dataset.config.image_size, "source_size": list(dataset._source_size),
                                           "starts": starts.tolist()}))
    os.replace(temporary_index, index_path)
