"""Import of official SRL / SlotContrast checkpoints into ``srl_plugin`` models."""
from srl_plugin.interop.keymap import convert_official_state_dict, to_official_state_dict
from srl_plugin.interop.official import (
    detect_method,
    infer_architecture,
    load_official_checkpoint,
    model_from_official_state_dict,
    official_state_dict_from_model,
)

__all__ = [
    "convert_official_state_dict",
    "detect_method",
    "infer_architecture",
    "load_official_checkpoint",
    "model_from_official_state_dict",
    "official_state_dict_from_model",
    "to_official_state_dict",
]
