"""The data layer: LeRobot v3.0 writing and reading, v2.1 and RLBench layouts, clips, the data module."""

import json
from pathlib import Path
import pickle

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from synthetic_data import CAMERAS, synthetic_episode, write_synthetic_dataset

from datamodules.clips import ClipConfig, ClipDataset, clip_frame_indices, commanded_gripper
from datamodules.datamodule import RobotDataModule, split_episodes
from datamodules.frame_cache import open_frame_cache
from datamodules.lerobot_reader import LeRobotDataset
from datamodules.lerobot_writer import LeRobotWriter
from datamodules.media import write_video
from datamodules.rlbench import RLBenchDataset
from datamodules.schema import DEFAULT_FEATURES, calibration_features, image_key, pose_feature, video_feature
from rendering.cameras import Cameras
from rendering.poses import pose_from_vector
from rendering.renderer import render_action_images

LENGTHS = (12, 9, 15)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "synthetic"
    episodes = write_synthetic_dataset(root, LENGTHS)
    return root, episodes


def test_written_dataset_reads_back(dataset):
    root, episodes = dataset
    data = LeRobotDataset(root)
    assert data.version == "v3.0" and data.fps == 10
    assert data.cameras == list(CAMERAS) and data.has_calibration
    assert [e.length for e in data.episodes] == list(LENGTHS)
    for index, episode in enumerate(episodes):
        table = data.table(index)
        np.testing.assert_array_equal(table["action"], episode.action)  # exact
        np.testing.assert_array_equal(table["observation.state"], episode.state)
        intrinsics, extrinsics = data.cameras_of(index)
        np.testing.assert_array_equal(intrinsics[0, 0], episode.intrinsics["front"])
        np.testing.assert_array_equal(extrinsics[1, -1], episode.extrinsics["side"])
        assert data.instruction(index) == episode.instruction
        frames = data.frames(index, "side", [0, episode.length - 1])
        error = np.abs(frames.astype(int) - episode.images["side"][[0, -1]].astype(int)).mean()
        assert error < 5.0  # within codec tolerance (yuv420p halves chroma resolution; 32² checkerboards suffer)


def test_metadata_follows_the_lerobot_v3_rules(dataset):
    root, _ = dataset
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    assert info["total_episodes"] == 3 and info["total_frames"] == sum(LENGTHS) and info["total_tasks"] == 2
    for name in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        assert info["features"][name]["shape"] == [1] and info["features"][name]["names"] is None
    assert info["features"]["observation.images.front"]["names"] == ["height", "width", "channels"]
    assert info["features"]["action"]["info"]["rotation_format"] == "quat_xyzw"
    assert info["features"]["observation.cameras.front.extrinsics"]["info"]["frame"] == "camera_to_world"
    assert all("/" not in name for name in info["features"])

    data = pq.read_table(root / "data" / "chunk-000" / "file-000.parquet").to_pandas()
    declared = {k for k, v in info["features"].items() if v["dtype"] != "video"}
    assert set(data.columns) == declared
    assert (data["index"].to_numpy() == np.arange(sum(LENGTHS))).all()
    np.testing.assert_allclose(data["timestamp"], data["frame_index"] / 10, atol=1e-4)

    episodes = pd.read_parquet(root / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    assert (episodes["dataset_to_index"].to_numpy()[:-1] == episodes["dataset_from_index"].to_numpy()[1:]).all()
    assert episodes["videos/observation.images.front/to_timestamp"].tolist() == [n / 10 for n in LENGTHS]

    tasks = pd.read_parquet(root / "meta" / "tasks.parquet")
    assert tasks.index.name == "task" and list(tasks.columns) == ["task_index"]

    stats = json.loads((root / "meta" / "stats.json").read_text())
    for name in info["features"]:
        assert {"min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"} <= stats[name].keys(), name
    assert np.asarray(stats["observation.images.front"]["mean"]).shape == (3, 1, 1)
    assert len(stats["action"]["mean"]) == 8


def test_an_interrupted_write_leaves_nothing(tmp_path):
    root = tmp_path / "broken"
    with pytest.raises(RuntimeError, match="interrupted"):
        with LeRobotWriter(root, fps=10, cameras=list(CAMERAS), image_size=(32, 32)) as writer:
            writer.add(synthetic_episode(5, 32, "reach"))
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    write_synthetic_dataset(root, (4,))
    with pytest.raises(FileExistsError, match="already exists"):
        LeRobotWriter(root, fps=10, cameras=list(CAMERAS), image_size=(32, 32))


def test_bad_episodes_are_refused_by_the_writer(tmp_path):
    episode = synthetic_episode(5, 32, "reach")
    episode.action[2, 0] = np.nan
    with pytest.raises(ValueError, match="action contains NaN"):
        with LeRobotWriter(tmp_path / "d", fps=10, cameras=list(CAMERAS), image_size=(32, 32)) as writer:
            writer.add(episode)
    episode = synthetic_episode(5, 32, "reach")
    del episode.intrinsics["side"]
    with pytest.raises(ValueError, match="'side' has no intrinsics"):
        with LeRobotWriter(tmp_path / "d", fps=10, cameras=list(CAMERAS), image_size=(32, 32)) as writer:
            writer.add(episode)
    assert not (tmp_path / "d").exists()


def copy_dataset(source, target):
    import shutil

    shutil.copytree(source, target)
    return target


def test_corrupt_video_is_a_clear_error(dataset, tmp_path):
    root = copy_dataset(dataset[0], tmp_path / "copy")
    video = root / "videos" / "observation.images.side" / "chunk-000" / "file-001.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\x17" * 300)
    with pytest.raises(ValueError, match=r"file-001\.mp4"):
        LeRobotDataset(root).frames(1, "side", [0])


def test_missing_parquet_is_a_clear_error(dataset, tmp_path):
    root = copy_dataset(dataset[0], tmp_path / "copy")
    (root / "data" / "chunk-000" / "file-000.parquet").unlink()
    with pytest.raises(FileNotFoundError, match=r"data file missing: .*file-000\.parquet"):
        LeRobotDataset(root)


def test_truncated_episode_is_a_clear_error(dataset, tmp_path):
    root = copy_dataset(dataset[0], tmp_path / "copy")
    path = root / "data" / "chunk-000" / "file-000.parquet"
    table = pq.read_table(path)
    pq.write_table(table.slice(0, table.num_rows - 4), path)  # the last episode loses four frames
    data = LeRobotDataset(root)
    data.table(0)
    with pytest.raises(ValueError, match=r"file-000\.parquet: episode 2 .*truncated"):
        data.table(2)


def test_truncated_video_is_a_clear_error(dataset, tmp_path):
    root = copy_dataset(dataset[0], tmp_path / "copy")
    video = root / "videos" / "observation.images.front" / "chunk-000" / "file-000.mp4"
    write_video(video, np.zeros((5, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match=r"file-000\.mp4: frame 11 requested .*truncated"):
        LeRobotDataset(root).frames(0, "front", [0, 11])


def test_undeclared_rotation_format_is_a_clear_error(dataset, tmp_path):
    root = copy_dataset(dataset[0], tmp_path / "copy")
    info_path = root / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    del info["features"]["observation.state"]["info"]["rotation_format"]
    info_path.write_text(json.dumps(info))
    with pytest.raises(ValueError, match=r"info\.json: feature 'observation\.state' declares no rotation format"):
        ClipDataset(LeRobotDataset(root))


def write_v21_dataset(root, episodes):
    """A LeRobot v2.1 dataset (one parquet and one mp4 per episode), built by hand."""
    (root / "meta").mkdir(parents=True)
    features = {}
    for camera in CAMERAS:
        features[image_key(camera)] = video_feature(32, 32, 10)
        features.update(calibration_features(camera))
    features["observation.state"] = pose_feature("quat_xyzw", "measured end-effector pose")
    features["action"] = pose_feature("quat_xyzw", "absolute end-effector target")
    features.update(DEFAULT_FEATURES)
    info = {
        "codebase_version": "v2.1", "fps": 10, "chunks_size": 1000, "features": features,
        "total_episodes": len(episodes), "total_frames": sum(e.length for e in episodes), "total_tasks": 1,
        "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
    }
    (root / "meta" / "info.json").write_text(json.dumps(info))
    lines, start = [], 0
    for index, episode in enumerate(episodes):
        lines.append(json.dumps({"episode_index": index, "tasks": [episode.instruction], "length": episode.length}))
        columns = {
            "observation.state": episode.state, "action": episode.action,
            "timestamp": np.arange(episode.length, dtype=np.float32) / 10,
            "frame_index": np.arange(episode.length), "episode_index": np.full(episode.length, index),
            "index": np.arange(start, start + episode.length), "task_index": np.zeros(episode.length, np.int64),
        }
        for camera in CAMERAS:
            columns[f"observation.cameras.{camera}.intrinsics"] = np.broadcast_to(episode.intrinsics[camera].reshape(9), (episode.length, 9))
            columns[f"observation.cameras.{camera}.extrinsics"] = np.broadcast_to(episode.extrinsics[camera].reshape(16), (episode.length, 16))
            write_video(root / f"videos/chunk-000/observation.images.{camera}/episode_{index:06d}.mp4", episode.images[camera])
        table = pa.table({k: (pa.array(v) if np.ndim(v) == 1 else pa.array(list(np.asarray(v, np.float32)))) for k, v in columns.items()})
        (root / "data" / "chunk-000").mkdir(parents=True, exist_ok=True)
        pq.write_table(table, root / f"data/chunk-000/episode_{index:06d}.parquet")
        start += episode.length
    (root / "meta" / "episodes.jsonl").write_text("\n".join(lines) + "\n")


def test_v21_dataset_reads(tmp_path):
    episodes = [synthetic_episode(6, 32, "stack the cubes"), synthetic_episode(8, 32, "stack the cubes")]
    write_v21_dataset(tmp_path / "v21", episodes)
    data = LeRobotDataset(tmp_path / "v21")
    assert data.version == "v2.1" and data.num_episodes == 2 and data.has_calibration
    np.testing.assert_array_equal(data.poses(1, "action"), episodes[1].action)
    assert data.frames(1, "front", [7]).shape == (1, 32, 32, 3)
    sample = ClipDataset(data, config=ClipConfig(num_frames=3, stride=2))[8]
    assert sample["has_actions"] and sample["rgb"].shape == (2, 3, 3, 32, 32)


def write_rlbench_layout(root, episode):
    """The authors' processed RLBench layout with RLBench's negative focal lengths."""
    variation = root / "reach_target" / "variation0"
    folder = variation / "episodes" / "episode0"
    folder.mkdir(parents=True)
    with open(variation / "variation_descriptions.pkl", "wb") as handle:
        pickle.dump(["reach the red target", "touch the red ball"], handle)
    np.save(folder / "actions.npy", episode.state)
    for v, camera in enumerate(CAMERAS):
        flip = np.diag([-1.0, -1.0, 1.0]).astype(np.float32)
        k_rl = episode.intrinsics[camera] @ flip  # negative focal lengths
        e_rl = episode.extrinsics[camera] @ np.diag([-1.0, -1.0, 1.0, 1.0]).astype(np.float32)
        view = folder / f"view{v}"
        write_video(view / "rgb" / "video.mp4", episode.images[camera])
        (view / "camera_params.json").write_text(json.dumps({"intrinsics": [k_rl.tolist()] * episode.length, "extrinsics": e_rl.tolist()}))


def test_rlbench_layout_reads_and_converts_calibration(tmp_path):
    episode = synthetic_episode(7, 32, "unused")
    write_rlbench_layout(tmp_path, episode)
    data = RLBenchDataset(tmp_path)
    assert data.cameras == ["view0", "view1"] and data.instruction(0) == "reach the red target"
    intrinsics, extrinsics = data.cameras_of(0)
    np.testing.assert_allclose(intrinsics[0, 3], episode.intrinsics["front"], atol=1e-6)
    np.testing.assert_allclose(extrinsics[1, 0], episode.extrinsics["side"], atol=1e-6)
    sample = ClipDataset(data, config=ClipConfig(num_frames=2, stride=1))[0]
    assert sample["action_images"].shape == (2, 2, 3, 32, 32)


def test_clip_indices_repeat_the_last_frame():
    assert clip_frame_indices(3, 10, 4, 3).tolist() == [3, 6, 9, 9]


def test_clips_render_the_stored_poses(dataset):
    data = LeRobotDataset(dataset[0])
    clips = ClipDataset(data, config=ClipConfig(num_frames=3, stride=4))
    assert len(clips) == sum(LENGTHS)
    sample = clips[LENGTHS[0] + 2]  # episode 1, frame 2
    assert sample["episode_index"] == 1 and sample["frame_index"].tolist() == [2, 6, 8]
    assert sample["instruction"] == "push the cube"
    pose = pose_from_vector(torch.from_numpy(data.poses(1)[[2, 6, 8]]), "quat_xyzw")
    cameras = Cameras(sample["intrinsics"], sample["extrinsics"], 32, 32)
    expected = render_action_images(pose.positions, pose.rotations, pose.gripper, cameras)
    assert torch.allclose(sample["action_images"], expected)
    # The synthetic RGB shows the gripper where its action image is: they correlate.
    red = sample["rgb"][:, :, 0] - sample["rgb"][:, :, 1:].mean(2)
    seen, drawn = red.flatten(2).argmax(-1), sample["action_images"][:, :, 0].flatten(2).argmax(-1)
    distance = torch.stack([(seen // 32 - drawn // 32), (seen % 32 - drawn % 32)], -1).float().norm(dim=-1)
    assert distance.max() <= 3.0


def test_clips_draw_the_gripper_command_in_force(dataset):
    data = LeRobotDataset(dataset[0])
    measured, commands = data.poses(1)[:, 7], data.poses(1, "action")[:, 7]
    assert commanded_gripper(np.array([0.7, 0.52, 0.53]), np.array([0.0, 0.0, 1.0])).tolist() == [1.0, 0.0, 0.0]
    sample = ClipDataset(data, config=ClipConfig(num_frames=3, stride=4))[LENGTHS[0] + 2]  # episode 1, frames 2, 6, 8
    assert sample["gripper"].tolist() == pytest.approx(commands[[1, 5, 7]].tolist())
    measured_clip = ClipDataset(data, config=ClipConfig(num_frames=3, stride=4, gripper_key=None))[LENGTHS[0] + 2]
    assert measured_clip["gripper"].tolist() == pytest.approx(measured[[2, 6, 8]].tolist())


def test_clips_resize(dataset):
    sample = ClipDataset(LeRobotDataset(dataset[0]), config=ClipConfig(num_frames=2, image_size=16))[0]
    assert sample["rgb"].shape == (2, 2, 3, 16, 16) and sample["action_images"].shape == (2, 2, 3, 16, 16)


def test_dataset_without_calibration_loads_for_video_only(tmp_path):
    root = tmp_path / "uncalibrated"
    write_synthetic_dataset(root, (6, 5), calibrated=False, has_state=False, has_action=False)
    data = LeRobotDataset(root)
    assert not data.has_calibration
    sample = ClipDataset(data, config=ClipConfig(num_frames=2))[0]
    assert sample["has_actions"] is False and sample["action_images"].abs().sum() == 0
    assert sample["rgb"].shape == (2, 2, 3, 32, 32)


def test_split_is_by_episode_and_reproducible():
    train, val = split_episodes(20, 0.2, seed=3)
    assert len(val) == 4 and not set(train) & set(val) and sorted(train + val) == list(range(20))
    assert split_episodes(20, 0.2, seed=3) == (train, val)
    assert len(split_episodes(3, 0.01, seed=0)[1]) == 1


def test_data_module_batches_with_worker_processes(dataset):
    module = RobotDataModule([str(dataset[0])], num_frames=3, stride=2, batch_size=4, num_workers=2, val_fraction=0.34)
    module.setup("fit")
    train_episodes = {module.train_set.datasets[0].episodes[i] for i in range(len(module.train_set.datasets[0].episodes))}
    val_episodes = set(module.val_set.datasets[0].episodes)
    assert train_episodes.isdisjoint(val_episodes)
    batch = next(iter(module.train_dataloader()))
    assert batch["rgb"].shape == (4, 2, 3, 3, 32, 32) and len(batch["instruction"]) == 4
    assert batch["action_images"].shape == (4, 2, 3, 3, 32, 32)
    val_batch = next(iter(module.val_dataloader()))
    assert set(val_batch["episode_index"].tolist()) <= val_episodes
    stats = module.normalization_stats()
    assert stats["action"]["mean"].shape == (8,)


def test_balanced_episodes_weigh_clips_by_their_episode(dataset):
    """`balance="episodes"`: each episode is drawn about equally often, whatever its length."""
    module = RobotDataModule([str(dataset[0])], num_frames=3, stride=2, num_workers=0, val_fraction=0.34, balance="episodes")
    module.setup("fit")
    clips = module.train_set.datasets[0]
    weights = module.clip_weights()
    assert len(weights) == len(clips)
    per_episode = {}
    for index, weight in enumerate(weights.tolist()):
        episode = clips.locate(index)[0]
        per_episode[episode] = per_episode.get(episode, 0.0) + weight
    assert all(abs(total - 1.0) < 1e-6 for total in per_episode.values())
    assert RobotDataModule([str(dataset[0])]).clip_weights() is None
    with pytest.raises(ValueError, match="balance"):
        RobotDataModule([str(dataset[0])], balance="tasks")


@pytest.mark.parametrize("balance", ["episodes", "clips"])
def test_start_weight_draws_the_first_clips_of_each_episode_more_often(dataset, balance):
    """`start_weight=3, start_frames=2`: the clips starting at an episode's frames 0 and 1 weigh 3× its others."""
    plain = RobotDataModule([str(dataset[0])], num_frames=3, stride=2, num_workers=0, val_fraction=0.34, balance=balance)
    module = RobotDataModule([str(dataset[0])], num_frames=3, stride=2, num_workers=0, val_fraction=0.34, balance=balance,
                             start_weight=3.0, start_frames=2)
    for m in (plain, module):
        m.setup("fit")
    clips = module.train_set.datasets[0]
    base = plain.clip_weights() if balance == "episodes" else torch.ones(len(clips))
    weights = module.clip_weights()
    starts = torch.tensor([clips.locate(index)[1] for index in range(len(clips))])
    torch.testing.assert_close(weights, base * torch.where(starts < 2, 3.0, 1.0))
    assert (starts < 2).sum() == 2 * len(clips.episodes)
    with pytest.raises(ValueError, match="start_weight"):
        RobotDataModule([str(dataset[0])], start_weight=0.0)


def test_instructions_matching_selects_episodes_and_keeps_their_side_of_the_split(dataset):
    everything = RobotDataModule([str(dataset[0])], num_frames=3, stride=2, num_workers=0, val_fraction=0.34)
    pushing = RobotDataModule([str(dataset[0])], num_frames=3, stride=2, num_workers=0, val_fraction=0.34, instructions_matching="^push")
    everything.setup("fit"), pushing.setup("fit")
    source = pushing.sources[0]
    train, val = set(pushing.train_set.datasets[0].episodes), set(pushing.val_set.datasets[0].episodes) if pushing.val_set else set()
    assert train and all(source.instruction(e) == "push the cube" for e in train | val)
    assert train <= set(everything.train_set.datasets[0].episodes) and val <= set(everything.val_set.datasets[0].episodes)
    pushed = [e for e in range(source.num_episodes) if source.instruction(e) == "push the cube"]
    assert sorted(train | val) == pushed  # every push episode, on its side of the unfiltered split
    assert pushing.instructions() == ["push the cube"]
    with pytest.raises(ValueError, match="no training episode .* 'stack'"):
        RobotDataModule([str(dataset[0])], instructions_matching="stack").setup("fit")
    with pytest.raises(ValueError, match="not a regular expression"):
        RobotDataModule([str(dataset[0])], instructions_matching="push(")


def test_missing_statistics_are_an_error(dataset, tmp_path):
    root = copy_dataset(dataset[0], tmp_path / "copy")
    stats = json.loads((root / "meta" / "stats.json").read_text())
    del stats["action"]["std"]
    (root / "meta" / "stats.json").write_text(json.dumps(stats))
    module = RobotDataModule([str(root)], num_workers=0)
    with pytest.raises(KeyError, match=r"statistics \['std'\] of 'action' are missing"):
        module.normalization_stats()


def test_worker_processes_never_touch_readers_opened_before_the_fork(tmp_path):
    """Regression: a decord reader inherited through fork and freed in the worker deadlocked it."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from synthetic_data import write_synthetic_dataset
        from datamodules.datamodule import RobotDataModule
        write_synthetic_dataset({str(tmp_path / 'd')!r}, (3,) * 36, size=16)  # 72 files: more than stay open
        module = RobotDataModule([{str(tmp_path / 'd')!r}], num_frames=2, batch_size=4, num_workers=2, val_fraction=0)
        module.setup()
        for i in range(0, 108, 3):
            module.train_set[i]  # the parent opens readers
        for clips in module.train_set.datasets:
            clips._cache.clear()  # so that the workers decode, and evict what they inherited
        print(sum(1 for _ in module.train_dataloader()))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip().splitlines()[-1]) == 27


def test_frame_cache_gives_the_decoded_clips_and_is_built_once(dataset, tmp_path):
    data = LeRobotDataset(dataset[0])
    config = ClipConfig(num_frames=3, stride=4, image_size=16)
    decoding = ClipDataset(data, config=config)
    cached = ClipDataset(data, [2, 0], config=config)
    cached.decoded = open_frame_cache(ClipDataset(data, config=config), tmp_path / "cache", workers=2)
    [array_file] = (tmp_path / "cache").glob("*.npy")
    built = array_file.stat().st_mtime_ns
    for index in (0, 5, len(cached) - 1):
        episode, start = cached.locate(index)
        expected = decoding[int(decoding.starts[episode]) + start]
        got = cached[index]
        assert torch.equal(got["rgb"], expected["rgb"]) and torch.equal(got["action_images"], expected["action_images"])
        assert torch.equal(got["intrinsics"], expected["intrinsics"])
    # A second opening memory-maps the same file; no partial file is left behind.
    again = open_frame_cache(ClipDataset(data, config=config), tmp_path / "cache")
    assert array_file.stat().st_mtime_ns == built and isinstance(again.array, np.memmap)
    assert sorted(p.suffix for p in (tmp_path / "cache").iterdir()) == [".json", ".npy"]
    # Another clip shape is another cache.
    open_frame_cache(ClipDataset(data, config=ClipConfig(image_size=8)), tmp_path / "cache", workers=1)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2


def test_frame_cache_refuses_a_truncated_array(dataset, tmp_path):
    data = LeRobotDataset(dataset[0])
    clips = ClipDataset(data, config=ClipConfig(image_size=8))
    open_frame_cache(clips, tmp_path, workers=1)
    [array_file] = tmp_path.glob("*.npy")
    array = np.load(array_file)
    np.save(array_file, array[:-1])
    with pytest.raises(ValueError, match="truncated"):
        open_frame_cache(clips, tmp_path, workers=1)


def test_data_module_with_a_frame_cache_batches_from_it(dataset, tmp_path):
    module = RobotDataModule([str(dataset[0])], num_frames=3, stride=2, image_size=16, batch_size=4, num_workers=2,
                             val_fraction=0.34, frame_cache=str(tmp_path))
    module.prepare_data()
    assert len(list(tmp_path.glob("*.json"))) == 1
    module.setup("fit")
    assert module.train_set.datasets[0].decoded is module.val_set.datasets[0].decoded is not None
    batch = next(iter(module.train_dataloader()))
    assert batch["rgb"].shape == (4, 2, 3, 3, 16, 16)
