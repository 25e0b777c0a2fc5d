"""A learned linear projection part (SRL's consistency-loss projectors, docs/METHODS.md §4.6-§4.7)."""
from __future__ import annotations

import torch
from torch import nn


class Projection(nn.Linear):
    """Bias-free linear map ``in_dim -> out_dim`` on the last axis (state dict: ``weight`` only).

    ``forward(inputs, target=None)`` returns ``projected`` (..., out_dim) and, when ``target`` is given, its
    detached projection ``projected_target`` (the same map applied to a fixed target, as SRL's DEC loss does).
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__(in_dim, out_dim, bias=False)

    def forward(self, inputs: torch.Tensor, target: torch.Tensor | None = None) -> dict[str, torch.Tensor]:  # type: ignore[override]
        outputs = {"projected": super().forward(inputs)}
        if target is not None:
            outputs["projected_target"] = super().forward(target).detach()
        return outputs
