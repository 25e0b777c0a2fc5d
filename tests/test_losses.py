"""Losses: parity with the official code (reference values), dtypes, shape errors and schedule windows."""
from __future__ import annotations

import math

import pytest
import torch

from srl_plugin.losses import (
    LossWindow,
    decoder_consistency_loss,
    encoder_consistency_loss,
    feature_reconstruction_loss,
    slot_redundancy_loss,
    slotcontrast_loss,
    srl_slot_contrastive_loss,
    temporal_similarity_loss,
    temporal_similarity_target,
)

RTOL = {torch.float64: 1e-6, torch.float32: 1e-5}
DTYPES = [torch.float64, torch.float32]


@pytest.fixture(scope="module")
def ref(reference_dir):
    return torch.load(reference_dir / "loss_metric_reference.pt", weights_only=True)


def _computed(ref: dict, name: str, dtype: torch.dtype) -> torch.Tensor:
    c = {key: value.to(dtype) if torch.is_tensor(value) and value.is_floating_point() else value for key, value in ref.items()}
    if name == "ssc_loss":
        return srl_slot_contrastive_loss(c["ssc_slots"], temperature=0.1, batch_contrast=True)
    if name == "slotcontrast_loss":
        return slotcontrast_loss(c["slotcontrast_slots"], temperature=0.1, batch_contrast=True)
    if name == "red_loss":
        return slot_redundancy_loss(c["red_attn"], c["red_slots"], c["red_k"])
    if name == "dec_loss":
        return decoder_consistency_loss(
            c["dec_decoded"], c["dec_target"], c["dec_grouping_masks"], temperature=0.1, base_temperature=0.07,
            group_frames=c["dec_group_frames"],
        )
    if name == "enc_loss":
        return encoder_consistency_loss(
            c["enc_encoded"], c["enc_frozen"], c["enc_decoder_masks"], temperature=0.1, base_temperature=0.07,
            topk=c["enc_topk"], group_frames=c["enc_group_frames"],
        )
    if name == "timesim_target":
        return temporal_similarity_target(c["timesim_keys"], c["timesim_temperature"], threshold=0.0, time_shift=1)
    assert name == "timesim_loss"
    return temporal_similarity_loss(c["timesim_pred_logits"], c["timesim_keys"], c["timesim_temperature"])


NAMES = ["ssc_loss", "slotcontrast_loss", "red_loss", "dec_loss", "enc_loss", "timesim_target", "timesim_loss"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_matches_official(ref, name, dtype) -> None:
    value = _computed(ref, name, dtype)
    assert value.dtype == dtype
    expected = ref[name].to(dtype)
    assert value.shape == expected.shape
    torch.testing.assert_close(value, expected, rtol=RTOL[dtype], atol=0 if value.dim() == 0 else 1e-12)


def test_slotcontrast_softmax_runs_over_frame_t_slots(ref) -> None:
    """Reversing time swaps the softmax direction (§3.3, §7); the official value needs the frame-t softmax."""
    slots = ref["slotcontrast_slots"]
    reversed_value = slotcontrast_loss(slots.flip(1))
    assert not torch.isclose(reversed_value, ref["slotcontrast_loss"], rtol=1e-3)


def test_slotcontrast_matches_explicit_cross_entropy() -> None:
    torch.manual_seed(0)
    slots = torch.randn(3, 4, 5, 8, dtype=torch.float64)
    z = torch.nn.functional.normalize(slots, dim=-1)
    per_video = []
    for b in range(3):
        logits = torch.einsum("tid,tjd->tij", z[b, :-1], z[b, 1:]) / 0.1
        per_video.append(torch.nn.functional.cross_entropy(logits, torch.arange(5).expand(3, 5)))
    torch.testing.assert_close(slotcontrast_loss(slots, batch_contrast=False), torch.stack(per_video).mean())


def test_srl_slot_loss_without_batch_contrast_is_mean_of_per_video_losses() -> None:
    torch.manual_seed(1)
    slots = torch.randn(3, 4, 5, 8, dtype=torch.float64)
    separate = torch.stack([srl_slot_contrastive_loss(slots[b : b + 1]) for b in range(3)]).mean()
    torch.testing.assert_close(srl_slot_contrastive_loss(slots, batch_contrast=False), separate)
    assert not torch.isclose(srl_slot_contrastive_loss(slots, batch_contrast=True), separate)


def test_redundancy_loss_is_zero_for_uniform_attention_and_ignores_slot_gradients() -> None:
    attn = torch.full((2, 3, 4, 9), 1 / 9, dtype=torch.float64, requires_grad=True)
    slots = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    loss = slot_redundancy_loss(attn, slots, 2)
    assert abs(loss.item()) < 1e-7
    loss.backward()
    assert slots.grad is None and attn.grad is not None


def test_redundancy_loss_regularises_the_less_specialised_slot_of_the_most_similar_pair() -> None:
    slots = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]).expand(1, 2, 3, 2)
    patches = 4
    peaked = torch.tensor([0.7, 0.1, 0.1, 0.1])
    uniform = torch.full((patches,), 1 / patches)
    attn = torch.stack([peaked, torch.tensor([0.4, 0.2, 0.2, 0.2]), uniform]).expand(1, 2, 3, patches)
    kl_slot1 = (attn[0, 0, 1] * (attn[0, 0, 1].log() + math.log(patches))).sum()
    torch.testing.assert_close(slot_redundancy_loss(attn, slots, 1), kl_slot1)


def test_encoder_consistency_handles_tokens_without_semi_positives() -> None:
    torch.manual_seed(2)
    encoded = torch.randn(1, 2, 4, 6, requires_grad=True)
    masks = torch.zeros(1, 2, 8, 4)
    for t in range(2):
        for n in range(4):
            masks[0, t, t * 4 + n, n] = 1.0  # every token its own label: no semi-positives at all
    loss = encoder_consistency_loss(encoded, torch.randn(1, 2, 4, 3), masks, topk=2, group_frames=2)
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(encoded.grad).all()


def test_temporal_target_rows_without_positive_similarity_are_uniform() -> None:
    keys = torch.zeros(1, 2, 3, 2, dtype=torch.float64)
    keys[0, 0] = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    keys[0, 1] = torch.tensor([[-1.0, 0.0], [-0.6, -0.8], [-0.8, 0.6]])
    target = temporal_similarity_target(keys, 0.1)
    assert target.shape == (1, 1, 3, 3)
    torch.testing.assert_close(target[0, 0, 0], torch.full((3,), 1 / 3, dtype=torch.float64))
    torch.testing.assert_close(target.sum(-1), torch.ones(1, 1, 3, dtype=torch.float64))
    assert target[0, 0, 1, 1] == 0.0  # negative similarity is excluded
    expected = torch.softmax(torch.tensor([0.0, 0.6], dtype=torch.float64) / 0.1, dim=0)
    torch.testing.assert_close(target[0, 0, 1, [0, 2]], expected)


def test_feature_reconstruction_is_mse_with_detached_target() -> None:
    recon = torch.randn(2, 3, 4, 5, requires_grad=True)
    target = torch.randn(2, 3, 4, 5, requires_grad=True)
    loss = feature_reconstruction_loss(recon, target)
    torch.testing.assert_close(loss, ((recon - target) ** 2).mean())
    loss.backward()
    assert target.grad is None


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: srl_slot_contrastive_loss(torch.randn(2, 4, 5)), r"slots must have shape \(B, T, K, D\)"),
        (lambda: slotcontrast_loss(torch.randn(2, 1, 5, 3)), "at least 2 frames"),
        (lambda: slot_redundancy_loss(torch.rand(2, 4, 5, 16), torch.randn(2, 4, 6, 8), 2), "attn"),
        (lambda: slot_redundancy_loss(torch.rand(2, 4, 5, 16), torch.randn(2, 4, 5, 8), 0), "k must be"),
        (
            lambda: decoder_consistency_loss(torch.randn(2, 6, 16, 8), torch.randn(2, 6, 16, 8), torch.rand(2, 6, 5, 16)),
            "not divisible by group_frames=4",
        ),
        (
            lambda: decoder_consistency_loss(torch.randn(2, 4, 16, 8), torch.randn(2, 4, 16, 7), torch.rand(2, 4, 5, 16)),
            "same shape",
        ),
        (
            lambda: encoder_consistency_loss(torch.randn(2, 4, 16, 8), torch.randn(2, 4, 16, 3), torch.rand(2, 4, 5, 15)),
            r"decoder_masks must be \(B, T, K, N\)",
        ),
        (
            lambda: encoder_consistency_loss(
                torch.randn(1, 4, 4, 8), torch.randn(1, 4, 4, 3), torch.rand(1, 4, 5, 4), topk=5
            ),
            "topk",
        ),
        (lambda: temporal_similarity_loss(torch.randn(2, 4, 16, 15), torch.randn(2, 4, 16, 3), 0.1), "pred_logits"),
        (lambda: temporal_similarity_target(torch.randn(2, 4, 16), 0.1), "keys"),
        (lambda: feature_reconstruction_loss(torch.randn(2, 4, 16, 3), torch.randn(2, 4, 16, 4)), "same shape"),
    ],
)
def test_bad_shapes_raise(call, message) -> None:
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize(
    ("window", "active"),
    [
        (LossWindow(0, 10000, True, True), {0: True, 5000: True, 10000: True, 10001: False}),
        (LossWindow(20000, None, False, False), {0: False, 20000: False, 20001: True, 10**6: True}),
        (LossWindow(2500, 30000, True, False), {2499: False, 2500: True, 29999: True, 30000: False}),
    ],
)
def test_loss_window(window, active) -> None:
    assert {step: window.is_active(step) for step in active} == active


def test_loss_window_rejects_end_before_start() -> None:
    with pytest.raises(ValueError, match="end"):
        LossWindow(10, 5, True, True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", NAMES)
def test_matches_official_on_cuda(ref, name) -> None:
    cuda_ref = {k: v.cuda() if torch.is_tensor(v) else v for k, v in ref.items()}
    value = _computed(cuda_ref, name, torch.float64)
    assert value.device.type == "cuda"
    torch.testing.assert_close(value.cpu(), ref[name], rtol=1e-6, atol=0 if value.dim() == 0 else 1e-12)


@pytest.mark.parametrize("name", NAMES[:-2] + ["timesim_loss"])
def test_half_precision_autocast_reduces_in_float32(ref, name) -> None:
    """Under mixed precision the matmuls may run in half precision; the reductions stay in float32."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = _computed(ref, name, torch.float32)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, ref[name].float(), rtol=5e-3, atol=0)


def test_redundancy_loss_is_finite_in_float16() -> None:
    attn = torch.zeros(1, 2, 3, 4, dtype=torch.float16)
    attn[..., 0] = 1.0  # exact zeros: log(0 + 1e-8) would be -inf in float16
    loss = slot_redundancy_loss(attn, torch.randn(1, 2, 3, 5), 1)
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss, torch.tensor(math.log(4)), rtol=1e-5, atol=0)
