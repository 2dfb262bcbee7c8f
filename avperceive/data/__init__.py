"""avperceive.data"""

from .ave import AVE
from .avmit import AVMIT, AVMIT_CLASSES, read_avmit_embeddings
from .base import MediaDataset, SkippedSample, collate_clips, zero_missing_modality
from .folder import MediaFolder
from .kinetics_sounds import KINETICS_SOUNDS_CLASSES, KineticsSounds
from .llp import LLP, LLP_CLASSES
from .soundactions import SoundActions, clean_materials, majority_merge, union_merge
from .splits import stratified_kfold
from .vggsound import VGGSound

__all__ = [
    "AVE", "AVMIT", "AVMIT_CLASSES", "KINETICS_SOUNDS_CLASSES", "KineticsSounds", "LLP", "LLP_CLASSES", "MediaDataset",
    "MediaFolder", "SkippedSample", "SoundActions", "VGGSound", "clean_materials", "collate_clips", "majority_merge",
    "read_avmit_embeddings", "stratified_kfold", "union_merge", "zero_missing_modality",
]  # fmt: skip
