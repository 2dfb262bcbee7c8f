"""Assembled models and the registry. Importing this package registers every model."""

from .registry import PretrainedCfg, create_model, get_pretrained_cfg, list_models, register_model

__all__ = ["PretrainedCfg", "create_model", "get_pretrained_cfg", "list_models", "register_model"]
