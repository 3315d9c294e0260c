"""The closed-loop policy and the evaluation harness, in the real simulator."""

import json

import lightning as L
import numpy as np
import pytest
import roma
import torch
from synthetic_data import write_synthetic_dataset
from test_module import data_module, tiny_module

from action_images.canvas import Mode
from action_images.cli import main
from action_images.evaluate import (
    EvalConfig, evaluate, instruction_following, load_policy, resolve_device, run_episode, success_markdown, training_clip, wilson_interval,
)
from action_images.observation import observation_views
from action_images.policy import ActionImagesPolicy, fill_unconfident, goal_readout_scores, waypoints_to_targets
from action_images.sim import make_env
from action_images.sim.experts import make_expert
from action_images.sim.milestones import MILESTONES, furthest, milestone_observer
from rendering.cameras import Cameras
from rendering.synthetic import random_rig

CAMERAS = ["front", "left"]  # the tiny model is trained on two views; any two simulator cameras serve


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("policy")
    write_synthetic_dataset(folder / "data", (9, 8, 10, 7), size=16)
    module, data = tiny_module(), data_module(folder / "data", image_size=16)
    trainer = L.Trainer(accelerator="cpu", max_steps=2, logger=False, enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(folder), limit_val_batches=0)
    trainer.fit(module, data)
    trainer.save_checkpoint(folder / "model.ckpt")
    return folder / "model.ckpt"


def test_unconfident_waypoints_are_interpolated_or_held():
    positions = torch.tensor([[0.0, 0, 0], [9, 9, 9], [2, 0, 0], [9, 9, 9], [9, 9, 9]])
    rotations = torch.eye(3).expand(5, 3, 3).clone()
    rotations[2] = roma.rotvec_to_rotmat(torch.tensor([0.0, 0, 1.0]))
    confident = torch.tensor([True, False, True, False, False])
    filled, turned = fill_unconfident(positions, rotations, confident)
    assert torch.allclose(filled[1], torch.tensor([1.0, 0, 0]))  # halfway between frames 0 and 2
    assert torch.equal(filled[3], filled[2]) and torch.equal(filled[4], filled[2])  # held after the last confident
    assert torch.allclose(roma.rotmat_to_rotvec(turned[1]), torch.tensor([0.0, 0, 0.5]), atol=1e-5)


def test_a_position_seen_well_is_kept_while_its_rotation_is_interpolated():
    positions = torch.tensor([[0.0, 0, 0], [5, 0, 0], [2, 0, 0]])
    rotations = torch.eye(3).expand(3, 3, 3).clone()
    rotations[2] = roma.rotvec_to_rotmat(torch.tensor([0.0, 0, 1.0]))
    confident, position_confident = torch.tensor([True, False, True]), torch.tensor([True, True, True])
    filled, turned = fill_unconfident(positions, rotations, confident, position_confident)
    assert torch.equal(filled[1], positions[1])  # its own position, not the neighbours' mean (1, 0, 0)
    assert torch.allclose(roma.rotmat_to_rotvec(turned[1]), torch.tensor([0.0, 0, 0.5]), atol=1e-5)


def test_the_goal_readout_scores_the_plan_that_ends_where_it_points():
    rig = random_rig(1, views=2, size=16, seed=3)
    cameras = Cameras(rig.cameras.intrinsics[0], rig.cameras.extrinsics[0], 16, 16)  # two views, batch (V, 1)
    ends = torch.cat([rig.positions[0], rig.positions[0] + torch.tensor([0.15, -0.1, 0.1])])  # two candidate plan ends
    pixels, _ = cameras.project(ends[None, None].expand(2, 1, 2, 3))
    log_probs = torch.full((2, 16, 16), -10.0)
    for view in range(2):  # the readout points at the first end in both views
        u, v = pixels[view, 0, 0].round().long().tolist()
        log_probs[view, v, u] = 0.0
    log_probs = log_probs.flatten(1).log_softmax(-1).unflatten(-1, (16, 16))
    scores = goal_readout_scores(log_probs, ends, cameras)
    assert scores.shape == (2,) and scores[0] > scores[1] + 5
    behind = goal_readout_scores(log_probs, torch.tensor([[0.0, 0.0, 50.0]]), cameras, floor=-20.0)
    assert behind.item() == -40.0  # a point no view sees costs the floor in each view, not −∞


def test_targets_reach_each_waypoint_at_its_step():
    positions = torch.tensor([[0.0, 0, 0], [0.3, 0, 0], [0.3, 0.3, 0]])
    rotations = torch.eye(3).expand(3, 3, 3)
    targets = waypoints_to_targets(positions, rotations, torch.tensor([True, True, False]), stride=3)
    assert targets.shape == (6, 8)
    assert np.allclose(targets[0, :3], [0.1, 0, 0]) and np.allclose(targets[2, :3], [0.3, 0, 0]) and np.allclose(targets[5, :3], [0.3, 0.3, 0])
    assert np.allclose(targets[:, 3:7], [0, 0, 0, 1])  # identity, quaternion xyzw
    assert targets[:3, 7].tolist() == [1, 1, 1] and targets[3:, 7].tolist() == [0, 0, 0]


def test_wilson_interval():
    low, high = wilson_interval(0, 10)
    assert low == 0 and high == pytest.approx(0.2775, abs=1e-3)
    low, high = wilson_interval(45, 50)
    assert low == pytest.approx(0.7864, abs=1e-3) and high == pytest.approx(0.9565, abs=1e-3)


class ExpertPolicy:
    """The scripted expert behind the policy interface: the harness must count its successes."""

    def __init__(self, env):
        self.expert = make_expert(env)

    def reset(self):
        self.expert.reset()

    def select_action(self, observation):
        return self.expert.act(observation)


def test_harness_counts_the_experts_successes():
    env = make_env("reach", image_size=64, cameras=CAMERAS)
    result, frames = run_episode(env, ExpertPolicy(env), seed=100_000, record=True, cameras=tuple(CAMERAS))
    assert result.success and result.steps < env.max_steps and len(frames) == result.steps
    assert frames[0].shape[0] == 96 and frames[0].dtype == np.uint8  # real views only: the expert imagines nothing


class StandStill:
    """Commands the pose it observes: moves nothing."""

    def reset(self):
        pass

    def select_action(self, observation):
        return observation["ee_pose"]


@pytest.mark.parametrize("task", ["push", "pick_place"])
def test_milestones_follow_the_expert_to_success_and_a_still_arm_nowhere(task):
    env = make_env(task, image_size=32, cameras=CAMERAS)
    expert, still = milestone_observer(task), milestone_observer(task)
    result, _ = run_episode(env, ExpertPolicy(env), seed=100_001, record=False, cameras=tuple(CAMERAS), observer=expert)
    assert result.success and furthest(expert.reached, MILESTONES[task]) == len(MILESTONES[task])
    assert expert.reached == set(MILESTONES[task])  # every milestone on the way, not only the last
    run_episode(env, StandStill(), seed=100_001, record=False, cameras=tuple(CAMERAS), observer=still)
    assert still.reached == set() and furthest(still.reached, MILESTONES[task]) == 0
    with pytest.raises(ValueError, match="no milestones for task 'reach'"):
        milestone_observer("reach")


class SphereOracle:
    """Plans straight to the sphere whose colour its instruction names (`follows=True`) or to the
    first sphere whatever it is told, with a small seeded jitter standing in for sampling noise."""

    def __init__(self, env, follows: bool):
        self.env, self.follows, self.cameras, self.seed = env, follows, CAMERAS, 0

    def reset(self):
        self.rng = np.random.default_rng(self.seed)

    def plan(self, observation):
        task = self.env.task
        named = next(i for i, colour in enumerate(task.colours) if colour in observation["instruction"].split())
        end = task.body_position(self.env.data, f"target{named if self.follows else 0}") + self.rng.normal(0, 0.005, 3)
        return np.linspace(observation["ee_pose"][:3], end, 12)


def test_instruction_following_tells_a_policy_that_reads_its_instruction_from_one_that_ignores_it():
    env = make_env("reach", render=False)
    reads = instruction_following(SphereOracle(env, follows=True), scenes=4, env=env)
    assert reads.named_nearest == 1.0 and reads.plan_end_to_named_cm < 2 and reads.instruction_effect_cm > 5 * reads.noise_effect_cm
    env = make_env("reach", render=False)
    ignores = instruction_following(SphereOracle(env, follows=False), scenes=4, env=env)
    assert ignores.named_nearest < 0.6 and ignores.instruction_effect_cm == 0.0 and ignores.noise_effect_cm > 0
    assert reads.start_to_named_cm == ignores.start_to_named_cm  # the same scenes
    assert np.isnan(reads.readout_named_best)  # a policy without a goal readout has no such figure


def test_policy_replans_every_k_steps_and_acts_in_the_simulator(checkpoint):
    policy = load_policy(checkpoint, cameras=CAMERAS, replan_every=2, steps=2)
    assert isinstance(policy, ActionImagesPolicy) and (policy.num_frames, policy.stride, policy.image_size) == (3, 2, 16)
    env = make_env("reach", image_size=64, cameras=CAMERAS)
    observation, _ = env.reset(seed=0)
    for step in range(5):
        action = policy.select_action(observation)
        assert action.shape == (8,) and np.isfinite(action).all() and action[7] in (0.0, 1.0)
        assert np.isclose(np.linalg.norm(action[3:7]), 1, atol=1e-5)
        observation, *_ = env.step(action)
    assert policy.generations == 3  # at steps 0, 2 and 4
    policy.reset()
    assert policy.generations == 0
    with pytest.raises(ValueError, match="replan_every"):
        ActionImagesPolicy(policy.pipeline, CAMERAS, num_frames=3, stride=2, replan_every=5)
    with pytest.raises(KeyError, match="lacks cameras"):
        policy.select_action({**observation, "images": {"front": observation["images"]["front"]}})
    guided = load_policy(checkpoint, cameras=CAMERAS, replan_every=2, steps=1, guidance_scale=2.0)
    assert guided.guidance_scale == 2.0 and guided.select_action(observation).shape == (8,)
    with pytest.raises(ValueError, match="goal readout"):
        load_policy(checkpoint, cameras=CAMERAS, candidates=3)
    with pytest.raises(ValueError, match="goal readout"):
        load_policy(checkpoint, cameras=CAMERAS, keep_plan=True)
    with pytest.raises(ValueError, match="goal readout"):
        load_policy(checkpoint, cameras=CAMERAS, anchor=True)


def test_the_policy_executes_the_candidate_its_goal_readout_prefers(tmp_path):
    write_synthetic_dataset(tmp_path / "data", (9, 8, 10, 7), size=16)
    module, data = tiny_module(goal_readout_weight=1.0), data_module(tmp_path / "data", image_size=16)
    trainer = L.Trainer(accelerator="cpu", max_steps=2, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=str(tmp_path), limit_val_batches=0)
    trainer.fit(module, data)
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    policy = load_policy(tmp_path / "model.ckpt", cameras=CAMERAS, replan_every=2, steps=2, candidates=3)
    env = make_env("reach", image_size=64, cameras=CAMERAS)
    observation, _ = env.reset(seed=0)
    targets = policy.plan(observation)
    assert targets.shape == (4, 8) and policy.plan_scores.shape == (3,) and torch.isfinite(policy.plan_scores).all()
    chosen = int(policy.plan_scores.argmax())
    assert np.allclose(targets[-1, :3], policy.plan_ends[chosen].numpy(), atol=1e-6)  # the plan executed is the one scored best
    assert instruction_following(policy, scenes=1, env=env).readout_named_best in (0.0, 1.0)

    keeping = load_policy(tmp_path / "model.ckpt", cameras=CAMERAS, replan_every=2, steps=2, candidates=3, keep_plan=True)
    observation, _ = env.reset(seed=1)
    keeping.select_action(observation)  # the first plan: nothing to keep yet
    assert keeping.plan_scores.shape == (3,) and not keeping.kept
    keeping.select_action(observation)
    outcomes = []
    for _ in range(30):  # replans: the rest of the current plan competes as a 4th candidate while it covers 2 steps
        rest = keeping._rest.copy()
        action = keeping.select_action(observation)
        competes = len(rest) >= 2  # a kept rest has nothing left after its 2 steps
        assert keeping.plan_scores.shape == (4 if competes else 3,)
        assert keeping.kept == (competes and int(keeping.plan_scores.argmax()) == 3)
        if keeping.kept:  # executes the rest, and the imagined video follows it
            assert np.array_equal(action, rest[0]) and keeping.plan_step == 2
        else:
            assert keeping.plan_step == 0
        if competes:
            outcomes.append(keeping.kept)
        keeping.select_action(observation)
    assert keeping.plans_kept == sum(outcomes) and 0 < sum(outcomes) < len(outcomes)  # both ways taken
    short = load_policy(tmp_path / "model.ckpt", cameras=CAMERAS, replan_every=3, steps=2, candidates=2, keep_plan=True)
    for _ in range(4):  # a rest of 1 step cannot cover 3: it never competes
        short.select_action(observation)
        assert short.plan_scores.shape == (2,) and not short.kept

    anchored = load_policy(tmp_path / "model.ckpt", cameras=CAMERAS, replan_every=2, steps=2, anchor=True)
    plain = load_policy(tmp_path / "model.ckpt", cameras=CAMERAS, replan_every=2, steps=2)
    anchored_targets, plain_targets = anchored.plan(observation), plain.plan(observation)  # the same seed: the same generation
    if anchored.anchored:  # the tiny model's readout may be too diffuse for two views to name a point
        assert np.allclose(anchored_targets[-1, :3], anchored.anchor_point.numpy(), atol=1e-5)
    else:
        assert np.array_equal(anchored_targets, plain_targets)
    assert np.array_equal(anchored_targets[:, 3:], plain_targets[:, 3:])  # orientation and gripper as generated
    # A sharp readout on every view's projection of a known point: the plan's end moves exactly there, the pose now stays.
    views = observation_views(observation, CAMERAS, 16)
    goal = torch.tensor([0.45, 0.05, 0.12])
    cameras = Cameras(views.cameras.intrinsics[:, None], views.cameras.extrinsics[:, None], 16, 16)
    pixels, _ = cameras.project(goal[None, None].expand(len(CAMERAS), 1, 1, 3))
    log_probs = torch.full((1, len(CAMERAS), 16, 16), -30.0)
    for view, (column, row) in enumerate(pixels[:, 0, 0].round().long().tolist()):
        log_probs[0, view, row, column] = 0.0
    positions = torch.tensor([[0.4, 0.0, 0.3], [0.42, 0.0, 0.25], [0.44, 0.0, 0.2]])
    moved = anchored._anchored(views, log_probs, positions)
    assert anchored.anchored and torch.equal(moved[0], positions[0])
    assert torch.allclose(moved[-1], anchored.anchor_point, atol=1e-6) and (moved[-1] - goal).norm() < 0.05  # pixels of 16² views span ~4 cm
    assert torch.allclose(moved[1], positions[1] + (moved[-1] - positions[-1]) / 2, atol=1e-6)  # halfway: half the correction


def test_eval_command_writes_table_and_videos(checkpoint, tmp_path):
    assert training_clip(checkpoint) == {"num_frames": 3, "stride": 2, "image_size": 16}
    code = main(["eval", "--checkpoint", str(checkpoint), "--task", "reach", "--episodes", "1", "--cameras", *CAMERAS,
                 "--steps", "2", "--videos", "1", "--label", "tiny", "--out", str(tmp_path)])
    assert code == 0
    table = json.loads((tmp_path / "tiny_success.json").read_text())
    assert table["reach"]["episodes"] == 1 and 0 <= table["reach"]["success"] <= 1
    (video,) = (tmp_path / "videos").glob("tiny_reach_000_*.mp4")
    assert video.stat().st_size > 0
    assert "| reach |" in success_markdown({"tiny": table})


def test_evaluate_records_every_episode(checkpoint):
    policy = load_policy(checkpoint, cameras=CAMERAS, steps=1)
    config = EvalConfig(tasks=("reach",), episodes=2, cameras=tuple(CAMERAS), image_size=64, videos=0)
    table = evaluate(policy, config)
    assert len(config.results) == 2 and {r.seed for r in config.results} == {100_000, 100_001}
    assert table["reach"]["ci95"][0] <= table["reach"]["success"] <= table["reach"]["ci95"][1]
    for result in config.results:  # the graded measure: metres from the named target, closest ≤ final
        assert 0 <= result.closest_distance <= result.final_distance < 2.0
    assert table["reach"]["median_closest_distance_m"] <= table["reach"]["median_final_distance_m"]


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_policy(tmp_path / "nothing.ckpt", cameras=CAMERAS)


def test_the_canvas_defaults_to_the_one_the_model_was_trained_on(checkpoint, tmp_path):
    assert load_policy(checkpoint, cameras=CAMERAS).mode is Mode.JOINT
    stored = torch.load(checkpoint, map_location="cpu", weights_only=True)
    stored["hyper_parameters"]["canvas"] = "policy"  # the same weights, as if trained on the policy canvas alone
    torch.save(stored, tmp_path / "policy_canvas.ckpt")
    assert load_policy(tmp_path / "policy_canvas.ckpt", cameras=CAMERAS).mode is Mode.POLICY
    with pytest.raises(ValueError, match="trained on the policy canvas only"):
        load_policy(tmp_path / "policy_canvas.ckpt", cameras=CAMERAS, mode="joint")


def test_the_device_is_resolved_and_a_missing_gpu_is_a_clear_error(checkpoint, monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a machine without a GPU
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="sees no GPU"):
        resolve_device("cuda")
    assert load_policy(checkpoint, cameras=CAMERAS, device="cpu").pipeline.model.device == torch.device("cpu")


def test_diagnose_plans_prints_every_plan_the_policy_makes(checkpoint, capsys):
    """`tools/diagnose_plans.py`: one line per plan, made at the steps the policy replans, each plan the one executed."""
    from tools.diagnose_plans import recording_plans, trace_episode

    policy = load_policy(checkpoint, cameras=CAMERAS, replan_every=2, steps=1)
    env = make_env("pick_place", image_size=64, cameras=CAMERAS, max_steps=7)
    plans = recording_plans(policy)
    executed = []
    select = policy.select_action
    policy.select_action = lambda observation: executed.append(select(observation)) or executed[-1]
    assert trace_episode(env, policy, plans, seed=100_000) is False
    lines = capsys.readouterr().out.splitlines()
    steps = [int(line.split()[0]) for line in lines[2:-1]]
    assert steps == [0, 2, 4, 6] and len(plans) == 4 and lines[-1] == "  failure after 7 steps"
    for step, plan in zip(steps, plans):
        np.testing.assert_array_equal(executed[step], plan[0])
