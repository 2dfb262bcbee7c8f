"""Save/load (safetensors + config.json), Hub download and official-checkpoint converters."""

from ..state_dict import load_state_dict_strict, strip_prefix
from .convert import ConvertedCheckpoint, convert_checkpoint, list_converters, register_converter
from .mixin import PretrainedMixin
from .pretrained import load_pretrained_module
from .pretrained_cfg import PretrainedCfg

__all__ = [
    "ConvertedCheckpoint",
    "PretrainedCfg",
    "PretrainedMixin",
    "convert_checkpoint",
    "list_converters",
    "load_pretrained_module",
    "load_state_dict_strict",
    "register_converter",
    "strip_prefix",
]
