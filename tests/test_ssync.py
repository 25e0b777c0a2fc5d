"""SSync's parts on small hand-made inputs: the synergy schedule, transitive merging and its tie rule,
boundary / interior selection, the loss module, gradient paths and clear errors (docs/METHODS.md §10)."""
from __future__ import annotations

import pytest
import torch

from srl_plugin.interop.presets import method_kwargs
from srl_plugin.losses import MSECLSLoss, mse_cls_loss
from srl_plugin.models import SSyncModel, SynergyPseudoLabels
from srl_plugin.models.synergy_labels import merge_targets, redundant_components, relabel

TINY = {"feature_dim": 8, "num_slots": 3, "slot_dim": 8, "num_patches": 16, "decoder_hidden_dims": (16,)}


@pytest.mark.parametrize("preset,first_active", [("movi_c", 30000), ("movi_e", 90000), ("ytvis2021", 30000)])
def test_synergy_losses_switch_on_at_30_percent(preset: str, first_active: int) -> None:
    torch.manual_seed(0)
    model = SSyncModel(None, **TINY, **method_kwargs("ssync", preset)).eval()
    with torch.no_grad():
        outputs = model.forward_features(torch.randn(2, 3, 16, 8))
        before = model.compute_losses(outputs, first_active - 1)
        after = model.compute_losses(outputs, first_active)
    assert set(before) == {"total", "loss_recon", "loss_ss"}
    assert set(after) == {"total", "loss_recon", "loss_ss", "loss_grp2deccls", "loss_dec2grpcls"}
    expected_total = after["loss_recon"] + 0.5 * after["loss_ss"] + after["loss_grp2deccls"] + after["loss_dec2grpcls"]
    torch.testing.assert_close(after["total"], expected_total)


def test_window_is_the_ceiling_of_ratio_times_steps() -> None:
    model = SSyncModel(None, **TINY, max_steps=1001)
    assert model.active_losses(300) == ["loss_recon", "loss_ss"]
    assert model.active_losses(301) == ["loss_recon", "loss_ss", "loss_grp2deccls", "loss_dec2grpcls"]


def test_depth_first_components_in_visit_order() -> None:
    edges = torch.zeros(6, 6, dtype=torch.bool)
    for i, j in ((0, 2), (0, 4), (2, 5), (1, 3)):
        edges[i, j] = edges[j, i] = True
    # From 0 the stack holds [2, 4]; 4 is visited first, then 2, then 2's neighbour 5.
    assert redundant_components(edges) == [[0, 4, 2, 5], [1, 3]]


def test_chain_merges_transitively_and_ties_go_to_the_first_visited() -> None:
    # Slots 0~1 and 1~2 overlap strongly, 0 and 2 do not: all three merge. Slot 3 stands alone.
    coverage = torch.zeros(1, 1, 4, 8)
    coverage[0, 0, 0, 0:4] = coverage[0, 0, 1, 0:5] = 1
    coverage[0, 0, 2, 1:5] = coverage[0, 0, 3, 6:8] = 1
    logits = coverage * 4.0 - 2.0
    equal_areas = torch.tensor([[0, 0, 1, 1, 2, 2, 3, 3]]).reshape(1, 1, 2, 4)
    targets = merge_targets(logits, equal_areas, iou_threshold=0.7)
    assert targets.tolist() == [[0, 0, 0, 3]]  # 0, 1, 2 tie on area 2: slot 0 is visited first
    slot_two_largest = torch.tensor([[2, 0, 2, 1, 2, 2, 3, 3]]).reshape(1, 1, 2, 4)
    assert merge_targets(logits, slot_two_largest, iou_threshold=0.7).tolist() == [[2, 2, 2, 3]]
    assert merge_targets(logits, slot_two_largest, iou_threshold=0.9).tolist() == [[0, 1, 2, 3]]
    assert relabel(slot_two_largest, targets).flatten().tolist() == [0, 0, 0, 0, 0, 0, 3, 3]


def test_boundary_excludes_isolated_patches_and_interior_needs_full_agreement() -> None:
    labels = torch.zeros(1, 1, 3, 3, dtype=torch.long)
    labels[0, 0, 1, 1] = 1  # one patch unlike all its 10 neighbours (time neighbours replicate itself: 8 differ)
    parts = SynergyPseudoLabels()
    boundary = parts.boundary(labels)[0, 0]
    assert boundary.all()  # 8 of 10 neighbours differ at the centre: below the noise limit of 10
    assert parts.interior(labels)[0, 0].sum() == 0
    assert SynergyPseudoLabels(boundary_min_agreeing=3).boundary(labels)[0, 0, 1, 1].item() is False


def test_loss_module_window_weight_and_empty_selection() -> None:
    logits = torch.randn(5, 3, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 1, 0])
    module = MSECLSLoss(weight=2.0, window={"start": 10, "end": None, "start_inclusive": True, "end_inclusive": False})
    assert module(logits, labels, 9).item() == 0.0
    torch.testing.assert_close(module(logits, labels, 10), 2.0 * mse_cls_loss(logits, labels))
    empty = module(logits[:0], labels[:0], 10)
    empty.backward()
    assert empty.item() == 0.0 and logits.grad is not None and torch.isnan(mse_cls_loss(logits[:0], labels[:0]))


def test_mse_cls_loss_errors_name_the_fix() -> None:
    with pytest.raises(ValueError, match="without its class axis"):
        mse_cls_loss(torch.randn(4, 3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="integer tensor"):
        mse_cls_loss(torch.randn(4, 3), torch.zeros(4))
    with pytest.raises(ValueError, match="temperature"):
        mse_cls_loss(torch.randn(4, 3), torch.zeros(4, dtype=torch.long), temperature=0.0)
    with pytest.raises(ValueError, match="one shape"):
        SynergyPseudoLabels()(*(torch.randn(1, 2, slots, 4) for slots in (3, 3, 2, 3)))


def _parameters_with_gradient(model: SSyncModel, loss: torch.Tensor) -> set[str]:
    model.zero_grad()
    loss.backward(retain_graph=True)
    return {".".join(name.split(".")[: 2 if name.startswith("processor") else 1])
            for name, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


def test_gradient_paths_of_the_two_synergy_losses() -> None:
    """Encoder labels teach the decoder (and everything upstream); decoder labels teach slot attention only."""
    torch.manual_seed(0)
    model = SSyncModel(None, **TINY, max_steps=0)
    losses = model.compute_losses(model.forward_features(torch.randn(2, 3, 16, 8)), 0)
    assert _parameters_with_gradient(model, losses["loss_grp2deccls"]) == {
        "encoder_mlp", "initializer", "processor.corrector", "processor.predictor", "decoder"
    }
    assert _parameters_with_gradient(model, losses["loss_dec2grpcls"]) == {
        "encoder_mlp", "initializer", "processor.corrector", "processor.predictor"
    }

