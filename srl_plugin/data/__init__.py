"""Data: synthetic MOVi-like generator, webdataset shard reading/validation, transforms, `VideoDataModule`.

Names are imported lazily, so that `srl-make-synthetic` and the shard reader do not pay for torch/Lightning.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "VideoDataModule": "srl_plugin.data.datamodule",
    "BadSampleError": "srl_plugin.data.shards",
    "CorruptShardError": "srl_plugin.data.shards",
    "DataError": "srl_plugin.data.shards",
    "MissingShardsError": "srl_plugin.data.shards",
    "iter_shard_samples": "srl_plugin.data.shards",
    "ensure_synthetic_dataset": "srl_plugin.data.synthetic",
    "synthetic_shard_patterns": "srl_plugin.data.synthetic",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
