"""VideoSAUR (Zadaianchuk et al., NeurIPS 2023): temporal feature-similarity prediction (docs/METHODS.md §2)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from srl_plugin.models.composed import ComposedVideoModel


class VideoSAURModel(ComposedVideoModel):
    """VideoSAUR: frozen DINO(v2) -> MLP -> recurrent slot attention (no residual MLP) -> SlotMixer decoder,
    composed from routed parts.

    Structure and defaults are ``configs/model/videosaur.yaml`` (MOVi-C values, docs/METHODS.md §2.1/§2.3): build it
    from an experiment config, or ``VideoSAURModel(backbone, feature_dim=..., num_slots=..., slot_dim=..., ...)``
    with any of that file's top-level hyperparameters. The decoder outputs ``N`` next-frame similarity logits per
    patch, preceded by ``D_f`` reconstructed feature channels when ``reconstruct_features`` (YT-VIS). Losses:
    ``loss_timesim`` (target from the backbone keys, ``backbone.backbone_keys``) and, with
    ``reconstruct_features``, ``loss_recon``. Slots come from :class:`~srl_plugin.models.RandomInit`, sampled in
    evaluation too, from a generator seeded with ``eval_seed``.

    Raises:
        ValueError: a backbone that does not return its keys (the similarity target needs them).
    """

    method = "videosaur"

    def __init__(
        self,
        backbone: nn.Module | Mapping[str, Any] | None = None,
        parts: Mapping[str, Any] | None = None,
        losses: Mapping[str, Any] | None = None,
        outputs: Mapping[str, str] | None = None,
        **hyperparameters: Any,
    ) -> None:
        super().__init__(backbone, parts, losses, outputs, **hyperparameters)
        if self.backbone is not None and not self.backbone.return_keys:
            raise ValueError(
                "VideoSAUR's similarity target needs the backbone keys: build the backbone with return_keys=True"
            )
