"""`action-images collect` and `viz` end to end: real MuJoCo episodes into a LeRobot dataset."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from action_images.cli import main
from datamodules.clips import ClipConfig, ClipDataset
from datamodules.lerobot_reader import LeRobotDataset
from rendering.cameras import Cameras
from rendering.poses import pose_from_vector


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    out = tmp_path_factory.mktemp("collect") / "sim"
    assert main(["collect", "--task", "reach,push", "--episodes", "2", "--out", str(out), "--image-size", "64", "--workers", "2", "--wrist-camera"]) == 0
    return out


def test_collected_dataset_holds_calibrated_multi_task_episodes(collected):
    data = LeRobotDataset(collected)
    assert data.num_episodes == 4 and data.cameras == ["front", "left", "right", "wrist"] and data.has_calibration
    info = json.loads((collected / "meta" / "info.json").read_text())
    assert info["total_tasks"] >= 2 and info["features"]["action"]["info"]["rotation_format"] == "quat_xyzw"
    instructions = [data.instruction(e) for e in range(4)]
    assert any("push" in i.lower() or "goal" in i.lower() for i in instructions[2:])
    intrinsics, extrinsics = data.cameras_of(0)
    assert intrinsics.shape[:2] == (4, data.episode_length(0))
    assert not np.allclose(extrinsics[3, 0], extrinsics[3, -1])  # the wrist camera moves
    assert np.allclose(extrinsics[0, 0], extrinsics[0, -1])  # the front camera does not
    frames = data.frames(1, "front", [0, data.episode_length(1) - 1])
    assert frames.shape == (2, 64, 64, 3) and frames.std() > 5


def test_recorded_calibration_puts_the_gripper_where_it_is_seen(collected):
    """The action image drawn from the recorded pose and calibration overlaps the gripper in the RGB:
    the R Gaussian's peak lands on pixels that change between the first and last frame."""
    data = LeRobotDataset(collected)
    sample = ClipDataset(data, [0], ClipConfig(num_frames=2, stride=data.episode_length(0) - 1))[0]
    pose = pose_from_vector(torch.from_numpy(data.poses(0)[[0, -1]]), "quat_xyzw")
    cameras = Cameras(sample["intrinsics"], sample["extrinsics"], 64, 64)
    pixels, depth = cameras.project(pose.positions[None, :, None].expand(4, 2, 1, 3))
    assert (depth > 0).all()
    inside = ((pixels >= 0) & (pixels <= 63)).all(-1)
    assert inside[:3].all()  # the fixed cameras see the gripper throughout


def test_viz_writes_video_and_sheet(collected, tmp_path):
    assert main(["viz", str(collected), "--episode", "2", "--out", str(tmp_path / "ep2.mp4")]) == 0
    from datamodules.media import read_video

    video = read_video(tmp_path / "ep2.mp4")
    assert video.shape[1:] == (64, 4 * 64, 3)
    assert (tmp_path / "ep2.png").stat().st_size > 1000


def test_interrupted_collect_leaves_no_dataset(tmp_path):
    out = tmp_path / "interrupted"
    process = subprocess.Popen(
        [sys.executable, "-m", "action_images.cli", "collect", "--task", "pick_place", "--episodes", "5000", "--out", str(out), "--image-size", "32"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        # A shell's background job starts with SIGINT ignored and children inherit that: restore Ctrl-C.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    # Interrupt once episodes are being written (the staging folder exists), however fast the machine is;
    # 5000 episodes cannot finish first.
    deadline = time.monotonic() + 120
    while not any(tmp_path.iterdir()) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)
    assert process.returncode != 0
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no staging folder left either


def test_unknown_task_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown task 'fly'.*reach"):
        main(["collect", "--task", "fly", "--episodes", "1", "--out", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()


def test_reach_demonstrations_settle_at_the_sphere_centre():
    """Without settling, a reach demonstration stops on its first frame inside the 3 cm tolerance (the
    environment terminates there); with `settle` the expert finishes its phase, within 1 cm of the centre.
    The settled episode is the unsettled one with frames added."""
    from action_images.collect import _ENVIRONMENTS, CollectConfig, record_episode

    for seed in range(3):
        final, actions = {}, {}
        for settle in (0, 10):
            episode = record_episode(CollectConfig(tasks=("reach",), episodes=1, out=None, image_size=32, settle=settle), "reach", seed)
            env = next(e for key, e in _ENVIRONMENTS.items() if key[:2] == ("reach", 32))
            final[settle], actions[settle] = env.task.goal_distance(env.data), episode.action
        assert 0.02 < final[0] < 0.03 and final[10] < 0.012
        assert len(actions[10]) > len(actions[0])
        np.testing.assert_array_equal(actions[10][: len(actions[0]) - 1], actions[0][:-1])  # the last is a repeat


def test_varied_starts_begin_off_home_and_still_succeed():
    """With `start_spread` the arm starts at a seeded offset from home inside the spread (z only
    downwards); the expert still completes the task from there."""
    from action_images.collect import CollectConfig, record_episode

    config = CollectConfig(tasks=("reach", "push"), episodes=1, out=None, image_size=32, start_spread=0.15)
    home = record_episode(CollectConfig(tasks=("reach",), episodes=1, out=None, image_size=32), "reach", 0).state[0, :3]
    for task in ("reach", "push"):
        starts = []
        for seed in range(4):
            episode = record_episode(config, task, seed)
            if episode is not None:  # a start on the goal, or a failed demonstration, yields none
                starts.append(episode.state[0, :3] - home)
                assert record_episode(config, task, seed).state[0, :3] == pytest.approx(episode.state[0, :3], abs=1e-6)  # seeded
        assert len(starts) >= 2
        offsets = np.stack(starts)
        assert (np.abs(offsets[:, :2]) <= 0.15 + 0.005).all() and (offsets[:, 2] <= 0.005).all() and (offsets[:, 2] >= -0.155).all()
        assert np.linalg.norm(offsets, axis=1).max() > 0.03  # not at home


def test_near_starts_begin_near_the_first_waypoint_and_still_succeed():
    """With `start_near` a pick_place episode starts within the radius (horizontally) of the expert's first
    waypoint — over the named cube — at a height inside `start_heights`, and the expert still picks and places."""
    from action_images.collect import CollectConfig, record_episode
    from action_images.sim import make_env, make_expert

    config = CollectConfig(tasks=("pick_place",), episodes=1, out=None, image_size=32, start_near=0.2)
    env = make_env("pick_place", image_size=32)
    expert = make_expert(env)
    kept = 0
    for seed in range(3):
        episode = record_episode(config, "pick_place", seed)
        if episode is None:
            continue
        kept += 1
        env.reset(seed=seed)
        expert.reset()
        waypoint = expert.first_waypoint()
        start = episode.state[0, :3]
        assert np.linalg.norm(start[:2] - waypoint[:2]) <= 0.2 + 0.005
        assert 0.10 - 0.005 <= start[2] <= 0.25 + 0.005
        assert np.linalg.norm(start - env.ee_pose()[:3]) > 0.03  # not at home
    assert kept >= 2


def test_start_choices_are_exclusive_and_distances():
    from action_images.collect import CollectConfig

    with pytest.raises(ValueError, match="give one of them"):
        CollectConfig(tasks=("reach",), episodes=1, out=None, start_spread=0.1, start_near=0.1)
    with pytest.raises(ValueError, match="≥ 0"):
        CollectConfig(tasks=("reach",), episodes=1, out=None, start_near=-0.1)
