"""Latent-token cross-modal attention (LAVisH's latent bottleneck, reused inside DG-SCT's Ω).

Lin et al., "Vision Transformers are Parameter-Efficient Audio-Visual Learners" (CVPR 2023),
§3.2 (cross-modal attention through latent tokens), and Duan et al., "Cross-modal Prompts:
Adapting Large Pre-trained Models for Audio-Visual Downstream Tasks" (DG-SCT, NeurIPS 2023),
step 2 of the adapter Ω. K learnable latent tokens ``L ∈ R^{K×C}`` first *gather* from the
other stream ``Y ∈ R^{M×C}`` and then *scatter* back to the own tokens ``X ∈ R^{N×C}``:

    L' = L + softmax_M(L Yᵀ) Y                  (gather, softmax over the other stream's tokens)
    R  = softmax_K(X L'ᵀ) L'                     (scatter, softmax over the K latents)
    out = g · R                                  (scalar gate g, initialised to 0)

There are no query/key/value projections and **no 1/√d scaling**: both steps are
:func:`~avperceive.nn.attention.attend` calls with ``scale=1`` and the keys as values.
"""

from __future__ import annotations

import torch
from einops import rearrange, repeat
from torch import nn

from ..errors import ConfigError
from .attention import Attend, AttnImpl, AttnImplAttribute, attend
from .tokens import check_token_pair, check_tokens

__all__ = ["LatentTokenAttention", "latent_attention_pair"]


class LatentTokenAttention(nn.Module):
    """K latent tokens gather from the other stream and scatter back to the own tokens.

    Args:
        dim: channel width C shared by both streams (project the other stream first if it differs).
        num_latents: K, number of learned latent tokens (DG-SCT: 32, LAVisH AVE: 2).
        attn_impl: the path of both :func:`~avperceive.nn.attention.attend` calls: ``"fused"``
            (default, SDPA) or ``"reference"`` (plain matmul + softmax).
        latent_init: ``"uniform"`` (U[0,1), the AVE reference code) or ``"zeros"`` (LAVisH AVS/AVQA).

    Parameters: ``latents [K, C]``, ``gate [1]`` (initialised to 0, so a fresh module is a no-op).
    The path choice lives in the parameter-free sub-module ``attend`` (:class:`~avperceive.nn.attention.Attend`).

    Shapes: ``forward(x [B, N, C], y [B, M, C]) -> [B, N, C]``, the gated residual ``g·R``; the caller
    adds it to ``x``.
    """

    def __init__(self, dim: int, num_latents: int, *, attn_impl: AttnImpl = "fused", latent_init: str = "uniform"):
        super().__init__()
        if latent_init not in ("uniform", "zeros"):
            raise ConfigError(f"latent_init must be 'uniform' or 'zeros', got {latent_init!r}")
        self.dim = int(dim)
        self.num_latents = int(num_latents)
        self.attend = Attend(attn_impl)
        init = torch.rand if latent_init == "uniform" else torch.zeros
        self.latents = nn.Parameter(init(self.num_latents, self.dim))
        self.gate = nn.Parameter(torch.zeros(1))

    #: path of both attention steps, ``"fused"`` or ``"reference"`` (settable, validated).
    attn_impl = AttnImplAttribute()

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_latents={self.num_latents}"

    # -- the two steps -------------------------------------------------------------------------
    def gather(self, y: torch.Tensor) -> torch.Tensor:
        """``L' = L + softmax_M(L Yᵀ) Y``: ``y [B, M, C] -> [B, K, C]``."""
        latents = repeat(self.latents.to(y.dtype), "k c -> b k c", b=y.shape[0])
        return latents + self.attend(latents, y, y, scale=1.0)

    def scatter(self, x: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """``R = softmax_K(X L'ᵀ) L'``: ``x [B, N, C]``, ``latents [B, K, C]`` -> ``[B, N, C]`` (ungated)."""
        return self.attend(x, latents, latents, scale=1.0)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Gated residual ``g · softmax_K(X L'ᵀ) L'`` with ``L'`` gathered from ``y``.

        Args:
            x: own tokens ``[B, N, C]``.
            y: other-stream tokens ``[B, M, C]`` (same C, same dtype).

        Returns:
            ``[B, N, C]``; add it to ``x``.
        """
        check_tokens("x", x, None, self.dim)
        check_tokens("y", y, None, self.dim)
        check_token_pair(x, y)
        return self.gate.to(x.dtype) * self.scatter(x, self.gather(y))


def latent_attention_pair(
    first: LatentTokenAttention, second: LatentTokenAttention, x1: torch.Tensor, x2: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both directions at once: ``(first(x1, x2), second(x2, x1))``.

    When both modules take the same path and the two streams have the same shape (LAVisH: audio
    and video both ``[B, N, C]`` on one backbone), the two gathers run as one
    :func:`~avperceive.nn.attention.attend` call over ``2B`` and so do the two scatters (the latents
    of both modules are stacked along the batch). Otherwise the two modules are called one after
    the other. Shapes: ``x1 [B, N, C], x2 [B, M, C] -> ([B, N, C], [B, M, C])``.
    """
    for name, t in (("x1", x1), ("x2", x2)):
        check_tokens(name, t, None, first.dim)
    check_token_pair(x1, x2, names=("x1", "x2"))
    batchable = (
        first.attn_impl == second.attn_impl
        and x1.shape == x2.shape
        and first.latents.shape == second.latents.shape
    )
    if not batchable:
        return first(x1, x2), second(x2, x1)
    impl = first.attn_impl
    b = x1.shape[0]
    latents = torch.cat([
        repeat(first.latents.to(x1.dtype), "k c -> b k c", b=b),
        repeat(second.latents.to(x1.dtype), "k c -> b k c", b=b),
    ])  # [2B, K, C]
    own = torch.cat([x1, x2])  # [2B, N, C]
    other = torch.cat([x2, x1])
    gathered = latents + attend(latents, other, other, scale=1.0, impl=impl)
    out = attend(own, gathered, gathered, scale=1.0, impl=impl)
    gates = torch.cat([first.gate.expand(b), second.gate.expand(b)]).to(x1.dtype)
    out = out * rearrange(gates, "b -> b 1 1")
    return out[:b], out[b:]
