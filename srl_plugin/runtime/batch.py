"""The effective global batch of a run, the learning rate derived from it, and the published set-up it is
compared with (docs/METHODS.md §1.12, §6.1 item 6).

Every contrastive loss pools its negatives over the clips of one process, so a run matches a published
recipe only when both the global batch and the batch per process (``data.batch_size``) match it.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf


def world_size(trainer_config: Mapping[str, Any] | DictConfig) -> int:
    """Processes the trainer will start: devices per node (``auto``: visible GPUs, else 1) times nodes."""
    devices = trainer_config["devices"]
    accelerator = str(trainer_config["accelerator"])
    if devices in ("auto", -1, "-1"):
        use_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
        per_node = torch.cuda.device_count() if use_gpu else 1
    elif isinstance(devices, str):
        per_node = len([item for item in devices.split(",") if item.strip()]) if "," in devices else int(devices)
    elif OmegaConf.is_list(devices) or isinstance(devices, (list, tuple)):
        per_node = len(devices)
    else:
        per_node = int(devices)
    return max(per_node, 1) * int(trainer_config["num_nodes"])


def batch_layout(config: Mapping[str, Any] | DictConfig) -> dict[str, int]:
    """``batch_per_device``, ``devices`` (all processes), ``accumulate_grad_batches`` and their product
    ``global_batch``: the clips behind one optimizer step."""
    trainer = config["trainer"]
    layout = {
        "batch_per_device": int(config["data"]["batch_size"]),
        "devices": world_size(trainer),
        "accumulate_grad_batches": int(trainer.get("accumulate_grad_batches", 1) or 1),
    }
    layout["global_batch"] = layout["batch_per_device"] * layout["devices"] * layout["accumulate_grad_batches"]
    return layout


def describe_layout(layout: Mapping[str, int]) -> str:
    """``global batch 128 = 64 per device x 2 device(s) x 1 accumulated``."""
    return (
        f"global batch {layout['global_batch']} = {layout['batch_per_device']} per device x {layout['devices']} "
        f"device(s) x {layout['accumulate_grad_batches']} accumulated"
    )


def recipe_mismatch(config: Mapping[str, Any] | DictConfig) -> str | None:
    """Why the run's batch differs from the config's published ``recipe`` (``batch_per_device`` x ``devices``),
    or ``None`` when it matches or the config has no recipe."""
    recipe = config.get("recipe")
    if not recipe:
        return None
    layout = batch_layout(config)
    published_global = int(recipe["batch_per_device"]) * int(recipe["devices"])
    if layout["global_batch"] == published_global and layout["batch_per_device"] == int(recipe["batch_per_device"]):
        return None
    return (
        f"{config.get('method')}/{config.get('dataset')} runs with {describe_layout(layout)}, but the published "
        f"recipe is {recipe['batch_per_device']} per device x {recipe['devices']} device(s) (global "
        f"{published_global}, contrastive negatives pooled per device); results may differ from the paper. "
        "README 'Global batch' shows how to match it"
    )


def batch_scaled_lr(base_lr: float, clips: int, *, _root_: DictConfig) -> float:
    """``global_batch / clips * base_lr``: VideoSAUR's rule (1e-4 per 32 clips), following batch and devices.

    Registered as the config resolver ``${batch_scaled_lr:<base_lr>,<clips>}``.
    """
    return batch_layout(_root_)["global_batch"] / int(clips) * float(base_lr)


def global_batch(*, _root_: DictConfig) -> int:
    """The run's global batch; registered as the config resolver ``${global_batch:}``."""
    return batch_layout(_root_)["global_batch"]
