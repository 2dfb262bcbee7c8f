"""Frozen feature extractors: Swin-V2 (video) and HTS-AT (audio) on one windowed skeleton, MC3-18, audio CNN.

Swin-V2 and HTS-AT share :mod:`avperceive.backbones.windowed` (window attention through
:func:`avperceive.nn.attention.attend`, blocks with ``attn_branch`` / ``mlp_branch``, stages, patch
merging, ``forward_intermediates(indices=...)``); each file keeps only what differs. Both are in
the registry under timm names (``swinv2_large_window12_192``, ``htsat_audioset``, the test
networks ``swinv2_test_tiny`` / ``htsat_test_tiny``) and load the published weights through
:func:`avperceive.hub.convert_checkpoint` (``"swinv2-timm"``, ``"htsat"``). See ``docs/backbones.md``.
"""

from .audio_cnn import AudioCNN
from .htsat import HTSAT, HTSATBlock, HTSATWindowAttention, htsat_audioset, htsat_test_tiny
from .mc3 import MC3
from .swinv2 import (
    SwinV2,
    SwinV2Block,
    SwinV2WindowAttention,
    swinv2_base_window12_192,
    swinv2_large_window12_192,
    swinv2_test_tiny,
)
from .windowed import PatchMerging, WindowAttention, WindowedBlock, WindowedStage, WindowedTransformer

__all__ = [
    "WindowAttention",
    "WindowedBlock",
    "WindowedStage",
    "WindowedTransformer",
    "PatchMerging",
    "SwinV2",
    "SwinV2Block",
    "SwinV2WindowAttention",
    "swinv2_large_window12_192",
    "swinv2_base_window12_192",
    "swinv2_test_tiny",
    "HTSAT",
    "HTSATBlock",
    "HTSATWindowAttention",
    "htsat_audioset",
    "htsat_test_tiny",
    "MC3",
    "AudioCNN",
]
