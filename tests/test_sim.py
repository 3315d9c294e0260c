"""The embedded simulator: observations, reproducibility, control, calibration, tasks and experts."""

import math

import numpy as np
import pytest
import torch

from action_images.observation import interpolate_waypoints, with_gripper_command
from action_images.sim import TASKS, make_env, make_expert, task_of_instruction
from action_images.sim.calibration import Sighting, classify, project_ee
from action_images.sim.geometry import matrix_to_quat_xyzw, quat_xyzw_to_matrix, rotation_angle, top_down_rotation
from action_images.sim.scene import FINGER_BODIES
from datamodules.clips import commanded_gripper
from rendering.cameras import Cameras

SIZE = 64


@pytest.fixture(scope="module")
def env():
    environment = make_env("pick_place", image_size=SIZE, wrist_camera=True)
    yield environment
    environment.close()


def _run_expert(env, seed, on_obs=None, distances=None):
    expert = make_expert(env)
    obs, _ = env.reset(seed=seed)
    expert.reset()
    while True:
        if on_obs is not None:
            on_obs(obs)
        obs, reward, terminated, truncated, info = env.step(expert.act(obs))
        if distances is not None:
            distances.append(info["goal_distance"])
        if terminated or truncated:
            return info["success"], reward, env.steps


def _is_rigid(transform):
    rotation = transform[:3, :3].astype(np.float64)
    return (
        np.allclose(rotation.T @ rotation, np.eye(3), atol=1e-5)
        and np.isclose(np.linalg.det(rotation), 1.0, atol=1e-5)
        and np.allclose(transform[3], [0, 0, 0, 1])
    )


def test_reset_and_step_shapes_and_dtypes(env):
    obs, info = env.reset(seed=0)
    assert env.camera_names == ("front", "left", "right", "wrist")
    assert set(obs) == {"images", "intrinsics", "extrinsics", "ee_pose", "instruction"}
    for camera in env.camera_names:
        assert obs["images"][camera].shape == (SIZE, SIZE, 3) and obs["images"][camera].dtype == np.uint8
        assert obs["images"][camera].std() > 5  # a scene, not a blank frame
        assert obs["intrinsics"][camera].shape == (3, 3) and obs["intrinsics"][camera].dtype == np.float32
        assert obs["extrinsics"][camera].shape == (4, 4) and obs["extrinsics"][camera].dtype == np.float32
        assert _is_rigid(obs["extrinsics"][camera])
        # pixel centres at integer coordinates: the principal point of a centred camera is (W - 1) / 2
        assert obs["intrinsics"][camera][0, 2] == pytest.approx((SIZE - 1) / 2)
    assert obs["ee_pose"].shape == (8,) and obs["ee_pose"].dtype == np.float32
    assert np.linalg.norm(obs["ee_pose"][3:7]) == pytest.approx(1.0, abs=1e-5)
    assert obs["ee_pose"][7] == pytest.approx(1.0, abs=0.01)  # the episode starts with the gripper open
    assert isinstance(obs["instruction"], str) and obs["instruction"]
    assert env.observation_space.contains(obs)
    assert info["success"] is False

    obs, reward, terminated, truncated, info = env.step(obs["ee_pose"])  # hold still
    assert env.action_space.shape == (8,) and env.action_space.dtype == np.float32
    assert reward == 0.0 and terminated is False and truncated is False and info["success"] is False
    assert env.observation_space.contains(obs)


def test_reset_with_a_seed_is_reproducible(env):
    first, _ = env.reset(seed=11)
    action = first["ee_pose"] + np.array([0.05, 0.0, -0.05, 0, 0, 0, 0, 0], dtype=np.float32)
    first_next = env.step(action)[0]
    second, _ = env.reset(seed=11)
    second_next = env.step(action)[0]
    assert first["instruction"] == second["instruction"]
    for camera in env.camera_names:
        np.testing.assert_array_equal(first["images"][camera], second["images"][camera])
        np.testing.assert_array_equal(first_next["images"][camera], second_next["images"][camera])
    np.testing.assert_array_equal(first_next["ee_pose"], second_next["ee_pose"])
    other, _ = env.reset(seed=12)
    assert not np.array_equal(other["images"]["front"], first["images"]["front"])


def test_an_episode_can_start_off_home(env):
    home, _ = env.reset(seed=0)
    offset = np.array([0.05, -0.1, -0.08])
    moved, info = env.reset(seed=0, options={"ee_offset": offset})
    np.testing.assert_allclose(moved["ee_pose"][:3], home["ee_pose"][:3] + offset, atol=5e-3)
    np.testing.assert_allclose(moved["ee_pose"][3:7], home["ee_pose"][3:7], atol=1e-2)  # the home rotation
    assert not info["success"]  # this start is not on the goal
    with pytest.raises(ValueError, match="ee_offset"):
        env.reset(seed=0, options={"ee_offset": [0.1, np.nan, 0.0]})


def test_camera_jitter_is_seeded_and_bounded():
    jittered = make_env("reach", image_size=SIZE, camera_jitter=0.03, render=False)
    nominal = make_env("reach", image_size=SIZE, render=False)
    a, b = jittered.reset(seed=3)[0], jittered.reset(seed=3)[0]
    c = jittered.reset(seed=4)[0]
    reference = nominal.reset(seed=3)[0]
    for camera in ("front", "left", "right"):
        np.testing.assert_array_equal(a["extrinsics"][camera], b["extrinsics"][camera])
        assert not np.array_equal(a["extrinsics"][camera], c["extrinsics"][camera])
        moved = np.abs(a["extrinsics"][camera][:3, 3] - reference["extrinsics"][camera][:3, 3])
        assert 0 < moved.max() <= 0.03 + 1e-6


def test_the_arm_tracks_an_absolute_ee_target():
    env = make_env("reach", render=False)
    obs, _ = env.reset(seed=0)
    goal_position = obs["ee_pose"][:3] + np.array([0.12, -0.15, -0.12])
    goal_rotation = top_down_rotation(0.6) @ quat_xyzw_to_matrix([0.0, math.sin(0.1), 0.0, math.cos(0.1)])  # tilted
    action = np.concatenate([goal_position, matrix_to_quat_xyzw(goal_rotation), [0.0]]).astype(np.float32)
    positions = []
    for _ in range(15):
        obs = env.step(action)[0]
        positions.append(obs["ee_pose"][:3])
    assert np.linalg.norm(obs["ee_pose"][:3] - goal_position) < 0.01
    assert math.degrees(rotation_angle(quat_xyzw_to_matrix(obs["ee_pose"][3:7]), goal_rotation)) < 3.0
    assert obs["ee_pose"][7] < 0.05  # closed
    # smooth: no control step moves the EE further than the controller's per-step limit (and a margin)
    steps = np.linalg.norm(np.diff(np.array(positions), axis=0), axis=1)
    assert steps.max() < env.config.controller.max_linear_step + 0.02


def test_ee_frame_convention():
    """A top-down target with quaternion (xyzw) [1, 0, 0, 0]: the EE +z points down (approach), +y
    from the right finger to the left finger, and the EE point sits between the fingers."""
    env = make_env("reach", render=False)
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        obs = env.step(np.array([0.5, 0.1, 0.25, 1, 0, 0, 0, 1], dtype=np.float32))[0]
    rotation = quat_xyzw_to_matrix(obs["ee_pose"][3:7])
    np.testing.assert_allclose(rotation[:, 2], [0, 0, -1], atol=0.02)
    left, right = (env.data.xpos[env.model.body(name).id] for name in FINGER_BODIES)
    opening = (left - right) / np.linalg.norm(left - right)
    assert opening @ rotation[:, 1] > 0.99
    midpoint = (left + right) / 2
    along_approach = (obs["ee_pose"][:3] - midpoint) @ rotation[:, 2]
    assert np.linalg.norm(np.cross(obs["ee_pose"][:3] - midpoint, rotation[:, 2])) < 1e-3
    assert 0.0 < along_approach < 0.06


def test_extrinsics_are_camera_to_world_opencv():
    """Projecting the EE with the recorded calibration lands on gripper pixels (hand and fingers) in
    at least one frame of every camera; the inverted extrinsics (world-to-camera) never do. (The reach
    expert keeps the fingers closed, so the EE point between them is covered by the fingers.)"""
    env = make_env("reach", image_size=SIZE, wrist_camera=True, render=False)
    hits = {camera: 0 for camera in env.camera_names}
    inverted_hits = {camera: 0 for camera in env.camera_names}
    wrist_poses = []

    def check(obs):
        wrist_poses.append(obs["extrinsics"]["wrist"])
        for camera in env.camera_names:
            mask = env.segmentation(camera)
            assert mask.shape == (SIZE, SIZE) and mask.dtype == bool
            cameras = Cameras(torch.from_numpy(obs["intrinsics"][camera]), torch.from_numpy(obs["extrinsics"][camera]),
                              SIZE, SIZE)
            pixel, depth = cameras.project(torch.from_numpy(obs["ee_pose"][:3]).reshape(1, 3))
            hits[camera] += classify(pixel[0].numpy(), float(depth[0]), mask) is Sighting.HIT
            wrong = Cameras(cameras.intrinsics, cameras.world_to_camera, SIZE, SIZE)
            pixel, depth = wrong.project(torch.from_numpy(obs["ee_pose"][:3]).reshape(1, 3))
            inverted_hits[camera] += classify(pixel[0].numpy(), float(depth[0]), mask) is Sighting.HIT

    _run_expert(env, seed=0, on_obs=check)
    assert all(count > 0 for count in hits.values()), hits
    assert all(count == 0 for count in inverted_hits.values()), inverted_hits
    assert not np.allclose(wrist_poses[0], wrist_poses[-1], atol=1e-3)  # the wrist camera moves


def test_ee_marker_makes_every_view_hit(env):
    obs, _ = env.reset(seed=1)
    for camera in env.camera_names:
        pixel, depth = project_ee(obs, camera, SIZE)
        sighting = classify(pixel, depth, env.segmentation(camera, ee_marker=True), env.depth(camera))
        assert sighting is Sighting.HIT, camera


@pytest.mark.parametrize("task", list(TASKS))
def test_expert_succeeds(task):
    env = make_env(task, render=False)
    for seed in (0, 1):
        distances = []
        success, reward, steps = _run_expert(env, seed, distances=distances)
        assert success and reward == 1.0, f"{task} seed {seed} failed after {steps} steps"
        assert steps < env.max_steps
        if task != "turn":  # the graded distance to done falls to within the success test's reach
            assert distances[-1] < 0.06 and distances[-1] < 0.5 * distances[0], (task, distances[0], distances[-1])


def test_instructions_vary_with_the_seed():
    env = make_env("stack", render=False)
    instructions = {env.reset(seed=seed)[0]["instruction"] for seed in range(12)}
    assert len(instructions) >= 4


def test_an_instruction_names_its_task():
    for name in TASKS:  # every wording the environments draw, "move the …" of reach, push and pick_place alike
        env = make_env(name, render=False)
        assert {task_of_instruction(env.reset(seed=seed)[0]["instruction"]) for seed in range(16)} == {name}
    assert task_of_instruction("fly to the moon") is None


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(ValueError, match="known tasks: reach, push, pick_place, stack, turn"):
        make_env("juggle")


def test_unknown_camera_is_an_error():
    with pytest.raises(ValueError, match="known fixed cameras"):
        make_env("reach", cameras=("top",))


@pytest.mark.parametrize(
    "action, message",
    [
        (np.zeros(7), r"shape \(8,\)"),
        (np.zeros((2, 8)), r"shape \(8,\)"),
        (np.array([0.5, 0, 0.2, 1, 0, 0, 0, np.nan]), "NaN"),
        (np.array([0.5, 0, np.inf, 1, 0, 0, 0, 1]), "NaN or infinity"),
        (np.array([0.5, 0, 0.2, 0, 0, 0, 0, 1]), "zero norm"),
    ],
)
def test_malformed_action_is_a_clear_error(action, message):
    env = make_env("reach", render=False)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        env.step(action)


def _replay(env, seed, track, stride=3, chunk=4, replan=3):
    """Command recorded poses the way the policies do: waypoints `stride` steps apart, interpolated,
    replanned every `replan` steps from the measured pose with the last gripper command."""
    obs, _ = env.reset(seed=seed)
    step, queue, last_command = 0, [], None
    while True:
        if not queue:
            index = np.minimum(step + stride * np.arange(1, chunk + 1), len(track) - 1)
            current = with_gripper_command(torch.from_numpy(obs["ee_pose"]), last_command)
            queue = list(interpolate_waypoints(current, torch.from_numpy(track[index]), stride).numpy()[:replan])
        action = queue.pop(0)
        last_command = float(action[7])
        obs, _, terminated, truncated, info = env.step(action)
        step += 1
        if terminated or truncated:
            return info["success"]


def test_the_learned_gripper_state_is_the_command_in_force():
    """Fingers closed on a cube read about half open, so the measured openness cannot be the gripper
    state a policy learns and thresholds: replaying the expert's measured poses drops the cube, replaying
    them with `commanded_gripper` (what the clips draw) completes the task."""
    env = make_env("pick_place", render=False)
    seed = 100_000
    obs, _ = env.reset(seed=seed)
    expert = make_expert(env)
    expert.reset()
    states, commands = [obs["ee_pose"]], []
    while True:
        command = expert.act(obs)
        obs, _, terminated, truncated, _ = env.step(command)
        states.append(obs["ee_pose"])
        commands.append(command)
        if terminated or truncated:
            break
    states, commands = np.array(states, np.float32), np.array(commands, np.float32)
    held = states[:, 7][(states[:, 7] > 0.3) & (states[:, 7] < 0.7)]
    assert len(held) > 5  # the fingers rest on the cube, neither open nor closed
    commanded = states.copy()
    commanded[:, 7] = commanded_gripper(states[:, 7], np.concatenate([commands[:, 7], commands[-1:, 7]]))
    assert set(np.unique(commanded[:, 7])) <= {0.0, 1.0}
    assert _replay(env, seed, commanded)
    assert not _replay(env, seed, states)


class _HoldStill:
    """A real (if useless) policy: command the pose the arm is at, gripper closed; counts its resets and, like
    the model policies, forgets its gripper command on a reset."""

    def __init__(self) -> None:
        self.resets = 0
        self.gripper_command: float | None = None

    def reset(self) -> None:
        self.resets += 1
        self.gripper_command = None

    def select_action(self, observation: dict) -> np.ndarray:
        return np.concatenate([observation["ee_pose"][:7], [0.0]]).astype(np.float32)


def test_expert_until_hands_the_episode_over_when_the_named_phase_begins():
    from action_images.evaluate import ExpertUntil

    env = make_env("push", render=False)
    observation, _ = env.reset(seed=3)  # the expert alone: its actions, and the step its push phase begins
    expert, expert_actions = make_expert(env), []
    while expert.phase_name != "push":
        expert_actions.append(expert.act(observation))
        observation, *_ = env.step(expert_actions[-1])
    held = _HoldStill()
    actor = ExpertUntil(held, env, "push")
    observation, _ = env.reset(seed=3)
    actor.reset()
    actions, observations = [], []
    for _ in range(len(expert_actions) + 2):
        observations.append(observation)
        actions.append(actor.select_action(observation))
        observation, *_ = env.step(actions[-1])
    assert actor.handover_step == len(expert_actions) > 0
    np.testing.assert_allclose(np.stack(actions[: len(expert_actions)]), np.stack(expert_actions), atol=1e-6)
    for action, seen in zip(actions[len(expert_actions):], observations[len(expert_actions):]):  # the policy's from then on
        np.testing.assert_array_equal(action, held.select_action(seen))
    assert held.resets == 2  # the episode's reset and the handover's
    assert held.gripper_command == float(expert_actions[-1][7])  # the command in force survives the handover's reset
