"""Speed switches of the benchmarks (none of them changes results beyond float tolerance).

- `autocast`: bf16 autocast on CPU or CUDA, fp16 on CUDA, when asked (a no-op context when disabled).
- `maybe_compile`: `torch.compile` behind a flag.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, ContextManager, TypeVar

import torch

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
def autocast(device: torch.device | str, precision: str | None) -> ContextManager[Any]:
    """Autocast context for `precision` in {None, "bf16", "fp16"}: bf16 on CPU or CUDA, fp16 on CUDA only.

    The frozen backbone and the model's matmuls run in the lower precision, reductions stay in float32.
    """
    device = torch.device(device)
    if precision is None:
        return contextlib.nullcontext()
    if precision not in AUTOCAST_DTYPES:
        raise ValueError(f"precision must be None, 'bf16' or 'fp16', got {precision!r}")
    if device.type == "cpu" and precision == "fp16":
        raise ValueError("fp16 autocast is for CUDA; on CPU use 'bf16' (as Lightning does for '16-mixed')")
    return torch.autocast(device.type, dtype=AUTOCAST_DTYPES[precision])


CompiledT = TypeVar("CompiledT", bound=Callable[..., Any])


def maybe_compile(function: CompiledT, enabled: bool) -> CompiledT:
    """`torch.compile(function)` (a module or e.g. `model.forward_features`) when `enabled`, else unchanged."""
    return torch.compile(function) if enabled else function
