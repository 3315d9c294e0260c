"""Check LeRobot compatibility both ways: datasets our writer makes load in the real `lerobot` package,
and datasets `lerobot` itself writes are read by our reader.

Two Python environments are involved: ours (the project's venv, with `datamodules`) and one with
`lerobot` installed. Each mode runs in one of them; they exchange a work folder WORK that holds the
datasets and the ground truth (`*.npz`) they were made from. The modes that run with `lerobot` never
import our package, and the modes that run with ours never import `lerobot`.

    # 1. ours: write WORK/ours with datamodules.lerobot_writer, and WORK/ours_truth.npz
    PYTHONPATH=/work/main /work/main/.venv/bin/python tools/check_lerobot_compat.py write WORK

    # 2. lerobot: load WORK/ours offline with lerobot's LeRobotDataset, compare every item to the truth
    HF_HUB_OFFLINE=1 /tmp/lerobot-venv/bin/python tools/check_lerobot_compat.py check WORK [--video-backend pyav]

    # 3. lerobot: write WORK/theirs with LeRobotDataset.create/add_frame/save_episode/finalize
    #    (--small-files: a new data and video file per episode; --vcodec h264: lerobot's other codec)
    HF_HUB_OFFLINE=1 /tmp/lerobot-venv/bin/python tools/check_lerobot_compat.py lerobot-write WORK [--small-files]

    # 4. ours: read WORK/theirs with datamodules.lerobot_reader.LeRobotDataset, compare to the truth
    PYTHONPATH=/work/main /work/main/.venv/bin/python tools/check_lerobot_compat.py read WORK

    # or all four in order, each with its own interpreter:
    python tools/check_lerobot_compat.py all WORK --ours-python /work/main/.venv/bin/python \
        --lerobot-python /tmp/lerobot-venv/bin/python

The checking modes print one PASS/FAIL line per check and close with 'N passed, N failed'; they exit
non-zero when anything failed. The data is small (2 cameras, 32×48 pixels, 3 episodes of 7, 12 and 4
frames, 2 instructions) and smooth (gradients), so codec error stays well under the tolerance.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

FPS = 10
HEIGHT, WIDTH = 32, 48
CAMERAS = ("front", "wrist")
EPISODES = (  # (length, instruction); episodes 0 and 2 share their instruction
    (7, "pick up the red cube"),
    (12, "open the top drawer"),
    (4, "pick up the red cube"),
)
POSE_NAMES = ["x", "y", "z", "qx", "qy", "qz", "qw", "gripper"]
PIXEL_TOLERANCE = 3 / 255  # mean absolute error of a decoded frame, pixel values in [0, 1] (--max-mae)

IMAGE_KEY = "observation.images.{camera}"
INTRINSICS_KEY = "observation.cameras.{camera}.intrinsics"
EXTRINSICS_KEY = "observation.cameras.{camera}.extrinsics"


# --- ground truth (numpy only: both environments use it) ----------------------------------------------
def make_truth() -> list[dict[str, np.ndarray | str]]:
    """Deterministic episodes: frames (T, H, W, 3) uint8 per camera, calibration, state and action.

    Frames are gradients that change from frame to frame (red and blue move with t), so a frame decoded
    at the wrong time is detectably different from the right one. Float arrays are float64 here, with
    values float32 cannot hold exactly: what a reader must return is their float32 cast.
    """
    rng = np.random.default_rng(0)
    y = np.linspace(0.0, 1.0, HEIGHT)[:, None]
    x = np.linspace(0.0, 1.0, WIDTH)[None, :]
    episodes = []
    for e, (length, instruction) in enumerate(EPISODES):
        episode: dict[str, np.ndarray | str] = {"instruction": instruction}
        for c, camera in enumerate(CAMERAS):
            frames = np.empty((length, HEIGHT, WIDTH, 3), np.uint8)
            for t in range(length):
                red = 20 + 100 * x + 12 * t + 0 * y
                green = 40 + 120 * y + 30 * e + 0 * x
                blue = np.full((HEIGHT, WIDTH), 30 + 80 * c + 8 * t)
                frames[t] = np.clip(np.stack([red, green, blue], -1).round(), 0, 255).astype(np.uint8)
            episode[f"images.{camera}"] = frames
            focal = 40.0 + 10 * c + 0.123456789
            intrinsics = np.array([[focal, 0.0, (WIDTH - 1) / 2 + 0.1], [0.0, focal * 1.01, (HEIGHT - 1) / 2 - 0.2], [0.0, 0.0, 1.0]])
            episode[f"intrinsics.{camera}"] = np.broadcast_to(intrinsics, (length, 3, 3)).copy()
            extrinsics = np.tile(np.eye(4), (length, 1, 1))
            extrinsics[:, :3, 3] = [0.5 + 0.1 * c, -0.3, 1.2]
            if camera == "wrist":  # a moving camera: per-frame extrinsics
                extrinsics[:, 0, 3] += 0.01 * np.arange(length) + 1e-9
            episode[f"extrinsics.{camera}"] = extrinsics
        episode["state"] = rng.normal(size=(length, len(POSE_NAMES)))
        episode["action"] = rng.normal(size=(length, len(POSE_NAMES)))
        episodes.append(episode)
    return episodes


def save_truth(path: Path, episodes: list[dict]) -> None:
    arrays = {f"ep{e}.{name}": value for e, episode in enumerate(episodes) for name, value in episode.items() if name != "instruction"}
    arrays["meta"] = np.array(json.dumps({"fps": FPS, "cameras": list(CAMERAS), "instructions": [ep["instruction"] for ep in episodes]}))
    np.savez_compressed(path, **arrays)


def load_truth(path: Path) -> list[dict]:
    with np.load(path) as data:
        meta = json.loads(str(data["meta"]))
        episodes = [{"instruction": instruction} for instruction in meta["instructions"]]
        for key in data.files:
            if key != "meta":
                e, name = key.split(".", 1)
                episodes[int(e[2:])][name] = data[key]
    return episodes


def truth_columns(episode: dict) -> dict[str, np.ndarray]:
    """The table columns a reader must return for one episode, (T, D) float32, keyed by feature name."""
    length = len(episode["state"])
    columns = {"observation.state": episode["state"].astype(np.float32), "action": episode["action"].astype(np.float32)}
    for camera in CAMERAS:
        columns[INTRINSICS_KEY.format(camera=camera)] = episode[f"intrinsics.{camera}"].astype(np.float32).reshape(length, 9)
        columns[EXTRINSICS_KEY.format(camera=camera)] = episode[f"extrinsics.{camera}"].astype(np.float32).reshape(length, 16)
    return columns


# --- reporting ------------------------------------------------------------------------------------------
class Report:
    def __init__(self, title: str) -> None:
        self.title, self.passed, self.failed = title, 0, 0
        print(f"== {title}", flush=True)

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        print(f"{'PASS' if ok else 'FAIL'}  {name}" + (f"  ({detail})" if detail else ""), flush=True)
        return ok

    def close(self) -> int:
        print(f"{self.title}: {self.passed} passed, {self.failed} failed", flush=True)
        return 1 if self.failed else 0


def _first_mismatch(problems: list[str]) -> str:
    return "" if not problems else f"{len(problems)} mismatches; first: {problems[0]}"


def _frame_errors(decoded: np.ndarray, truth_frames: np.ndarray, t: int) -> tuple[float, int]:
    """MAE of `decoded` ((H, W, 3) float in [0, 1]) against truth frame t, and which truth frame it is closest to."""
    truth = truth_frames.astype(np.float32) / 255.0
    errors = np.abs(truth - decoded[None]).mean(axis=(1, 2, 3))
    return float(errors[t]), int(errors.argmin())


# --- mode: write (ours) -----------------------------------------------------------------------------------
def mode_write(work: Path) -> int:
    from datamodules.lerobot_writer import Episode, LeRobotWriter  # our package; never lerobot here

    episodes = make_truth()
    root = work / "ours"
    with LeRobotWriter(root, fps=FPS, cameras=list(CAMERAS), image_size=(HEIGHT, WIDTH), overwrite=True) as writer:
        for episode in episodes:
            writer.add(Episode(
                instruction=episode["instruction"],
                images={camera: episode[f"images.{camera}"] for camera in CAMERAS},
                intrinsics={camera: episode[f"intrinsics.{camera}"] for camera in CAMERAS},
                extrinsics={camera: episode[f"extrinsics.{camera}"] for camera in CAMERAS},
                state=episode["state"],
                action=episode["action"],
            ))
    save_truth(work / "ours_truth.npz", episodes)
    print(f"wrote {root} ({len(episodes)} episodes, {sum(len(e['state']) for e in episodes)} frames) and {work / 'ours_truth.npz'}")
    return 0


# --- mode: check (lerobot loads ours) ------------------------------------------------------------------
def _default_backend() -> str:
    import importlib.util

    return "torchcodec" if importlib.util.find_spec("torchcodec") else "pyav"


def mode_check(work: Path, video_backend: str | None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before huggingface_hub is imported
    import torch
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot.datasets.utils import dataset_to_policy_features

    backend = video_backend or _default_backend()
    report = Report(f"lerobot loads our dataset (video_backend={backend})")
    root, truth = work / "ours", load_truth(work / "ours_truth.npz")
    lengths = [len(episode["state"]) for episode in truth]
    starts = np.concatenate([[0], np.cumsum(lengths)])

    try:
        dataset = LeRobotDataset(repo_id="local/test", root=root, video_backend=backend)
    except Exception as error:  # the load itself failing is the main thing this tool looks for
        report.check("LeRobotDataset(...) loads", False, f"{type(error).__name__}: {error}")
        return report.close()
    report.check("LeRobotDataset(...) loads", True)
    report.check("num_episodes", dataset.num_episodes == len(truth), f"{dataset.num_episodes} vs {len(truth)}")
    report.check("num_frames / len()", dataset.num_frames == len(dataset) == sum(lengths), f"{dataset.num_frames}, {len(dataset)} vs {sum(lengths)}")
    report.check("total_tasks", dataset.meta.total_tasks == 2 and len(dataset.meta.tasks) == 2, f"{dataset.meta.total_tasks}, {list(dataset.meta.tasks.index)}")
    report.check("fps", dataset.fps == FPS, str(dataset.fps))
    report.check("video_keys", sorted(dataset.meta.video_keys) == sorted(IMAGE_KEY.format(camera=c) for c in CAMERAS), str(dataset.meta.video_keys))

    problems = []
    for e, episode in enumerate(dataset.meta.episodes):
        expected = {"episode_index": e, "length": lengths[e], "dataset_from_index": int(starts[e]), "dataset_to_index": int(starts[e + 1]), "tasks": [truth[e]["instruction"]]}
        for key, value in expected.items():
            got = episode[key]
            got = list(got) if key == "tasks" else int(got)
            if got != value:
                problems.append(f"episode {e} {key}={got!r}, expected {value!r}")
    report.check("episode metadata (index, length, from/to, tasks)", not problems, _first_mismatch(problems))

    try:
        features = dataset_to_policy_features(dataset.meta.features)
        shapes = {key: tuple(features[key].shape) for key in (IMAGE_KEY.format(camera=CAMERAS[0]), "observation.state", "action")}
        report.check("dataset_to_policy_features", shapes[IMAGE_KEY.format(camera=CAMERAS[0])] == (3, HEIGHT, WIDTH), str(shapes))
    except Exception as error:
        report.check("dataset_to_policy_features", False, f"{type(error).__name__}: {error}")

    stats = dataset.meta.stats or {}
    missing = [key for key in dataset.meta.features if key not in stats]
    camera_mean = np.asarray(stats.get(IMAGE_KEY.format(camera=CAMERAS[0]), {}).get("mean", []))
    report.check("stats for every feature, camera stats (3, 1, 1)", not missing and camera_mean.shape == (3, 1, 1), f"missing {missing}, camera mean shape {camera_mean.shape}")

    # Every item, field by field.
    problems_by_check: dict[str, list[str]] = {name: [] for name in ("item loads", "indices", "task", "timestamp", "table columns", "frame dtype/shape/range", "frame content")}
    worst_error = 0.0
    for i in range(len(dataset)):
        e = int(np.searchsorted(starts, i, side="right") - 1)
        t = i - int(starts[e])
        try:
            item = dataset[i]
        except Exception as error:
            problems_by_check["item loads"].append(f"item {i}: {type(error).__name__}: {str(error).splitlines()[0]}")
            continue
        got = {key: int(item[key].item()) for key in ("index", "episode_index", "frame_index")}
        if got != {"index": i, "episode_index": e, "frame_index": t}:
            problems_by_check["indices"].append(f"item {i}: {got}, expected episode {e} frame {t}")
        if item.get("task") != truth[e]["instruction"]:
            problems_by_check["task"].append(f"item {i}: {item.get('task')!r}, expected {truth[e]['instruction']!r}")
        timestamp = item["timestamp"]
        if timestamp.dtype != torch.float32 or timestamp.item() != np.float32(t / FPS):
            problems_by_check["timestamp"].append(f"item {i}: {timestamp.item()!r} {timestamp.dtype}, expected {np.float32(t / FPS)!r}")
        for key, values in truth_columns(truth[e]).items():
            value = item.get(key)
            if value is None or value.dtype != torch.float32 or not np.array_equal(value.numpy(), values[t]):
                problems_by_check["table columns"].append(f"item {i} {key}: {None if value is None else (value.dtype, value.numpy()[:3])}, expected {values[t][:3]}")
        for camera in CAMERAS:
            frame = item[IMAGE_KEY.format(camera=camera)]
            if frame.dtype != torch.float32 or tuple(frame.shape) != (3, HEIGHT, WIDTH) or frame.min() < 0 or frame.max() > 1:
                problems_by_check["frame dtype/shape/range"].append(f"item {i} {camera}: {frame.dtype} {tuple(frame.shape)} [{frame.min():.3f}, {frame.max():.3f}]")
                continue
            error, closest = _frame_errors(frame.permute(1, 2, 0).numpy(), truth[e][f"images.{camera}"], t)
            worst_error = max(worst_error, error)
            if error >= PIXEL_TOLERANCE or closest != t:
                problems_by_check["frame content"].append(f"item {i} {camera}: MAE {error * 255:.2f}/255, closest truth frame {closest}, expected {t}")
    unloaded = len(problems_by_check["item loads"])
    for name, problems in problems_by_check.items():
        detail = _first_mismatch(problems) or (f"worst MAE {worst_error * 255:.2f}/255" if name == "frame content" else "")
        if name != "item loads" and unloaded:  # items that did not load were not checked: that is no pass
            detail = "; ".join(filter(None, [detail, f"{unloaded} of {len(dataset)} items not checked: they did not load"]))
        report.check(f"every item: {name}", not problems and not unloaded, detail)

    # Batching (a column that loads as None breaks collation) and delta timestamps (episode boundaries).
    try:
        batches = list(torch.utils.data.DataLoader(dataset, batch_size=8, num_workers=0))
        report.check("DataLoader batches", sum(len(b["index"]) for b in batches) == len(dataset), f"{len(batches)} batches")
    except Exception as error:
        report.check("DataLoader batches", False, f"{type(error).__name__}: {str(error).splitlines()[0]}")
    front = IMAGE_KEY.format(camera=CAMERAS[0])
    try:
        chunked = LeRobotDataset(repo_id="local/test", root=root, video_backend=backend, delta_timestamps={"action": [0.0, 0.1, 0.2], front: [-0.1, 0.0]})
        problems = []
        for i in range(len(chunked)):
            e = int(np.searchsorted(starts, i, side="right") - 1)
            t, length = i - int(starts[e]), lengths[e]
            item = chunked[i]
            wanted = [min(t + d, length - 1) for d in range(3)]
            if not np.array_equal(item["action"].numpy(), truth_columns(truth[e])["action"][wanted]):
                problems.append(f"item {i}: action chunk differs")
            if item["action_is_pad"].tolist() != [t + d >= length for d in range(3)]:
                problems.append(f"item {i}: action_is_pad {item['action_is_pad'].tolist()}")
            for frame, want in zip(item[front], [max(t - 1, 0), t]):
                error, closest = _frame_errors(frame.permute(1, 2, 0).numpy(), truth[e][f"images.{CAMERAS[0]}"], want)
                if error >= PIXEL_TOLERANCE or closest != want:
                    problems.append(f"item {i}: frame for t={want} has MAE {error * 255:.2f}/255, closest {closest}")
        report.check("delta_timestamps (action chunks, previous frame, padding)", not problems, _first_mismatch(problems))
    except Exception as error:
        report.check("delta_timestamps (action chunks, previous frame, padding)", False, f"{type(error).__name__}: {str(error).splitlines()[0]}")
    return report.close()


# --- mode: lerobot-write (lerobot writes) ------------------------------------------------------------------
def mode_lerobot_write(work: Path, vcodec: str, small_files: bool) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    episodes = make_truth()
    root = work / "theirs"
    shutil.rmtree(root, ignore_errors=True)  # LeRobotDataset.create refuses an existing folder
    features = {}  # shapes as tuples: add_frame compares them with ndarray.shape
    for camera in CAMERAS:
        features[IMAGE_KEY.format(camera=camera)] = {"dtype": "video", "shape": (HEIGHT, WIDTH, 3), "names": ["height", "width", "channels"]}
        features[INTRINSICS_KEY.format(camera=camera)] = {"dtype": "float32", "shape": (9,), "names": None}
        features[EXTRINSICS_KEY.format(camera=camera)] = {"dtype": "float32", "shape": (16,), "names": None}
    features["observation.state"] = {"dtype": "float32", "shape": (len(POSE_NAMES),), "names": POSE_NAMES}
    features["action"] = {"dtype": "float32", "shape": (len(POSE_NAMES),), "names": POSE_NAMES}

    dataset = LeRobotDataset.create(repo_id="local/theirs", fps=FPS, features=features, root=root, robot_type="test", use_videos=True, vcodec=vcodec)
    if small_files:  # a new data and video file for every episode, two files per chunk folder
        dataset.meta.update_chunk_settings(chunks_size=2, data_files_size_in_mb=1e-6, video_files_size_in_mb=1e-6)
    for episode in episodes:
        columns = truth_columns(episode)
        for t in range(len(episode["state"])):
            frame = {key: values[t] for key, values in columns.items()}
            frame.update({IMAGE_KEY.format(camera=camera): episode[f"images.{camera}"][t] for camera in CAMERAS})
            frame["task"] = episode["instruction"]
            dataset.add_frame(frame)
        dataset.save_episode()
    dataset.finalize()
    save_truth(work / "theirs_truth.npz", episodes)
    codec = dataset.meta.features[IMAGE_KEY.format(camera=CAMERAS[0])].get("info", {}).get("video.codec")
    print(f"lerobot wrote {root} (vcodec={vcodec}, info says video.codec={codec}) and {work / 'theirs_truth.npz'}")
    return 0


# --- mode: read (ours reads lerobot's) -------------------------------------------------------------------
def mode_read(work: Path) -> int:
    from datamodules import video  # our package; never lerobot here
    from datamodules.lerobot_reader import LeRobotDataset

    report = Report(f"our reader reads lerobot's dataset (frame backend: {video._BACKEND})")
    root, truth = work / "theirs", load_truth(work / "theirs_truth.npz")
    try:
        dataset = LeRobotDataset(root)
    except Exception as error:
        report.check("LeRobotDataset(root) opens", False, f"{type(error).__name__}: {error}")
        return report.close()
    report.check("LeRobotDataset(root) opens", True, f"version {dataset.version}")
    report.check("num_episodes", dataset.num_episodes == len(truth), str(dataset.num_episodes))
    report.check("cameras", sorted(dataset.cameras) == sorted(CAMERAS), str(dataset.cameras))
    report.check("has_calibration", dataset.has_calibration, str(dataset.calibrated_cameras))
    index = 0
    for e, episode in enumerate(truth):
        length = len(episode["state"])
        record = dataset.episodes[e]
        report.check(f"episode {e}: length and instruction", record.length == length and record.instruction == episode["instruction"], f"{record.length}, {record.instruction!r}")
        try:
            table = dataset.table(e)
        except Exception as error:
            report.check(f"episode {e}: table", False, f"{type(error).__name__}: {error}")
            continue
        problems = [f"{key}: {np.asarray(table.get(key)).dtype} {np.shape(table.get(key))}" for key, values in truth_columns(episode).items()
                    if key not in table or np.asarray(table[key]).dtype != np.float32 or not np.array_equal(table[key], values)]
        report.check(f"episode {e}: table columns equal (state, action, calibration)", not problems, _first_mismatch(problems))
        report.check(
            f"episode {e}: frame_index, index, timestamp",
            np.array_equal(table["frame_index"], np.arange(length)) and np.array_equal(table["index"], np.arange(index, index + length))
            and np.allclose(table["timestamp"], np.arange(length) / FPS, atol=1e-4),
            f"index {table['index'][:3]}…, timestamp {table['timestamp'][:3]}…",
        )
        intrinsics, extrinsics = dataset.cameras_of(e)
        report.check(f"episode {e}: cameras_of shapes", intrinsics.shape == (len(dataset.cameras), length, 3, 3) and extrinsics.shape == (len(dataset.cameras), length, 4, 4), f"{intrinsics.shape} {extrinsics.shape}")
        index += length
        for camera in CAMERAS:
            try:
                frames = dataset.frames(e, camera, np.arange(length))
                errors = [_frame_errors(frames[t].astype(np.float32) / 255.0, episode[f"images.{camera}"], t) for t in range(length)]
                bad = [f"t={t}: MAE {err * 255:.2f}/255, closest {closest}" for t, (err, closest) in enumerate(errors) if err >= PIXEL_TOLERANCE or closest != t]
                ok = frames.shape == (length, HEIGHT, WIDTH, 3) and frames.dtype == np.uint8 and not bad
                report.check(f"episode {e}: frames of {camera}", ok, _first_mismatch(bad) or f"{frames.shape} {frames.dtype}, worst MAE {max(err for err, _ in errors) * 255:.2f}/255")
            except Exception as error:
                report.check(f"episode {e}: frames of {camera}", False, f"{type(error).__name__}: {error}")
    return report.close()


# --- mode: all ----------------------------------------------------------------------------------------------
def mode_all(work: Path, ours_python: str, lerobot_python: str, video_backend: str | None, vcodec: str, max_mae: float) -> int:
    repo = Path(__file__).resolve().parents[1]
    script = str(Path(__file__).resolve())
    ours_env = {**os.environ, "PYTHONPATH": str(repo) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    lerobot_env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    tolerance = ["--max-mae", str(max_mae)]
    steps = [
        ([ours_python, script, "write", str(work)], ours_env),
        ([lerobot_python, script, "check", str(work), *tolerance] + (["--video-backend", video_backend] if video_backend else []), lerobot_env),
        ([lerobot_python, script, "lerobot-write", str(work), "--vcodec", vcodec], lerobot_env),
        ([ours_python, script, "read", str(work), *tolerance], ours_env),
    ]
    status = 0
    for command, env in steps:
        print(f"\n$ {' '.join(command)}", flush=True)
        status |= subprocess.run(command, env=env, cwd=repo).returncode
    return status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["write", "check", "lerobot-write", "read", "all"])
    parser.add_argument("work", type=Path, help="work folder holding the datasets and their ground truth")
    parser.add_argument("--video-backend", default=None, help="check: lerobot's video_backend (default: torchcodec if installed, else pyav)")
    parser.add_argument("--vcodec", default="libsvtav1", help="lerobot-write: lerobot's vcodec (default: its own, libsvtav1)")
    parser.add_argument("--small-files", action="store_true", help="lerobot-write: one data/video file per episode, 2 files per chunk")
    parser.add_argument("--max-mae", type=float, default=3.0, help="check/read: largest mean absolute error of a decoded frame, in 1/255 (default 3)")
    parser.add_argument("--ours-python", default=str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "python"))
    parser.add_argument("--lerobot-python", default="/tmp/lerobot-venv/bin/python")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    global PIXEL_TOLERANCE
    PIXEL_TOLERANCE = args.max_mae / 255
    if args.mode == "write":
        return mode_write(args.work)
    if args.mode == "check":
        return mode_check(args.work, args.video_backend)
    if args.mode == "lerobot-write":
        return mode_lerobot_write(args.work, args.vcodec, args.small_files)
    if args.mode == "read":
        return mode_read(args.work)
    return mode_all(args.work, args.ours_python, args.lerobot_python, args.video_backend, args.vcodec, args.max_mae)


if __name__ == "__main__":
    sys.exit(main())
