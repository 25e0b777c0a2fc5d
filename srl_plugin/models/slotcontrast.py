"""SlotContrast (Manasyan et al., CVPR 2025): feature reconstruction plus slot-slot contrast (docs/METHODS.md §3)."""
from __future__ import annotations

from srl_plugin.models.composed import ComposedVideoModel


class SlotContrastModel(ComposedVideoModel):
    """SlotContrast: frozen DINOv2 -> MLP -> recurrent slot attention -> MLP broadcast decoder, composed from routed
    parts.

    Structure and defaults are ``configs/model/slotcontrast.yaml`` (MOVi-C values, docs/METHODS.md §3.1): build it
    from an experiment config, or ``SlotContrastModel(backbone, feature_dim=..., num_slots=..., slot_dim=..., ...)``
    with any of that file's top-level hyperparameters. Losses: ``loss_recon`` (MSE to the frozen features) and
    ``loss_ss`` (slot-slot InfoNCE between consecutive frames); a loss with weight 0 is not computed.
    """

    method = "slotcontrast"
