"""Energy envelopes: audio RMS (``librosa.feature.rms``) and visual motion energy.

- RMS: ``sqrt(mean(x[frame]^2))`` per frame, frames as librosa (``center=True`` pads
  ``frame_length // 2`` zeros on both sides; ``frames = 1 + samples // hop``).
- Motion energy: the mean absolute difference of consecutive grayscale frames, the simple
  frame-differencing cue of visual motion used for auditory-visual synchrony analysis
  (cf. Chion's *synchresis*: co-occurrence of sound onsets and visual change),
  ``m[t] = mean_{h,w} |Y[t] - Y[t-1]|`` with ``m[0] = 0`` and Rec. 601 luma
  ``Y = 0.299 R + 0.587 G + 0.114 B``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange, reduce

__all__ = ["rms", "motion_energy", "LUMA_WEIGHTS"]

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
    gray = torch.einsum("...chw,c->...hw", x, weights)
    diff = (gray[..., 1:, :, :] - gray[..., :-1, :, :]).abs()
    energy = reduce(diff, "... t h w -> ... t", "mean")
    return F.pad(energy, (1, 0))
