"""Transformer interaction patterns for two token streams (the survey's Fig. 6, plus MBT).

Vilaça, Yu & Viana's survey of audio-visual correlation learning compares how a transformer lets
an audio stream ``a (B, Na, D)`` and a visual stream ``v (B, Nv, D)`` interact. Every pattern here
is built from the same pre-norm block (``x + Attn(LN x, LN ctx)``, then ``x + MLP(LN x)``, whose
attention is :class:`~avperceive.nn.cross_attention.CrossModalAttention` on the fused or reference
path), so parameter counts and costs compare like for like:

* ``"early_sum"``: one stream of ``w_a·a + w_v·v`` (learned scalars; needs ``Na = Nv``): no extra
  cost over a unimodal transformer, each token mixes both modalities from the start;
* ``"early_concat"``: one stream ``[a ; v]`` (``Na + Nv`` tokens): each modality attends to the
  other in every layer, at quadratic cost in the joint length;
* ``"hierarchical_multi_single"``: ``fusion_layer`` modality-specific layers, then shared layers on
  ``[a ; v]`` (multi-stream then single-stream);
* ``"hierarchical_single_multi"``: ``fusion_layer`` shared layers on ``[a ; v]``, then
  modality-specific layers (single-stream then multi-stream);
* ``"cross_attention"``: per layer, audio queries attend to visual keys/values and vice versa
  (cheap, but no intra-modal attention);
* ``"bottleneck"``: Multimodal Bottleneck Transformer (Nagrani et al., "Attention Bottlenecks for
  Multimodal Fusion", NeurIPS 2021, eqs. 8-9): modality-specific layers up to ``fusion_layer``,
  then each modality attends over ``[x_m ; z]`` with ``num_bottlenecks`` shared tokens ``z``, and
  ``z`` is averaged over the modalities after every layer, so all cross-modal exchange passes
  through ``z``.

A learned modality embedding is added to each stream at the input. Padding masks (``True`` = a real
token) hide padded tokens as keys. The output :class:`FusionOutput` carries the final tokens and a
pooled ``(B, D)`` vector (the mean of the per-modality masked means; the masked mean of the single
stream for ``"early_sum"``).
"""

from __future__ import annotations

from typing import Literal, NamedTuple, get_args

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .attention import AttnImpl, set_attn_impl
from .cross_attention import CrossModalAttention

__all__ = ["FUSION_PATTERNS", "FusionPattern", "FusionBlock", "FusionOutput", "FusionTransformer"]

FusionPattern = Literal[
    "early_sum",
    "early_concat",
    "hierarchical_multi_single",
    "hierarchical_single_multi",
    "cross_attention",
    "bottleneck",
]
#: the values of :data:`FusionPattern`, in the order of the module docstring.
FUSION_PATTERNS: tuple[str, ...] = get_args(FusionPattern)


class FusionBlock(nn.Module):
    """Pre-norm transformer block: ``x + Attn(LN x, LN ctx)``, then ``x + MLP(LN x)``.

    ``forward(x (B, N, D), context=None, context_mask=None) -> (B, N, D)``; without ``context`` it
    is self-attention over ``x`` (``context_mask`` then masks ``x``'s own padded tokens).
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0, attn_impl="fused"):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(dim)
        self.attn = CrossModalAttention(dim, num_heads, dropout=dropout, attn_impl=attn_impl)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))

    def forward(self, x: Tensor, context: Tensor | None = None, context_mask: Tensor | None = None) -> Tensor:
        h = self.norm1(x)
        ctx = h if context is None else self.norm_context(context)
        x = x + self.attn(h, ctx, context_mask)
        return x + self.mlp(self.norm2(x))


class FusionOutput(NamedTuple):
    """Output of :class:`FusionTransformer`.

    Attributes:
        tokens: final tokens, ``(B, N, D)`` for ``"early_sum"``, else ``[a ; v]`` ``(B, Na + Nv, D)``.
        audio, visual: the per-modality parts ``(B, Na, D)`` / ``(B, Nv, D)`` (``None`` for ``"early_sum"``).
        pooled: ``(B, D)``.
    """

    tokens: Tensor
    audio: Tensor | None
    visual: Tensor | None
    pooled: Tensor


def _masked_mean(x: Tensor, mask: Tensor | None) -> Tensor:
    if mask is None:
        return x.mean(dim=1)
    w = mask.to(x.dtype).unsqueeze(-1)
    return (x * w).sum(1) / w.sum(1).clamp(min=1)


def _cat_masks(a_mask: Tensor | None, v_mask: Tensor | None, na: int, nv: int, ref: Tensor) -> Tensor | None:
    if a_mask is None and v_mask is None:
        return None
    b = ref.shape[0]
    ones = torch.ones
    a_mask = ones(b, na, dtype=torch.bool, device=ref.device) if a_mask is None else a_mask.bool()
    v_mask = ones(b, nv, dtype=torch.bool, device=ref.device) if v_mask is None else v_mask.bool()
    return torch.cat([a_mask, v_mask], dim=1)


class FusionTransformer(nn.Module):
    """Two-stream transformer with a selectable interaction pattern (module docstring).

    Args:
        dim: token width D of both streams (project them to D first, e.g. with a Linear).
        depth: number of layers L.
        num_heads: attention heads.
        pattern: one of :data:`FUSION_PATTERNS`.
        fusion_layer: the layer where the hierarchical / bottleneck patterns switch (default L // 2).
        num_bottlenecks: bottleneck tokens for ``"bottleneck"`` (MBT uses 4).
        mlp_ratio, dropout, attn_impl: block settings.
        output: ``"all"`` returns :class:`FusionOutput`; ``"pooled"`` returns only ``pooled`` ``(B, D)``
            (the form :class:`~avperceive.nn.joint_space.JointSpace` expects of a shared-space fusion).

    Forward: ``audio (B, Na, D)``, ``visual (B, Nv, D)``, optional boolean masks ``audio_mask (B, Na)``,
    ``visual_mask (B, Nv)``.
    """

    def __init__(
        self,
        dim: int,
        depth: int = 4,
        num_heads: int = 4,
        pattern: FusionPattern = "early_concat",
        *,
        fusion_layer: int | None = None,
        num_bottlenecks: int = 4,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        attn_impl: AttnImpl = "fused",
        output: Literal["all", "pooled"] = "all",
    ):
        super().__init__()
        if pattern not in FUSION_PATTERNS:
            raise ConfigError(f"pattern must be one of {FUSION_PATTERNS}, got {pattern!r}")
        if output not in ("all", "pooled"):
            raise ConfigError(f"output must be 'all' or 'pooled', got {output!r}")
        if depth < 1:
            raise ConfigError(f"depth must be >= 1, got {depth}")
        fusion_layer = depth // 2 if fusion_layer is None else fusion_layer
        if not 0 <= fusion_layer <= depth:
            raise ConfigError(f"fusion_layer must be in [0, depth={depth}], got {fusion_layer}")
        self.pattern, self.depth, self.fusion_layer, self.output = pattern, depth, fusion_layer, output

        def blocks(n: int) -> nn.ModuleList:
            return nn.ModuleList(FusionBlock(dim, num_heads, mlp_ratio, dropout, attn_impl) for _ in range(n))

        self.audio_embed = nn.Parameter(torch.zeros(1, 1, dim))
        self.visual_embed = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.audio_embed, std=0.02)
        nn.init.trunc_normal_(self.visual_embed, std=0.02)
        if pattern in ("early_sum", "early_concat"):
            self.shared = blocks(depth)
        elif pattern == "hierarchical_multi_single":
            self.audio_blocks, self.visual_blocks = blocks(fusion_layer), blocks(fusion_layer)
            self.shared = blocks(depth - fusion_layer)
        elif pattern == "hierarchical_single_multi":
            self.shared = blocks(fusion_layer)
            self.audio_blocks, self.visual_blocks = blocks(depth - fusion_layer), blocks(depth - fusion_layer)
        else:  # cross_attention, bottleneck: one block per modality per layer
            self.audio_blocks, self.visual_blocks = blocks(depth), blocks(depth)
        if pattern == "early_sum":
            self.sum_weights = nn.Parameter(torch.ones(2))
        if pattern == "bottleneck":
            if num_bottlenecks < 1:
                raise ConfigError(f"num_bottlenecks must be >= 1, got {num_bottlenecks}")
            self.bottleneck = nn.Parameter(torch.zeros(1, num_bottlenecks, dim))
            nn.init.trunc_normal_(self.bottleneck, std=0.02)
        self.norm = nn.LayerNorm(dim)

    @property
    def attn_impl(self) -> str:
        return next(m for m in self.modules() if isinstance(m, CrossModalAttention)).attn_impl

    @attn_impl.setter
    def attn_impl(self, value: str) -> None:
        set_attn_impl(self, value)

    def forward(
        self,
        audio: Tensor,
        visual: Tensor,
        audio_mask: Tensor | None = None,
        visual_mask: Tensor | None = None,
    ) -> FusionOutput | Tensor:
        if (
            audio.dim() != 3
            or visual.dim() != 3
            or audio.shape[0] != visual.shape[0]
            or audio.shape[2] != visual.shape[2]
        ):
            raise ValueError(
                f"audio and visual must be (B, N, D) with equal B and D, got {tuple(audio.shape)} and "
                f"{tuple(visual.shape)}"
            )
        a, v = audio + self.audio_embed, visual + self.visual_embed
        na, nv = a.shape[1], v.shape[1]
        p = self.pattern
        if p == "early_sum":
            out = self._early_sum(a, v, audio_mask, visual_mask)
            return out.pooled if self.output == "pooled" else out
        if p == "early_concat":
            x = torch.cat([a, v], dim=1)
            mask = _cat_masks(audio_mask, visual_mask, na, nv, a)
            for blk in self.shared:
                x = blk(x, context_mask=mask)
            a, v = x[:, :na], x[:, na:]
        elif p == "hierarchical_multi_single":
            for blk_a, blk_v in zip(self.audio_blocks, self.visual_blocks):
                a, v = blk_a(a, context_mask=audio_mask), blk_v(v, context_mask=visual_mask)
            x = torch.cat([a, v], dim=1)
            mask = _cat_masks(audio_mask, visual_mask, na, nv, a)
            for blk in self.shared:
                x = blk(x, context_mask=mask)
            a, v = x[:, :na], x[:, na:]
        elif p == "hierarchical_single_multi":
            x = torch.cat([a, v], dim=1)
            mask = _cat_masks(audio_mask, visual_mask, na, nv, a)
            for blk in self.shared:
                x = blk(x, context_mask=mask)
            a, v = x[:, :na], x[:, na:]
            for blk_a, blk_v in zip(self.audio_blocks, self.visual_blocks):
                a, v = blk_a(a, context_mask=audio_mask), blk_v(v, context_mask=visual_mask)
        elif p == "cross_attention":
            for blk_a, blk_v in zip(self.audio_blocks, self.visual_blocks):
                a, v = blk_a(a, v, visual_mask), blk_v(v, a, audio_mask)
        else:
            a, v = self._bottleneck(a, v, audio_mask, visual_mask)
        a, v = self.norm(a), self.norm(v)
        pooled = 0.5 * (_masked_mean(a, audio_mask) + _masked_mean(v, visual_mask))
        if self.output == "pooled":
            return pooled
        return FusionOutput(torch.cat([a, v], dim=1), a, v, pooled)

    def _early_sum(self, a: Tensor, v: Tensor, a_mask: Tensor | None, v_mask: Tensor | None) -> FusionOutput:
        if a.shape[1] != v.shape[1]:
            raise ConfigError(f"early_sum needs equal token counts, got Na={a.shape[1]} and Nv={v.shape[1]}")
        if a_mask is not None:
            a = a * a_mask.unsqueeze(-1).to(a.dtype)
        if v_mask is not None:
            v = v * v_mask.unsqueeze(-1).to(v.dtype)
        x = self.sum_weights[0] * a + self.sum_weights[1] * v
        # a summed token is real when either input token is (no mask = every token real)
        mask = None if a_mask is None or v_mask is None else a_mask.bool() | v_mask.bool()
        for blk in self.shared:
            x = blk(x, context_mask=mask)
        x = self.norm(x)
        return FusionOutput(x, None, None, _masked_mean(x, mask))

    def _bottleneck(self, a: Tensor, v: Tensor, a_mask: Tensor | None, v_mask: Tensor | None) -> tuple[Tensor, Tensor]:
        na, nv, b = a.shape[1], v.shape[1], a.shape[0]
        z = self.bottleneck.expand(b, -1, -1)
        nz = z.shape[1]
        ones = torch.ones(b, nz, dtype=torch.bool, device=a.device)
        am = None if a_mask is None else torch.cat([a_mask.bool(), ones], dim=1)
        vm = None if v_mask is None else torch.cat([v_mask.bool(), ones], dim=1)
        for layer, (blk_a, blk_v) in enumerate(zip(self.audio_blocks, self.visual_blocks)):
            if layer < self.fusion_layer:
                a, v = blk_a(a, context_mask=a_mask), blk_v(v, context_mask=v_mask)
                continue
            ya = blk_a(torch.cat([a, z], dim=1), context_mask=am)
            yv = blk_v(torch.cat([v, z], dim=1), context_mask=vm)
            a, v = ya[:, :na], yv[:, :nv]
            z = 0.5 * (ya[:, na:] + yv[:, nv:])
        return a, v
