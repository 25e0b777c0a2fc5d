"""Frozen-feature cache: run the frozen backbone once, store float16 features as webdataset shards, and
train / evaluate from them (`features: cached`; the model then runs `forward_features`)."""
from srl_plugin.cache.experiment import build_cached_datamodule
from srl_plugin.cache.meta import CacheMismatchError, CacheMissingError
from srl_plugin.cache.reader import CachedFeatureDataModule

__all__ = ["CacheMismatchError", "CacheMissingError", "CachedFeatureDataModule", "build_cached_datamodule"]
