"""Composing the shipped Hydra configs: the one place every front door gets its config from.

``train.yaml`` / ``eval.yaml`` plus an ``experiment=<method>/<dataset>`` file and Hydra overrides give the
run config; :func:`resolved_container` is what checkpoints and run folders store (self-contained: every
interpolation resolved).
"""
from __future__ import annotations

import importlib.resources
from typing import Any, Sequence

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from srl_plugin.runtime.batch import batch_scaled_lr, global_batch

TRAIN_CONFIG = "train"
OmegaConf.register_new_resolver("global_batch", global_batch, replace=True)
OmegaConf.register_new_resolver("batch_scaled_lr", batch_scaled_lr, replace=True)


def configs_dir() -> str:
    """Absolute path of the shipped Hydra configs (``srl_plugin/configs``)."""
    return str(importlib.resources.files("srl_plugin") / "configs")


def compose_config(config_name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """``<config_name>.yaml`` from the shipped configs with Hydra overrides (``key=value``, ``experiment=...``)."""
    bad = [item for item in overrides if "=" not in item or item.startswith("-")]
    if bad:
        raise ValueError(
            f"expected Hydra overrides of the form key=value (e.g. experiment=srl/movi_c trainer.max_steps=100), "
            f"got {bad}"
        )
    with initialize_config_dir(config_dir=configs_dir(), version_base=None):
        return compose(config_name=config_name, overrides=list(overrides))


def compose_experiment(experiment: str, overrides: Sequence[str] = ()) -> DictConfig:
    """``train.yaml`` with ``experiment=<method>/<dataset>`` and the given Hydra overrides applied."""
    return compose_config(TRAIN_CONFIG, [f"experiment={experiment}", *overrides])


def resolved_container(config: DictConfig) -> dict[str, Any]:
    """The config with every interpolation resolved, as plain Python containers (what checkpoints store)."""
    container = OmegaConf.to_container(config, resolve=True, throw_on_missing=True)
    assert isinstance(container, dict)
    return container


def experiment_name(config: DictConfig) -> str:
    """``<method>/<dataset>`` of a composed config."""
    return f"{config.method}/{config.dataset}"
