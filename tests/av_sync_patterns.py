"""Audio-video sync test patterns with known lag, written to real media files.

Independent of :mod:`avperceive.data.synthetic` (whose clips the describer was first checked on):
these are the patterns people measure AV sync with, plus bouncing objects.

* **flash** (``make_flash_clip``): the picture flashes at irregular times for 1-4 frames (a
  full-frame flash, a bright disc on a dark field, or a dark disc on a light field), with a
  click (1-ms broadband pulse) or a beep (1 kHz tone, 40-120 ms) at each flash. Flashes start on
  frames; the sound of a flash shown from frame ``k`` starts at ``frame_time[k] + lag``, the
  convention of flash-and-beep sync meters (in sync = the sound starts when the flash frame is
  shown).
* **impact** (``make_impact_clip``): a disc bounces between two walls (constant speed per leg)
  or on a floor under gravity, reversing direction at irregular, continuous times ``t_i`` (not
  on frames); a knock (a decaying 600-2000 Hz resonance, 1 ms attack) sounds at ``t_i + lag``.

Frames are drawn with anti-aliased edges and a little pixel noise; the sound has a noise floor.
Files: ``.mp4`` (H.264 + AAC) or ``.mkv`` (H.264 + PCM s16, or AAC) via
:func:`avperceive.io.write_clip`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from avperceive.io import AVClip, write_clip

SAMPLE_RATE = 16000
CONTAINERS = {"mp4-aac": (".mp4", "aac"), "mkv-pcm": (".mkv", "pcm_s16le"), "mkv-aac": (".mkv", "aac")}


@dataclass
class PatternTruth:
    """``lag_s``: seconds the sound lags the picture; ``visual_times``: event times on the picture."""

    lag_s: float
    visual_times: list[float]
    sound_times: list[float]


def _disc(height: int, width: int, cy: float, cx: float, radius: float) -> np.ndarray:
    """Anti-aliased disc coverage in [0, 1], ``(H, W)`` (sub-pixel centre)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    dist = np.hypot(yy + 0.5 - cy, xx + 0.5 - cx)
    return np.clip(radius + 0.5 - dist, 0.0, 1.0)


def _clip(frames: np.ndarray, fps: float, audio: np.ndarray, duration: float) -> AVClip:
    return AVClip(
        video=torch.from_numpy(np.clip(frames, 0, 255).round().astype(np.uint8)),
        frame_times=torch.arange(frames.shape[0], dtype=torch.float64) / fps,
        audio=torch.from_numpy(np.clip(audio, -1, 1).astype(np.float32))[None],
        sample_rate=SAMPLE_RATE,
        fps=float(fps),
        duration=float(duration),
        has_video=True,
        has_audio=True,
    )


def _event_times(rng: np.random.Generator, first: float, last: float, gap: tuple[float, float]) -> list[float]:
    times, t = [], first + float(rng.uniform(0, 0.1))
    while t <= last:
        times.append(t)
        t += float(rng.uniform(*gap))
    return times


def _add_sound(audio: np.ndarray, at: float, sound: np.ndarray) -> None:
    i = int(round(at * SAMPLE_RATE))
    if 0 <= i < audio.size:
        audio[i : i + sound.size] += sound[: audio.size - i]


def make_flash_clip(fps: float, flash_frames: int, lag_s: float, seed: int, *, duration: float = 3.0,
                    size: tuple[int, int] = (48, 64), sound: str = "click", look: str = "full"):
    """Flashes of ``flash_frames`` frames at irregular times with a ``sound`` ("click"/"beep") each."""
    rng = np.random.default_rng(seed)
    num = int(round(duration * fps))
    height, width = size
    lo, hi = {"full": (20.0, 230.0), "disc": (30.0, 220.0), "dark-disc": (200.0, 40.0)}[look]
    frames = np.full((num, height, width, 3), lo)
    margin = 0.3 + abs(lag_s)
    starts = sorted({int(round(t * fps)) for t in _event_times(rng, margin, duration - margin - 0.2, (0.3, 0.8))})
    audio = 0.002 * rng.standard_normal(int(round(duration * SAMPLE_RATE)))
    for k in starts:
        if look == "full":
            mask = np.ones((height, width))
        else:
            radius = float(rng.uniform(0.15, 0.3)) * min(height, width)
            cy, cx = rng.uniform(radius, height - radius), rng.uniform(radius, width - radius)
            mask = _disc(height, width, cy, cx, radius)
        frames[k : k + flash_frames] = lo + (hi - lo) * mask[None, :, :, None]
        if sound == "click":
            burst = np.zeros(int(0.004 * SAMPLE_RATE))
            burst[:16] = rng.choice([-1.0, 1.0], 16) * 0.8
        else:
            n = int(rng.uniform(0.04, 0.12) * SAMPLE_RATE)
            t = np.arange(n) / SAMPLE_RATE
            ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.002)
            burst = 0.5 * np.sin(2 * math.pi * 1000.0 * t) * ramp
        _add_sound(audio, k / fps + lag_s, burst)
    frames = frames + rng.normal(0, 1.5, frames.shape)
    visual = [k / fps for k in starts]
    return _clip(frames, fps, audio, duration), PatternTruth(lag_s, visual, [t + lag_s for t in visual])


def _knock(rng: np.random.Generator) -> np.ndarray:
    n = int(0.15 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    f = float(rng.uniform(600, 2000))
    return 0.6 * np.sin(2 * math.pi * f * t) * np.exp(-t / float(rng.uniform(0.015, 0.04))) * np.minimum(1, t / 0.001)


def make_impact_clip(fps: float, lag_s: float, seed: int, *, duration: float = 3.0, size: tuple[int, int] = (48, 64),
                     motion: str = "walls"):
    """A disc reversing direction at irregular times ("walls": horizontal legs; "floor": gravity bounces)."""
    rng = np.random.default_rng(seed)
    height, width = size
    margin = 0.3 + abs(lag_s)
    impacts = _event_times(rng, margin, duration - margin - 0.2, (0.35, 0.8))
    radius = 0.12 * min(height, width)
    times = np.arange(int(round(duration * fps))) / fps
    if motion == "walls":
        left, right = radius + 2, width - radius - 2
        # legs between reversals alternate direction; before the first and after the last, same speed
        knots = [impacts[0] - (impacts[1] - impacts[0])] + impacts + [impacts[-1] + (impacts[-1] - impacts[-2])]
        pos = [left if i % 2 == 0 else right for i in range(len(knots))]
        xs = np.interp(times, knots, pos)
        ys = np.full_like(xs, height / 2 + float(rng.uniform(-4, 4)))
    else:
        floor = height - radius - 1
        g = 0.9 * (floor - radius) * 8 / 0.8**2  # px / s^2: the longest hop (0.8 s) nearly reaches the top
        ys = np.empty_like(times)
        knots = [impacts[0] - (impacts[1] - impacts[0])] + impacts + [impacts[-1] + (impacts[-1] - impacts[-2])]
        for k, t in enumerate(times):
            j = min(max(int(np.searchsorted(knots, t)) - 1, 0), len(knots) - 2)
            a, b = knots[j], knots[j + 1]
            u = t - a
            ys[k] = floor - 0.5 * g * u * (b - a - u)  # parabola touching the floor at a and b
        xs = np.linspace(radius + 4, width - radius - 4, times.size)
    light, dark = (220.0, 30.0) if rng.random() < 0.5 else (40.0, 200.0)
    frames = np.empty((times.size, height, width, 3))
    for k in range(times.size):
        frames[k] = (dark + (light - dark) * _disc(height, width, ys[k], xs[k], radius))[:, :, None]
    frames = frames + rng.normal(0, 1.5, frames.shape)
    audio = 0.002 * rng.standard_normal(int(round(duration * SAMPLE_RATE)))
    for t in impacts:
        _add_sound(audio, t + lag_s, _knock(rng))
    return _clip(frames, fps, audio, duration), PatternTruth(lag_s, impacts, [t + lag_s for t in impacts])


def write_pattern(clip: AVClip, folder, name: str, container: str) -> str:
    """Encode ``clip`` as ``folder/name.<ext>`` with the audio codec of ``container`` (a key of CONTAINERS)."""
    ext, codec = CONTAINERS[container]
    return write_clip(clip, f"{folder}/{name}{ext}", audio_codec=codec, preset="ultrafast", crf=18)
