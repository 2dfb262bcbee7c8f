"""Shifted-window helpers shared by Swin-V2 and HTS-AT (Liu et al., "Swin Transformer", ICCV 2021, §3.2).

Window partition / merge (Swin eq. 1-2 regime: attention inside non-overlapping ``wh x ww``
windows), the cyclic-shift attention mask of the shifted configuration, the relative-position
index ``B[i, j]`` of Swin-V1 (eq. 4), the log-spaced relative coordinates of Swin-V2's
continuous position bias (Liu et al., "Swin Transformer V2", CVPR 2022, eq. 3-4), the 2x2
patch-merging gather, and the rule that clamps a window to a small grid.

Everything here is a pure function of shapes, so the models compute these tables themselves
(non-persistent buffers) and the checkpoint converters only check the stored copies against them.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange

__all__ = [
    "window_partition",
    "window_merge",
    "window_and_shift",
    "shifted_window_mask",
    "relative_position_index",
    "swinv2_relative_coords_table",
    "merge_patches_2x2",
    "MASK_VALUE",
]

MASK_VALUE = -100.0
"""Logit added between tokens of different shift regions (the reference's constant)."""


def window_and_shift(
    resolution: tuple[int, int], window: tuple[int, int], shift: tuple[int, int]
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Clamp a window to the grid: a grid no larger than the window uses window = grid and no shift.

    Args:
        resolution: token grid ``(H, W)``.
        window: requested window ``(wh, ww)``.
        shift: requested shift ``(sh, sw)``.

    Returns:
        ``(window, shift)`` actually used by the block.
    """
    win = tuple(r if r <= w else w for r, w in zip(resolution, window))
    sft = tuple(0 if r <= w else s for r, w, s in zip(resolution, win, shift))
    return win, sft  # type: ignore[return-value]


def window_partition(x: torch.Tensor, window: tuple[int, int]) -> torch.Tensor:
    """Cut a token grid into windows.

    Args:
        x: ``(B, H, W, C)``.
        window: ``(wh, ww)``; ``H`` and ``W`` must be multiples.

    Returns:
        ``(B * nW, wh * ww, C)``, windows in row-major order per image, tokens row-major per window.
    """
    b, h, w, c = x.shape
    wh, ww = window
    if h % wh or w % ww:
        raise ValueError(
            f"window_partition: expected (B, H, W, C) with H % {wh} == 0 and W % {ww} == 0, got {tuple(x.shape)}"
        )
    return rearrange(x, "b (nh wh) (nw ww) c -> (b nh nw) (wh ww) c", wh=wh, ww=ww)


def window_merge(windows: torch.Tensor, window: tuple[int, int], height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: ``(B * nW, wh * ww, C)`` -> ``(B, H, W, C)``."""
    wh, ww = window
    return rearrange(
        windows, "(b nh nw) (wh ww) c -> b (nh wh) (nw ww) c", nh=height // wh, nw=width // ww, wh=wh, ww=ww
    )


def shifted_window_mask(
    resolution: tuple[int, int], window: tuple[int, int], shift: tuple[int, int], device=None
) -> torch.Tensor | None:
    """Attention mask of the shifted-window configuration (Swin §3.2, "efficient batch computation").

    The grid is labelled with up to 9 regions (rows and columns split at ``H - wh`` and
    ``H - sh``); tokens of one window may attend to each other only if they share a region.

    Args:
        resolution: ``(H, W)``.
        window: ``(wh, ww)``.
        shift: ``(sh, sw)``; all-zero means no mask.
        device: where to build it.

    Returns:
        ``(nW, wh * ww, wh * ww)`` float tensor of ``0`` / ``-100``, or ``None`` when not shifted.
    """
    if not any(shift):
        return None
    h, w = resolution
    labels = torch.zeros(1, h, w, 1, device=device)
    count = 0
    for hs in (slice(0, -window[0]), slice(-window[0], -shift[0]), slice(-shift[0], None)):
        for ws in (slice(0, -window[1]), slice(-window[1], -shift[1]), slice(-shift[1], None)):
            labels[:, hs, ws, :] = count
            count += 1
    lab = window_partition(labels, window)[..., 0]  # (nW, N)
    same = lab[:, None, :] == lab[:, :, None]
    return torch.zeros(same.shape, device=device).masked_fill(~same, MASK_VALUE)


def relative_position_index(window: tuple[int, int], device=None) -> torch.Tensor:
    """Index into a ``(2wh-1)(2ww-1)`` table for every token pair of a window (Swin-V1 eq. 4).

    Returns:
        ``(N, N)`` int64 with ``index[i, j] = (dy + wh - 1) * (2ww - 1) + (dx + ww - 1)``,
        ``dy, dx`` = position of token ``i`` minus that of token ``j``.
    """
    wh, ww = window
    coords = torch.stack(
        torch.meshgrid(torch.arange(wh, device=device), torch.arange(ww, device=device), indexing="ij")
    )
    coords = rearrange(coords, "two h w -> two (h w)")
    rel = rearrange(coords[:, :, None] - coords[:, None, :], "two i j -> i j two")
    return (rel[..., 0] + wh - 1) * (2 * ww - 1) + (rel[..., 1] + ww - 1)


def swinv2_relative_coords_table(
    window: tuple[int, int], pretrained_window: tuple[int, int] = (0, 0), device=None
) -> torch.Tensor:
    """Log-spaced relative coordinates fed to Swin-V2's CPB MLP (Swin-V2 eq. 4).

    ``t = 8 * d / (w - 1)`` (``w`` = the pretrained window when given, else the block's window),
    then ``sign(t) * log2(|t| + 1) / log2(8)``.

    Returns:
        ``(1, 2wh - 1, 2ww - 1, 2)`` float32.
    """
    norm = pretrained_window if pretrained_window[0] > 0 else window
    hs = torch.arange(-(window[0] - 1), window[0], dtype=torch.float32, device=device)
    ws = torch.arange(-(window[1] - 1), window[1], dtype=torch.float32, device=device)
    table = torch.stack(torch.meshgrid(hs, ws, indexing="ij"), dim=-1)[None]
    table[..., 0] /= max(norm[0] - 1, 1)
    table[..., 1] /= max(norm[1] - 1, 1)
    table = table * 8
    return torch.sign(table) * torch.log2(table.abs() + 1.0) / math.log2(8)


def merge_patches_2x2(x: torch.Tensor) -> torch.Tensor:
    """Gather each 2x2 neighbourhood into channels, in the reference order (0,0),(1,0),(0,1),(1,1) (row, col).

    Args:
        x: ``(B, H, W, C)`` with even ``H`` and ``W``.

    Returns:
        ``(B, H/2, W/2, 4C)``.
    """
    b, h, w, c = x.shape
    if h % 2 or w % 2:
        raise ValueError(f"patch merging: expected (B, H, W, C) with even H and W, got {tuple(x.shape)}")
    return rearrange(x, "b (h dh) (w dw) c -> b h w (dw dh c)", dh=2, dw=2)
