"""SlotContrast (Manasyan et al., CVPR 2025): feature reconstruction plus slot-slot contrast (docs/METHODS.md §3)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from srl_plugin.models.backbone import FrozenViTBackbone
from srl_plugin.models.composed import ComposedVideoModel
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
    initializer: FixedLearnedInit | None = None,
    cyclic_eval: bool = False,
) -> dict[str, Any]:
    """``VideoSlotModel`` arguments of the SlotContrast architecture, which SRL, SSync and SlotCurri share
    (docs/METHODS.md §3, §4.2): MLP output transform, learned fixed slot init (``initializer``, default a plain
    :class:`FixedLearnedInit`), slot attention with residual MLP, transformer predictor (with a cyclic
    evaluation sweep when ``cyclic_eval``) and MLP broadcast decoder."""
    return {
        "backbone": backbone,
        "encoder_mlp": NormedMLP(feature_dim, mlp_hidden_dim or 2 * feature_dim, slot_dim),
        "initializer": initializer if initializer is not None else FixedLearnedInit(num_slots, slot_dim),
        "processor": RecurrentProcessor(
            SlotAttention(slot_dim, use_mlp=True),
            TransformerPredictor(slot_dim, predictor_heads, predictor_blocks, attention_scale_quirk),
            first_frame_iterations,
            later_iterations,
            cyclic_eval,
        ),
        "decoder": MLPBroadcastDecoder(slot_dim, feature_dim, num_patches, decoder_hidden_dims),
        "num_slots": num_slots,
        "feature_dim": feature_dim,
        "num_patches": num_patches,
        "input_size": input_size,
    }


class SlotContrastModel(ComposedVideoModel):
    """SlotContrast: frozen DINOv2 -> MLP -> recurrent slot attention -> MLP broadcast decoder, composed from
    routed parts.

    Structure and defaults are ``configs/model/slotcontrast.yaml``; built like :class:`srl_plugin.models.SRLModel`.
    Losses: ``loss_recon`` (MSE to the frozen features) and ``loss_ss`` (slot-slot InfoNCE between consecutive
    frames); a loss with weight 0 is not computed.
    """

    method = "slotcontrast"
