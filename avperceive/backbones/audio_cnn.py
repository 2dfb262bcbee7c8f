"""2D CNN audio network of the event-specific fusion layers (Senocak et al., WACV 2023, §3).

The paper adapts the audio network of Afouras et al. ("Self-Supervised Learning of Audio-Visual
Objects from Video", ECCV 2020) "with kernel and stride changes" so that a 10 s log-mel of 1000
frames x 80 mel bins gives ``T = 100`` steps, one per video frame; the exact layers are not given.
This is the documented substitute: a VGG-style stack of four blocks, each

    Conv2d(3x3, pad 1) + BN + ReLU, Conv2d(3x3, pad 1) + BN + ReLU, MaxPool2d((pool_t, pool_f))

on the ``(B, 1, frames, mels)`` image (time on the first spatial axis). The default pools are
time (1, 2, 5, 1) and frequency (2, 2, 2, 2): 1000 x 80 -> 1000 x 40 -> 500 x 20 -> 100 x 10 ->
100 x 5, i.e. a time stride of 10 (one step = 10 frames = 100 ms = one video frame at 10 fps).
The remaining frequency axis is averaged, giving ``z_a (B, 100, 512)`` with channels
(64, 128, 256, 512), the width of MC3-18's features (the instant layer's dot product needs equal
widths). Pools use ``ceil_mode``, so any length works: ``T = ceil(frames / 10)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from einops import rearrange, reduce
from torch import Tensor, nn

__all__ = ["AudioCNN"]


class AudioCNN(nn.Module):
    """Log-mel ``(B, frames, mels)`` or ``(B, 1, frames, mels)`` -> per-step features ``(B, T, channels[-1])``.

    Args:
        channels: output channels of the four blocks.
        time_pools: max-pool size = stride along time per block (product = frames per step).
        freq_pools: max-pool size = stride along mel bins per block.
        in_channels: input channels (1).
    """

    def __init__(
        self,
        channels: Sequence[int] = (64, 128, 256, 512),
        time_pools: Sequence[int] = (1, 2, 5, 1),
        freq_pools: Sequence[int] = (2, 2, 2, 2),
        in_channels: int = 1,
    ):
        super().__init__()
        if not (len(channels) == len(time_pools) == len(freq_pools)):
            raise ValueError(f"channels, time_pools and freq_pools need one entry per block; got {channels}, "
                             f"{time_pools}, {freq_pools}")
        self.out_dim = int(channels[-1])
        self.frames_per_step = math.prod(time_pools)
        blocks = []
        in_ch = in_channels
        for out_ch, pool_t, pool_f in zip(channels, time_pools, freq_pools):
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
                    nn.BatchNorm2d(out_ch),
                    nn.ReLU(inplace=True),
                    nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
                    nn.BatchNorm2d(out_ch),
                    nn.ReLU(inplace=True),
                    nn.MaxPool2d((pool_t, pool_f), ceil_mode=True),
                )
            )
            in_ch = out_ch
        self.blocks = nn.Sequential(*blocks)

    def forward(self, logmel: Tensor) -> Tensor:
        """``(B, frames, mels)`` or ``(B, 1, frames, mels)`` -> ``(B, ceil(frames / frames_per_step), out_dim)``."""
        if logmel.ndim == 3:
            logmel = rearrange(logmel, "b f m -> b 1 f m")
        if logmel.ndim != 4:
            raise ValueError(f"expected a log-mel (B, frames, mels) or (B, 1, frames, mels); got {tuple(logmel.shape)}")
        return reduce(self.blocks(logmel), "b c t f -> b t c", "mean")
