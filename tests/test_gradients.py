"""Each SRL loss trains exactly the parameters docs/METHODS.md §4.9 says it trains."""
from __future__ import annotations

import pytest
import torch

from srl_plugin.losses import decoder_consistency_loss
from srl_plugin.models import SRLModel

ALWAYS = {"start": 0, "end": None, "start_inclusive": True, "end_inclusive": False}
GROUPS = (
    "backbone", "encoder_mlp", "initializer", "processor.corrector.to_q", "processor.corrector.to_k",
    "processor.corrector.to_v", "processor.corrector.norm_inputs", "processor.corrector.norm_slots",
    "processor.corrector.gru", "processor.corrector.mlp", "processor.predictor", "decoder", "dec_projector",
    "enc_projector",
)
UPSTREAM = set(GROUPS[1:11])  # everything that produces the slots
EXPECTED = {
    "loss_recon": UPSTREAM | {"decoder"},
    "loss_sc": UPSTREAM,
    "loss_reg": UPSTREAM,
    "loss_cl_dec": UPSTREAM | {"decoder", "dec_projector"},
    "loss_cl_enc": {"encoder_mlp", "enc_projector"},
}


@pytest.fixture(scope="module")
def model_and_outputs(tiny_vit):
    torch.manual_seed(0)
    backbone = tiny_vit()
    model = SRLModel(
        backbone, feature_dim=32, num_slots=4, slot_dim=16, num_patches=4, decoder_hidden_dims=(32, 32),
        reg_window=ALWAYS, dec_window=ALWAYS, enc_window=ALWAYS, topk_enc=2, redundancy_k=2,
    )
    video = torch.randn(2, 4, 3, 28, 28)
    return model, video


def _reached(model: torch.nn.Module) -> set[str]:
    reached = set()
    for name, parameter in model.named_parameters():
        if parameter.grad is not None and parameter.grad.abs().sum() > 0:
            reached.update(group for group in GROUPS if name.startswith(group + "."))
    return reached


@pytest.mark.parametrize("loss_name", sorted(EXPECTED))
def test_loss_reaches_exactly_its_parameters(model_and_outputs, loss_name) -> None:
    model, video = model_and_outputs
    model.train()
    model.zero_grad(set_to_none=True)
    losses = model.compute_losses(model(video), global_step=1)
    assert set(losses) == set(EXPECTED) | {"total"}
    losses[loss_name].backward()
    assert _reached(model) == EXPECTED[loss_name]
    assert all(p.grad is None for p in model.backbone.parameters())


def test_decoder_consistency_trains_projector_through_reconstruction_only(model_and_outputs) -> None:
    model, video = model_and_outputs
    model.zero_grad(set_to_none=True)
    outputs = model(video)
    model.compute_losses(outputs, global_step=1)["loss_cl_dec"].backward()
    ours = model.dec_projector.weight.grad.clone()

    weight = model.dec_projector.weight.detach().clone().requires_grad_(True)
    target_weight = model.dec_projector.weight.detach().clone().requires_grad_(True)
    loss = decoder_consistency_loss(
        outputs["reconstruction"].detach() @ weight.T,
        outputs["backbone_features"] @ target_weight.T,
        outputs["grouping_masks"].detach(),
        temperature=model.consistency_temperature,
        base_temperature=model.base_temperature,
        group_frames=model.group_frames,
    )
    loss.backward()
    torch.testing.assert_close(ours, weight.grad)
    assert target_weight.grad.abs().sum() > 0  # the target branch would train it if it were not detached
