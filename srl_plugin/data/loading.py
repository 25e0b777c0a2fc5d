"""DataLoader settings of the data module (`SampleDataModule`, whatever its sample source)."""
from __future__ import annotations

from typing import Any

import torch


def loader_kwargs(num_workers: int, pin_memory: bool | None = None, prefetch_factor: int = 4) -> dict[str, Any]:
    """Keyword arguments for `torch.utils.data.DataLoader`.

    pin_memory: None pins host memory when CUDA is available (faster, asynchronous host-to-device copies).
    Workers are kept alive between epochs (`persistent_workers`) and prefetch `prefetch_factor` batches.
    """
    kwargs: dict[str, Any] = {
        "num_workers": num_workers,
        "pin_memory": torch.cuda.is_available() if pin_memory is None else pin_memory,
    }
    if num_workers > 0:
        kwargs.update(persistent_workers=True, prefetch_factor=prefetch_factor)
    return kwargs
