"""Policies in the LeRobot style (`reset()`, `select_action(observation)`): `ActionImagesPolicy`, the
model as a closed-loop controller, and `ChunkPolicy`, which runs the action-chunk models (the baseline,
ImageWAM) in the same loop.

At a replanning step the policy renders the current end-effector pose as the first action frame of
every view, generates the future (`joint` canvas: RGB and action frames; `policy` canvas: action
frames only), decodes the action frames into 7-DoF waypoints `stride` control steps apart, and turns
them into one absolute target per control step (positions linear, rotations slerped, gripper held at
the waypoint's command). It executes the first `replan_every` targets, then plans again from what it
observes; `replan_every = (num_frames − 1)·stride` executes the whole generation open loop, which is the
paper's protocol.

Frames the decoder marks low-confidence (a point seen by fewer than two views, an axis of the wrong
length) are never executed as decoded: they are interpolated from the confident neighbours, and after
the last confident waypoint the policy holds it. Position and rotation are judged apart: a frame whose
position point is seen well but whose axis tips are blurred keeps its position and interpolates its
rotation (holding every such frame stalled the arm in place).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import roma
import torch

from action_images.canvas import Mode
from action_images.goal_readout import anchor_on_readout
from action_images.observation import interpolate_waypoints, observation_views, with_gripper_command
from action_images.pipeline import ActionImagesPipeline
from rendering.cameras import Cameras
from rendering.poses import pose_from_vector
from rendering.rotations import RotationFormat


def _known_neighbours(confident: torch.Tensor, frame: int) -> tuple[int, int | None, float]:
    """The confident frames around `frame` (frame 0 always counts): the one before, the one after (None
    if none) and `frame`'s share of the way between them."""
    known = [k for k in range(len(confident)) if k == 0 or confident[k]]
    before = max(k for k in known if k < frame)
    after = next((k for k in known if k > frame), None)
    return before, after, 0.0 if after is None else (frame - before) / (after - before)


def fill_unconfident(positions: torch.Tensor, rotations: torch.Tensor, confident: torch.Tensor,
                     position_confident: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Waypoints (T, 3) and (T, 3, 3) whose frame 0 is the (confident) current pose: unconfident
    frames between confident ones are interpolated, those after the last confident one hold it.
    `confident` (T,) judges the whole pose; `position_confident` (default: the same) the position
    alone, so a frame whose axis tips are blurred keeps its decoded position and interpolates only
    its rotation."""
    position_confident = confident if position_confident is None else position_confident
    positions, rotations = positions.clone(), rotations.clone()
    quats = roma.rotmat_to_unitquat(torch.nan_to_num(rotations))
    for frame in range(1, len(positions)):
        if not position_confident[frame]:
            before, after, share = _known_neighbours(position_confident, frame)
            positions[frame] = positions[before] if after is None else torch.lerp(positions[before], positions[after], share)
        if not confident[frame]:
            before, after, share = _known_neighbours(confident, frame)
            if after is None:
                rotations[frame] = rotations[before]
            else:
                rotations[frame] = roma.unitquat_to_rotmat(roma.unitquat_slerp(quats[before], quats[after], torch.tensor([share]))[0])
    return positions, rotations


def goal_readout_scores(log_probs: torch.Tensor, points: torch.Tensor, cameras: Cameras, radius: float = 1.5, floor: float = -20.0) -> torch.Tensor:
    """How well plan ends (K, 3) agree with a goal readout: per view, the log-probability the readout
    (V, H, W) puts within `radius` pixels of the point's projection (at least `floor`, also for a point
    outside the image or behind the camera, so one view cannot veto), summed over the views → (K,).
    `cameras`: the V views, batch shape (V, 1)."""
    views, height, width = log_probs.shape
    pixels, depth = cameras.project(points.float()[None, None].expand(views, 1, -1, 3))  # (V, 1, K, 2), (V, 1, K)
    grid = cameras.pixel_grid().to(pixels)  # (H·W, 2)
    near = (pixels[:, 0, :, None] - grid).norm(dim=-1) <= radius  # (V, K, H·W)
    near &= (depth[:, 0] > 0)[..., None]
    masked = torch.where(near, log_probs.flatten(1)[:, None], torch.tensor(-torch.inf))
    return masked.logsumexp(-1).clamp(min=floor).sum(0)


def waypoints_to_targets(positions: torch.Tensor, rotations: torch.Tensor, gripper_open: torch.Tensor, stride: int) -> np.ndarray:
    """Waypoints (T, …) `stride` control steps apart, frame 0 = now → (T−1)·stride absolute targets
    (N, 8) `[x y z qx qy qz qw g]`: one per control step, reaching waypoint k at step k·stride."""
    poses = torch.cat([positions, roma.rotmat_to_unitquat(rotations), gripper_open.to(positions.dtype)[:, None]], -1)  # xyzw
    return interpolate_waypoints(poses[0], poses[1:], stride).numpy().astype(np.float32)


class ActionImagesPolicy:
    """Args:
        pipeline: a loaded `ActionImagesPipeline`.
        cameras: the camera names the model was trained on, in its view order.
        num_frames, stride, image_size: the clip shape the model was trained on (`data:` of its config).
        mode: "joint" (generate RGB and actions) or "policy" (the short canvas, actions only; needs a
            model trained with `canvas: policy`, or at least one whose joint training makes it usable).
        replan_every: control steps executed per generation; None = the whole horizon (open loop).
        steps, guidance_scale: sampling cost and guidance.
        guide_observation: whether guidance also amplifies the observation (models trained with
            `observation_dropout`); None = as the model was trained, False = the instruction alone.
        candidates: plans sampled per generation (one batch). With more than one, the policy executes
            the plan whose end its model's goal readout finds likeliest (`goal_readout_scores`): the
            readout is a per-pixel distribution, so it can name one of several places where the
            generator, unsure, would plan between them. Needs a model trained with a goal readout.
        keep_plan: when replanning, the rest of the plan being executed competes with the new candidates
            on the fresh goal readout and is kept unless a new plan's end scores higher (a replan then
            costs a plan's commitment only when the model now finds another end likelier). Needs a goal
            readout; the rest competes while it still covers `replan_every` steps.
        anchor: move a new plan's end to the point the goal readout names, triangulated over the views
            (`goal_readout.readout_point`), bending the waypoints before it by their share of the plan
            (`goal_readout.anchor_chunk`), as ImageWAM's `ChunkPolicy` does; a readout fewer than two views
            find is not used. Needs a goal readout.
    """

    def __init__(
        self, pipeline: ActionImagesPipeline, cameras: list[str], num_frames: int = 5, stride: int = 3, image_size: int = 32,
        mode: str = "joint", replan_every: int | None = None, steps: int = 10, guidance_scale: float = 1.0, seed: int = 0,
        candidates: int = 1, keep_plan: bool = False, guide_observation: bool | None = None, anchor: bool = False,
    ) -> None:
        self.pipeline, self.cameras = pipeline, list(cameras)
        self.num_frames, self.stride, self.image_size = num_frames, stride, image_size
        self.mode = Mode.parse(mode)
        if self.mode not in (Mode.JOINT, Mode.POLICY):
            raise ValueError(f"a policy generates in 'joint' or 'policy' mode, got {mode!r}")
        horizon = (num_frames - 1) * stride
        self.replan_every = horizon if replan_every is None else int(replan_every)
        if not 1 <= self.replan_every <= horizon:
            raise ValueError(f"replan_every must lie in [1, {horizon}] (the generated horizon), got {replan_every}")
        self.steps, self.guidance_scale, self.seed, self.guide_observation = steps, guidance_scale, seed, guide_observation
        if candidates < 1:
            raise ValueError(f"candidates must be ≥ 1, got {candidates}")
        if candidates > 1 and not self.has_goal_readout:
            raise ValueError("choosing among candidate plans needs a model trained with a goal readout (model.goal_readout_weight > 0)")
        self.candidates = candidates
        if keep_plan and not self.has_goal_readout:
            raise ValueError("keeping a plan against new ones needs a model trained with a goal readout (model.goal_readout_weight > 0)")
        self.keep_plan = keep_plan
        if anchor and not self.has_goal_readout:
            raise ValueError("anchoring a plan on the goal readout needs a model trained with a goal readout (model.goal_readout_weight > 0)")
        self.anchor = anchor
        pipeline.fuse_qkv_projections()  # exact, and one matrix multiply instead of three per attention
        self.reset()

    @classmethod
    def from_checkpoint(cls, path, **kwargs) -> "ActionImagesPolicy":
        return cls(ActionImagesPipeline.from_checkpoint(path), **kwargs)

    def reset(self) -> None:
        self._queue: list[np.ndarray] = []
        self.generator = torch.Generator().manual_seed(self.seed)
        self.generations = 0
        self.imagined: dict[str, torch.Tensor] | None = None  # the last generation, for people to look at
        self.plan_step = -1
        self.gripper_command: float | None = None  # the last command sent: the current frame's gripper state
        self._rest: np.ndarray | None = None  # the targets of the current plan not yet queued
        self.kept = False  # whether the last replan kept the rest of the plan
        self.plans_kept = 0
        self.anchor_point: torch.Tensor | None = None  # where the last new plan was anchored (None: it was not)

    def select_action(self, observation: dict) -> np.ndarray:
        if not self._queue:
            targets = self.plan(observation)
            self._queue, self._rest = list(targets[: self.replan_every]), targets[self.replan_every :]
            if not self.kept:
                self.plan_step = -1
        self.plan_step += 1  # the index of the returned target in the current plan
        action = self._queue.pop(0)
        self.gripper_command = float(action[7])
        return action

    @property
    def has_goal_readout(self) -> bool:
        return bool(self.pipeline.model.hparams.goal_readout_weight)

    def generate(self, observation: dict, plans: int = 1, steps: int | None = None, return_readout: bool = False, decode: bool = True):
        """`plans` generations from one observation in one batch (`steps`: default the policy's) →
        (the observation's views, the pipeline's output). `plan` executes one of them."""
        steps = self.steps if steps is None else steps
        views = observation_views(observation, self.cameras, self.image_size)
        views.pose = with_gripper_command(views.pose, self.gripper_command)
        count, frames = len(self.cameras), self.num_frames
        images = views.rgb[None, :, None].expand(plans, count, frames, *views.rgb.shape[1:])
        cameras = Cameras(views.cameras.intrinsics[None, :, None], views.cameras.extrinsics[None, :, None], *views.rgb.shape[-2:])
        actions = views.pose[None, None].expand(plans, frames, -1)
        out = self.pipeline(
            mode=self.mode, images=images, cameras=cameras, actions=actions, prompt=views.instruction, num_inference_steps=steps,
            guidance_scale=self.guidance_scale, generator=self.generator, decode=decode, return_readout=return_readout,
            guide_observation=self.guide_observation,
        )
        return views, out

    @property
    def anchored(self) -> bool:
        """Whether the last new plan was anchored on the goal readout."""
        return self.anchor_point is not None

    @staticmethod
    def _readout(views, log_probs: torch.Tensor) -> tuple[torch.Tensor, Cameras]:
        """The plans' goal readouts (K, V, H, W) of one observation → their mean (V, H, W) and the views' cameras at
        its resolution, batch (V, 1), as `goal_readout_scores` and `goal_readout.readout_point` take them."""
        cameras = Cameras(views.cameras.intrinsics[:, None], views.cameras.extrinsics[:, None], *log_probs.shape[-2:])
        return log_probs.mean(0).cpu(), cameras

    def _readout_scores(self, views, log_probs: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        readout, cameras = self._readout(views, log_probs)
        return goal_readout_scores(readout, points, cameras)

    def _anchored(self, views, log_probs: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Waypoints (T, 3), frame 0 = now, with the plan's end moved to the readout's point (if ≥ 2 views find it)."""
        future, self.anchor_point = anchor_on_readout(positions[1:], *self._readout(views, log_probs))
        return torch.cat([positions[:1], future])

    @torch.inference_mode()
    def readout_scores(self, observation: dict, points: torch.Tensor) -> torch.Tensor:
        """How likely the model's goal readout finds it that the plan from `observation` ends at each of
        `points` (N, 3) (`goal_readout_scores`; one noisiest-step pass, nothing decoded)."""
        views, out = self.generate(observation, 1, steps=1, return_readout=True, decode=False)
        return self._readout_scores(views, out.goal_readout, points)

    @torch.inference_mode()
    def plan(self, observation: dict) -> np.ndarray:
        """Generate from `observation` and return every control-step target of the horizon (N, 8)."""
        plans = self.candidates
        rest = self._rest if self.keep_plan and self._rest is not None and len(self._rest) >= self.replan_every else None
        views, out = self.generate(observation, plans, return_readout=plans > 1 or rest is not None or self.anchor)
        self.generations += 1
        decoded = out.decoded
        position_confident = decoded.position_confidence & torch.isfinite(decoded.positions).all(-1)
        confident = decoded.confidence & position_confident & torch.isfinite(decoded.rotations).flatten(2).all(-1)
        now = pose_from_vector(views.pose[None], RotationFormat.QUAT_XYZW)
        filled = [
            fill_unconfident(torch.cat([now.positions, decoded.positions[k, 1:]]), torch.cat([now.rotations, decoded.rotations[k, 1:]]),
                             confident[k], position_confident[k])
            for k in range(plans)
        ]
        chosen, self.kept = 0, False
        if plans > 1 or rest is not None:
            ends = [positions[-1] for positions, _ in filled] + ([] if rest is None else [torch.from_numpy(rest[-1, :3]).to(filled[0][0])])
            self.plan_ends = torch.stack(ends)  # (K [+ 1 for the rest], 3), kept for people to look at
            self.plan_scores = self._readout_scores(views, out.goal_readout, self.plan_ends)
            chosen = int(self.plan_scores.argmax())
            if chosen == plans:  # the rest of the current plan: keep executing it
                self.kept = True
                self.plans_kept += 1
                return rest
        self.imagined = {"rgb": out.rgb[chosen].cpu(), "action_images": out.action_images[chosen].cpu()}
        positions, rotations = filled[chosen]
        if self.anchor:
            positions = self._anchored(views, out.goal_readout, positions)
        return waypoints_to_targets(positions, rotations, decoded.gripper_open[chosen], self.stride)


def chunk_module_class(hyper: dict) -> type[L.LightningModule] | None:
    """The action-chunk module a checkpoint's hyper-parameters belong to (None: not a chunk model)."""
    if "chunk" not in hyper:
        return None
    if "target_offset" in hyper:
        from action_images.imagewam_module import ImageWAMModule

        return ImageWAMModule
    from action_images.baseline import BaselinePolicyModule

    return BaselinePolicyModule


class ChunkPolicy:
    """Closed-loop control with an action-chunk model — the baseline (`BaselinePolicyModule`) or
    ImageWAM (`ImageWAMModule`), anything with `predict_chunk` and `views`/`chunk`/`image_size`
    hyper-parameters: observation → absolute EE target per step.

    Every `replan_every` env steps it predicts a chunk from the current observation (see
    `action_images.observation` for the observation dict) and executes it: chunk waypoints are
    `stride` env steps apart (the training clips' stride), so each env step gets one target
    interpolated between them (`interpolate_waypoints`). Actions are float32 (8,)
    `[x y z qx qy qz qw g]`, world frame, quaternion xyzw, g = 1.0 open / 0.0 closed.

    Args:
        module: a trained action-chunk module (put in eval mode).
        cameras: observation camera names, in the order the model was trained on.
        stride: env steps between chunk waypoints (the data module's `stride`).
        replan_every: env steps between predictions, 1 … chunk·stride (default: the whole chunk).
        sample_steps: Euler steps (default: the module's).
        seed: the sampling noise's seed; `reset()` restarts it, so an episode is reproducible.
        candidates: chunks sampled per prediction from one prefix pass (ImageWAM with a goal readout):
            the policy executes the one whose end its goal readout finds likeliest (`goal_readout_scores`).
        anchor: (ImageWAM with a goal readout) move the executed chunk's end to the point the goal
            readout names, triangulated over the views (`goal_readout.readout_point`), bending the
            waypoints before it by their share of the chunk (`goal_readout.anchor_chunk`); a readout
            that fewer than two views find is not used.
    """

    def __init__(
        self, module: L.LightningModule, cameras: list[str], stride: int = 3, replan_every: int | None = None,
        sample_steps: int | None = None, seed: int = 0, candidates: int = 1, anchor: bool = False,
    ) -> None:
        if len(cameras) != module.hparams.views:
            raise ValueError(f"the model was trained on {module.hparams.views} views, got cameras {list(cameras)}")
        if stride < 1:
            raise ValueError(f"stride must be ≥ 1, got {stride}")
        self.horizon = module.hparams.chunk * stride
        self.replan_every = self.horizon if replan_every is None else replan_every
        if not 1 <= self.replan_every <= self.horizon:
            raise ValueError(f"replan_every must be in 1 … {self.horizon} (chunk {module.hparams.chunk} × stride {stride}), got {replan_every}")
        self.module = module.eval()
        if hasattr(module, "fuse_qkv_projections"):  # ImageWAM's attentions; the baseline has none to fuse
            module.fuse_qkv_projections()
        if candidates < 1:
            raise ValueError(f"candidates must be ≥ 1, got {candidates}")
        if (candidates > 1 or anchor) and not (hasattr(module, "predict_chunks") and module.hparams.get("goal_readout_weight")):
            raise ValueError("choosing among chunks or anchoring one needs an ImageWAM model trained with a goal readout "
                             "(model.goal_readout_weight > 0)")
        self.cameras, self.stride, self.sample_steps, self.seed = list(cameras), stride, sample_steps, seed
        self.candidates, self.anchor = candidates, anchor
        self.reset()

    @classmethod
    def from_checkpoint(cls, path: str | Path, cameras: list[str], **kwargs) -> ChunkPolicy:
        """From a training checkpoint of either chunk model (loaded on the CPU with `weights_only=True`)."""
        hyper = torch.load(path, map_location="cpu", weights_only=True).get("hyper_parameters", {})
        module_class = chunk_module_class(hyper)
        if module_class is None:
            raise ValueError(f"{path} is not a checkpoint of an action-chunk model (the baseline or ImageWAM)")
        return cls(module_class.load_from_checkpoint(path, map_location="cpu", weights_only=True), cameras, **kwargs)

    def reset(self) -> None:
        """Start a new episode: forget the plan and restart the sampling noise."""
        self.generator = torch.Generator(device=self.module.device).manual_seed(self.seed)
        self.targets: np.ndarray | None = None  # (horizon, 8) targets of the current plan
        self.steps_into_plan = 0
        self.gripper_command: float | None = None  # the last command sent: the current pose's gripper state

    def plan(self, observation: dict) -> np.ndarray:
        """Predict a chunk from the observation → (chunk·stride, 8) per-step targets."""
        views = observation_views(observation, self.cameras, self.module.hparams.image_size)
        views.pose = with_gripper_command(views.pose, self.gripper_command)
        if self.candidates == 1 and not self.anchor:
            device = self.module.device
            chunk = self.module.predict_chunk(
                views.rgb[None].to(device), views.pose[None].to(device), [views.instruction], generator=self.generator, steps=self.sample_steps
            )[0].cpu()
        else:
            chunks, readout, cameras = self.sample_chunks(views, self.candidates)
            chunk = chunks[int(goal_readout_scores(readout, chunks[:, -1, :3], cameras).argmax())] if self.candidates > 1 else chunks[0]
            if self.anchor:
                chunk, _ = anchor_on_readout(chunk, readout, cameras)
        return interpolate_waypoints(views.pose, chunk, self.stride).numpy().astype(np.float32)

    def sample_chunks(self, views, samples: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, Cameras]:
        """`samples` chunks (K, C, 8) from one prefix pass on `views` (`observation_views`, pose with the
        gripper command), the goal readout (V, H, W) as log-probabilities, and the views' cameras at the
        readout's resolution, batch (V, 1) as `goal_readout_scores` and `readout_point` take them
        (ImageWAM with a goal readout; `generator` defaults to the policy's)."""
        device = self.module.device
        chunks, readout = self.module.predict_chunks(
            views.rgb[None].to(device), views.pose[None].to(device), [views.instruction], samples, generator or self.generator, self.sample_steps
        )
        readout = readout[0].cpu()
        cameras = Cameras(views.cameras.intrinsics[:, None], views.cameras.extrinsics[:, None], *readout.shape[-2:])
        return chunks[0].cpu(), readout, cameras

    def select_action(self, observation: dict) -> np.ndarray:
        """The absolute EE target (8,) for this env step, replanning every `replan_every` steps."""
        if self.targets is None or self.steps_into_plan >= self.replan_every:
            self.targets, self.steps_into_plan = self.plan(observation), 0
        action = self.targets[self.steps_into_plan].copy()
        self.steps_into_plan += 1
        self.gripper_command = float(action[7])
        return action
