"""SSync (Moon & Heo, ECCV 2026): SlotContrast plus pseudo-label synergy between slot attention and the
decoder, switched on at a fraction of training (docs/METHODS.md §10)."""
from __future__ import annotations

import math
from typing import Any

import torch

from srl_plugin.losses.mse_cls import MSECLSLoss
from srl_plugin.losses.schedule import LossWindow
from srl_plugin.models.backbone import FrozenViTBackbone
from srl_plugin.models.base import total_loss
from srl_plugin.models.slotcontrast import SlotContrastModel
from srl_plugin.models.synergy_labels import SynergyPseudoLabels

SYNERGY_LOSSES = ("loss_grp2deccls", "loss_dec2grpcls")


def synergy_window(warmup_ratio: float, max_steps: int) -> LossWindow:
    """Steps on which the synergy losses count: ``global_step >= warmup_ratio * max_steps``.

    The official test skips while ``step < ratio * max_steps`` (a float); for integer steps that is the
    window starting, inclusive, at the ceiling of the product (30000 for 0.3 x 100000, 90000 for 0.3 x 300000).
    """
    if warmup_ratio < 0:
        raise ValueError(f"synergy_warmup_ratio must be >= 0, got {warmup_ratio}")
    return LossWindow(math.ceil(warmup_ratio * max_steps), None, True, False)


class SSyncModel(SlotContrastModel):
    """SSync: the SlotContrast model and losses, plus two MSE-of-softmax classification losses on pseudo-labels.

    ``loss_grp2deccls``: the decoder's alpha logits at slot-attention boundary patches learn the merged
    slot-attention labels; ``loss_dec2grpcls``: the slot-attention logits at decoder-interior patches learn the
    merged decoder labels. Both count from step ``ceil(synergy_warmup_ratio * max_steps)`` on; no new
    parameters. ``backbone`` ... ``num_patches`` and ``slotcontrast_kwargs`` (architecture, ``recon_weight``,
    ``ss_weight``, ...) as in :class:`srl_plugin.models.SlotContrastModel`.

    Args:
        merge_iou_threshold: coverage IoU above which redundant slots merge (MOVi-C 0.7, MOVi-E 0.65, YT-VIS 0.6).
        boundary_min_disagreeing, boundary_min_agreeing, interior_max_disagreeing: the official ``dif_n_bd``,
            ``dif_n_bd_noise``, ``dif_n_nbd`` (1 in every config), see :class:`SynergyPseudoLabels`.
        grp2dec_weight, dec2grp_weight: weights of the two losses (1.0).
        cls_temperature: softmax temperature of both losses (1.0).
        synergy_warmup_ratio: fraction of ``max_steps`` before the losses start (0.3).
        max_steps: the step count the ratio multiplies (official ``model.max_steps``: 100000 on MOVi-C and
            YT-VIS, 300000 on MOVi-E).

    An empty boundary or interior selection contributes zero (the official code would produce NaN there).
    """

    def __init__(
        self,
        backbone: FrozenViTBackbone | None,
        feature_dim: int,
        num_slots: int,
        slot_dim: int,
        num_patches: int,
        *,
        merge_iou_threshold: float = 0.7,
        boundary_min_disagreeing: int = 1,
        boundary_min_agreeing: int = 1,
        interior_max_disagreeing: int = 1,
        grp2dec_weight: float = 1.0,
        dec2grp_weight: float = 1.0,
        cls_temperature: float = 1.0,
        synergy_warmup_ratio: float = 0.3,
        max_steps: int = 100000,
        **slotcontrast_kwargs: Any,
    ) -> None:
        super().__init__(backbone, feature_dim, num_slots, slot_dim, num_patches, **slotcontrast_kwargs)
        self.pseudo_labels = SynergyPseudoLabels(
            merge_iou_threshold, boundary_min_disagreeing, boundary_min_agreeing, interior_max_disagreeing
        )
        window = synergy_window(synergy_warmup_ratio, max_steps)
        self.synergy_losses = torch.nn.ModuleDict({
            "loss_grp2deccls": MSECLSLoss(grp2dec_weight, cls_temperature, window),
            "loss_dec2grpcls": MSECLSLoss(dec2grp_weight, cls_temperature, window),
        })
        self.loss_weights.update(loss_grp2deccls=grp2dec_weight, loss_dec2grpcls=dec2grp_weight)

    def _extra_outputs(
        self, processed: dict[str, torch.Tensor], decoded: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Adds ``grouping_logits`` (B, T, K, N) (last-iteration slot-attention logits) and ``decoder_alpha``
        (B, T, K, N) (decoder alpha logits), the inputs of the pseudo-labels."""
        return {"grouping_logits": processed["grouping_logits"], "decoder_alpha": decoded["alpha_logits"]}

    def synergy_targets(self, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The pseudo-labels of ``outputs`` (see :meth:`SynergyPseudoLabels.forward`)."""
        return self.pseudo_labels(
            outputs["grouping_logits"], outputs["grouping_masks"], outputs["decoder_alpha"], outputs["decoder_masks"]
        )

    def compute_losses(self, outputs: dict[str, torch.Tensor], global_step: int) -> dict[str, torch.Tensor]:
        """``total`` plus ``loss_recon``, ``loss_ss`` and, from the synergy step on, ``loss_grp2deccls`` and
        ``loss_dec2grpcls`` (0-dim); the pseudo-labels are built only when a synergy loss is active."""
        losses = super().compute_losses(outputs, global_step)
        losses.pop("total")
        active = [name for name in SYNERGY_LOSSES if self.synergy_losses[name].is_active(global_step)]
        if active:
            targets = self.synergy_targets(outputs)
            pairs = {
                "loss_grp2deccls": (targets["dec_bd_preds"], targets["grp_bd_labels"]),
                "loss_dec2grpcls": (targets["grp_nbd_preds"], targets["dec_nbd_labels"]),
            }
            for name in active:
                losses[name] = self.synergy_losses[name].loss(*pairs[name])
        return total_loss(losses, self.loss_weights)
