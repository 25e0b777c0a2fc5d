"""Lightning's side of checkpointing: atomic writes through the trainer, periodic and on-signal saving, and
choosing the checkpoint a rerun resumes from.

The format and loading live in :mod:`srl_plugin.runtime.checkpoint`. A run directory keeps
``<output_dir>/checkpoints/step_<N>.ckpt`` (written every ``checkpoint_every_n_steps`` steps, at the end of
training and when SIGTERM / SIGINT stop it; only the newest ``checkpoint.keep_last`` stay) and ``last.ckpt``
(the newest).
"""
from __future__ import annotations

import logging
import re
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException

from srl_plugin.runtime import LAST_CHECKPOINT, CheckpointError, check_finite, read_checkpoint, save_checkpoint

log = logging.getLogger(__name__)

STEP_CHECKPOINT = re.compile(r"step_(\d+)\.ckpt")
TEMPORARY_PATTERN = ".*.tmp"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint with :func:`srl_plugin.runtime.save_checkpoint` (fsynced temporary file in the
    target folder, renamed over the target).

    Lightning's own writer stages the file in the system temp folder and moves it, which degrades to a
    non-atomic copy when that folder is on another file system; a rename inside one folder is atomic,
    so a crash never leaves a truncated ``last.ckpt``; non-finite weights and failed writes raise a
    ``CheckpointError`` and leave the previous checkpoint in place.
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


@dataclass(frozen=True)
class Interruption:
    """A run stopped by a signal: which one, at which step, and the checkpoint saved then (``None``: no step done)."""

    signal: signal.Signals
    step: int
    checkpoint: Path | None


def interrupt_signal(exception: BaseException) -> signal.Signals | None:
    """The signal behind Lightning's interrupt exceptions: SIGTERM (``SIGTERMException``), SIGINT
    (``KeyboardInterrupt``), else ``None``."""
    if isinstance(exception, SIGTERMException):
        return signal.SIGTERM
    if isinstance(exception, KeyboardInterrupt):
        return signal.SIGINT
    return None


class StepCheckpoint(L.Callback):
    """Saves ``step_<N>.ckpt`` and ``last.ckpt`` every ``every_n_steps`` optimizer steps, when training ends and
    when SIGTERM / SIGINT interrupt it (Lightning stops at the end of the current step; ``interruption`` then
    records what happened), then deletes all but the newest ``keep_last`` step files (``None``: keeps every one).
    """

    def __init__(self, dirpath: str | Path, every_n_steps: int, keep_last: int | None = None) -> None:
        if every_n_steps <= 0:
            raise ValueError(f"checkpoint_every_n_steps must be positive, got {every_n_steps}")
        if keep_last is not None and keep_last < 1:
            raise ValueError(f"checkpoint.keep_last must be at least 1 (or null to keep every step), got {keep_last}")
        self.dirpath = Path(dirpath)
        self.every_n_steps = every_n_steps
        self.keep_last = keep_last
        self._saved_step: int | None = None
        self.interruption: Interruption | None = None

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            self._save(trainer)

    def on_train_end(self, trainer: L.Trainer, *args: Any) -> None:
        self._save(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        received = interrupt_signal(exception)
        if received is None:
            return
        self._save(trainer)
        saved = self._saved_step == trainer.global_step and trainer.global_step > 0
        self.interruption = Interruption(
            received, trainer.global_step, self.step_path(trainer.global_step) if saved else None
        )

    def step_path(self, step: int) -> Path:
        return self.dirpath / f"step_{step:08d}.ckpt"

    def _save(self, trainer: L.Trainer) -> None:
        step = trainer.global_step
        if step == self._saved_step or step == 0:
            return
        trainer.save_checkpoint(self.step_path(step), weights_only=False)
        trainer.save_checkpoint(self.dirpath / LAST_CHECKPOINT, weights_only=False)
        self._saved_step = step
        if trainer.is_global_zero:
            prune_step_checkpoints(self.dirpath, self.keep_last)


def read_resumable_checkpoint(path: Path) -> int:
    """The ``global_step`` of a checkpoint that training can resume from; raises ``CheckpointError`` when it is
    unreadable, not in this package's format, non-finite or lacks the training state."""
    checkpoint = read_checkpoint(path, mmap=True)
    check_finite(checkpoint, path)
    if "optimizer_states" not in checkpoint or "global_step" not in checkpoint:
        raise CheckpointError(
            f"{path} holds no optimizer state (not written by srl-train), so training cannot resume from it"
        )
    return int(checkpoint["global_step"])


def newest_valid_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The checkpoint to resume from: the valid one with the highest step (``last.ckpt`` on a tie), or ``None``.

    ``last.ckpt`` is written after ``step_<N>.ckpt``, so a run stopped between the two writes leaves a newer
    step file; a ``last.ckpt`` that cannot be read falls back to the newest valid step file. Every
    checkpoint passed over is logged as a warning with the reason.
    """
    last, last_step = checkpoint_dir / LAST_CHECKPOINT, -1
    if last.is_file():
        try:
            last_step = read_resumable_checkpoint(last)
        except CheckpointError as error:
            log.warning("cannot resume from %s: %s", last, error)
    for step, path in reversed(step_checkpoints(checkpoint_dir)):
        if step <= last_step:
            break
        try:
            found = read_resumable_checkpoint(path)
        except CheckpointError as error:
            log.warning("skipping %s: %s", path, error)
            continue
        if last_step >= 0:
            log.warning("%s (step %d) is newer than %s (step %d): the last run stopped between the two writes",
                        path.name, found, LAST_CHECKPOINT, last_step)
        return path
    return last if last_step >= 0 else None


def remove_orphan_temporaries(checkpoint_dir: Path) -> list[Path]:
    """Deletes the temporary files that interrupted checkpoint writes left in ``checkpoint_dir``; returns them.

    Call it only while holding the run's lock (no other process may be writing there).
    """
    orphans = sorted(checkpoint_dir.glob(TEMPORARY_PATTERN))
    for orphan in orphans:
        orphan.unlink(missing_ok=True)
    return orphans
