"""LR schedule `exp_decay_with_warmup` (docs/METHODS.md §1.12)."""
from __future__ import annotations

import math

import pytest
import torch

from srl_plugin.training.schedule import exp_decay_with_warmup, exp_decay_with_warmup_factor


def test_factor_warms_up_linearly_from_zero_then_halves_at_decay_steps() -> None:
    assert exp_decay_with_warmup_factor(0, 2500, 100000) == 0.0
    assert exp_decay_with_warmup_factor(1250, 2500, 100000) == pytest.approx(0.5, rel=1e-12)
    assert exp_decay_with_warmup_factor(2500, 2500, 100000) == 1.0
    midway = 2500 + (100000 - 2500) // 2
    assert exp_decay_with_warmup_factor(midway, 2500, 100000) == pytest.approx(math.sqrt(0.5), rel=1e-12)
    assert exp_decay_with_warmup_factor(100000, 2500, 100000) == pytest.approx(0.5, rel=1e-12)


def test_lambda_lr_follows_the_factor_per_optimizer_step() -> None:
    parameter = torch.nn.Parameter(torch.zeros(()))
    optimizer = torch.optim.Adam([parameter], lr=8e-4)
    scheduler = exp_decay_with_warmup(optimizer, warmup_steps=4, decay_steps=12)
    seen = []
    for _ in range(13):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    expected = [8e-4 * exp_decay_with_warmup_factor(step, 4, 12) for step in range(13)]
    assert seen == pytest.approx(expected, rel=1e-12)
    assert seen[0] == 0.0 and seen[4] == pytest.approx(8e-4) and seen[12] == pytest.approx(4e-4)


def test_runs_shorter_than_the_warmup_never_decay() -> None:
    assert [exp_decay_with_warmup_factor(step, 25, 20) for step in (0, 5, 20, 25, 30)] == [0.0, 0.2, 0.8, 1.0, 1.0]


@pytest.mark.parametrize(("warmup", "decay"), [(10, 0), (-1, 10)])
def test_bad_schedule_names_the_settings(warmup: int, decay: int) -> None:
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(()))])
    with pytest.raises(ValueError, match="scheduler.warmup_steps"):
        exp_decay_with_warmup(optimizer, warmup, decay)
