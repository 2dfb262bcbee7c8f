"""Short-time Fourier transform, mel filterbanks and decibel scaling on batched torch tensors.

Implements the definitions of librosa 0.11 (McFee et al., "librosa: Audio and Music Signal
Analysis in Python", SciPy 2015): ``librosa.stft`` / ``librosa.feature.melspectrogram``
(power spectrogram ``|STFT|^p``), ``librosa.filters.mel`` (Slaney's Auditory Toolbox mel scale
or the HTK scale ``2595*log10(1 + f/700)``, triangular filters with optional Slaney area
normalisation ``2 / (f_{i+2} - f_i)``) and ``librosa.power_to_db``
(``10*log10(max(S, amin)) - 10*log10(max(amin, ref))``, optionally clipped at ``max - top_db``).

Every function takes waveforms of shape ``(..., samples)`` (unbatched ``(samples,)`` or batched
``(B, samples)``); the window, padding and filterbank follow the input's device and dtype.
Half-precision inputs are computed in float32 (FFTs need it) and returned in float32.
Filterbanks are built in float64 on the CPU, like librosa, then cast.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable
from typing import TypeVar

import torch
import torch.nn.functional as F
from einops import rearrange, repeat

from ..errors import ConfigError

__all__ = [
    "hz_to_mel",
    "mel_to_hz",
    "mel_frequencies",
    "mel_filterbank",
    "hann_window",
    "stft_power",
    "spectrogram_frames",
    "mel_frames",
    "melspectrogram",
    "power_to_db",
    "compute_dtype",
    "full_precision",
]

_F = TypeVar("_F", bound=Callable)


def _autocast_off(device: torch.device) -> contextlib.AbstractContextManager:
    try:
        return torch.autocast(device_type=device.type, enabled=False)
    except RuntimeError:  # a device type without autocast support
        return contextlib.nullcontext()


def full_precision(fn: _F) -> _F:
    """Run ``fn`` with autocast disabled for the device of its first tensor argument.

    Spectral front-ends must not be cast to bf16/fp16 by an enclosing ``torch.autocast``: the
    FFT needs float32 and dB values lose ~0.3 dB in bf16. Outputs stay float32 under autocast.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        first = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None)
        if first is None:
            return fn(*args, **kwargs)
        with _autocast_off(first.device):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype the spectral code runs in for input ``x``: float64 stays, everything else is float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def hz_to_mel(freqs: torch.Tensor, htk: bool = False) -> torch.Tensor:
    """Frequency in Hz -> mel, as ``librosa.hz_to_mel``.

    ``htk=True``: ``2595*log10(1 + f/700)``. ``htk=False`` (Slaney): linear ``3f/200`` below 1 kHz,
    logarithmic above (``15 + 27*ln(f/1000)/ln(6.4)``). Any shape in, same shape out.
    """
    freqs = torch.as_tensor(freqs, dtype=torch.float64)
    if htk:
        return 2595.0 * torch.log10(1.0 + freqs / 700.0)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    linear = freqs / f_sp
    log_part = min_log_mel + torch.log(torch.clamp(freqs, min=min_log_hz) / min_log_hz) / logstep
    return torch.where(freqs >= min_log_hz, log_part, linear)


def mel_to_hz(mels: torch.Tensor, htk: bool = False) -> torch.Tensor:
    """Mel -> frequency in Hz, the inverse of :func:`hz_to_mel` (``librosa.mel_to_hz``)."""
    mels = torch.as_tensor(mels, dtype=torch.float64)
    if htk:
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    linear = f_sp * mels
    log_part = min_log_hz * torch.exp(logstep * (mels - min_log_mel))
    return torch.where(mels >= min_log_mel, log_part, linear)


def mel_frequencies(n_mels: int, fmin: float, fmax: float, htk: bool = False) -> torch.Tensor:
    """``n_mels`` frequencies (Hz, float64) equally spaced on the mel scale from ``fmin`` to ``fmax``."""
    lo, hi = hz_to_mel(torch.tensor(float(fmin)), htk), hz_to_mel(torch.tensor(float(fmax)), htk)
    return mel_to_hz(torch.linspace(float(lo), float(hi), n_mels, dtype=torch.float64), htk)


def mel_filterbank(
    sample_rate: float,
    n_fft: int,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
    norm: str | float | None = "slaney",
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Triangular mel filterbank, ``librosa.filters.mel``: shape ``(n_mels, 1 + n_fft // 2)``.

    Args:
        sample_rate: sampling rate in Hz.
        n_fft: FFT size; the filters cover the ``1 + n_fft//2`` bins at ``k * sr / n_fft`` Hz.
        n_mels: number of bands.
        fmin, fmax: band edges in Hz (``fmax=None`` is ``sr/2``).
        htk: HTK mel scale instead of Slaney's.
        norm: ``"slaney"`` (divide each triangle by half its bandwidth in Hz, constant energy per
            channel), ``None`` (peak 1), or a number ``p`` (unit L-p norm per filter, as
            ``librosa.util.normalize``; ``inf`` for the max norm).
        dtype, device: of the returned tensor (built in float64, like librosa, then cast).
    """
    if fmax is None:
        fmax = float(sample_rate) / 2
    norm_key = norm if norm is None or isinstance(norm, str) else float(norm)
    args = (float(sample_rate), int(n_fft), int(n_mels), float(fmin), float(fmax), bool(htk), norm_key)
    return _mel_filterbank_f64(*args).to(dtype=dtype, device=device, copy=True)  # a copy: the cache stays intact


@functools.lru_cache(maxsize=32)
def _mel_filterbank_f64(
    sample_rate: float, n_fft: int, n_mels: int, fmin: float, fmax: float, htk: bool, norm: str | float | None
) -> torch.Tensor:
    fftfreqs = torch.linspace(0, float(sample_rate) / 2, 1 + n_fft // 2, dtype=torch.float64)
    mel_f = mel_frequencies(n_mels + 2, fmin, fmax, htk)
    fdiff = torch.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = torch.clamp(torch.minimum(lower, upper), min=0.0)
    if norm == "slaney":
        enorm = 2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels])
        weights = weights * enorm[:, None]
    elif norm is not None:
        p = float(norm)
        if p == math.inf:
            length = weights.abs().amax(dim=-1, keepdim=True)
        else:
            length = weights.abs().pow(p).sum(dim=-1, keepdim=True).pow(1.0 / p)
        tiny = torch.finfo(torch.float64).tiny
        weights = torch.where(length < tiny, weights, weights / length.clamp(min=tiny))
    return weights


def hann_window(
    length: int, periodic: bool = True, *, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """Hann window ``0.5 - 0.5*cos(2*pi*n/N)`` (periodic: ``N = length``; symmetric: ``N = length - 1``)."""
    return torch.hann_window(length, periodic=periodic, dtype=dtype, device=device)


def _fold_leading(wave: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
    """``(..., samples)`` -> ``(batch, samples)`` plus the leading shape to restore."""
    if wave.dim() == 0:
        raise ValueError(f"expected a waveform of shape (..., samples), got a scalar of shape {tuple(wave.shape)}")
    lead = tuple(wave.shape[:-1])
    return wave.reshape(-1, wave.shape[-1]), lead


def _frames_and_window(
    wave: torch.Tensor, n_fft: int, hop_length: int, win_length: int | None, window: torch.Tensor | None,
    center: bool, pad_mode: str,
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]:
    """Frame view ``(b, frames, n_fft)`` of the (padded) waveform, the ``(n_fft,)`` window and the leading shape."""
    x, lead = _fold_leading(wave)
    dtype = compute_dtype(x)
    x = x.to(dtype)
    win_length = n_fft if win_length is None else win_length
    if win_length > n_fft:
        raise ConfigError(f"win_length={win_length} must be <= n_fft={n_fft}")
    if window is None:
        window = hann_window(win_length, dtype=dtype, device=x.device)
    window = window.to(dtype=dtype, device=x.device)
    if window.shape != (win_length,):
        raise ValueError(f"expected a window of shape ({win_length},), got {tuple(window.shape)}")
    if win_length < n_fft:  # centred in the FFT frame, as librosa.util.pad_center
        left = (n_fft - win_length) // 2
        window = F.pad(window, (left, n_fft - win_length - left))
    if center:
        pad = n_fft // 2
        if pad_mode == "reflect" and x.shape[-1] <= pad:
            raise ValueError(f"reflect padding needs more than {pad} samples, got {x.shape[-1]}")
        if pad_mode == "constant":  # cat writes each sample once (F.pad fills the whole output first)
            zeros = x.new_zeros(x.shape[0], pad)
            x = torch.cat([zeros, x, zeros], dim=-1)
        else:
            x = rearrange(F.pad(rearrange(x, "b n -> b 1 n"), (pad, pad), mode=pad_mode), "b 1 n -> b n")
    elif x.shape[-1] < n_fft:
        raise ValueError(f"expected at least n_fft={n_fft} samples with center=False, got {x.shape[-1]}")
    return x.unfold(-1, n_fft, hop_length), window, lead


def _power(frames: torch.Tensor, window: torch.Tensor, power: float) -> torch.Tensor:
    spec = torch.fft.rfft(frames * window)
    mag = spec.real * spec.real
    mag = mag.addcmul(spec.imag, spec.imag)
    return mag if power == 2.0 else mag.pow(power / 2.0)


# On CPU the frames are transformed in blocks of about this many samples, so that the frames,
# their spectrum and the power stay in cache (about 1.8x faster than one pass over a 60 s clip).
_CPU_BLOCK_SAMPLES = 1 << 20


@full_precision
def spectrogram_frames(
    wave: torch.Tensor,
    n_fft: int,
    hop_length: int,
    win_length: int | None = None,
    window: torch.Tensor | None = None,
    center: bool = True,
    pad_mode: str = "constant",
    power: float = 2.0,
) -> torch.Tensor:
    """Magnitude spectrogram ``|STFT|^power`` in frame-major layout ``(..., frames, 1 + n_fft//2)``.

    Same numbers as :func:`stft_power` (which is this, transposed); frames are cut with
    ``unfold`` and transformed with one batched ``rfft``.
    """
    frames, window, lead = _frames_and_window(wave, n_fft, hop_length, win_length, window, center, pad_mode)
    mag = _power(frames, window, power)
    return mag.reshape(*lead, *mag.shape[-2:])


def _band_groups(basis: torch.Tensor, group: int = 16) -> list[tuple[int, int, int, int]] | None:
    """For a banded ``(bins, n_mels)`` basis: ``(m0, m1, lo, hi)`` per group of ``group`` filters, such that
    filters ``m0:m1`` are zero outside bins ``lo:hi``; ``None`` when banding would not save work."""
    if basis.device.type != "cpu" or basis.shape[1] < 2 * group:
        return None
    nz = basis != 0
    out, cost = [], 0
    for m0 in range(0, basis.shape[1], group):
        m1 = min(m0 + group, basis.shape[1])
        rows = torch.nonzero(nz[:, m0:m1].any(dim=1))[:, 0]
        lo, hi = (int(rows[0]), int(rows[-1]) + 1) if len(rows) else (0, 0)
        out.append((m0, m1, lo, hi))
        cost += (hi - lo) * (m1 - m0)
    return out if 2 * cost < basis.numel() else None


@full_precision
def mel_frames(
    wave: torch.Tensor,
    n_fft: int,
    hop_length: int,
    mel_basis: torch.Tensor,
    win_length: int | None = None,
    window: torch.Tensor | None = None,
    center: bool = True,
    pad_mode: str = "constant",
    power: float = 2.0,
) -> torch.Tensor:
    """Mel energies in frame-major layout: ``(..., samples)`` -> ``(..., frames, n_mels)``.

    ``mel_basis`` is ``(n_mels, 1 + n_fft//2)``. Equal to ``spectrogram_frames(...) @ mel_basis.T``;
    on CPU it runs over blocks of frames (cache-friendly, same result), elsewhere in one pass.
    """
    frames, window, lead = _frames_and_window(wave, n_fft, hop_length, win_length, window, center, pad_mode)
    basis_t = mel_basis.to(dtype=frames.dtype, device=frames.device).T
    b, t = frames.shape[:2]
    on_cpu = frames.device.type == "cpu"
    block = max(16, _CPU_BLOCK_SAMPLES // n_fft) if on_cpu else t
    if power == 2.0:
        # |X|^2 @ W == [re^2, im^2 interleaved] @ [W rows repeated twice]: one contiguous square and GEMMs,
        # no strided real/imag passes. Mel filters are banded, so groups of filters only multiply the
        # bins they cover (several times fewer multiply-adds than the dense product).
        basis_2 = repeat(basis_t, "f m -> (f two) m", two=2)
        groups = _band_groups(basis_2)

        def block_mel(fr: torch.Tensor) -> torch.Tensor:
            ri = rearrange(torch.view_as_real(torch.fft.rfft(fr * window)), "... f two -> ... (f two)").square_()
            if groups is None:
                return ri @ basis_2
            return torch.cat([ri[..., lo:hi] @ basis_2[lo:hi, m0:m1] for m0, m1, lo, hi in groups], dim=-1)

    else:

        def block_mel(fr: torch.Tensor) -> torch.Tensor:
            return _power(fr, window, power) @ basis_t

    if not on_cpu:
        mel = block_mel(frames)
    else:  # one item and one block of frames at a time (cache-sized)
        rows = [torch.cat([block_mel(frames[j, i : i + block]) for i in range(0, t, block)], dim=0) for j in range(b)]
        mel = torch.stack(rows, dim=0)
    return mel.reshape(*lead, *mel.shape[-2:])


def stft_power(
    wave: torch.Tensor,
    n_fft: int,
    hop_length: int,
    win_length: int | None = None,
    window: torch.Tensor | None = None,
    center: bool = True,
    pad_mode: str = "constant",
    power: float = 2.0,
) -> torch.Tensor:
    """Magnitude spectrogram ``|STFT|^power`` with librosa framing, shape ``(..., 1 + n_fft//2, frames)``.

    Args:
        wave: ``(..., samples)`` waveform.
        n_fft, hop_length, win_length: FFT size, hop and window length in samples
            (``win_length=None`` is ``n_fft``; a shorter window is zero-padded to ``n_fft`` at the centre).
        window: ``(win_length,)`` window; default periodic Hann on ``wave``'s device.
        center: pad ``n_fft//2`` samples on both sides so frame ``t`` is centred at ``t*hop``
            (frames = ``1 + samples // hop``); otherwise frames = ``1 + (samples - n_fft) // hop``.
        pad_mode: ``"constant"`` (zeros, librosa >= 0.10 default) or ``"reflect"`` (torchlibrosa/HTS-AT).
        power: 2 for power, 1 for magnitude.
    """
    frames = spectrogram_frames(wave, n_fft, hop_length, win_length, window, center, pad_mode, power)
    return frames.transpose(-1, -2)


@full_precision
def melspectrogram(
    wave: torch.Tensor,
    sample_rate: float,
    n_fft: int = 2048,
    hop_length: int = 512,
    win_length: int | None = None,
    center: bool = True,
    pad_mode: str = "constant",
    power: float = 2.0,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
    norm: str | float | None = "slaney",
    mel_basis: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mel spectrogram as ``librosa.feature.melspectrogram``: ``(..., samples)`` -> ``(..., n_mels, frames)``.

    Defaults are librosa's. ``mel_basis`` ``(n_mels, 1 + n_fft//2)`` overrides the filterbank
    (e.g. a cached buffer); otherwise it is built with :func:`mel_filterbank`. The result is a
    transposed view of the frame-major product (call ``.contiguous()`` if needed).

    Example:
        >>> m = melspectrogram(torch.randn(2, 22050), 22050)  # (2, 128, 44)
    """
    if mel_basis is None:
        mel_basis = mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax, htk, norm)
    mel = mel_frames(wave, n_fft, hop_length, mel_basis, win_length, center=center, pad_mode=pad_mode, power=power)
    return mel.transpose(-1, -2)


def power_to_db(
    spec: torch.Tensor,
    ref: float = 1.0,
    amin: float = 1e-10,
    top_db: float | None = 80.0,
    reduce_dims: int | None = None,
) -> torch.Tensor:
    """``librosa.power_to_db``: ``10*log10(max(S, amin)) - 10*log10(max(amin, ref))``, clipped at ``max - top_db``.

    Args:
        spec: power spectrogram, any shape ``(..., F, T)``.
        ref: reference power (a number).
        amin: floor before the log.
        top_db: clip threshold below the peak; ``None`` disables clipping.
        reduce_dims: the max for ``top_db`` is taken per item over the last ``reduce_dims`` dims
            (default 2: per spectrogram ``(F, T)``, like librosa on one clip; for 1-D input the whole vector).
    """
    if amin <= 0:
        raise ConfigError("amin must be strictly positive")
    log_spec = 10.0 * torch.log10(torch.clamp(spec, min=amin))
    log_spec = log_spec - 10.0 * math.log10(max(amin, ref))
    if top_db is not None:
        if top_db < 0:
            raise ConfigError("top_db must be non-negative")
        k = min(spec.dim(), 2) if reduce_dims is None else reduce_dims
        peak = log_spec.amax(dim=tuple(range(-k, 0)), keepdim=True) if k > 0 else log_spec
        log_spec = torch.maximum(log_spec, peak - top_db)
    return log_spec
