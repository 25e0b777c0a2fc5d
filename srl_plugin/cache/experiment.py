"""Connect the feature cache to an experiment config (`configs/train.yaml` + `experiment/<method>/<dataset>`).

- `cache_dir(config)`: where the cache of this experiment lives (`cache.dir`, or the default below).
- `transform_fingerprint(config)`: every data setting that changes the pixels the backbone sees.
- `expected_fingerprint(config, backbone)`: what `cache_meta.json` must record for this run.
- `split_plans` / `shard_readers`: what `srl-cache-features` caches and how it decodes the source shards,
  through the video data module's own sample source (`srl_plugin.data.sources.VideoShards`), so cached
  features are computed on the same inputs as the ones the video pipeline feeds the backbone
  (docs/METHODS.md §1.2, §1.3).
- `build_cached_datamodule(config)`: the `LightningDataModule` that `srl-train` / `srl-eval` use when
  `features: cached`.

Default cache folder (when `cache.dir` is null or absent): `<data.root>/feature_cache/<method>-<dataset>`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from srl_plugin.cache.fingerprint import cache_fingerprint
from srl_plugin.cache.reader import CachedFeatureDataModule
from srl_plugin.cache.writer import ShardReader, SourceVideo, SplitPlan
from srl_plugin.data.datamodule import VideoDataModule, pipeline_arguments
from srl_plugin.data.families import config_family
from srl_plugin.data.protocol import validation_settings
from srl_plugin.data.shards import resolve_root
from srl_plugin.runtime import build_backbone, experiment_name

DEFAULT_CACHE_SUBDIR = "feature_cache"
# Transform settings the backbone input depends on (docs/METHODS.md §1.2-§1.3); batch sizes, workers and
# buffers only change the order of samples, so they are not part of the fingerprint.
TRANSFORM_FIELDS = ("input_size", "mask_size", "num_classes", "chunk_size")


def data_root(config: DictConfig) -> Path | None:
    """`data.root`, else $SRL_DATA_ROOT, else None (as the video pipeline resolves it)."""
    root = OmegaConf.select(config, "data.root", default=None)
    return resolve_root(None if root is None else str(root))


def cache_dir(config: DictConfig) -> Path:
    """`cache.dir`, or `<data root>/feature_cache/<method>-<dataset>` when it is not set."""
    configured = OmegaConf.select(config, "cache.dir", default=None)
    if configured:
        return Path(str(configured)).expanduser()
    root = data_root(config)
    if root is None:
        raise ValueError("the feature cache needs cache.dir, or data.root / $SRL_DATA_ROOT to place it under")
    return root / DEFAULT_CACHE_SUBDIR / f"{config.method}-{config.dataset}"


def flip_enabled(config: DictConfig) -> bool:
    """Whether training clips are horizontally flipped with some probability (then both orientations are cached)."""
    return float(OmegaConf.select(config, "data.h_flip_prob", default=0.0) or 0.0) > 0.0


def check_cacheable(config: DictConfig, splits: tuple[str, ...]) -> None:
    """Refuse to cache training clips whose transform is random beyond chunk choice and flip (random crops).

    YT-VIS validation (central crop, deterministic) can be cached: `--splits val`.
    """
    if "train" in splits and not config_family(config).cacheable_training:
        raise ValueError(
            f"experiment {experiment_name(config)} trains on random square crops (docs/METHODS.md §1.2), which a "
            "frozen-feature cache cannot reproduce; train it with features=video (the validation split can be "
            "cached with --splits val)"
        )


def transform_fingerprint(config: DictConfig) -> dict[str, Any]:
    """The deterministic transform of `config.data` (resize, normalisation, clip length, flip, masks)."""
    data = config.data
    fingerprint: dict[str, Any] = {
        "dataset": str(config.dataset),
        "dataset_type": config_family(config).name,
        "resize": "bicubic",
        "normalisation": "imagenet",
        "flip": flip_enabled(config),
    }
    for field in TRANSFORM_FIELDS:
        value = OmegaConf.select(data, field, default=None)
        fingerprint[field] = None if value is None else int(value)
    return fingerprint


def expected_fingerprint(config: DictConfig, backbone: Any | None = None) -> dict[str, Any]:
    """`cache_fingerprint` of the config's backbone (built if not given) and its transform."""
    backbone = backbone if backbone is not None else build_backbone(config)
    return cache_fingerprint(backbone, transform_fingerprint(config))


def video_datamodule(config: DictConfig) -> VideoDataModule:
    """The config's `data` node as `srl-train` instantiates it (no input is read): its `source` reads the
    video shards the cache is made from, its `prepare_data` generates synthetic data."""
    return instantiate(OmegaConf.to_container(config.data, resolve=True))


def split_plans(
    config: DictConfig, splits: tuple[str, ...] = ("train", "val"), clips_per_batch: int = 8
) -> list[SplitPlan]:
    """One `SplitPlan` per requested split: training clips (every chunk, both orientations when flipping),
    whole validation videos."""
    source = video_datamodule(config).source
    plans = []
    for split in splits:
        if split not in ("train", "val"):
            raise ValueError(f"unknown split {split!r}; choose train and/or val")
        shards = tuple(source.shards("train" if split == "train" else "validation"))
        if split == "train":
            plans.append(SplitPlan("train", shards, int(config.data.chunk_size), flip_enabled(config), clips_per_batch))
        else:
            plans.append(SplitPlan("val", shards, None, False, clips_per_batch))
    return plans


def shard_readers(config: DictConfig) -> dict[str, ShardReader]:
    """Readers that decode a source shard into `SourceVideo`s through the video data module's own source
    (`VideoShards` of `config.data`: the same reading, checks and transforms as a `features: video` run)."""
    source = video_datamodule(config).source

    def read_train(shard: str) -> Iterator[SourceVideo]:
        for sample in source.read(shard, "train"):
            source.check(sample, "train")
            yield SourceVideo(str(sample["__key__"]), source.video(sample))

    def read_val(shard: str) -> Iterator[SourceVideo]:
        for sample in source.read(shard, "validation"):
            source.check(sample, "validation")
            item = source.val_item(sample)
            yield SourceVideo(str(sample["__key__"]), item["video"], item["masks"])

    return {"train": read_train, "val": read_val}


def build_cached_datamodule(config: DictConfig) -> CachedFeatureDataModule:
    """The config's data module over its feature cache: the pipeline settings of `config.data` (batch sizes,
    workers, buffer, `val_size`, policies, seed; `pipeline_arguments`), its flip probability and the
    validation settings of `config.evaluation`, exactly as the video data module gets them.

    Raises `CacheMissingError` / `CacheMismatchError` (in `setup`) naming the command that builds the cache.
    """
    data = OmegaConf.to_container(config.data, resolve=True)
    return CachedFeatureDataModule(
        cache_dir(config),
        expected_fingerprint(config),
        flip_prob=float(data.get("h_flip_prob") or 0.0),
        experiment=experiment_name(config),
        **pipeline_arguments(data),
        **validation_settings(OmegaConf.to_container(config.evaluation, resolve=True)),
    )
