"""avperceive.nn"""

from .adapter_bank import AdapterBank  # noqa: F401
from .adapters import DGSCTAdapter, GatedBottleneck, LAVisHAdapter, lavish_adapter_pair  # noqa: F401
from .attention import ATTN_IMPLS, Attend, AttnImpl, attend, check_attn_impl, set_attn_impl  # noqa: F401
from .ensemble import AdapterMix, PerceptionModeMixer, ResidualGate, mix_residuals  # noqa: F401
from .fusion import EventSpecificFusion, localization_map, multi_head_loss  # noqa: F401
from .heads import AVEHead, CMBSHead, ave_decision  # noqa: F401
from .latent_attention import LatentTokenAttention, latent_attention_pair  # noqa: F401
from .temporal import TemporalAttention  # noqa: F401
from .tokens import check_token_pair, check_tokens  # noqa: F401

# Correlation-learning toolkit (survey of Vilaça, Yu & Viana): cross-modal attention, fusion
# patterns, joint spaces; the objectives live in avperceive.nn.losses.
# isort: split
from . import losses  # noqa: F401
from .cross_attention import CrossModalAttention  # noqa: F401
from .fusion_transformer import FUSION_PATTERNS, FusionBlock, FusionOutput, FusionTransformer  # noqa: F401
from .joint_space import ConcatFusion, JointOutput, JointSpace, projection_head  # noqa: F401

__all__ = [
    "AdapterBank",
    "DGSCTAdapter",
    "GatedBottleneck",
    "LAVisHAdapter",
    "lavish_adapter_pair",
    "ATTN_IMPLS",
    "Attend",
    "AttnImpl",
    "attend",
    "check_attn_impl",
    "set_attn_impl",
    "AdapterMix",
    "PerceptionModeMixer",
    "ResidualGate",
    "mix_residuals",
    "EventSpecificFusion",
    "localization_map",
    "multi_head_loss",
    "AVEHead",
    "CMBSHead",
    "ave_decision",
    "LatentTokenAttention",
    "latent_attention_pair",
    "TemporalAttention",
    "check_token_pair",
    "check_tokens",
    # correlation-learning toolkit
    "losses",
    "CrossModalAttention",
    "FUSION_PATTERNS",
    "FusionBlock",
    "FusionOutput",
    "FusionTransformer",
    "ConcatFusion",
    "JointOutput",
    "JointSpace",
    "projection_head",
]
