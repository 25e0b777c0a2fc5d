"""Training checkpoints leave out a frozen backbone the config rebuilds (name + weights hash instead), refuse a
rebuilt backbone with other weights, and keep only the newest `checkpoint.keep_last` step files."""
from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch

from srl_plugin.models.backbone import weights_sha256
from srl_plugin.runtime import BACKBONE_RECORD, BackboneMismatchError, compose_experiment, load_model, read_checkpoint
from srl_plugin.training import cli_train

TINY = [
    "data.batch_size=2", "data.val_batch_size=2", "data.val_size=2", "trainer.enable_progress_bar=false",
    "trainer.log_every_n_steps=1", "scheduler.warmup_steps=1", "trainer.val_check_interval=100",
    "evaluation.log_images=false", "checkpoint_every_n_steps=1", "checkpoint.keep_last=2",
]


def write_backbone_weights(path: Path, seed: int) -> Path:
    """A timm state dict for the synthetic experiment's tiny ViT, as a user's `weights_path` file."""
    node = compose_experiment("srl/synthetic", ["backbone=tiny_random_vit"]).model.backbone
    torch.manual_seed(seed)
    model = timm.create_model(node.model_name, pretrained=False, dynamic_img_size=True, num_classes=0, **node.model_kwargs)
    torch.save(model.state_dict(), path)
    return path


def train(run_dir: Path, data_root: Path, weights: Path, max_steps: int) -> None:
    """srl-train with --traceback: errors arrive as the exceptions the tests expect."""
    cli_train.main([
        "--traceback", "experiment=srl/synthetic", "backbone=tiny_random_vit", f"output_dir={run_dir}",
        f"data.root={data_root}/synthetic",
        f"trainer.max_steps={max_steps}", f"model.backbone.weights_path={weights}", *TINY,
    ])


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 4-step run (then resumed to 5) whose backbone comes from a weights file; returns (run_dir, weights)."""
    root = tmp_path_factory.mktemp("backbone_run")
    weights = write_backbone_weights(root / "vit.pth", seed=1)
    train(root / "run", root / "data", weights, max_steps=4)
    train(root / "run", root / "data", weights, max_steps=5)
    return root / "run", weights


def test_checkpoints_hold_no_backbone_and_only_the_newest_steps(run: tuple[Path, Path]) -> None:
    run_dir, weights = run
    folder = run_dir / "checkpoints"
    assert sorted(path.name for path in folder.glob("*.ckpt")) == ["last.ckpt", "step_00000004.ckpt", "step_00000005.ckpt"]
    model, _ = load_model(run_dir)
    expected = {"model_name": model.backbone.model_name, "weights_sha256": weights_sha256(model.backbone.model)}
    for path in folder.glob("*.ckpt"):
        checkpoint = read_checkpoint(path)
        assert not [key for key in checkpoint["state_dict"] if key.startswith("model.backbone.")]
        assert checkpoint[BACKBONE_RECORD] == expected
    assert read_checkpoint(run_dir)["global_step"] == 5
    trainable = sum(value.numel() for name, value in model.state_dict().items() if not name.startswith("backbone."))
    backbone = sum(value.numel() for value in model.backbone.state_dict().values())
    assert backbone > trainable  # the tiny ViT outweighs the slot model, so leaving it out is visible in size
    assert (folder / "last.ckpt").stat().st_size < 4 * (trainable * 3) + 200_000  # weights + Adam moments + metadata


def test_loaded_model_has_the_trained_weights_and_the_rebuilt_backbone(run: tuple[Path, Path]) -> None:
    run_dir, weights = run
    model, _ = load_model(run_dir)
    state = read_checkpoint(run_dir)["state_dict"]
    for name, value in model.state_dict().items():
        if not name.startswith("backbone."):
            torch.testing.assert_close(value, state[f"model.{name}"], rtol=0, atol=0)
    reference = torch.load(weights, weights_only=True)
    torch.testing.assert_close(model.backbone.model.blocks[0].attn.qkv.weight, reference["blocks.0.attn.qkv.weight"])


def test_other_backbone_weights_are_refused_on_load_and_resume(run: tuple[Path, Path], tmp_path: Path) -> None:
    run_dir, _ = run
    other = write_backbone_weights(tmp_path / "other.pth", seed=2)
    checkpoint = read_checkpoint(run_dir)
    config = checkpoint["hyper_parameters"]["config"]
    config["model"]["backbone"]["weights_path"] = str(other)
    moved = tmp_path / "moved.ckpt"
    torch.save(checkpoint, moved)
    with pytest.raises(BackboneMismatchError, match="weights_path"):
        load_model(moved)
    with pytest.raises(BackboneMismatchError, match="was trained on the frozen backbone"):
        train(run_dir, run_dir.parent / "data", other, max_steps=6)


def test_random_backbones_stay_in_the_checkpoint(tmp_path: Path) -> None:
    """A randomly initialised backbone cannot be rebuilt from its name, so its weights are kept."""
    cli_train.main([
        "experiment=srl/synthetic", "backbone=tiny_random_vit", f"output_dir={tmp_path / 'run'}",
        f"data.root={tmp_path}/synthetic", "trainer.max_steps=1", *TINY,
    ])
    checkpoint = read_checkpoint(tmp_path / "run")
    assert BACKBONE_RECORD not in checkpoint
    assert any(key.startswith("model.backbone.") for key in checkpoint["state_dict"])
