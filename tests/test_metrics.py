"""Metrics: parity with the official code, skipping rules, hard masks, DDP state reduction, input checks."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from srl_plugin.metrics import ImageARI, ImageMBO, VideoARI, VideoMBO, hard_masks_from_soft

REFERENCE = [
    ("video_fg_ari", VideoARI, True),
    ("image_fg_ari", ImageARI, True),
    ("video_mbo", VideoMBO, True),
    ("image_mbo", ImageMBO, True),
    ("video_ari", VideoARI, False),
]


@pytest.fixture(scope="module")
def ref(reference_dir):
    return torch.load(reference_dir / "loss_metric_reference.pt", weights_only=True)


def _one_hot(labels: torch.Tensor, channels: int) -> torch.Tensor:
    """(B, T, H, W) labels -> (B, T, C, H, W) float one-hot; label -1 gives an all-zero pixel."""
    one_hot = F.one_hot(labels.clamp(min=0), channels).permute(0, 1, 4, 2, 3).float()
    return one_hot * (labels >= 0).unsqueeze(2)


@pytest.mark.parametrize(("name", "metric_class", "ignore_background"), REFERENCE)
@pytest.mark.parametrize("videos_per_update", [1, 3])
def test_matches_official(ref, name, metric_class, ignore_background, videos_per_update) -> None:
    metric = metric_class(ignore_background=ignore_background)
    pred, true = ref["metric_pred_masks"], ref["metric_true_masks"]
    for start in range(0, pred.shape[0], videos_per_update):
        metric.update(pred[start : start + videos_per_update], true[start : start + videos_per_update])
    value = metric.compute()
    assert value.dtype == torch.float64 and value.dim() == 0
    torch.testing.assert_close(value, ref[name], rtol=1e-6, atol=0)


@pytest.mark.parametrize(("name", "metric_class", "ignore_background"), REFERENCE)
def test_states_sum_across_processes(ref, name, metric_class, ignore_background) -> None:
    pred, true = ref["metric_pred_masks"], ref["metric_true_masks"]
    first, second = metric_class(ignore_background=ignore_background), metric_class(ignore_background=ignore_background)
    first.update(pred[:1], true[:1])
    second.update(pred[1:], true[1:])
    assert all(first._reductions[state] is not None for state in first._defaults)
    first.merge_state(second)
    torch.testing.assert_close(first.compute(), ref[name], rtol=1e-6, atol=0)


def test_perfect_prediction_up_to_relabelling_scores_one() -> None:
    torch.manual_seed(0)
    labels = torch.randint(0, 4, (2, 3, 6, 6))
    true = _one_hot(labels, 4)
    pred = _one_hot((labels + 2) % 5, 5)
    for metric_class in (VideoARI, ImageARI, VideoMBO, ImageMBO):
        metric = metric_class()
        metric.update(pred, true)
        assert metric.compute().item() == pytest.approx(1.0, abs=1e-12)


def test_background_only_frames_count_for_ari_but_are_skipped_for_mbo() -> None:
    labels = torch.zeros(1, 2, 4, 4, dtype=torch.long)
    labels[0, 0, :2, :2] = 1  # foreground only in frame 0
    true = _one_hot(labels, 2)
    pred = _one_hot(torch.zeros_like(labels), 2)  # one slot covers everything
    image_ari, image_mbo = ImageARI(), ImageMBO()
    image_ari.update(pred, true)
    image_mbo.update(pred, true)
    # Frame 0: one object in one slot -> ARI 1; frame 1: no foreground -> ARI 1 (zero denominator), counted.
    assert image_ari.num_samples == 2 and image_ari.compute().item() == 1.0
    assert image_mbo.num_samples == 1
    assert image_mbo.compute().item() == pytest.approx(4 / 16)  # IoU of the object with the slot covering the frame


def test_object_split_over_two_slots_scores_zero_ari() -> None:
    labels = torch.zeros(1, 1, 4, 4, dtype=torch.long)
    labels[0, 0, :2] = 1
    pred_labels = torch.zeros_like(labels)
    pred_labels[0, 0, :1] = 1
    pred_labels[0, 0, 1:2] = 2
    metric = VideoARI()
    metric.update(_one_hot(pred_labels, 3), _one_hot(labels, 2))
    assert metric.compute().item() == 0.0


def test_without_background_channel_unlabelled_pixels_and_empty_samples_are_ignored() -> None:
    labels = torch.full((2, 2, 4, 4), -1)
    labels[0, 0, :2, :2] = 0
    labels[0, 1, 2:, 2:] = 1
    true = _one_hot(labels, 2)  # YT-VIS style: no background channel; video 1 has no instance at all
    pred = _one_hot(torch.randint(0, 3, (2, 2, 4, 4), generator=torch.Generator().manual_seed(0)), 3)
    pred[0] = _one_hot(torch.where(labels[0] >= 0, labels[0], 2)[None], 3)[0]
    for metric_class, expected_samples in ((VideoARI, 1), (ImageARI, 2), (VideoMBO, 1), (ImageMBO, 2)):
        metric = metric_class(ignore_background=False)
        metric.update(pred, true)
        assert metric.num_samples == expected_samples
        assert metric.compute().item() == pytest.approx(1.0)


def test_invalid_ground_truth_raises() -> None:
    true = torch.zeros(1, 1, 3, 4, 4)
    true[:, :, 0] = 1
    true[0, 0, 1, 0, 0] = 1  # overlap
    pred = _one_hot(torch.zeros(1, 1, 4, 4, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="exactly one label"):
        VideoARI().update(pred, true)
    with pytest.raises(ValueError, match="overlapping"):
        VideoARI(ignore_background=False).update(pred, true)
    with pytest.raises(ValueError, match="exactly one label"):
        VideoMBO().update(pred, torch.zeros(1, 1, 3, 4, 4))


def test_shape_errors() -> None:
    with pytest.raises(ValueError, match=r"pred_masks must be a one-hot tensor of shape \(B, T, K, H, W\)"):
        VideoARI().update(torch.zeros(1, 3, 4, 4), torch.zeros(1, 1, 3, 4, 4))
    with pytest.raises(ValueError, match="must agree on B, T, H and W"):
        VideoARI().update(torch.zeros(1, 1, 3, 8, 8), torch.zeros(1, 1, 3, 4, 4))
    with pytest.raises(ValueError, match="perfect square"):
        hard_masks_from_soft(torch.rand(1, 2, 3, 15), 8)
    with pytest.raises(ValueError, match=r"\(B, T, K, N\)"):
        hard_masks_from_soft(torch.rand(2, 3, 16), 8)


def test_hard_masks_are_argmax_of_bilinear_upsampling() -> None:
    torch.manual_seed(1)
    soft = torch.rand(2, 3, 5, 16).softmax(dim=2)
    hard = hard_masks_from_soft(soft, (12, 10))
    assert hard.shape == (2, 3, 5, 12, 10) and hard.dtype == soft.dtype
    upsampled = F.interpolate(soft.reshape(6, 5, 4, 4), size=(12, 10), mode="bilinear", align_corners=False)
    expected = F.one_hot(upsampled.argmax(dim=1), 5).permute(0, 3, 1, 2).reshape(2, 3, 5, 12, 10).to(soft.dtype)
    torch.testing.assert_close(hard, expected)
    torch.testing.assert_close(hard.sum(dim=2), torch.ones(2, 3, 12, 10))


def test_long_video_update_in_chunks() -> None:
    torch.manual_seed(2)
    labels = torch.randint(0, 11, (1, 24, 128, 128))
    true = _one_hot(labels, 11).bool()
    pred = hard_masks_from_soft(torch.rand(1, 24, 11, 64), 128).bool()
    for metric_class in (VideoARI, ImageARI, VideoMBO, ImageMBO):
        metric = metric_class()
        metric.update(pred, true)
        assert -1 <= metric.compute().item() <= 1
    per_frame = ImageMBO()
    for t in range(24):
        per_frame.update(pred[:, t : t + 1], true[:, t : t + 1])
    torch.testing.assert_close(per_frame.compute(), metric.compute())


def test_metric_collection_keeps_metrics_with_equal_first_states_apart() -> None:
    """Equal states after the first batch must not merge different metrics into one compute group."""
    from torchmetrics import MetricCollection

    labels = torch.randint(0, 3, (1, 1, 4, 4), generator=torch.Generator().manual_seed(3))
    collection = MetricCollection({"video": VideoARI(), "image": ImageARI()})
    collection.update(_one_hot(labels, 3), _one_hot(labels, 3))  # T = 1: identical video and image scores
    second = torch.randint(0, 3, (1, 2, 4, 4), generator=torch.Generator().manual_seed(4))
    pred = _one_hot(torch.randint(0, 3, (1, 2, 4, 4), generator=torch.Generator().manual_seed(5)), 3)
    collection.update(pred, _one_hot(second, 3))
    video, image = VideoARI(), ImageARI()
    for metric in (video, image):
        metric.update(_one_hot(labels, 3), _one_hot(labels, 3))
        metric.update(pred, _one_hot(second, 3))
    values = collection.compute()
    torch.testing.assert_close(values["video"], video.compute())
    torch.testing.assert_close(values["image"], image.compute())
