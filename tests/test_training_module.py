"""The LightningModule: losses keyed on the optimizer step, whole-video evaluation helpers, atomic checkpoints, the
trainer's progress display."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset

from srl_plugin.models import FrozenViTBackbone, SRLModel
from srl_plugin.runtime import CheckpointError, compose_config, resolved_container, video_eval_masks
from srl_plugin.training.checkpoints import AtomicCheckpointIO
from srl_plugin.training.module import SlotVideoModule, drop_padding

ALWAYS = {"start": 0, "end": None, "start_inclusive": True, "end_inclusive": False}


def tiny_srl(tiny_vit: Callable[..., FrozenViTBackbone], model_class: type[SRLModel] = SRLModel) -> SRLModel:
    backbone = tiny_vit(img_size=28, patch_size=14)
    return model_class(backbone, feature_dim=32, num_slots=3, slot_dim=16, num_patches=4, decoder_hidden_dims=(32,),
                    reg_window=ALWAYS, dec_window=ALWAYS, enc_window=ALWAYS, topk_enc=2, redundancy_k=1)


class RecordingSRL(SRLModel):
    """Records the ``global_step`` every ``compute_losses`` call receives."""

    seen_steps: list[int]

    def compute_losses(self, outputs, global_step):
        self.__dict__.setdefault("seen_steps", []).append(global_step)
        return super().compute_losses(outputs, global_step)


class RandomClips(IterableDataset):
    def __iter__(self):
        while True:
            yield {"video": torch.randn(2, 4, 3, 28, 28)}


def synthetic_config() -> dict:
    return resolved_container(compose_config("train", ["experiment=srl/synthetic", "scheduler.warmup_steps=1"]))


def test_losses_are_keyed_on_the_optimizer_step_not_the_batch_index(tmp_path: Path, tiny_vit) -> None:
    model = tiny_srl(tiny_vit, RecordingSRL)
    module = SlotVideoModule(synthetic_config(), model=model)
    trainer = L.Trainer(
        max_steps=3, accumulate_grad_batches=2, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, default_root_dir=tmp_path,
    )
    trainer.fit(module, train_dataloaders=DataLoader(RandomClips(), batch_size=None))
    assert model.seen_steps == [0, 0, 1, 1, 2, 2]


def test_streamed_evaluation_equals_one_pass_over_the_video(tiny_vit) -> None:
    torch.manual_seed(0)
    model = tiny_srl(tiny_vit).eval()
    video = torch.randn(2, 7, 3, 28, 28)
    with torch.no_grad():
        whole = video_eval_masks(model, {"video": video})
        streamed = video_eval_masks(model, {"video": video}, stream_frames=3)
        features = model.backbone(video)["backbone_features"]
        cached = video_eval_masks(model, {"backbone_features": features}, stream_frames=2)
    assert whole.shape == (2, 7, 3, 4)
    torch.testing.assert_close(streamed, whole, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(cached, whole, rtol=1e-5, atol=1e-6)


def test_padding_rows_are_removed() -> None:
    batch = {"video": torch.arange(3), "__key__": ["a", "b", "c"], "batch_padding_mask": torch.tensor([0, 1, 0])}
    kept = drop_padding(batch)
    assert kept["video"].tolist() == [0, 2] and kept["__key__"] == ["a", "c"] and "batch_padding_mask" not in kept


def test_atomic_checkpoint_keeps_the_old_file_when_writing_fails(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"global_step": 1}, target)
    assert torch.load(target)["global_step"] == 1

    def broken_save(obj, file):
        file.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(CheckpointError, match="could not write checkpoint .*OSError: disk full"):
        io.save_checkpoint({"global_step": 2}, target)
    monkeypatch.undo()
    assert torch.load(target)["global_step"] == 1
    assert [path.name for path in target.parent.iterdir()] == ["last.ckpt"]


def test_progress_bar_and_summary_are_the_plain_ones_even_where_rich_is_installed(tmp_path: Path, monkeypatch) -> None:
    """Lightning picks its rich bar when `rich` imports; that bar prints `Epoch 0/-2` for step-counted runs."""
    from lightning.pytorch.callbacks import ModelSummary, TQDMProgressBar
    from lightning.pytorch.trainer.connectors import callback_connector

    from srl_plugin.runtime import compose_experiment
    from srl_plugin.training.runner import build_trainer

    monkeypatch.setattr(callback_connector, "_RICH_AVAILABLE", True)
    config = compose_experiment("srl/synthetic", ["+trainer.enable_model_summary=true"])
    for training in (True, False):
        trainer = build_trainer(config, tmp_path, training=training)
        assert type(trainer.progress_bar_callback) is TQDMProgressBar
        assert [type(c) for c in trainer.callbacks if isinstance(c, ModelSummary)] == [ModelSummary]
    config.trainer.enable_progress_bar = False
    config.trainer.enable_model_summary = False
    trainer = build_trainer(config, tmp_path, training=True)
    assert trainer.progress_bar_callback is None and not any(isinstance(c, ModelSummary) for c in trainer.callbacks)
