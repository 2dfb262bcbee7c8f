"""Drum hits over a sustained bed (drone, pad or noise), with the hit times known.

A test signal for onset detection under a continuous sound: the hits (kick: a 150->50 Hz
pitch drop with a click; snare: a noise burst with a 190 Hz body; tom: a 110 Hz decaying
tone) fall at irregular times 0.25-0.6 s apart; the bed starts before the clip and lasts
through it:

* ``drone``: a 55 Hz sawtooth-like tone (8 harmonics) with a 0.3 Hz, +-2 dB swell;
* ``pad``: a detuned A-major triad (two oscillators per note, 0.7 Hz apart: slow beating) with
  5 Hz vibrato;
* ``noise``: pink noise (1/f power), the broadband case where a hit raises each band least.

``bed_db`` sets the bed's RMS relative to the RMS of the hits track (over the whole clip).
"""

from __future__ import annotations

import math

import numpy as np

BEDS = ("drone", "pad", "noise")


def _hit(rng: np.random.Generator, kind: str, sr: int) -> np.ndarray:
    t = np.arange(int(0.25 * sr)) / sr
    if kind == "kick":
        phase = 2 * math.pi * np.cumsum(50 + 100 * np.exp(-t / 0.03)) / sr
        x = np.sin(phase) * np.exp(-t / 0.12)
        x[: int(0.002 * sr)] += rng.uniform(-0.5, 0.5, int(0.002 * sr))
    elif kind == "snare":
        x = rng.standard_normal(t.size) * np.exp(-t / 0.05) * 0.5 + np.sin(2 * math.pi * 190 * t) * np.exp(-t / 0.04)
    else:
        x = np.sin(2 * math.pi * 110 * t) * np.exp(-t / 0.09)
    return x * np.minimum(1.0, t / 0.001)


def _bed(rng: np.random.Generator, kind: str, n: int, sr: int) -> np.ndarray:
    t = np.arange(n) / sr
    if kind == "drone":
        x = sum(np.sin(2 * math.pi * 55 * h * t + rng.uniform(0, 6.3)) / h for h in range(1, 9))
        return x * 10 ** (2 * np.sin(2 * math.pi * 0.3 * t + rng.uniform(0, 6.3)) / 20)
    if kind == "pad":
        vib = 1 + 0.003 * np.sin(2 * math.pi * 5 * t)
        return sum(np.sin(2 * math.pi * f * vib * t + rng.uniform(0, 6.3)) for base in (220.0, 277.2, 329.6)
                   for f in (base, base + 0.7))
    if kind == "noise":
        spec = np.fft.rfft(rng.standard_normal(n))
        freqs = np.fft.rfftfreq(n, 1 / sr)
        spec[1:] /= np.sqrt(freqs[1:])
        spec[0] = 0
        return np.fft.irfft(spec, n)
    raise ValueError(f"bed must be one of {BEDS}, got {kind!r}")


def make_beats_over_bed(bed: str, bed_db: float, seed: int, *, duration: float = 4.0, sr: int = 16000,
                        hits: bool = True) -> tuple[np.ndarray, list[float]]:
    """``(wave float32 (samples,), hit times (s))``; ``hits=False`` gives the bed alone (no hit times)."""
    rng = np.random.default_rng(seed)
    n = int(duration * sr)
    drums = np.zeros(n)
    times: list[float] = []
    t = float(rng.uniform(0.2, 0.4))
    while t < duration - 0.3:
        times.append(round(t, 4))
        sound = _hit(rng, str(rng.choice(["kick", "snare", "tom"])), sr) * float(rng.uniform(0.6, 1.0))
        i = int(t * sr)
        drums[i : i + sound.size] += sound[: n - i]
        t += float(rng.uniform(0.25, 0.6))
    base = _bed(rng, bed, n, sr)
    rms_drums = np.sqrt(np.mean(drums**2))
    base = base / np.sqrt(np.mean(base**2)) * rms_drums * 10 ** (bed_db / 20)
    wave = base + (drums if hits else 0.0)
    wave = 0.5 * wave / np.abs(wave).max()
    return wave.astype(np.float32), times if hits else []
