"""Write LeRobot v3.0 datasets that LeRobot itself loads (rules: shared/LEROBOT_V3.md), with the
project's calibration schema (`datamodules.schema`).

Writing is atomic: everything goes to a hidden sibling folder that is renamed into place by `close()`;
an interrupted or failed run leaves no dataset at the target path, never half of one.
Each episode gets its own mp4 per camera (`from_timestamp` 0) and all rows go to one parquet file
per chunk of 1,000 episodes.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from datamodules.media import write_video
from datamodules.schema import (
    ACTION_KEY,
    DEFAULT_FEATURES,
    STATE_KEY,
    calibration_features,
    extrinsics_key,
    image_key,
    intrinsics_key,
    pose_feature,
    video_feature,
)
from rendering.rotations import RotationFormat

CHUNKS_SIZE = 1000
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
VIDEO_STATS_FRAMES = 8  # frames per episode and camera sampled for image statistics


@dataclass
class Episode:
    """One episode in memory. Arrays are per frame (T first); poses follow the writer's rotation format."""

    instruction: str
    images: dict[str, np.ndarray]  # camera → (T, H, W, 3) uint8
    intrinsics: dict[str, np.ndarray] = field(default_factory=dict)  # camera → (T, 3, 3)
    extrinsics: dict[str, np.ndarray] = field(default_factory=dict)  # camera → (T, 4, 4) camera-to-world
    state: np.ndarray | None = None  # (T, D)
    action: np.ndarray | None = None  # (T, D)
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # name → (T,) or (T, D) declared extra columns

    @property
    def length(self) -> int:
        return len(next(iter(self.images.values())))


class LeRobotWriter:
    """`with LeRobotWriter(root, fps=10, cameras=[...], image_size=(H, W)) as writer: writer.add(episode)`."""

    def __init__(
        self,
        root: str | os.PathLike,
        fps: int,
        cameras: list[str],
        image_size: tuple[int, int],
        rotation_format: str | RotationFormat = RotationFormat.QUAT_XYZW,
        calibrated: bool = True,
        has_state: bool = True,
        has_action: bool = True,
        extra_features: dict[str, dict] | None = None,
        robot_type: str = "franka_panda",
        overwrite: bool = False,
    ) -> None:
        self.root = Path(root)
        if self.root.exists() and not overwrite:
            raise FileExistsError(f"dataset folder already exists: {self.root} (pass overwrite=True to replace it)")
        if int(fps) != fps or fps <= 0:
            raise ValueError(f"fps must be a positive integer, got {fps}")
        self.fps, self.cameras, self.image_size = int(fps), list(cameras), tuple(image_size)
        self.rotation_format = RotationFormat.parse(rotation_format)
        self.robot_type, self.overwrite = robot_type, overwrite
        self.features = self._features(calibrated, has_state, has_action, extra_features or {})
        self.staging = self.root.parent / f".{self.root.name}.partial-{os.getpid()}"
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(parents=True)
        self.tasks: dict[str, int] = {}
        self.rows: dict[str, list[np.ndarray]] = {name: [] for name in self.table_features}
        self.episodes: list[dict] = []
        self.image_samples: dict[str, list[np.ndarray]] = {camera: [] for camera in self.cameras}
        self.closed = False

    # --- schema -----------------------------------------------------------------------------------
    def _features(self, calibrated: bool, has_state: bool, has_action: bool, extra: dict[str, dict]) -> dict[str, dict]:
        height, width = self.image_size
        features: dict[str, dict] = {}
        for camera in self.cameras:
            features[image_key(camera)] = video_feature(height, width, self.fps)
            if calibrated:
                features.update(calibration_features(camera))
        if has_state:
            features[STATE_KEY] = pose_feature(self.rotation_format, kind="measured end-effector pose")
        if has_action:
            features[ACTION_KEY] = pose_feature(self.rotation_format, kind="absolute end-effector target")
        for name, spec in extra.items():
            if "/" in name:
                raise ValueError(f"feature names may not contain '/': {name!r}")
            features[name] = spec
        features.update(DEFAULT_FEATURES)
        return features

    @property
    def table_features(self) -> list[str]:
        return [name for name, spec in self.features.items() if spec["dtype"] != "video"]

    # --- episodes ---------------------------------------------------------------------------------
    def add(self, episode: Episode) -> int:
        """Write one episode's videos and keep its rows; returns its episode index."""
        if self.closed:
            raise RuntimeError("the writer is closed")
        index, length = len(self.episodes), episode.length
        start = self.episodes[-1]["dataset_to_index"] if self.episodes else 0
        columns = self._episode_columns(episode, index, length, start)
        record = {
            "episode_index": index,
            "tasks": [episode.instruction],
            "length": length,
            "dataset_from_index": start,
            "dataset_to_index": start + length,
            "data/chunk_index": index // CHUNKS_SIZE,
            "data/file_index": 0,
            # LeRobot needs these to append episodes or merge datasets (all metadata is in file-000).
            "meta/episodes/chunk_index": 0,
            "meta/episodes/file_index": 0,
        }
        for name, values in columns.items():
            record.update({f"stats/{name}/{stat}": value for stat, value in feature_stats(values.reshape(length, -1)).items()})
        for camera in self.cameras:
            frames = episode.images[camera]
            key = image_key(camera)
            path = self.staging / VIDEO_PATH.format(video_key=key, chunk_index=index // CHUNKS_SIZE, file_index=index % CHUNKS_SIZE)
            write_video(path, frames, fps=self.fps)
            record.update({
                f"videos/{key}/chunk_index": index // CHUNKS_SIZE,
                f"videos/{key}/file_index": index % CHUNKS_SIZE,
                f"videos/{key}/from_timestamp": 0.0,
                f"videos/{key}/to_timestamp": length / self.fps,
            })
            picked = np.linspace(0, length - 1, min(VIDEO_STATS_FRAMES, length)).round().astype(int)
            self.image_samples[camera].append(frames[picked])
            record.update({f"stats/{key}/{stat}": value for stat, value in image_stats(frames[picked]).items()})
        for name, values in columns.items():
            self.rows[name].append(values)
        self.episodes.append(record)
        return index

    def _episode_columns(self, episode: Episode, index: int, length: int, start: int) -> dict[str, np.ndarray]:
        task_index = self.tasks.setdefault(episode.instruction, len(self.tasks))
        columns = {
            "timestamp": (np.arange(length) / self.fps).astype(np.float32),
            "frame_index": np.arange(length, dtype=np.int64),
            "episode_index": np.full(length, index, dtype=np.int64),
            "index": np.arange(start, start + length, dtype=np.int64),
            "task_index": np.full(length, task_index, dtype=np.int64),
        }
        for camera in self.cameras:
            frames = episode.images.get(camera)
            if frames is None or frames.shape != (length, *self.image_size, 3) or frames.dtype != np.uint8:
                shape = None if frames is None else (frames.shape, frames.dtype)
                raise ValueError(f"episode {index}: camera {camera!r} needs uint8 frames {(length, *self.image_size, 3)}, got {shape}")
            if intrinsics_key(camera) in self.features:
                columns[intrinsics_key(camera)] = _per_frame(episode.intrinsics, camera, (3, 3), length, index, "intrinsics")
                columns[extrinsics_key(camera)] = _per_frame(episode.extrinsics, camera, (4, 4), length, index, "extrinsics")
        width = 3 + self.rotation_format.size + 1
        for key, values in ((STATE_KEY, episode.state), (ACTION_KEY, episode.action)):
            if key in self.features:
                if values is None or np.shape(values) != (length, width):
                    raise ValueError(f"episode {index}: {key} must be ({length}, {width}), got {None if values is None else np.shape(values)}")
                columns[key] = _finite(np.asarray(values, dtype=np.float32), f"episode {index}: {key}")
        for name in self.table_features:
            if name not in columns:
                if name not in episode.extra:
                    raise ValueError(f"episode {index}: declared feature {name!r} has no data")
                spec = self.features[name]
                values = np.asarray(episode.extra[name], dtype=spec["dtype"])
                columns[name] = values.reshape(length, *([] if spec["shape"] == [1] else spec["shape"]))
        return columns

    # --- finishing --------------------------------------------------------------------------------
    def close(self) -> Path:
        """Write tables, statistics and info.json, then move the dataset into place."""
        if self.closed:
            return self.root
        if not self.episodes:
            raise ValueError(f"no episodes were added to {self.root}")
        columns = {name: np.concatenate(parts) for name, parts in self.rows.items()}
        for chunk in range((len(self.episodes) - 1) // CHUNKS_SIZE + 1):
            first, last = chunk * CHUNKS_SIZE, min((chunk + 1) * CHUNKS_SIZE, len(self.episodes))
            rows = slice(self.episodes[first]["dataset_from_index"], self.episodes[last - 1]["dataset_to_index"])
            table = pa.table({name: _arrow_column(values[rows]) for name, values in columns.items()})
            path = self.staging / DATA_PATH.format(chunk_index=chunk, file_index=0)
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, path)

        meta = self.staging / "meta"
        (meta / "episodes" / "chunk-000").mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(self.episodes), meta / "episodes" / "chunk-000" / "file-000.parquet")
        tasks = pd.DataFrame({"task_index": list(self.tasks.values())}, index=pd.Index(list(self.tasks), name="task"))
        tasks.to_parquet(meta / "tasks.parquet")
        (meta / "stats.json").write_text(json.dumps(self._stats(columns), indent=2))
        (meta / "info.json").write_text(json.dumps(self._info(len(columns["index"])), indent=2))

        if self.root.exists():
            shutil.rmtree(self.root)
        os.replace(self.staging, self.root)
        self.closed = True
        return self.root

    def abort(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
        self.closed = True

    def __enter__(self) -> "LeRobotWriter":
        return self

    def __exit__(self, error_type, error, traceback) -> None:
        if error_type is None:
            self.close()
        else:
            self.abort()

    def _info(self, total_frames: int) -> dict:
        return {
            "codebase_version": "v3.0",
            "robot_type": self.robot_type,
            "total_episodes": len(self.episodes),
            "total_frames": total_frames,
            "total_tasks": len(self.tasks),
            "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": 100,
            "video_files_size_in_mb": 200,
            "fps": self.fps,
            "splits": {"train": f"0:{len(self.episodes)}"},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH,
            "features": self.features,
        }

    def _stats(self, columns: dict[str, np.ndarray]) -> dict:
        stats = {name: feature_stats(values.reshape(len(values), -1)) for name, values in columns.items()}
        for camera in self.cameras:
            stats[image_key(camera)] = image_stats(np.concatenate(self.image_samples[camera]))
        return stats


def feature_stats(values: np.ndarray) -> dict[str, list]:
    """LeRobot's statistics of (N, D) values: per-dimension lists, `count` as a one-element list."""
    values = values.astype(np.float64)
    stats = {
        "min": values.min(0).tolist(),
        "max": values.max(0).tolist(),
        "mean": values.mean(0).tolist(),
        "std": values.std(0).tolist(),
        "count": [int(len(values))],
    }
    for q in QUANTILES:
        stats[f"q{round(q * 100):02d}"] = np.quantile(values, q, axis=0).tolist()
    return stats


MAX_STATS_PIXELS = 1 << 20  # per camera: quantiles of more pixels cost minutes and change nothing


def image_stats(frames: np.ndarray) -> dict[str, list]:
    """Per-channel statistics of uint8 frames (N, H, W, 3) on values / 255, shaped (3, 1, 1), over an
    even subsample of at most MAX_STATS_PIXELS pixels."""
    pixels = frames.reshape(-1, 3)
    pixels = pixels[:: max(1, len(pixels) // MAX_STATS_PIXELS)].astype(np.float32) / 255.0
    return {key: value if key == "count" else [[[v]] for v in value] for key, value in feature_stats(pixels).items()}


def _per_frame(values: dict[str, np.ndarray], camera: str, shape: tuple[int, int], length: int, index: int, what: str) -> np.ndarray:
    if camera not in values:
        raise ValueError(f"episode {index}: camera {camera!r} has no {what} (the dataset is declared calibrated)")
    array = np.asarray(values[camera], dtype=np.float32)
    if array.shape == shape:  # a static camera: repeat per frame
        array = np.broadcast_to(array, (length, *shape))
    if array.shape != (length, *shape):
        raise ValueError(f"episode {index}: {what} of {camera!r} must be {(length, *shape)}, got {array.shape}")
    return _finite(array.reshape(length, -1), f"episode {index}: {what} of {camera!r}")


def _finite(array: np.ndarray, what: str) -> np.ndarray:
    if not np.isfinite(array).all():
        raise ValueError(f"{what} contains NaN or infinite values")
    return array


def _arrow_column(values: np.ndarray) -> pa.Array:
    """Shape-[1] features are plain columns; vectors are fixed-size lists, as LeRobot stores them."""
    if values.ndim == 1:
        return pa.array(values)
    flat = values.reshape(len(values), -1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), flat.shape[1])
