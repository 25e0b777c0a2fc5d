"""Official SRL schedules through the presets, and model parity on CUDA (docs/METHODS.md §4.8, §6.1).

The CPU forward/loss parity with ``srl_model_reference.pt`` lives in tests/test_interop.py.
"""
from __future__ import annotations

import pytest
import torch

from srl_plugin.interop import model_from_official_state_dict
from srl_plugin.interop.presets import method_kwargs
from srl_plugin.models import SRLModel

BASE = ["loss_recon", "loss_sc"]
# step -> active losses, per preset (docs/METHODS.md §4.8 table: REG closed interval, DEC/ENC strictly after).
SCHEDULES = {
    "movi_c": {
        0: BASE + ["loss_reg"], 10000: BASE + ["loss_reg"], 10001: BASE, 20000: BASE,
        20001: BASE + ["loss_cl_dec", "loss_cl_enc"],
    },
    "movi_e": {
        0: BASE, 2499: BASE, 2500: BASE + ["loss_reg"], 30000: BASE + ["loss_reg"], 30001: BASE, 60000: BASE,
        60001: BASE + ["loss_cl_dec", "loss_cl_enc"],
    },
    "ytvis2021": {
        0: BASE + ["loss_reg"], 1: BASE + ["loss_reg", "loss_cl_enc"], 10000: BASE + ["loss_reg", "loss_cl_enc"],
        10001: BASE + ["loss_cl_enc"], 20000: BASE + ["loss_cl_enc"], 20001: BASE + ["loss_cl_dec", "loss_cl_enc"],
    },
}


@pytest.mark.parametrize("preset", sorted(SCHEDULES))
def test_preset_schedules(preset) -> None:
    model = SRLModel(None, feature_dim=8, num_slots=3, slot_dim=4, num_patches=4, decoder_hidden_dims=(8,),
                     **method_kwargs("srl", preset))
    assert {step: model.active_losses(step) for step in SCHEDULES[preset]} == SCHEDULES[preset]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_forward_and_losses_match_official_on_cuda(reference_dir) -> None:
    reference = torch.load(reference_dir / "srl_model_reference.pt", weights_only=True)
    model = model_from_official_state_dict(reference["state_dict"], preset="movi_c").eval().cuda()
    with torch.no_grad():
        outputs = model.forward_features(reference["backbone_features"].cuda())
        for name in ("features", "slots", "grouping_masks", "redundancy_attn", "decoder_masks", "reconstruction"):
            scale = reference[name].abs().max().item()
            torch.testing.assert_close(outputs[name].cpu(), reference[name], rtol=1e-5, atol=1e-5 * scale)
        for step in (5000, 30000):
            for name, value in model.compute_losses(outputs, step).items():
                assert value.device.type == "cuda"
                torch.testing.assert_close(value.cpu(), reference[f"step{step}_{name}"], rtol=1e-5, atol=0)
