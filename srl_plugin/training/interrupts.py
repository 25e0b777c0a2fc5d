"""Ctrl+C during training takes effect at the end of the current optimizer step.

Python turns SIGINT into a ``KeyboardInterrupt`` at whatever line the main thread happens to run. Inside library
code (data pipeline, loggers, torch internals) the exception can be caught and dropped, or leave that code in a
broken state: a test run was seen training on after Ctrl+C, another failing with an unrelated
``UnboundLocalError`` instead of saving its checkpoint. :class:`InterruptAtStepEnd` only records the first SIGINT
and raises the ``KeyboardInterrupt`` itself once the step is done, where Lightning's interrupt handling and
:class:`srl_plugin.training.checkpoints.StepCheckpoint` save the step and stop the run. A second Ctrl+C
interrupts at once, as Python would.
"""
from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

NOTICE = b"\nsrl-train: Ctrl+C: stopping after the current step with a checkpoint (press Ctrl+C again to stop at once)\n"


class InterruptAtStepEnd(L.Callback):
    """Holds the first SIGINT of a training run until the end of the current step (all ranks stop at the same
    step); ``requested`` says whether one came. Only the main thread can own signal handlers, so elsewhere
    (e.g. a trainer run from a worker thread) SIGINT keeps Python's behaviour; a process started with SIGINT
    ignored (a background job) keeps ignoring it."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        current = signal.getsignal(signal.SIGINT)
        if threading.current_thread() is threading.main_thread() and current not in (None, signal.SIG_IGN):
            self._previous = current
            signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            self._restore()
            signal.raise_signal(signal.SIGINT)
            return
        self.requested = True
        if rank_zero_only.rank == 0:
            os.write(2, NOTICE)  # unbuffered: a print here could re-enter a write that the signal interrupted

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.strategy.reduce_boolean_decision(self.requested, all=False):
            raise KeyboardInterrupt

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._restore()

    def _restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
