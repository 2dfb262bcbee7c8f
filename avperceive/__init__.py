"""avperceive: PyTorch modules for auditory-visual perception research.

The public API (see ``docs/index.md``)::

    import avperceive as avp
    clip = avp.load_clip("x.mp4", num_frames=10, size=192, sample_rate=32000)
    d = avp.describe("x.mp4")
    m = avp.create_model("dgsct-ave-tiny")
    p = avp.predict("x.mp4", model="dgsct-ave-tiny")
"""

from . import errors, hub
from .analysis.describe import DescribeFailure, Description, describe, describe_many
from .errors import CheckpointError, ConfigError, MediaError
from .inference import Prediction, predict
from .io import AVClip, load_clip
from .models import create_model, list_models, register_model

__version__ = "0.1.0"

__all__ = [
    "AVClip",
    "Description",
    "describe",
    "describe_many",
    "DescribeFailure",
    "load_clip",
    "predict",
    "Prediction",
    "CheckpointError",
    "ConfigError",
    "MediaError",
    "create_model",
    "errors",
    "hub",
    "list_models",
    "register_model",
]
