"""Validation of a trained checkpoint over whole videos (docs/METHODS.md §1.3, §1.10, §1.11, §6.2).

`evaluate_checkpoint` merges `configs/eval.yaml` and the caller's overrides over the training config
stored in the checkpoint, runs Lightning's validation loop (any accelerator / device count) and returns
the metrics record that `srl-eval` writes as `metrics.json`:
`{method, dataset, step, checkpoint, protocol, num_videos, num_chunks, global_batch, video_fg_ari, image_fg_ari,
video_mbo, image_mbo}` (scores as fractions in [0, 1]; tables print them in percent). ``global_batch``: the
clips per optimizer step of the training run, ``None`` for older checkpoints. `protocol` is
`evaluation.protocol` (`full` or `official`, `srl_plugin.data.protocol`); `num_chunks` is the number of
independently scored chunks (`evaluation.independent_chunks`), None when whole videos were scored.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf

from srl_plugin.metrics import METRICS
from srl_plugin.runtime import (
    CHECKPOINT_SUBDIR,
    checkpoint_path,
    compose_config,
    load_model,
    read_checkpoint,
    resolved_container,
)
from srl_plugin.training.module import SlotVideoModule
from srl_plugin.training.runner import build_datamodule, build_trainer, set_num_threads

EVAL_CONFIG = "eval"
METRICS_FILE = "metrics.json"
METRIC_NAMES = tuple(METRICS)


def run_dir_of(checkpoint: Path) -> Path:
    """The run directory of a checkpoint file (the folder above ``checkpoints/``, else the file's folder)."""
    return checkpoint.parent.parent if checkpoint.parent.name == CHECKPOINT_SUBDIR else checkpoint.parent


def apply_overrides(config: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """``config`` with ``key=value`` overrides of existing keys (a clear error for unknown keys)."""
    bad = [item for item in overrides if "=" not in item]
    if bad:
        raise ValueError(f"overrides must look like key=value (e.g. data.root=/data/movi_c), got {bad}")
    unknown = [item for item in overrides if OmegaConf.select(config, item.split("=", 1)[0], default="\0") == "\0"]
    if unknown:
        raise ValueError(
            f"unknown config key(s) in {unknown}; the checkpoint's config has the top-level keys {sorted(config)}"
        )
    return OmegaConf.merge(config, OmegaConf.from_dotlist(list(overrides)))


def eval_config(checkpoint_config: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """Training config from the checkpoint, then `eval.yaml`, then ``overrides``."""
    merged = OmegaConf.merge(checkpoint_config, compose_config(EVAL_CONFIG))
    return apply_overrides(merged, overrides)


def evaluate_checkpoint(path_or_run_dir: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Validates a run directory or ``.ckpt`` on whole videos; returns the metrics record (rank 0: complete)."""
    path = checkpoint_path(path_or_run_dir)
    step = int(read_checkpoint(path)["global_step"])
    model, stored_config = load_model(path)
    config = eval_config(stored_config, overrides)
    container = resolved_container(config)
    set_num_threads(config)
    output_dir = run_dir_of(path)
    module = SlotVideoModule(container, model=model, image_dir=str(output_dir / "eval_images"), image_step=step)
    trainer = build_trainer(config, output_dir, training=False)
    results = trainer.validate(module, datamodule=build_datamodule(config), verbose=False)
    values = {name.removeprefix("val/"): float(value) for name, value in results[0].items()}
    record: dict[str, Any] = {
        "method": container["method"],
        "dataset": container["dataset"],
        "step": step,
        "checkpoint": str(path),
        "protocol": container["evaluation"]["protocol"],
        "num_videos": int(round(values["num_videos"])),
        "num_chunks": int(round(values["num_chunks"])) if container["evaluation"]["independent_chunks"] else None,
        "global_batch": stored_config.get("global_batch"),
    }
    record.update({name: values[name] for name in METRIC_NAMES})
    return record
