"""SSync against the values the official code computed (ssync_reference_seed100.pt, docs/METHODS.md §10):
the MSE-of-softmax loss, neighbour extraction, pseudo-label merging and selection at three thresholds, and
the full model's forward and losses at steps 29999 (synergy off) and 30000 (on)."""
from __future__ import annotations

import pytest
import torch

from srl_plugin.inference.cli_import import main as import_main
from srl_plugin.interop import model_from_official_state_dict
from srl_plugin.losses import mse_cls_loss, srl_slot_contrastive_loss
from srl_plugin.losses.mse_cls import mse_cls_probabilities, one_hot_class_first
from srl_plugin.models import SSyncModel, SynergyPseudoLabels
from srl_plugin.models.synergy_labels import neighbour_labels
from srl_plugin.runtime import load_model

FUNCTION_RTOL = 1e-6  # float64 function values
MODEL_RTOL = 1e-5  # float32 reference, compared relative to each tensor's scale
MODEL_OUTPUTS = ("features", "slots", "grouping_masks", "grouping_logits", "decoder_masks", "decoder_alpha",
                 "reconstruction")
OFFICIAL_LOSS_NAMES = {"loss_recon": "loss_featrec"}


@pytest.fixture(scope="module")
def reference(reference_dir):
    return torch.load(reference_dir / "ssync_reference_seed100.pt", weights_only=True)


def _assert_scaled_close(actual: torch.Tensor, expected: torch.Tensor, rtol: float, name: str) -> None:
    expected = expected.to(actual.dtype)
    scale = expected.abs().max().item() if expected.numel() else 0.0
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=rtol * scale, msg=lambda m: f"{name}: {m}")


def _assert_labels_and_predictions(actual: dict[str, torch.Tensor], reference: dict, prefix: str, rtol: float) -> None:
    for name, value in actual.items():
        expected = reference[f"{prefix}{name}"]
        if value.is_floating_point():
            _assert_scaled_close(value, expected, rtol, name)
        else:
            assert value.dtype == expected.dtype and torch.equal(value, expected), name


@pytest.mark.parametrize("tag,temperature", [("t1", 1.0), ("t0p5", 0.5)])
def test_mse_cls_loss_on_rows(reference, tag, temperature) -> None:
    logits, labels = reference["mscls_logits"], reference["mscls_labels"]
    torch.testing.assert_close(mse_cls_probabilities(logits, temperature), reference[f"mscls_{tag}_pred"],
                               rtol=FUNCTION_RTOL, atol=1e-12)
    torch.testing.assert_close(one_hot_class_first(labels, 5, logits.dtype), reference[f"mscls_{tag}_target"],
                               rtol=0, atol=0)
    torch.testing.assert_close(mse_cls_loss(logits, labels, temperature), reference[f"mscls_{tag}_loss"],
                               rtol=FUNCTION_RTOL, atol=0)


def test_mse_cls_loss_on_maps(reference) -> None:
    logits, labels = reference["mscls4d_logits"], reference["mscls4d_labels"]
    target = one_hot_class_first(labels, 5, logits.dtype)
    torch.testing.assert_close(target, reference["mscls4d_target"], rtol=0, atol=0)
    torch.testing.assert_close(mse_cls_loss(logits, labels, 1.0), reference["mscls4d_loss"], rtol=FUNCTION_RTOL, atol=0)


def test_neighbours_in_official_order(reference) -> None:
    assert torch.equal(neighbour_labels(reference["nb_labels"]), reference["nb_neighbors"])


@pytest.mark.parametrize("tag,threshold", [("thr0p7", 0.7), ("thr0p6", 0.6), ("thr0p5", 0.5)])
def test_pseudo_labels_and_synergy_losses(reference, tag, threshold) -> None:
    logits, alpha = reference["pl_grp_logits"], reference["pl_dec_alpha"]
    labels = SynergyPseudoLabels(threshold)(logits, logits.softmax(dim=2), alpha, alpha.softmax(dim=2))
    assert set(labels) == {key.removeprefix(f"pl_{tag}_") for key in reference if key.startswith(f"pl_{tag}_")
                           and "loss" not in key}
    _assert_labels_and_predictions(labels, reference, f"pl_{tag}_", FUNCTION_RTOL)
    assert not torch.equal(labels["merged_grp_labels"], labels["original_grp_labels"])
    for name, (preds, targets) in {
        "loss_grp2deccls": ("dec_bd_preds", "grp_bd_labels"), "loss_dec2grpcls": ("grp_nbd_preds", "dec_nbd_labels")
    }.items():
        torch.testing.assert_close(mse_cls_loss(labels[preds], labels[targets]), reference[f"pl_{tag}_{name}"],
                                   rtol=FUNCTION_RTOL, atol=0)


def test_threshold_0p5_merges_more_than_0p7(reference) -> None:
    """The reference input has a second near-duplicate pair that only merges at the lower threshold."""
    changed = {
        tag: (reference[f"pl_{tag}_merged_grp_labels"] != reference[f"pl_{tag}_original_grp_labels"]).sum(dim=(1, 2, 3))
        for tag in ("thr0p7", "thr0p5")
    }
    assert changed["thr0p7"].tolist() == [18, 0] and changed["thr0p5"].tolist() == [18, 1]


def test_image_slot_contrast_equals_srl_supcon(reference) -> None:
    """SSync's COCO-only Img_Slot_Slot_Contrastive_Loss is SRL's SupCon slot loss (docs/METHODS.md §10.6)."""
    loss = srl_slot_contrastive_loss(reference["imgss_slots"], temperature=0.1, batch_contrast=True)
    torch.testing.assert_close(loss, reference["imgss_loss"], rtol=FUNCTION_RTOL, atol=0)
    with pytest.raises(ValueError, match="at least 2 frames"):
        srl_slot_contrastive_loss(reference["imgss_slots"][:, :1], temperature=0.1, batch_contrast=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_full_model_forward_and_losses(reference, dtype) -> None:
    model = model_from_official_state_dict(reference["state_dict"], preset="movi_c", method="ssync").eval().to(dtype)
    assert isinstance(model, SSyncModel) and model.backbone is None and model.num_slots == 11
    with torch.no_grad():
        outputs = model.forward_features(reference["model_backbone_features"].to(dtype))
        for name in MODEL_OUTPUTS:
            _assert_scaled_close(outputs[name], reference[f"model_{name}"], MODEL_RTOL, name)
        _assert_labels_and_predictions(model.synergy_targets(outputs), reference, "model_", MODEL_RTOL)
        for step in (29999, 30000):
            losses = model.compute_losses(outputs, step)
            expected = {key.removeprefix(f"model_step{step}_"): value for key, value in reference.items()
                        if key.startswith(f"model_step{step}_")}
            assert {OFFICIAL_LOSS_NAMES.get(name, name) for name in losses} == set(expected)
            for name, value in losses.items():
                assert value.dtype == dtype and value.dim() == 0
                torch.testing.assert_close(value, expected[OFFICIAL_LOSS_NAMES.get(name, name)].to(dtype),
                                           rtol=MODEL_RTOL, atol=0, msg=lambda m: f"step {step} {name}: {m}")


def test_imported_official_checkpoint_keeps_weights_and_settings(reference, tmp_path) -> None:
    """srl-import-checkpoint --method ssync: a released checkpoint's layout (SlotContrast's key names)."""
    source = tmp_path / "ssync_movi_c.ckpt"
    torch.save({"state_dict": reference["state_dict"], "global_step": 100000}, source)
    assert import_main([str(source), str(tmp_path / "run"), "--method", "ssync", "--preset", "movi_c"]) == 0
    model, config = load_model(tmp_path / "run", backbone="none")
    assert isinstance(model, SSyncModel) and config.method == "ssync"
    assert (config.model.merge_iou_threshold, config.model.max_steps) == (0.7, 100000)
    with torch.no_grad():
        outputs = model.forward_features(reference["model_backbone_features"])
        losses = model.compute_losses(outputs, 30000)
    _assert_scaled_close(outputs["decoder_masks"], reference["model_decoder_masks"], MODEL_RTOL, "decoder_masks")
    torch.testing.assert_close(losses["total"], reference["model_step30000_total"], rtol=MODEL_RTOL, atol=0)
