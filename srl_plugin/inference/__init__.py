"""Official checkpoint import and streaming inference on a user's video (docs/INFERENCE.md)."""
from srl_plugin.inference.checkpoint import build_model, load_checkpoint_model
from srl_plugin.inference.importer import build_from_official, checkpoint_dict, import_official_checkpoint
from srl_plugin.inference.overlay import mask_grid, overlay_masks, slot_palette
from srl_plugin.inference.predict import (
    InferenceResult,
    crop_to_model_view,
    infer_video,
    run_inference,
    stream_windows,
)
from srl_plugin.inference.video_io import VideoSource, open_videos

__all__ = [
    "InferenceResult",
    "VideoSource",
    "build_from_official",
    "build_model",
    "checkpoint_dict",
    "crop_to_model_view",
    "import_official_checkpoint",
    "infer_video",
    "load_checkpoint_model",
    "mask_grid",
    "open_videos",
    "overlay_masks",
    "run_inference",
    "slot_palette",
    "stream_windows",
]
