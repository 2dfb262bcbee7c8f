"""Assembled models and the registry. Importing this package registers every model."""

from .registry import PretrainedCfg, create_model, get_pretrained_cfg, list_models, register_model
from . import avmit, savc  # noqa: E402,F401  (registers avmit-* and savc-*)
from . import event_specific  # noqa: E402,F401  (registers event-specific-*)
from . import dgsct, lavish  # noqa: E402,F401  (registers dgsct-ave*, lavish-ave*)
from .trainable import set_trainable  # noqa: E402
from .eopma import PerceptionModeEnsemble, sweep_beta  # noqa: E402,F401

__all__ = [
    "PretrainedCfg", "create_model", "get_pretrained_cfg", "list_models", "register_model", "set_trainable"
]
