"""The authors' processed RLBench layout, read as-is (SPEC §7):

    <task>/variation<k>/variation_descriptions.pkl          list of instruction strings
    <task>/variation<k>/episodes/episode<n>/actions.npy      (T, 8): x y z qx qy qz qw openness
    <task>/variation<k>/episodes/episode<n>/view<v>/rgb/video.mp4
    <task>/variation<k>/episodes/episode<n>/view<v>/camera_params.json

`camera_params.json` holds per-frame K and camera-to-world (a static camera may give one of each).
Accepted spellings: `{"intrinsics": …, "extrinsics": …}` (also `K` / `intrinsic`, `c2w` /
`extrinsic` / `camera_to_world`), or a list of such dicts, one per frame. RLBench's negative focal
lengths are converted to OpenCV with `rendering.cameras.from_negative_focal`.

`root` may be one task folder or a folder of task folders. Poses are the gripper pose per frame,
so they serve both as the measured state and as the absolute action.
"""

from __future__ import annotations

import json
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from datamodules.schema import STATE_KEY
from datamodules.video import read_frames
from rendering.cameras import from_negative_focal
from rendering.rotations import RotationFormat

FPS = 10  # not stored by the layout; RLBench demonstrations are usually resampled to this


@dataclass(frozen=True)
class RLBenchEpisode:
    folder: Path
    instruction: str
    length: int


def _numbered(folder: Path, prefix: str) -> list[Path]:
    found = [p for p in folder.glob(f"{prefix}*") if p.is_dir() and re.fullmatch(rf"{prefix}\d+", p.name)]
    return sorted(found, key=lambda p: int(p.name[len(prefix):]))


class RLBenchDataset:
    """Episodes of the processed RLBench layout behind the clip sampler's interface."""

    fps = FPS

    def __init__(self, root: str | Path, fps: int = FPS) -> None:
        self.root, self.fps = Path(root), fps
        tasks = [self.root] if _numbered(self.root, "variation") else [p for p in sorted(self.root.iterdir()) if p.is_dir() and _numbered(p, "variation")]
        if not tasks:
            raise FileNotFoundError(f"{self.root}: no <task>/variation<k>/episodes folders (the processed RLBench layout)")
        self.episodes: list[RLBenchEpisode] = []
        for task in tasks:
            for variation in _numbered(task, "variation"):
                descriptions = _read_descriptions(variation / "variation_descriptions.pkl")
                for folder in _numbered(variation / "episodes", "episode"):
                    actions = folder / "actions.npy"
                    if not actions.exists():
                        raise FileNotFoundError(f"episode without actions: {actions} is missing")
                    length = int(np.load(actions, mmap_mode="r").shape[0])
                    self.episodes.append(RLBenchEpisode(folder, descriptions[0], length))
        if not self.episodes:
            raise FileNotFoundError(f"{self.root}: no episodes found")
        views = _numbered(self.episodes[0].folder, "view")
        self.cameras = [view.name for view in views]

    @property
    def num_episodes(self) -> int:
        return len(self.episodes)

    @property
    def has_calibration(self) -> bool:
        return True

    def has_poses(self, key: str = STATE_KEY) -> bool:
        return True

    def rotation_format(self, key: str = STATE_KEY) -> RotationFormat:
        return RotationFormat.QUAT_XYZW

    def episode_length(self, episode: int) -> int:
        return self.episodes[episode].length

    def instruction(self, episode: int) -> str:
        return self.episodes[episode].instruction

    def poses(self, episode: int, key: str = STATE_KEY) -> np.ndarray:
        path = self.episodes[episode].folder / "actions.npy"
        actions = np.load(path).astype(np.float32)
        if actions.ndim != 2 or actions.shape[1] != 8:
            raise ValueError(f"{path}: actions must be (T, 8) = xyz, quaternion xyzw, openness; got {actions.shape}")
        return actions

    def cameras_of(self, episode: int, cameras: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        record = self.episodes[episode]
        intrinsics, extrinsics = [], []
        for camera in cameras or self.cameras:
            k, e = _read_camera_params(record.folder / camera / "camera_params.json", record.length)
            intrinsics.append(k)
            extrinsics.append(e)
        return np.stack(intrinsics), np.stack(extrinsics)

    def frames(self, episode: int, camera: str, frame_indices: np.ndarray | list[int]) -> np.ndarray:
        return read_frames(self.episodes[episode].folder / camera / "rgb" / "video.mp4", frame_indices)


def _read_descriptions(path: Path) -> list[str]:
    if not path.exists():
        raise FileNotFoundError(f"variation without instructions: {path} is missing")
    with open(path, "rb") as handle:
        descriptions = pickle.load(handle)  # the authors' format; only ever open data you trust
    if isinstance(descriptions, str):
        descriptions = [descriptions]
    if not descriptions:
        raise ValueError(f"{path}: no instruction strings")
    return [str(d) for d in descriptions]


def _read_camera_params(path: Path, length: int) -> tuple[np.ndarray, np.ndarray]:
    if not path.exists():
        raise FileNotFoundError(f"missing calibration: {path}")
    try:
        params = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    if isinstance(params, list):
        params = {key: [frame[key] for frame in params] for key in params[0]}

    def pick(names: tuple[str, ...], what: str) -> np.ndarray:
        for name in names:
            if name in params:
                return np.asarray(params[name], dtype=np.float32)
        raise ValueError(f"{path}: no {what} (looked for keys {', '.join(names)})")

    intrinsics = pick(("intrinsics", "intrinsic", "K"), "intrinsics")
    extrinsics = pick(("extrinsics", "extrinsic", "c2w", "camera_to_world"), "camera-to-world extrinsics")
    if intrinsics.shape == (3, 3):
        intrinsics = np.broadcast_to(intrinsics, (length, 3, 3))
    if extrinsics.shape == (4, 4):
        extrinsics = np.broadcast_to(extrinsics, (length, 4, 4))
    if intrinsics.shape != (length, 3, 3) or extrinsics.shape != (length, 4, 4):
        raise ValueError(f"{path}: expected {length} frames of 3×3 K and 4×4 camera-to-world, got {intrinsics.shape} and {extrinsics.shape}")
    converted_k, converted_e = from_negative_focal(torch.from_numpy(intrinsics.copy()), torch.from_numpy(extrinsics.copy()))
    return converted_k.numpy(), converted_e.numpy()
