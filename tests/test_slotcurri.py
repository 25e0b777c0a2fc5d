"""SlotCurri's parts and runs: the curriculum's state survives a checkpoint, clear errors, official import,
`srl-train experiment=slotcurri/synthetic` training, resuming between an error recording and its split, and
evaluating, and DDP ranks keeping one split."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from srl_plugin.interop import model_from_official_state_dict, official_state_dict_from_model
from srl_plugin.losses import ssim_loss
from srl_plugin.models import CurriculumLearnedInit, SlotCurriModel
from srl_plugin.models.curriculum import split_counts
from srl_plugin.runtime import load_model, read_checkpoint
from srl_plugin.training import cli_eval, cli_train

TINY_MODEL = {"feature_dim": 8, "num_slots": 6, "slot_dim": 4, "num_patches": 9, "decoder_hidden_dims": (8,)}


def _tiny_model(**kwargs) -> SlotCurriModel:
    return SlotCurriModel(None, **TINY_MODEL, schedule_steps=40, **kwargs)


def test_split_counts_share_the_new_slots_by_error() -> None:
    assert split_counts(torch.tensor([1.0, 1.0]), 3).tolist() in ([2, 1], [1, 2])
    assert split_counts(torch.tensor([0.1, 0.6, 0.3]), 4).tolist() == [0, 3, 1]
    assert split_counts(torch.tensor([0.5, 0.5]), 0).tolist() == [0, 0]
    with pytest.raises(RuntimeError, match="recorded by compute_losses"):
        split_counts(torch.zeros(2), 3)


def test_curriculum_counts_and_argument_checks() -> None:
    initializer = CurriculumLearnedInit(11, 4, schedule_steps=100000).train()
    assert initializer.expansion_steps == (10000, 25000) and initializer.slot_counts == (2, 5, 11)
    assert [initializer.active_slots(step) for step in (0, 10000, 10001, 25000, 25001)] == [2, 2, 5, 5, 11]
    with pytest.raises(ValueError, match="pass global_step"):
        initializer(2)
    with pytest.raises(ValueError, match="num_slots >= 4"):
        CurriculumLearnedInit(3, 4)
    with pytest.raises(ValueError, match="schedule_steps must be >= 10"):
        CurriculumLearnedInit(6, 4, schedule_steps=9)


def test_curriculum_state_survives_a_checkpoint_between_recording_and_split() -> None:
    torch.manual_seed(0)
    features = torch.randn(2, 3, 9, 8)
    uninterrupted = _tiny_model().train()
    uninterrupted.compute_losses(uninterrupted.forward_features(features, global_step=3), global_step=3)
    assert (uninterrupted.initializer.slot_errors[:2] > 0).all()
    checkpoint = {name: value.clone() for name, value in uninterrupted.state_dict().items()}
    restored = _tiny_model().train()
    restored.load_state_dict(checkpoint)  # a resume after step 3, before the split due at step 4
    before = restored.initializer.slots.detach().clone()
    for model in (uninterrupted, restored):
        torch.manual_seed(7)
        assert model.forward_features(features, global_step=4)["slots"].shape[2] == 2
    torch.testing.assert_close(restored.initializer.slots, uninterrupted.initializer.slots, rtol=0, atol=0)
    changed = (restored.initializer.slots.detach() != before).any(dim=-1)
    assert changed.tolist() == [False, False, True, False, False, False]
    assert restored.forward_features(features, global_step=5)["slots"].shape[2] == 3


def test_gradient_accumulation_splits_once_per_step() -> None:
    torch.manual_seed(0)
    features = torch.randn(2, 3, 9, 8)
    model = _tiny_model().train()
    model.compute_losses(model.forward_features(features, global_step=9), global_step=9)
    model.forward_features(features, global_step=10)
    after_first = model.initializer.slots.detach().clone()
    assert int(model.initializer.splits_done) == 2
    assert model.forward_features(features, global_step=10)["slots"].shape[2] == 3  # second micro-batch
    torch.testing.assert_close(model.initializer.slots.detach(), after_first, rtol=0, atol=0)


def test_losing_the_errors_as_the_official_code_does_stops_the_split_with_a_clear_error() -> None:
    model = _tiny_model().train()
    with pytest.raises(RuntimeError, match="recorded by compute_losses"):
        model.forward_features(torch.randn(1, 2, 9, 8), global_step=4)


def test_evaluation_uses_all_slots_and_rejects_streaming_the_cyclic_sweep() -> None:
    model = _tiny_model().eval()
    features = torch.randn(1, 3, 9, 8)
    with torch.no_grad():
        cyclic = model.forward_features(features)
        model.processor.cyclic_eval = False
        plain = model.forward_features(features)
        streamed = model.forward_features(features[:, 1:], initial_slots=plain["predicted_slots"][:, 0])
    assert cyclic["slots"].shape[2] == 6
    torch.testing.assert_close(cyclic["slots"][:, -1], plain["slots"][:, -1])
    assert not torch.allclose(cyclic["slots"][:, 0], plain["slots"][:, 0])
    torch.testing.assert_close(streamed["slots"], plain["slots"][:, 1:])
    model.processor.cyclic_eval = True
    with pytest.raises(ValueError, match="stream_frames=null"):
        model.forward_features(features, initial_slots=plain["predicted_slots"][:, 0])


def test_ssim_loss_checks_its_input() -> None:
    with pytest.raises(ValueError, match=r"\(B, C, T, H, W\)"):
        ssim_loss(torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match="same shape"):
        ssim_loss(torch.randn(1, 2, 4, 4, 4), torch.randn(1, 2, 4, 4, 5))
    with pytest.raises(ValueError, match="two of T, H, W"):
        ssim_loss(torch.randn(1, 2, 1, 1, 4), torch.randn(1, 2, 1, 1, 4))
    volume = torch.rand(1, 2, 3, 4, 4)
    assert ssim_loss(volume, volume).abs() < 1e-6


def test_official_round_trip_leaves_out_the_curriculum_errors() -> None:
    model = _tiny_model()
    model.initializer.slot_errors.fill_(0.5)
    official = official_state_dict_from_model(model)
    assert "initializer.slots" in official and not any("errors" in key or "splits" in key for key in official)
    imported = model_from_official_state_dict(official, preset="movi_e", method="slotcurri")
    assert isinstance(imported, SlotCurriModel) and imported.initializer.expansion_steps == (30000, 75000)
    assert torch.equal(imported.initializer.slot_errors, torch.zeros(6)) and int(imported.initializer.splits_done) == 0
    torch.testing.assert_close(imported.initializer.slots, model.initializer.slots, rtol=0, atol=0)


# --- srl-train / srl-eval on the synthetic experiment -------------------------------------------------------

RUN = [
    "experiment=slotcurri/synthetic", "model.schedule_steps=40", "data.batch_size=2", "data.val_batch_size=2",
    "data.val_size=4", "data.synthetic.train_videos=16", "data.synthetic.val_videos=4",
    "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1", "trainer.val_check_interval=5",
    "scheduler.warmup_steps=1", "checkpoint_every_n_steps=5",
]


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Trained to step 10 (the errors of step 9 are recorded; the split to 5 slots is due at step 10), then
    resumed to step 12."""
    run_dir = tmp_path_factory.mktemp("run") / "slotcurri"
    data = tmp_path_factory.mktemp("data") / "synthetic"
    for steps in (10, 12):
        cli_train.main([*RUN, f"output_dir={run_dir}", f"data.root={data}", f"trainer.max_steps={steps}"])
    return run_dir


def test_resume_splits_with_the_errors_saved_in_the_checkpoint(resumed_run: Path) -> None:
    before = read_checkpoint(resumed_run / "checkpoints" / "step_00000010.ckpt")
    after = read_checkpoint(resumed_run)
    assert (before["global_step"], after["global_step"]) == (10, 12)
    errors = before["state_dict"]["model.initializer.slot_errors"]
    assert (errors[:2] > 0).all() and torch.isfinite(errors).all()
    slots_before = before["state_dict"]["model.initializer.slots"]
    slots_after = after["state_dict"]["model.initializer.slots"]
    assert torch.isfinite(slots_after).all()
    moved = (slots_after[2:] - slots_before[2:]).norm(dim=-1)
    trained = (slots_after[:2] - slots_before[:2]).norm(dim=-1)
    assert (moved > 10 * trained.max()).all(), (moved, trained)


def test_trained_slotcurri_evaluates(resumed_run: Path) -> None:
    model, config = load_model(resumed_run)
    assert isinstance(model, SlotCurriModel) and model.processor.cyclic_eval and not model.training
    cli_eval.main([str(resumed_run), "trainer.enable_progress_bar=false"])
    record = json.loads((resumed_run / "metrics.json").read_text())
    assert (record["method"], record["dataset"], record["step"], record["num_videos"]) == ("slotcurri", "synthetic", 12, 4)
    for name in ("video_fg_ari", "image_fg_ari", "video_mbo", "image_mbo"):
        assert -1.0 <= record[name] <= 1.0


def _split_on_rank(rank: int, init_file: str, results: str) -> None:
    """One gloo rank: its own slots, errors and RNG, then the split due at step 4; saves the slots it keeps."""
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        torch.manual_seed(rank)
        initializer = CurriculumLearnedInit(6, 4, schedule_steps=40).train()
        initializer.slot_errors[:2] = torch.rand(2) + 0.1
        initializer(1, global_step=4)
        torch.save(initializer.slots.detach(), f"{results}/rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_under_ddp_every_rank_keeps_rank_zeros_split(tmp_path: Path) -> None:
    torch.multiprocessing.spawn(_split_on_rank, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    rank0, rank1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    torch.testing.assert_close(rank1, rank0, rtol=0, atol=0)
    torch.manual_seed(0)
    alone = CurriculumLearnedInit(6, 4, schedule_steps=40).train()
    alone.slot_errors[:2] = torch.rand(2) + 0.1
    alone(1, global_step=4)
    torch.testing.assert_close(rank0, alone.slots.detach(), rtol=0, atol=0)
