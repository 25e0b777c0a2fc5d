"""SlotCurri (Moon, Seong & Heo, CVPR 2026): SlotContrast with a slot curriculum, a 3-D SSIM loss and cyclic
inference at evaluation (docs/METHODS.md §11)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from srl_plugin.losses import per_slot_reconstruction_error
from srl_plugin.models.composed import ComposedVideoModel


class SlotCurriModel(ComposedVideoModel):
    """SlotCurri: the SlotContrast parts, whose learned slots follow a 2 -> K/2 -> K curriculum, composed from
    routed parts.

    Structure and defaults are ``configs/model/slotcurri.yaml`` (MOVi-C values, docs/METHODS.md §11.1); built like
    :class:`srl_plugin.models.SRLModel`. Training forwards (``train()`` mode) need ``global_step``: the
    conditioning part :class:`~srl_plugin.models.CurriculumLearnedInit` picks the active slots and splits them at
    ``schedule_steps // 10`` and ``schedule_steps // 4``; :meth:`compute_losses` records the per-slot
    reconstruction errors the splits use (at the step before each). Evaluation forwards (``eval()`` mode) use all
    K slots and, with ``cyclic_inference``, the forward-then-backward sweep of the official validation
    (``processor.cyclic_eval``; set it to False for the plain forward recurrence). Losses: ``loss_recon``,
    ``loss_ssim``, ``loss_ss``.
    """

    method = "slotcurri"

    def forward_features(
        self,
        backbone_features: torch.Tensor,
        backbone_keys: torch.Tensor | None = None,
        initial_slots: torch.Tensor | None = None,
        global_step: int | None = None,
    ) -> dict[str, Any]:
        """:meth:`ComposedVideoModel.forward_features`; ``global_step`` is required in training mode.

        Raises:
            ValueError: for a streaming continuation (``initial_slots``) of a cyclic evaluation, whose backward
                sweep needs the whole video in one pass.
        """
        if initial_slots is not None and self.processor.cyclic_eval and not self.training:
            raise ValueError(
                "SlotCurri's cyclic inference sweeps back over the whole video, which a continuation window "
                "cannot reproduce: run the video in one window (evaluation.stream_frames=null) or set "
                "model.cyclic_inference=false for the plain forward recurrence"
            )
        return super().forward_features(backbone_features, backbone_keys, initial_slots, global_step)

    def compute_losses(self, outputs: Mapping[str, Any], global_step: int) -> dict[str, torch.Tensor]:
        """The losses of :meth:`ComposedVideoModel.compute_losses`; in training mode at the step before a
        curriculum split, first stores the per-slot reconstruction errors of ``outputs`` (decoder-mask
        weighted) in ``initializer.slot_errors``."""
        if self.training and self.initializer.records_errors_at(global_step):
            self.initializer.record_errors(
                per_slot_reconstruction_error(
                    outputs["reconstruction"], outputs["backbone_features"].detach(), outputs["decoder_masks"]
                )
            )
        return super().compute_losses(outputs, global_step)
