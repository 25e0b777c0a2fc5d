"""The plugin's LR schedule in the shape OCL's ``OptimizationWrapper(lr_scheduler=...)`` expects."""
from __future__ import annotations

from typing import Any

import torch

from srl_plugin.training import schedule


def exp_decay_with_warmup(
    optimizer: torch.optim.Optimizer, warmup_steps: int, decay_steps: int, decay_rate: float = 0.5
) -> dict[str, Any]:
    """``{"lr_scheduler": {"scheduler": LambdaLR, "interval": "step"}}`` with the schedule of ``srl-train``
    (:func:`srl_plugin.training.schedule.exp_decay_with_warmup`, docs/METHODS.md §1.12), stepped every optimizer step."""
    scheduler = schedule.exp_decay_with_warmup(optimizer, warmup_steps, decay_steps, decay_rate)
    return {"lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
