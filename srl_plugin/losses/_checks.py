"""Input validation shared by the loss functions: clear errors naming the argument and expected shape."""
from __future__ import annotations

import torch


def check_tensor(value: torch.Tensor, name: str, layout: str) -> None:
    """Raises ``ValueError`` unless ``value`` is a floating tensor with as many axes as ``layout`` names.

    Args:
        value: the tensor to check.
        name: argument name used in the message.
        layout: expected layout such as ``"(B, T, K, D)"`` (one axis per comma-separated name).
    """
    expected_dims = len(layout.strip("()").split(","))
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} must be a tensor of shape {layout}, got {type(value).__name__}")
    if value.dim() != expected_dims:
        raise ValueError(f"{name} must have shape {layout} ({expected_dims} axes), got {tuple(value.shape)}")
    if not value.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {value.dtype}")


def check_prediction_and_target(reconstruction: torch.Tensor, target: torch.Tensor, layout: str) -> None:
    """Raises ``ValueError`` unless ``reconstruction`` and ``target`` are floating tensors of one shape, ``layout``."""
    check_tensor(reconstruction, "reconstruction", layout)
    check_tensor(target, "target", layout)
    if reconstruction.shape != target.shape:
        raise ValueError(
            f"reconstruction {tuple(reconstruction.shape)} and target {tuple(target.shape)} must have the same shape"
        )


def check_same_leading(first: torch.Tensor, first_name: str, second: torch.Tensor, second_name: str, axes: int) -> None:
    """Raises ``ValueError`` unless the first ``axes`` sizes of the two tensors agree."""
    if tuple(first.shape[:axes]) != tuple(second.shape[:axes]):
        raise ValueError(
            f"{first_name} {tuple(first.shape)} and {second_name} {tuple(second.shape)} must agree on their "
            f"first {axes} axes"
        )


def check_positive(value: float, name: str) -> None:
    """Raises ``ValueError`` unless ``value > 0``."""
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value}")


def check_group_frames(num_frames: int, group_frames: int, name: str) -> None:
    """Raises ``ValueError`` unless ``group_frames >= 1`` divides the clip length ``num_frames``."""
    if group_frames < 1:
        raise ValueError(f"group_frames must be >= 1, got {group_frames}")
    if num_frames % group_frames != 0:
        raise ValueError(
            f"{name} has T={num_frames} frames, which is not divisible by group_frames={group_frames}; "
            "pass clips whose length is a multiple of group_frames (docs/METHODS.md §6.3 item 17)"
        )


def at_least_float32(value: torch.Tensor) -> torch.Tensor:
    """``value`` in float32 when it is half precision (e.g. a matmul under fp16 autocast), else unchanged.

    The losses reduce their logits in at least float32, as the official code does under autocast.
    """
    return value.to(torch.promote_types(value.dtype, torch.float32))
