"""Official checkpoint import and streaming inference on a user's video (docs/INFERENCE.md).

Models are loaded with :func:`srl_plugin.runtime.load_model`. Names are imported lazily, so that
`srl-infer --help` and `srl-import-checkpoint --help` stay fast.
"""
from srl_plugin.lazy import lazy_exports

_EXPORTS = {
    "build_from_official": "srl_plugin.interop.build",
    "import_official_checkpoint": "srl_plugin.inference.importer",
    "mask_grid": "srl_plugin.inference.overlay",
    "overlay_masks": "srl_plugin.inference.overlay",
    "slot_palette": "srl_plugin.inference.overlay",
    "InferenceResult": "srl_plugin.inference.predict",
    "infer_video": "srl_plugin.inference.predict",
    "run_inference": "srl_plugin.inference.predict",
    "VideoSource": "srl_plugin.data.video_io",
    "open_videos": "srl_plugin.data.video_io",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
