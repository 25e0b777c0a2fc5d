"""Building the Lightning pieces of a run from a composed config: data, strategy, loggers, trainer."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor, ModelSummary, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.strategies import DDPStrategy
from omegaconf import DictConfig, OmegaConf

from srl_plugin.data.protocol import validation_settings
from srl_plugin.runtime import CHECKPOINT_SUBDIR, world_size
from srl_plugin.training.checkpoints import AtomicCheckpointIO, StepCheckpoint
from srl_plugin.training.guard import NonFiniteGuard
from srl_plugin.training.interrupts import InterruptAtStepEnd
from srl_plugin.training.quiet import silence_misleading_notices


def set_num_threads(config: DictConfig) -> int:
    """Sets torch's CPU threads to ``num_threads``, or (``null``) to the cores this process may run on
    (its CPU affinity, which respects container and ``taskset`` limits). Returns the count."""
    threads = OmegaConf.select(config, "num_threads", default=None)
    count = int(threads) if threads is not None else len(os.sched_getaffinity(0))
    if count < 1:
        raise ValueError(f"num_threads must be >= 1 or null (one per available core), got {threads}")
    torch.set_num_threads(count)
    return count


def build_datamodule(config: DictConfig) -> L.LightningDataModule:
    """``config.data`` instantiated with the validation settings of ``config.evaluation`` (chunking, protocol),
    or the feature-cache data module (the same pipeline over cached features) when ``features: cached``."""
    if config.features == "cached":
        from srl_plugin.cache import build_cached_datamodule

        return build_cached_datamodule(config)
    if config.features != "video":
        raise ValueError(f"features must be 'video' or 'cached', got {config.features!r}")
    return instantiate(OmegaConf.to_container(config.data, resolve=True),
                       **validation_settings(OmegaConf.to_container(config.evaluation, resolve=True)))


def build_strategy(config: DictConfig) -> Any:
    """``trainer.strategy``, with ``auto``/``ddp`` on several processes turned into a ``DDPStrategy`` that
    honours ``ddp.find_unused_parameters`` (SRL needs it, docs/METHODS.md §1.12)."""
    strategy = config.trainer.strategy
    if isinstance(strategy, str) and strategy in ("auto", "ddp") and world_size(config.trainer) > 1:
        return DDPStrategy(find_unused_parameters=bool(config.ddp.find_unused_parameters))
    return strategy


def trainer_kwargs(config: DictConfig) -> dict[str, Any]:
    """``config.trainer`` as Trainer keyword arguments, with the strategy resolved."""
    kwargs = OmegaConf.to_container(config.trainer, resolve=True)
    assert isinstance(kwargs, dict)
    kwargs["strategy"] = build_strategy(config)
    return kwargs


def build_trainer(
    config: DictConfig, output_dir: Path, training: bool, extra_callbacks: Sequence[L.Callback] = ()
) -> L.Trainer:
    """A Trainer for training (``training=True``) or for validation only (no loggers).

    For training it logs to TensorBoard and CSV under ``output_dir``, runs one endless epoch until
    ``trainer.max_steps`` (validating every ``trainer.val_check_interval`` steps), monitors the learning
    rate, stops at non-finite losses or gradients (``nonfinite_skips``) and checkpoints every
    ``checkpoint_every_n_steps`` steps, at the end and on SIGTERM / SIGINT into ``output_dir/checkpoints``,
    keeping the newest ``checkpoint.keep_last`` step files; a first SIGINT takes effect at the end of its step.

    The progress bar and model summary are always the plain ones: Lightning would otherwise switch to its rich
    versions wherever ``rich`` happens to be installed, whose bar prints ``Epoch 0/-2`` for these step-counted
    runs (``max_epochs=-1``).
    """
    silence_misleading_notices()
    callbacks: list[L.Callback] = list(extra_callbacks)
    if OmegaConf.select(config, "trainer.enable_progress_bar", default=True):
        callbacks.append(TQDMProgressBar())
    if OmegaConf.select(config, "trainer.enable_model_summary", default=True):
        callbacks.append(ModelSummary())
    if training:
        callbacks += [
            LearningRateMonitor(logging_interval="step"),
            NonFiniteGuard(int(OmegaConf.select(config, "nonfinite_skips", default=0))),
            InterruptAtStepEnd(),
            StepCheckpoint(
                output_dir / CHECKPOINT_SUBDIR, int(config.checkpoint_every_n_steps), config.checkpoint.keep_last
            ),
        ]
    loggers: list[Any] | bool = False
    if training:
        loggers = [
            TensorBoardLogger(save_dir=str(output_dir), name="tensorboard"),
            CSVLogger(save_dir=str(output_dir), name="csv"),
        ]
    return L.Trainer(
        **trainer_kwargs(config),
        max_epochs=-1,
        check_val_every_n_epoch=None,
        default_root_dir=str(output_dir),
        enable_checkpointing=False,
        logger=loggers,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
    )
