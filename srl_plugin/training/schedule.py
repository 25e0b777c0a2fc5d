"""Learning-rate schedule `exp_decay_with_warmup` of all three code bases (docs/METHODS.md §1.12)."""
from __future__ import annotations

import math

import torch


def exp_decay_with_warmup_factor(step: int, warmup_steps: int, decay_steps: int, decay_rate: float = 0.5) -> float:
    """LR multiplier at optimizer step ``step`` (0-based).

    ``step / warmup_steps`` while ``step < warmup_steps`` (0 at step 0), then
    ``decay_rate ** ((step - warmup_steps) / (decay_steps - warmup_steps))``, which reaches ``decay_rate``
    at ``step = decay_steps`` (the original uses ``decay_steps = max_steps``). A run whose
    ``decay_steps`` does not exceed ``warmup_steps`` ends inside the warm-up and never decays (factor 1 after it).
    """
    check_schedule(warmup_steps, decay_steps)
    if step < warmup_steps:
        return step / warmup_steps
    if decay_steps <= warmup_steps:
        return 1.0
    return math.pow(decay_rate, (step - warmup_steps) / (decay_steps - warmup_steps))


def check_schedule(warmup_steps: int, decay_steps: int) -> None:
    """Raises ``ValueError`` unless ``warmup_steps >= 0`` and ``decay_steps > 0``."""
    if warmup_steps < 0 or decay_steps <= 0:
        raise ValueError(
            f"the LR schedule needs scheduler.warmup_steps >= 0 and scheduler.decay_steps > 0, got {warmup_steps} "
            f"and {decay_steps} (decay_steps defaults to trainer.max_steps)"
        )


def exp_decay_with_warmup(
    optimizer: torch.optim.Optimizer, warmup_steps: int, decay_steps: int, decay_rate: float = 0.5
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` applying :func:`exp_decay_with_warmup_factor`; step it once per optimizer step."""
    check_schedule(warmup_steps, decay_steps)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: exp_decay_with_warmup_factor(step, warmup_steps, decay_steps, decay_rate)
    )
