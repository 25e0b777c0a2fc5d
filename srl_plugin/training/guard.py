"""The non-finite guard: a NaN / Inf loss term or gradient stops training (or skips a bounded number of steps)."""
from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch.optim import Optimizer

FIX = (
    "lower optimizer.lr or trainer.gradient_clip_val, or let up to N such steps be skipped with "
    "nonfinite_skips=N"
)


class NonFiniteTrainingError(RuntimeError):
    """Training produced a non-finite loss term or gradient; the message names the step, the terms and the fix."""


class NonFiniteGuard(L.Callback):
    """Keeps the weights finite and stops training at the first non-finite loss term or gradient.

    Steps are named by the global step the losses were computed at (0 = the first optimizer step).

    Gradients are checked in ``on_before_optimizer_step`` (before clipping): when one holds NaN or Inf,
    every gradient is dropped, so the optimizer step leaves the weights as they were. The loss terms are
    read from the ``losses`` dict that ``training_step`` returns beside ``loss`` (0-dim tensors). A bad step
    raises :class:`NonFiniteTrainingError` naming the step, the non-finite terms and the parameters with
    non-finite gradients, unless fewer than ``max_skips`` steps were skipped so far in this run: the step is
    then skipped (its update dropped) with a warning. With a gradient scaler (``16-mixed``) infinite
    gradients are the scaler's business (it skips those steps itself) and only the loss terms are checked.
    The decision is shared by all ranks (a DDP step is skipped or stopped everywhere).
    """

    def __init__(self, max_skips: int = 0) -> None:
        if max_skips < 0:
            raise ValueError(f"nonfinite_skips must be >= 0, got {max_skips}")
        self.max_skips = max_skips
        self.skipped = 0
        self._step = 0
        self._bad_gradients: list[str] = []

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        self._step = trainer.global_step

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Optimizer) -> None:
        if getattr(trainer.precision_plugin, "scaler", None) is not None:
            return
        named = [(name, parameter.grad) for name, parameter in pl_module.named_parameters() if parameter.grad is not None]
        if not named:
            return
        finite = torch.stack([torch.isfinite(gradient).all() for _, gradient in named])
        if bool(finite.all()):
            return
        self._bad_gradients = [name for (name, _), ok in zip(named, finite.tolist()) if not ok]
        for _, parameter in pl_module.named_parameters():
            parameter.grad = None

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        bad_gradients, self._bad_gradients = self._bad_gradients, []
        losses = outputs.get("losses", {}) if isinstance(outputs, dict) else {}
        bad_terms = {name: float(value) for name, value in losses.items() if not bool(torch.isfinite(value).all())}
        if not trainer.strategy.reduce_boolean_decision(bool(bad_gradients or bad_terms), all=False):
            return
        step = self._step
        what = self._describe(bad_terms, bad_gradients)
        if self.skipped < self.max_skips:
            self.skipped += 1
            rank_zero_warn(
                f"step {step}: {what}; skipped this step ({self.skipped} of nonfinite_skips={self.max_skips})"
            )
            return
        allowance = f" after skipping {self.skipped} step(s) (nonfinite_skips={self.max_skips})" if self.max_skips else ""
        raise NonFiniteTrainingError(
            f"training diverged at step {step}{allowance}: {what}. The weights were kept at their last finite "
            f"values and no checkpoint with non-finite weights was written (earlier checkpoints are kept). Fix: {FIX}"
        )

    @staticmethod
    def _describe(bad_terms: dict[str, float], bad_gradients: list[str]) -> str:
        parts = []
        if bad_terms:
            terms = ", ".join(f"{name}={value}" for name, value in bad_terms.items())
            parts.append(f"non-finite loss term(s) {terms}")
        if bad_gradients:
            shown = ", ".join(bad_gradients[:3]) + (f" and {len(bad_gradients) - 3} more" if len(bad_gradients) > 3 else "")
            parts.append(f"non-finite gradient(s) of {shown}")
        return "; ".join(parts) if parts else "non-finite values on another rank"
