"""Routed-compatible adapters: use them in OCL configs as ``routed.srl_plugin.ocl.modules.<Class>``.

:class:`MethodModel` runs one of the plugin's method models (``SRLModel``, ``SlotContrastModel``,
``VideoSAURModel``) as a single OCL model component and evaluates the model's own losses at OCL's global
step, so the OCL front door trains exactly what ``srl-train`` trains. Like ``srl-eval``, evaluation computes
no losses: whole validation videos may not suit them (e.g. SRL's frame groups must divide ``T``), so in eval
mode every loss term is NaN ("not computed") in OCL's ``val/<term>`` logs. :class:`LossTerm` hands one weighted
loss term to OCL's loss dictionary (OCL sums its losses and logs each under ``train/<name>``).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from srl_plugin import metrics, runtime


class MethodModel(nn.Module):
    """Adapter around a method model (docs/ARCHITECTURE.md "Method models").

    Routed parameters of :meth:`forward`: ``video_path`` (e.g. ``input.video``) or ``backbone_features_path``
    (+ ``backbone_keys_path``) for cached features, ``masks_path: input.masks`` (validation ground truth) and
    ``global_step_path: model.global_step``.

    Args:
        model: ``SRLModel``, ``SlotContrastModel`` or ``VideoSAURModel``.
        independent_chunks: in eval mode, score every ``c``-frame chunk as its own video (``srl-eval``'s
            ``evaluation.independent_chunks``; leftover frames are dropped). None: whole videos.
        stream_frames: in eval mode, run long videos through the recurrence this many frames at a time (same
            result, less memory; ``evaluation.stream_frames``). None: one pass.
    """

    def __init__(
        self, model: nn.Module, independent_chunks: int | None = None, stream_frames: int | None = None
    ) -> None:
        super().__init__()
        missing = [name for name in ("forward_features", "compute_losses", "eval_masks", "loss_weights")
                   if not hasattr(model, name)]
        if missing:
            raise TypeError(f"MethodModel needs a method model (e.g. srl_plugin.models.SRLModel); "
                            f"{type(model).__name__} lacks {missing}")
        for name, value in (("independent_chunks", independent_chunks), ("stream_frames", stream_frames)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive int or None, got {value!r}")
        self.model = model
        self.independent_chunks = independent_chunks
        self.stream_frames = stream_frames

    def forward(
        self,
        video: torch.Tensor | None = None,
        backbone_features: torch.Tensor | None = None,
        backbone_keys: torch.Tensor | None = None,
        masks: torch.Tensor | None = None,
        global_step: int = 0,
    ) -> dict[str, object]:
        """Runs the model; in training mode also evaluates its losses.

        Args:
            video: (B, T, 3, H, W) normalised frames; used when ``backbone_features`` is not given.
            backbone_features: (B, T, N, D_f) cached frozen features; backbone_keys: (B, T, N, D_f) or None.
            masks: (B, T, C, H, W) one-hot ground truth, or None (training batches).
            global_step: optimizer steps done (selects the active loss windows).

        Returns:
            The model's outputs (``slots`` (B, T, K, D), ``decoder_masks`` (B, T, K, N), ...; omitted when
            ``stream_frames`` splits an evaluation pass) plus ``eval_masks`` (B', T', K, N) (what the metrics
            score), ``eval_true_masks`` (B', T', C, H, W) (``masks`` cut like ``eval_masks``) and
            ``eval_hard_masks`` (B', T', K, H, W) (``eval_masks`` upsampled to the ground truth and one-hot
            encoded by :func:`srl_plugin.metrics.hard_masks_from_soft`, what OCL's ``ARIMetric`` /
            ``AverageBestOverlapMetric`` and the per-frame metrics score), ``eval_videos`` (0-dim, ``B``, the
            videos scored) and ``eval_chunks`` (0-dim, ``B'``, the samples scored; these four only when
            ``masks`` is given),
            ``mask_grid`` (B', T', K, h, w) (``eval_masks`` on the patch grid, for
            visualisation), ``losses`` (unweighted active losses), ``weighted_losses`` (name -> weight * loss,
            summing to the model's total) and ``loss_names`` (every configured loss). In eval mode (like
            ``srl-eval``) no loss is computed: ``losses`` is empty and every ``weighted_losses`` entry is NaN,
            and with ``independent_chunks`` ``B' = B * floor(T / c)``, ``T' = c``; otherwise ``B' = B``, ``T' = T``.
        """
        videos = None if masks is None else masks.shape[0]
        batch = {"video": video, "backbone_features": backbone_features, "backbone_keys": backbone_keys}
        inputs = runtime.model_inputs({name: value for name, value in batch.items() if value is not None})
        weights = self.model.loss_weights
        if self.training:
            outputs = runtime.run_model(self.model, inputs, global_step=int(global_step))
            eval_masks = self.model.eval_masks(outputs)
            losses = self.model.compute_losses(outputs, global_step=int(global_step))
            losses.pop("total")
            weighted = {name: weights[name] * value for name, value in losses.items()}
        else:
            if self.independent_chunks:
                chunks = self.independent_chunks
                inputs = {name: runtime.split_into_clips(value, chunks) for name, value in inputs.items()}
                masks = None if masks is None else runtime.split_into_clips(masks, chunks)
            frames = next(iter(inputs.values())).shape[1]
            if self.stream_frames is None or self.stream_frames >= frames:
                outputs = runtime.run_model(self.model, inputs)
                eval_masks = self.model.eval_masks(outputs)
            else:
                outputs = {}
                eval_masks = runtime.video_eval_masks(self.model, inputs, self.stream_frames)
            losses = {}
            weighted = {name: eval_masks.new_full((), float("nan")) for name in weights}
        if masks is not None:
            outputs["eval_true_masks"] = masks
            outputs["eval_hard_masks"] = metrics.hard_masks_from_soft(eval_masks, tuple(masks.shape[-2:]))
            outputs["eval_videos"] = masks.new_tensor(float(videos))
            outputs["eval_chunks"] = masks.new_tensor(float(masks.shape[0]))
        outputs.update(
            eval_masks=eval_masks,
            mask_grid=eval_masks.unflatten(-1, tuple(self.model.patch_grid)),
            losses=losses,
            weighted_losses=weighted,
            loss_names=tuple(weights),
        )
        return outputs


class LossTerm(nn.Module):
    """One weighted loss of a :class:`MethodModel` as an OCL loss (a 0-dim tensor).

    Routed: ``weighted_losses_path: <model>.weighted_losses`` and ``loss_names_path: <model>.loss_names``.
    A term outside its activity window (or with weight 0) contributes a zero.

    Args:
        term: the model's loss name, e.g. ``loss_recon``, ``loss_sc`` (SRL), ``loss_ss`` (SlotContrast).
    """

    def __init__(self, term: str) -> None:
        super().__init__()
        self.term = term

    def forward(self, weighted_losses: Mapping[str, torch.Tensor], loss_names: Sequence[str]) -> torch.Tensor:
        if self.term not in loss_names:
            raise ValueError(f"LossTerm '{self.term}' is not a loss of the model; its losses are {list(loss_names)}")
        if self.term in weighted_losses:
            return weighted_losses[self.term]
        if not weighted_losses:
            raise ValueError("the model returned no active loss at this step; check its loss weights and windows")
        return next(iter(weighted_losses.values())).new_zeros(())
