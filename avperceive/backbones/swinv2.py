"""Swin Transformer V2 (Liu et al., "Swin Transformer V2: Scaling Up Capacity and Resolution", CVPR 2022).

Implements, in the layout of timm 0.6 (as stored in the DG-SCT checkpoint):

* scaled cosine attention ``Sim(q_i, k_j) = cos(q_i, k_j) * exp(min(s, log 100)) + B_ij`` (eq. 2),
  with a learned per-head logit scale ``s``;
* the continuous relative-position bias ``B = 16 * sigmoid(G(Δ̂))`` where ``G`` is the 2-layer
  CPB MLP applied to log-spaced coordinates ``Δ̂ = sign(Δ) log(1 + |Δ|)`` (eq. 3-4);
* res-post-norm blocks ``x = x + LN1(WAttn(x)); x = x + LN2(MLP(x))`` (§3.1, Fig. 1);
* shifted windows with the cyclic-shift mask (Swin-V1 §3.2) and PatchMerging
  ``LN(Linear(4C -> 2C)(concat 2x2))`` at the *end* of each stage but the last.

Each block exposes its two residual sub-layers, ``attn_branch`` and ``mlp_branch``, so adapter
models (DG-SCT, LAVisH) can insert their own residuals between them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..errors import ConfigError
from ._layers import DropPath, Mlp, PatchEmbed
from .window_ops import (
    merge_patches_2x2,
    relative_position_index,
    shifted_window_mask,
    swinv2_relative_coords_table,
    window_and_shift,
    window_merge,
    window_partition,
    windowed_attention,
)

__all__ = [
    "SwinV2",
    "SwinV2Block",
    "SwinV2Stage",
    "SwinV2WindowAttention",
    "SwinV2PatchMerging",
    "SWINV2_PRESETS",
    "swinv2_large_window12_192",
    "swinv2_base_window12_192",
    "swinv2_test_tiny",
]

ATTN_IMPLS = ("fused", "reference")


def _check_impl(impl: str) -> str:
    if impl not in ATTN_IMPLS:
        raise ConfigError(f"attn_impl must be one of {ATTN_IMPLS}, got {impl!r}")
    return impl


class SwinV2WindowAttention(nn.Module):
    """Scaled cosine window attention with continuous position bias.

    ``forward(x (B*nW, N, C), mask (nW, N, N) | None) -> (B*nW, N, C)``, ``N = wh * ww``.

    Parameters follow timm 0.6 names: ``qkv`` (no bias; the bias is ``cat(q_bias, 0, v_bias)``),
    ``q_bias``, ``v_bias``, ``logit_scale (heads, 1, 1)``, ``cpb_mlp`` (Linear(2, 512) -> ReLU ->
    Linear(512, heads, no bias)), ``proj``.
    """

    def __init__(
        self,
        dim: int,
        window: tuple[int, int],
        num_heads: int,
        pretrained_window: tuple[int, int] = (0, 0),
        attn_impl: str = "fused",
    ):
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim = dim
        self.window = tuple(window)
        self.num_heads = num_heads
        self.attn_impl = _check_impl(attn_impl)
        self.logit_scale = nn.Parameter(torch.log(10 * torch.ones(num_heads, 1, 1)))
        self.cpb_mlp = nn.Sequential(nn.Linear(2, 512), nn.ReLU(inplace=True), nn.Linear(512, num_heads, bias=False))
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)
        self.register_buffer(
            "relative_coords_table",
            swinv2_relative_coords_table(self.window, tuple(pretrained_window)),
            persistent=False,
        )
        self.register_buffer("relative_position_index", relative_position_index(self.window), persistent=False)

    def relative_position_bias(self) -> torch.Tensor:
        """``(heads, N, N)``: ``16 * sigmoid(cpb_mlp(table))`` gathered for every token pair."""
        table = self.cpb_mlp(self.relative_coords_table).reshape(-1, self.num_heads)
        bias = table[self.relative_position_index.reshape(-1)]
        n = self.relative_position_index.shape[0]
        return 16 * torch.sigmoid(rearrange(bias, "(i j) h -> h i j", i=n, j=n))

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))
        qkv = F.linear(x, self.qkv.weight, bias)
        q, k, v = rearrange(qkv, "b n (three h d) -> three b h n d", three=3, h=self.num_heads)
        return q, k, v

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b_, n, c = x.shape
        n_win = self.window[0] * self.window[1]
        if c != self.dim or n != n_win:
            raise ValueError(f"window attention: expected (B*nW, {n_win}, {self.dim}), got {tuple(x.shape)}")
        q, k, v = self._qkv(x)
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        scale = torch.clamp(self.logit_scale, max=math.log(1.0 / 0.01)).exp()  # (h, 1, 1)
        bias = self.relative_position_bias()[None]  # (1, h, N, N)
        if mask is not None:
            bias = bias + mask[:, None]  # (nW, h, N, N)
        out = windowed_attention(q, k, v, bias, logit_scale=scale, impl=self.attn_impl)
        return self.proj(rearrange(out, "b h n d -> b n (h d)"))


class SwinV2PatchMerging(nn.Module):
    """Swin-V2 patch merging: ``(B, H*W, C) -> (B, H/2*W/2, 2C)`` = ``norm(reduction(concat 2x2))``."""

    def __init__(self, dim: int, input_resolution: tuple[int, int]):
        super().__init__()
        self.input_resolution = tuple(input_resolution)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(2 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.input_resolution
        x = merge_patches_2x2(rearrange(x, "b (h w) c -> b h w c", h=h, w=w))
        return self.norm(self.reduction(rearrange(x, "b h w c -> b (h w) c")))


class SwinV2Block(nn.Module):
    """Res-post-norm Swin-V2 block on a ``(H, W)`` token grid.

    Sub-layers (each returns the residual to ADD, shape ``(B, H*W, C)``):

    * ``attn_branch(x) = norm1(window_attention(x))`` (shifted-window cosine attention);
    * ``mlp_branch(x) = norm2(mlp(x))``.

    ``forward(x) = x + attn_branch(x)``, then ``x + mlp_branch(x)`` (drop path in training).
    """

    def __init__(
        self,
        dim: int,
        input_resolution: tuple[int, int],
        num_heads: int,
        window_size: int = 7,
        shift_size: int = 0,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
        pretrained_window_size: int = 0,
        attn_impl: str = "fused",
    ):
        super().__init__()
        self.dim = dim
        self.input_resolution = tuple(input_resolution)
        self.window_size, self.shift_size = window_and_shift(
            self.input_resolution, (window_size, window_size), (shift_size, shift_size)
        )
        self.attn = SwinV2WindowAttention(
            dim, self.window_size, num_heads, (pretrained_window_size, pretrained_window_size), attn_impl
        )
        self.norm1 = nn.LayerNorm(dim)
        self.drop_path1 = DropPath(drop_path)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.norm2 = nn.LayerNorm(dim)
        self.drop_path2 = DropPath(drop_path)
        self.register_buffer(
            "attn_mask", shifted_window_mask(self.input_resolution, self.window_size, self.shift_size), persistent=False
        )

    def window_attention(self, x: torch.Tensor) -> torch.Tensor:
        """Shifted-window attention WAttn(x), before norm1: ``(B, H*W, C) -> (B, H*W, C)``."""
        h, w = self.input_resolution
        if x.ndim != 3 or x.shape[1] != h * w or x.shape[2] != self.dim:
            raise ValueError(f"SwinV2Block: expected (B, {h * w}, {self.dim}), got {tuple(x.shape)}")
        grid = rearrange(x, "b (h w) c -> b h w c", h=h, w=w)
        sh, sw = self.shift_size
        if sh or sw:
            grid = torch.roll(grid, shifts=(-sh, -sw), dims=(1, 2))
        windows = self.attn(window_partition(grid, self.window_size), self.attn_mask)
        grid = window_merge(windows, self.window_size, h, w)
        if sh or sw:
            grid = torch.roll(grid, shifts=(sh, sw), dims=(1, 2))
        return rearrange(grid, "b h w c -> b (h w) c")

    def attn_branch(self, x: torch.Tensor) -> torch.Tensor:
        """Residual of the attention sub-layer: ``LN1(WAttn(x))``, ``(B, H*W, C)``."""
        return self.norm1(self.window_attention(x))

    def mlp_branch(self, x: torch.Tensor) -> torch.Tensor:
        """Residual of the MLP sub-layer: ``LN2(MLP(x))``, ``(B, H*W, C)``."""
        return self.norm2(self.mlp(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path1(self.attn_branch(x))
        return x + self.drop_path2(self.mlp_branch(x))


class SwinV2Stage(nn.Module):
    """A stage: ``blocks`` (alternating unshifted / shifted) then ``downsample`` (PatchMerging or Identity).

    ``(B, H*W, C) -> (B, H*W/4, 2C)`` with downsampling, else ``(B, H*W, C)``.
    """

    def __init__(
        self,
        dim: int,
        input_resolution: tuple[int, int],
        depth: int,
        num_heads: int,
        window_size: int,
        mlp_ratio: float = 4.0,
        drop_path: Sequence[float] | float = 0.0,
        downsample: bool = False,
        pretrained_window_size: int = 0,
        attn_impl: str = "fused",
    ):
        super().__init__()
        self.dim = dim
        self.input_resolution = tuple(input_resolution)
        self.grad_checkpointing = False
        dps = list(drop_path) if isinstance(drop_path, Sequence) else [drop_path] * depth
        self.blocks = nn.ModuleList(
            SwinV2Block(
                dim,
                self.input_resolution,
                num_heads,
                window_size,
                0 if i % 2 == 0 else window_size // 2,
                mlp_ratio,
                dps[i],
                pretrained_window_size,
                attn_impl,
            )
            for i in range(depth)
        )
        self.downsample = SwinV2PatchMerging(dim, self.input_resolution) if downsample else nn.Identity()

    def forward_blocks(self, x: torch.Tensor) -> torch.Tensor:
        """Run the blocks only (no downsampling)."""
        for blk in self.blocks:
            if self.grad_checkpointing and torch.is_grad_enabled():
                x = checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(self.forward_blocks(x))


class SwinV2(nn.Module):
    """Swin Transformer V2 backbone (timm 0.6 module layout, no timm needed).

    Args:
        img_size: input side (square) or ``(H, W)``.
        patch_size: patch side.
        in_chans: input channels.
        num_classes: classifier outputs (``0``: no ``head``).
        embed_dim: width of stage 0 (doubles each stage).
        depths: blocks per stage.
        num_heads: heads per stage.
        window_size: attention window (clamped to small grids).
        mlp_ratio: MLP hidden width / width.
        drop_path_rate: stochastic depth, linearly increasing over blocks.
        pretrained_window_sizes: per-stage window the CPB coordinates are normalised by (0 = own).
        attn_impl: ``"fused"`` (scaled_dot_product_attention) or ``"reference"``.

    Shapes: ``forward_features(x (B, 3, H, W)) -> (B, L_last, C_last)`` after the final norm;
    ``forward(x) -> (B, num_classes)`` (or pooled ``(B, C_last)`` when ``num_classes == 0``).
    """

    def __init__(
        self,
        img_size: int | Sequence[int] = 192,
        patch_size: int = 4,
        in_chans: int = 3,
        num_classes: int = 0,
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        window_size: int = 12,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.0,
        pretrained_window_sizes: Sequence[int] = (0, 0, 0, 0),
        attn_impl: str = "fused",
    ):
        super().__init__()
        if len(depths) != len(num_heads):
            raise ConfigError(f"depths {tuple(depths)} and num_heads {tuple(num_heads)} differ in length")
        size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self.num_classes = num_classes
        self.num_stages = len(depths)
        self.embed_dim = embed_dim
        self.num_features = int(embed_dim * 2 ** (self.num_stages - 1))
        self.patch_embed = PatchEmbed(size, patch_size, in_chans, embed_dim)
        grid = self.patch_embed.grid_size
        n_blocks = sum(depths)
        dpr = [drop_path_rate * i / max(n_blocks - 1, 1) for i in range(n_blocks)]
        pws = list(pretrained_window_sizes) + [0] * (self.num_stages - len(pretrained_window_sizes))
        stages = []
        for s, depth in enumerate(depths):
            res = (grid[0] // 2**s, grid[1] // 2**s)
            stages.append(
                SwinV2Stage(
                    int(embed_dim * 2**s),
                    res,
                    depth,
                    num_heads[s],
                    window_size,
                    mlp_ratio,
                    dpr[sum(depths[:s]) : sum(depths[: s + 1])],
                    downsample=s < self.num_stages - 1,
                    pretrained_window_size=pws[s],
                    attn_impl=attn_impl,
                )
            )
        self.stages = nn.ModuleList(stages)
        self.norm = nn.LayerNorm(self.num_features)
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self._attn_impl = _check_impl(attn_impl)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_preset(cls, name: str, **overrides) -> SwinV2:
        """Build a named preset (see :data:`SWINV2_PRESETS`), with keyword overrides."""
        if name not in SWINV2_PRESETS:
            raise ConfigError(f"unknown Swin-V2 preset {name!r}; known: {', '.join(sorted(SWINV2_PRESETS))}")
        return cls(**{**SWINV2_PRESETS[name], **overrides})

    @property
    def attn_impl(self) -> str:
        """``"fused"`` or ``"reference"``; setting it switches every attention module."""
        return self._attn_impl

    @attn_impl.setter
    def attn_impl(self, impl: str) -> None:
        self._attn_impl = _check_impl(impl)
        for m in self.modules():
            if isinstance(m, SwinV2WindowAttention):
                m.attn_impl = impl

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block in the backward pass (saves activation memory when training)."""
        for stage in self.stages:
            stage.grad_checkpointing = enable

    @property
    def blocks(self) -> list[SwinV2Block]:
        """All blocks in order (a flat list view of ``stages[s].blocks``)."""
        return [blk for stage in self.stages for blk in stage.blocks]

    # -- forward ------------------------------------------------------------------------------
    def forward_intermediates(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Per-stage features.

        Returns:
            ``(features, stage_outputs)``: ``features (B, L_last, C_last)`` after the final norm, and
            for every stage ``s`` its last block's output ``(B, H_s*W_s, C_s)`` (before downsampling).
        """
        x = self.patch_embed(x)
        outs = []
        for stage in self.stages:
            x = stage.forward_blocks(x)
            outs.append(x)
            x = stage.downsample(x)
        return self.norm(x), outs

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_chans, H, W) -> (B, L_last, C_last)`` tokens after the final LayerNorm."""
        x = self.patch_embed(x)
        for stage in self.stages:
            x = stage(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Token mean ``(B, C_last)``, then the classifier unless ``pre_logits``."""
        x = x.mean(dim=1)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


SWINV2_PRESETS: dict[str, dict] = {
    # timm swinv2_large_window12_192_22k (0.6) == swinv2_large_window12_192.ms_in22k (>= 0.9)
    "swinv2_large_window12_192": dict(
        img_size=192,
        patch_size=4,
        embed_dim=192,
        depths=(2, 2, 18, 2),
        num_heads=(6, 12, 24, 48),
        window_size=12,
        num_classes=21841,
    ),
    # timm swinv2_base_window12_192_22k / swinv2_base_window12_192.ms_in22k
    "swinv2_base_window12_192": dict(
        img_size=192,
        patch_size=4,
        embed_dim=128,
        depths=(2, 2, 18, 2),
        num_heads=(4, 8, 16, 32),
        window_size=12,
        num_classes=21841,
    ),
    # tiny configuration for tests (the g6/g7 golden network)
    "swinv2_test_tiny": dict(
        img_size=48,
        patch_size=4,
        embed_dim=16,
        depths=(2, 2, 2),
        num_heads=(2, 4, 8),
        window_size=6,
        num_classes=0,
    ),
}


def swinv2_large_window12_192(**overrides) -> SwinV2:
    """Swin-V2-L, window 12, 192 px, 21841 ImageNet-22k classes (DG-SCT's video backbone)."""
    return SwinV2.from_preset("swinv2_large_window12_192", **overrides)


def swinv2_base_window12_192(**overrides) -> SwinV2:
    """Swin-V2-B, window 12, 192 px, 21841 ImageNet-22k classes."""
    return SwinV2.from_preset("swinv2_base_window12_192", **overrides)


def swinv2_test_tiny(**overrides) -> SwinV2:
    """A 48-px, 3-stage, 16-wide Swin-V2 for tests."""
    return SwinV2.from_preset("swinv2_test_tiny", **overrides)
