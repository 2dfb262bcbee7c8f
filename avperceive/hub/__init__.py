"""Save/load (safetensors + config.json), Hub download and official-checkpoint converters."""

from .convert import ConvertedCheckpoint, convert_checkpoint, list_converters, register_converter
from .mixin import PretrainedMixin, load_state_dict_strict

__all__ = [
    "ConvertedCheckpoint",
    "PretrainedMixin",
    "convert_checkpoint",
    "list_converters",
    "load_state_dict_strict",
    "register_converter",
]
