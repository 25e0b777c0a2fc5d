"""SlotCurri against the official code (slotcurri_reference_seed100.pt, docs/METHODS.md §11): the SSIM loss, the
per-slot errors, the curriculum splits with the stored RNG seeds, cyclic inference, and the full model's training
sequence and evaluation passes."""
from __future__ import annotations

import pytest
import torch

from srl_plugin.inference.cli_import import main as import_main
from srl_plugin.interop import convert_official_state_dict, model_from_official_state_dict
from srl_plugin.losses import ssim_loss
from srl_plugin.models import (
    CurriculumLearnedInit,
    RecurrentProcessor,
    SlotAttention,
    SlotCurriModel,
    TransformerPredictor,
)
from srl_plugin.runtime import load_model

FUNCTION_RTOL = 1e-6  # float64 functions
# Full-model outputs are float32 (stored and recomputed): compared relative to each tensor's scale.
MODEL_RTOL = 1e-5
LOSS_NAMES = {"total": "total", "loss_featrec": "loss_recon", "loss_ssim": "loss_ssim", "loss_ss": "loss_ss"}
OUTPUT_NAMES = ("slots", "grouping_masks", "decoder_masks", "reconstruction")
TRAINING_STEPS = (5000, 9999, 10000, 10001, 24999, 25000, 25001, 60000)


@pytest.fixture(scope="module")
def reference(reference_dir):
    return torch.load(reference_dir / "slotcurri_reference_seed100.pt", weights_only=True)


def _assert_model_close(actual: torch.Tensor, expected: torch.Tensor, name: str) -> None:
    scale = expected.abs().max().item()
    torch.testing.assert_close(actual, expected, rtol=MODEL_RTOL, atol=MODEL_RTOL * scale, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("tag", ["ssim", "ssim6"])
def test_ssim_loss_matches_official(reference, tag: str) -> None:
    value = ssim_loss(reference[f"{tag}_recon"], reference[f"{tag}_orig"])
    torch.testing.assert_close(value, reference[f"{tag}_loss"], rtol=FUNCTION_RTOL, atol=0)


def test_ssim_loss_gradient_reaches_the_reconstruction_only(reference) -> None:
    reconstruction = reference["ssim_recon"].clone().requires_grad_()
    target = reference["ssim_orig"].clone().requires_grad_()
    ssim_loss(reconstruction, target).backward()
    assert reconstruction.grad is not None and reconstruction.grad.abs().sum() > 0
    assert target.grad is None


@pytest.mark.parametrize("tag", ["k2", "k5"])
def test_slot_errors_and_losses_match_official(reference, tag: str) -> None:
    model = SlotCurriModel(None, feature_dim=8, num_slots=11, slot_dim=8, num_patches=16, decoder_hidden_dims=(8,))
    model = model.double().train()
    features, slots = reference[f"sls_{tag}_features"], reference[f"sls_{tag}_slots"]
    reconstruction, masks = reference[f"sls_{tag}_reconstruction"], reference[f"sls_{tag}_decoder_masks"]
    outputs = {  # the public names and the part outputs the routed losses read
        "backbone_features": features, "reconstruction": reconstruction, "decoder_masks": masks, "slots": slots,
        "backbone": {"backbone_features": features},
        "decoder": {"reconstruction": reconstruction, "masks": masks},
        "processor": {"objects": slots},
    }
    losses = model.compute_losses(outputs, global_step=reference[f"sls_{tag}_step"])
    torch.testing.assert_close(
        model.initializer.slot_errors, reference[f"sls_{tag}_slot_loss_scale"], rtol=FUNCTION_RTOL, atol=1e-12
    )
    for official, ours in LOSS_NAMES.items():
        torch.testing.assert_close(losses[ours], reference[f"sls_{tag}_{official}"], rtol=FUNCTION_RTOL, atol=0)


@pytest.mark.parametrize("tag", ["exp_movic", "exp_movie", "exp_ytvis"])
def test_curriculum_splits_match_official(reference, tag: str) -> None:
    num_slots, schedule_steps = reference[f"{tag}_n_slots"], reference[f"{tag}_max_steps"]
    initializer = CurriculumLearnedInit(num_slots, 8, schedule_steps).double().train()
    initializer.slots.data.copy_(reference[f"{tag}_slots_init"][0])
    for phase, step in enumerate(initializer.expansion_steps):
        initializer.slot_errors.copy_(reference[f"{tag}_phase{phase}_slot_loss_scale"])
        assert initializer(2, step - 1).shape[1] == reference[f"{tag}_step{step - 1}_n_active_slots"]
        torch.manual_seed(reference[f"{tag}_phase{phase}_rng_seed"])
        assert initializer(2, step).shape[1] == reference[f"{tag}_step{step}_n_active_slots"]
        torch.testing.assert_close(
            initializer.slots.data, reference[f"{tag}_phase{phase}_slots_after"][0], rtol=FUNCTION_RTOL, atol=1e-12
        )
        assert initializer(2, step + 1).shape[1] == reference[f"{tag}_step{step + 1}_n_active_slots"]
    assert initializer.eval()(2).shape[1] == reference[f"{tag}_eval_n_active_slots"]


@pytest.mark.parametrize("cyclic", [False, True])
def test_cyclic_inference_matches_official(reference, cyclic: bool) -> None:
    processor = RecurrentProcessor(
        SlotAttention(8, use_mlp=True), TransformerPredictor(8, 4, 1, True), 3, 2, cyclic_eval=cyclic
    )
    official = {f"processor.{key}": value for key, value in reference["cyc_processor_state_dict"].items()}
    converted, unknown = convert_official_state_dict(official)
    assert unknown == []
    processor.load_state_dict({key.removeprefix("processor."): value for key, value in converted.items()})
    with torch.no_grad():
        outputs = processor.double().eval()(reference["cyc_slots_initial"], reference["cyc_features"])
    tag = "cycle" if cyclic else "fwd"
    names = (("slots", "state"), ("predicted_slots", "state_predicted"), ("grouping_masks", "masks"))
    for ours, official_name in names:
        torch.testing.assert_close(
            outputs[ours], reference[f"cyc_{tag}_{official_name}"], rtol=FUNCTION_RTOL, atol=1e-12
        )


def test_cyclic_inference_changes_every_frame_but_the_last(reference) -> None:
    assert torch.equal(reference["cyc_cycle_state"][:, -1], reference["cyc_fwd_state"][:, -1])
    assert not torch.isclose(reference["cyc_cycle_state"][:, :-1], reference["cyc_fwd_state"][:, :-1]).all()


@pytest.fixture(scope="module")
def official_model(reference) -> SlotCurriModel:
    model = model_from_official_state_dict(reference["state_dict"], preset="movi_c", method="slotcurri")
    assert isinstance(model, SlotCurriModel) and model.backbone is None
    return model


@pytest.fixture(scope="module")
def training_sequence(reference, official_model: SlotCurriModel) -> dict[int, tuple]:
    """The stored sequence of training forwards: step -> (outputs, losses, initializer slots, slot errors after)."""
    model = official_model.train()
    results = {}
    for step in TRAINING_STEPS:
        if f"model_step{step}_rng_seed" in reference:
            torch.manual_seed(reference[f"model_step{step}_rng_seed"])
        outputs = model.forward_features(reference["model_backbone_features"], global_step=step)
        with torch.no_grad():
            losses = model.compute_losses(outputs, global_step=step)
        results[step] = (
            {name: value.detach() for name, value in outputs.items() if torch.is_tensor(value)},
            losses,
            model.initializer.slots.detach().clone(),
            model.initializer.slot_errors.clone(),
        )
    return results


def test_training_sequence_matches_official(reference, training_sequence) -> None:
    _assert_model_close(training_sequence[5000][0]["features"], reference["model_features"], "features")
    for step, (outputs, losses, slots, errors) in training_sequence.items():
        for official, ours in LOSS_NAMES.items():
            torch.testing.assert_close(losses[ours], reference[f"model_step{step}_{official}"], rtol=MODEL_RTOL, atol=0)
        if f"model_step{step}_slots" in reference:
            for name in OUTPUT_NAMES:
                _assert_model_close(outputs[name], reference[f"model_step{step}_{name}"], f"step {step} {name}")
        if f"model_step{step}_slot_loss_scale" in reference:
            _assert_model_close(errors, reference[f"model_step{step}_slot_loss_scale"], f"step {step} slot errors")
        if f"model_step{step}_initializer_slots_after" in reference:
            _assert_model_close(slots, reference[f"model_step{step}_initializer_slots_after"][0], f"step {step} slots")


def test_training_sequence_uses_the_curriculum_slot_counts(training_sequence) -> None:
    counts = {step: outputs["slots"].shape[2] for step, (outputs, *_rest) in training_sequence.items()}
    assert counts == {5000: 2, 9999: 2, 10000: 2, 10001: 5, 24999: 5, 25000: 5, 25001: 11, 60000: 11}


def test_imported_official_checkpoint_follows_the_curriculum(reference, tmp_path) -> None:
    """srl-import-checkpoint --method slotcurri: a released checkpoint's layout (SlotContrast's key names)."""
    source = tmp_path / "slotcurri_movi_c.ckpt"
    torch.save({"state_dict": reference["state_dict"], "global_step": 100000}, source)
    assert import_main([str(source), str(tmp_path / "run"), "--method", "slotcurri", "--preset", "movi_c"]) == 0
    model, config = load_model(tmp_path / "run", backbone="none")
    assert isinstance(model, SlotCurriModel) and config.method == "slotcurri"
    assert (config.model.schedule_steps, config.model.cyclic_inference) == (100000, True)
    with torch.no_grad():
        outputs = model.train().forward_features(reference["model_backbone_features"], global_step=5000)
        losses = model.compute_losses(outputs, 5000)
        assert model.eval().forward_features(reference["model_backbone_features"])["slots"].shape[2] == 11
    for name in OUTPUT_NAMES:
        _assert_model_close(outputs[name], reference[f"model_step5000_{name}"], f"imported {name}")
    torch.testing.assert_close(losses["total"], reference["model_step5000_total"], rtol=MODEL_RTOL, atol=0)


@pytest.mark.parametrize("cyclic", [True, False])
def test_evaluation_passes_match_official(reference, official_model: SlotCurriModel, training_sequence, cyclic) -> None:
    model = official_model.eval()
    model.processor.cyclic_eval = cyclic
    try:
        with torch.no_grad():
            outputs = model.forward_features(reference["model_backbone_features"])
            losses = model.compute_losses(outputs, global_step=TRAINING_STEPS[-1])
    finally:
        model.processor.cyclic_eval = True
    tag = "cycle" if cyclic else "nocycle"
    for name in OUTPUT_NAMES:
        _assert_model_close(outputs[name], reference[f"model_eval_{tag}_{name}"], f"eval {tag} {name}")
    if cyclic:
        for official, ours in LOSS_NAMES.items():
            torch.testing.assert_close(losses[ours], reference[f"model_eval_cycle_{official}"], rtol=MODEL_RTOL, atol=0)
