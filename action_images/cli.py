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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="action-images",
        description="Action Images: render 7-DoF trajectories into per-camera action images, decode them back, "
        "and (as the project grows) train and use the multiview video-action model.",
    )
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
