"""Official checkpoint import and streaming inference on a user's video (docs/INFERENCE.md).

Models are loaded with :func:`srl_plugin.runtime.load_model`.
"""
from srl_plugin.inference.importer import build_from_official, import_official_checkpoint
from srl_plugin.inference.overlay import mask_grid, overlay_masks, slot_palette
from srl_plugin.inference.predict import InferenceResult, crop_to_model_view, infer_video, run_inference
from srl_plugin.data.video_io import VideoSource, open_videos

__all__ = [
    "InferenceResult",
    "VideoSource",
    "build_from_official",
    "crop_to_model_view",
    "import_official_checkpoint",
    "infer_video",
    "mask_grid",
    "open_videos",
    "overlay_masks",
    "run_inference",
    "slot_palette",
]
