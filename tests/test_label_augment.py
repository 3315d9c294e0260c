"""Labelling (`v2a` over stitched windows) and augmentation (`a2v` on perturbed trajectories): new
datasets that the project's reader loads, with every frame labelled / generated episodes flagged."""

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from PIL import Image
from synthetic_data import CAMERAS, write_synthetic_dataset
from test_module import tiny_module

from action_images.augment import GENERATED_KEY, SOURCE_KEY, augment_dataset, perturb_trajectory, workspace_box
from action_images.label import CONFIDENCE_KEY, POSE_FORMAT, label_dataset, load_episode, plan_chains, recorded_poses
from action_images.pipeline import ActionImagesPipeline
from action_images.viz import visualize
from datamodules.lerobot_reader import LeRobotDataset
from rendering.cameras import Cameras
from rendering.decoder import decode_action_images
from rendering.poses import pose_from_vector
from rendering.renderer import render_action_images

LENGTHS, SIZE = (12, 9), 16
CLIP = dict(num_frames=5, stride=3, image_size=SIZE, steps=2, progress=False)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("label") / "data"
    write_synthetic_dataset(root, LENGTHS, size=SIZE)
    return root


@pytest.fixture(scope="module")
def pipeline():
    torch.manual_seed(0)
    module = tiny_module(instructions=["reach the cube", "push the cube"])  # untrained: shapes and formats only
    return ActionImagesPipeline(module, FlowMatchEulerDiscreteScheduler(shift=1.0))


def fingerprint(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("num_frames", [2, 3, 5])
@pytest.mark.parametrize("stride", [1, 2, 3, 4])
def test_windows_cover_every_frame_and_chain(num_frames, stride):
    for length in range(1, 20):
        chains = plan_chains(length, num_frames, stride)
        predicted = set()
        for chain in chains:
            assert chain[0][0] == 0  # every chain starts from the given frame 0
            for previous, window in zip(chain, chain[1:]):
                assert window[0] == previous[-1]  # stitched: a window starts where the last one ended
            for window in chain:
                assert len(window) == num_frames and window.min() >= 0 and window.max() <= length - 1
                assert (np.diff(window) >= 0).all()
                predicted.update(window[1:].tolist())
        assert predicted == set(range(1, length)), (length, num_frames, stride)


def test_label_writes_a_new_dataset_with_every_frame_labelled(dataset, pipeline, tmp_path):
    before = fingerprint(dataset)
    summary = label_dataset(pipeline, dataset, tmp_path / "labelled", **CLIP)
    assert fingerprint(dataset) == before  # the input is never touched
    out, source = LeRobotDataset(tmp_path / "labelled"), LeRobotDataset(dataset)
    assert out.num_episodes == source.num_episodes and out.cameras == source.cameras and out.has_calibration
    assert out.rotation_format("observation.state").value == "quat_xyzw"
    assert CONFIDENCE_KEY in out.features
    for e, length in enumerate(LENGTHS):
        state, action = out.poses(e), out.poses(e, "action")
        assert state.shape == (length, 8) and np.isfinite(state).all()
        np.testing.assert_allclose(action, np.concatenate([state[1:], state[-1:]]))  # absolute targets: the next pose
        np.testing.assert_allclose(state[0], source.poses(e)[0], atol=1e-6)  # frame 0 is the given pose
        confidence = out.table(e)[CONFIDENCE_KEY]
        assert confidence.shape == (length,) and confidence[0] == 1 and ((confidence >= 0) & (confidence <= 1)).all()
        assert out.frames(e, "front", [0]).shape == (1, SIZE, SIZE, 3)  # the videos, at their own size
        np.testing.assert_allclose(out.cameras_of(e)[0], source.cameras_of(e)[0])
        assert out.instruction(e) == source.instruction(e)
    for key in ("position_error_cm_median", "rotation_error_deg_median", "gripper_accuracy"):
        assert np.isfinite(summary[key])
    assert summary["frames"] == sum(LENGTHS) and summary["frames_evaluated"] == sum(LENGTHS) - len(LENGTHS)


class OraclePipeline:
    """Answers `v2a` with the action images of the recorded poses of the frames it is shown (found by
    matching the RGB), decoded like the real pipeline, plus a known offset; records the first poses
    it is given."""

    def __init__(self, dataset: Path, size: int, offset: float = 0.0):
        self.model = SimpleNamespace(device=torch.device("cpu"))
        source = LeRobotDataset(dataset)
        self.frames = torch.cat([load_episode(source, e, source.cameras, size).small.transpose(0, 1).flatten(1) for e in range(source.num_episodes)])
        self.poses = torch.from_numpy(np.concatenate([recorded_poses(source, e, "observation.state", source.rotation_format()) for e in range(source.num_episodes)]))
        self.offset, self.given = offset, []

    def __call__(self, mode, images, cameras, actions, **options):
        assert mode == "v2a"
        batch, views, frames = images.shape[:3]
        shown = images.transpose(1, 2).flatten(3).flatten(2, 3)  # (B, T, V·3·H·W)
        nearest = torch.cdist(shown.reshape(batch * frames, -1), self.frames).argmin(-1).reshape(batch, frames)
        self.given.append((actions[:, 0].clone(), self.poses[nearest[:, 0]]))  # (given, recorded) first poses
        pose = pose_from_vector(self.poses[nearest], POSE_FORMAT)
        action_images = render_action_images(pose.positions + torch.tensor([self.offset, 0, 0]), pose.rotations, pose.gripper, cameras)
        return SimpleNamespace(rgb=images, action_images=action_images, decoded=decode_action_images(action_images, cameras))


def test_stitched_labels_recover_the_hidden_ground_truth(tmp_path):
    root = tmp_path / "data"
    write_synthetic_dataset(root, (20, 14), size=32)  # long enough for chains of several windows
    options = dict(CLIP, image_size=32)
    oracle = OraclePipeline(root, 32)
    summary = label_dataset(oracle, root, tmp_path / "exact", **options)
    assert summary["position_error_cm_median"] < 0.5 and summary["rotation_error_deg_median"] < 3
    assert summary["gripper_accuracy"] == 1.0 and summary["confident_fraction"] > 0.9

    # Hidden ground truth: chained windows start from the pose decoded before (recorded + 2 cm here),
    # never from the recorded pose; with hide_ground_truth=False they start from the recorded one.
    for hide, expected in ((True, 0.02), (False, 0.0)):
        spy = OraclePipeline(root, 32, offset=0.02)
        label_dataset(spy, root, tmp_path / f"spy_{hide}", hide_ground_truth=hide, **options)
        given, recorded = (torch.cat(parts) for parts in zip(*spy.given))
        distances = (given[:, :3] - recorded[:, :3]).norm(dim=-1)  # to the recorded pose of the window's first frame
        chained = distances > 1e-5
        if hide:
            assert chained.any()
            np.testing.assert_allclose(distances[chained].numpy(), expected, atol=3e-3)
        else:
            assert not chained.any()


def test_label_errors_are_clear(dataset, pipeline, tmp_path):
    with pytest.raises(FileNotFoundError, match="input dataset not found: .*nowhere"):
        label_dataset(pipeline, tmp_path / "nowhere", tmp_path / "out", **CLIP)
    (tmp_path / "taken").mkdir()
    with pytest.raises(FileExistsError, match="output dataset already exists: .*taken"):
        label_dataset(pipeline, dataset, tmp_path / "taken", **CLIP)
    unlabelled = tmp_path / "unlabelled"
    write_synthetic_dataset(unlabelled, (7,), size=SIZE, has_state=False, has_action=False)
    with pytest.raises(ValueError, match="needs the first end-effector pose"):
        label_dataset(pipeline, unlabelled, tmp_path / "out", **CLIP)
    assert not (tmp_path / "out").exists()
    home = LeRobotDataset(dataset).poses(0)[0]
    summary = label_dataset(pipeline, unlabelled, tmp_path / "out", first_pose=home, **CLIP)
    assert "position_error_cm_median" not in summary  # nothing to compare with
    assert LeRobotDataset(tmp_path / "out").poses(0).shape == (7, 8)
    uncalibrated = tmp_path / "uncalibrated"
    write_synthetic_dataset(uncalibrated, (7,), size=SIZE, calibrated=False)
    with pytest.raises(ValueError, match="calibrat.*uncalibrated"):
        label_dataset(pipeline, uncalibrated, tmp_path / "out2", **CLIP)


def test_perturbed_trajectories_start_on_the_recording_and_stay_in_the_workspace():
    rng = np.random.default_rng(0)
    poses = np.zeros((20, 8), np.float32)
    poses[:, 0] = np.linspace(0, 0.3, 20)
    poses[:, 6] = 1
    low, high = workspace_box([poses], 0.02)
    for _ in range(20):
        new = perturb_trajectory(poses, rng, 0.05, low, high)
        np.testing.assert_array_equal(new[0], poses[0])
        np.testing.assert_array_equal(new[:, 3:], poses[:, 3:])
        assert (np.linalg.norm(new[:, :3] - poses[:, :3], axis=-1) <= 0.05 + 1e-6).all()
        assert ((new[:, :3] >= low - 1e-6) & (new[:, :3] <= high + 1e-6)).all()


def test_augment_writes_flagged_episodes_a_preview_and_replays_in_viz(dataset, pipeline, tmp_path):
    before = fingerprint(dataset)
    summary = augment_dataset(pipeline, dataset, tmp_path / "augmented", per_episode=2, max_offset_m=0.05, **CLIP)
    assert fingerprint(dataset) == before
    out, source = LeRobotDataset(tmp_path / "augmented"), LeRobotDataset(dataset)
    assert out.num_episodes == 3 * len(LENGTHS) and out.has_calibration and out.cameras == list(CAMERAS)
    assert summary["episodes_generated"] == 2 * len(LENGTHS) and summary["frames_generated"] == 2 * sum(LENGTHS)
    assert summary["episodes_per_s"] > 0 and summary["frames_per_s"] > 0
    low, high = np.array(summary["workspace_low"]), np.array(summary["workspace_high"])
    generated = []
    for e in range(out.num_episodes):
        table = out.table(e)
        flags, origin = table[GENERATED_KEY], int(table[SOURCE_KEY][0])
        assert len(set(flags.tolist())) == 1 and (table[SOURCE_KEY] == origin).all()
        assert out.instruction(e) == source.instruction(origin)
        state, recorded = out.poses(e), source.poses(origin)
        assert state.shape == recorded.shape
        if flags[0] == 1:
            generated.append(e)
            np.testing.assert_allclose(state[0], recorded[0], atol=1e-6)  # starts where the recording starts
            assert ((state[:, :3] >= low - 1e-6) & (state[:, :3] <= high + 1e-6)).all()
            assert np.linalg.norm(state[:, :3] - recorded[:, :3], axis=-1).max() <= 0.05 + 1e-5
        else:
            np.testing.assert_allclose(state, recorded, atol=1e-6)
        assert out.frames(e, "front", np.arange(len(state))).shape == (len(state), SIZE, SIZE, 3)
    assert len(generated) == 2 * len(LENGTHS)
    info = json.loads((tmp_path / "augmented" / "meta" / "info.json").read_text())
    assert info["features"][GENERATED_KEY]["dtype"] == "int64"
    preview = np.asarray(Image.open(summary["preview"]))
    assert Path(summary["preview"]) == tmp_path / "augmented" / "preview.png"
    assert preview.shape == (4 * len(CAMERAS) * SIZE, 8 * SIZE, 3)  # 4 generated episodes × 8 frames, views stacked
    video, sheet = visualize(tmp_path / "augmented", generated[0], tmp_path / "viz" / "generated.mp4")
    assert video.exists() and sheet.exists()


def test_augment_resizes_cameras_with_the_images(pipeline, tmp_path):
    root = tmp_path / "data"
    write_synthetic_dataset(root, (7,), size=32)
    augment_dataset(pipeline, root, tmp_path / "out", include_source=False, **CLIP)
    out, source = LeRobotDataset(tmp_path / "out"), LeRobotDataset(root)
    assert out.num_episodes == 1 and out.table(0)[GENERATED_KEY].tolist() == [1] * 7
    intrinsics, extrinsics = source.cameras_of(0)
    expected = Cameras(torch.from_numpy(intrinsics), torch.from_numpy(extrinsics), 32, 32).resize(SIZE, SIZE)
    np.testing.assert_allclose(out.cameras_of(0)[0], expected.intrinsics.numpy(), atol=1e-5)
    np.testing.assert_allclose(out.cameras_of(0)[1], extrinsics, atol=1e-6)


def test_augment_errors_are_clear(dataset, pipeline, tmp_path):
    with pytest.raises(FileNotFoundError, match="input dataset not found: .*nowhere"):
        augment_dataset(pipeline, tmp_path / "nowhere", tmp_path / "out", **CLIP)
    with pytest.raises(FileExistsError, match="output dataset already exists"):
        augment_dataset(pipeline, dataset, dataset, **CLIP)
    uncalibrated = tmp_path / "uncalibrated"
    write_synthetic_dataset(uncalibrated, (7,), size=SIZE, calibrated=False)
    with pytest.raises(ValueError, match="needs calibrated cameras: .*uncalibrated"):
        augment_dataset(pipeline, uncalibrated, tmp_path / "out", **CLIP)
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="per_episode"):
        augment_dataset(pipeline, dataset, tmp_path / "out", per_episode=0, **CLIP)
