"""Training from the feature cache gives the losses of training from video (same seed, same clips).

Tiny random ViT (2 blocks, width 32, 28x28 frames -> 4 patches), tiny SRL / VideoSAUR models, three Adam
steps. Two comparisons per method:
- cache vs video: equal within float16 rounding of the features (the cache stores float16);
- cache vs video with the backbone output rounded to float16: equal at float32 tolerance, which shows
  that the float16 storage is the only difference between the two paths.
"""
from __future__ import annotations

import copy

import pytest
import torch
import webdataset as wds

from srl_plugin.cache.fingerprint import cache_fingerprint
from srl_plugin.cache.reader import select_clip
from srl_plugin.cache.store import build_cache
from srl_plugin.cache.writer import SourceVideo, SplitPlan, backbone_extractor
from srl_plugin.data.pipeline import collate
from srl_plugin.models import FrozenViTBackbone, SRLModel, VideoSAURModel

CHUNK = 4
# (video index, chunk, orientation) of the clips in each training step's batch of 2.
BATCHES = [
    [(0, 0, "orig"), (1, 1, "hflip")],
    [(2, 1, "orig"), (0, 1, "hflip")],
    [(1, 0, "hflip"), (2, 0, "orig")],
]
# SRL's losses switch on and off with the step (docs/METHODS.md §4.8): these steps exercise all five.
GLOBAL_STEPS = [0, 5000, 25000]
FLOAT32 = {"rtol": 1e-5, "atol": 1e-6}
# float16 keeps 11 significant bits: each cached feature carries a relative rounding error <= 2**-11 (~4.9e-4);
# a loss is a smooth function of many features, so it moves by at most about that much.
FLOAT16_ROUNDING = {"rtol": 1e-3, "atol": 1e-6}


def tiny_backbone() -> FrozenViTBackbone:
    torch.manual_seed(0)
    return FrozenViTBackbone(
        "vit_small_patch14_dinov2", input_size=28, pretrained=False, allow_random_init=True, return_keys=True,
        model_kwargs={"depth": 2, "embed_dim": 32, "num_heads": 2},
    )


def tiny_model(method: str, backbone: FrozenViTBackbone) -> torch.nn.Module:
    torch.manual_seed(1)
    common = dict(backbone=backbone, feature_dim=32, num_slots=3, slot_dim=16, num_patches=4)
    if method == "srl":
        return SRLModel(**common, decoder_hidden_dims=(32, 32), topk_enc=2, redundancy_k=2)
    return VideoSAURModel(**common, renderer_dims=(32, 32), allocator_blocks=1)


@pytest.fixture(scope="module")
def cached(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[SourceVideo], dict[str, dict]]:
    """Three 8-frame videos and their raw cached samples (both orientations, keys included)."""
    generator = torch.Generator().manual_seed(2)
    videos = [SourceVideo(f"video{index}", torch.randn(8, 3, 28, 28, generator=generator)) for index in range(3)]
    folder = tmp_path_factory.mktemp("cache")
    backbone = tiny_backbone()
    build_cache(
        folder, cache_fingerprint(backbone, {"chunk_size": CHUNK, "flip": True}),
        [SplitPlan("train", ("videos.tar",), CHUNK, flip=True)], {"train": lambda _shard: iter(videos)},
        backbone_extractor(backbone), progress=False,
    )
    samples = wds.DataPipeline(wds.SimpleShardList([str(folder / "train" / "videos.tar")]), wds.tarfile_to_samples())
    return videos, {sample["__key__"]: sample for sample in samples}


def video_batch(videos: list[SourceVideo], batch: list[tuple[int, int, str]]) -> torch.Tensor:
    """The clips `(B, 4, 3, H, W)` that the video pipeline would produce for these draws."""
    clips = []
    for index, chunk, orientation in batch:
        clip = videos[index].video[chunk * CHUNK : (chunk + 1) * CHUNK]
        clips.append(clip.flip(-1) if orientation == "hflip" else clip)
    return torch.stack(clips)


def cached_batch(samples: dict[str, dict], batch: list[tuple[int, int, str]]) -> dict[str, torch.Tensor]:
    """The cached batch of the same draws, decoded and collated as `CachedFeatureDataModule` does."""
    clips = [select_clip(samples[f"video{index}"], chunk, orientation, True) for index, chunk, orientation in batch]
    return {name: value for name, value in collate(clips).items() if name != "__key__"}


def train(model: torch.nn.Module, inputs: list) -> list[dict[str, float]]:
    """Three Adam steps (gradient clipping as in training); the losses of each step."""
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    history = []
    for step, batch in zip(GLOBAL_STEPS, inputs):
        torch.manual_seed(10 + step)  # VideoSAUR samples its initial slots
        outputs = model.forward_features(**batch) if isinstance(batch, dict) else model(batch)
        losses = model.compute_losses(outputs, step)
        optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.05)
        optimizer.step()
        history.append({name: value.item() for name, value in losses.items()})
    return history


def assert_histories_close(actual: list[dict], expected: list[dict], tolerance: dict) -> None:
    assert [sorted(step) for step in actual] == [sorted(step) for step in expected]
    for got, want in zip(actual, expected):
        for name in want:
            torch.testing.assert_close(torch.tensor(got[name]), torch.tensor(want[name]), **tolerance, msg=name)


@pytest.mark.parametrize("method", ["srl", "videosaur"])
def test_training_from_cache_matches_training_from_video(cached, method: str) -> None:
    videos, samples = cached
    reference = tiny_model(method, tiny_backbone())
    from_video = train(copy.deepcopy(reference), [video_batch(videos, batch) for batch in BATCHES])
    from_cache = train(copy.deepcopy(reference), [cached_batch(samples, batch) for batch in BATCHES])

    backbone = reference.backbone
    with torch.no_grad():
        rounded = [
            {name: value.half().float() for name, value in backbone(video_batch(videos, batch)).items()}
            for batch in BATCHES
        ]
    from_rounded_video = train(copy.deepcopy(reference), rounded)

    expected_losses = {"srl": {"loss_recon", "loss_sc", "loss_reg", "loss_cl_dec", "loss_cl_enc"}, "videosaur": {"loss_timesim"}}
    assert set().union(*from_cache) == expected_losses[method] | {"total"}
    assert_histories_close(from_cache, from_rounded_video, FLOAT32)
    assert_histories_close(from_cache, from_video, FLOAT16_ROUNDING)
    assert from_cache[0] != from_video[0]  # the float16 storage is visible, so the comparison is not vacuous
