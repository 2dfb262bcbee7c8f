"""The windowed-transformer skeleton shared by Swin-V2 and HTS-AT (Liu et al., "Swin Transformer", ICCV 2021).

Swin Transformer §3.1-3.2 and Fig. 3: a patch embedding, then stages of blocks that attend inside
non-overlapping ``wh x ww`` windows, every second block on a grid cyclically shifted by half a
window (with the shifted-window mask), each stage but the last ending in a 2x2 patch merging
(``(B, H*W, C) -> (B, H/2*W/2, 2C)``), then a final LayerNorm.

What the two backbones share lives here:

* :class:`WindowAttention` — multi-head attention inside windows with an additive per-window logit
  bias ``B = relative-position bias + shift mask`` (Swin eq. 4), computed by the one attention
  primitive :func:`avperceive.nn.attention.attend`. A variant supplies ``qkv_heads`` (q, k, v and
  the logit scale) and ``relative_position_bias``;
* :class:`WindowedBlock` — shifted-window attention + MLP as two residual branches
  (``attn_branch`` / ``mlp_branch``, the hooks adapter models step through), with the norm either
  before the branch (Swin-V1 pre-norm) or after it (Swin-V2 res-post-norm, Swin-V2 §3.1);
* :class:`PatchMerging` — ``Linear(4C -> 2C)`` on the concatenated 2x2 neighbourhood, LayerNorm
  before (Swin-V1) or after (Swin-V2) the reduction;
* :class:`WindowedStage` and :class:`WindowedTransformer` — the stage loop with gradient
  checkpointing, ``forward_features``, timm's ``forward_intermediates(indices=...)``, the runtime
  attention-path switch and ``feature_info``.

Each backbone file keeps only what differs: the attention variant, the norm placement, the patch
embedding and (HTS-AT) the mel front-end and token-semantic head.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Literal

import torch
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..errors import ConfigError
from ..hub.mixin import PretrainedMixin
from ..nn.attention import AttnImpl, attend, check_attn_impl
from ..nn.linear import linear
from ..nn.weight_cache import weight_derived
from ._layers import DropPath, Mlp
from .window_ops import (
    merge_patches_2x2,
    relative_position_index,
    shifted_window_mask,
    window_and_shift,
    window_merge,
    window_partition,
)

__all__ = [
    "WindowAttention",
    "WindowedBlock",
    "PatchMerging",
    "WindowedStage",
    "WindowedTransformer",
    "NormPlacement",
    "feature_take_indices",
    "OUTPUT_FORMATS",
]

NormPlacement = Literal["pre", "post"]
"""``"pre"``: ``x + f(LN(x))`` (Swin-V1, HTS-AT); ``"post"``: ``x + LN(f(x))`` (Swin-V2 res-post-norm)."""

OUTPUT_FORMATS = ("NLC", "NCHW", "NHWC")
"""Layouts of :meth:`WindowedTransformer.forward_intermediates`: tokens ``(B, H*W, C)`` or grids."""


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    """``7 -> (7, 7)``; ``(7, 5) -> (7, 5)``."""
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _check_norm_placement(placement: str) -> str:
    if placement not in ("pre", "post"):
        raise ConfigError(f"norm placement must be 'pre' or 'post', got {placement!r}")
    return placement


class WindowAttention(nn.Module, ABC):
    """Multi-head attention inside windows: ``softmax(s · q kᵀ + B) v`` with ``B`` = position bias + shift mask.

    ``forward(x (B*nW, N, C), mask (nW, N, N) | None) -> (B*nW, N, C)``, ``N = wh * ww``, windows of
    one image consecutive (as :func:`~avperceive.backbones.window_ops.window_partition` lays them).

    A variant subclasses this and defines, in its own parameter layout:

    * ``qkv_heads(x) -> (q, k, v, scale)`` with q, k, v ``(B*nW, heads, N, d)`` and the logit scale
      ``s`` passed to :func:`~avperceive.nn.attention.attend`;
    * ``relative_position_bias() -> (heads, N, N)``;
    * ``proj``, the output ``Linear(C, C)``.

    For the fused path the windows are folded into the head axis (``(B, nW·heads, N, d)``) so that
    the 4-D inputs keep SDPA on its fused kernels, with the bias ``(1, nW·heads, N, N)`` broadcast
    over the batch; the reference path runs the same call written out.

    ``bf16_matmul_logits`` (class attribute): whether bfloat16 CPU inference may round the logits
    to bfloat16 (:func:`~avperceive.nn.attention.attend`'s ``bf16_matmul`` route for short
    windows). True for scaled dot-product logits (Swin-V1 / HTS-AT, a few units in size); a
    variant whose logits are large (Swin-V2: logit scale up to 100 plus a bias up to 16) sets it False.
    """

    proj: nn.Linear
    bf16_matmul_logits: bool = True

    def __init__(self, dim: int, window: tuple[int, int], num_heads: int, attn_impl: AttnImpl = "fused"):
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim = dim
        self.window = tuple(window)
        self.num_heads = num_heads
        self.attn_impl = check_attn_impl(attn_impl)
        self.register_buffer("relative_position_index", relative_position_index(self.window), persistent=False)

    @abstractmethod
    def qkv_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float | None]:
        """``(B*nW, N, C) -> (q, k, v (B*nW, heads, N, d), scale)``; defined by each variant."""

    @abstractmethod
    def relative_position_bias(self) -> torch.Tensor:
        """``(heads, N, N)`` additive logits for every token pair of a window; defined by each variant."""

    def bias_sources(self) -> tuple[torch.Tensor, ...]:
        """Every tensor :meth:`relative_position_bias` reads (the keys of its inference cache).

        Default: all parameters and buffers of this module except those of ``qkv`` and ``proj``
        (a variant may narrow it).
        """
        skip = {id(t) for name in ("qkv", "proj") if hasattr(self, name) for t in getattr(self, name).parameters()}
        return tuple(t for t in (*self.parameters(), *self.buffers()) if id(t) not in skip)

    def window_bias(self, mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
        """The additive logits of :func:`~avperceive.nn.attention.attend`: ``(1, nW·heads, N, N)`` in ``dtype``.

        ``B = relative_position_bias()`` (+ ``mask (nW, N, N)`` per window), windows folded into the
        head axis. A function of weights and the mask only: :meth:`forward` memoises it in inference
        (:func:`~avperceive.nn.weight_cache.weight_derived`), so the CPB MLP (Swin-V2), the table
        gather and the mask sum run once, not on every call.
        """
        with torch.autocast(mask.device.type if mask is not None else "cpu", enabled=False):
            bias = self.relative_position_bias().float()[None]  # (1, h, N, N), float32 (rounded once, below)
            if mask is not None:
                bias = bias + mask.float()[:, None]  # (nW, h, N, N)
        return rearrange(bias, "nw h i j -> 1 (nw h) i j").to(dtype).contiguous()

    def gather_bias(self, table: torch.Tensor) -> torch.Tensor:
        """Per-offset values ``((2wh-1)(2ww-1), heads)`` -> per-pair bias ``(heads, N, N)`` (Swin eq. 4)."""
        n = self.relative_position_index.shape[0]
        return rearrange(table[self.relative_position_index.reshape(-1)], "(i j) h -> h i j", i=n, j=n)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        _, n, c = x.shape
        n_win = self.window[0] * self.window[1]
        if c != self.dim or n != n_win:
            raise ValueError(f"window attention: expected (B*nW, {n_win}, {self.dim}), got {tuple(x.shape)}")
        q, k, v, scale = self.qkv_heads(x)
        bias = weight_derived(
            self, f"window_bias_{q.dtype}", (*self.bias_sources(), mask), lambda: self.window_bias(mask, q.dtype)
        )
        nw = bias.shape[1] // self.num_heads
        q, k, v = (rearrange(t, "(b nw) h n d -> b (nw h) n d", nw=nw) for t in (q, k, v))
        out = attend(q, k, v, bias=bias, scale=scale, impl=self.attn_impl, bf16_matmul=self.bf16_matmul_logits)
        out = rearrange(out, "b (nw h) n d -> (b nw) n (h d)", nw=nw)
        return linear(out, self.proj.weight, self.proj.bias, impl=self.attn_impl)


class WindowedBlock(nn.Module):
    """Shifted-window transformer block on a ``(H, W)`` token grid, as two residual branches.

    Sub-layers (each returns the residual to ADD, shape ``(B, H*W, C)``):

    * ``attn_branch(x)``: ``WAttn(norm1(x))`` (``"pre"``) or ``norm1(WAttn(x))`` (``"post"``);
    * ``mlp_branch(x)``: ``mlp(norm2(x))`` (``"pre"``) or ``norm2(mlp(x))`` (``"post"``).

    ``forward(x) = x + attn_branch(x)``, then ``x + mlp_branch(x)`` (drop path in training).

    A variant is a subclass that sets two class attributes: ``attention_cls`` (its
    :class:`WindowAttention`) and ``norm_placement`` (``"pre"`` or ``"post"``).

    Args:
        dim: width ``C``.
        input_resolution: token grid ``(H, W)``.
        num_heads: attention heads.
        window_size, shift_size: requested window and shift (``int`` or ``(h, w)``); grids no larger
            than the window use window = grid and no shift (:func:`~avperceive.backbones.window_ops.window_and_shift`).
        mlp_ratio: MLP hidden width / width.
        drop_path: stochastic-depth rate of both branches.
        attn_impl: ``"fused"`` or ``"reference"``.
        **attention_kwargs: further arguments of ``attention_cls`` (Swin-V2: ``pretrained_window_size``).
    """

    attention_cls: type[WindowAttention]
    norm_placement: NormPlacement

    def __init__(
        self,
        dim: int,
        input_resolution: tuple[int, int],
        num_heads: int,
        window_size: int | Sequence[int] = 7,
        shift_size: int | Sequence[int] = 0,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
        attn_impl: AttnImpl = "fused",
        **attention_kwargs,
    ):
        super().__init__()
        _check_norm_placement(self.norm_placement)
        self.dim = dim
        self.input_resolution = tuple(input_resolution)
        self.window_size, self.shift_size = window_and_shift(
            self.input_resolution, _pair(window_size), _pair(shift_size)
        )
        self.norm1 = nn.LayerNorm(dim)
        self.attn = self.attention_cls(dim, self.window_size, num_heads, attn_impl=attn_impl, **attention_kwargs)
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), impl=attn_impl)
        self.drop_path2 = DropPath(drop_path)
        self.register_buffer(
            "attn_mask", shifted_window_mask(self.input_resolution, self.window_size, self.shift_size), persistent=False
        )
        order = self.window_order(self.input_resolution, self.window_size, self.shift_size)
        self.register_buffer("window_index", order, persistent=False)
        self.register_buffer("window_index_inverse", torch.argsort(order), persistent=False)

    @staticmethod
    def window_order(resolution: tuple[int, int], window: tuple[int, int], shift: tuple[int, int]) -> torch.Tensor:
        """Token indices ``(H*W,)`` in shifted-window order: ``x[:, order]`` viewed as ``(B*nW, wh*ww, C)`` is
        ``window_partition(roll(grid, (-sh, -sw)))`` (Swin's cyclic shift, Liu et al. 2021 §3.2, and the
        partition in one gather; its inverse permutation undoes both)."""
        h, w = resolution
        grid = torch.arange(h * w).reshape(1, h, w, 1)
        if shift[0] or shift[1]:
            grid = torch.roll(grid, shifts=(-shift[0], -shift[1]), dims=(1, 2))
        return window_partition(grid, window).reshape(-1)

    def window_attention(self, x: torch.Tensor) -> torch.Tensor:
        """Shifted-window attention alone (no norm): ``(B, H*W, C) -> (B, H*W, C)``."""
        h, w = self.input_resolution
        if x.ndim != 3 or x.shape[1] != h * w or x.shape[2] != self.dim:
            raise ValueError(f"{type(self).__name__}: expected (B, {h * w}, {self.dim}), got {tuple(x.shape)}")
        n_win = self.window_size[0] * self.window_size[1]
        if self.attn.attn_impl == "reference":  # the operations as written: roll, partition, merge, roll back
            grid = rearrange(x, "b (h w) c -> b h w c", h=h, w=w)
            sh, sw = self.shift_size
            if sh or sw:
                grid = torch.roll(grid, shifts=(-sh, -sw), dims=(1, 2))
            windows = self.attn(window_partition(grid, self.window_size), self.attn_mask)
            grid = window_merge(windows, self.window_size, h, w)
            if sh or sw:
                grid = torch.roll(grid, shifts=(sh, sw), dims=(1, 2))
            return rearrange(grid, "b h w c -> b (h w) c")
        # one gather each way instead of roll + partition and merge + roll (two copies saved)
        windows = x.index_select(1, self.window_index).view(-1, n_win, self.dim)
        out = self.attn(windows, self.attn_mask)
        return out.view(x.shape[0], h * w, -1).index_select(1, self.window_index_inverse)

    def attn_branch(self, x: torch.Tensor) -> torch.Tensor:
        """Residual of the attention sub-layer, ``(B, H*W, C)``."""
        if self.norm_placement == "post":
            return self.norm1(self.window_attention(x))
        return self.window_attention(self.norm1(x))

    def mlp_branch(self, x: torch.Tensor) -> torch.Tensor:
        """Residual of the MLP sub-layer, ``(B, H*W, C)``."""
        if self.norm_placement == "post":
            return self.norm2(self.mlp(x))
        return self.mlp(self.norm2(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path1(self.attn_branch(x))
        return x + self.drop_path2(self.mlp_branch(x))


class PatchMerging(nn.Module):
    """2x2 patch merging ``(B, H*W, C) -> (B, H/2*W/2, 2C)`` (Swin §3.1).

    ``"pre"``: ``reduction(norm(concat 2x2))`` with ``norm`` over ``4C`` (Swin-V1);
    ``"post"``: ``norm(reduction(concat 2x2))`` with ``norm`` over ``2C`` (Swin-V2).
    """

    def __init__(
        self, dim: int, input_resolution: tuple[int, int], norm_placement: NormPlacement = "pre",
        impl: AttnImpl = "fused",
    ):
        super().__init__()
        self.input_resolution = tuple(input_resolution)
        self.norm_placement = _check_norm_placement(norm_placement)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(2 * dim if norm_placement == "post" else 4 * dim)
        self.impl = check_attn_impl(impl)  # the reduction's path (nn.linear), set by the backbone's attn_impl

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.input_resolution
        x = rearrange(merge_patches_2x2(rearrange(x, "b (h w) c -> b h w c", h=h, w=w)), "b h w c -> b (h w) c")
        if self.norm_placement == "post":
            return self.norm(linear(x, self.reduction.weight, impl=self.impl))
        return linear(self.norm(x), self.reduction.weight, impl=self.impl)


class WindowedStage(nn.Module):
    """A stage: ``blocks`` (alternating unshifted / shifted) then ``downsample`` (PatchMerging or Identity).

    ``(B, H*W, C) -> (B, H*W/4, 2C)`` with downsampling, else ``(B, H*W, C)``.

    Args:
        block_cls: the :class:`WindowedBlock` variant; the patch merging takes its norm placement.
        dim: width ``C``.
        input_resolution: token grid ``(H, W)``.
        depth: number of blocks.
        num_heads: attention heads.
        window_size: the stage's window (``int`` or ``(h, w)``); odd blocks shift by half of it.
        mlp_ratio: MLP hidden width / width.
        drop_path: per-block stochastic-depth rates (``depth`` of them).
        downsample: end the stage with a patch merging.
        attn_impl: ``"fused"`` or ``"reference"``.
        **block_kwargs: further arguments of ``block_cls``.
    """

    def __init__(
        self,
        block_cls: type[WindowedBlock],
        dim: int,
        input_resolution: tuple[int, int],
        depth: int,
        num_heads: int,
        window_size: int | Sequence[int],
        mlp_ratio: float = 4.0,
        drop_path: Sequence[float] = (),
        downsample: bool = False,
        attn_impl: AttnImpl = "fused",
        **block_kwargs,
    ):
        super().__init__()
        self.dim = dim
        self.input_resolution = tuple(input_resolution)
        self.grad_checkpointing = False
        rates = list(drop_path) or [0.0] * depth
        window, half = _pair(window_size), tuple(w // 2 for w in _pair(window_size))
        self.blocks = nn.ModuleList(
            block_cls(
                dim,
                self.input_resolution,
                num_heads,
                window,
                (0, 0) if i % 2 == 0 else half,
                mlp_ratio,
                rates[i],
                attn_impl,
                **block_kwargs,
            )
            for i in range(depth)
        )
        self.downsample = (
            PatchMerging(dim, self.input_resolution, block_cls.norm_placement, impl=attn_impl)
            if downsample
            else nn.Identity()
        )

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


def feature_take_indices(num_stages: int, indices: int | Sequence[int] | None = None) -> tuple[list[int], int]:
    """Which stages ``forward_intermediates`` returns (timm's rule).

    Args:
        num_stages: stages of the model.
        indices: ``None`` (all), an ``int`` n (the last n stages) or a sequence of stage indices
            (negative ones count from the end).

    Returns:
        ``(sorted stage indices, largest index)``.

    Raises:
        ConfigError: n outside ``1..num_stages`` or an index outside the stages.
    """
    if indices is None:
        indices = num_stages
    if isinstance(indices, int):
        if not 0 < indices <= num_stages:
            raise ConfigError(f"indices={indices}: the last-n count must be in 1..{num_stages}")
        take = list(range(num_stages - indices, num_stages))
    else:
        take = []
        for i in indices:
            idx = num_stages + i if i < 0 else i
            if not 0 <= idx < num_stages:
                raise ConfigError(f"indices: stage {i} is out of range for {num_stages} stages")
            take.append(idx)
        if not take:
            raise ConfigError("indices: an empty list selects no stage")
        take = sorted(set(take))
    return take, take[-1]


class WindowedTransformer(nn.Module, PretrainedMixin):
    """Base of the windowed backbones: ``patch_embed -> stages -> norm`` and what runs on it.

    A subclass builds ``patch_embed`` and calls :meth:`build_trunk` in its ``__init__``, and defines
    its head (``forward_head``, ``reset_classifier``).

    Shapes: ``forward_features(x) -> (B, L_last, C_last)`` after the final norm;
    ``forward_intermediates(x, indices)`` -> per-stage outputs (see there).
    """

    patch_embed: nn.Module

    def build_trunk(
        self,
        block_cls: type[WindowedBlock],
        embed_dim: int,
        depths: Sequence[int],
        num_heads: Sequence[int],
        window_size: int | Sequence[int],
        mlp_ratio: float,
        drop_path_rate: float,
        attn_impl: AttnImpl,
        stage_kwargs: Sequence[dict] | None = None,
    ) -> None:
        """Create ``stages`` (width doubling, grid halving from ``patch_embed.grid_size``) and ``norm``.

        Stochastic depth rises linearly from 0 to ``drop_path_rate`` over all blocks;
        ``stage_kwargs[s]`` are further block arguments of stage ``s``.
        """
        if len(depths) != len(num_heads):
            raise ConfigError(f"depths {tuple(depths)} and num_heads {tuple(num_heads)} differ in length")
        self.num_stages = len(depths)
        self.embed_dim = embed_dim
        self.num_features = int(embed_dim * 2 ** (self.num_stages - 1))
        grid = self.patch_embed.grid_size
        n_blocks = sum(depths)
        dpr = [drop_path_rate * i / max(n_blocks - 1, 1) for i in range(n_blocks)]
        self.stages = nn.ModuleList(
            WindowedStage(
                block_cls,
                int(embed_dim * 2**s),
                (grid[0] // 2**s, grid[1] // 2**s),
                depth,
                num_heads[s],
                window_size,
                mlp_ratio,
                dpr[sum(depths[:s]) : sum(depths[: s + 1])],
                downsample=s < self.num_stages - 1,
                attn_impl=attn_impl,
                **(stage_kwargs[s] if stage_kwargs else {}),
            )
            for s, depth in enumerate(depths)
        )
        self.norm = nn.LayerNorm(self.num_features)
        self.attn_impl = attn_impl

    # -- runtime switches -----------------------------------------------------------------------
    @property
    def attn_impl(self) -> str:
        """``"fused"`` or ``"reference"``; setting it switches every window attention module."""
        return self._attn_impl

    @attn_impl.setter
    def attn_impl(self, impl: str) -> None:
        self._attn_impl = check_attn_impl(impl)
        for m in self.modules():
            if isinstance(m, WindowAttention):
                m.attn_impl = impl
            elif isinstance(m, (Mlp, PatchMerging)):
                m.impl = impl

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block in the backward pass (saves activation memory when training)."""
        for stage in self.stages:
            stage.grad_checkpointing = enable

    @property
    def blocks(self) -> list[WindowedBlock]:
        """All blocks in order (a flat list view of ``stages[s].blocks``)."""
        return [blk for stage in self.stages for blk in stage.blocks]

    @property
    def feature_info(self) -> list[dict]:
        """Per stage (timm's record): ``num_chs``, ``reduction`` (input pixels per token side), ``module``."""
        patch = self.patch_embed.img_size[0] // self.patch_embed.grid_size[0]
        return [
            {"num_chs": int(stage.dim), "reduction": patch * 2**s, "module": f"stages.{s}"}
            for s, stage in enumerate(self.stages)
        ]

    # -- forward --------------------------------------------------------------------------------
    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        *,
        norm: bool = False,
        output_fmt: str = "NLC",
        intermediates_only: bool = False,
    ) -> tuple[torch.Tensor, list[torch.Tensor]] | list[torch.Tensor]:
        """Per-stage features, with timm's ``indices`` semantics.

        Args:
            x: the input of ``patch_embed``.
            indices: ``None`` (every stage), ``n`` (the last n stages) or a list of stage indices
                (negative from the end); returned in stage order.
            norm: apply the final ``norm`` to the last stage's output when it is taken.
            output_fmt: ``"NLC"`` tokens ``(B, H_s*W_s, C_s)`` (default), ``"NCHW"`` or ``"NHWC"`` grids.
            intermediates_only: return only the list, and run no stage after the last one taken.

        Returns:
            ``(features, intermediates)`` with ``features (B, L_last, C_last)`` after ``norm`` and,
            per taken stage ``s``, its last block's output (before the patch merging) — or the
            list alone with ``intermediates_only``.
        """
        if output_fmt not in OUTPUT_FORMATS:
            raise ConfigError(f"output_fmt must be one of {OUTPUT_FORMATS}, got {output_fmt!r}")
        take, last = feature_take_indices(len(self.stages), indices)
        stages = self.stages[: last + 1] if intermediates_only else self.stages
        x = self.patch_embed(x)
        intermediates = []
        for s, stage in enumerate(stages):
            x = stage.forward_blocks(x)
            if s in take:
                y = self.norm(x) if norm and s == len(self.stages) - 1 else x
                h, w = stage.input_resolution
                if output_fmt == "NCHW":
                    y = rearrange(y, "b (h w) c -> b c h w", h=h, w=w)
                elif output_fmt == "NHWC":
                    y = rearrange(y, "b (h w) c -> b h w c", h=h, w=w)
                intermediates.append(y)
            x = stage.downsample(x)
        if intermediates_only:
            return intermediates
        return self.norm(x), intermediates

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``patch_embed -> stages -> norm``: ``(B, L_last, C_last)`` tokens."""
        x = self.patch_embed(x)
        for stage in self.stages:
            x = stage(x)
        return self.norm(x)
