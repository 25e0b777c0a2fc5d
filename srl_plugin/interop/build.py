"""Our model and its experiment config from an official checkpoint's state dict, through one adapter per layout.

The adapter of the checkpoint's layout (:data:`LAYOUTS`) says which model hyperparameters its tensor shapes tell;
everything else comes from the shipped ``experiment=<method>/<preset>`` config, composed with those values as
overrides and built by :func:`srl_plugin.runtime.build_model` like any run's model. Adding a layout means adding
an :class:`~srl_plugin.interop.layout.OfficialLayout` to :data:`LAYOUTS`; nothing here names a method.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from srl_plugin.interop.backbone import backbone_model_kwargs, backbone_patch_size
from srl_plugin.interop.layout import OfficialLayout, StateDict
from srl_plugin.interop.official import SlotContrastFamilyLayout
from srl_plugin.interop.presets import PRESETS
from srl_plugin.interop.videosaur import VideoSAURLayout
from srl_plugin.models.state import state_dict_differences
from srl_plugin.runtime import build_model, compose_experiment

# Checked in this order by --method auto: VideoSAUR's keys are distinctive, the SRL family is the fallback.
LAYOUTS: tuple[OfficialLayout, ...] = (VideoSAURLayout(), SlotContrastFamilyLayout())
METHODS: tuple[str, ...] = tuple(method for layout in LAYOUTS for method in layout.methods)
# Sizes a preset fixes; a checkpoint that disagrees was trained for another preset (docs/METHODS.md §2.1, §3.1, §4.1).
PRESET_CHECKED_FIELDS = ("feature_dim", "num_slots", "slot_dim")


def layout_for_method(method: str) -> OfficialLayout:
    """The adapter of the layout ``method``'s official checkpoints use."""
    for layout in LAYOUTS:
        if method in layout.methods:
            return layout
    raise ValueError(f"unknown method '{method}'; choose one of {', '.join(METHODS)} or auto")


def resolve_method(state_dict: StateDict, method: str = "auto") -> str:
    """``method`` itself (checked), or (``auto``) what the keys say: VideoSAUR, SRL (projectors) or SlotContrast
    (SSync and SlotCurri checkpoints carry SlotContrast's keys: ask for ``ssync`` / ``slotcurri`` by name)."""
    if method != "auto":
        layout_for_method(method)
        return method
    for layout in LAYOUTS:
        if layout.matches(state_dict):
            return layout.detect_method(state_dict)
    raise ValueError(
        "the state dict matches no official layout this importer knows (SRL / SlotContrast / SSync / SlotCurri / "
        "VideoSAUR); is it an official checkpoint?"
    )


def detect_method(state_dict: StateDict) -> str:
    """The method ``--method auto`` picks for ``state_dict``."""
    return resolve_method(state_dict, "auto")


def official_config(state_dict: StateDict, method: str, preset: str, check_preset: bool = True) -> DictConfig:
    """``experiment=<method>/<preset>`` (unresolved) with what the tensors tell: the shape hyperparameters, the
    input size (patch grid x patch size) and, with backbone weights in the checkpoint, a ViT sized like theirs that
    is built at random and then overwritten (``pretrained: false``, ``allow_random_init: true``).
    ``check_preset``: refuse slot counts / widths that differ from the preset's (else the tensors' are taken).

    Raises:
        ValueError: unknown preset, a checkpoint trained for another preset, or another backbone patch size.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset '{preset}'; choose one of {', '.join(PRESETS)}")
    layout = layout_for_method(method)
    shapes = layout.shape_hyperparameters(state_dict)
    composed = compose_experiment(f"{method}/{preset}", layout.variant_overrides(state_dict, preset))
    model = composed.model
    if check_preset:
        _check_preset(model, shapes, method, preset)
    preset_patch = int(model.backbone.input_size) // math.isqrt(int(model.num_patches))
    patch = backbone_patch_size(state_dict) or preset_patch
    if patch != preset_patch:
        raise ValueError(f"checkpoint backbone has patch size {patch}, preset '{preset}' expects {preset_patch}")
    input_size = math.isqrt(int(shapes["num_patches"])) * patch
    overrides: dict[str, Any] = {**shapes, "input_size": input_size, "backbone.input_size": input_size}
    vit_sizes = backbone_model_kwargs(state_dict)
    if vit_sizes is not None:
        overrides.update({
            "backbone.pretrained": False, "backbone.weights_path": None, "backbone.allow_random_init": True,
            "backbone.model_kwargs": vit_sizes,
        })
    OmegaConf.set_struct(composed, False)
    for key, value in overrides.items():
        OmegaConf.update(composed, f"model.{key}", list(value) if isinstance(value, tuple) else value, merge=False)
    OmegaConf.update(composed, "data.input_size", input_size, merge=False)
    return composed


def _check_preset(model: DictConfig, shapes: Mapping[str, Any], method: str, preset: str) -> None:
    """Raises when the checkpoint's slot count / widths differ from what the preset's config fixes."""
    mismatches = [
        f"{field}: checkpoint {shapes[field]}, preset {model[field]}"
        for field in PRESET_CHECKED_FIELDS
        if field in shapes and field in model and model[field] != shapes[field]
    ]
    if mismatches:
        others = [name for name in PRESETS if name != preset]
        raise ValueError(
            f"this {method} checkpoint does not match preset '{preset}' ({'; '.join(mismatches)}); "
            f"pass the preset it was trained with (--preset {' or '.join(others)})"
        )


def build_from_official(
    state_dict: StateDict, method: str = "auto", preset: str = "movi_c", check_preset: bool = True
) -> tuple[nn.Module, dict[str, Any]]:
    """``(model, config)``: our model with every official weight loaded, and its resolved experiment config
    (``check_preset``: see :func:`official_config`).

    Raises:
        KeyError: unknown or missing official keys (all listed, official names where they have one).
        ValueError: unknown method / preset, or a checkpoint trained for another preset.
    """
    method = resolve_method(state_dict, method)
    layout = layout_for_method(method)
    composed = official_config(state_dict, method, preset, check_preset)
    config = OmegaConf.to_container(composed, resolve=True, throw_on_missing=False)
    with_backbone = backbone_model_kwargs(state_dict) is not None
    model = build_model(config, backbone="config" if with_backbone else "none")
    converted, unknown = layout.to_ours(state_dict)
    expected = model.state_dict()
    converted.update({key: expected[key] for key in layout.state_not_in_official if key in expected})
    differences = state_dict_differences(expected, converted)
    if unknown or differences:
        raise KeyError(
            f"official state dict does not match a {type(model).__name__} (preset '{preset}'; official names): "
            + differences.describe(layout.official_key, unknown=sorted(unknown))
        )
    model.load_state_dict(converted, strict=True)
    return model, config


def model_from_official_state_dict(
    state_dict: StateDict, preset: str = "movi_c", method: str = "auto"
) -> nn.Module:
    """Our model built from an official SRL, SlotContrast, SlotCurri, SSync or VideoSAUR ``state_dict`` with every
    weight loaded (see :func:`build_from_official`); slot counts and widths are the tensors' even where the preset
    has others. Without ``encoder.module.backbone.*`` the model has no backbone and runs only through
    ``forward_features``."""
    return build_from_official(state_dict, method=method, preset=preset, check_preset=False)[0]


def official_state_dict_from_model(model: nn.Module) -> dict[str, torch.Tensor]:
    """Our model's weights in its method's official key layout (inverse of :func:`model_from_official_state_dict`;
    state the official checkpoints do not store is left out)."""
    layout = layout_for_method(str(getattr(model, "method", None)))
    return layout.to_official(
        {key: value for key, value in model.state_dict().items() if key not in layout.state_not_in_official}
    )
