"""Synthetic audio-video clips with known ground truth, one per Schaeffer type.

Schaeffer's temporal typology as restated in the EoPMA paper (Guo, Tørresen & Jensenius,
SoundActions, TISMIR 2026, §3): an *impulsive* sound is a short abrupt event; a *sustained*
sound a long event with stable energy; an *iterative* sound a long event with fluctuating energy (a series of repeated
impulses). Each generated clip pairs its sound with a visual event that coincides with it,
shifted by ``av_offset`` (the sound lags the picture by ``av_offset`` seconds), so detectors
of type, onsets and audio-video synchronisation can be tested against exact answers:

* impulsive: one decaying noise burst; a white square appears (one-frame motion spike)
  and fades out.
* sustained: a steady harmonic tone with a short attack that lasts to near the end; the
  square appears with the attack and then drifts slowly.
* iterative: at least 4 bursts at jittered intervals (0.15-0.45 s, irregular so that the
  audio-video cross-correlation has one peak); the square jumps to a new place at each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..io.clip import AVClip

__all__ = ["SyntheticTruth", "make_clip", "SOUND_TYPES"]

SOUND_TYPES = ("impulsive", "sustained", "iterative")


@dataclass
class SyntheticTruth:
    """Ground truth of a synthetic clip.

    Attributes:
        perception_type: ``"impulsive" | "sustained" | "iterative"``.
        onsets: audio onset times (s).
        visual_events: visual event times (s) = ``onsets - av_offset``.
        av_offset: audio lag behind video (s); positive = sound after picture.
    """

    perception_type: str
    onsets: list[float] = field(default_factory=list)
    visual_events: list[float] = field(default_factory=list)
    av_offset: float = 0.0


def _burst(rng: np.random.Generator, sample_rate: int, length: float, decay: float) -> np.ndarray:
    n = int(length * sample_rate)
    t = np.arange(n) / sample_rate
    return (rng.standard_normal(n) * np.exp(-t / decay)).astype(np.float32)


def make_clip(
    kind: str = "impulsive",
    duration: float = 2.0,
    fps: float = 25.0,
    sample_rate: int = 16000,
    av_offset: float = 0.0,
    seed: int = 0,
    size: tuple[int, int] = (64, 64),
    noise: float = 0.003,
) -> tuple[AVClip, SyntheticTruth]:
    """Generate a clip of one Schaeffer type with known onsets and audio-video offset.

    Args:
        kind: ``"impulsive"``, ``"sustained"`` or ``"iterative"``.
        duration: seconds (>= 1.0).
        fps: video frame rate.
        sample_rate: audio rate.
        av_offset: seconds the sound lags the picture (|av_offset| should stay below 0.3 s so
            every event fits in the clip).
        seed: random seed (event times, burst noise, positions).
        size: ``(H, W)`` of the frames (even numbers, so :func:`avperceive.io.write_clip` can encode).
        noise: background noise amplitude of the sound.

    Returns:
        ``(clip, truth)``: an in-memory :class:`AVClip` (video uint8 ``(T, H, W, 3)``, mono
        audio ``(1, S)``) and its :class:`SyntheticTruth`.
    """
    if kind not in SOUND_TYPES:
        raise ValueError(f"kind must be one of {SOUND_TYPES}, got {kind!r}")
    if duration < 1.0:
        raise ValueError(f"duration must be >= 1 s, got {duration}")
    rng = np.random.default_rng(seed)
    n = int(round(duration * sample_rate))
    audio = (noise * rng.standard_normal(n)).astype(np.float32)
    margin = 0.3 + abs(av_offset)

    if kind == "impulsive":
        onsets = [float(rng.uniform(margin, duration - margin - 0.3))]
        burst = _burst(rng, sample_rate, 0.25, decay=float(rng.uniform(0.02, 0.05)))
        i = int(onsets[0] * sample_rate)
        audio[i : i + burst.size] += 0.6 * burst[: n - i]
    elif kind == "iterative":
        first, last = margin + float(rng.uniform(0, 0.1)), duration - margin - 0.15
        longest = max(0.18, min(0.45, (last - first) / 3))  # room for at least 4 onsets
        onsets, t = [], first
        while t <= last:
            onsets.append(t)
            t += float(rng.uniform(0.15, longest))
        for t in onsets:
            burst = _burst(rng, sample_rate, 0.12, decay=float(rng.uniform(0.015, 0.03)))
            i = int(t * sample_rate)
            audio[i : i + burst.size] += float(rng.uniform(0.4, 0.7)) * burst[: n - i]
    else:
        onsets = [float(rng.uniform(margin, margin + 0.3))]
        stop = duration - float(rng.uniform(0.05, 0.2))
        f0 = float(rng.uniform(150, 400))
        t = np.arange(n) / sample_rate
        env = np.clip((t - onsets[0]) / 0.02, 0, 1) * np.clip((stop - t) / 0.05, 0, 1)
        tone = sum(np.sin(2 * math.pi * f0 * h * t + rng.uniform(0, 6.3)) / h for h in (1, 2, 3))
        audio += (0.3 * env * tone).astype(np.float32)

    visual = [t - av_offset for t in onsets]
    height, width = size
    num_frames = int(round(duration * fps))
    frame_times = np.arange(num_frames) / fps
    video = np.full((num_frames, height, width, 3), 16, np.uint8)
    box = max(4, min(height, width) // 4)
    positions = [(int(rng.integers(0, height - box)), int(rng.integers(0, width - box))) for _ in visual]
    for k, ft in enumerate(frame_times):
        shown = [j for j, tv in enumerate(visual) if tv <= ft]
        if not shown:
            continue
        j = shown[-1]
        y, x = positions[j]
        age = ft - visual[j]
        if kind == "impulsive":
            level = 235 * math.exp(-age / 0.15)
        elif kind == "sustained":
            level = 235.0
            y = int(y + (height - box - y) * min(age / duration, 1.0) * 0.5)
        else:
            level = 235.0
        video[k, y : y + box, x : x + box] = int(16 + level * (1 - 16 / 255))

    clip = AVClip(
        video=torch.from_numpy(video),
        frame_times=torch.from_numpy(frame_times.astype(np.float64)),
        audio=torch.from_numpy(np.clip(audio, -1, 1))[None],
        sample_rate=int(sample_rate),
        fps=float(fps),
        duration=float(duration),
        has_video=True,
        has_audio=True,
        path=None,
    )
    truth = SyntheticTruth(perception_type=kind, onsets=onsets, visual_events=visual, av_offset=float(av_offset))
    return clip, truth
