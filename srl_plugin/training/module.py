"""The LightningModule that trains and validates any of the three method models (docs/ARCHITECTURE.md).

Training (docs/METHODS.md §1.12): the model runs on ``batch["video"]`` (B, T, 3, H, W), or on cached
``batch["backbone_features"]`` (B, T, N, D_f) through ``forward_features``; its losses are evaluated at the
trainer's global (optimizer) step, not the batch index (docs/METHODS.md §6.1); Adam with the
``exp_decay_with_warmup`` schedule stepped every optimizer step.

Validation (docs/METHODS.md §1.3, §1.10, §1.11, §6.2): whole videos (or the independent chunks the data module
cuts with ``evaluation.independent_chunks``) through the recurrence, the model's
``eval_masks`` bilinearly upsampled to the ground-truth resolution and arg-maxed, scored by video / image
FG-ARI and mBO; no validation loss.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torchmetrics import MetricCollection, SumMetric
from torchvision.utils import save_image

from srl_plugin.metrics import METRICS, hard_masks_from_soft
from srl_plugin.runtime import (
    backbone_record,
    build_model,
    drop_backbone_weights,
    model_inputs,
    restore_backbone_weights,
    run_model,
    video_eval_masks,
)
from srl_plugin.training.schedule import exp_decay_with_warmup
from srl_plugin.training.visualization import denormalize, mask_overlay_grid

def build_metrics(ignore_background: bool) -> MetricCollection:
    """Video / image FG-ARI and mBO (docs/METHODS.md §1.11), keyed as in :data:`srl_plugin.metrics.METRICS`."""
    return MetricCollection({name: cls(ignore_background=ignore_background) for name, cls in METRICS.items()})


def drop_padding(batch: dict[str, Any]) -> dict[str, Any]:
    """Removes rows flagged by ``batch["batch_padding_mask"]`` (padding added to even out ranks, §1.3)."""
    padding = batch.get("batch_padding_mask")
    if padding is None:
        return batch
    keep = ~torch.as_tensor(padding, dtype=torch.bool).cpu()
    kept: dict[str, Any] = {}
    for name, value in batch.items():
        if name == "batch_padding_mask":
            continue
        if torch.is_tensor(value):
            kept[name] = value[keep.to(value.device)]
        elif isinstance(value, (list, tuple)):
            kept[name] = [item for item, flag in zip(value, keep.tolist()) if flag]
        else:
            kept[name] = value
    return kept


class SlotVideoModule(L.LightningModule):
    """Trains / validates ``config.model``; checkpoints hold ``model.*`` weights and ``{"config": ...}``.

    Args:
        config: the resolved experiment config as a plain dict (stored as the ``config`` hyperparameter).
        model: an already built model (e.g. from :func:`srl_plugin.runtime.load_model`);
            ``None`` builds ``config["model"]``.
        image_dir: where validation mask images are written as PNG (rank 0), or ``None``.
        image_step: the training step that names the mask images (``val_masks_step<N>.png``); ``None`` uses the
            trainer's global step (right while training; evaluating a checkpoint passes its step).
    """

    def __init__(self, config: dict[str, Any], model: nn.Module | None = None, image_dir: str | None = None,
                 image_step: int | None = None) -> None:
        super().__init__()
        self.save_hyperparameters({"config": config})
        self.config = OmegaConf.create(config)
        self.model = model if model is not None else build_model(self.config)
        evaluation = self.config.evaluation
        self.val_metrics = build_metrics(bool(evaluation.ignore_background))
        self.val_videos = SumMetric()
        self.val_chunks = SumMetric()
        self.stream_frames = evaluation.stream_frames
        self.log_images = bool(evaluation.log_images)
        self.image_frames = int(evaluation.image_frames)
        self.image_dir = Path(image_dir) if image_dir is not None else None
        self.image_step = image_step
        self._backbone_record: dict[str, str] | None = None

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Leaves the frozen backbone out when the config rebuilds it (its name and weights hash go in instead)."""
        if self._backbone_record is None:
            self._backbone_record = backbone_record(self.model, self.config)
        if self._backbone_record is not None:
            drop_backbone_weights(checkpoint, self._backbone_record)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Puts this model's backbone back into a checkpoint that left it out, after checking its hash."""
        restore_backbone_weights(checkpoint, self.model, f"the checkpoint of {self.config.output_dir}")

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """``{"loss": total, "losses": {name: detached 0-dim value}}`` (the terms feed the non-finite guard)."""
        inputs = model_inputs(batch)
        outputs = run_model(self.model, inputs, global_step=self.global_step)
        losses = self.model.compute_losses(outputs, global_step=self.global_step)
        batch_size = next(iter(inputs.values())).shape[0]
        self.log("train/loss", losses["total"], prog_bar=True, batch_size=batch_size)
        self.log_dict(
            {f"train/{name}": value for name, value in losses.items() if name != "total"}, batch_size=batch_size
        )
        return {"loss": losses["total"], "losses": {name: value.detach() for name, value in losses.items()}}

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        batch = drop_padding(batch)
        if len(batch["masks"]) == 0:
            return
        inputs, true_masks = model_inputs(batch), batch["masks"]
        soft = video_eval_masks(self.model, inputs, self.stream_frames)
        pred_masks = hard_masks_from_soft(soft, tuple(true_masks.shape[-2:]))
        self.val_metrics.update(pred_masks, true_masks)
        rows = torch.tensor(float(true_masks.shape[0]), device=true_masks.device)
        chunk_index = batch.get("chunk_index")
        videos = rows if chunk_index is None else (torch.as_tensor(chunk_index) == 0).sum().to(rows)
        self.val_videos.update(videos)
        self.val_chunks.update(rows)
        if batch_idx == 0 and self.log_images:
            self._log_masks(inputs, pred_masks)

    def on_validation_epoch_end(self) -> None:
        values = self.val_metrics.compute()
        values["num_videos"] = self.val_videos.compute()
        values["num_chunks"] = self.val_chunks.compute()
        self.val_metrics.reset()
        self.val_videos.reset()
        self.val_chunks.reset()
        self.log_dict({f"val/{name}": value.float() for name, value in values.items()}, sync_dist=False)

    def _log_masks(self, inputs: dict[str, torch.Tensor], pred_masks: torch.Tensor) -> None:
        """Predicted masks of the first validation video over its first frames (TensorBoard image + PNG)."""
        frames = denormalize(inputs["video"][0, : self.image_frames]) if "video" in inputs else None
        grid = mask_overlay_grid(frames, pred_masks[0, : self.image_frames])
        step = self.global_step if self.image_step is None else self.image_step
        for logger in self.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image("val/masks", grid, global_step=step)
        if self.image_dir is not None and self.trainer.is_global_zero:
            self.image_dir.mkdir(parents=True, exist_ok=True)
            save_image(grid, self.image_dir / f"val_masks_step{step:08d}.png")

    def on_train_start(self) -> None:
        """Sets each LR to the schedule's value at the current step, so that a run resumed with another
        ``trainer.max_steps`` (hence another decay span) uses the new schedule from its first step."""
        for scheduler_config in self.trainer.lr_scheduler_configs:
            scheduler = scheduler_config.scheduler
            for group, base_lr, factor in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
                group["lr"] = base_lr * factor(scheduler.last_epoch)

    def configure_optimizers(self) -> dict[str, Any]:
        parameters = [parameter for parameter in self.model.parameters() if parameter.requires_grad]
        optimizer = instantiate(self.config.optimizer)(parameters)
        schedule = self.config.scheduler
        scheduler = exp_decay_with_warmup(
            optimizer, int(schedule.warmup_steps), int(schedule.decay_steps), float(schedule.decay_rate)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}
