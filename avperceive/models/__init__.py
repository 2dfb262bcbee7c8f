"""Assembled models and the registry. Importing this package registers every model."""

from . import (  # noqa: E402,F401  (registers avmit-* and savc-*)  # noqa: E402,F401  (registers dgsct-ave*, lavish-ave*)
    avmit,
    dgsct,
    event_specific,  # noqa: E402,F401  (registers event-specific-*)
    lavish,
    savc,
)
from .contract import AVModel
from .eopma import PerceptionModeEnsemble, sweep_beta  # noqa: E402,F401
from .inputs import InputSpec, ModelInputs, prepare_inputs
from .registry import PretrainedCfg, create_model, get_pretrained_cfg, list_models, register_model
from .trainable import set_trainable  # noqa: E402

__all__ = [
    "AVModel", "InputSpec", "ModelInputs", "prepare_inputs",
    "PretrainedCfg", "create_model", "get_pretrained_cfg", "list_models", "register_model", "set_trainable"
]
