"""CMBS-style audio-visual event (AVE) localisation head and the per-second decision rule.

Xia & Zhao, "Cross-Modal Background Suppression for Audio-Visual Event Localization" (CVPR 2022),
§3.4 (class activation scores, top-k pooling, event-relevance classifier), in the trimmed form
that DG-SCT (Duan et al., NeurIPS 2023) uses after its temporal module. For per-segment features
``v``, ``a`` (B, T, D):

* ``s_v = mean of the top-k over t of W_cv v_t``, ``s_a`` likewise (per class; k = 4);
  ``av_score = (s_v + s_a) / 2`` (B, K)
* ``f_t = (v_t + a_t) / 2``; ``is_event_t = w_e . f_t + b_e`` (logit, B x T)
* ``event_scores = W_k max_t f_t + b_k + gamma av_score`` (B, K), gamma = 0.3

Decision rule per second (DG-SCT ``compute_accuracy_supervised``): class ``argmax(event_scores)``
(one class per video) where ``sigmoid(is_event_t) > 0.5``, else the background index K.

The reference ``CMBS`` module also builds ``AVInter``/``VAInter`` attention blocks and
``video_norm``/``audio_norm`` whose outputs it discards; they are not part of this head.
"""

from __future__ import annotations

import torch
from einops import reduce
from torch import nn

from .temporal import TemporalAttention

__all__ = ["CMBSHead", "TemporalCMBSHead", "AVEHead", "ave_decision", "ave_segment_probs"]


class CMBSHead(nn.Module):
    """CMBS-style AVE head (as in DG-SCT): is-event logits, event scores, av score.

    Args:
        d_model: D, width of the per-segment features.
        num_classes: K event classes (28 for AVE); the background index is K.
        top_k: segments averaged per class for the class-activation scores (4).
        av_score_weight: gamma in ``event_scores = event + gamma * av_score`` (0.3).
    """

    def __init__(self, d_model: int = 256, num_classes: int = 28, top_k: int = 4, av_score_weight: float = 0.3):
        super().__init__()
        self.d_model, self.num_classes, self.top_k = d_model, num_classes, top_k
        self.av_score_weight = av_score_weight
        self.is_event = nn.Linear(d_model, 1)
        self.event_classifier = nn.Linear(d_model, num_classes)
        self.video_cas = nn.Linear(d_model, num_classes)
        self.audio_cas = nn.Linear(d_model, num_classes)

    @property
    def background_index(self) -> int:
        return self.num_classes

    def forward(self, video_feature: torch.Tensor, audio_feature: torch.Tensor) -> dict[str, torch.Tensor]:
        """Score a clip.

        Args:
            video_feature: (B, T, D) per-segment video feature (T >= top_k).
            audio_feature: (B, T, D) per-segment audio feature.

        Returns:
            ``{"is_event": (B, T) logits, "event_scores": (B, K), "av_score": (B, K)}``.
        """
        if video_feature.dim() != 3 or video_feature.shape[-1] != self.d_model:
            raise ValueError(f"video_feature must be (B, T, {self.d_model}), got {tuple(video_feature.shape)}")
        if audio_feature.shape != video_feature.shape:
            raise ValueError(
                f"audio_feature must be (B, T, D) = {tuple(video_feature.shape)}, got {tuple(audio_feature.shape)}"
            )
        if video_feature.shape[1] < self.top_k:
            raise ValueError(f"need T >= top_k = {self.top_k} segments, got T = {video_feature.shape[1]}")
        score_video = self.video_cas(video_feature).topk(self.top_k, dim=1).values.mean(dim=1)
        score_audio = self.audio_cas(audio_feature).topk(self.top_k, dim=1).values.mean(dim=1)
        av_score = (score_video + score_audio) / 2
        fused = (video_feature + audio_feature) / 2
        is_event = self.is_event(fused).squeeze(-1)
        event = self.event_classifier(reduce(fused, "b t d -> b d", "max"))
        return {"is_event": is_event, "event_scores": event + self.av_score_weight * av_score, "av_score": av_score}


class TemporalCMBSHead(nn.Module):
    """Temporal module + CMBS head: DG-SCT's part after the backbones, as one module.

    :class:`TemporalAttention` (``temporal``) then :class:`CMBSHead` (``head``), the same two
    sub-modules (same names, same state-dict keys) as in :class:`avperceive.models.dgsct.DGSCT`, so
    the ``"dgsct-head"`` conversion of the reference ``temporal_attn.*`` + ``CMBS.*`` keys loads into
    it and a host model of your own can reuse DG-SCT's trained head. Formerly ``AVEHead`` (kept as an
    alias).

    Args:
        video_dim, audio_dim, d_model, video_input_dim, audio_input_dim, ffn_dim, num_heads: see
            :class:`TemporalAttention`.
        num_classes: K event classes.
        attn_impl: ``"fused"`` or ``"reference"``.
    """

    def __init__(
        self,
        video_dim: int = 1536,
        audio_dim: int = 768,
        d_model: int = 256,
        video_input_dim: int = 512,
        audio_input_dim: int = 128,
        ffn_dim: int = 1024,
        num_heads: int = 4,
        num_classes: int = 28,
        attn_impl: str = "fused",
    ):
        super().__init__()
        self.temporal = TemporalAttention(
            video_dim=video_dim, audio_dim=audio_dim, d_model=d_model, video_input_dim=video_input_dim,
            audio_input_dim=audio_input_dim, ffn_dim=ffn_dim, num_heads=num_heads, attn_impl=attn_impl,
        )
        self.head = CMBSHead(d_model=d_model, num_classes=num_classes)

    def forward(self, video: torch.Tensor, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        """``video`` (B, T, C_v), ``audio`` (B, T, C_a) pooled features -> dict of
        ``video_feature``/``audio_feature`` (B, T, D), ``audio_visual_gate`` (B, T), ``is_event`` (B, T),
        ``event_scores``/``av_score`` (B, K)."""
        out = self.temporal(video, audio)
        out.update(self.head(out["video_feature"], out["audio_feature"]))
        return out


#: Deprecated name of :class:`TemporalCMBSHead` (checkpoint folders written with it still load).
AVEHead = TemporalCMBSHead


def ave_decision(is_event: torch.Tensor, event_scores: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Per-second AVE prediction: ``argmax(event_scores)`` where ``sigmoid(is_event) > threshold``, else K.

    The decision rule of CMBS (Xia & Zhao, CVPR 2022) as DG-SCT evaluates it
    (``compute_accuracy_supervised``); the one place it is written (models' ``decide`` and
    :mod:`avperceive.metrics` call it).

    Args:
        is_event: (B, T) event-relevance logits.
        event_scores: (B, K) clip-level class scores (one class per clip), or (B, T, K) per segment.
        threshold: probability threshold (0.5). The sigmoid is taken in float32, so a half-precision
            logit decides as its float32 value does.

    Returns:
        (B, T) int64 class index per segment; the background index is K = ``event_scores.shape[-1]``.
    """
    per_segment = event_scores.dim() == 3 and event_scores.shape[:2] == is_event.shape
    per_clip = event_scores.dim() == 2 and event_scores.shape[0] == is_event.shape[0]
    if is_event.dim() != 2 or not (per_clip or per_segment):
        raise ValueError(
            f"expected is_event (B, T) and event_scores (B, K) or (B, T, K), "
            f"got {tuple(is_event.shape)} and {tuple(event_scores.shape)}"
        )
    background = event_scores.shape[-1]
    cls = event_scores.argmax(dim=-1)
    if not per_segment:
        cls = cls[:, None].expand_as(is_event)
    return torch.where(torch.sigmoid(is_event.float()) > threshold, cls, torch.full_like(cls, background))


def ave_segment_probs(is_event: torch.Tensor, event_scores: torch.Tensor) -> torch.Tensor:
    """Per-segment probabilities over K events + background from a CMBS head, in float32.

    ``P(background_t) = 1 - sigmoid(is_event_t)`` and ``P(k_t) = sigmoid(is_event_t) * softmax(event_scores)_k``:
    the two factors :func:`ave_decision` thresholds and maximises, so the probability of the decided
    class is ``P(event) * P(class)`` on an event second and ``P(background)`` otherwise.

    Args:
        is_event: (B, T) event-relevance logits.
        event_scores: (B, K) clip-level class scores.

    Returns:
        (B, T, K + 1) float32, summing to one over the last axis; background = index K.
    """
    p_event = torch.sigmoid(is_event.float()).unsqueeze(-1)  # (B, T, 1)
    p_class = event_scores.float().softmax(dim=-1).unsqueeze(1)  # (B, 1, K)
    return torch.cat([p_event * p_class, 1.0 - p_event], dim=-1)
