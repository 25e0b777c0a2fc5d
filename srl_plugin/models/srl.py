"""SRL (Seong et al., ICLR 2026): SlotContrast plus step-windowed REG, DEC and ENC losses (docs/METHODS.md §4)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import torch
from torch import nn

from srl_plugin.losses import (
    decoder_consistency_loss,
    encoder_consistency_loss,
    feature_reconstruction_loss,
    slot_redundancy_loss,
    srl_slot_contrastive_loss,
)
from srl_plugin.losses.schedule import LossWindow
from srl_plugin.models.backbone import FrozenViTBackbone
from srl_plugin.models.base import VideoSlotModel, total_loss
from srl_plugin.models.slotcontrast import slotcontrast_parts

WindowSpec = LossWindow | Mapping[str, Any]

# MOVi-C defaults (docs/METHODS.md §4.8): REG on [0, 10000], DEC and ENC for steps > 20000.
MOVI_C_REG_WINDOW = MappingProxyType({"start": 0, "end": 10000, "start_inclusive": True, "end_inclusive": True})
MOVI_C_CL_WINDOW = MappingProxyType({"start": 20000, "end": None, "start_inclusive": False, "end_inclusive": False})


def as_loss_window(spec: WindowSpec) -> LossWindow:
    """A ``LossWindow`` from itself or from a mapping of its constructor arguments (Hydra configs)."""
    return spec if isinstance(spec, LossWindow) else LossWindow(**dict(spec))


class SRLModel(VideoSlotModel):
    """SRL: frozen DINOv2 -> MLP -> recurrent slot attention (with patch-softmax output) -> MLP decoder.

    Loss weights, temperatures and activity windows are constructor arguments (defaults: MOVi-C,
    docs/METHODS.md §4.1/§4.8); a loss whose weight is 0 or whose window is inactive at ``global_step`` is
    neither computed nor returned. Loss names: ``loss_recon``, ``loss_sc``, ``loss_reg``, ``loss_cl_dec``,
    ``loss_cl_enc``.

    Args:
        backbone: frozen ViT, or ``None`` to run only from precomputed features.
        feature_dim: ``D_f``. num_slots: ``K``. slot_dim: ``D``. num_patches: ``N`` (perfect square).
        input_size: frame side; taken from the backbone when there is one.
        mlp_hidden_dim: hidden width of the encoder MLP (default ``2 * D_f``).
        decoder_hidden_dims: hidden widths of the MLP broadcast decoder.
        attention_scale_quirk: keep the official predictor attention scale (needed for checkpoint parity).
        *_window: ``LossWindow`` or mapping ``{start, end, start_inclusive, end_inclusive}``.
    """

    def __init__(
        self,
        backbone: FrozenViTBackbone | None,
        feature_dim: int,
        num_slots: int,
        slot_dim: int,
        num_patches: int,
        input_size: int | None = None,
        mlp_hidden_dim: int | None = None,
        decoder_hidden_dims: Sequence[int] = (1024, 1024, 1024),
        first_frame_iterations: int = 3,
        later_iterations: int = 2,
        predictor_heads: int = 4,
        predictor_blocks: int = 1,
        attention_scale_quirk: bool = True,
        recon_weight: float = 1.0,
        sc_weight: float = 0.25,
        reg_weight: float = 0.1,
        dec_weight: float = 0.1,
        enc_weight: float = 0.1,
        reg_window: WindowSpec = MOVI_C_REG_WINDOW,
        dec_window: WindowSpec = MOVI_C_CL_WINDOW,
        enc_window: WindowSpec = MOVI_C_CL_WINDOW,
        slot_temperature: float = 0.1,
        batch_contrast: bool = True,
        consistency_temperature: float = 0.1,
        base_temperature: float = 0.07,
        topk_enc: int = 8,
        redundancy_k: int = 5,
        group_frames: int = 4,
    ) -> None:
        super().__init__(
            **slotcontrast_parts(
                backbone, feature_dim, num_slots, slot_dim, num_patches, input_size, mlp_hidden_dim,
                decoder_hidden_dims, first_frame_iterations, later_iterations, predictor_heads, predictor_blocks,
                attention_scale_quirk,
            )
        )
        self.dec_projector = nn.Linear(feature_dim, slot_dim, bias=False)
        self.enc_projector = nn.Linear(slot_dim, slot_dim, bias=False)
        self.loss_weights = {
            "loss_recon": recon_weight,
            "loss_sc": sc_weight,
            "loss_reg": reg_weight,
            "loss_cl_dec": dec_weight,
            "loss_cl_enc": enc_weight,
        }
        self.loss_windows = {
            "loss_reg": as_loss_window(reg_window),
            "loss_cl_dec": as_loss_window(dec_window),
            "loss_cl_enc": as_loss_window(enc_window),
        }
        self.slot_temperature = slot_temperature
        self.batch_contrast = batch_contrast
        self.consistency_temperature = consistency_temperature
        self.base_temperature = base_temperature
        self.topk_enc = topk_enc
        self.redundancy_k = redundancy_k
        self.group_frames = group_frames

    def _extra_outputs(
        self, processed: dict[str, torch.Tensor], decoded: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Adds ``redundancy_attn`` (B, T, K, N): per-slot softmax over patches, mean over iterations."""
        return {"redundancy_attn": processed["redundancy_attn"]}

    def active_losses(self, global_step: int) -> list[str]:
        """Names of the losses with a non-zero weight whose window contains ``global_step``."""
        return [
            name
            for name, weight in self.loss_weights.items()
            if weight != 0 and (name not in self.loss_windows or self.loss_windows[name].is_active(global_step))
        ]

    def compute_losses(self, outputs: dict[str, torch.Tensor], global_step: int) -> dict[str, torch.Tensor]:
        """``total`` plus one 0-dim tensor per active loss (docs/METHODS.md §4.3-§4.8)."""
        frozen = outputs["backbone_features"].detach()
        losses: dict[str, torch.Tensor] = {}
        for name in self.active_losses(global_step):
            if name == "loss_recon":
                losses[name] = feature_reconstruction_loss(outputs["reconstruction"], frozen)
            elif name == "loss_sc":
                losses[name] = srl_slot_contrastive_loss(
                    outputs["slots"], temperature=self.slot_temperature, batch_contrast=self.batch_contrast
                )
            elif name == "loss_reg":
                losses[name] = slot_redundancy_loss(
                    outputs["redundancy_attn"], outputs["slots"].detach(), self.redundancy_k
                )
            elif name == "loss_cl_dec":
                losses[name] = decoder_consistency_loss(
                    self.dec_projector(outputs["reconstruction"]),
                    self.dec_projector(frozen).detach(),
                    outputs["grouping_masks"].detach(),
                    temperature=self.consistency_temperature,
                    base_temperature=self.base_temperature,
                    group_frames=self.group_frames,
                )
            else:
                losses[name] = encoder_consistency_loss(
                    self.enc_projector(outputs["features"]),
                    frozen,
                    outputs["decoder_masks"].detach(),
                    temperature=self.consistency_temperature,
                    base_temperature=self.base_temperature,
                    topk=self.topk_enc,
                    group_frames=self.group_frames,
                )
        return total_loss(losses, self.loss_weights)
