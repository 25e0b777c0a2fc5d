"""The effective global batch (batch x devices x nodes x accumulation) is recorded in every run, compared with
the published recipe, and drives VideoSAUR's learning rate (docs/METHODS.md §1.12, §6.1 item 6)."""
from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from srl_plugin.runtime import batch_layout, compose_experiment, read_checkpoint, recipe_mismatch, resolved_container
from srl_plugin.training import cli_train


@pytest.mark.parametrize(
    ("overrides", "global_batch", "matches"),
    [
        (["trainer.devices=2"], 128, True),
        (["trainer.devices=1", "+trainer.accumulate_grad_batches=2"], 128, True),  # 2 x 64 on one GPU
        (["trainer.devices=1"], 64, False),
        (["trainer.devices=4", "data.batch_size=32"], 128, False),  # same global batch, half the negatives
        (["trainer.devices=2", "trainer.num_nodes=2"], 256, False),
    ],
)
def test_srl_global_batch_against_the_published_2x64(overrides: list[str], global_batch: int, matches: bool) -> None:
    config = compose_experiment("srl/movi_c", overrides)
    assert batch_layout(config)["global_batch"] == global_batch
    assert resolved_container(config)["global_batch"] == global_batch
    mismatch = recipe_mismatch(config)
    assert (mismatch is None) == matches
    if mismatch:
        assert "64 per device x 2 device(s) (global 128" in mismatch and f"global batch {global_batch} =" in mismatch


@pytest.mark.parametrize(
    ("overrides", "lr"),
    [([], 4e-4), (["data.batch_size=64"], 2e-4), (["trainer.devices=2"], 8e-4), (["optimizer.lr=1e-3"], 1e-3)],
)
def test_videosaur_lr_follows_the_official_batch_rule(overrides: list[str], lr: float) -> None:
    for dataset in ("movi_c", "movi_e", "ytvis2021"):
        container = resolved_container(compose_experiment(f"videosaur/{dataset}", ["trainer.accelerator=cpu", *overrides]))
        assert container["optimizer"]["lr"] == pytest.approx(lr)


def test_every_published_experiment_states_its_recipe() -> None:
    for method in ("srl", "slotcontrast", "videosaur", "slotcurri", "ssync"):
        for dataset in ("movi_c", "movi_e", "ytvis2021"):
            config = compose_experiment(f"{method}/{dataset}", ["trainer.devices=1"])
            recipe = config.recipe
            assert recipe.batch_per_device == config.data.batch_size, f"{method}/{dataset}"
            assert recipe.devices == (2 if method in ("srl", "slotcurri", "ssync") else 1), f"{method}/{dataset}"


def test_a_run_records_its_global_batch_and_warns_off_recipe(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with pytest.warns(UserWarning, match=r"published recipe is 4 per device x 2 device\(s\)"):
        cli_train.main([
            "experiment=srl/synthetic", f"output_dir={run_dir}", f"data.root={tmp_path}/synthetic",
            "trainer.max_steps=1", "data.batch_size=2", "data.val_size=2", "trainer.enable_progress_bar=false",
            "recipe={batch_per_device: 4, devices: 2}", "trainer.val_check_interval=100",
        ])
    assert OmegaConf.load(run_dir / "config.yaml").global_batch == 2
    assert read_checkpoint(run_dir)["hyper_parameters"]["config"]["global_batch"] == 2
