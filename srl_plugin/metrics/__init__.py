"""Evaluation: hard masks from soft decoder masks and FG-ARI / mBO metrics (docs/METHODS.md §1.10, §1.11)."""
from srl_plugin.metrics.masks import hard_masks_from_soft, slot_ids_from_soft
from srl_plugin.metrics.segmentation import ImageARI, ImageMBO, VideoARI, VideoMBO

# The scores every evaluation reports (docs/METHODS.md §1.11), by their name in metrics.json and the logs.
METRICS = {"video_fg_ari": VideoARI, "image_fg_ari": ImageARI, "video_mbo": VideoMBO, "image_mbo": ImageMBO}

__all__ = ["METRICS", "ImageARI", "ImageMBO", "VideoARI", "VideoMBO", "hard_masks_from_soft", "slot_ids_from_soft"]
