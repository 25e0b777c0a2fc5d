"""Compose an experiment config the way `srl-train` does, and build its model for the cache tools."""
from __future__ import annotations

from typing import Sequence

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from srl_plugin.training.config import compose_config

TRAIN_CONFIG = "train"


def compose_experiment(experiment: str, overrides: Sequence[str] = ()) -> DictConfig:
    """`train.yaml` with `experiment=<method>/<dataset>` and the given Hydra overrides applied."""
    return compose_config(TRAIN_CONFIG, [f"experiment={experiment}", *overrides])


def instantiate_model(config: DictConfig, random_backbone: bool = False) -> nn.Module:
    """The config's model; `random_backbone` swaps pretrained weights for a random init (same architecture)."""
    model_config = OmegaConf.create(OmegaConf.to_container(config.model, resolve=True))
    if random_backbone:
        with open_dict(model_config):
            model_config.backbone.pretrained = False
            model_config.backbone.weights_path = None
            model_config.backbone.allow_random_init = True
    return instantiate(model_config)
