"""SlotContrast (Manasyan et al., CVPR 2025): feature reconstruction plus slot-slot contrast (docs/METHODS.md §3)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from srl_plugin.losses import feature_reconstruction_loss, slotcontrast_loss
from srl_plugin.models.backbone import FrozenViTBackbone
from srl_plugin.models.base import VideoSlotModel, total_loss
from srl_plugin.models.decoders import MLPBroadcastDecoder
from srl_plugin.models.initializers import FixedLearnedInit
from srl_plugin.models.mlp import NormedMLP
from srl_plugin.models.predictor import TransformerPredictor
from srl_plugin.models.processor import RecurrentProcessor
from srl_plugin.models.slot_attention import SlotAttention


def slotcontrast_parts(
    backbone: FrozenViTBackbone | None,
    feature_dim: int,
    num_slots: int,
    slot_dim: int,
    num_patches: int,
    input_size: int | None,
    mlp_hidden_dim: int | None,
    decoder_hidden_dims: Sequence[int],
    first_frame_iterations: int,
    later_iterations: int,
    predictor_heads: int,
    predictor_blocks: int,
    attention_scale_quirk: bool,
) -> dict[str, Any]:
    """``VideoSlotModel`` arguments of the SlotContrast architecture, which SSync shares (docs/METHODS.md §3,
    §10): MLP output transform, learned fixed slot init, slot attention with residual MLP, transformer predictor
    and MLP broadcast decoder."""
    return {
        "backbone": backbone,
        "encoder_mlp": NormedMLP(feature_dim, mlp_hidden_dim or 2 * feature_dim, slot_dim),
        "initializer": FixedLearnedInit(num_slots, slot_dim),
        "processor": RecurrentProcessor(
            SlotAttention(slot_dim, use_mlp=True),
            TransformerPredictor(slot_dim, predictor_heads, predictor_blocks, attention_scale_quirk),
            first_frame_iterations,
            later_iterations,
        ),
        "decoder": MLPBroadcastDecoder(slot_dim, feature_dim, num_patches, decoder_hidden_dims),
        "num_slots": num_slots,
        "feature_dim": feature_dim,
        "num_patches": num_patches,
        "input_size": input_size,
    }


class SlotContrastModel(VideoSlotModel):
    """SlotContrast: frozen DINOv2 -> MLP -> recurrent slot attention -> MLP broadcast decoder.

    Losses: ``loss_recon`` (MSE to the frozen features, weight 1.0) and ``loss_ss`` (slot-slot
    InfoNCE between consecutive frames, weight 0.5); a loss with weight 0 is not computed.
    Arguments as in :class:`srl_plugin.models.SRLModel`.
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
        ss_weight: float = 0.5,
        slot_temperature: float = 0.1,
        batch_contrast: bool = True,
    ) -> None:
        super().__init__(
            **slotcontrast_parts(
                backbone, feature_dim, num_slots, slot_dim, num_patches, input_size, mlp_hidden_dim,
                decoder_hidden_dims, first_frame_iterations, later_iterations, predictor_heads, predictor_blocks,
                attention_scale_quirk,
            )
        )
        self.loss_weights = {"loss_recon": recon_weight, "loss_ss": ss_weight}
        self.slot_temperature = slot_temperature
        self.batch_contrast = batch_contrast

    def compute_losses(self, outputs: dict[str, torch.Tensor], global_step: int) -> dict[str, torch.Tensor]:
        """``total`` plus ``loss_recon`` and ``loss_ss`` (0-dim); ``global_step`` is unused (no schedule)."""
        losses: dict[str, torch.Tensor] = {}
        if self.loss_weights["loss_recon"] != 0:
            losses["loss_recon"] = feature_reconstruction_loss(
                outputs["reconstruction"], outputs["backbone_features"].detach()
            )
        if self.loss_weights["loss_ss"] != 0:
            losses["loss_ss"] = slotcontrast_loss(
                outputs["slots"], temperature=self.slot_temperature, batch_contrast=self.batch_contrast
            )
        return total_loss(losses, self.loss_weights)
