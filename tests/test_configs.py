"""Every config parses against the real classes; the full-scale ones match the reference on `meta`."""

from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from lightning.pytorch.cli import LightningArgumentParser

from action_images.architectures import WAN2_1_T2V_1_3B, WAN2_1_VAE, WAN2_2_TI2V_5B, WAN2_2_VAE
from action_images.canvas import CanvasLayout, Mode
from action_images.module import ActionImagesModule
from action_images.transformer import ActionImagesTransformer
from datamodules.datamodule import RobotDataModule

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_parses_against_the_classes(path):
    parser = LightningArgumentParser()
    parser.add_lightning_class_args(L.LightningModule, "model", subclass_mode=True)  # as the CLI: any module by class_path
    parser.set_defaults({"model": {"class_path": "action_images.module.ActionImagesModule"}})
    parser.add_lightning_class_args(RobotDataModule, "data")
    parser.add_argument("--trainer", type=dict)
    parser.add_argument("--seed_everything", type=int)
    parser.parse_path(str(path))  # type-checks every key; classes are not instantiated
    assert path.read_text().startswith("# "), "each config is documented at its top"


@pytest.mark.parametrize(
    "name, architecture, vae, billions",
    [("wan2_2_ti2v_5b", WAN2_2_TI2V_5B, WAN2_2_VAE, 5.0), ("wan2_1_t2v_1_3b", WAN2_1_T2V_1_3B, WAN2_1_VAE, 1.42)],
)
def test_full_scale_configs_match_the_reference(name, architecture, vae, billions):
    config = yaml.safe_load((Path(__file__).parent.parent / "configs" / f"{name}.yaml").read_text())
    with torch.device("meta"):
        model = ActionImagesTransformer(**architecture)
    wan = sum(p.numel() for n, p in model.named_parameters() if n.startswith("wan."))
    assert wan / 1e9 == pytest.approx(billions, rel=0.02)

    data = config["data"]
    latent_frames = 1 + (data["num_frames"] - 1) // vae["temporal_factor"]
    latent_side = data["image_size"] // vae["spatial_factor"]
    layout = CanvasLayout.for_mode(Mode.parse(config["model"]["canvas"]), views=2, frames=latent_frames, order=config["model"]["order"])
    p_t, p_h, p_w = architecture["patch_size"]
    tokens = layout.length // p_t * (latent_side // p_h) * (latent_side // p_w)
    assert latent_frames == 11 and layout.length == 44
    assert tokens == pytest.approx(11_000, rel=0.05)  # the paper's ~11k tokens
    assert config["model"]["lr"] == 5e-7 and config["model"]["warmup_steps"] == 1000
    assert config["trainer"]["gradient_clip_val"] == 1.0 and config["trainer"]["precision"].startswith("bf16")


def test_nested_options_keep_their_types_on_the_command_line():
    """`--model.transformer.num_layers 8` must give the integer 8, not the string "8"."""
    parser = LightningArgumentParser()
    parser.add_lightning_class_args(ActionImagesModule, "model")
    config = parser.parse_args(["--model.transformer", "{num_layers: 2}", "--model.transformer.attention_head_dim", "64"])
    assert config.model.transformer == {"num_layers": 2, "attention_head_dim": 64}
