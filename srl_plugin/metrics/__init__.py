"""Evaluation: hard masks from soft decoder masks and FG-ARI / mBO metrics (METHODS.md §1.10, §1.11)."""
from srl_plugin.metrics.masks import hard_masks_from_soft, slot_ids_from_soft
from srl_plugin.metrics.segmentation import ImageARI, ImageMBO, VideoARI, VideoMBO

__all__ = ["ImageARI", "ImageMBO", "VideoARI", "VideoMBO", "hard_masks_from_soft", "slot_ids_from_soft"]
