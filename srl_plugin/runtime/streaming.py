"""Running a method model on a batch, and the one streaming runner for long videos.

A long video goes through the recurrence window after window; each window starts from the previous window's
``predicted_slots[:, -1]`` (docs/ARCHITECTURE.md), so slot ``k`` keeps its identity over the whole video and
the result equals one pass over all frames (docs/METHODS.md §1.8: frame 0 gets the first-frame iteration count,
every later frame the later-frame count), while memory stays bounded by the window. Training, evaluation,
``srl-infer`` and the OCL adapter all run models through this module.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

MODEL_INPUTS = ("video", "backbone_features", "backbone_keys")


def model_inputs(batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The model inputs of a batch: ``video`` (B, T, 3, H, W), or cached ``backbone_features`` (B, T, N, D_f)
    (+ ``backbone_keys`` (B, T, N, D_f))."""
    if batch.get("backbone_features") is not None:
        inputs = {"backbone_features": batch["backbone_features"]}
        if batch.get("backbone_keys") is not None:
            inputs["backbone_keys"] = batch["backbone_keys"]
        return inputs
    if batch.get("video") is None:
        raise KeyError(f"a batch needs 'video' or 'backbone_features'; got keys {sorted(batch)}")
    return {"video": batch["video"]}


def run_model(
    model: nn.Module,
    inputs: Mapping[str, torch.Tensor],
    initial_slots: torch.Tensor | None = None,
    global_step: int | None = None,
) -> dict[str, torch.Tensor]:
    """``model(video)`` or ``model.forward_features(backbone_features, backbone_keys)`` (see :func:`model_inputs`).

    ``initial_slots`` (B, K, D) continue a stream (frame 0 then uses the later-frame iteration count);
    ``global_step`` reaches step-dependent models (SlotCurri's slot curriculum in training mode).
    """
    if "backbone_features" in inputs:
        return model.forward_features(
            backbone_features=inputs["backbone_features"],
            backbone_keys=inputs.get("backbone_keys"),
            initial_slots=initial_slots,
            global_step=global_step,
        )
    return model(inputs["video"], initial_slots=initial_slots, global_step=global_step)


def stream(model: nn.Module, windows: Iterable[Mapping[str, torch.Tensor]]) -> Iterator[dict[str, torch.Tensor]]:
    """Runs ``model`` on consecutive windows of one batch of videos, carrying the slots across windows.

    Args:
        model: a method model (docs/ARCHITECTURE.md API).
        windows: model inputs (:func:`model_inputs`) of consecutive frame windows, each ``(B, t, ...)``.

    Yields each window's output dict (``slots`` (B, t, K, D), ``decoder_masks`` (B, t, K, N), ...).
    """
    slots = None
    for inputs in windows:
        outputs = run_model(model, inputs, initial_slots=slots)
        slots = outputs["predicted_slots"][:, -1]
        yield outputs


def frame_windows(inputs: Mapping[str, torch.Tensor], window: int) -> Iterator[dict[str, torch.Tensor]]:
    """Cuts every input (B, T, ...) into consecutive ``(B, <= window, ...)`` pieces along time."""
    if window < 1:
        raise ValueError(f"window must be at least 1 frame, got {window}")
    num_frames = next(iter(inputs.values())).shape[1]
    for start in range(0, num_frames, window):
        yield {name: value[:, start : start + window] for name, value in inputs.items()}


def video_eval_masks(
    model: nn.Module, inputs: Mapping[str, torch.Tensor], stream_frames: int | None = None
) -> torch.Tensor:
    """Soft evaluation masks (B, T, K, N) of whole videos: one pass, or ``stream_frames`` frames at a time
    through :func:`stream` (same result, less memory)."""
    num_frames = next(iter(inputs.values())).shape[1]
    if stream_frames is None or stream_frames >= num_frames:
        return model.eval_masks(run_model(model, inputs))
    return torch.cat([model.eval_masks(outputs) for outputs in stream(model, frame_windows(inputs, stream_frames))], 1)
