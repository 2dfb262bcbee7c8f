"""Shared and coordinated audio-visual joint spaces with pluggable projectors.

The survey of Vilaça, Yu & Viana formalises audio-visual correlation learning on pairs
``(x₁, x₂)`` of audio and visual features as learning either

* a **coordinated** (separate) space ``S₁ = f(x₁)``, ``S₂ = g(x₂)``: one embedding per modality,
  aligned by an objective on pairs (InfoNCE, hinge ranking, triplet, DCCA); retrieval and
  correspondence compare ``S₁`` with ``S₂``; or
* a **shared** space ``S₁₂ = h(f(x₁), g(x₂))``: one fused representation (classification,
  localisation, AVC heads on top).

:class:`JointSpace` holds ``f``, ``g`` (any modules: :func:`projection_head`, a backbone, an
adapter-equipped host) and, for the shared space, ``h`` (any module mapping the two projections to
a tensor: :class:`ConcatFusion`, or :class:`~avperceive.nn.fusion_transformer.FusionTransformer`
with ``output="pooled"``).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError

__all__ = ["JointSpace", "JointOutput", "ConcatFusion", "projection_head"]


def projection_head(in_dim: int, out_dim: int, hidden_dim: int | None = None, dropout: float = 0.0) -> nn.Module:
    """A projector: ``Linear(in_dim, out_dim)``, or ``Linear → GELU → Dropout → Linear`` with ``hidden_dim``.

    Works on ``(..., in_dim)``, i.e. pooled ``(B, C)`` features or token streams ``(B, N, C)``.
    """
    if hidden_dim is None:
        return nn.Linear(in_dim, out_dim)
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden_dim, out_dim))


class ConcatFusion(nn.Module):
    """``h(a, v) = W [a ; v] + b``: the simplest shared-space fusion (late concatenation).

    ``forward(a (..., audio_dim), v (..., visual_dim)) -> (..., out_dim)``.
    """

    def __init__(self, audio_dim: int, visual_dim: int, out_dim: int):
        super().__init__()
        self.proj = nn.Linear(audio_dim + visual_dim, out_dim)

    def forward(self, a: Tensor, v: Tensor) -> Tensor:
        return self.proj(torch.cat([a, v], dim=-1))


class JointOutput(NamedTuple):
    """Output of :class:`JointSpace`.

    Attributes:
        audio: ``f(x₁)`` (L2-normalised in the coordinated space when ``normalize``).
        visual: ``g(x₂)`` (likewise).
        shared: ``h(f(x₁), g(x₂))`` in the shared space, ``None`` in the coordinated space.
    """

    audio: Tensor
    visual: Tensor
    shared: Tensor | None


class JointSpace(nn.Module):
    """Audio-visual joint space, ``mode="coordinated"`` or ``"shared"`` (module docstring).

    Args:
        mode: ``"coordinated"`` (``S₁ = f(x₁)``, ``S₂ = g(x₂)``) or ``"shared"`` (``S₁₂ = h(f, g)``).
        audio_projector: f; visual_projector: g (any modules).
        fusion: h, required for ``"shared"``; maps ``(f(x₁), g(x₂))`` to a tensor.
        normalize: L2-normalise the coordinated embeddings (for cosine objectives and retrieval).

    ``forward(audio, visual) -> JointOutput``.
    """

    def __init__(
        self,
        mode: Literal["shared", "coordinated"],
        audio_projector: nn.Module,
        visual_projector: nn.Module,
        fusion: nn.Module | None = None,
        *,
        normalize: bool = True,
    ):
        super().__init__()
        if mode not in ("shared", "coordinated"):
            raise ConfigError(f"mode must be 'shared' or 'coordinated', got {mode!r}")
        if mode == "shared" and fusion is None:
            raise ConfigError("mode='shared' needs a fusion module h (e.g. ConcatFusion)")
        if mode == "coordinated" and fusion is not None:
            raise ConfigError("mode='coordinated' takes no fusion module; use mode='shared'")
        self.mode, self.normalize = mode, normalize
        self.audio_projector, self.visual_projector, self.fusion = audio_projector, visual_projector, fusion

    def forward(self, audio: Tensor, visual: Tensor) -> JointOutput:
        a, v = self.audio_projector(audio), self.visual_projector(visual)
        if self.mode == "coordinated":
            if self.normalize:
                a, v = F.normalize(a, dim=-1), F.normalize(v, dim=-1)
            return JointOutput(a, v, None)
        return JointOutput(a, v, self.fusion(a, v))
