"""Data: synthetic MOVi-like generator, webdataset shard reading/validation, dataset families (what differs per
layout), transforms, the one data module (`SampleDataModule` over a sample source; `VideoDataModule` over video
shards).

Names are imported lazily, so that `srl-make-synthetic` and the shard reader do not pay for torch/Lightning.
"""
from srl_plugin.lazy import lazy_exports

_EXPORTS = {
    "SampleDataModule": "srl_plugin.data.datamodule",
    "VideoDataModule": "srl_plugin.data.datamodule",
    "DatasetFamily": "srl_plugin.data.families",
    "dataset_family": "srl_plugin.data.families",
    "BadSampleError": "srl_plugin.data.shards",
    "CorruptShardError": "srl_plugin.data.shards",
    "DataError": "srl_plugin.data.shards",
    "MissingShardsError": "srl_plugin.data.shards",
    "iter_shard_samples": "srl_plugin.data.shards",
    "ensure_synthetic_dataset": "srl_plugin.data.synthetic",
    "synthetic_shard_patterns": "srl_plugin.data.synthetic",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
