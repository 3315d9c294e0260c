"""Read LeRobot datasets, v3.0 (what LeRobot writes today and what we write) and v2.1 (one file per
episode), behind one interface that the clip sampler uses: `EpisodeSource`.

Only what a sample needs is read: tables once per data file (small), video frames by index.
Every error names the file it is about.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from datamodules.schema import ACTION_KEY, CAMERA_PREFIX, IMAGE_PREFIX, STATE_KEY, extrinsics_key, image_key, intrinsics_key
from datamodules.video import read_frames
from rendering.rotations import RotationFormat


@dataclass(frozen=True)
class EpisodeRecord:
    index: int
    length: int
    instruction: str
    data_file: Path
    row_start: int  # first row of the episode in data_file
    videos: dict[str, tuple[Path, float]]  # camera → (mp4, from_timestamp)


class LeRobotDataset:
    """A LeRobot v3.0 or v2.1 dataset on disk (read-only; datasets are derived, never edited)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        info_path = self.root / "meta" / "info.json"
        if not info_path.exists():
            raise FileNotFoundError(f"not a LeRobot dataset: {info_path} is missing")
        self.info = json.loads(info_path.read_text())
        self.version = self.info.get("codebase_version")
        if self.version not in ("v3.0", "v2.1"):
            raise ValueError(f"{info_path}: codebase_version {self.version!r} is not supported (v3.0 and v2.1 are)")
        self.fps = int(self.info["fps"])
        self.features: dict[str, dict] = self.info["features"]
        self.cameras = [key[len(IMAGE_PREFIX):] for key, spec in self.features.items() if spec["dtype"] == "video" and key.startswith(IMAGE_PREFIX)]
        self.episodes = self._episodes_v3() if self.version == "v3.0" else self._episodes_v21()
        stats_path = self.root / "meta" / "stats.json"
        self.stats: dict = json.loads(stats_path.read_text()) if stats_path.exists() else {}

    # --- what the dataset holds -------------------------------------------------------------------
    @property
    def num_episodes(self) -> int:
        return len(self.episodes)

    @property
    def calibrated_cameras(self) -> list[str]:
        return [c for c in self.cameras if intrinsics_key(c) in self.features and extrinsics_key(c) in self.features]

    @property
    def has_calibration(self) -> bool:
        return bool(self.cameras) and self.calibrated_cameras == self.cameras

    def has_poses(self, key: str = STATE_KEY) -> bool:
        return key in self.features

    def rotation_format(self, key: str = ACTION_KEY) -> RotationFormat:
        """The declared rotation format of a pose feature; an undeclared one is an error, never a guess."""
        spec = self.features.get(key)
        if spec is None:
            raise KeyError(f"{self.root}: no feature {key!r}")
        declared = (spec.get("info") or {}).get("rotation_format")
        if declared is None:
            raise ValueError(
                f"{self.root / 'meta' / 'info.json'}: feature {key!r} declares no rotation format "
                "(set features[key]['info']['rotation_format'] to one of "
                + ", ".join(f.value for f in RotationFormat) + ")"
            )
        return RotationFormat.parse(declared)

    # --- reading ----------------------------------------------------------------------------------
    def episode_length(self, episode: int) -> int:
        return self.episodes[episode].length

    def instruction(self, episode: int) -> str:
        return self.episodes[episode].instruction

    def poses(self, episode: int, key: str = STATE_KEY) -> np.ndarray:
        """Pose vectors (T, D) of a pose feature, in its declared rotation format."""
        if key not in self.features:
            raise KeyError(f"{self.root}: no feature {key!r}")
        return np.asarray(self.table(episode)[key], dtype=np.float32).reshape(self.episodes[episode].length, -1)

    def table(self, episode: int) -> dict[str, np.ndarray]:
        """All non-video columns of one episode, per frame."""
        record = self.episodes[episode]
        data = _read_table(record.data_file)
        rows = slice(record.row_start, record.row_start + record.length)
        if rows.stop > len(data["index"]):
            raise ValueError(f"{record.data_file}: episode {record.index} needs rows {rows.start}–{rows.stop - 1}, the file has {len(data['index'])} (truncated?)")
        columns = {name: values[rows] for name, values in data.items()}
        if not (columns["frame_index"] == np.arange(record.length)).all():
            raise ValueError(f"{record.data_file}: frame_index of episode {record.index} is not 0…{record.length - 1} (truncated or reordered episode)")
        return columns

    def frames(self, episode: int, camera: str, frame_indices: np.ndarray | list[int]) -> np.ndarray:
        """Frames of one camera, (N, H, W, 3) uint8, decoding only those frames."""
        record = self.episodes[episode]
        frame_indices = np.asarray(frame_indices, dtype=np.int64)
        if frame_indices.size and (frame_indices.min() < 0 or frame_indices.max() >= record.length):
            raise IndexError(f"episode {record.index} has {record.length} frames; asked for {frame_indices.tolist()}")
        path, from_timestamp = record.videos[camera]
        offset = int(round(from_timestamp * self.fps))  # episodes may share one mp4
        return read_frames(path, frame_indices + offset)

    def cameras_of(self, episode: int, cameras: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per-frame intrinsics (V, T, 3, 3) and camera-to-world extrinsics (V, T, 4, 4)."""
        cameras = cameras or self.cameras
        missing = [c for c in cameras if c not in self.calibrated_cameras]
        if missing:
            raise ValueError(f"{self.root}: cameras {missing} have no calibration ({CAMERA_PREFIX}<cam>.intrinsics/extrinsics)")
        table = self.table(episode)
        intrinsics = np.stack([np.asarray(table[intrinsics_key(c)], np.float32).reshape(-1, 3, 3) for c in cameras])
        extrinsics = np.stack([np.asarray(table[extrinsics_key(c)], np.float32).reshape(-1, 4, 4) for c in cameras])
        return intrinsics, extrinsics

    # --- layouts ----------------------------------------------------------------------------------
    def _episodes_v3(self) -> list[EpisodeRecord]:
        meta = self.root / "meta"
        if not (meta / "tasks.parquet").exists():
            raise FileNotFoundError(f"tasks file missing: {meta / 'tasks.parquet'}")
        episode_files = sorted((meta / "episodes").glob("chunk-*/file-*.parquet"))
        if not episode_files:
            raise FileNotFoundError(f"{meta / 'episodes'}: no episode metadata files")
        frames = pd.concat([pd.read_parquet(path) for path in episode_files]).sort_values("episode_index")
        records = []
        for row in frames.to_dict("records"):
            index = int(row["episode_index"])
            data_file = self.root / self.info["data_path"].format(chunk_index=int(row["data/chunk_index"]), file_index=int(row["data/file_index"]))
            if not data_file.exists():
                raise FileNotFoundError(f"episode {index}: data file missing: {data_file}")
            # Rows of one data file are in index order; the episode starts at its global index
            # minus the first global index stored in that file.
            row_start = int(row["dataset_from_index"]) - _first_index(data_file)
            videos = {}
            for camera in self.cameras:
                key = image_key(camera)
                path = self.root / self.info["video_path"].format(
                    video_key=key, chunk_index=int(row[f"videos/{key}/chunk_index"]), file_index=int(row[f"videos/{key}/file_index"])
                )
                videos[camera] = (path, float(row[f"videos/{key}/from_timestamp"]))
            instruction = list(row["tasks"])[0] if len(row["tasks"]) else ""
            records.append(EpisodeRecord(index, int(row["length"]), str(instruction), data_file, row_start, videos))
        return records

    def _episodes_v21(self) -> list[EpisodeRecord]:
        meta = self.root / "meta"
        episodes_path = meta / "episodes.jsonl"
        if not episodes_path.exists():
            raise FileNotFoundError(f"v2.1 dataset without {episodes_path}")
        chunks_size = int(self.info.get("chunks_size", 1000))
        records = []
        for line in episodes_path.read_text().splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            index, chunk = int(row["episode_index"]), int(row["episode_index"]) // chunks_size
            data_file = self.root / self.info["data_path"].format(episode_chunk=chunk, episode_index=index)
            if not data_file.exists():
                raise FileNotFoundError(f"episode {index}: data file missing: {data_file}")
            videos = {
                camera: (self.root / self.info["video_path"].format(episode_chunk=chunk, video_key=image_key(camera), episode_index=index), 0.0)
                for camera in self.cameras
            }
            records.append(EpisodeRecord(index, int(row["length"]), str(row["tasks"][0]) if row.get("tasks") else "", data_file, 0, videos))
        return sorted(records, key=lambda r: r.index)


@lru_cache(maxsize=16)
def _read_table(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        raise FileNotFoundError(f"data file missing: {path}")
    try:
        table = pq.read_table(path)
    except Exception as error:  # pyarrow raises several types for a damaged file
        raise ValueError(f"corrupt parquet file {path}: {error}") from None
    columns = {}
    for name in table.column_names:
        column = table.column(name)
        if hasattr(column.type, "list_size") or str(column.type).startswith("list"):
            columns[name] = np.stack(column.to_numpy(zero_copy_only=False)) if len(column) else np.zeros((0, 0), np.float32)
        else:
            columns[name] = column.to_numpy()
    return columns


def _first_index(path: Path) -> int:
    return int(_read_table(path)["index"][0])
