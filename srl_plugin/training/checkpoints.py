"""Lightning's side of checkpointing: atomic writes through the trainer, and periodic saving.

The format and loading live in :mod:`srl_plugin.runtime.checkpoint`. A run directory keeps
``<output_dir>/checkpoints/step_<N>.ckpt`` (written every ``checkpoint_every_n_steps`` steps and at the end of
training; only the newest ``checkpoint.keep_last`` stay) and ``last.ckpt`` (the newest).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.plugins.io import TorchCheckpointIO

from srl_plugin.runtime import LAST_CHECKPOINT, save_checkpoint

STEP_CHECKPOINT = re.compile(r"step_(\d+)\.ckpt")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint with :func:`srl_plugin.runtime.save_checkpoint` (fsynced temporary file in the
    target folder, renamed over the target).

    Lightning's own writer stages the file in the system temp folder and moves it, which degrades to a
    non-atomic copy when that folder is on another file system; a rename inside one folder is atomic,
    so a crash never leaves a truncated ``last.ckpt``.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options")
        save_checkpoint(checkpoint, path)


def step_checkpoints(dirpath: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every ``step_<N>.ckpt`` in ``dirpath``, oldest first."""
    found = ((STEP_CHECKPOINT.fullmatch(path.name), path) for path in dirpath.glob("step_*.ckpt"))
    return sorted((int(match.group(1)), path) for match, path in found if match)


def prune_step_checkpoints(dirpath: Path, keep_last: int | None) -> list[Path]:
    """Deletes all but the newest ``keep_last`` step checkpoints (``None`` keeps all); returns the deleted paths."""
    if keep_last is None:
        return []
    doomed = [path for _, path in step_checkpoints(dirpath)[:-keep_last]]
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


class StepCheckpoint(L.Callback):
    """Saves ``step_<N>.ckpt`` and ``last.ckpt`` every ``every_n_steps`` optimizer steps and when training ends,
    then deletes all but the newest ``keep_last`` step files (``None``: keeps every one)."""

    def __init__(self, dirpath: str | Path, every_n_steps: int, keep_last: int | None = None) -> None:
        if every_n_steps <= 0:
            raise ValueError(f"checkpoint_every_n_steps must be positive, got {every_n_steps}")
        if keep_last is not None and keep_last < 1:
            raise ValueError(f"checkpoint.keep_last must be at least 1 (or null to keep every step), got {keep_last}")
        self.dirpath = Path(dirpath)
        self.every_n_steps = every_n_steps
        self.keep_last = keep_last
        self._saved_step: int | None = None

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            self._save(trainer)

    def on_train_end(self, trainer: L.Trainer, *args: Any) -> None:
        self._save(trainer)

    def _save(self, trainer: L.Trainer) -> None:
        step = trainer.global_step
        if step == self._saved_step or step == 0:
            return
        trainer.save_checkpoint(self.dirpath / f"step_{step:08d}.ckpt", weights_only=False)
        trainer.save_checkpoint(self.dirpath / LAST_CHECKPOINT, weights_only=False)
        self._saved_step = step
        if trainer.is_global_zero:
            prune_step_checkpoints(self.dirpath, self.keep_last)
