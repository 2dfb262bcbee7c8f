"""What the two models of the AVMIT paper share (Joannou, Rotshtein & Noppeney, PLoS ONE 2024).

Both the action classifier (experiment 1, :mod:`.avmit`) and the supervised audio-visual
correspondence network (experiment 2, :mod:`.savc`) read frozen per-step CNN embeddings --
YamNet (1024-d) + EfficientNet-B0 (1280-d) at 0.48 s steps, or VGGish (128-d) + VGG16 (512-d) at
0.96 s steps, zero-padded to T = 7 steps -- and end in a dense layer whose argmax is the decision.
This module holds that common part: the embedding sizes, the input check, the head and decision
rule, and the input description of the registered variants.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..hub.mixin import PretrainedMixin
from .contract import AVModel

__all__ = ["EMBEDDING_DIMS", "EmbeddingSequenceModel", "embedding_input_cfg"]

#: (audio_dim, visual_dim) of the two released embedding sets.
EMBEDDING_DIMS = {"yamnet-effnetb0": (1024, 1280), "vggish-vgg16": (128, 512)}


class EmbeddingSequenceModel(AVModel, PretrainedMixin):
    """Base of the models on per-step embeddings: ``video`` ``(B, T, visual_dim)`` and ``audio``
    ``(B, T, audio_dim)`` -> logits ``(B, K)`` from ``self.classifier`` (an ``nn.Linear``).

    Subclasses set ``audio_dim``, ``visual_dim`` and ``classifier`` in ``__init__`` and implement
    ``forward_features`` (calling :meth:`check_embeddings` first).
    """

    audio_dim: int
    visual_dim: int
    classifier: nn.Linear

    def check_embeddings(self, video: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Check the shapes (``ValueError`` naming the tensor) and cast to the parameters' dtype."""
        if audio.dim() != 3 or audio.shape[-1] != self.audio_dim:
            raise ValueError(f"audio must be (B, T, {self.audio_dim}), got {tuple(audio.shape)}")
        if video.dim() != 3 or video.shape[-1] != self.visual_dim or video.shape[:2] != audio.shape[:2]:
            raise ValueError(f"video must be (B, T, {self.visual_dim}) with audio's B, T; got {tuple(video.shape)}")
        video, audio = self.cast_inputs(video, audio)
        return video, audio

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """The dense layer: ``(B, hidden)`` -> logits ``(B, K)``."""
        return self.classifier(features)

    def decide(self, outputs: torch.Tensor) -> torch.Tensor:
        """``(B,)`` class indices (argmax of the logits)."""
        return outputs.argmax(dim=-1)


def embedding_input_cfg(task: str, embeddings: str) -> dict[str, Any]:
    """The ``pretrained_cfg.input`` section of a model on ``embeddings`` (a key of :data:`EMBEDDING_DIMS`):
    16 kHz audio, 7 steps of 0.48 s (YamNet) or 0.96 s (VGGish), 224-px frames for the visual CNN."""
    return {
        "task": task,
        "sample_rate": 16000,
        "segments": 7,
        "segment_seconds": 0.48 if embeddings == "yamnet-effnetb0" else 0.96,
        "size": 224,
        "audio_frontend": embeddings.split("-")[0],
        "embeddings": embeddings,
    }
