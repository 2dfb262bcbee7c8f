"""Frozen feature extractors: Swin-V2 (video) and HTS-AT (audio), in plain PyTorch.

Both load the published weights through :func:`avperceive.hub.convert_checkpoint`
(``"swinv2-timm"``, ``"htsat"``) and expose ``stages[s].blocks[b]`` with separate
``attn_branch`` / ``mlp_branch`` sub-layers, so adapter models can step through them.
See ``docs/backbones.md``.
"""

from .audio_cnn import AudioCNN
from .htsat import HTSAT, HTSAT_PRESETS, HTSATBlock, HTSATStage, htsat_audioset, htsat_test_tiny
from .mc3 import MC3
from .swinv2 import (
    SWINV2_PRESETS,
    SwinV2,
    SwinV2Block,
    SwinV2Stage,
    swinv2_base_window12_192,
    swinv2_large_window12_192,
    swinv2_test_tiny,
)

__all__ = [
    "SwinV2",
    "SwinV2Block",
    "SwinV2Stage",
    "SWINV2_PRESETS",
    "swinv2_large_window12_192",
    "swinv2_base_window12_192",
    "swinv2_test_tiny",
    "HTSAT",
    "HTSATBlock",
    "HTSATStage",
    "HTSAT_PRESETS",
    "htsat_audioset",
    "htsat_test_tiny",
    "MC3",
    "AudioCNN",
]
