"""avperceive.io: decoding media into :class:`AVClip` (PyAV for containers, soundfile for audio
files) and writing clips back (H.264 + AAC or PCM)."""

from .clip import AVClip, ClipSegments, zero_missing_modality, zero_modality
from .load import MEDIA_SUFFIXES, load_clip, probe
from .write import write_clip

__all__ = [
    "AVClip", "ClipSegments", "load_clip", "probe", "write_clip", "zero_missing_modality", "zero_modality",
    "MEDIA_SUFFIXES",
]  # fmt: skip
