"""SlotCurri (Moon, Seong & Heo, CVPR 2026): SlotContrast with a slot curriculum, a 3-D SSIM loss and cyclic
inference at evaluation (docs/METHODS.md §11)."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from srl_plugin.losses import feature_reconstruction_loss, per_slot_reconstruction_error, slotcontrast_loss
from srl_plugin.losses.ssim import PatchSSIMLoss
from srl_plugin.models.backbone import FrozenViTBackbone
from srl_plugin.models.base import VideoSlotModel, total_loss
from srl_plugin.models.curriculum import CurriculumLearnedInit
from srl_plugin.models.slotcontrast import slotcontrast_parts


class SlotCurriModel(VideoSlotModel):
    """SlotCurri: the SlotContrast architecture whose learned slots follow a 2 -> K/2 -> K curriculum.

    Training forwards (``train()`` mode) need ``global_step``: :class:`~srl_plugin.models.curriculum.
    CurriculumLearnedInit` picks the active slots and splits them at ``schedule_steps // 10`` and
    ``schedule_steps // 4``; ``compute_losses`` records the per-slot reconstruction errors the splits use (at the
    step before each). Evaluation forwards (``eval()`` mode) use all K slots and, with ``cyclic_inference``,
    the forward-then-backward sweep of the official validation (``RecurrentProcessor(cyclic_eval=True)``).

    Losses: ``loss_recon`` (MSE to the frozen features, weight 1.0), ``loss_ssim`` (1 - 3-D SSIM of the
    min-max-normalised reconstruction and features, weight 0.05) and ``loss_ss`` (SlotContrast's slot-slot
    InfoNCE, weight 0.5); a loss with weight 0 is not computed. Other arguments as in
    :class:`srl_plugin.models.SlotContrastModel`.

    Args:
        schedule_steps: the official ``model.max_steps`` the curriculum is keyed on (100000; MOVi-E 300000).
        cyclic_inference: evaluation runs the backward sweep (the official validation path); False gives the
            plain forward recurrence.
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
        ssim_weight: float = 0.05,
        ss_weight: float = 0.5,
        slot_temperature: float = 0.1,
        batch_contrast: bool = True,
        schedule_steps: int = 100000,
        cyclic_inference: bool = True,
    ) -> None:
        super().__init__(
            **slotcontrast_parts(
                backbone, feature_dim, num_slots, slot_dim, num_patches, input_size, mlp_hidden_dim,
                decoder_hidden_dims, first_frame_iterations, later_iterations, predictor_heads, predictor_blocks,
                attention_scale_quirk,
                initializer=CurriculumLearnedInit(num_slots, slot_dim, schedule_steps),
                cyclic_eval=cyclic_inference,
            )
        )
        self.ssim_loss = PatchSSIMLoss()
        self.loss_weights = {"loss_recon": recon_weight, "loss_ssim": ssim_weight, "loss_ss": ss_weight}
        self.slot_temperature = slot_temperature
        self.batch_contrast = batch_contrast

    @property
    def cyclic_inference(self) -> bool:
        """Whether evaluation forwards add the backward sweep (settable)."""
        return self.processor.cyclic_eval

    @cyclic_inference.setter
    def cyclic_inference(self, value: bool) -> None:
        self.processor.cyclic_eval = bool(value)

    def forward_features(
        self,
        backbone_features: torch.Tensor,
        backbone_keys: torch.Tensor | None = None,
        initial_slots: torch.Tensor | None = None,
        global_step: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """:meth:`VideoSlotModel.forward_features`; ``global_step`` is required in training mode.

        Raises:
            ValueError: for a streaming continuation (``initial_slots``) of a cyclic evaluation, whose backward
                sweep needs the whole video in one pass.
        """
        if initial_slots is not None and self.cyclic_inference and not self.training:
            raise ValueError(
                "SlotCurri's cyclic inference sweeps back over the whole video, which a continuation window "
                "cannot reproduce: run the video in one window (evaluation.stream_frames=null) or set "
                "model.cyclic_inference=false for the plain forward recurrence"
            )
        return super().forward_features(backbone_features, backbone_keys, initial_slots, global_step)

    def _initial_slots(self, batch_size: int, global_step: int | None) -> torch.Tensor:
        """(B, k, D): the curriculum's active slots in training mode, all K in eval mode."""
        return self.initializer(batch_size, global_step)

    def compute_losses(self, outputs: dict[str, torch.Tensor], global_step: int) -> dict[str, torch.Tensor]:
        """``total`` plus ``loss_recon``, ``loss_ssim`` and ``loss_ss`` (0-dim).

        In training mode at the step before a curriculum split, also stores the per-slot reconstruction errors
        of ``outputs`` (decoder-mask weighted) in ``initializer.slot_errors``.
        """
        reconstruction, target = outputs["reconstruction"], outputs["backbone_features"].detach()
        if self.training and self.initializer.records_errors_at(global_step):
            self.initializer.record_errors(
                per_slot_reconstruction_error(reconstruction, target, outputs["decoder_masks"])
            )
        losses: dict[str, torch.Tensor] = {}
        if self.loss_weights["loss_recon"] != 0:
            losses["loss_recon"] = feature_reconstruction_loss(reconstruction, target)
        if self.loss_weights["loss_ssim"] != 0:
            losses["loss_ssim"] = self.ssim_loss(reconstruction, target)
        if self.loss_weights["loss_ss"] != 0:
            losses["loss_ss"] = slotcontrast_loss(
                outputs["slots"], temperature=self.slot_temperature, batch_contrast=self.batch_contrast
            )
        return total_loss(losses, self.loss_weights)
