import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from datamodules.media import read_video, write_video


def test_roundtrip_command_writes_video_and_contact_sheet(tmp_path):
    command = shutil.which("action-images") or sys.executable
    args = [command] if command != sys.executable else [command, "-m", "action_images.cli"]
    result = subprocess.run(
        [*args, "roundtrip", "--out", str(tmp_path), "--size", "64", "--frames", "6", "--views", "2"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "position_error_mm_median" in result.stdout
    video = read_video(tmp_path / "roundtrip.mp4")
    assert video.shape == (6, 128, 128, 3)  # overlays above action images, two views side by side
    sheet = np.asarray(Image.open(tmp_path / "roundtrip.png"))
    assert sheet.shape == (128, 6 * 64, 3)


def test_help_explains_the_commands():
    from action_images.cli import build_parser

    text = build_parser().format_help()
    assert "roundtrip" in text and "action images" in text


def test_video_round_trip_and_corrupt_file(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (5, 32, 48, 3), dtype=np.uint8)
    frames[:] = frames[:, :1, :1]  # flat colours survive compression
    write_video(tmp_path / "a.mp4", frames, fps=10)
    back = read_video(tmp_path / "a.mp4")
    assert back.shape == frames.shape
    assert np.abs(back.astype(int) - frames.astype(int)).mean() < 3
    (tmp_path / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    with pytest.raises(ValueError, match=r"corrupt or unreadable video file .*bad\.mp4"):
        read_video(tmp_path / "bad.mp4")
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        read_video(tmp_path / "missing.mp4")


def test_failed_write_leaves_nothing_behind(tmp_path):
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "odd.mp4", np.zeros((2, 31, 32, 3), dtype=np.uint8))
    with pytest.raises(Exception):  # fails inside the encoder, after the temporary file exists
        write_video(tmp_path / "codec.mp4", np.zeros((2, 32, 32, 3), dtype=np.uint8), codec="no-such-codec")
    assert list(tmp_path.iterdir()) == []
