"""The parameter-free patch-pixel backbone: its features, its errors, and a method model built on its config."""
from __future__ import annotations

import math

import pytest
import torch

from srl_plugin.models import PatchPixelBackbone
from srl_plugin.models.patch_backbone import COLOUR_FEATURE_SEED
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


def test_colour_features_average_fixed_random_fourier_features_of_each_pixel_colour() -> None:
    kwargs = {"patch_size": 4, "cells": 1, "colour_features": 16, "colour_bandwidth": 0.7}
    torch.manual_seed(1)
    backbone = PatchPixelBackbone("patch_colours", 8, model_kwargs=kwargs)
    torch.manual_seed(2)
    assert torch.equal(backbone.model.colour_weight, PatchPixelBackbone("c", 8, model_kwargs=kwargs).model.colour_weight)
    generator = torch.Generator().manual_seed(COLOUR_FEATURE_SEED)
    weight = torch.randn(3, 16, generator=generator) / 0.7
    phase = 2 * math.pi * torch.rand(16, generator=generator)
    video = torch.randn(1, 2, 3, 8, 8)
    features = backbone(video)["backbone_features"]
    assert (backbone.feature_dim, features.shape) == (16, (1, 2, 4, 16))
    # patch 2 is row 1, column 0: pixels [4:8, 0:4]; its feature is the mean over its 16 pixels
    pixels = video[0, 1, :, 4:8, 0:4].flatten(1).T
    assert torch.allclose(features[0, 1, 2], torch.cos(pixels @ weight + phase).mean(0), atol=1e-5)


def test_cells_average_each_patch_to_a_coarser_grid_of_colours() -> None:
    backbone = PatchPixelBackbone("p", 8, model_kwargs={"patch_size": 4, "cells": 2})
    video = torch.randn(1, 1, 3, 8, 8)
    features = backbone(video)["backbone_features"]
    assert features.shape == (1, 1, 4, 12)
    # patch 3 (row 1, column 1), cell (0, 1): the mean colour of pixels [4:6, 6:8]
    assert torch.allclose(features[0, 0, 3, 3:6], video[0, 0, :, 4:6, 6:8].mean((1, 2)), atol=1e-6)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"pretrained": True}, "no pretrained weights"),
        ({"weights_path": "w.pth"}, "no pretrained weights"),
        ({"model_kwargs": {}}, "model_kwargs.patch_size"),
        ({"model_kwargs": {"patch_size": 3}}, "multiple of the patch size 3"),
        ({"model_kwargs": {"patch_size": 4, "projection_dim": 8}}, "allow_random_init=true"),
        ({"model_kwargs": {"patch_size": 4, "cells": 3}}, "positive divisor of the patch size 4"),
        ({"model_kwargs": {"patch_size": 4, "colour_features": 8, "colour_bandwidth": 0.0}}, "colour_bandwidth > 0"),
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


@pytest.mark.parametrize("backbone", ["patch_pixels", "patch_colours"])
@pytest.mark.parametrize("method", ["srl", "videosaur"])
def test_the_backbone_config_builds_a_method_model_that_runs(method: str, backbone: str) -> None:
    config = compose_config(TRAIN_CONFIG, [f"experiment={method}/synthetic", f"backbone={backbone}"])
    model = build_model(config)
    assert isinstance(model.backbone, PatchPixelBackbone)
    assert (model.backbone.feature_dim, model.backbone.num_patches) == (config.model.feature_dim, config.model.num_patches)
    with torch.no_grad():
        outputs = model(torch.randn(1, 4, 3, 64, 64), global_step=0)
    losses = model.compute_losses(outputs, global_step=0)
    assert torch.isfinite(losses["total"])
