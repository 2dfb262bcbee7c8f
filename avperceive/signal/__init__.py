"""avperceive.signal: front-ends on tensors (STFT/mel, Kaldi fbank, HTS-AT/VGGish/YAMNet), onsets, envelopes.

Everything is batched torch, device- and dtype-following, and imports nothing above ``avperceive.errors``.
"""

from avperceive.signal.envelopes import block_motion, frame_novelty, luma, motion_change, motion_energy, rms
from avperceive.signal.frontends import (
    HTSATFrontend,
    KaldiFbankFrontend,
    VGGishFrontend,
    YAMNetFrontend,
    frame_examples,
    mel_features_logmel,
    vggish_mel_matrix,
)
from avperceive.signal.kaldi import kaldi_fbank, kaldi_mel_banks, kaldi_window, lavish_audio_image
from avperceive.signal.onsets import (
    onset_backtrack,
    onset_detect,
    onset_mask,
    onset_strength,
    peak_pick,
    peak_pick_defaults,
)
from avperceive.signal.spectral import (
    hann_window,
    hz_to_mel,
    mel_filterbank,
    mel_frames,
    mel_frequencies,
    mel_to_hz,
    melspectrogram,
    power_to_db,
    spectrogram_frames,
    stft_power,
)

__all__ = [
    "HTSATFrontend",
    "KaldiFbankFrontend",
    "VGGishFrontend",
    "YAMNetFrontend",
    "frame_examples",
    "hann_window",
    "hz_to_mel",
    "kaldi_fbank",
    "kaldi_mel_banks",
    "kaldi_window",
    "lavish_audio_image",
    "mel_features_logmel",
    "motion_energy",
    "luma",
    "frame_novelty",
    "block_motion",
    "motion_change",
    "onset_backtrack",
    "onset_detect",
    "onset_mask",
    "onset_strength",
    "peak_pick",
    "peak_pick_defaults",
    "rms",
    "mel_filterbank",
    "mel_frames",
    "mel_frequencies",
    "mel_to_hz",
    "melspectrogram",
    "power_to_db",
    "spectrogram_frames",
    "stft_power",
    "vggish_mel_matrix",
]
