"""Checkpoint format, atomic writing, periodic saving and loading of trained models.

Format (also written by `srl-import-checkpoint`): a Lightning checkpoint dict with
- ``state_dict``: ``model.<param>`` for the whole method model, frozen backbone included;
- ``hyper_parameters``: ``{"config": <resolved experiment config as a plain dict>}``;
- ``global_step``: optimizer steps done.
A run directory keeps them in ``<output_dir>/checkpoints/``: ``step_<N>.ckpt`` every
``checkpoint_every_n_steps`` steps and at the end of training, and ``last.ckpt`` (the newest).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

CHECKPOINT_SUBDIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
MODEL_PREFIX = "model."
BACKBONE_PREFIX = "backbone."


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file in the target folder, fsyncs it and renames it over the target.

    Lightning's own writer stages the file in the system temp folder and moves it, which degrades to a
    non-atomic copy when that folder is on another file system; a rename inside one folder is atomic,
    so a crash never leaves a truncated ``last.ckpt``.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options")
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(handle, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


class StepCheckpoint(L.Callback):
    """Saves ``step_<N>.ckpt`` and ``last.ckpt`` every ``every_n_steps`` optimizer steps and when training ends."""

    def __init__(self, dirpath: str | Path, every_n_steps: int) -> None:
        if every_n_steps <= 0:
            raise ValueError(f"checkpoint_every_n_steps must be positive, got {every_n_steps}")
        self.dirpath = Path(dirpath)
        self.every_n_steps = every_n_steps
        self._saved_step: int | None = None

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            self._save(trainer)

    def on_train_end(self, trainer: L.Trainer, *args: Any) -> None:
        self._save(trainer)

    def _save(self, trainer: L.Trainer) -> None:
        step = trainer.global_step
        if step == self._saved_step or step == 0:
            return
        trainer.save_checkpoint(self.dirpath / f"step_{step:08d}.ckpt", weights_only=False)
        trainer.save_checkpoint(self.dirpath / LAST_CHECKPOINT, weights_only=False)
        self._saved_step = step


def checkpoint_path(path_or_run_dir: str | Path) -> Path:
    """The checkpoint file of a run directory (``checkpoints/last.ckpt``) or the given ``.ckpt`` file."""
    path = Path(path_or_run_dir).expanduser()
    if path.is_dir():
        candidate = path / CHECKPOINT_SUBDIR / LAST_CHECKPOINT
        if not candidate.is_file():
            raise FileNotFoundError(
                f"run directory {path} has no {CHECKPOINT_SUBDIR}/{LAST_CHECKPOINT}; train into it with "
                f"`srl-train output_dir={path}` or pass a .ckpt file"
            )
        return candidate
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file or run directory at {path}")
    return path


def read_checkpoint(path_or_run_dir: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """The checkpoint dict, checked to be in this package's format (see the module docstring)."""
    path = checkpoint_path(path_or_run_dir)
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{path} is not a readable torch checkpoint ({reason})") from error
    config = checkpoint.get("hyper_parameters", {}).get("config") if isinstance(checkpoint, dict) else None
    state_dict = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(config, dict) or not isinstance(state_dict, dict) or not any(
        key.startswith(MODEL_PREFIX) for key in state_dict
    ):
        raise ValueError(
            f"{path} is not an srl-plugin checkpoint: it needs 'state_dict' with 'model.*' weights and "
            "'hyper_parameters': {'config': ...}. Train with srl-train or convert an official checkpoint with "
            "srl-import-checkpoint"
        )
    return checkpoint


def model_state_dict(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The method model's weights (``model.`` prefix removed)."""
    return {
        key[len(MODEL_PREFIX) :]: value for key, value in checkpoint["state_dict"].items() if key.startswith(MODEL_PREFIX)
    }


def load_model(path_or_run_dir: str | Path, map_location: Any = "cpu") -> tuple[nn.Module, DictConfig]:
    """The trained model (eval mode) and its config, from a run directory or a ``.ckpt`` file.

    When the checkpoint holds the backbone weights (``model.backbone.*``) the backbone is built randomly
    initialised and every weight is loaded strictly; otherwise the backbone is built as the config says
    (pretrained weights from the local cache or ``weights_path``; a clear error when they are missing)
    and all other weights must match exactly.
    """
    from srl_plugin.training.module import build_model

    checkpoint = read_checkpoint(path_or_run_dir, map_location)
    config = OmegaConf.create(checkpoint["hyper_parameters"]["config"])
    state_dict = model_state_dict(checkpoint)
    has_backbone = any(key.startswith(BACKBONE_PREFIX) for key in state_dict)
    if has_backbone:
        with open_dict(config):
            config.model.backbone.pretrained = False
            config.model.backbone.weights_path = None
            config.model.backbone.allow_random_init = True
    model = build_model(config)
    result = model.load_state_dict(state_dict, strict=has_backbone)
    missing = [key for key in result.missing_keys if not key.startswith(BACKBONE_PREFIX)]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"checkpoint {checkpoint_path(path_or_run_dir)} does not match its config's model: missing "
            f"{missing[:5]}, unexpected {result.unexpected_keys[:5]}"
        )
    return model.to(map_location if isinstance(map_location, (str, torch.device)) else "cpu").eval(), config
