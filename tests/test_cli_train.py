"""`srl-train` / `srl-eval` / `srl-demo` end to end on a tiny synthetic run: checkpoints in the shared
format, resuming at the saved step, metrics.json, load_model errors."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from srl_plugin.training import cli_demo, cli_eval, cli_train
from srl_plugin.runtime import load_model, read_checkpoint

TINY = [
    "data.batch_size=2", "data.val_batch_size=2", "data.val_size=4", "trainer.enable_progress_bar=false",
    "trainer.log_every_n_steps=1", "scheduler.warmup_steps=1", "checkpoint_every_n_steps=2",
]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


def train_args(run_dir: Path, data_root: Path, max_steps: int, method: str = "srl") -> list[str]:
    return [f"experiment={method}/synthetic", f"output_dir={run_dir}", f"data.root={data_root}/synthetic",
            f"trainer.max_steps={max_steps}", "trainer.val_check_interval=2", *TINY]


def logged_rows(run_dir: Path, version: int) -> list[dict[str, str]]:
    with open(run_dir / "csv" / f"version_{version}" / "metrics.csv") as file:
        return list(csv.DictReader(file))


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    run_dir = tmp_path_factory.mktemp("run") / "srl"
    cli_train.main(train_args(run_dir, data_root, max_steps=2))
    cli_train.main(train_args(run_dir, data_root, max_steps=3))
    return run_dir


def test_checkpoints_follow_the_shared_format(resumed_run: Path) -> None:
    names = sorted(path.name for path in (resumed_run / "checkpoints").iterdir())
    assert names == ["last.ckpt", "step_00000002.ckpt", "step_00000003.ckpt"]
    checkpoint = read_checkpoint(resumed_run / "checkpoints" / "step_00000002.ckpt")
    assert checkpoint["global_step"] == 2
    assert checkpoint["hyper_parameters"]["config"]["method"] == "srl"
    model, _ = load_model(resumed_run)  # the synthetic patch-pixel backbone has no state of its own
    assert set(checkpoint["state_dict"]) == {f"model.{key}" for key in model.state_dict()}


def test_rerun_resumes_at_the_saved_step(resumed_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert read_checkpoint(resumed_run)["global_step"] == 3
    first, second = logged_rows(resumed_run, 0), logged_rows(resumed_run, 1)
    assert {int(row["step"]) for row in first if row["train/loss"]} == {0, 1}
    assert {int(row["step"]) for row in second if row["train/loss"]} == {2}
    base_lr = read_checkpoint(resumed_run)["hyper_parameters"]["config"]["optimizer"]["lr"]
    lr_at_step_2 = [float(row["lr-Adam"]) for row in second if row["lr-Adam"] and int(row["step"]) == 2]
    assert lr_at_step_2 == pytest.approx([base_lr * 0.5 ** ((2 - 1) / (3 - 1))])
    assert (resumed_run / "tensorboard").is_dir() and list((resumed_run / "images").glob("*.png"))


def test_load_model_rebuilds_the_trained_weights(resumed_run: Path) -> None:
    model, config = load_model(resumed_run)
    state = read_checkpoint(resumed_run)["state_dict"]
    assert not model.training and config.method == "srl"
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, state[f"model.{name}"], rtol=0, atol=0)


def test_eval_writes_metrics_and_prints_a_table(resumed_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_eval.main([str(resumed_run), "trainer.enable_progress_bar=false"]) == 0
    record = json.loads((resumed_run / "metrics.json").read_text())
    assert [path.name for path in (resumed_run / "eval_images").glob("*.png")] == ["val_masks_step00000003.png"]
    assert (record["method"], record["dataset"], record["step"], record["num_videos"]) == ("srl", "synthetic", 3, 4)
    assert record["global_batch"] == 2  # data.batch_size=2 on one device
    assert (record["protocol"], record["num_chunks"]) == ("full", None)
    for name in ("video_fg_ari", "image_fg_ari", "video_mbo", "image_mbo"):
        assert -1.0 <= record[name] <= 1.0
    out = capsys.readouterr().out
    assert "FG-ARI (%)" in out and "srl-eval: protocol full, scored 4 videos" in out
    assert cli_eval.main([str(resumed_run), "evaluation.protocol=official"]) == 1
    assert "no official recipe" in capsys.readouterr().err


def test_eval_rejects_unknown_keys_and_non_checkpoints(resumed_run: Path, tmp_path: Path, capsys) -> None:
    assert cli_eval.main([str(resumed_run), "data.no_such_key=1"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("srl-eval: error: unknown config key") and "Traceback" not in error
    with pytest.raises(ValueError, match="unknown config key"):
        cli_eval.main([str(resumed_run), "data.no_such_key=1", "--traceback"])
    with pytest.raises(FileNotFoundError, match="checkpoints/last.ckpt"):
        load_model(tmp_path)
    bogus = tmp_path / "weights.ckpt"
    torch.save({"state_dict": {"encoder.weight": torch.zeros(1)}}, bogus)
    with pytest.raises(ValueError, match="not an srl-plugin checkpoint"):
        load_model(bogus)
    (tmp_path / "text.ckpt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="not a readable torch checkpoint"):
        load_model(tmp_path / "text.ckpt")


def test_ssync_trains_resumes_and_evaluates(tmp_path: Path, data_root: Path) -> None:
    """3 steps with the synergy losses on from step 1 (30 % of model.max_steps=3), resumed at step 2, then
    evaluated."""
    run_dir = tmp_path / "ssync"
    cli_train.main([*train_args(run_dir, data_root, max_steps=2, method="ssync"), "model.max_steps=3"])
    cli_train.main([*train_args(run_dir, data_root, max_steps=3, method="ssync"), "model.max_steps=3"])
    assert read_checkpoint(run_dir)["global_step"] == 3
    first, second = logged_rows(run_dir, 0), logged_rows(run_dir, 1)
    assert {int(row["step"]) for row in second if row["train/loss"]} == {2}
    synergy_steps = {int(row["step"]) for row in first + second if row.get("train/loss_grp2deccls")}
    assert synergy_steps == {1, 2}
    cli_eval.main([str(run_dir), "trainer.enable_progress_bar=false"])
    record = json.loads((run_dir / "metrics.json").read_text())
    assert (record["method"], record["dataset"], record["step"], record["num_videos"]) == ("ssync", "synthetic", 3, 4)


def test_demo_trains_and_evaluates_every_method(
    tmp_path: Path, data_root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SRL_DATA_ROOT", str(data_root))
    cli_demo.main(["--out", str(tmp_path), "--all-methods", "--steps", "2", "--", *TINY,
                   "trainer.val_check_interval=2"])
    out = capsys.readouterr().out
    for method in ("srl", "slotcontrast", "videosaur", "slotcurri", "ssync"):
        record = json.loads((tmp_path / method / "metrics.json").read_text())
        assert (record["method"], record["step"], record["num_videos"]) == (method, 2, 4)
        assert f"| {method} | synthetic | srl-eval | 2 | full | 4 videos |" in out
