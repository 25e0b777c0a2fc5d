"""Small MLP building blocks shared by the encoder head, slot attention and the decoders."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class NormedMLP(nn.Module):
    """``LayerNorm(in) -> Linear(in, hidden) -> ReLU -> Linear(hidden, out)``, applied on the last axis.

    Used as the two-layer output transform of the frozen encoder (docs/METHODS.md §1.5, with
    ``hidden = 2 * D_f``) and as the residual MLP of slot attention (§1.7, ``hidden = 4 * D``; the
    residual connection lives in the caller). There is no final activation. All parameters keep the
    PyTorch default initialisation, biases included, exactly as the official code leaves them (§1.5).
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(in_dim)
        self.fc1 = nn.Linear(in_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, out_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(..., in_dim) -> (..., out_dim)."""
        return self.fc2(torch.relu(self.fc1(self.norm(features))))


def build_relu_mlp(dims: Sequence[int], final_activation: bool = False) -> nn.Sequential:
    """``Linear(dims[0], dims[1]) -> ReLU -> ... -> Linear(dims[-2], dims[-1])``.

    Weights and biases keep the PyTorch default initialisation, as in the official decoders, whose
    bias-zeroing helper never reaches the layers of a ``Sequential`` (docs/METHODS.md §1.9).
    ``final_activation`` adds a ReLU after the last linear. The layout (linears at even indices)
    mirrors the official decoders.
    """
    if len(dims) < 2:
        raise ValueError(f"an MLP needs at least an input and an output width, got dims={list(dims)}")
    layers: list[nn.Module] = []
    for index, (width_in, width_out) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(width_in, width_out))
        if index < len(dims) - 2 or final_activation:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)
