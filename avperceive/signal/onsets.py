"""Onset strength and onset detection (spectral flux + peak picking), batched torch ports of librosa 0.11.

Onset strength is the spectral flux of Böck & Widmer ("Maximum filter vibrato suppression for
onset detection", DAFx 2013), as ``librosa.onset.onset_strength`` computes it on a log-mel
spectrogram ``S`` (dB):

    e[t] = mean_f max(0, S[f, t] - ref[f, t - lag])        (ref = S, or its max filter over f)

left-padded by ``lag`` (+ ``n_fft // (2*hop)`` with ``center=True``) zeros and trimmed to the
frame count. Peak picking is the rule of Böck, Krebs & Schedl ("Evaluating the Online
Capabilities of Onset Detection Methods", ISMIR 2012) as ``librosa.util.peak_pick``:

    x[n] == max(x[n - pre_max : n + post_max]),  x[n] >= mean(x[n - pre_avg : n + post_avg]) + delta,

windows clipped to the signal, greedy left to right with ``wait`` frames skipped after each
onset. Here the window tests are ``max_pool1d`` / prefix sums and the greedy ``wait`` rule is
resolved by pointer doubling, so no Python loop runs over frames or onsets.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from avperceive.signal.spectral import melspectrogram, power_to_db

__all__ = ["onset_strength", "peak_pick", "onset_detect", "onset_backtrack", "onset_mask", "peak_pick_defaults"]


def _acc_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64


def _aggregate(flux: torch.Tensor, aggregate: str | Callable) -> torch.Tensor:
    """Reduce ``flux`` ``(..., frames, bins)`` over its bins (last dim)."""
    if callable(aggregate):
        return aggregate(flux, dim=-1)
    if aggregate == "mean":
        return flux.mean(dim=-1)
    if aggregate == "median":
        return flux.quantile(0.5, dim=-1)
    if aggregate == "max":
        return flux.amax(dim=-1)
    raise ValueError(f"aggregate must be 'mean', 'median', 'max' or a callable(x, dim=...), got {aggregate!r}")


def onset_strength(
    wave: torch.Tensor | None = None,
    sample_rate: float = 22050,
    S: torch.Tensor | None = None,
    lag: int = 1,
    max_size: int = 1,
    detrend: bool = False,
    center: bool = True,
    aggregate: str | Callable = "mean",
    n_fft: int = 2048,
    hop_length: int = 512,
    top_db: float | None = 80.0,
    **mel_kwargs,
) -> torch.Tensor:
    """Spectral-flux onset envelope, ``librosa.onset.onset_strength``: ``(..., frames)``.

    Args:
        wave: ``(..., samples)`` waveform; its log-mel is ``power_to_db(melspectrogram(wave, sr,
            n_fft, hop_length, **mel_kwargs), top_db=top_db)`` (librosa defaults: 128 Slaney mels,
            zero-padded centred frames, 80 dB clip below each item's maximum).
        S: instead of ``wave``, a ``(..., bins, frames)`` spectrogram already in dB.
        lag: time lag of the difference.
        max_size: frequency max-filter size of the reference (SuperFlux vibrato suppression; 1 = off).
        detrend: remove the DC with ``lfilter([1, -1], [1, -0.99])``.
        center: shift by ``n_fft // (2*hop_length)`` frames to undo the framing delay.
        aggregate: ``"mean"`` (librosa default), ``"median"``, ``"max"`` or ``fn(flux, dim=-1)`` reducing
            a time-major ``(..., frames, bins)`` flux over its bins.

    Returns:
        ``(..., frames)`` onset strength (same frame count as ``S``).

    Example:
        >>> env = onset_strength(torch.randn(2, 44100), 44100)  # (2, 87)
    """
    if S is None:
        if wave is None:
            raise ValueError("onset_strength needs a waveform (..., samples) or a dB spectrogram S (..., bins, frames)")
        mel = melspectrogram(wave, sample_rate, n_fft=n_fft, hop_length=hop_length, **mel_kwargs)
        S = power_to_db(mel, top_db=top_db)
    if S.dim() < 2:
        raise ValueError(f"expected S of shape (..., bins, frames), got {tuple(S.shape)}")
    if lag < 1:
        raise ValueError("lag must be a positive integer")
    if max_size < 1:
        raise ValueError("max_size must be a positive integer")
    frames = S.shape[-1]
    # work time-major (..., frames, bins): melspectrogram's result is a transposed view of a frame-major
    # tensor, so this is its contiguous layout and the flux and the mean run over contiguous memory
    st = S.transpose(-1, -2)
    if max_size == 1:
        ref = st
    else:
        # scipy.ndimage.maximum_filter1d(size=max_size, mode='reflect') over frequency == clipped-window max
        bins = st.shape[-1]
        left = max_size // 2
        x = F.pad(st.reshape(-1, 1, bins), (left, max_size - 1 - left), value=-math.inf)
        ref = F.max_pool1d(x, max_size, stride=1).reshape(st.shape)
    flux = torch.clamp(st[..., lag:, :] - ref[..., :-lag, :], min=0.0)
    env = _aggregate(flux, aggregate)
    pad = lag + (n_fft // (2 * hop_length) if center else 0)
    env = F.pad(env, (pad, 0))
    if detrend:
        env = _detrend(env)
    if center:
        env = env[..., :frames]
    return env


def _detrend(env: torch.Tensor) -> torch.Tensor:
    """``scipy.signal.lfilter([1, -1], [1, -0.99], env)``: difference, then the IIR decay 0.99 (FFT convolution)."""
    n = env.shape[-1]
    acc = _acc_dtype(env.device)
    x = env.to(acc)
    d = x - F.pad(x, (1, 0))[..., :-1]
    h = 0.99 ** torch.arange(n, dtype=acc, device=env.device)
    size = 2 * n
    y = torch.fft.irfft(torch.fft.rfft(d, size) * torch.fft.rfft(h, size), size)[..., :n]
    return y.to(env.dtype)


def peak_pick_defaults(sample_rate: float, hop_length: int) -> dict[str, float]:
    """librosa's ``onset_detect`` peak-pick defaults in frames (``0.03*sr//hop`` etc., delta 0.07)."""
    sr, hop = float(sample_rate), hop_length
    return {
        "pre_max": 0.03 * sr // hop,
        "post_max": 0.00 * sr // hop + 1,
        "pre_avg": 0.10 * sr // hop,
        "post_avg": 0.10 * sr // hop + 1,
        "wait": 0.03 * sr // hop,
        "delta": 0.07,
    }


def _greedy_wait(cand: torch.Tensor, wait: int) -> torch.Tensor:
    """Keep candidates greedily left to right, each more than ``wait`` frames after the previous kept one.

    ``cand`` ``(B, T)`` bool -> ``(B, T)`` bool. The kept set is the chain ``c0, next(c0), ...``
    with ``next(i)`` the first candidate after ``i + wait``; the chain is marked by pointer
    doubling in ``ceil(log2 T)`` vectorised steps.
    """
    b, t = cand.shape
    if wait <= 0:
        return cand.clone()
    device = cand.device
    idx = torch.arange(t + 1, device=device)
    # first candidate at or after position p (p in 0..t, t = "none"), per row
    pos = torch.where(cand, idx[:t].expand(b, t), torch.full_like(idx[:t], t).expand(b, t))
    pos = torch.cat([pos, torch.full((b, 1), t, device=device, dtype=pos.dtype)], dim=1)
    first_at = torch.flip(torch.cummin(torch.flip(pos, [1]), dim=1).values, [1])  # (b, t+1)
    jump = torch.gather(first_at, 1, torch.clamp(idx + wait + 1, max=t).expand(b, t + 1))  # next(i)
    jump[:, t] = t
    mark = torch.zeros(b, t + 1, dtype=torch.bool, device=device)
    mark.scatter_(1, first_at[:, :1], True)
    for _ in range(max(1, math.ceil(math.log2(t + 1)))):
        targets = torch.where(mark, jump, torch.full_like(jump, t))
        mark = mark | torch.zeros_like(mark).scatter(1, targets, True)
        jump = torch.gather(jump, 1, jump)
    return mark[:, :t] & cand


def peak_pick(
    x: torch.Tensor,
    pre_max: float,
    post_max: float,
    pre_avg: float,
    post_avg: float,
    delta: float,
    wait: float,
) -> torch.Tensor:
    """``librosa.util.peak_pick`` (0.11) as a dense mask: ``(..., T)`` -> bool ``(..., T)``.

    Parameters are in frames and rounded up like librosa's; see the module docstring for the rule.
    """
    sizes = (pre_max, post_max, pre_avg, post_avg, wait)
    pre_max, post_max, pre_avg, post_avg, wait = (int(math.ceil(v)) for v in sizes)
    if min(pre_max, pre_avg, wait) < 0 or min(post_max, post_avg) < 1:
        raise ValueError("need pre_max, pre_avg, wait >= 0 and post_max, post_avg >= 1")
    if delta < 0:
        raise ValueError("delta must be non-negative")
    lead, t = x.shape[:-1], x.shape[-1]
    flat = x.reshape(-1, t)
    if t == 0:
        return torch.zeros_like(x, dtype=torch.bool)
    padded = F.pad(flat[:, None], (pre_max, post_max - 1), value=-math.inf)
    mov_max = F.max_pool1d(padded, pre_max + post_max, stride=1)[:, 0]
    acc = flat.to(_acc_dtype(flat.device))
    cs = F.pad(torch.cumsum(acc, dim=-1), (1, 0))
    n = torch.arange(t, device=flat.device)
    lo = torch.clamp(n - pre_avg, min=0)
    hi = torch.clamp(n + post_avg, max=t)
    mov_avg = (cs[:, hi] - cs[:, lo]) / (hi - lo).to(acc.dtype)
    cand = (flat == mov_max) & (acc >= mov_avg + delta)
    return _greedy_wait(cand, wait).reshape(*lead, t)


def onset_backtrack(onsets: torch.Tensor, energy: torch.Tensor) -> torch.Tensor:
    """``librosa.onset.onset_backtrack`` on dense masks: move each onset to the preceding local minimum of ``energy``.

    Args:
        onsets: bool ``(..., T)`` onset mask.
        energy: ``(..., T)`` energy (e.g. the onset envelope or RMS).

    Returns:
        bool ``(..., T)`` mask of backtracked onsets (minima: ``e[i] <= e[i-1]`` and ``e[i] < e[i+1]``, or frame 0).
    """
    t = energy.shape[-1]
    minima = torch.zeros_like(energy, dtype=torch.bool)
    if t > 2:
        minima[..., 1:-1] = (energy[..., 1:-1] <= energy[..., :-2]) & (energy[..., 1:-1] < energy[..., 2:])
    minima[..., 0] = True
    idx = torch.arange(t, device=energy.device).expand_as(minima)
    last_min = torch.cummax(torch.where(minima, idx, torch.zeros_like(idx)), dim=-1).values
    hits = torch.zeros_like(last_min).scatter_add(-1, last_min, onsets.to(last_min.dtype))
    return hits > 0


def onset_detect(
    wave: torch.Tensor | None = None,
    sample_rate: float = 22050,
    onset_envelope: torch.Tensor | None = None,
    hop_length: int = 512,
    backtrack: bool = False,
    energy: torch.Tensor | None = None,
    units: str = "frames",
    normalize: bool = True,
    sparse: bool = True,
    **peak_kwargs: float,
) -> torch.Tensor | list[torch.Tensor]:
    """Onset detection, ``librosa.onset.onset_detect`` (0.11 defaults), batched.

    Args:
        wave: ``(..., samples)``; its envelope is ``onset_strength(wave, sr, hop_length=hop_length)``.
        onset_envelope: instead of ``wave``, a ``(..., frames)`` envelope.
        backtrack: move onsets to the preceding minimum of ``energy`` (default: the envelope).
        units: ``"frames"``, ``"samples"`` (``frame*hop``) or ``"time"`` (seconds).
        normalize: rescale each envelope to [0, 1] (``(e - min) / (max(e - min) + tiny)``).
        sparse: return onset positions; otherwise a bool mask ``(..., frames)`` (units ignored).
        peak_kwargs: ``pre_max, post_max, pre_avg, post_avg, wait, delta`` in frames; defaults from
            :func:`peak_pick_defaults`.

    Returns:
        ``sparse=True``: for a 1-D envelope a ``(K,)`` tensor (int64 frames/samples, float seconds);
        for a batch a list of such tensors, one per row of the flattened leading dims.
        ``sparse=False``: bool ``(..., frames)``.

    Example:
        >>> onset_detect(torch.randn(44100), 44100)  # tensor([...]) frame indices
    """
    if units not in ("frames", "samples", "time"):
        raise ValueError(f"units must be 'frames', 'samples' or 'time', got {units!r}")
    if onset_envelope is None:
        if wave is None:
            raise ValueError("onset_detect needs a waveform (..., samples) or an onset_envelope (..., frames)")
        onset_envelope = onset_strength(wave, sample_rate, hop_length=hop_length)
    env = onset_envelope
    if normalize:
        env = env - env.amin(dim=-1, keepdim=True)
        env = env / (env.amax(dim=-1, keepdim=True) + torch.finfo(env.dtype).tiny)
    params = peak_pick_defaults(sample_rate, hop_length)
    unknown = set(peak_kwargs) - set(params)
    if unknown:
        raise ValueError(f"unknown peak-pick parameters {sorted(unknown)}; known: {sorted(params)}")
    params.update(peak_kwargs)
    mask = peak_pick(env, **params)
    valid = env.ne(0).any(dim=-1, keepdim=True) & torch.isfinite(env).all(dim=-1, keepdim=True)
    mask = mask & valid
    if backtrack:
        mask = onset_backtrack(mask, env if energy is None else energy)
    if not sparse:
        return mask

    def positions(row: torch.Tensor) -> torch.Tensor:
        frames = torch.nonzero(row, as_tuple=False)[:, 0]
        if units == "samples":
            return frames * hop_length
        if units == "time":
            return frames.to(torch.float64 if frames.device.type != "mps" else torch.float32) * hop_length / sample_rate
        return frames

    if mask.dim() == 1:
        return positions(mask)
    return [positions(row) for row in mask.reshape(-1, mask.shape[-1])]


def onset_mask(
    wave: torch.Tensor,
    sample_rate: float,
    steps: int,
    hop_length: int = 512,
    **detect_kwargs,
) -> torch.Tensor:
    """Onsets mapped to model time steps: ``(B, samples)`` -> bool ``(B, steps)`` (``(samples,)`` -> ``(steps,)``).

    The clip is cut into ``steps`` equal spans (e.g. AVE's ten 1-s segments); step ``i`` is True
    when :func:`onset_detect` (librosa defaults, ``hop_length``) finds an onset whose time
    ``frame * hop / sr`` lies in ``[i, i + 1) * duration / steps``.

    Example:
        >>> onset_mask(torch.randn(2, 160000), 16000, steps=10).shape
        torch.Size([2, 10])
    """
    if wave.dim() not in (1, 2):
        raise ValueError(f"expected a waveform of shape (B, samples) or (samples,), got {tuple(wave.shape)}")
    if steps < 1:
        raise ValueError("steps must be >= 1")
    mask = onset_detect(wave, sample_rate, hop_length=hop_length, sparse=False, **detect_kwargs)
    frames = mask.shape[-1]
    num_samples = wave.shape[-1]
    centers = torch.arange(frames, device=wave.device, dtype=torch.float64) * hop_length
    step = torch.clamp((centers * steps / num_samples).floor().long(), max=steps)  # == steps: past the end
    out = torch.zeros(*mask.shape[:-1], steps + 1, dtype=torch.int32, device=wave.device)
    out = out.scatter_add(-1, step.expand_as(mask), mask.to(torch.int32))
    return out[..., :steps] > 0
