"""The pieces behind a training run that never fails silently (issue 13), each on its own: the non-finite guard
on a toy module, the run lock against real processes, resume selection, orphan cleanup, a full disk, and
checkpoint / state-dict mismatches listed in full."""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from srl_plugin import atomic
from srl_plugin.models.state import state_dict_differences
from srl_plugin.runtime import CheckpointError
from srl_plugin.training.checkpoints import AtomicCheckpointIO, newest_valid_checkpoint, remove_orphan_temporaries
from srl_plugin.training.guard import NonFiniteGuard, NonFiniteTrainingError
from srl_plugin.training.run_lock import LOCK_FILE, RunLock, RunLockedError


class ToyModule(L.LightningModule):
    """Fits ``y = w * x``; a NaN input poisons the loss, an ``x = -1`` batch poisons only the gradient."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1))

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> dict:
        loss = (self.weight * batch - 2.0).pow(2).mean()
        if bool((batch == -1).any()):
            loss = loss + (self.weight * 0.0).sqrt().sum()  # finite value, NaN gradient (0 * inf)
        return {"loss": loss, "losses": {"total": loss.detach(), "fit": loss.detach()}}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit_toy(batches: list[float], guard: NonFiniteGuard, module: ToyModule | None = None) -> ToyModule:
    module = module or ToyModule()
    trainer = L.Trainer(max_steps=len(batches), callbacks=[guard], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(module, DataLoader([torch.tensor([value]) for value in batches], batch_size=None))
    return module


def test_a_non_finite_loss_stops_at_its_step_naming_the_term() -> None:
    with pytest.raises(NonFiniteTrainingError, match=r"at step 2: non-finite loss term\(s\) total=nan, fit=nan"):
        fit_toy([1.0, 1.0, float("nan"), 1.0], NonFiniteGuard(0))


def test_a_non_finite_gradient_stops_naming_the_parameter_and_keeps_the_weights() -> None:
    module = ToyModule()
    with pytest.raises(NonFiniteTrainingError, match=r"at step 1: non-finite gradient\(s\) of weight\. The weights"):
        fit_toy([1.0, -1.0], NonFiniteGuard(0), module)
    assert module.weight.item() == pytest.approx(1.2)  # step 0 (SGD, lr 0.1, gradient -2) only


def test_bad_steps_are_skipped_up_to_the_allowance_without_touching_the_weights() -> None:
    guard = NonFiniteGuard(2)
    module = fit_toy([1.0, float("nan"), -1.0, 1.0], guard)
    assert guard.skipped == 2
    assert module.weight.item() == pytest.approx(1.2 + 0.1 * 2 * 0.8)  # steps 0 and 3 only
    with pytest.raises(NonFiniteTrainingError, match=r"at step 3 after skipping 2 step\(s\) \(nonfinite_skips=2\)"):
        fit_toy([1.0, float("nan"), -1.0, float("nan")], NonFiniteGuard(2))


def test_checkpoints_with_non_finite_weights_are_never_written(tmp_path: Path) -> None:
    target = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"model.w": torch.ones(2)}}, target)
    with pytest.raises(CheckpointError, match=r"refusing to write .*model.w"):
        AtomicCheckpointIO().save_checkpoint({"state_dict": {"model.w": torch.tensor([1.0, float("inf")])}}, target)
    assert torch.equal(torch.load(target)["state_dict"]["model.w"], torch.ones(2))


def test_a_full_disk_gives_one_clear_message_and_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"global_step": 1}, target)
    real_mkstemp = tempfile.mkstemp

    def full_device(**kwargs):  # the temporary file is a link to /dev/full: every write fails with ENOSPC
        handle, name = real_mkstemp(**kwargs)
        os.close(handle)
        os.unlink(name)
        os.symlink("/dev/full", name)
        return os.open(name, os.O_WRONLY), name

    monkeypatch.setattr(atomic.tempfile, "mkstemp", full_device)
    with pytest.raises(CheckpointError, match=r"no space left on the device to write checkpoint .*free disk space"):
        AtomicCheckpointIO().save_checkpoint({"global_step": 2, "weights": torch.zeros(100000)}, target)
    monkeypatch.undo()
    assert torch.load(target)["global_step"] == 1
    assert [path.name for path in tmp_path.iterdir()] == ["last.ckpt"]


def _hold_lock(output_dir: Path) -> subprocess.Popen:
    code = ("import sys, time; from pathlib import Path; from srl_plugin.training.run_lock import RunLock\n"
            "with RunLock(Path(sys.argv[1])):\n    print('locked', flush=True); time.sleep(120)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen([sys.executable, "-c", code, str(output_dir)], stdout=subprocess.PIPE, text=True, env=env)
    assert process.stdout.readline().strip() == "locked"
    return process


def test_a_live_lock_is_refused_and_a_dead_holders_lock_is_taken_over(tmp_path: Path) -> None:
    holder = _hold_lock(tmp_path)
    try:
        with pytest.raises(RunLockedError, match=f"is in use by another srl-train run \\(pid {holder.pid} "):
            with RunLock(tmp_path):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    with RunLock(tmp_path) as lock:
        assert lock.taken_over["pid"] == holder.pid
    with RunLock(tmp_path) as lock:
        assert lock.taken_over == {}, "a clean exit leaves no stale record"
    assert (tmp_path / LOCK_FILE).read_text() == ""


def _resumable(path: Path, step: int) -> None:
    torch.save({"state_dict": {"model.w": torch.ones(1)}, "hyper_parameters": {"config": {}}, "global_step": step,
                "optimizer_states": []}, path)


def test_resume_takes_the_newest_valid_checkpoint(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for step in (2, 4):
        _resumable(tmp_path / f"step_{step:08d}.ckpt", step)
    _resumable(tmp_path / "last.ckpt", 2)
    with caplog.at_level(logging.WARNING):
        assert newest_valid_checkpoint(tmp_path) == tmp_path / "step_00000004.ckpt"
    assert "the last run stopped between the two writes" in caplog.text
    (tmp_path / "last.ckpt").write_bytes((tmp_path / "step_00000004.ckpt").read_bytes()[:100])
    (tmp_path / "step_00000006.ckpt").write_bytes(b"truncated")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert newest_valid_checkpoint(tmp_path) == tmp_path / "step_00000004.ckpt"
    assert "cannot resume from" in caplog.text and "skipping" in caplog.text and "step_00000006.ckpt" in caplog.text
    _resumable(tmp_path / "last.ckpt", 6)
    assert newest_valid_checkpoint(tmp_path) == tmp_path / "last.ckpt"


def test_orphan_temporaries_are_removed(tmp_path: Path) -> None:
    (tmp_path / ".last.ckpt.x1.tmp").write_bytes(b"")
    _resumable(tmp_path / "last.ckpt", 1)
    assert [path.name for path in remove_orphan_temporaries(tmp_path)] == [".last.ckpt.x1.tmp"]
    assert [path.name for path in tmp_path.iterdir()] == ["last.ckpt"]


def test_state_dict_differences_list_every_missing_unexpected_and_reshaped_key() -> None:
    expected = {"a": torch.zeros(2), "b": torch.zeros(3), "c": torch.zeros(1), "backbone.x": torch.zeros(1)}
    found = {"a": torch.zeros(4), "d": torch.zeros(1), "e": torch.zeros(1)}
    differences = state_dict_differences(expected, found, optional=("backbone.",))
    assert differences.describe() == (
        "unexpected 2 key(s): d, e; missing 2 key(s): b, c; 1 shape mismatch(es): a (expected [2], found [4])"
    )
    assert not state_dict_differences(expected, dict(expected))
