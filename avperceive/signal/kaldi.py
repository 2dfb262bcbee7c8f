"""Kaldi-style log mel filterbank (fbank) features, batched, with ``torchaudio.compliance.kaldi.fbank`` semantics.

Kaldi (Povey et al., "The Kaldi Speech Recognition Toolkit", ASRU 2011) computes per frame:
remove the DC offset, pre-emphasis ``x[n] - 0.97 x[n-1]`` (the first sample uses itself),
window (``povey`` = Hann^0.85, ``hanning`` = symmetric Hann, ``hamming``, ``rectangular``,
``blackman``), zero-pad to a power of two, ``|FFT|^2``, triangular mel filters on
``1127*ln(1 + f/700)`` between ``low_freq`` and ``high_freq`` (no normalisation),
``ln(max(E, float32 eps))``. LAVisH (Lin et al., "Vision Transformers are Parameter-Efficient
Audio-Visual Learners", CVPR 2023) and AST feed these features to a ViT/Swin as an image;
:func:`lavish_audio_image` builds LAVisH's 192x192 segment images.

Only ``snip_edges=True`` framing (Kaldi's and torchaudio's default) is implemented:
``frames = 1 + (samples - window) // shift``. ``use_energy`` is not supported (LAVisH and
AST use ``use_energy=False``).
"""

from __future__ import annotations

import math

import torch
from einops import rearrange

from ..errors import ConfigError
from .spectral import full_precision

__all__ = ["kaldi_mel_banks", "kaldi_window", "kaldi_fbank", "lavish_audio_image"]

FLOAT32_EPS = float(torch.finfo(torch.float32).eps)


def _kaldi_mel(freq: torch.Tensor | float) -> torch.Tensor | float:
    if isinstance(freq, torch.Tensor):
        return 1127.0 * torch.log(1.0 + freq / 700.0)
    return 1127.0 * math.log(1.0 + freq / 700.0)


def kaldi_mel_banks(
    num_bins: int, padded_window_size: int, sample_rate: float, low_freq: float = 20.0, high_freq: float = 0.0
) -> torch.Tensor:
    """Kaldi triangular mel weights ``(num_bins, padded_window_size // 2 + 1)`` (last, Nyquist column zero).

    Computed in float32 exactly as torchaudio's ``get_mel_banks`` (``vtln_warp=1``) so that the
    features match torchaudio's to float rounding. ``high_freq <= 0`` is an offset from Nyquist.
    """
    num_fft_bins = padded_window_size // 2
    nyquist = 0.5 * sample_rate
    if high_freq <= 0.0:
        high_freq += nyquist
    if not (0.0 <= low_freq < nyquist and 0.0 < high_freq <= nyquist and low_freq < high_freq):
        raise ConfigError(f"bad mel band edges low_freq={low_freq}, high_freq={high_freq} for nyquist {nyquist}")
    fft_bin_width = sample_rate / padded_window_size
    mel_low, mel_high = _kaldi_mel(low_freq), _kaldi_mel(high_freq)
    delta = (mel_high - mel_low) / (num_bins + 1)
    b = torch.arange(num_bins, dtype=torch.float32)[:, None]
    left, center, right = mel_low + b * delta, mel_low + (b + 1.0) * delta, mel_low + (b + 2.0) * delta
    mel = _kaldi_mel(fft_bin_width * torch.arange(num_fft_bins, dtype=torch.float32))[None, :]
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    return torch.nn.functional.pad(banks, (0, 1))


def kaldi_window(
    window_type: str, size: int, blackman_coeff: float = 0.42, *, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """Kaldi's frame window ``(size,)``: ``povey``, ``hanning``, ``hamming``, ``rectangular`` or ``blackman``."""
    if window_type == "hanning":
        return torch.hann_window(size, periodic=False, dtype=dtype, device=device)
    if window_type == "povey":
        return torch.hann_window(size, periodic=False, dtype=dtype, device=device).pow(0.85)
    if window_type == "hamming":
        return torch.hamming_window(size, periodic=False, alpha=0.54, beta=0.46, dtype=dtype, device=device)
    if window_type == "rectangular":
        return torch.ones(size, dtype=dtype, device=device)
    if window_type == "blackman":
        a = 2 * math.pi / (size - 1)
        n = torch.arange(size, dtype=dtype, device=device)
        return blackman_coeff - 0.5 * torch.cos(a * n) + (0.5 - blackman_coeff) * torch.cos(2 * a * n)
    raise ConfigError(f"unknown window_type {window_type!r}: povey, hanning, hamming, rectangular or blackman")


@full_precision
def kaldi_fbank(
    wave: torch.Tensor,
    sample_rate: float = 16000,
    num_mel_bins: int = 23,
    frame_length_ms: float = 25.0,
    frame_shift_ms: float = 10.0,
    window_type: str = "povey",
    dither: float = 0.0,
    preemphasis_coefficient: float = 0.97,
    remove_dc_offset: bool = True,
    round_to_power_of_two: bool = True,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
    use_power: bool = True,
    use_log_fbank: bool = True,
    blackman_coeff: float = 0.42,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Log mel fbank as ``torchaudio.compliance.kaldi.fbank`` (htk_compat, no energy), batched.

    Args:
        wave: ``(..., samples)`` waveform at its own scale (``[-1, 1)``; Kaldi binaries use int16 scale).
        sample_rate: Hz.
        num_mel_bins: mel bands (LAVisH 192, AST 128, Kaldi default 23).
        frame_length_ms, frame_shift_ms: window and shift; samples = ``int(sr * ms / 1000)``
            (5.2 ms at 16 kHz is 83 samples).
        window_type: ``povey`` (Kaldi default), ``hanning`` (LAVisH/AST), ``hamming``, ``rectangular``, ``blackman``.
        dither: Gaussian dither amplitude added to each frame (0 = off, deterministic); ``generator`` seeds it.
        preemphasis_coefficient, remove_dc_offset, round_to_power_of_two, low_freq, high_freq,
        use_power, use_log_fbank, blackman_coeff: Kaldi's options, same defaults.

    Returns:
        ``(..., frames, num_mel_bins)`` with ``frames = 1 + (samples - window) // shift``
        (0 frames if the input is shorter than one window). float64 input stays float64,
        anything else is computed in float32.

    Example:
        >>> kaldi_fbank(torch.randn(2, 16000), 16000, num_mel_bins=192, frame_shift_ms=5.2,
        ...             window_type="hanning").shape
        torch.Size([2, 188, 192])
    """
    if wave.dim() == 0:
        raise ValueError("expected a waveform of shape (..., samples)")
    dtype = torch.float64 if wave.dtype == torch.float64 else torch.float32
    lead = wave.shape[:-1]
    x = wave.reshape(-1, wave.shape[-1]).to(dtype)
    win = int(sample_rate * frame_length_ms * 0.001)
    shift = int(sample_rate * frame_shift_ms * 0.001)
    if win < 2 or shift < 1:
        raise ConfigError(f"frame length {win} and shift {shift} samples are too small")
    padded = 2 ** int(math.ceil(math.log2(win))) if round_to_power_of_two else win
    if x.shape[-1] < win:
        return x.new_zeros(*lead, 0, num_mel_bins)
    frames = x.unfold(-1, win, shift)  # (b, t, win)
    if dither != 0.0:
        noise = torch.randn(frames.shape, generator=generator, dtype=dtype, device=frames.device)
        frames = frames + dither * noise
    if remove_dc_offset:
        frames = frames - frames.mean(dim=-1, keepdim=True)
    if preemphasis_coefficient != 0.0:
        previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
        frames = frames - preemphasis_coefficient * previous
    frames = frames * kaldi_window(window_type, win, blackman_coeff, dtype=dtype, device=frames.device)
    spectrum = torch.fft.rfft(frames, n=padded).abs()
    if use_power:
        spectrum = spectrum.pow(2.0)
    banks = kaldi_mel_banks(num_mel_bins, padded, sample_rate, low_freq, high_freq).to(dtype=dtype, device=x.device)
    mel = torch.einsum("btf,mf->btm", spectrum, banks)
    if use_log_fbank:
        mel = torch.clamp(mel, min=FLOAT32_EPS).log()
    return mel.reshape(*lead, *mel.shape[-2:])


def lavish_audio_image(
    wave: torch.Tensor,
    sample_rate: int = 16000,
    segments: int = 10,
    segment_samples: int | None = None,
    num_mel_bins: int = 192,
    target_frames: int = 192,
    frame_shift_ms: float = 5.2,
    mean: float = -4.9848,
    std: float = 3.7080,
) -> torch.Tensor:
    """LAVisH's audio input: one normalised Kaldi-fbank "image" per 1-s segment.

    The waveform is cut into ``segments`` consecutive windows of ``segment_samples`` samples
    (default one second, ``sample_rate``; a short waveform is zero-padded at the end), each
    gets :func:`kaldi_fbank` with LAVisH's options (hanning, 25 ms, ``frame_shift_ms``,
    ``num_mel_bins``, dither 0), is normalised ``(x - mean) / (2*std)`` and then zero-padded
    (or cut) to ``target_frames`` frames — 188 -> 192 at 16 kHz. LAVisH repeats the image to
    3 channels for Swin's RGB patch embedding; that is left to the model.

    Args:
        wave: ``(B, samples)`` or ``(samples,)``.

    Returns:
        ``(B, segments, target_frames, num_mel_bins)`` (time rows, mel columns), or without ``B``.

    Example:
        >>> lavish_audio_image(torch.randn(2, 160000)).shape
        torch.Size([2, 10, 192, 192])
    """
    if wave.dim() not in (1, 2):
        raise ValueError(f"expected a waveform of shape (B, samples) or (samples,), got {tuple(wave.shape)}")
    seg = sample_rate if segment_samples is None else segment_samples
    need = segments * seg
    x = wave[..., :need]
    if x.shape[-1] < need:
        x = torch.nn.functional.pad(x, (0, need - x.shape[-1]))
    x = rearrange(x, "... (s n) -> ... s n", s=segments)
    fb = kaldi_fbank(
        x, sample_rate, num_mel_bins=num_mel_bins, frame_shift_ms=frame_shift_ms, window_type="hanning", dither=0.0
    )
    fb = (fb - mean) / (2.0 * std)
    frames = fb.shape[-2]
    if frames < target_frames:
        fb = torch.nn.functional.pad(fb, (0, 0, 0, target_frames - frames))
    return fb[..., :target_frames, :]
