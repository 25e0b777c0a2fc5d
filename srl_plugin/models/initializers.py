"""Slot initialisers (docs/METHODS.md §1.6)."""
from __future__ import annotations

import math

import torch
from torch import nn


class FixedLearnedInit(nn.Module):
    """A learned ``(K, D)`` tensor shared by every video (SlotContrast, SRL).

    Initialised from ``N(0, 1) * D**-0.5``; slot index ``k`` is the same learned query in every video.
    """

    def __init__(self, num_slots: int, slot_dim: int) -> None:
        super().__init__()
        self.num_slots = num_slots
        self.slot_dim = slot_dim
        self.slots = nn.Parameter(torch.randn(num_slots, slot_dim) * slot_dim**-0.5)

    def forward(self, batch_size: int) -> torch.Tensor:
        """Returns ``(batch_size, K, D)`` initial slots."""
        return self.slots.unsqueeze(0).expand(batch_size, -1, -1)


class RandomInit(nn.Module):
    """Slots sampled as ``mu + eps * exp(log_sigma)`` with ``eps ~ N(0, I)`` (VideoSAUR).

    ``mu`` starts at 0 and ``log_sigma`` at ``log(D**-0.5)``. Sampling also happens in eval mode, as in
    the original code; there ``eps`` comes from a generator seeded with ``eval_seed`` at every call, so an
    evaluation is repeatable and two front doors scoring the same batches draw the same slots (training
    draws from torch's global generator). ``eval_seed=None`` samples from the global generator in eval too.
    """

    def __init__(self, num_slots: int, slot_dim: int, eval_seed: int | None = 0) -> None:
        super().__init__()
        self.num_slots = num_slots
        self.slot_dim = slot_dim
        self.eval_seed = eval_seed
        self.mean = nn.Parameter(torch.zeros(slot_dim))
        self.log_std = nn.Parameter(torch.full((slot_dim,), math.log(slot_dim**-0.5)))

    def forward(self, batch_size: int) -> torch.Tensor:
        """Returns ``(batch_size, K, D)`` freshly sampled slots."""
        generator = None
        if not self.training and self.eval_seed is not None:
            generator = torch.Generator(device=self.mean.device).manual_seed(self.eval_seed)
        noise = torch.randn(
            batch_size, self.num_slots, self.slot_dim, device=self.mean.device, dtype=self.mean.dtype,
            generator=generator,
        )
        return self.mean + noise * self.log_std.exp()
