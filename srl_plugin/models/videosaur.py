"""VideoSAUR (Zadaianchuk et al., NeurIPS 2023): temporal feature-similarity prediction (docs/METHODS.md §2)."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from srl_plugin.losses import feature_reconstruction_loss, temporal_similarity_loss
from srl_plugin.models.backbone import FrozenViTBackbone
from srl_plugin.models.base import VideoSlotModel, total_loss
from srl_plugin.models.decoders import SlotMixerDecoder
from srl_plugin.models.initializers import RandomInit
from srl_plugin.models.mlp import NormedMLP
from srl_plugin.models.predictor import TransformerPredictor
from srl_plugin.models.processor import RecurrentProcessor
from srl_plugin.models.slot_attention import SlotAttention


class VideoSAURModel(VideoSlotModel):
    """VideoSAUR: frozen DINO(v2) -> MLP -> recurrent slot attention (no residual MLP) -> SlotMixer decoder.

    The decoder outputs ``N`` next-frame similarity logits per patch, preceded by ``D_f`` reconstructed
    feature channels when ``reconstruct_features`` (YT-VIS). Losses: ``loss_timesim`` (weight 0.1, target
    from the backbone keys) and, with ``reconstruct_features``, ``loss_recon`` (weight 1.0).
    Slots come from :class:`RandomInit`, sampled at evaluation too.

    Args:
        backbone: frozen ViT built with ``return_keys=True``, or ``None`` (features and keys given directly).
        feature_dim: ``D_f``. num_slots: ``K``. slot_dim: ``D``. num_patches: ``N``.
        allocator_blocks / renderer_dims: SlotMixer sizes (MOVi: 2 and ``(1024,) * 4``; YT-VIS: 3 and ``(1024,) * 3``).
        similarity_temperature: 0.075 (MOVi), 0.25 (YT-VIS DINO), 0.15 (YT-VIS DINOv2).
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
        allocator_blocks: int = 2,
        renderer_dims: Sequence[int] = (1024, 1024, 1024, 1024),
        first_frame_iterations: int = 3,
        later_iterations: int = 2,
        predictor_heads: int = 4,
        predictor_blocks: int = 1,
        attention_scale_quirk: bool = True,
        reconstruct_features: bool = False,
        timesim_weight: float = 0.1,
        recon_weight: float = 1.0,
        similarity_temperature: float = 0.075,
        similarity_threshold: float = 0.0,
    ) -> None:
        if backbone is not None and not backbone.return_keys:
            raise ValueError("VideoSAUR's similarity target needs the backbone keys: build the backbone with return_keys=True")
        self.reconstruct_features = reconstruct_features
        super().__init__(
            backbone=backbone,
            encoder_mlp=NormedMLP(feature_dim, mlp_hidden_dim or 2 * feature_dim, slot_dim),
            initializer=RandomInit(num_slots, slot_dim),
            processor=RecurrentProcessor(
                SlotAttention(slot_dim, use_mlp=False),
                TransformerPredictor(slot_dim, predictor_heads, predictor_blocks, attention_scale_quirk),
                first_frame_iterations,
                later_iterations,
            ),
            decoder=SlotMixerDecoder(
                slot_dim,
                num_patches + (feature_dim if reconstruct_features else 0),
                num_patches,
                allocator_blocks=allocator_blocks,
                renderer_dims=renderer_dims,
                num_heads=predictor_heads,
                attention_scale_quirk=attention_scale_quirk,
            ),
            num_slots=num_slots,
            feature_dim=feature_dim,
            num_patches=num_patches,
            input_size=input_size,
        )
        self.loss_weights = {
            "loss_timesim": timesim_weight,
            "loss_recon": recon_weight if reconstruct_features else 0.0,
        }
        self.similarity_temperature = similarity_temperature
        self.similarity_threshold = similarity_threshold

    def compute_losses(self, outputs: dict[str, torch.Tensor], global_step: int) -> dict[str, torch.Tensor]:
        """``total`` plus ``loss_timesim`` (and ``loss_recon`` on YT-VIS); ``global_step`` is unused."""
        offset = self.feature_dim if self.reconstruct_features else 0
        losses: dict[str, torch.Tensor] = {}
        if self.loss_weights["loss_timesim"] != 0:
            if "backbone_keys" not in outputs:
                raise KeyError(
                    "VideoSAUR's loss needs outputs['backbone_keys']: pass backbone_keys to forward_features "
                    "or use a backbone built with return_keys=True"
                )
            losses["loss_timesim"] = temporal_similarity_loss(
                outputs["reconstruction"][..., offset : offset + self.num_patches],
                outputs["backbone_keys"].detach(),
                temperature=self.similarity_temperature,
                threshold=self.similarity_threshold,
            )
        if self.loss_weights["loss_recon"] != 0:
            losses["loss_recon"] = feature_reconstruction_loss(
                outputs["reconstruction"][..., : self.feature_dim], outputs["backbone_features"].detach()
            )
        return total_loss(losses, self.loss_weights)
