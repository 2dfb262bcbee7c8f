"""The model contract: the methods every assembled model of :mod:`avperceive.models` exposes.

The shape is timm's (``forward_features`` -> ``forward_head``), extended with the decision rule
and the input description that audio-video models need:

* ``forward_features(video, audio, **extra)`` -- backbones (and adapters / fusion) up to the
  features the head reads; what the features are is the model's own business;
* ``forward_head(features)`` -- the head on those features -> the model's outputs;
* ``forward(video, audio, **extra)`` = ``forward_head(forward_features(video, audio, **extra))``;
* ``decide(outputs)`` -- class indices: ``(B, T)`` per segment (AVE; background = ``K``) or
  ``(B,)`` per clip;
* ``input_cfg`` -- the preprocessing, as :class:`avperceive.models.inputs.InputSpec` reads it
  (the ``pretrained_cfg.input`` section, completed with the settings this instance's constructor
  fixed, e.g. ``segments``); :func:`avperceive.models.inputs.prepare_inputs` carries it out.

Argument order is ``(video, audio)`` everywhere. ``extra`` holds the inputs that the config
declares under ``extra_inputs`` (e.g. ``onset_mask`` for event-specific fusion).

Outputs follow one rule per task (:data:`TASKS`):

* ``"ave"``: a dict with ``"probs"`` ``(B, T, K + 1)`` -- per-segment probabilities over ``K``
  events and background (index ``K``); other keys are model-specific;
* ``"clip-classification"`` and ``"av-correspondence"``: logits ``(B, K)`` (a tensor).

Models cast their floating inputs to the dtype of their parameters on entry, so ``model.to(dtype)``
is enough to run them in bfloat16 / float16; spectral front-ends (STFT, mel, fbank) compute in
float32 on purpose and cast their result.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import nn

from ..errors import ConfigError
from ..hub.pretrained_cfg import PretrainedCfg

__all__ = ["AVModel", "TASKS", "UNTRAINED"]

#: the tasks of the contract and the form of their outputs.
TASKS = {
    "ave": "dict with 'probs' (B, T, K + 1), background = K",
    "clip-classification": "logits (B, K)",
    "av-correspondence": "logits (B, 2)",
}
#: ``weights_source`` of a model whose weights were not loaded from anywhere.
UNTRAINED = "untrained"


class AVModel(nn.Module, ABC):
    """Base class of every assembled audio-video model (see the module docstring).

    Attributes:
        task: one of :data:`TASKS` (class attribute).
        pretrained_cfg: the registry's / checkpoint's :class:`PretrainedCfg` (set by
            :func:`avperceive.create_model` and ``from_pretrained``), ``None`` for a bare instance.
        architecture: the registered name, when built through the registry.
        weights_source: where the weights come from: ``"untrained"`` (random initialisation, the
            default), ``"local-dir:<path>"`` or ``"hf-hub:<repo>@<revision>"`` (set by the loaders).
            After training a model yourself, set it to something that says so.
    """

    task: ClassVar[str]
    pretrained_cfg: PretrainedCfg | None = None
    architecture: str | None = None
    weights_source: str = UNTRAINED

    @abstractmethod
    def forward_features(self, video: torch.Tensor, audio: torch.Tensor, **extra: Any) -> Any:
        """Backbones / fusion up to the features the head reads."""

    @abstractmethod
    def forward_head(self, features: Any) -> dict[str, torch.Tensor] | torch.Tensor:
        """The head on ``forward_features``' result -> outputs (see :data:`TASKS`)."""

    def forward(self, video: torch.Tensor, audio: torch.Tensor, **extra: Any) -> dict[str, torch.Tensor] | torch.Tensor:
        """``forward_head(forward_features(video, audio, **extra))``."""
        return self.forward_head(self.forward_features(video, audio, **extra))

    @abstractmethod
    def decide(self, outputs: Any) -> torch.Tensor:
        """Class indices from ``outputs``: ``(B, T)`` per segment (AVE) or ``(B,)`` per clip."""

    # -- inputs ----------------------------------------------------------------------------------
    def input_settings(self) -> dict[str, Any]:
        """Input settings fixed by this instance's constructor (override; default none)."""
        return {}

    @property
    def input_cfg(self) -> dict[str, Any]:
        """``pretrained_cfg.input`` updated with :meth:`input_settings` (what predict feeds the model)."""
        base = dict(self.pretrained_cfg.input) if self.pretrained_cfg is not None else {}
        base.update(self.input_settings())
        if not base:
            raise ConfigError(
                f"{type(self).__name__} has no input settings (no pretrained_cfg.input); build it with "
                "avperceive.create_model or pass input_cfg={...}"
            )
        return base

    def parameter_dtype(self) -> torch.dtype:
        """The dtype of the first floating parameter (float32 for a model without one)."""
        for p in self.parameters():
            if p.is_floating_point():
                return p.dtype
        return torch.float32

    def cast_inputs(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Floating tensors cast to :meth:`parameter_dtype` (the entry cast of every model)."""
        dtype = self.parameter_dtype()
        return tuple(t.to(dtype) if t.is_floating_point() else t for t in tensors)
