"""Small layers shared by the transformer backbones: MLP, stochastic depth, patch embedding.

Stochastic depth: Huang et al., "Deep Networks with Stochastic Depth", ECCV 2016 (per-sample
residual drop, scaled by ``1 / keep``). The MLP is the Transformer feed-forward
``fc2(GELU(fc1(x)))`` (Vaswani et al. 2017, eq. 2, with exact-erf GELU as in Swin).
"""

from __future__ import annotations

import torch
from torch import nn

from ..nn.attention import AttnImpl, check_attn_impl
from ..nn.linear import linear

__all__ = ["Mlp", "DropPath", "PatchEmbed"]


class Mlp(nn.Module):
    """``fc2(GELU(fc1(x)))``: ``(..., C) -> (..., C)`` with hidden width ``hidden``.

    ``impl``: ``"fused"`` (default; GELU in the epilogue of ``fc1`` where
    :func:`~avperceive.nn.linear.linear` fuses) or ``"reference"`` (three ops); the backbone's
    ``attn_impl`` switch sets it.
    """

    def __init__(self, dim: int, hidden: int, impl: AttnImpl = "fused"):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.impl = check_attn_impl(impl)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.impl == "reference":
            return self.fc2(self.act(self.fc1(x)))
        hidden = linear(x, self.fc1.weight, self.fc1.bias, activation="gelu")
        return linear(hidden, self.fc2.weight, self.fc2.bias)


class DropPath(nn.Module):
    """Drop the whole residual of a sample with probability ``p`` in training (identity in eval)."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class PatchEmbed(nn.Module):
    """Non-overlapping patch embedding: Conv2d(k=patch, stride) -> tokens row-major -> LayerNorm.

    ``(B, in_chans, H, W) -> (B, (H/stride_h) * (W/stride_w), embed_dim)``.
    """

    def __init__(
        self,
        img_size: tuple[int, int],
        patch_size: int,
        in_chans: int,
        embed_dim: int,
        stride: tuple[int, int] | None = None,
        norm: bool = True,
    ):
        super().__init__()
        stride = tuple(stride) if stride is not None else (patch_size, patch_size)
        padding = ((patch_size - stride[0]) // 2, (patch_size - stride[1]) // 2)
        self.img_size = tuple(img_size)
        self.in_chans = in_chans
        self.grid_size = (img_size[0] // stride[0], img_size[1] // stride[1])
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=stride, padding=padding)
        self.norm = nn.LayerNorm(embed_dim) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_chans or tuple(x.shape[2:]) != self.img_size:
            raise ValueError(
                f"patch_embed: expected (B, {self.in_chans}, {self.img_size[0]}, {self.img_size[1]}), "
                f"got {tuple(x.shape)}"
            )
        x = self.proj(x)
        return self.norm(x.flatten(2).transpose(1, 2))
