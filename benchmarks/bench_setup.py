"""Model and data set-up for `bench_training.py`: the experiment's model with a random-init backbone,
precomputed (float16-rounded) features, and the cached loader's throughput."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from srl_plugin.cache.config import compose_experiment, instantiate_model
from srl_plugin.cache.fingerprint import cache_fingerprint
from srl_plugin.cache.reader import CachedFeatureDataModule
from srl_plugin.cache.store import build_cache
from srl_plugin.cache.writer import SourceVideo, SplitPlan, backbone_extractor


def build_model(experiment: str, overrides: list[str]) -> nn.Module:
    """The experiment's model as `srl-train` builds it, with a randomly initialised backbone (same compute)."""
    config = compose_experiment(experiment, overrides)
    return instantiate_model(config, random_backbone=True)


@torch.no_grad()
def frozen_features(backbone: nn.Module, video: torch.Tensor) -> dict[str, torch.Tensor]:
    """`forward_features` inputs for `video` `(B, T, 3, H, W)`, rounded through float16 like cached features."""
    encoded = backbone(video)
    return {name: value.half().float() for name, value in encoded.items()}


def cached_loader_throughput(
    model: nn.Module, experiment: str, batch_size: int, batches: int, num_workers: int
) -> float:
    """Clips/s delivered by `CachedFeatureDataModule` reading a small cache (2 videos x 2 chunks x 2 flips)."""
    backbone = model.backbone
    size = backbone.input_size
    videos = [SourceVideo(f"video{index}", torch.randn(8, 3, size, size)) for index in range(2)]
    fingerprint = cache_fingerprint(backbone, {"benchmark": experiment})
    with tempfile.TemporaryDirectory() as folder:
        build_cache(
            Path(folder), fingerprint, [SplitPlan("train", ("videos.tar",), chunk_size=4, flip=True)],
            {"train": lambda _shard: iter(videos)}, backbone_extractor(backbone, next(backbone.parameters()).device),
            experiment=experiment, progress=False,
        )
        module = CachedFeatureDataModule(
            folder, fingerprint, batch_size=batch_size, flip_prob=0.5, shuffle_buffer=4,
            num_workers=num_workers, seed=0,
        )
        iterator = iter(module.train_dataloader())
        next(iterator)
        start = time.perf_counter()
        for _ in range(batches):
            next(iterator)
        return batches * batch_size / (time.perf_counter() - start)
