"""Import of official SRL / SlotContrast / SSync / SlotCurri / VideoSAUR checkpoints into ``srl_plugin`` models, one
adapter per official layout (names imported lazily)."""
from srl_plugin.lazy import lazy_exports

_EXPORTS = {
    "convert_official_state_dict": "srl_plugin.interop.keymap",
    "to_official_state_dict": "srl_plugin.interop.keymap",
    "LAYOUTS": "srl_plugin.interop.build",
    "build_from_official": "srl_plugin.interop.build",
    "detect_method": "srl_plugin.interop.build",
    "infer_architecture": "srl_plugin.interop.official",
    "model_from_official_state_dict": "srl_plugin.interop.build",
    "official_state_dict_from_model": "srl_plugin.interop.build",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
