"""SRL (Seong et al., ICLR 2026): SlotContrast plus step-windowed REG, DEC and ENC losses (docs/METHODS.md §4)."""
from __future__ import annotations

from srl_plugin.models.composed import ComposedVideoModel


class SRLModel(ComposedVideoModel):
    """SRL: frozen DINOv2 -> MLP -> recurrent slot attention -> MLP broadcast decoder, composed from routed parts.

    Structure and defaults are ``configs/model/srl.yaml`` (MOVi-C values, docs/METHODS.md §4.1/§4.8): build it from
    an experiment config, or ``SRLModel(backbone, feature_dim=..., num_slots=..., slot_dim=..., ...)`` with any
    of that file's top-level hyperparameters. A loss whose weight is 0 or whose window is inactive at
    ``global_step`` is neither computed nor returned. Loss names: ``loss_recon``, ``loss_sc``, ``loss_reg``,
    ``loss_cl_dec``, ``loss_cl_enc``. Extra output: ``redundancy_attn`` (B, T, K, N).
    """

    method = "srl"
