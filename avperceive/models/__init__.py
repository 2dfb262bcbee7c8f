"""Assembled models and the registry. Importing this package registers every model.

Each model module registers its architectures with :func:`register_model` when it is imported
(``dgsct-ave*``, ``lavish-ave*``, ``event-specific-*``, ``avmit-*``, ``savc-*``); the imports below
do that and re-export the model classes, the model contract and the input preparation.
"""

from .avmit import AVMITClassifier
from .contract import AVModel
from .dgsct import DGSCT
from .eopma import PerceptionModeEnsemble, sweep_beta
from .event_specific import EventSpecificModel
from .inputs import InputSpec, ModelInputs, prepare_inputs
from .lavish import LAVisH
from .registry import PretrainedCfg, create_model, get_pretrained_cfg, list_models, register_model
from .savc import SAVCModel
from .trainable import TRAINABLE_RANGES, count_trainable, set_trainable

__all__ = [
    # registry.py
    "create_model", "list_models", "register_model", "get_pretrained_cfg", "PretrainedCfg",
    # contract.py, inputs.py: what every model exposes and how media becomes its inputs
    "AVModel", "InputSpec", "ModelInputs", "prepare_inputs",
    # the assembled models
    "DGSCT", "LAVisH", "EventSpecificModel", "AVMITClassifier", "SAVCModel", "PerceptionModeEnsemble",
    "sweep_beta",
    # trainable.py: fine-tuning ranges
    "set_trainable", "count_trainable", "TRAINABLE_RANGES",
]  # fmt: skip
