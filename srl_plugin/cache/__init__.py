"""Frozen-feature cache: run the frozen backbone once, store float16 features as webdataset shards, and
train / evaluate from them (`features: cached`; the model then runs `forward_features`).

Names are imported lazily, so that `srl-cache-features --help` stays fast.
"""
from srl_plugin.lazy import lazy_exports

_EXPORTS = {
    "build_cached_datamodule": "srl_plugin.cache.experiment",
    "CacheMismatchError": "srl_plugin.cache.meta",
    "CacheMissingError": "srl_plugin.cache.meta",
    "CachedFeatureDataModule": "srl_plugin.cache.reader",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
