"""Fingerprint of what determines cached features: the frozen backbone and the deterministic transform.

`backbone` part: timm name, SHA-256 of the weights, input size, patch size, token count `N`, width `D_f`,
and whether the keys are cached. `transform` part: every transform setting that changes the pixels the
backbone sees (resize, normalisation, crop, chunk size, flip probability, ...), as given by the caller.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from srl_plugin.models.backbone import weights_sha256

if TYPE_CHECKING:
    from srl_plugin.models.backbone import FrozenViTBackbone


def backbone_fingerprint(backbone: FrozenViTBackbone) -> dict[str, Any]:
    """Identity of a frozen backbone (weights included: random-init and pretrained weights differ)."""
    return {
        "name": backbone.model_name,
        "weights_sha256": weights_sha256(backbone.model),
        "input_size": backbone.input_size,
        "patch_size": backbone.patch_size,
        "num_patches": backbone.num_patches,
        "feature_dim": backbone.feature_dim,
        "with_keys": backbone.return_keys,
    }


def cache_fingerprint(backbone: FrozenViTBackbone, transform: Mapping[str, Any]) -> dict[str, Any]:
    """`{"backbone": ..., "transform": ...}`, the value stored in and checked against `cache_meta.json`."""
    return {"backbone": backbone_fingerprint(backbone), "transform": dict(transform)}
