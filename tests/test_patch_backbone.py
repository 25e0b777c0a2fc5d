"""The parameter-free patch-pixel backbone: its features, its errors, and a method model built on its config."""
from __future__ import annotations

import math

import pytest
import torch

from srl_plugin.models import PatchPixelBackbone
from srl_plugin.runtime import TRAIN_CONFIG, build_model, compose_config


def test_features_are_the_patch_pixels_then_the_fourier_position() -> None:
    backbone = PatchPixelBackbone(
        "patch_pixels", 8, return_keys=True,
        model_kwargs={"patch_size": 4, "position_frequencies": [1.0], "position_scale": 2.0},
    )
    video = torch.randn(2, 3, 3, 8, 8)
    outputs = backbone(video)
    features = outputs["backbone_features"]
    assert (backbone.num_patches, backbone.feature_dim, backbone.patch_grid) == (4, 3 * 16 + 4, (2, 2))
    assert features.shape == (2, 3, 4, 52) and outputs["backbone_keys"] is features
    # patch 1 is row 0, column 1: pixels [0:4, 4:8], flattened row by row with the channels last
    assert torch.equal(features[1, 2, 1, :48], video[1, 2, :, 0:4, 4:8].permute(1, 2, 0).flatten())
    x, y = 0.5, -0.5  # centre of patch 1 in [-1, 1]
    expected = 2.0 * torch.tensor([math.sin(math.pi * x), math.cos(math.pi * x), math.sin(math.pi * y), math.cos(math.pi * y)])
    assert torch.allclose(features[0, 0, 1, 48:], expected, atol=1e-6)
    assert not any(parameter.requires_grad for parameter in backbone.parameters())


def test_the_fixed_projection_follows_the_seed() -> None:
    def build() -> PatchPixelBackbone:
        torch.manual_seed(3)
        return PatchPixelBackbone("p", 8, allow_random_init=True, model_kwargs={"patch_size": 2, "projection_dim": 5})

    first, second = build(), build()
    video = torch.randn(1, 2, 3, 8, 8)
    assert first.feature_dim == 5 and first(video)["backbone_features"].shape == (1, 2, 16, 5)
    assert torch.equal(first(video)["backbone_features"], second(video)["backbone_features"])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"pretrained": True}, "no pretrained weights"),
        ({"weights_path": "w.pth"}, "no pretrained weights"),
        ({"model_kwargs": {}}, "model_kwargs.patch_size"),
        ({"model_kwargs": {"patch_size": 3}}, "multiple of the patch size 3"),
        ({"model_kwargs": {"patch_size": 4, "projection_dim": 8}}, "allow_random_init=true"),
    ],
)
def test_bad_settings_name_the_fix(arguments: dict, message: str) -> None:
    arguments = {"model_kwargs": {"patch_size": 4}, **arguments}
    with pytest.raises(ValueError, match=message):
        PatchPixelBackbone("patch_pixels", 8, **arguments)


def test_frames_of_another_size_are_refused() -> None:
    backbone = PatchPixelBackbone("patch_pixels", 8, model_kwargs={"patch_size": 4})
    with pytest.raises(ValueError, match="built for 8x8"):
        backbone(torch.zeros(1, 1, 3, 16, 16))


@pytest.mark.parametrize("method", ["srl", "videosaur"])
def test_the_backbone_config_builds_a_method_model_that_runs(method: str) -> None:
    config = compose_config(TRAIN_CONFIG, [f"experiment={method}/synthetic", "backbone=patch_pixels"])
    model = build_model(config)
    assert isinstance(model.backbone, PatchPixelBackbone)
    assert (model.backbone.feature_dim, model.backbone.num_patches) == (config.model.feature_dim, config.model.num_patches)
    with torch.no_grad():
        outputs = model(torch.randn(1, 4, 3, 64, 64), global_step=0)
    losses = model.compute_losses(outputs, global_step=0)
    assert torch.isfinite(losses["total"])
