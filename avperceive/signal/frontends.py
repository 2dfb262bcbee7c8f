"""Audio front-ends of the backbones: HTS-AT (torchlibrosa), VGGish / YAMNet (``mel_features``), Kaldi fbank.

- HTS-AT (Chen et al., "HTS-AT: A Hierarchical Token-Semantic Audio Transformer", ICASSP 2022)
  feeds a torchlibrosa log-mel: periodic Hann STFT (n_fft = win 1024, hop 320 at 32 kHz,
  ``center=True`` with reflect padding), power spectrogram, 64 Slaney mels 50-14000 Hz,
  ``10*log10(max(S, 1e-10))`` (ref 1, no ``top_db``), layout ``(B, 1, frames, mels)``.
- VGGish (Hershey et al., "CNN Architectures for Large-Scale Audio Classification", ICASSP 2017)
  and YAMNet (the TF-models AudioSet classifier) share ``mel_features``: 25 ms periodic Hann
  frames with a 10 ms hop and no centring, ``|rfft(512)|`` magnitude, 64 HTK-mel triangles
  125-7500 Hz without area normalisation (DC row zeroed), ``ln(mel + offset)`` with offset
  0.01 (VGGish) or 0.001 (YAMNet), framed into 0.96 s examples (96 frames) with a 0.96 s
  (VGGish) or 0.48 s (YAMNet) hop.
- Kaldi fbank (Povey et al., "The Kaldi Speech Recognition Toolkit", 2011) as LAVisH and AST
  call it through ``torchaudio.compliance.kaldi.fbank``: see :mod:`avperceive.signal.kaldi`.

All modules take ``(B, samples)`` or ``(samples,)`` and keep their filterbanks as non-persistent
float32 buffers (a checkpoint never needs them; ``.to(device)`` moves them); windows are built
per call in the compute dtype (float64 input -> float64 window, like librosa).
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn

from avperceive.signal.kaldi import kaldi_fbank
from avperceive.signal.spectral import (
    compute_dtype,
    full_precision,
    hann_window,
    mel_filterbank,
    mel_frames,
    power_to_db,
)

__all__ = [
    "HTSATFrontend",
    "vggish_mel_matrix",
    "mel_features_logmel",
    "frame_examples",
    "VGGishFrontend",
    "YAMNetFrontend",
    "KaldiFbankFrontend",
]


def _check_wave(wave: torch.Tensor) -> tuple[torch.Tensor, bool]:
    if wave.dim() not in (1, 2):
        raise ValueError(f"expected a waveform of shape (B, samples) or (samples,), got {tuple(wave.shape)}")
    return (wave[None], True) if wave.dim() == 1 else (wave, False)


class HTSATFrontend(nn.Module):
    """HTS-AT / torchlibrosa log-mel front-end: ``(B, samples)`` -> ``(B, 1, frames, n_mels)`` in dB.

    ``frames = 1 + samples // hop_length`` (1001 for 10 s at 32 kHz). An unbatched ``(samples,)``
    input gives ``(1, frames, n_mels)``. Matches torchlibrosa's ``Spectrogram`` +
    ``LogmelFilterBank(ref=1.0, amin=1e-10, top_db=None)`` (golden g4_htsat: max abs diff
    ~2e-4 dB in float32). The filterbank equals torchlibrosa's ``logmel_extractor.melW``
    transposed; it is a non-persistent buffer, so converters drop the reference's
    ``spectrogram_extractor.*`` and ``logmel_extractor.melW`` keys.

    Example:
        >>> fe = HTSATFrontend()
        >>> fe(torch.randn(2, 320000)).shape
        torch.Size([2, 1, 1001, 64])
    """

    def __init__(
        self,
        sample_rate: int = 32000,
        n_fft: int = 1024,
        hop_length: int = 320,
        n_mels: int = 64,
        fmin: float = 50.0,
        fmax: float = 14000.0,
        pad_mode: str = "reflect",
        htk: bool = False,
        amin: float = 1e-10,
    ):
        super().__init__()
        self.sample_rate, self.n_fft, self.hop_length = sample_rate, n_fft, hop_length
        self.n_mels, self.fmin, self.fmax, self.pad_mode, self.htk, self.amin = n_mels, fmin, fmax, pad_mode, htk, amin
        self.register_buffer(
            "mel_fb", mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax, htk=htk, norm="slaney"), persistent=False
        )

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for ``num_samples`` input samples."""
        return 1 + num_samples // self.hop_length

    def _apply(self, fn, recurse: bool = True):
        """``module.to(torch.bfloat16)`` / ``.half()`` must not round the filterbank: the log-mel is computed in
        float32 (see :func:`~avperceive.signal.spectral.full_precision`), so the buffer is rebuilt in float32
        (bit-exact: the same construction) on the device it was moved to."""
        super()._apply(fn, recurse)
        if self.mel_fb.dtype not in (torch.float32, torch.float64):
            fb = mel_filterbank(self.sample_rate, self.n_fft, self.n_mels, self.fmin, self.fmax, htk=self.htk,
                                norm="slaney")
            self.mel_fb = fb.to(self.mel_fb.device)
        return self

    @full_precision
    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        x, unbatched = _check_wave(wave)
        mel = mel_frames(x, self.n_fft, self.hop_length, self.mel_fb, center=True, pad_mode=self.pad_mode)
        out = rearrange(power_to_db(mel, ref=1.0, amin=self.amin, top_db=None), "b t m -> b 1 t m")
        return out[0] if unbatched else out

    def extra_repr(self) -> str:
        return (
            f"sample_rate={self.sample_rate}, n_fft={self.n_fft}, hop_length={self.hop_length}, n_mels={self.n_mels}, "
            f"fmin={self.fmin}, fmax={self.fmax}, pad_mode={self.pad_mode!r}"
        )


def vggish_mel_matrix(
    num_mel_bins: int = 64,
    num_spectrogram_bins: int = 257,
    sample_rate: float = 16000,
    lower_edge_hertz: float = 125.0,
    upper_edge_hertz: float = 7500.0,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``mel_features.spectrogram_to_mel_matrix`` (VGGish/YAMNet): ``(num_spectrogram_bins, num_mel_bins)``.

    Bin ``k`` sits at ``k * (sr/2) / (num_spectrogram_bins - 1)`` Hz, mapped to HTK mel
    ``1127*ln(1 + f/700)``; ``num_mel_bins + 2`` edges equally spaced in mel between the edge
    frequencies; un-normalised triangles; the DC row is zeroed. Built in float64, then cast.
    """
    nyquist = sample_rate / 2.0
    if not 0.0 <= lower_edge_hertz < upper_edge_hertz <= nyquist:
        raise ValueError(f"need 0 <= lower_edge_hertz < upper_edge_hertz <= {nyquist}")

    def to_mel(f: torch.Tensor) -> torch.Tensor:
        return 1127.0 * torch.log(1.0 + f / 700.0)

    bins_hz = torch.linspace(0.0, nyquist, num_spectrogram_bins, dtype=torch.float64)
    bins_mel = to_mel(bins_hz)
    edges = torch.linspace(
        float(to_mel(torch.tensor(lower_edge_hertz, dtype=torch.float64))),
        float(to_mel(torch.tensor(upper_edge_hertz, dtype=torch.float64))),
        num_mel_bins + 2,
        dtype=torch.float64,
    )
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    lower_slope = (bins_mel[:, None] - lower[None]) / (center - lower)[None]
    upper_slope = (upper[None] - bins_mel[:, None]) / (upper - center)[None]
    weights = torch.clamp(torch.minimum(lower_slope, upper_slope), min=0.0)
    weights[0, :] = 0.0
    return weights.to(dtype)


@full_precision
def mel_features_logmel(
    wave: torch.Tensor,
    mel_matrix: torch.Tensor,
    window_length: int = 400,
    hop_length: int = 160,
    fft_length: int = 512,
    log_offset: float = 0.01,
    window: torch.Tensor | None = None,
) -> torch.Tensor:
    """``mel_features.log_mel_spectrogram``: ``(..., samples)`` -> ``(..., frames, num_mel_bins)``.

    Frames ``y[hop*t : hop*t + window_length]`` for ``t < 1 + (samples - window_length) // hop``
    (no centring), periodic Hann, ``|rfft(fft_length)|`` (magnitude), ``@ mel_matrix``,
    ``ln(. + log_offset)``.
    """
    dtype = compute_dtype(wave)
    if window is None:
        window = hann_window(window_length, periodic=True, dtype=dtype, device=wave.device)
    frames = wave.to(dtype).unfold(-1, window_length, hop_length) * window.to(dtype)
    mag = torch.fft.rfft(frames, n=fft_length).abs()
    mel = mag @ mel_matrix.to(dtype=dtype, device=wave.device)
    return torch.log(mel + log_offset)


def frame_examples(features: torch.Tensor, window_frames: int, hop_frames: int) -> torch.Tensor:
    """Cut ``(..., frames, bins)`` into ``(..., examples, window_frames, bins)`` (complete examples only).

    ``examples = 1 + (frames - window_frames) // hop_frames`` (``mel_features.frame``); fewer
    than ``window_frames`` frames give zero examples.
    """
    if features.shape[-2] < window_frames:
        return features.new_zeros(*features.shape[:-2], 0, window_frames, features.shape[-1])
    ex = features.unfold(-2, window_frames, hop_frames)
    return rearrange(ex, "... e m w -> ... e w m")


class _MelFeaturesFrontend(nn.Module):
    """Shared body of the VGGish and YAMNet front-ends."""

    log_offset: float
    example_hop_seconds: float

    def __init__(
        self,
        sample_rate: int = 16000,
        window_seconds: float = 0.025,
        hop_seconds: float = 0.010,
        num_mel_bins: int = 64,
        lower_edge_hertz: float = 125.0,
        upper_edge_hertz: float = 7500.0,
        example_window_seconds: float = 0.96,
    ):
        super().__init__()
        self.sample_rate = sample_rate
        self.window_length = int(round(sample_rate * window_seconds))
        self.hop_length = int(round(sample_rate * hop_seconds))
        self.fft_length = 2 ** int(math.ceil(math.log2(self.window_length)))
        self.example_window_frames = int(round(example_window_seconds / hop_seconds))
        self.example_hop_frames = int(round(self.example_hop_seconds / hop_seconds))
        self.num_mel_bins = num_mel_bins
        self.register_buffer(
            "mel_matrix",
            vggish_mel_matrix(num_mel_bins, self.fft_length // 2 + 1, sample_rate, lower_edge_hertz, upper_edge_hertz),
            persistent=False,
        )

    def log_mel(self, wave: torch.Tensor) -> torch.Tensor:
        """``(B, samples)`` or ``(samples,)`` -> ``(B, frames, num_mel_bins)`` or ``(frames, num_mel_bins)``."""
        x, unbatched = _check_wave(wave)
        out = mel_features_logmel(
            x, self.mel_matrix, self.window_length, self.hop_length, self.fft_length, self.log_offset
        )
        return out[0] if unbatched else out

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """``(B, samples)`` -> ``(B, examples, 96, num_mel_bins)``; ``(samples,)`` -> ``(examples, 96, bins)``."""
        return frame_examples(self.log_mel(wave), self.example_window_frames, self.example_hop_frames)


class VGGishFrontend(_MelFeaturesFrontend):
    """VGGish input: ``ln(mel + 0.01)`` examples of 0.96 s with a 0.96 s hop, ``(B, examples, 96, 64)``.

    Golden g8_frontends_16k ``vggish_examples`` is reproduced to float32 rounding.

    Example:
        >>> VGGishFrontend()(torch.randn(2, 48000)).shape
        torch.Size([2, 3, 96, 64])
    """

    log_offset = 0.01
    example_hop_seconds = 0.96


class YAMNetFrontend(_MelFeaturesFrontend):
    """YAMNet input: ``ln(mel + 0.001)`` patches of 0.96 s with a 0.48 s hop, ``(B, patches, 96, 64)``.

    With ``pad=True`` (YAMNet's ``pad_waveform``) the waveform is zero-padded at the end so that at
    least one patch exists and the patches cover every sample: the length becomes
    ``min_samples + k * patch_hop_samples`` with ``min_samples = sr * (0.96 + 0.025 - 0.010)``.

    Example:
        >>> YAMNetFrontend()(torch.randn(1, 16000)).shape
        torch.Size([1, 2, 96, 64])
    """

    log_offset = 0.001
    example_hop_seconds = 0.48

    def __init__(self, pad: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.pad = pad

    def padded_length(self, num_samples: int) -> int:
        """Length after YAMNet's ``pad_waveform``."""
        min_samples = self.example_window_frames * self.hop_length + self.window_length - self.hop_length
        hop = self.example_hop_frames * self.hop_length
        n = max(num_samples, min_samples)
        return min_samples + hop * math.ceil((n - min_samples) / hop)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if self.pad:
            extra = self.padded_length(wave.shape[-1]) - wave.shape[-1]
            wave = torch.nn.functional.pad(wave, (0, extra))
        return super().forward(wave)


class KaldiFbankFrontend(nn.Module):
    """Kaldi log-mel fbank front-end (``torchaudio.compliance.kaldi.fbank`` semantics), batched.

    ``(B, samples)`` -> ``(B, frames, num_mel_bins)``, ``(samples,)`` -> ``(frames, num_mel_bins)``.
    Defaults are LAVisH's (16 kHz, 192 bins, 25 ms window, 5.2 ms shift, hanning, htk_compat,
    no energy, dither 0); AST uses ``num_mel_bins=128, frame_shift_ms=10``. The waveform is used
    at its own scale (``[-1, 1)`` as torchaudio.load gives it). See :func:`kaldi_fbank`.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        num_mel_bins: int = 192,
        frame_length_ms: float = 25.0,
        frame_shift_ms: float = 5.2,
        window_type: str = "hanning",
        preemphasis_coefficient: float = 0.97,
        remove_dc_offset: bool = True,
        low_freq: float = 20.0,
        high_freq: float = 0.0,
    ):
        super().__init__()
        self.sample_rate, self.num_mel_bins = sample_rate, num_mel_bins
        self.frame_length_ms, self.frame_shift_ms, self.window_type = frame_length_ms, frame_shift_ms, window_type
        self.preemphasis_coefficient, self.remove_dc_offset = preemphasis_coefficient, remove_dc_offset
        self.low_freq, self.high_freq = low_freq, high_freq

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return kaldi_fbank(
            wave,
            self.sample_rate,
            num_mel_bins=self.num_mel_bins,
            frame_length_ms=self.frame_length_ms,
            frame_shift_ms=self.frame_shift_ms,
            window_type=self.window_type,
            preemphasis_coefficient=self.preemphasis_coefficient,
            remove_dc_offset=self.remove_dc_offset,
            low_freq=self.low_freq,
            high_freq=self.high_freq,
        )
