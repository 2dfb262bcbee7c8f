"""Generic multi-head cross-modal attention: queries from one stream, keys and values from the other.

Vaswani et al. 2017, eq. 1 with separate query and context streams (co-/cross-attention in the
survey of Vilaça, Yu & Viana, §"multimodal encoding"; e.g. the audio-visual attention of AVE
models, and MBT's / cross-attention fusion patterns). For a query stream ``x (B, Nq, C)`` and a
context stream ``y (B, Nk, C_y)``, per head ``h`` of width ``d``::

    Q_h = x W_q^h,  K_h = y W_k^h,  V_h = y W_v^h
    head_h = softmax(Q_h K_hᵀ / √d + M) V_h           (M = −∞ on padded context tokens)
    out = [head_1, ..., head_H] W_o                      (B, Nq, C)

With ``y = x`` it is ordinary multi-head self-attention. The attention itself goes through
:func:`avperceive.nn.attention.attend` (``attn_impl="fused"``: SDPA; ``"reference"``: the formula).
A query whose context tokens are all padded has no defined output (NaN); keep at least one.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn

from ..errors import ConfigError
from .attention import Attend, AttnImpl, check_attn_impl
from .tokens import check_token_pair, check_tokens

__all__ = ["CrossModalAttention", "padding_bias"]


def padding_bias(mask: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """Additive key bias ``(B, 1, 1, Nk)``: 0 for valid tokens (``mask`` True), −∞ for padded ones."""
    if mask is None:
        return None
    bias = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask.bool(), float("-inf"))
    return rearrange(bias, "b n -> b 1 1 n")


class CrossModalAttention(nn.Module):
    """Multi-head attention of one stream over another (formula in the module docstring).

    Args:
        dim: query-stream width C (also the output width).
        num_heads: H.
        context_dim: context-stream width C_y (default ``dim``).
        head_dim: d per head (default ``dim // num_heads``).
        qkv_bias: biases on the query / key / value projections.
        dropout: attention-weight dropout (training only).
        attn_impl: ``"fused"`` (default) or ``"reference"``.

    Forward: ``x (B, Nq, dim)``, ``context (B, Nk, context_dim)`` (default ``x``: self-attention),
    ``context_mask`` boolean ``(B, Nk)`` (True = a real token) -> ``(B, Nq, dim)``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        *,
        context_dim: int | None = None,
        head_dim: int | None = None,
        qkv_bias: bool = True,
        dropout: float = 0.0,
        attn_impl: AttnImpl = "fused",
    ):
        super().__init__()
        if head_dim is None:
            if dim % num_heads:
                raise ConfigError(f"dim {dim} must be divisible by num_heads {num_heads} (or give head_dim)")
            head_dim = dim // num_heads
        inner = head_dim * num_heads
        context_dim = dim if context_dim is None else context_dim
        self.num_heads, self.head_dim = num_heads, head_dim
        self.to_q = nn.Linear(dim, inner, bias=qkv_bias)
        self.to_k = nn.Linear(context_dim, inner, bias=qkv_bias)
        self.to_v = nn.Linear(context_dim, inner, bias=qkv_bias)
        self.proj = nn.Linear(inner, dim)
        self.attend = Attend(attn_impl, dropout)

    @property
    def attn_impl(self) -> str:
        return self.attend.attn_impl

    @attn_impl.setter
    def attn_impl(self, value: str) -> None:
        self.attend.attn_impl = check_attn_impl(value)

    def forward(self, x: Tensor, context: Tensor | None = None, context_mask: Tensor | None = None) -> Tensor:
        context = x if context is None else context
        check_tokens("x", x, None, self.to_q.in_features)
        check_tokens("context", context, None, self.to_k.in_features)
        check_token_pair(x, context, ("x", "context"))
        heads = "b n (h d) -> b h n d"
        q = rearrange(self.to_q(x), heads, h=self.num_heads)
        k = rearrange(self.to_k(context), heads, h=self.num_heads)
        v = rearrange(self.to_v(context), heads, h=self.num_heads)
        out = self.attend(q, k, v, bias=padding_bias(context_mask, q.dtype))
        return self.proj(rearrange(out, "b h n d -> b n (h d)"))
