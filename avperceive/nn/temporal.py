"""DG-SCT's post-backbone temporal module (``temporal_attn``), derived from CMBS.

Duan et al., "Cross-modal Prompts: Adapting Large Pre-trained Models for Audio-Visual Downstream
Tasks" (NeurIPS 2023), §3.3 (temporal-gated attention after the last layer), which re-uses the
temporal stack of Xia & Zhao, "Cross-Modal Background Suppression for Audio-Visual Event
Localization" (CVPR 2022), §3.2-3.3 (BiLSTMs, self-attention encoders, cross-modal decoders,
audio-visual gates with factor gamma).

For pooled per-segment features ``v`` (B, T, C_v) and ``a`` (B, T, C_a):

* ``a1 = W_a a``; ``v1 = Dropout(ReLU(W_v v))``
* ``a_r = BiLSTM_a(a1)`` (hidden D/2 per direction -> D); ``v_r = BiLSTM_v(v1)`` (hidden D -> 2D)
* ``v_kv = Enc_v(v_r)``, ``a_kv = Enc_a(a_r)`` (Linear -> D, then post-norm self-attention layers)
* ``a_q = Dec_a(a_r, v_kv)``, ``v_q = Dec_v(v_r, a_kv)``: the query attends over the memory
  ``[other stream ; query]`` concatenated in time (cross-attention only, then FFN)
* ``g_a = sigmoid(w_a . a_kv)``, ``g_v = sigmoid(w_v . v_kv)`` per segment;
  ``gate = g_a g_v``; ``v_out = v_q (1 + gamma g_a)``, ``a_out = a_q (1 + gamma g_v)``, gamma = 0.1.

The reference keeps the never-used template layers (``encoder_layer``, ``decoder_layer``) and each
decoder layer's ``self_attn`` in its state dict; these modules do not exist here (the converter in
:mod:`avperceive.hub.converters.dgsct` drops those keys, listed).

Multi-head attention (Vaswani et al., NeurIPS 2017, eq. 1) goes through
:class:`~avperceive.nn.attention.Attend`, so ``attn_impl="reference"`` (softmax of scaled dot
products written out) and ``attn_impl="fused"`` (SDPA) evaluate the same weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..errors import ConfigError
from .attention import Attend, AttnImpl, AttnImplAttribute, set_attn_impl

__all__ = [
    "MultiheadAttention",
    "TemporalEncoderLayer",
    "TemporalEncoder",
    "CrossModalDecoderLayer",
    "CrossModalDecoder",
    "TemporalAttention",
]


class MultiheadAttention(nn.Module):
    """Multi-head scaled dot-product attention with packed input projections (batch-first).

    Parameter layout equals :class:`torch.nn.MultiheadAttention` (``in_proj_weight`` (3D, D),
    ``in_proj_bias`` (3D), ``out_proj``), so reference weights load unchanged.

    Args:
        dim: model width D (divisible by ``num_heads``).
        num_heads: number of heads H.
        dropout: dropout on the attention weights (training only).
        attn_impl: ``"fused"`` (SDPA) or ``"reference"`` (explicit softmax), held by the
            parameter-free sub-module ``attend`` (:class:`~avperceive.nn.attention.Attend`).
    """

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0, attn_impl: AttnImpl = "fused"):
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"dim {dim} must be divisible by num_heads {num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.attend = Attend(attn_impl, dropout)
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        self.reset_parameters()

    attn_impl = AttnImplAttribute()

    @property
    def dropout(self) -> float:
        return self.attend.dropout

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """``query`` (B, Lq, D), ``key``/``value`` (B, Lk, D) -> (B, Lq, D)."""
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        q = rearrange(F.linear(query, w_q, b_q), "b l (h d) -> b h l d", h=self.num_heads)
        k = rearrange(F.linear(key, w_k, b_k), "b l (h d) -> b h l d", h=self.num_heads)
        v = rearrange(F.linear(value, w_v, b_v), "b l (h d) -> b h l d", h=self.num_heads)
        out = self.attend(q, k, v)  # softmax(q kᵀ/√d) v per head
        return self.out_proj(rearrange(out, "b h l d -> b l (h d)"))


class _FeedForward(nn.Module):
    """Post-norm feed-forward sub-layer: ``norm(x + linear2(drop(relu(linear1(x)))))``."""

    def __init__(self, dim: int, ffn_dim: int, dropout: float):
        super().__init__()
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.dropout2(self.linear2(self.dropout(F.relu(self.linear1(x))))))


class _PostNormLayer(nn.Module):
    """What the encoder and decoder layers share: ``x = norm1(x + attended); x = norm2(x + FFN(x))``.

    A subclass builds its attention first, then calls :meth:`build_post_norm` (the reference's order of
    construction, so a seeded initialisation draws the same numbers).
    """

    def build_post_norm(self, dim: int, ffn_dim: int, dropout: float) -> None:
        self.norm1 = nn.LayerNorm(dim)
        self.dropout1 = nn.Dropout(dropout)
        self.ffn = _FeedForward(dim, ffn_dim, dropout)

    def add_norm_ffn(self, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        return self.ffn(self.norm1(x + self.dropout1(attended)))


class TemporalEncoderLayer(_PostNormLayer):
    """Post-norm self-attention layer: ``x = norm1(x + MHA(x,x,x)); x = norm2(x + FFN(x))``.

    Input and output (B, T, D).
    """

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, dropout: float = 0.1, attn_impl: str = "fused"):
        super().__init__()
        self.self_attn = MultiheadAttention(dim, num_heads, dropout, attn_impl)
        self.build_post_norm(dim, ffn_dim, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.add_norm_ffn(x, self.self_attn(x, x, x))


def _stack(layer_cls: type[nn.Module], num_layers: int, *layer_args) -> nn.ModuleList:
    """``num_layers`` fresh ``layer_cls(*layer_args)``."""
    return nn.ModuleList(layer_cls(*layer_args) for _ in range(num_layers))


class TemporalEncoder(nn.Module):
    """``input_proj`` (Linear in -> D) then ``num_layers`` :class:`TemporalEncoderLayer`.

    (B, T, in_dim) -> (B, T, D). CMBS's ``InternalTemporalRelationModule``.
    """

    def __init__(self, in_dim: int, dim: int, num_heads: int, ffn_dim: int, num_layers: int = 2,
                 dropout: float = 0.1, attn_impl: str = "fused"):
        super().__init__()
        self.input_proj = nn.Linear(in_dim, dim)
        self.layers = _stack(TemporalEncoderLayer, num_layers, dim, num_heads, ffn_dim, dropout, attn_impl)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_proj(x)
        for layer in self.layers:
            x = layer(x)
        return x


class CrossModalDecoderLayer(_PostNormLayer):
    """Cross-attention of the query over ``[memory ; query]`` (time-concatenated), then FFN.

    ``q = norm1(q + MHA(q, [m; q], [m; q])); q = norm2(q + FFN(q))``. ``query`` (B, T, D),
    ``memory`` (B, S, D) -> (B, T, D).
    """

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, dropout: float = 0.1, attn_impl: str = "fused"):
        super().__init__()
        self.cross_attn = MultiheadAttention(dim, num_heads, dropout, attn_impl)
        self.build_post_norm(dim, ffn_dim, dropout)

    def forward(self, query: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        kv = torch.cat([memory, query], dim=1)
        return self.add_norm_ffn(query, self.cross_attn(query, kv, kv))


class CrossModalDecoder(nn.Module):
    """``input_proj`` (Linear in -> D) then ``num_layers`` :class:`CrossModalDecoderLayer`.

    ``query`` (B, T, in_dim), ``memory`` (B, S, D) -> (B, T, D). CMBS's ``CrossModalRelationAttModule``.
    """

    def __init__(self, in_dim: int, dim: int, num_heads: int, ffn_dim: int, num_layers: int = 1,
                 dropout: float = 0.1, attn_impl: str = "fused"):
        super().__init__()
        self.input_proj = nn.Linear(in_dim, dim)
        self.layers = _stack(CrossModalDecoderLayer, num_layers, dim, num_heads, ffn_dim, dropout, attn_impl)

    def forward(self, query: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        query = self.input_proj(query)
        for layer in self.layers:
            query = layer(query, memory)
        return query


class TemporalAttention(nn.Module):
    """DG-SCT ``temporal_attn``: BiLSTMs, self-attention encoders, cross-modal decoders, AV gates.

    Args:
        video_dim: C_v, width of the pooled video feature (1536 for Swin-V2-L).
        audio_dim: C_a, width of the pooled audio feature (768 for HTS-AT).
        d_model: D, width of encoders, decoders and outputs (256).
        video_input_dim: width of ``video_proj`` output = video LSTM input (512).
        audio_input_dim: width of ``audio_proj`` output = audio LSTM input (128).
        ffn_dim: feed-forward width of every encoder/decoder layer (1024).
        num_heads: attention heads (4).
        num_encoder_layers: self-attention layers per encoder (2).
        num_decoder_layers: cross-attention layers per decoder (1).
        dropout: dropout inside encoder/decoder layers (0.1).
        video_dropout: dropout after ``ReLU(video_proj(v))`` (0.2).
        gate_scale: gamma of ``x (1 + gamma g)`` (0.1).
        attn_impl: ``"fused"`` or ``"reference"``.

    The audio LSTM has D/2 hidden units per direction (output D), the video LSTM D (output 2D).
    """

    def __init__(
        self,
        video_dim: int = 1536, audio_dim: int = 768,  # C_v, C_a of the pooled backbone features
        d_model: int = 256, video_input_dim: int = 512, audio_input_dim: int = 128,  # widths
        ffn_dim: int = 1024, num_heads: int = 4, num_encoder_layers: int = 2, num_decoder_layers: int = 1,
        dropout: float = 0.1, video_dropout: float = 0.2,
        gate_scale: float = 0.1,
        attn_impl: AttnImpl = "fused",
    ):
        super().__init__()
        if d_model % 2:
            raise ConfigError(f"d_model must be even (audio LSTM has d_model/2 units per direction), got {d_model}")
        self.video_dim, self.audio_dim, self.d_model = video_dim, audio_dim, d_model
        self.gate_scale = gate_scale
        self.video_proj = nn.Linear(video_dim, video_input_dim)
        self.audio_proj = nn.Linear(audio_dim, audio_input_dim)
        self.video_dropout = nn.Dropout(video_dropout)
        self.audio_rnn = nn.LSTM(audio_input_dim, d_model // 2, batch_first=True, bidirectional=True)
        self.video_rnn = nn.LSTM(video_input_dim, d_model, batch_first=True, bidirectional=True)
        enc = dict(dim=d_model, num_heads=num_heads, ffn_dim=ffn_dim, dropout=dropout, attn_impl=attn_impl)
        self.video_encoder = TemporalEncoder(2 * d_model, num_layers=num_encoder_layers, **enc)
        self.audio_encoder = TemporalEncoder(d_model, num_layers=num_encoder_layers, **enc)
        self.video_decoder = CrossModalDecoder(2 * d_model, num_layers=num_decoder_layers, **enc)
        self.audio_decoder = CrossModalDecoder(d_model, num_layers=num_decoder_layers, **enc)
        self.audio_gate = nn.Linear(d_model, 1)
        self.video_gate = nn.Linear(d_model, 1)

    def set_attn_impl(self, attn_impl: AttnImpl) -> None:
        """Switch every attention op to ``"fused"`` or ``"reference"``."""
        set_attn_impl(self, attn_impl)

    def forward(self, video: torch.Tensor, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run the temporal module.

        Args:
            video: (B, T, C_v) pooled video feature per segment.
            audio: (B, T, C_a) pooled audio feature per segment.

        Returns:
            ``{"video_feature": (B, T, D), "audio_feature": (B, T, D), "audio_visual_gate": (B, T)}``
            (batch-major; the reference returns time-major (T, B, ...)).
        """
        if video.dim() != 3 or video.shape[-1] != self.video_dim:
            raise ValueError(f"video must be (B, T, {self.video_dim}), got {tuple(video.shape)}")
        if audio.dim() != 3 or audio.shape[-1] != self.audio_dim or audio.shape[:2] != video.shape[:2]:
            raise ValueError(
                f"audio must be (B, T, {self.audio_dim}) with (B, T) = {tuple(video.shape[:2])}, "
                f"got {tuple(audio.shape)}"
            )
        a = self.audio_proj(audio)
        v = self.video_dropout(F.relu(self.video_proj(video)))
        a_r, _ = self.audio_rnn(a)
        v_r, _ = self.video_rnn(v)
        video_kv = self.video_encoder(v_r)
        audio_query = self.audio_decoder(a_r, video_kv)
        audio_kv = self.audio_encoder(a_r)
        video_query = self.video_decoder(v_r, audio_kv)
        g_a = torch.sigmoid(self.audio_gate(audio_kv))
        g_v = torch.sigmoid(self.video_gate(video_kv))
        video_feature = video_query + g_a * video_query * self.gate_scale
        audio_feature = audio_query + g_v * audio_query * self.gate_scale
        return {
            "video_feature": video_feature,
            "audio_feature": audio_feature,
            "audio_visual_gate": (g_a * g_v).squeeze(-1),
        }
