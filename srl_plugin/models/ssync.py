"""SSync (Moon & Heo, ECCV 2026): SlotContrast plus pseudo-label synergy between slot attention and the
decoder, switched on at a fraction of training (docs/METHODS.md §10)."""
from __future__ import annotations

from typing import Any

from srl_plugin.models.composed import ComposedVideoModel


class SSyncModel(ComposedVideoModel):
    """SSync: SlotContrast's parts and losses plus two MSE-of-softmax losses on pseudo-labels, composed from
    routed parts.

    Structure and defaults are ``configs/model/ssync.yaml`` (MOVi-C values, docs/METHODS.md §10.1): build it from
    an experiment config, or ``SSyncModel(backbone, feature_dim=..., num_slots=..., slot_dim=..., ...)`` with any
    of that file's top-level hyperparameters. ``loss_grp2deccls``: the decoder's alpha logits at slot-attention
    boundary patches learn the merged slot-attention labels; ``loss_dec2grpcls``: the slot-attention logits at
    decoder-interior patches learn the merged decoder labels; both count from step
    ``ceil(synergy_warmup_ratio * max_steps)`` on (``max_steps``: the official ``model.max_steps``). No new
    parameters. Extra outputs: ``grouping_logits`` and ``decoder_alpha`` (B, T, K, N) and the part
    ``pseudo_labels`` (:class:`srl_plugin.models.SynergyPseudoLabels`).
    """

    method = "ssync"

    def synergy_targets(self, outputs: dict[str, Any]) -> dict[str, Any]:
        """The pseudo-labels of ``outputs`` (see :meth:`SynergyPseudoLabels.forward`)."""
        return outputs["pseudo_labels"]
