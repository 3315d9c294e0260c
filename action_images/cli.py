"""The `action-images` command line: it parses arguments and calls the library, nothing more."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# Large fresh tensors (rendered action images, decoded video) fault in 4 KiB pages by default; torch's
# transparent-huge-page allocator makes them ~3× cheaper. torch reads this once, so set it before import.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")


def _roundtrip(args: argparse.Namespace) -> int:
    from action_images.roundtrip import RoundTripConfig, run_roundtrip

    figures = run_roundtrip(
        RoundTripConfig(out=args.out, size=args.size, frames=args.frames, views=args.views, axis_length=args.axis_length)
    )
    return 0 if figures["confident_fraction"] == 1.0 else 1


def _collect(args: argparse.Namespace) -> int:
    from action_images.collect import CollectConfig, collect

    tasks = tuple(t for item in args.task for t in item.split(",") if t)
    summary = collect(
        CollectConfig(
            tasks=tasks, episodes=args.episodes, out=args.out, workers=args.workers, image_size=args.image_size,
            cameras=tuple(args.cameras), wrist_camera=args.wrist_camera, camera_jitter=args.camera_jitter, seed=args.seed,
            settle=args.settle, start_spread=args.start_spread, start_near=args.start_near,
        )
    )
    print(f"wrote {summary['episodes']} episodes of {', '.join(tasks)} to {args.out} in {summary['seconds']:.1f} s")
    return 0


def _viz(args: argparse.Namespace) -> int:
    from action_images.viz import visualize

    video, sheet = visualize(args.dataset, args.episode, args.out)
    print(f"wrote {video} and {sheet}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from action_images.pipeline import ActionImagesPipeline

    ActionImagesPipeline.from_checkpoint(args.checkpoint).save_pretrained(args.out)
    print(f"wrote the pipeline folder {args.out}")
    return 0


def _clip_options(args: argparse.Namespace) -> dict:
    return dict(
        num_frames=args.num_frames, stride=args.stride, image_size=args.image_size, cameras=args.cameras,
        steps=args.steps, seed=args.seed, progress=True,
    )


def _label(args: argparse.Namespace) -> int:
    from action_images.label import label_dataset, load_pipeline

    summary = label_dataset(
        load_pipeline(args.checkpoint), args.input, args.output, hide_ground_truth=not args.anchor_on_ground_truth,
        first_pose=args.first_pose, **_clip_options(args),
    )
    print(
        f"labelled {summary['frames']} frames of {summary['episodes']} episodes into {summary['output']} in "
        f"{summary['seconds']:.1f} s ({summary['frames_per_s']:.1f} frames/s); confident frames: {summary['confident_fraction']:.1%}"
    )
    if "position_error_cm_median" in summary:
        print(
            f"against the recorded poses (hidden while labelling; frames ≥ 1): position error median "
            f"{summary['position_error_cm_median']:.2f} cm (mean {summary['position_error_cm_mean']:.2f} cm), "
            f"rotation error median {summary['rotation_error_deg_median']:.1f}°, gripper accuracy {summary['gripper_accuracy']:.1%}"
        )
    return 0


def _augment(args: argparse.Namespace) -> int:
    from action_images.augment import augment_dataset
    from action_images.label import load_pipeline

    summary = augment_dataset(
        load_pipeline(args.checkpoint), args.input, args.output, per_episode=args.per_episode, max_offset_m=args.max_offset,
        workspace_margin_m=args.workspace_margin, include_source=not args.generated_only, **_clip_options(args),
    )
    print(
        f"generated {summary['episodes_generated']} episodes ({summary['frames_generated']} frames) beside "
        f"{summary['episodes_copied']} recorded ones into {summary['output']}: {summary['episodes_per_s']:.2f} episodes/s, "
        f"{summary['frames_per_s']:.1f} frames/s; preview: {summary['preview']}"
    )
    return 0


def _eval(args: argparse.Namespace) -> int:
    from action_images.evaluate import EvalConfig, evaluate, load_policy, resolve_device, success_markdown

    policy = load_policy(
        args.checkpoint, cameras=args.cameras, num_frames=args.num_frames, stride=args.stride, image_size=args.image_size,
        mode=args.mode, replan_every=args.replan_every, steps=args.steps, guidance_scale=args.guidance_scale, device=resolve_device(args.device),
        candidates=args.candidates, keep_plan=args.keep_plan,
        guide_observation=None if args.guidance_on is None else args.guidance_on == "scene", anchor=args.anchor,
    )
    from action_images.policy import ActionImagesPolicy

    canvas = f"_{policy.mode.value}" if isinstance(policy, ActionImagesPolicy) else ""  # a chunk policy has no canvas
    label = args.label or f"{type(policy).__name__}{canvas}_k{policy.replan_every}"
    args.cameras = policy.cameras
    config = EvalConfig(
        tasks=tuple(t for item in args.task for t in item.split(",") if t), episodes=args.episodes, seed=args.seed,
        cameras=tuple(args.cameras), camera_jitter=args.camera_jitter, videos=args.videos, out=args.out, label=label,
    )
    table = evaluate(policy, config)
    print(success_markdown({label: table}))
    print(f"wrote {args.out / (label + '_success.json')} and videos in {args.out / 'videos'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="action-images",
        description="Action Images: render 7-DoF trajectories into per-camera action images, decode them back, "
        "and (as the project grows) train and use the multiview video-action model.",
    )
    parser.epilog = "Training and evaluation go through Lightning's CLI: action-images {fit,validate,test,predict} --config configs/sim_cpu.yaml (each with --help)."
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    roundtrip = commands.add_parser(
        "roundtrip",
        help="render a sample trajectory into action images, decode it back, print the errors, write mp4 + PNG",
        description="Render a sample trajectory (a descending helix with yaw, tilt and a gripper that closes "
        "half-way) into action images of several calibrated views, decode them back to 7-DoF poses and print "
        "the errors. Writes roundtrip.mp4 (overlay above, raw action images below) and roundtrip.png.",
    )
    roundtrip.add_argument("--out", type=Path, default=Path("demo_output"), help="output folder (default: demo_output)")
    roundtrip.add_argument("--size", type=int, default=256, help="image height and width in pixels (default: 256)")
    roundtrip.add_argument("--frames", type=int, default=41, help="trajectory length (default: 41)")
    roundtrip.add_argument("--views", type=int, default=3, help="number of cameras (default: 3)")
    roundtrip.add_argument("--axis-length", type=float, default=0.1, help="tool-axis length ℓ in metres (default: 0.1)")
    roundtrip.set_defaults(run=_roundtrip)

    collect = commands.add_parser(
        "collect",
        help="simulated demonstrations → a LeRobot v3.0 dataset with camera calibration",
        description="Run the scripted expert of each task in the MuJoCo simulator and write the successful "
        "episodes (RGB of every camera, per-frame intrinsics and camera-to-world extrinsics, end-effector "
        "state and absolute actions, instructions) as one LeRobot v3.0 dataset. Atomic: an interrupted run "
        "leaves no dataset behind.",
    )
    collect.add_argument("--task", nargs="+", required=True, help="task name(s): reach, push, pick_place, stack, turn (comma or space separated)")
    collect.add_argument("--episodes", type=int, required=True, help="successful episodes per task")
    collect.add_argument("--out", type=Path, required=True, help="dataset folder to create")
    collect.add_argument("--workers", type=int, default=1, help="simulation processes (default: 1)")
    collect.add_argument("--image-size", type=int, default=128, help="square image size in pixels (default: 128)")
    collect.add_argument("--cameras", nargs="+", default=["front", "left", "right"], help="fixed cameras (default: front left right)")
    collect.add_argument("--wrist-camera", action="store_true", help="also record the camera on the hand")
    collect.add_argument("--camera-jitter", type=float, default=0.0, help="random camera displacement range, metres (default: 0)")
    collect.add_argument("--seed", type=int, default=0, help="seed of the episode seeds (default: 0)")
    collect.add_argument("--settle", type=int, default=10,
                         help="steps the expert may go on after the first success to finish its phase, e.g. reach the "
                              "sphere's centre rather than stop on the tolerance boundary (default: 10; 0 stops at once)")
    collect.add_argument("--start-spread", type=float, default=0.0,
                         help="start each episode with the EE up to this many metres from home (x, y: ±; z: down only), "
                              "so demonstrations cover states off the expert's usual paths (default: 0, always home)")
    collect.add_argument("--start-near", type=float, default=0.0,
                         help="start each episode with the EE anywhere within this many metres (horizontally; 10-25 cm above "
                              "the table) of the expert's first waypoint — over the cube it grasps, behind the cube it pushes — "
                              "so demonstrations show it reaching the object from near misses (default: 0, off)")
    collect.set_defaults(run=_collect)

    viz = commands.add_parser(
        "viz",
        help="an episode's views with action images overlaid: mp4 + PNG contact sheet",
        description="Render the end-effector poses of one episode into action images, overlay them on each "
        "view's RGB and write an mp4 (views side by side) and a PNG contact sheet beside it.",
    )
    viz.add_argument("dataset", type=Path, help="a LeRobot v3.0/v2.1 dataset or a processed RLBench folder")
    viz.add_argument("--episode", type=int, default=0, help="episode index (default: 0)")
    viz.add_argument("--out", type=Path, required=True, help="output mp4 path (the PNG goes beside it)")
    viz.set_defaults(run=_viz)

    export = commands.add_parser(
        "export",
        help="a training checkpoint → an inference pipeline folder (safetensors, config, statistics, model card)",
        description="Load a training checkpoint (weights_only) and write an ActionImagesPipeline folder that "
        "ActionImagesPipeline.from_pretrained(DIR) loads.",
    )
    export.add_argument("--checkpoint", type=Path, required=True, help="a .ckpt written by action-images fit")
    export.add_argument("--out", type=Path, required=True, help="the pipeline folder to write")
    export.set_defaults(run=_export)

    def clip_arguments(command: argparse.ArgumentParser) -> None:
        command.add_argument("--num-frames", type=int, default=5, help="frames per window, as in training (default: 5)")
        command.add_argument("--stride", type=int, default=3, help="control steps between window frames, as in training (default: 3)")
        command.add_argument("--image-size", type=int, default=32, help="the model's square image size (default: 32)")
        command.add_argument("--steps", type=int, default=10, help="sampling steps (default: 10)")

    def dataset_arguments(command: argparse.ArgumentParser) -> None:
        command.add_argument("--checkpoint", type=Path, required=True, help="a pipeline folder (action-images export) or a training .ckpt")
        command.add_argument("--input", type=Path, required=True, help="the LeRobot v3.0/v2.1 dataset (or processed RLBench folder) to read; never modified")
        command.add_argument("--output", type=Path, required=True, help="the new dataset folder to create (must not exist)")
        command.add_argument("--cameras", nargs="+", default=None, help="the model's cameras, in training order (default: all of the dataset's)")
        command.add_argument("--seed", type=int, default=0, help="seed of the sampling noise (default: 0)")
        clip_arguments(command)

    label = commands.add_parser(
        "label",
        help="videos → a new dataset with 7-DoF actions (v2a over stitched windows) and a per-frame confidence",
        description="Label every frame of every episode with the model in v2a mode: sliding windows of the training "
        "clip shape, stitched from each episode's first pose (read from observation.state, or --first-pose), decoded "
        "to 7-DoF. Writes a new LeRobot v3.0 dataset (same videos and calibration, observation.state = the labelled "
        "poses, action = the next frame's, label.confidence per frame). When the input has recorded poses they stay "
        "hidden while labelling and the labelling error against them is printed. Atomic.",
    )
    dataset_arguments(label)
    label.add_argument("--first-pose", type=float, nargs=8, default=None, metavar="V",
                       help="x y z qx qy qz qw gripper of every episode's first frame, for datasets without poses")
    label.add_argument("--anchor-on-ground-truth", action="store_true",
                       help="start every window from the recorded pose of its first frame (evaluation only; default: hidden)")
    label.set_defaults(run=_label)

    augment = commands.add_parser(
        "augment",
        help="perturbed trajectories → generated RGB (a2v) → new episodes flagged as generated, with a preview",
        description="For each recorded episode, make N new trajectories (smooth offsets of the recorded one, kept in "
        "the workspace its poses span), render their action images and generate the matching RGB video with the "
        "model in a2v mode. Writes a new LeRobot v3.0 dataset at the model's image size: the recorded episodes "
        "(augment.generated = 0) and the generated ones (augment.generated = 1), and preview.png, a contact sheet "
        "of the generated episodes. Atomic.",
    )
    dataset_arguments(augment)
    augment.add_argument("--per-episode", type=int, default=1, help="generated episodes per recorded episode (default: 1)")
    augment.add_argument("--max-offset", type=float, default=0.05, help="largest displacement from the recorded trajectory, metres (default: 0.05)")
    augment.add_argument("--workspace-margin", type=float, default=0.02, help="margin around the recorded positions' box, metres (default: 0.02)")
    augment.add_argument("--generated-only", action="store_true", help="write only the generated episodes")
    augment.set_defaults(run=_augment)

    evaluation = commands.add_parser(
        "eval",
        help="closed-loop rollouts in the simulator: success table with 95 %% intervals, videos of what the model imagined",
        description="Run a trained policy (an Action Images checkpoint or pipeline folder, or a checkpoint of the baseline or ImageWAM) "
        "in the MuJoCo simulator on seeded episodes that no training run saw, replanning every k control steps "
        "(k = the whole horizon is the paper's open-loop protocol). Prints and writes the success table (per task, "
        "Wilson 95 % intervals) and mp4s: the real views on top, and for Action Images the imagined RGB and action images below.",
    )
    evaluation.add_argument("--checkpoint", type=Path, required=True, help="a .ckpt of action-images fit (any of the three models) or a pipeline folder")
    evaluation.add_argument("--task", nargs="+", required=True, help="task name(s): reach, push, pick_place, stack, turn")
    evaluation.add_argument("--episodes", type=int, default=50, help="episodes per task (default: 50)")
    evaluation.add_argument("--replan-every", type=int, default=None, help="control steps per generation (default: the whole horizon, open loop)")
    evaluation.add_argument("--mode", choices=["joint", "policy"], default=None,
                            help="canvas of the Action Images model (default: the one it was trained on)")
    evaluation.add_argument("--camera-jitter", type=float, default=0.0, help="random camera displacement, metres (default: 0; > 0 tests unseen placements)")
    evaluation.add_argument("--cameras", nargs="+", default=None, help="the model's cameras (default: those it was trained on)")
    evaluation.add_argument("--seed", type=int, default=100_000, help="first episode seed (default: 100000, unseen by collect)")
    evaluation.add_argument("--videos", type=int, default=2, help="episodes recorded per task (default: 2)")
    evaluation.add_argument("--label", default=None, help="name of this policy in the outputs")
    evaluation.add_argument("--out", type=Path, default=Path("eval_output"), help="output folder (default: eval_output)")
    evaluation.add_argument("--num-frames", type=int, default=None, help="frames per generation (default: as trained)")
    evaluation.add_argument("--stride", type=int, default=None, help="control steps between generated frames (default: as trained)")
    evaluation.add_argument("--image-size", type=int, default=None, help="the model's image size (default: as trained)")
    evaluation.add_argument("--steps", type=int, default=10, help="sampling steps (default: 10)")
    evaluation.add_argument("--guidance-scale", type=float, default=1.0,
                            help="classifier-free guidance of an Action Images model on its instruction (default: 1, none; "
                                 "each generation then costs two passes)")
    evaluation.add_argument("--guidance-on", choices=["scene", "text"], default=None,
                            help="what guidance amplifies: 'scene' = the instruction and the observation (models trained with "
                                 "model.observation_dropout > 0), 'text' = the instruction alone (default: as the model was trained)")
    evaluation.add_argument("--candidates", type=int, default=1,
                            help="plans sampled per generation, in one batch (ImageWAM: chunks from one prefix pass); the policy executes the one "
                                 "whose end its goal readout finds likeliest (models trained with model.goal_readout_weight > 0; default 1: no choice)")
    evaluation.add_argument("--anchor", action="store_true",
                            help="move each plan's (chunk's) end to the point the model's goal readout names, triangulated over the "
                                 "views (models trained with model.goal_readout_weight > 0; default: execute the plan as generated)")
    evaluation.add_argument("--keep-plan", action="store_true",
                            help="at a replan, keep executing the current plan unless a new one's end scores higher on the fresh goal "
                                 "readout (models with a goal readout; default: every replan starts a new plan)")
    evaluation.add_argument("--device", default="auto",
                            help="where the model runs: cpu, cuda, cuda:1 … (default: auto, the first GPU if there is one; the simulator always runs on the CPU)")
    evaluation.set_defaults(run=_eval)
    return parser


LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


def lightning_cli(argv: list[str]) -> int:
    """`fit / validate / test / predict`: Lightning's own CLI over the model and the data module."""
    from lightning.pytorch.cli import LightningCLI

    from datamodules.datamodule import RobotDataModule

    class ActionImagesCLI(LightningCLI):
        def add_arguments_to_parser(self, parser) -> None:
            # Any LightningModule by `model: class_path:` (the baseline, ImageWAM); without one, the
            # Action Images model, so its configs name only its arguments.
            parser.set_defaults({"model": {"class_path": "action_images.module.ActionImagesModule"}})
            # The vocabulary text encoder is learned from the data's instructions; linking them at
            # instantiation builds it before any callback (e.g. EMA) copies the model.
            parser.link_arguments("data", "model.init_args.instructions", compute_fn=lambda data: data.instructions(), apply_on="instantiate")

    ActionImagesCLI(None, RobotDataModule, subclass_mode_model=True, args=argv, save_config_kwargs={"overwrite": True})
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in LIGHTNING_COMMANDS:
        return lightning_cli(argv)
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
