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
