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
    return parser


LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


def lightning_cli(argv: list[str]) -> int:
    """`fit / validate / test / predict`: Lightning's own CLI over the model and the data module."""
    from lightning.pytorch.cli import LightningCLI

    from action_images.module import ActionImagesModule
    from datamodules.datamodule import RobotDataModule

    class ActionImagesCLI(LightningCLI):
        def add_arguments_to_parser(self, parser) -> None:
            # The vocabulary text encoder is learned from the data's instructions; linking them at
            # instantiation builds it before any callback (e.g. EMA) copies the model.
            parser.link_arguments("data", "model.instructions", compute_fn=lambda data: data.instructions(), apply_on="instantiate")

    ActionImagesCLI(ActionImagesModule, RobotDataModule, args=argv, save_config_kwargs={"overwrite": True})
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in LIGHTNING_COMMANDS:
        return lightning_cli(argv)
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
