"""Data: synthetic MOVi-like generator, webdataset shard reading/validation, transforms, `VideoDataModule`."""
from srl_plugin.data.datamodule import VideoDataModule
from srl_plugin.data.shards import (
    BadSampleError,
    CorruptShardError,
    DataError,
    MissingShardsError,
    iter_shard_samples,
)
from srl_plugin.data.synthetic import ensure_synthetic_dataset, synthetic_shard_patterns

__all__ = [
    "BadSampleError", "CorruptShardError", "DataError", "MissingShardsError", "ensure_synthetic_dataset",
    "iter_shard_samples", "synthetic_shard_patterns", "VideoDataModule",
]
