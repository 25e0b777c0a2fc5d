"""Import of official SRL / SlotContrast checkpoints into ``srl_plugin`` models (names imported lazily)."""
from srl_plugin.lazy import lazy_exports

_EXPORTS = {
    "convert_official_state_dict": "srl_plugin.interop.keymap",
    "to_official_state_dict": "srl_plugin.interop.keymap",
    "detect_method": "srl_plugin.interop.official",
    "infer_architecture": "srl_plugin.interop.official",
    "model_from_official_state_dict": "srl_plugin.interop.official",
    "official_state_dict_from_model": "srl_plugin.interop.official",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
