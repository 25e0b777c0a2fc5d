"""What an official checkpoint cannot tell, read from the shipped configs (the one place that holds the published
hyperparameters, docs/METHODS.md §2.1, §3.1, §4.1, §4.8, §10.1, §11.1): the preset experiments' model nodes and the
backbone config group. Architecture sizes (slots, widths, patches) come from the checkpoint's tensors.
"""
from __future__ import annotations

import functools
import importlib.resources
import math
from typing import Any

from omegaconf import OmegaConf

from srl_plugin.runtime import compose_experiment

PRESETS = ("movi_c", "movi_e", "ytvis2021")
# Constructor values that tensor shapes (or the backbone) tell; never taken from a preset.
SHAPE_FIELDS = (
    "feature_dim", "num_slots", "slot_dim", "num_patches", "mlp_hidden_dim", "decoder_hidden_dims",
    "predictor_blocks", "input_size",
)


@functools.lru_cache(maxsize=None)
def preset_model(method: str, preset: str) -> dict[str, Any]:
    """The resolved ``model`` node of ``experiment=<method>/<preset>`` (plain containers)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset '{preset}'; choose one of {', '.join(PRESETS)}")
    try:
        composed = compose_experiment(f"{method}/{preset}")
    except Exception as error:
        raise ValueError(f"no shipped experiment config '{method}/{preset}' ({error})") from error
    return OmegaConf.to_container(composed.model, resolve=True)


def method_kwargs(method: str, preset: str) -> dict[str, Any]:
    """The model hyperparameters of ``method`` for ``preset`` that tensor shapes cannot tell (losses, schedule)."""
    model = preset_model(method, preset)
    return {
        key: value for key, value in model.items()
        if key not in (*SHAPE_FIELDS, "backbone", "parts", "losses", "outputs") and not key.startswith("_")
    }


@functools.lru_cache(maxsize=None)
def backbone_config(name: str) -> dict[str, Any]:
    """``configs/backbone/<name>.yaml`` (``backbone`` node, ``feature_dim``, ``num_patches``) as plain containers."""
    path = importlib.resources.files("srl_plugin") / "configs" / "backbone" / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no shipped backbone config configs/backbone/{name}.yaml")
    return OmegaConf.to_container(OmegaConf.create(path.read_text()), resolve=True)


def backbone_patch(name: str) -> int:
    """The patch size of the backbone config ``name``: input side / patch-grid side."""
    config = backbone_config(name)
    return int(config["backbone"]["input_size"]) // math.isqrt(int(config["num_patches"]))
