"""Model and data set-up for `bench_training.py`: the experiment's model with a random-init backbone,
inputs shaped like cached features, and the cached loader's throughput."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from srl_plugin.cache.fingerprint import cache_fingerprint
from srl_plugin.cache.reader import CachedFeatureDataModule
from srl_plugin.cache.store import build_cache
from srl_plugin.cache.writer import SourceVideo, SplitPlan, backbone_extractor
from srl_plugin.runtime import build_model as build_runtime_model
from srl_plugin.runtime import compose_experiment


def build_model(experiment: str, overrides: list[str]) -> nn.Module:
    """The experiment's model as `srl-train` builds it, with a randomly initialised backbone (same compute)."""
    return build_runtime_model(compose_experiment(experiment, overrides), backbone="random")


def cached_inputs(backbone: nn.Module, batch_size: int, frames: int, device: torch.device) -> dict[str, torch.Tensor]:
    """`forward_features` inputs shaped like the backbone's output `(B, T, N, D_f)` (and keys), float16-rounded.

    Random values instead of running the backbone, so that the cached phases' peak memory is that of
    training from the cache (the dense computations take the same time whatever the values).
    """
    shape = (batch_size, frames, backbone.num_patches, backbone.feature_dim)
    names = ["backbone_features"] + (["backbone_keys"] if backbone.return_keys else [])
    return {name: torch.randn(shape, device=device).half().float() for name in names}


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
