"""Energy envelopes: audio RMS (``librosa.feature.rms``) and visual motion energy.

- RMS: ``sqrt(mean(x[frame]^2))`` per frame, frames as librosa (``center=True`` pads
  ``frame_length // 2`` zeros on both sides; ``frames = 1 + samples // hop``).
- Motion energy: the mean absolute difference of consecutive grayscale frames, the simple
  frame-differencing cue of visual motion used for auditory-visual synchrony analysis
  (cf. Chion's *synchresis*: co-occurrence of sound onsets and visual change),
  ``m[t] = mean_{h,w} |Y[t] - Y[t-1]|`` with ``m[0] = 0`` and Rec. 601 luma
  ``Y = 0.299 R + 0.587 G + 0.114 B``.
- Visual onset envelopes, which peak once per visual event rather than at every change:

  * frame novelty ``n[t] = min_{1<=j<=K} mean_{h,w} |Y[t] - Y[t-j]|``: how unlike *every* one of
    the last ``K`` frames frame ``t`` is. A flash of ``d < K`` frames is new on its first frame
    only: its later frames repeat the first, and the frame after it repeats the frame before it,
    so the off-edge that a plain frame difference also reports is not an onset (the temporal
    novelty of Foote, "Automatic audio segmentation using a measure of audio novelty", ICME
    2000, here against a memory of recent frames instead of a self-similarity kernel);
  * motion-field change ``c[t] = || G[t+1] - G[t] ||_1``, with ``G[t]`` the histogram of
    block-matching motion vectors between frames ``t-1`` and ``t`` (blocks weighted by their frame
    difference where motion explains it, histogram blurred over the vector grid): it is
    large at the frame where objects reverse, start or stop (an impact) and near zero under
    steady motion, whose plain frame difference is high throughout (block matching as in the
    MPEG motion search; the change of the motion field is the visual "acceleration" cue of
    audio-visual impact synchrony).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange, reduce

__all__ = ["rms", "motion_energy", "luma", "frame_novelty", "block_motion", "motion_change", "LUMA_WEIGHTS"]

LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def rms(
    wave: torch.Tensor,
    frame_length: int = 2048,
    hop_length: int = 512,
    center: bool = True,
    pad_mode: str = "constant",
) -> torch.Tensor:
    """Root-mean-square energy per frame, ``librosa.feature.rms(y=...)`` without its singleton axis.

    Args:
        wave: ``(..., samples)``.
        frame_length, hop_length: in samples.
        center: pad ``frame_length // 2`` on both sides (``pad_mode`` ``"constant"`` or ``"reflect"``).

    Returns:
        ``(..., frames)``; ``frames = 1 + samples // hop`` with ``center``
        (else ``1 + (samples - frame_length) // hop``).

    Example:
        >>> rms(torch.randn(2, 22050)).shape
        torch.Size([2, 44])
    """
    if wave.dim() == 0:
        raise ValueError("expected a waveform of shape (..., samples)")
    lead = wave.shape[:-1]
    x = wave.reshape(-1, 1, wave.shape[-1])
    if not x.is_floating_point() or x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    if center:
        pad = frame_length // 2
        x = F.pad(x, (pad, pad), mode=pad_mode)
    if x.shape[-1] < frame_length:
        raise ValueError(f"need at least frame_length={frame_length} samples, got {x.shape[-1]}")
    frames = x[:, 0].unfold(-1, frame_length, hop_length)
    out = frames.pow(2).mean(dim=-1).sqrt()
    return out.reshape(*lead, out.shape[-1])


def luma(frames: torch.Tensor) -> torch.Tensor:
    """Rec. 601 luma of frames: uint8 ``(..., T, H, W, 3)`` (scaled to [0, 1]) or float ``(..., T, 3, H, W)``
    (used at its own scale) -> float ``(..., T, H, W)``."""
    if frames.dtype == torch.uint8:
        if frames.dim() < 4 or frames.shape[-1] != 3:
            raise ValueError(f"expected uint8 frames of shape (..., T, H, W, 3), got {tuple(frames.shape)}")
        x = rearrange(frames.float() / 255.0, "... t h w c -> ... t c h w")
    elif frames.is_floating_point():
        if frames.dim() < 4 or frames.shape[-3] != 3:
            raise ValueError(f"expected float frames of shape (..., T, 3, H, W), got {tuple(frames.shape)}")
        x = frames.float() if frames.dtype in (torch.float16, torch.bfloat16) else frames
    else:
        raise ValueError(f"expected uint8 (..., T, H, W, 3) or float (..., T, 3, H, W) frames, got {frames.dtype}")
    weights = torch.tensor(LUMA_WEIGHTS, dtype=x.dtype, device=x.device)
    return torch.einsum("...chw,c->...hw", x, weights)


def motion_energy(frames: torch.Tensor) -> torch.Tensor:
    """Visual motion energy: mean absolute difference of consecutive grayscale frames.

    Args:
        frames: uint8 ``(..., T, H, W, 3)`` (the ``AVClip`` layout; scaled to [0, 1] first) or
            float ``(..., T, 3, H, W)`` (model layout, used at its own scale, e.g. [0, 1] or normalised).

    Returns:
        float ``(..., T)``: ``m[0] = 0``, ``m[t] = mean_{h,w} |Y[t] - Y[t-1]|`` with Rec. 601 luma ``Y``.
        E.g. ``(T, H, W, 3)`` uint8 -> ``(T,)``; ``(B, T, 3, H, W)`` -> ``(B, T)``.

    Example:
        >>> clip = torch.randint(0, 256, (10, 32, 32, 3), dtype=torch.uint8)
        >>> motion_energy(clip).shape
        torch.Size([10])
    """
    gray = luma(frames)
    diff = (gray[..., 1:, :, :] - gray[..., :-1, :, :]).abs()
    energy = reduce(diff, "... t h w -> ... t", "mean")
    return F.pad(energy, (1, 0))


def frame_novelty(frames: torch.Tensor, memory: int = 5, block: int | None = None, radius: int = 0) -> torch.Tensor:
    """Frame novelty: how unlike frame ``t`` is to each of the last ``memory`` frames, per block.

    ``n[t] = mean_b min( min_{1<=j<=min(K,t)} D_b(Y[t], Y[t-j]), min_{0<|v|<=radius} D_b(Y[t], Y[t-1](. - v)) )``
    with ``D_b`` the mean absolute luma difference over block ``b`` (``block=None``: one block, the
    whole frame). With ``radius > 0`` a block that the previous frame displaced by up to ``radius``
    pixels matches is not new either, so steady motion and reversals are not onsets; only content
    that appears (a flash, a cut, an object coming on) is.

    Args:
        frames: uint8 ``(..., T, H, W, 3)`` or float ``(..., T, 3, H, W)`` (see :func:`luma`);
            ``radius > 0`` needs one clip ``(T, ...)``.
        memory: ``K`` >= 1; a change that reverts within ``K - 1`` frames is new only where it starts.
        block: block side in pixels (``None``: whole frame).
        radius: motion search radius in pixels (0: no motion compensation).

    Returns:
        float ``(..., T)`` with ``n[0] = 0``; ``memory=1`` (whole frame, no motion) is :func:`motion_energy`.

    Example:
        >>> video = torch.zeros(8, 16, 16, 3, dtype=torch.uint8); video[3:5] = 255  # a 2-frame flash
        >>> frame_novelty(video).tolist()  # on-edge only (motion_energy also has 1.0 at frame 5)
        [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    """
    if memory < 1:
        raise ValueError(f"memory must be >= 1, got {memory}")
    gray = luma(frames)
    t = gray.shape[-3]
    if block is not None:
        gray = gray[..., : gray.shape[-2] - gray.shape[-2] % block, : gray.shape[-1] - gray.shape[-1] % block]

    def per_block(diff: torch.Tensor) -> torch.Tensor:  # (..., t, h, w) -> (..., t, By, Bx)
        if block is None:
            return reduce(diff, "... t h w -> ... t 1 1", "mean")
        lead = diff.shape[:-2]
        pooled = F.avg_pool2d(diff.reshape(-1, 1, *diff.shape[-2:]), block)
        return pooled.reshape(*lead, *pooled.shape[-2:])

    out = None
    for j in range(1, min(memory, t - 1) + 1):
        dist = per_block((gray[..., j:, :, :] - gray[..., :-j, :, :]).abs())
        if out is None:
            out = torch.full((*dist.shape[:-3], t, *dist.shape[-2:]), math.inf, dtype=dist.dtype, device=dist.device)
        out[..., j:, :, :] = torch.minimum(out[..., j:, :, :], dist)
    if out is None:
        return torch.zeros(*gray.shape[:-3], t, dtype=gray.dtype, device=gray.device)
    if radius > 0:
        if gray.dim() != 3:
            raise ValueError("motion-compensated novelty (radius > 0) takes one clip of frames (T, ...)")
        best, _, _, _ = _block_match(gray, block or min(gray.shape[-2:]), radius)
        out[1:] = torch.minimum(out[1:], best)
    out[..., :1, :, :] = 0.0
    return reduce(out, "... t by bx -> ... t", "mean")


def _block_match(gray: torch.Tensor, block: int, radius: int):
    """Exhaustive block matching of ``gray`` ``(T, H, W)`` (H, W multiples of ``block``) frame t-1 -> t.

    Returns ``(best, index, still, texture)``: ``(T-1, By, Bx)`` best mean absolute difference, the index
    of its displacement in :func:`_offsets`, the difference without displacement, and the mean absolute
    deviation of the frame-t block around its mean (how much structure a match can lock onto).
    """
    h, w = gray.shape[-2:]
    prev, cur = gray[:-1], gray[1:]
    padded = F.pad(prev[:, None], (radius, radius, radius, radius), mode="replicate")[:, 0]
    offsets = _offsets(radius)
    # tie-break towards small displacements: a penalty far below any real difference (1e-6 of full scale)
    cost = torch.stack([
        F.avg_pool2d((cur - padded[:, radius - dy : radius - dy + h, radius - dx : radius - dx + w]).abs()[:, None],
                     block)[:, 0] + 1e-6 * (dy * dy + dx * dx)
        for dy, dx in offsets
    ], dim=1)  # (T-1, V, By, Bx)
    best, index = cost.min(dim=1)
    mean = F.interpolate(F.avg_pool2d(cur[:, None], block), scale_factor=block, mode="nearest")[:, 0]
    texture = F.avg_pool2d((cur - mean).abs()[:, None], block)[:, 0]
    return best, index, cost[:, offsets.index((0, 0))], texture


def _offsets(radius: int) -> list[tuple[int, int]]:
    return [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)]


def block_motion(frames: torch.Tensor, block: int = 8, radius: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Block-matching motion between consecutive frames (exhaustive search, sum of absolute differences).

    For each ``block x block`` block of frame ``t`` the displacement ``v`` in ``[-radius, radius]^2``
    minimising ``mean |Y_t(x) - Y_{t-1}(x - v)|`` (edge pixels replicated; ties go to the smallest
    ``|v|``). The block's weight is its frame difference ``SAD(0)`` where the motion explains it (the
    match at least halves it, ``SAD(v) <= SAD(0) / 2``, and the block has structure to match: its mean
    absolute deviation is at least ``SAD(0) / 4``, so a uniform block left behind by a vanishing
    object is not "moved"), else 0: uniform regions, flashes and noise get weight ~0.

    Args:
        frames: uint8 ``(T, H, W, 3)`` or float ``(T, 3, H, W)`` (see :func:`luma`); ``H, W >= block``.

    Returns:
        ``(vectors, weights)``: int64 ``(T, By, Bx, 2)`` displacements ``(dy, dx)`` and float
        ``(T, By, Bx)`` weights, ``By = H // block``, ``Bx = W // block``; entry ``t`` is the motion
        from frame ``t-1`` to ``t`` (entry 0 is zero).
    """
    gray = luma(frames)
    if gray.dim() != 3:
        raise ValueError(f"expected one clip of frames (T, H, W, 3) or (T, 3, H, W), got {tuple(frames.shape)}")
    h, w = gray.shape[-2:]
    if h < block or w < block:
        raise ValueError(f"frames of {h}x{w} are smaller than one {block}x{block} block")
    gray = gray[:, : h - h % block, : w - w % block]
    best, index, still, texture = _block_match(gray, block, radius)
    explained = (best <= 0.5 * still) & (texture >= 0.25 * still)
    weights = torch.where(explained, still, torch.zeros_like(still))
    table = torch.tensor(_offsets(radius), dtype=torch.int64, device=gray.device)
    vectors = table[index]  # (T-1, By, Bx, 2)
    vectors = torch.cat([torch.zeros_like(vectors[:1]), vectors])
    weights = torch.cat([torch.zeros_like(weights[:1]), weights])
    return vectors, weights


def motion_change(frames: torch.Tensor, block: int = 8, radius: int = 4, sigma: float = 1.0) -> torch.Tensor:
    """Motion-field change per frame, ``c[t] = || G[t+1] - G[t] ||_1`` (see the module docstring).

    ``G[t]`` is the histogram of :func:`block_motion` vectors from frame ``t-1`` to ``t`` over the
    ``(2 radius + 1)^2`` displacement grid, each block adding its weight, blurred by a Gaussian of
    ``sigma`` pixels and divided by the number of blocks (so it is in the units of
    :func:`motion_energy`). A reversal at frame ``t`` (the frame of the turning point) moves the
    whole mass: ``c[t]`` ~ twice the motion energy; a start or a stop after frame ``t`` ~ the motion
    energy; steady motion ~0.

    Returns:
        float ``(T,)``, ``c[0] = c[T-1] = 0``.
    """
    vectors, weights = block_motion(frames, block, radius)
    t = vectors.shape[0]
    side = 2 * radius + 1
    flat = (vectors[..., 0] + radius) * side + (vectors[..., 1] + radius)  # (T, By, Bx)
    hist = torch.zeros(t, side * side, dtype=weights.dtype, device=weights.device)
    hist.scatter_add_(1, flat.reshape(t, -1), weights.reshape(t, -1))
    hist = hist / flat[0].numel()
    if sigma > 0:
        half = max(1, int(math.ceil(3 * sigma)))
        x = torch.arange(-half, half + 1, dtype=hist.dtype, device=hist.device)
        g = torch.exp(-0.5 * (x / sigma) ** 2)
        g = g / g.sum()
        grid = rearrange(hist, "t (y x) -> t 1 y x", y=side)
        grid = F.conv2d(F.pad(grid, (half, half, half, half)), (g[:, None] * g[None, :])[None, None])
        hist = rearrange(grid, "t 1 y x -> t (y x)")
    change = torch.zeros(t, dtype=hist.dtype, device=hist.device)
    if t >= 3:
        change[1:-1] = (hist[2:] - hist[1:-1]).abs().sum(dim=-1)
    return change
