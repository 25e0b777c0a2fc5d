"""Hyper-parameters of the official SRL, SlotContrast, SlotCurri and SSync configurations (docs/METHODS.md §3.1,
§4.1, §4.8, §11.1, §10.1).

Architecture sizes (slots, widths, patches) are read from the checkpoint itself; a preset supplies what a
state dict cannot tell: the backbone name, the patch size and the loss settings.
"""
from __future__ import annotations

from typing import Any

_OPEN_AFTER = {"end": None, "start_inclusive": False, "end_inclusive": False}


def _window(start: int, end: int | None, start_inclusive: bool, end_inclusive: bool) -> dict[str, Any]:
    return {"start": start, "end": end, "start_inclusive": start_inclusive, "end_inclusive": end_inclusive}


SRL_PRESETS: dict[str, dict[str, Any]] = {
    "movi_c": {
        "redundancy_k": 5,
        "topk_enc": 8,
        "reg_window": _window(0, 10000, True, True),
        "dec_window": {"start": 20000, **_OPEN_AFTER},
        "enc_window": {"start": 20000, **_OPEN_AFTER},
    },
    "movi_e": {
        "redundancy_k": 7,
        "topk_enc": 24,
        "reg_window": _window(2500, 30000, True, True),
        "dec_window": {"start": 60000, **_OPEN_AFTER},
        "enc_window": {"start": 60000, **_OPEN_AFTER},
    },
    "ytvis2021": {
        "redundancy_k": 3,
        "topk_enc": 16,
        "reg_window": _window(0, 10000, True, True),
        "dec_window": {"start": 20000, **_OPEN_AFTER},
        "enc_window": {"start": 0, **_OPEN_AFTER},
    },
}

SRL_COMMON: dict[str, Any] = {
    "recon_weight": 1.0,
    "sc_weight": 0.25,
    "reg_weight": 0.1,
    "dec_weight": 0.1,
    "enc_weight": 0.1,
    "slot_temperature": 0.1,
    "consistency_temperature": 0.1,
    "base_temperature": 0.07,
    "group_frames": 4,
}

SLOTCONTRAST_COMMON: dict[str, Any] = {"recon_weight": 1.0, "ss_weight": 0.5, "slot_temperature": 0.1}

# SlotCurri (docs/METHODS.md §11.1): SlotContrast's losses plus SSIM; the curriculum is keyed on model.max_steps.
SLOTCURRI_COMMON: dict[str, Any] = {**SLOTCONTRAST_COMMON, "ssim_weight": 0.05, "cyclic_inference": True}
SLOTCURRI_SCHEDULE_STEPS: dict[str, int] = {"movi_c": 100000, "movi_e": 300000, "ytvis2021": 100000}

# SSync (docs/METHODS.md §10.1): SlotContrast's losses plus the two pseudo-label losses.
SSYNC_COMMON: dict[str, Any] = {
    **SLOTCONTRAST_COMMON,
    "grp2dec_weight": 1.0,
    "dec2grp_weight": 1.0,
    "cls_temperature": 1.0,
    "synergy_warmup_ratio": 0.3,
    "boundary_min_disagreeing": 1,
    "boundary_min_agreeing": 1,
    "interior_max_disagreeing": 1,
}

# max_steps: what the warm-up ratio multiplies (YT-VIS leaves it at the official default 100000).
SSYNC_PRESETS: dict[str, dict[str, Any]] = {
    "movi_c": {"merge_iou_threshold": 0.7, "max_steps": 100000},
    "movi_e": {"merge_iou_threshold": 0.65, "max_steps": 300000},
    "ytvis2021": {"merge_iou_threshold": 0.6, "max_steps": 100000},
}

BACKBONES: dict[str, dict[str, Any]] = {
    "movi_c": {"model_name": "vit_small_patch14_dinov2.lvd142m", "patch_size": 14},
    "movi_e": {"model_name": "vit_base_patch14_dinov2.lvd142m", "patch_size": 14},
    "ytvis2021": {"model_name": "vit_base_patch14_dinov2.lvd142m", "patch_size": 14},
}


def method_kwargs(method: str, preset: str) -> dict[str, Any]:
    """Constructor keyword arguments (losses, schedule) of ``method`` ('srl', 'slotcontrast', 'slotcurri' or
    'ssync') for ``preset``."""
    if preset not in BACKBONES:
        raise ValueError(f"unknown preset '{preset}'; choose one of {sorted(BACKBONES)}")
    if method == "srl":
        return {**SRL_COMMON, **SRL_PRESETS[preset]}
    if method == "slotcontrast":
        return dict(SLOTCONTRAST_COMMON)
    if method == "slotcurri":
        return {**SLOTCURRI_COMMON, "schedule_steps": SLOTCURRI_SCHEDULE_STEPS[preset]}
    if method == "ssync":
        return {**SSYNC_COMMON, **SSYNC_PRESETS[preset]}
    raise ValueError(f"unknown method '{method}'; choose 'srl', 'slotcontrast', 'slotcurri' or 'ssync'")
