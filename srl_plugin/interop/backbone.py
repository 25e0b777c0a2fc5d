"""The frozen ViT of an official checkpoint (``encoder.module.backbone.model.*``): its patch size and timm sizes."""
from __future__ import annotations

import math
import re
from collections.abc import Mapping

import torch

BACKBONE_PREFIX = "encoder.module.backbone.model."


def _backbone_tensor(state_dict: Mapping[str, torch.Tensor], name: str) -> torch.Tensor:
    key = BACKBONE_PREFIX + name
    if key not in state_dict:
        raise KeyError(f"'{key}' missing from the state dict although it holds other backbone tensors")
    return state_dict[key]


def backbone_patch_size(state_dict: Mapping[str, torch.Tensor]) -> int | None:
    """The patch size of the checkpoint's ViT (side of its patch-embedding kernel), or ``None`` without one."""
    key = BACKBONE_PREFIX + "patch_embed.proj.weight"
    return int(state_dict[key].shape[-1]) if key in state_dict else None


def backbone_model_kwargs(state_dict: Mapping[str, torch.Tensor]) -> dict[str, int] | None:
    """The timm ``model_kwargs`` that size a ViT like the checkpoint's backbone, or ``None`` without one.

    Depth, width and native resolution come from the tensors; the head count assumes 64-d heads, as in every
    DINO / DINOv2 ViT. The weights are loaded by the caller together with the rest of the model.
    """
    if not any(key.startswith(BACKBONE_PREFIX) for key in state_dict):
        return None
    block = re.compile(re.escape(BACKBONE_PREFIX) + r"blocks\.(\d+)\.")
    depth = len({match.group(1) for key in state_dict if (match := block.match(key))})
    _, pos_tokens, embed_dim = _backbone_tensor(state_dict, "pos_embed").shape
    patch = int(_backbone_tensor(state_dict, "patch_embed.proj.weight").shape[-1])
    return {
        "img_size": math.isqrt(int(pos_tokens) - 1) * patch,
        "depth": depth,
        "embed_dim": int(embed_dim),
        "num_heads": int(embed_dim) // 64,
    }
