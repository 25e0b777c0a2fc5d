"""Building a method model from a composed config: the one model builder of every front door.

The config's ``model`` node is a Hydra ``_target_`` node (``configs/model/``); a composed method also gets the
config's ``models`` (its parts) and ``losses`` nodes (``configs/models/``, ``configs/losses/``) as its ``parts`` and
``losses`` arguments. Its frozen backbone can be
built three ways (``backbone=``):

- ``"config"``: as the config says (pretrained timm weights from the local cache or ``weights_path``);
- ``"random"``: the same architecture randomly initialised (then overwritten by checkpoint weights, or used
  as is by tests, benchmarks and the synthetic demo);
- ``"none"``: no backbone: the model runs only ``forward_features`` on precomputed features.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

BackboneMode = Literal["config", "random", "none"]
BACKBONE_MODES = ("config", "random", "none")


def model_node(config: Mapping[str, Any] | DictConfig, backbone: BackboneMode = "config") -> dict[str, Any]:
    """The resolved ``model`` node of ``config`` as a plain dict, with the backbone set up as ``backbone`` says
    and, when the config has them, its ``models`` / ``losses`` nodes as ``parts`` / ``losses``."""
    if backbone not in BACKBONE_MODES:
        raise ValueError(f"backbone must be one of {BACKBONE_MODES}, got {backbone!r}")
    composed = OmegaConf.create(config)
    node = OmegaConf.select(composed, "model", default=None)
    if node is None:
        raise ValueError("the config has no 'model' node; compose it with srl_plugin.runtime.compose_experiment")
    model = OmegaConf.to_container(node, resolve=True)
    assert isinstance(model, dict)
    wiring = {"parts": "models", "losses": "losses"}
    present = [key for key in wiring.values() if OmegaConf.select(composed, key, default=None) is not None]
    if present and len(present) != len(wiring):
        raise ValueError(f"a composed method needs both 'models' (parts) and 'losses' in its config; it has only {present}")
    for argument, key in wiring.items():
        if present:
            model[argument] = OmegaConf.to_container(composed[key], resolve=True)
    if backbone == "none":
        model["backbone"] = None
    elif backbone == "random":
        if model.get("backbone") is None:
            raise ValueError("backbone='random' needs a model.backbone node in the config")
        model["backbone"] = random_backbone_node(model["backbone"])
    return model


def random_backbone_node(node: Mapping[str, Any]) -> dict[str, Any]:
    """A backbone node that builds the same ViT with random weights (no pretrained download, no weights file)."""
    return {**node, "pretrained": False, "weights_path": None, "allow_random_init": True}


def build_model(config: Mapping[str, Any] | DictConfig, backbone: BackboneMode = "config") -> nn.Module:
    """``config.model`` instantiated (a method model), its backbone built as ``backbone`` says (module docstring)."""
    return instantiate(model_node(config, backbone), _convert_="all")


def instantiate_backbone(node: Mapping[str, Any] | DictConfig) -> nn.Module:
    """A frozen backbone built from its config node (``model.backbone``: ``_target_`` plus its keywords, e.g.
    ``configs/backbone/*.yaml``), whatever class the node names, from the current torch generator state."""
    plain = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    if not plain.get("_target_"):
        raise ValueError(
            f"a backbone node needs a _target_ (e.g. srl_plugin.models.FrozenViTBackbone); got keys {sorted(plain)}"
        )
    return instantiate(plain, _convert_="all")


def build_backbone(config: Mapping[str, Any] | DictConfig) -> nn.Module:
    """The config's frozen backbone (``model.backbone``) on its own, with the weights ``srl-train`` gives it.

    A randomly initialised backbone (tests, synthetic demo) gets the same weights as in a training run: the
    torch generator is seeded with ``seed`` right before construction, as ``srl-train`` does before it builds
    the model (whose first part is the backbone). The caller's generator state is left untouched.
    """
    composed = OmegaConf.create(config)
    node = OmegaConf.select(composed, "model.backbone", default=None)
    if node is None:
        raise ValueError(
            f"experiment {composed.get('method')}/{composed.get('dataset')} has no model.backbone; "
            "the frozen features need the backbone that the model would run"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(OmegaConf.select(composed, "seed", default=0) or 0))
        return instantiate_backbone(node)
