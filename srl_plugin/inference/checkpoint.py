"""Loading an srl-plugin checkpoint (what ``srl-train`` and ``srl-import-checkpoint`` write) for inference.

The format and the full-model loader live in :mod:`srl_plugin.training.checkpoints`; this module adds the
backbone-free variant (precomputed features) and a message that says what to do when a checkpoint without
backbone weights meets a machine without timm's pretrained ViT.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from srl_plugin.training.checkpoints import BACKBONE_PREFIX, load_model, model_state_dict, read_checkpoint


def build_model(config: Mapping[str, Any] | DictConfig, with_backbone: bool = True) -> nn.Module:
    """Instantiates ``config['model']`` (a Hydra ``_target_`` node); ``with_backbone=False`` drops the backbone."""
    model_config = OmegaConf.create(OmegaConf.to_container(OmegaConf.create(config).model, resolve=True))
    if not with_backbone:
        model_config.backbone = None
    return instantiate(model_config, _convert_="all")


def load_checkpoint_model(
    path: str | Path, with_backbone: bool = True, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, DictConfig]:
    """``(model in eval mode, config)`` from an srl-plugin checkpoint file or run directory.

    ``with_backbone=False`` builds the model without its frozen ViT (it then runs through
    ``forward_features`` on precomputed features), which works even when the checkpoint has no backbone
    weights and timm's cache has none either.

    Raises:
        FileNotFoundError: the checkpoint has no backbone weights and timm's cache lacks them.
        ValueError: not an srl-plugin checkpoint (e.g. an official one: convert it with srl-import-checkpoint).
    """
    if with_backbone:
        try:
            return load_model(path, map_location=map_location)
        except InstantiationException as error:
            if not isinstance(error.__cause__, FileNotFoundError):
                raise
            raise FileNotFoundError(
                f"{path} holds no backbone weights, so the model needs timm's pretrained ViT, which is not in "
                "the local cache; running on video is impossible until it is (features-only use works through "
                f"load_checkpoint_model(path, with_backbone=False)). {error.__cause__}"
            ) from error
    checkpoint = read_checkpoint(path)
    config = checkpoint["hyper_parameters"]["config"]
    weights = {key: value for key, value in model_state_dict(checkpoint).items() if not key.startswith(BACKBONE_PREFIX)}
    model = build_model(config, with_backbone=False)
    model.load_state_dict(weights, strict=True)
    return model.to(map_location).eval(), OmegaConf.create(config)
