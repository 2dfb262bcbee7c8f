"""MC3-18: mixed 3D/2D convolution ResNet-18 (Tran et al., "A Closer Look at Spatiotemporal
Convolutions for Action Recognition", CVPR 2018), the video network of the event-specific
fusion layers (Senocak et al., WACV 2023, §3).

The module tree and parameter names follow ``torchvision.models.video.mc3_18`` exactly (without
its Kinetics ``fc`` head), so the Kinetics-400 weights load after
``convert_checkpoint("mc3-torchvision", state_dict)``:

* ``stem``: Conv3d(3, 64, (3, 7, 7), stride (1, 2, 2), padding (1, 3, 3)) + BN + ReLU;
* ``layer1``: two BasicBlocks of full 3D convolutions (3x3x3, stride 1);
* ``layer2``-``layer4``: two BasicBlocks each of spatial-only convolutions (1x3x3; the first
  block strides (1, 2, 2) and has a 1x1x1 ``downsample``), widths 128, 256, 512.

No layer strides in time (this holds for torchvision's MC3-18 too), so ``T`` frames give ``T``
feature steps: 100 frames of 112x112 give ``(B, 512, 100, 7, 7)``, the last conv map ``V_t`` of
the paper's localisation, and ``z_v = mean over 7x7`` of shape ``(B, 100, 512)``.
"""

from __future__ import annotations

from collections.abc import Sequence

from einops import rearrange, reduce
from torch import Tensor, nn

__all__ = ["MC3", "BasicBlock3d"]


def _conv(in_ch: int, out_ch: int, *, temporal: bool, stride: int = 1) -> nn.Conv3d:
    if temporal:  # torchvision Conv3DSimple
        return nn.Conv3d(in_ch, out_ch, (3, 3, 3), stride=stride, padding=1, bias=False)
    # torchvision Conv3DNoTemporal
    return nn.Conv3d(in_ch, out_ch, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False)


class BasicBlock3d(nn.Module):
    """ResNet basic block with torchvision's names: ``conv1 = [conv, bn, relu]``, ``conv2 = [conv, bn]``."""

    def __init__(self, in_ch: int, out_ch: int, *, temporal: bool, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Sequential(
            _conv(in_ch, out_ch, temporal=temporal, stride=stride), nn.BatchNorm3d(out_ch), nn.ReLU(inplace=True)
        )
        self.conv2 = nn.Sequential(_conv(out_ch, out_ch, temporal=temporal), nn.BatchNorm3d(out_ch))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            # torchvision: Conv3DNoTemporal.get_downsample_stride(s) = (1, s, s); Conv3DSimple: (s, s, s)
            ds_stride = (stride, stride, stride) if temporal else (1, stride, stride)
            self.downsample = nn.Sequential(
                nn.Conv3d(in_ch, out_ch, kernel_size=1, stride=ds_stride, bias=False), nn.BatchNorm3d(out_ch)
            )

    def forward(self, x: Tensor) -> Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + residual)


class MC3(nn.Module):
    """MC3-18 feature extractor with no temporal stride.

    Args:
        widths: channels of ``layer1``..``layer4`` (MC3-18: 64, 128, 256, 512); the stem outputs ``widths[0]``.
        blocks: BasicBlocks per layer (MC3-18: 2, 2, 2, 2).
        in_channels: input channels (3).

    Input ``(B, C, T, H, W)`` (the Conv3d layout). Spatial stride 16: 112x112 -> 7x7.
    """

    def __init__(
        self, widths: Sequence[int] = (64, 128, 256, 512), blocks: Sequence[int] = (2, 2, 2, 2), in_channels: int = 3
    ):
        super().__init__()
        if len(widths) != 4 or len(blocks) != 4:
            raise ValueError(f"widths and blocks need 4 entries (layer1..layer4); got {widths}, {blocks}")
        self.widths, self.blocks = tuple(widths), tuple(blocks)
        self.out_dim = self.widths[-1]
        self.stem = nn.Sequential(
            nn.Conv3d(in_channels, widths[0], (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False),
            nn.BatchNorm3d(widths[0]),
            nn.ReLU(inplace=True),
        )
        in_ch = widths[0]
        for i, (width, count) in enumerate(zip(widths, blocks)):
            temporal, stride = i == 0, 1 if i == 0 else 2
            layer = [BasicBlock3d(in_ch, width, temporal=temporal, stride=stride)]
            layer += [BasicBlock3d(width, width, temporal=temporal) for _ in range(count - 1)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*layer))
            in_ch = width
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision VideoResNet._initialize_weights
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, video: Tensor) -> Tensor:
        """Last conv map: ``(B, C, T, H, W)`` -> ``(B, out_dim, T, H/16, W/16)``."""
        if video.ndim != 5:
            raise ValueError(f"expected video (B, C, T, H, W); got {tuple(video.shape)}")
        x = self.stem(video)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, video: Tensor) -> Tensor:
        """Per-step features ``z_v``: ``(B, C, T, H, W)`` -> ``(B, T, out_dim)`` (spatial mean of the last map)."""
        return reduce(self.forward_features(video), "b d t h w -> b t d", "mean")

    @staticmethod
    def map_to_steps(feature_map: Tensor) -> Tensor:
        """``(B, D, T, h, w)`` conv map -> ``(B, T, D, h, w)`` (the layout of ``localization_map``)."""
        return rearrange(feature_map, "b d t h w -> b t d h w")
