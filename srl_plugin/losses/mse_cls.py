"""SSync's classification loss: mean squared error between softmax probabilities and one-hot labels
(docs/METHODS.md §10.3), as a function and as a routed loss module with its weight and step window."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from srl_plugin.losses._checks import check_positive
from srl_plugin.losses.modules import WeightedLoss
from srl_plugin.losses.schedule import LossWindow


def _check_logits_and_labels(logits: torch.Tensor, labels: torch.Tensor) -> None:
    """Raises ``ValueError`` unless ``logits`` (B, C, ...) is floating and ``labels`` is integer (B, ...)."""
    if not isinstance(logits, torch.Tensor) or logits.dim() < 2 or not logits.is_floating_point():
        got = getattr(logits, "shape", logits)
        raise ValueError(f"logits must be a floating tensor (M, C) or (B, C, ...), got {got}")
    if not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor of class ids, got {getattr(labels, 'dtype', labels)}")
    expected = (logits.shape[0], *logits.shape[2:])
    if tuple(labels.shape) != expected:
        raise ValueError(
            f"labels {tuple(labels.shape)} must have the shape of logits {tuple(logits.shape)} without its class "
            f"axis 1, i.e. {expected}"
        )


def mse_cls_probabilities(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``softmax(logits / temperature)`` over the class axis 1; same shape as ``logits`` (M, C) or (B, C, ...)."""
    check_positive(temperature, "temperature")
    return torch.softmax(logits / temperature, dim=1)


def one_hot_class_first(labels: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """One-hot of ``labels`` (B, ...) with the class axis moved to 1: (B, C, ...), in ``dtype``, detached."""
    target = F.one_hot(labels.detach().long(), num_classes=num_classes)
    return target.movedim(-1, 1).to(dtype)


def mse_cls_loss(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Mean over all elements of ``(softmax(logits / temperature) - onehot(labels))^2``.

    Args:
        logits: (M, C) or (B, C, ...) class logits (class axis 1); gradients flow into them.
        labels: (M,) or (B, ...) integer class ids in ``[0, C)``; treated as constants.
        temperature: divides the logits before the softmax (1.0 in every SSync config).

    Returns:
        0-dim tensor in the dtype of ``logits``. An empty selection (M = 0) gives NaN, like ``torch.nn.MSELoss``
        and the official code; :class:`MSECLSLoss` and ``SSyncModel`` handle that case.
    """
    _check_logits_and_labels(logits, labels)
    probabilities = mse_cls_probabilities(logits, temperature)
    return F.mse_loss(probabilities, one_hot_class_first(labels, logits.shape[1], logits.dtype))


class MSECLSLoss(WeightedLoss):
    """:func:`mse_cls_loss` as a routed loss part (docs/METHODS.md §10.3): ``logits`` (M, C), ``labels`` (M,).

    ``forward(logits, labels, global_step)`` returns ``weight * loss``, zero outside ``window``. An empty
    selection (``M = 0``) gives a zero loss that keeps the graph (the official code would produce NaN).

    Args:
        weight: multiplies the loss (1.0 for both SSync terms).
        temperature: softmax temperature (1.0 in every SSync config).
        window: ``LossWindow`` or its constructor arguments as a mapping; ``None``: always active.
    """

    def __init__(
        self, weight: float = 1.0, temperature: float = 1.0, window: LossWindow | Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(weight, window)
        check_positive(temperature, "temperature")
        self.temperature = temperature

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The unweighted 0-dim loss; ``0 * logits.sum()`` (zero, keeps the graph) when ``labels`` is empty."""
        if labels.numel() == 0:
            _check_logits_and_labels(logits, labels)
            return logits.sum() * 0
        return mse_cls_loss(logits, labels, self.temperature)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor, global_step: int = 0) -> torch.Tensor:
        return self.weighted(global_step, logits=logits, labels=labels)
