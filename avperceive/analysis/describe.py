"""``describe``: a weight-free perceptual description of an audio-video clip.

In the spirit of signal-based Schaeffer analysis, the clip's sound is typed with the temporal
typology the EoPMA paper restates for SoundActions ([S0] §3, "PerceptionType"): *impulsive*
(a short abrupt event), *sustained* (a long event with stable energy), *iterative* (a long
event with fluctuating energy: repeated attacks). The cues are

* audio: the spectral-flux onset envelope (:func:`avperceive.signal.onset_strength`, Böck &
  Widmer 2013) on a 10-ms hop, its peaks (:func:`avperceive.signal.onset_detect`) kept as
  *audio onsets* only when the flux is at least ``min_flux_db`` (dB per band per 10 ms) and the
  RMS level rises by ``min_rise_db`` into them (a new attack, not the rattle of a decay or the
  swell of a drone; the clip is taken to start from silence), and the RMS envelope (sounding time = level within
  ``active_db`` of the peak);
* video: motion energy (mean absolute luma difference of consecutive frames,
  :func:`avperceive.signal.motion_energy`) and its peaks (*motion peaks*);
* audio-video synchronisation: the normalised cross-correlation of the audio onset envelope
  and the motion energy, both placed on a 5-ms grid and smoothed; the lag of its maximum
  (parabolic refinement) is ``lag_s`` (positive: the sound comes after the picture) and its
  value is ``strength`` (a Pearson correlation in [-1, 1]).

Type scores: with ``n`` audio onsets and sounding time ``a`` seconds,
``iterative = sigmoid(2 (n - 2.5))``, ``long = sigmoid((a - 0.5) / 0.1)``,
``sustained = (1 - iterative) long``, ``impulsive = (1 - iterative)(1 - long)``; they sum to 1
and ``perception_type`` is their argmax. Without audio the same rule runs on the motion
peaks and the time the motion energy stays above a quarter of its peak.

Event moments follow the event types of Senocak et al. (WACV 2023, [S2] §3): *instant*
moments (the strongest co-occurrences of a sound onset and a visible change, the peaks of the
product of the two envelopes after lag compensation), *onset* moments (the audio onsets) and
whether the clip is *continuous* (sounding, or moving, over at least 60 % of its duration).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from ..io import AVClip, load_clip
from ..signal.envelopes import motion_energy, rms
from ..signal.onsets import onset_detect, onset_strength

__all__ = ["Description", "AVSync", "EventMoments", "describe", "ANALYSIS_SAMPLE_RATE"]

ANALYSIS_SAMPLE_RATE = 16000
GRID_HZ = 200.0  # common time grid of the audio-video cross-correlation (5 ms)


@dataclass
class AVSync:
    """Audio-video synchronisation estimate.

    Attributes:
        lag_s: seconds the sound lags the picture (negative: the sound leads).
        strength: normalised cross-correlation at that lag, in [-1, 1].
    """

    lag_s: float
    strength: float


@dataclass
class EventMoments:
    """Moments of the clip in the event-type terms of Senocak et al. (WACV 2023).

    Attributes:
        instant: times (s) where a sound onset and a visible change co-occur most strongly.
        onsets: audio onset times (s) (motion peaks when there is no audio).
        continuous: whether the clip sounds (or moves) over >= 60 % of its duration.
    """

    instant: list[float] = field(default_factory=list)
    onsets: list[float] = field(default_factory=list)
    continuous: bool = False


@dataclass
class Description:
    """What :func:`describe` found. ``to_dict()`` is its JSON form, ``str()`` a readable summary.

    Attributes:
        perception_type: ``"impulsive" | "sustained" | "iterative"``.
        scores: per-type scores (sum to 1).
        audio_onsets: audio onset times (s, on the file's clock).
        motion_peaks: times (s) of visual motion peaks.
        av_sync: :class:`AVSync`, or ``None`` without both modalities.
        event_moments: :class:`EventMoments`.
        duration: seconds analysed.
        has_audio, has_video: streams present (and decoded).
        cues: the cues used: ``"audio"``, ``"motion"``, ``"av_sync"``.
        features: the numbers behind the scores.
        path: the source file, if any.
        timeline: envelopes for plotting (not part of ``to_dict``).
    """

    perception_type: str
    scores: dict[str, float]
    audio_onsets: list[float]
    motion_peaks: list[float]
    av_sync: AVSync | None
    event_moments: EventMoments
    duration: float
    has_audio: bool
    has_video: bool
    cues: list[str]
    features: dict[str, float]
    path: str | None = None
    timeline: dict = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict:
        """JSON-serialisable dict (everything but ``timeline``)."""
        out = {k: v for k, v in asdict(self).items() if k != "timeline"}
        return json.loads(json.dumps(out))

    def plot(self, path: str | os.PathLike | None = None, **kwargs):
        """Draw the timeline (needs the ``plot`` extra); see :func:`avperceive.analysis.plot.plot_description`."""
        from .plot import plot_description

        return plot_description(self, path, **kwargs)

    def __str__(self) -> str:
        def times(values: list[float], limit: int = 12) -> str:
            shown = ", ".join(f"{t:.3f}" for t in values[:limit])
            return f"[{shown}{', ...' if len(values) > limit else ''}] ({len(values)})"

        streams = " + ".join(s for s, ok in (("audio", self.has_audio), ("video", self.has_video)) if ok)
        scores = "  ".join(f"{k} {v:.2f}" for k, v in self.scores.items())
        lines = [
            f"{self.path or '<AVClip>'}: {self.duration:.2f} s, {streams or 'no streams'}"
            f" (cues: {', '.join(self.cues)})",
            f"  perception type: {self.perception_type}   ({scores})",
        ]
        if self.has_audio:
            lines.append(f"  audio onsets (s): {times(self.audio_onsets)}")
        if self.has_video:
            lines.append(f"  motion peaks (s): {times(self.motion_peaks)}")
        if self.av_sync is not None:
            lines.append(f"  audio-video sync: sound lags picture by {1000 * self.av_sync.lag_s:+.0f} ms"
                         f" (strength {self.av_sync.strength:.2f})")
        em = self.event_moments
        lines.append(f"  event moments: instant {times(em.instant, 6)}; "
                     f"{'continuous' if em.continuous else 'not continuous'}")
        return "\n".join(lines)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(x, 60.0), -60.0)))


def _type_scores(events: int, active_s: float) -> dict[str, float]:
    iterative = _sigmoid(2.0 * (events - 2.5))
    long = _sigmoid((active_s - 0.5) / 0.1)
    return {
        "impulsive": (1 - iterative) * (1 - long),
        "sustained": (1 - iterative) * long,
        "iterative": iterative,
    }


def _audio_cues(wave: torch.Tensor, sr: int, min_rise_db: float, active_db: float, min_flux_db: float) -> dict:
    """Onset envelope, RMS level and filtered onsets of a mono waveform ``(samples,)``."""
    hop = max(1, round(sr * 0.01))
    n_fft = 2 ** math.ceil(math.log2(sr * 0.032))
    if wave.numel() < n_fft:
        wave = F.pad(wave, (0, n_fft - wave.numel()))
    env = onset_strength(wave, sr, n_fft=n_fft, hop_length=hop, n_mels=64, top_db=50.0)
    level = rms(wave, frame_length=n_fft, hop_length=hop)
    db = 20 * torch.log10(level + 1e-6)
    frames = min(env.numel(), db.numel())
    env, db = env[:frames], db[:frames]
    peak = float(db.max())
    silent = peak < -70.0
    picked = [] if silent else onset_detect(onset_envelope=env, sample_rate=sr, hop_length=hop).tolist()
    pre, post = round(0.08 * sr / hop), round(0.05 * sr / hop)
    onsets: list[int] = []
    for i in picked:
        if float(env[i]) < min_flux_db:
            continue
        # before the clip counts as silence: a sound that starts with the clip has an onset
        before = float(db[max(0, i - pre) : i + 1].min()) if i >= pre else -120.0
        after = float(db[i : i + post + 1].max())
        if after - before >= min_rise_db and after >= peak - 30.0:
            if onsets and i - onsets[-1] < round(0.05 * sr / hop):
                continue
            onsets.append(i)
    active = db > peak - active_db
    active_s = 0.0 if silent else float(active.sum()) * hop / sr
    return dict(hop=hop, env=env, db=db, onsets=onsets, active_s=active_s, frame_rate=sr / hop, silent=silent)


def _motion_cues(clip: AVClip) -> dict:
    m = motion_energy(clip.video).double()
    t = clip.frame_times.double()
    # m[k] measures the change between frames k-1 and k: place it between their times.
    times = torch.cat([t[:1], (t[1:] + t[:-1]) / 2]) if t.numel() else t
    peaks: list[int] = []
    if m.numel() >= 2 and float(m.max()) > 1e-4:
        top, floor = float(m.max()), float(m.median())
        for k in range(1, m.numel()):
            left = float(m[k - 1])
            right = float(m[k + 1]) if k + 1 < m.numel() else -1.0
            if m[k] >= left and m[k] > right and m[k] >= 0.25 * top and m[k] > 2 * floor:
                peaks.append(k)
    moving = m > 0.25 * float(m.max()) if m.numel() else m.bool()
    frame_s = 1.0 / clip.fps if clip.fps > 0 else 0.0
    return dict(energy=m, times=times, peaks=peaks, active_s=float(moving.sum()) * frame_s)


def _on_grid(values: torch.Tensor, times: torch.Tensor, start: float, n: int, sigma_s: float) -> torch.Tensor:
    """Impulses ``values`` at ``times`` on a GRID_HZ grid from ``start``, Gaussian-smoothed."""
    grid = torch.zeros(n, dtype=torch.float64)
    pos = (times - start) * GRID_HZ
    lo = pos.floor().long()
    frac = pos - lo
    for idx, w in ((lo, 1 - frac), (lo + 1, frac)):  # linear split keeps sub-grid timing
        ok = (idx >= 0) & (idx < n)
        grid.index_add_(0, idx[ok], (values[ok] * w[ok]).double())
    half = max(1, round(3 * sigma_s * GRID_HZ))
    x = torch.arange(-half, half + 1, dtype=torch.float64) / GRID_HZ
    kernel = torch.exp(-0.5 * (x / sigma_s) ** 2)
    return F.conv1d(grid[None, None], kernel[None, None], padding=half)[0, 0]


def _av_sync(audio_env, audio_times, motion, motion_times, start, duration, max_lag_s, sigma_s):
    n = int(math.ceil(duration * GRID_HZ)) + 1
    a = _on_grid(audio_env, audio_times, start, n, sigma_s)
    v = _on_grid(motion, motion_times, start, n, sigma_s)
    a, v = a - a.mean(), v - v.mean()
    na, nv = float(a.norm()), float(v.norm())
    if na < 1e-12 or nv < 1e-12:
        return None, a, v, None
    max_lag = min(int(round(max_lag_s * GRID_HZ)), n - 1)
    lags = torch.arange(-max_lag, max_lag + 1)
    # corr[lag] = sum_t a[t + lag] v[t]: peaks at lag = how much later the sound comes
    # conv1d is a cross-correlation: out[j] = sum_t a_pad[j + t] v[t] with a_pad = a shifted by max_lag
    corr = F.conv1d(F.pad(a, (max_lag, max_lag))[None, None], v[None, None])[0, 0] / (na * nv)
    k = int(corr.argmax())
    shift = 0.0
    if 0 < k < corr.numel() - 1:
        y0, y1, y2 = float(corr[k - 1]), float(corr[k]), float(corr[k + 1])
        denom = y0 - 2 * y1 + y2
        shift = 0.5 * (y0 - y2) / denom if abs(denom) > 1e-12 else 0.0
    lag = (float(lags[k]) + shift) / GRID_HZ
    return AVSync(lag_s=round(lag, 4), strength=round(float(corr[k]), 4)), a, v, (lags.double() / GRID_HZ, corr)


def _instant_moments(a: torch.Tensor, v: torch.Tensor, start: float, lag_s: float, k: int = 3) -> list[float]:
    """Times (audio clock) of the top-k peaks of a(t) * v(t - lag), at least 0.1 s apart."""
    shift = int(round(lag_s * GRID_HZ))
    v_shift = torch.roll(v.clamp(min=0), shifts=shift)
    if shift > 0:
        v_shift[:shift] = 0
    elif shift < 0:
        v_shift[shift:] = 0
    prod = a.clamp(min=0) * v_shift
    chosen: list[int] = []
    if float(prod.max()) <= 0:
        return []
    order = torch.argsort(prod, descending=True).tolist()
    for i in order:
        if prod[i] < 0.1 * prod.max() or len(chosen) == k:
            break
        if all(abs(i - j) >= 0.1 * GRID_HZ for j in chosen):
            chosen.append(i)
    return sorted(round(start + i / GRID_HZ, 3) for i in chosen)


def describe(
    path_or_clip: str | os.PathLike | AVClip,
    *,
    start: float = 0.0,
    duration: float | None = None,
    max_fps: float = 30.0,
    analysis_size: int = 64,
    min_rise_db: float = 6.0,
    min_flux_db: float = 1.5,
    active_db: float = 20.0,
    max_lag_s: float = 0.5,
    smooth_s: float = 0.02,
) -> Description:
    """Describe a clip in Schaeffer's and the event-specific layers' terms, without weights.

    Args:
        path_or_clip: a media file (audio-only and video-only work) or an :class:`AVClip`.
        start, duration: the window to analyse (files only).
        max_fps: video is decoded at ``min(source fps, max_fps)`` frames per second.
        analysis_size: frames are resized to ``analysis_size`` (square) for motion energy.
        min_rise_db: an onset counts when the level rises this much into it...
        min_flux_db: ...and its spectral flux is at least this (mean dB rise per mel band per 10 ms).
        active_db: the sound counts as sounding within this many dB of its peak.
        max_lag_s: largest audio-video lag searched.
        smooth_s: Gaussian smoothing (s) of both envelopes before cross-correlation.

    Returns:
        :class:`Description`.

    Raises:
        MediaError: the file cannot be read (see :func:`avperceive.io.load_clip`).
    """
    if isinstance(path_or_clip, AVClip):
        clip = path_or_clip
    else:
        from ..io.load import probe

        info = probe(path_or_clip)
        fps = max_fps if info["fps"] and info["fps"] > max_fps else None  # None: every frame
        clip = load_clip(path_or_clip, start=start, duration=duration, fps=fps, size=analysis_size,
                         sample_rate=ANALYSIS_SAMPLE_RATE)
    cues: list[str] = []
    features: dict[str, float] = {}
    timeline: dict = {"start": clip.start, "duration": clip.duration}
    audio_onsets: list[float] = []
    motion_peaks: list[float] = []
    a_cues = m_cues = None

    if clip.has_audio:
        wave = clip.audio.mean(0)
        a_cues = _audio_cues(wave, clip.sample_rate, min_rise_db, active_db, min_flux_db)
        frame_s = a_cues["hop"] / clip.sample_rate
        audio_onsets = [round(clip.start + i * frame_s, 3) for i in a_cues["onsets"]]
        features.update(audio_events=len(audio_onsets), sounding_s=round(a_cues["active_s"], 3))
        cues.append("audio")
        timeline.update(wave=wave, sample_rate=clip.sample_rate, onset_env=a_cues["env"], level_db=a_cues["db"],
                        env_times=clip.start + torch.arange(a_cues["env"].numel(), dtype=torch.float64) * frame_s)
    if clip.has_video and clip.num_frames >= 2:
        m_cues = _motion_cues(clip)
        motion_peaks = [round(float(m_cues["times"][k]), 3) for k in m_cues["peaks"]]
        features.update(motion_events=len(motion_peaks), moving_s=round(m_cues["active_s"], 3))
        cues.append("motion")
        timeline.update(motion=m_cues["energy"], motion_times=m_cues["times"])

    if a_cues is not None and not a_cues["silent"]:
        scores = _type_scores(len(audio_onsets), a_cues["active_s"])
        continuous = a_cues["active_s"] >= 0.6 * clip.duration
    elif m_cues is not None:
        scores = _type_scores(len(motion_peaks), m_cues["active_s"])
        continuous = m_cues["active_s"] >= 0.6 * clip.duration
    else:
        scores = _type_scores(0, 0.0)
        continuous = False

    av_sync, instant = None, []
    if a_cues is not None and m_cues is not None and not a_cues["silent"]:
        av_sync, a_grid, v_grid, corr = _av_sync(
            a_cues["env"].double(), timeline["env_times"], m_cues["energy"], m_cues["times"],
            clip.start, clip.duration, max_lag_s, smooth_s)
        if av_sync is not None:
            cues.append("av_sync")
            instant = _instant_moments(a_grid, v_grid, clip.start, av_sync.lag_s)
            timeline.update(av_lags=corr[0], av_corr=corr[1])
    elif a_cues is not None:
        instant = audio_onsets[:3]
    else:
        instant = motion_peaks[:3]

    scores = {k: round(v, 4) for k, v in scores.items()}
    return Description(
        perception_type=max(scores, key=scores.get),
        scores=scores,
        audio_onsets=audio_onsets,
        motion_peaks=motion_peaks,
        av_sync=av_sync,
        event_moments=EventMoments(instant=instant, onsets=audio_onsets if a_cues is not None else motion_peaks,
                                   continuous=bool(continuous)),
        duration=round(float(clip.duration), 4),
        has_audio=clip.has_audio,
        has_video=clip.has_video,
        cues=cues,
        features=features,
        path=clip.path,
        timeline=timeline,
    )
