"""A few Adam steps per method on random videos with a tiny random ViT: finite losses that change."""
from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from srl_plugin.models import FrozenViTBackbone, SlotContrastModel, SRLModel, SSyncModel, VideoSAURModel

ALWAYS = {"start": 0, "end": None, "start_inclusive": True, "end_inclusive": False}
TINY = {"feature_dim": 32, "num_slots": 3, "slot_dim": 16, "num_patches": 4}


def _build(method: str, tiny_vit: Callable[..., FrozenViTBackbone]) -> torch.nn.Module:
    if method == "srl":
        return SRLModel(tiny_vit(), **TINY, decoder_hidden_dims=(32,), reg_window=ALWAYS, dec_window=ALWAYS,
                        enc_window=ALWAYS, topk_enc=2, redundancy_k=1)
    if method == "slotcontrast":
        return SlotContrastModel(tiny_vit(), **TINY, decoder_hidden_dims=(32,))
    if method == "ssync":
        return SSyncModel(tiny_vit(), **TINY, decoder_hidden_dims=(32,), max_steps=0)
    return VideoSAURModel(tiny_vit(return_keys=True), **TINY, renderer_dims=(32, 32), reconstruct_features=True,
                          similarity_temperature=0.15)


@pytest.mark.parametrize("method", ["srl", "slotcontrast", "videosaur", "ssync"])
def test_few_adam_steps(method: str, tiny_vit: Callable[..., FrozenViTBackbone]) -> None:
    torch.manual_seed(0)
    model = _build(method, tiny_vit).train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    video = torch.randn(2, 4, 3, 28, 28)
    totals = []
    for step in range(4):
        losses = model.compute_losses(model(video), global_step=step + 1)
        assert all(torch.isfinite(value) for value in losses.values()), losses
        optimizer.zero_grad()
        losses["total"].backward()
        optimizer.step()
        totals.append(losses["total"].item())
    assert totals[-1] != totals[0]
    assert not model.backbone.model.training
