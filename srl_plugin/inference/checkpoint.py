"""Loading an srl-plugin checkpoint (what ``srl-train`` and ``srl-import-checkpoint`` write) for inference."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

MODEL_PREFIX = "model."
BACKBONE_PREFIX = "backbone."


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict at ``path``, checked to be an srl-plugin checkpoint.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a PyTorch file, an official checkpoint (convert it first) or another format.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:
        raise ValueError(f"{path} could not be read as a PyTorch checkpoint: {error}") from error
    state_dict = checkpoint.get("state_dict") if isinstance(checkpoint, Mapping) else None
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"{path} is not a Lightning checkpoint (no 'state_dict'); pass a checkpoint written by srl-train or srl-import-checkpoint")
    config = checkpoint.get("hyper_parameters", {}).get("config")
    if not any(key.startswith(MODEL_PREFIX) for key in state_dict) or not isinstance(config, Mapping):
        if any(key.startswith(("initializer.", "encoder.module.", "processor.module.")) for key in state_dict):
            raise ValueError(
                f"{path} is an official SRL/SlotContrast/VideoSAUR checkpoint; convert it first: "
                f"srl-import-checkpoint {path} converted.ckpt --preset <movi_c|movi_e|ytvis2021>"
            )
        raise ValueError(
            f"{path} is not an srl-plugin checkpoint (expected 'model.*' weights and hyper_parameters.config)"
        )
    return dict(checkpoint)


def has_backbone_weights(checkpoint: Mapping[str, Any]) -> bool:
    """Whether the checkpoint carries the frozen backbone (``model.backbone.*``)."""
    return any(key.startswith(MODEL_PREFIX + BACKBONE_PREFIX) for key in checkpoint["state_dict"])


def build_model(config: Mapping[str, Any], with_backbone: bool = True) -> nn.Module:
    """Instantiates ``config['model']`` (a Hydra ``_target_`` node); ``with_backbone=False`` drops the backbone."""
    model_config = OmegaConf.create(OmegaConf.to_container(OmegaConf.create(dict(config))["model"], resolve=True))
    if not with_backbone:
        model_config.backbone = None
    return instantiate(model_config, _convert_="all")


def load_checkpoint_model(
    path: str | Path, with_backbone: bool = True, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, DictConfig]:
    """``(model in eval mode, config)`` from an srl-plugin checkpoint.

    ``with_backbone=False`` builds the model without its frozen ViT (it then runs through
    ``forward_features`` on precomputed features), which works even when the checkpoint has no backbone
    weights and timm's cache has none either.

    Raises:
        FileNotFoundError: the checkpoint has no backbone weights and timm's cache lacks them (message
            names the fix).
    """
    checkpoint = read_checkpoint(path)
    config = checkpoint["hyper_parameters"]["config"]
    weights = {key[len(MODEL_PREFIX) :]: value for key, value in checkpoint["state_dict"].items() if key.startswith(MODEL_PREFIX)}
    if not with_backbone:
        weights = {key: value for key, value in weights.items() if not key.startswith(BACKBONE_PREFIX)}
    try:
        model = build_model(config, with_backbone=with_backbone)
    except InstantiationException as error:
        if not isinstance(error.__cause__, FileNotFoundError):
            raise
        raise FileNotFoundError(
            f"{path} holds no backbone weights, so the model needs timm's pretrained ViT, which is not in the "
            f"local cache; running on video is impossible until it is (features-only use works through "
            f"load_checkpoint_model(path, with_backbone=False)). {error.__cause__}"
        ) from error
    if with_backbone and not has_backbone_weights(checkpoint):
        weights.update({BACKBONE_PREFIX + key: value for key, value in model.backbone.state_dict().items()})
    model.load_state_dict(weights, strict=True)
    return model.to(map_location).eval(), OmegaConf.create(config)
