"""Building blocks, backbone-agnostic: the attention primitive, adapters, fusion, ensembles, heads,
and the correlation-learning toolkit (cross-modal attention, fusion patterns, joint spaces; the
objectives live in :mod:`avperceive.nn.losses`).

Every name below is re-exported from the module that defines it (one concept per file).
"""

from . import losses
from .adapter_bank import AdapterBank
from .adapters import DGSCTAdapter, GatedBottleneck, LAVisHAdapter, lavish_adapter_pair
from .attention import ATTN_IMPLS, Attend, AttnImpl, attend, check_attn_impl, set_attn_impl
from .cross_attention import CrossModalAttention
from .ensemble import AdapterMix, PerceptionModeMixer, ResidualGate, mix_residuals
from .fusion import EventSpecificFusion, localization_map, multi_head_loss
from .fusion_transformer import FUSION_PATTERNS, FusionBlock, FusionOutput, FusionTransformer
from .heads import AVEHead, CMBSHead, TemporalCMBSHead, ave_decision
from .joint_space import ConcatFusion, JointOutput, JointSpace, projection_head
from .latent_attention import LatentTokenAttention, latent_attention_pair
from .temporal import TemporalAttention
from .tokens import check_token_pair, check_tokens
from .weight_cache import clear_weight_cache, weight_derived

__all__ = [
    # attention.py -- the one attention primitive
    "attend", "Attend", "AttnImpl", "ATTN_IMPLS", "check_attn_impl", "set_attn_impl",
    # tokens.py -- token-shape checks
    "check_tokens", "check_token_pair",
    # adapters.py, adapter_bank.py, latent_attention.py
    "DGSCTAdapter", "LAVisHAdapter", "GatedBottleneck", "lavish_adapter_pair", "AdapterBank",
    "LatentTokenAttention", "latent_attention_pair",
    # ensemble.py
    "AdapterMix", "PerceptionModeMixer", "ResidualGate", "mix_residuals",
    # fusion.py
    "EventSpecificFusion", "localization_map", "multi_head_loss",
    # heads.py, temporal.py
    "CMBSHead", "TemporalCMBSHead", "AVEHead", "ave_decision", "TemporalAttention",
    # correlation-learning toolkit: losses/, cross_attention.py, fusion_transformer.py, joint_space.py
    "losses", "CrossModalAttention", "FUSION_PATTERNS", "FusionBlock", "FusionOutput", "FusionTransformer",
    "ConcatFusion", "JointOutput", "JointSpace", "projection_head",
    # weight_cache.py -- inference memo of weight-only tensors (window biases)
    "weight_derived", "clear_weight_cache",
]  # fmt: skip
