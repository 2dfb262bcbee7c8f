"""avperceive.nn"""

from .heads import AVEHead, CMBSHead, ave_decision  # noqa: F401
from .temporal import TemporalAttention  # noqa: F401
from .latent_attention import LatentTokenAttention  # noqa: F401
from .adapters import DGSCTAdapter, GatedBottleneck, LAVisHAdapter  # noqa: F401
