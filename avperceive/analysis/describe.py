"""``describe``: a weight-free perceptual description of an audio-video clip.

In the spirit of signal-based Schaeffer analysis, the clip's sound is typed with the temporal
typology that Guo, Tørresen & Jensenius (SoundActions + EoPMA, TISMIR 2026, §3, "PerceptionType") restate: *impulsive*
(a short abrupt event), *sustained* (a long event with stable energy), *iterative* (a long
event with fluctuating energy: repeated attacks). The cues are

* audio: the spectral-flux onset envelope (:func:`avperceive.signal.onset_strength`, Böck &
  Widmer 2013) on a 10-ms hop, and its peaks (:func:`avperceive.signal.onset_detect`, the
  peak-picking rule of Böck, Krebs & Schedl 2012), kept as *audio onsets* when the flux stands
  ``min_flux_db`` (dB per mel band per 10 ms) above its running median over ±0.5 s: a
  new attack stands out of the flux of whatever sound continues under it (a drone, a pad,
  noise), while the rattle of a decay or the swell of a drone does not. The RMS envelope gives
  the sounding time (level within ``active_db`` of the peak);
* video: a visual *onset* envelope, one value per frame at the frame's time: the rise of
  the motion-compensated frame novelty (:func:`avperceive.signal.frame_novelty`: content unlike
  each of the last 0.2 s of frames and unexplained by block motion, so a flash counts at its
  first frame only, never at its off-edge) plus the change of the block-motion field
  (:func:`avperceive.signal.motion_change`: an object reversing, starting or stopping, as at an
  impact). Its peaks are the *motion peaks*; the plain motion energy
  (:func:`avperceive.signal.motion_energy`) gives the moving time;
* audio-video synchronisation: the normalised cross-correlation of the audio onset envelope
  and the visual onset envelope, both placed on a 5-ms grid and smoothed; the lag of its maximum
  (parabolic refinement) is ``lag_s`` (positive: the sound comes after the picture) and its
  value is ``strength`` (a Pearson correlation in [-1, 1]). A visual event is timed at the
  first frame that shows it, the convention of flash-and-beep sync meters.

Type scores: with ``n`` audio onsets and sounding time ``a`` seconds,
``iterative = sigmoid(2 (n - 2.5))``, ``long = sigmoid((a - 0.5) / 0.1)``,
``sustained = (1 - iterative) long``, ``impulsive = (1 - iterative)(1 - long)``; they sum to 1
and ``perception_type`` is their argmax. Without audio the same rule runs on the motion
peaks and the time the motion energy stays above a quarter of its peak.

Event moments follow the event types of Senocak et al. ("Event-Specific Audio-Visual Fusion
Layers", WACV 2023, §3): *instant* moments (the strongest co-occurrences of a sound onset and a
visible change, the peaks of the product of the two envelopes after lag compensation), *onset*
moments (the audio onsets) and whether the clip is *continuous* (sounding, or moving, over at
least 60 % of its duration).
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import AvperceiveError
from ..io import MEDIA_SUFFIXES, AVClip, load_clip
from ..signal.envelopes import frame_novelty, motion_change, motion_energy, rms
from ..signal.onsets import onset_detect, onset_strength

__all__ = ["Description", "DescribeFailure", "AVSync", "EventMoments", "describe", "describe_many",
           "expand_media_paths", "ANALYSIS_SAMPLE_RATE", "MEDIA_SUFFIXES"]

ANALYSIS_SAMPLE_RATE = 16000
GRID_HZ = 200.0  # common time grid of the audio-video cross-correlation (5 ms)
BASELINE_S = 0.5  # half-width of the running median the onset flux must stand out of
BLOCK, RADIUS = 8, 4  # block matching on the analysis frames: 8x8-pixel blocks, +-4-pixel search
NOVELTY_MEMORY_S = 0.2  # a visual change that reverts within this time is one onset (its start)


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
        motion_peaks: times (s) of the peaks of the visual onset envelope (each at the first frame
            that shows the change: a flash once, at its first frame; an object reversing, at its turning frame).
        av_sync: :class:`AVSync`, or ``None`` without both modalities.
        event_moments: :class:`EventMoments`.
        duration: seconds analysed.
        has_audio, has_video: streams present (and decoded).
        cues: the cues used: ``"audio"``, ``"motion"``, ``"av_sync"``.
        features: the numbers behind the scores.
        path: the source file, if any.
        timeline: envelopes for plotting (not part of ``to_dict``), among them ``rejected_onsets``:
            ``(time, reason)`` of the onset-envelope peaks that did not count.
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


@dataclass
class DescribeFailure:
    """A file :func:`describe_many` could not describe: ``source`` and ``reason`` (one line)."""

    source: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"source": self.source, "error": self.reason}


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


def _running_median(x: torch.Tensor, half: int) -> torch.Tensor:
    """Median of ``x[i - half : i + half + 1]`` (edges replicated), ``(T,)`` -> ``(T,)``."""
    padded = F.pad(x[None, None], (half, half), mode="replicate")[0, 0] if x.numel() > half else x
    if padded.numel() < 2 * half + 1:
        return torch.full_like(x, float(x.median()))
    return padded.unfold(0, 2 * half + 1, 1).median(dim=-1).values


def _audio_cues(wave: torch.Tensor, sr: int, min_flux_db: float, active_db: float, quiet_db: float = 30.0) -> dict:
    """Onset envelope, RMS level, onsets and rejected onset candidates of a mono waveform ``(samples,)``."""
    hop = max(1, round(sr * 0.01))
    n_fft = 2 ** math.ceil(math.log2(sr * 0.064))
    if wave.numel() < n_fft:
        wave = F.pad(wave, (0, n_fft - wave.numel()))
    env = onset_strength(wave, sr, n_fft=n_fft, hop_length=hop, n_mels=128, top_db=80.0)
    # timing: a 32-ms window places attacks more sharply than the 64-ms one that resolves low hits under a bed
    timing = onset_strength(wave, sr, n_fft=n_fft // 2, hop_length=hop, n_mels=64, top_db=80.0)
    level = rms(wave, frame_length=n_fft, hop_length=hop)
    db = 20 * torch.log10(level + 1e-6)
    frames = min(env.numel(), db.numel())
    env, db, timing = env[:frames], db[:frames], timing[:frames]
    peak = float(db.max())
    silent = peak < -70.0
    baseline = _running_median(env, round(BASELINE_S * sr / hop))
    picked = [] if silent else onset_detect(onset_envelope=env, sample_rate=sr, hop_length=hop).tolist()
    # the last frames see the zero padding past the end of the signal, not the signal
    edge = frames - n_fft // (2 * hop)
    onsets: list[int] = []
    rejected: list[tuple[int, str]] = []
    for i in picked:
        if i >= edge:
            rejected.append((i, "end of signal"))
        elif float(db[i : i + round(0.05 * sr / hop) + 1].max()) < peak - quiet_db:
            rejected.append((i, f"level > {quiet_db:g} dB below the clip's peak"))
        elif float(env[i] - baseline[i]) < min_flux_db:
            rejected.append((i, f"flux < running median + {min_flux_db:g} dB"))
        else:
            onsets.append(i)
    active = db > peak - active_db
    active_s = 0.0 if silent else float(active.sum()) * hop / sr
    return dict(hop=hop, env=env, timing=timing, db=db, baseline=baseline, onsets=onsets, rejected=rejected,
                active_s=active_s, frame_rate=sr / hop, silent=silent)


def _visual_onset_envelope(clip: AVClip) -> torch.Tensor:
    """Visual onset strength per frame ``(T,)``: rise of motion-compensated novelty + motion-direction change."""
    memory = max(2, round(NOVELTY_MEMORY_S * clip.fps)) if clip.fps > 0 else 2
    if min(clip.size) < BLOCK or clip.num_frames < 3:
        novelty = frame_novelty(clip.video, memory=memory).double()
        change = torch.zeros_like(novelty)
    else:
        novelty = frame_novelty(clip.video, memory=memory, block=BLOCK, radius=RADIUS).double()
        change = motion_change(clip.video, block=BLOCK, radius=RADIUS).double()
    rise = (novelty - F.pad(novelty, (1, 0))[:-1]).clamp(min=0)
    return rise + change


def _peaks(x: torch.Tensor) -> list[int]:
    """Local maxima of ``x`` ``(T,)`` at or above a quarter of its maximum and above twice its median."""
    peaks: list[int] = []
    if x.numel() < 2 or float(x.max()) <= 1e-4:
        return peaks
    top, floor = float(x.max()), float(x.median())
    for k in range(1, x.numel()):
        right = float(x[k + 1]) if k + 1 < x.numel() else -1.0
        if x[k] >= x[k - 1] and x[k] > right and x[k] >= 0.25 * top and x[k] > 2 * floor:
            peaks.append(k)
    return peaks


def _motion_cues(clip: AVClip) -> dict:
    energy = motion_energy(clip.video).double()
    t = clip.frame_times.double()
    visual = _visual_onset_envelope(clip)
    moving = energy > 0.25 * float(energy.max()) if energy.numel() else energy.bool()
    frame_s = 1.0 / clip.fps if clip.fps > 0 else 0.0
    # energy[k] measures the change between frames k-1 and k: drawn between their times
    energy_times = torch.cat([t[:1], (t[1:] + t[:-1]) / 2]) if t.numel() else t
    return dict(energy=energy, energy_times=energy_times, visual=visual, times=t, peaks=_peaks(visual),
                active_s=float(moving.sum()) * frame_s)


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
    start: float = 0.0, duration: float | None = None,  # the window (files only)
    max_fps: float = 30.0, analysis_size: int = 64,  # video decoding
    min_flux_db: float = 1.0, active_db: float = 20.0,  # onsets, sounding
    max_lag_s: float = 0.5, smooth_s: float = 0.02,  # audio-video sync
) -> Description:
    """Describe a clip in Schaeffer's and the event-specific layers' terms, without weights.

    Args:
        path_or_clip: a media file (audio-only and video-only work) or an :class:`AVClip`.
        start, duration: the window to analyse (files only).
        max_fps: video is decoded at ``min(source fps, max_fps)`` frames per second.
        analysis_size: frames are resized to ``analysis_size`` (square) for motion energy.
        min_flux_db: an onset-envelope peak counts as an onset when its spectral flux (mean dB rise per
            mel band per 10 ms) is at least this much above the envelope's running median over ±0.5 s.
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
        a_cues = _audio_cues(wave, clip.sample_rate, min_flux_db, active_db)
        frame_s = a_cues["hop"] / clip.sample_rate
        audio_onsets = [round(clip.start + i * frame_s, 3) for i in a_cues["onsets"]]
        features.update(audio_events=len(audio_onsets), sounding_s=round(a_cues["active_s"], 3))
        cues.append("audio")
        timeline.update(wave=wave, sample_rate=clip.sample_rate, onset_env=a_cues["env"], level_db=a_cues["db"],
                        onset_baseline=a_cues["baseline"], min_flux_db=min_flux_db,
                        rejected_onsets=[(round(clip.start + i * frame_s, 3), why) for i, why in a_cues["rejected"]],
                        env_times=clip.start + torch.arange(a_cues["env"].numel(), dtype=torch.float64) * frame_s)
    if clip.has_video and clip.num_frames >= 2:
        m_cues = _motion_cues(clip)
        motion_peaks = [round(float(m_cues["times"][k]), 3) for k in m_cues["peaks"]]
        features.update(motion_events=len(motion_peaks), moving_s=round(m_cues["active_s"], 3))
        cues.append("motion")
        timeline.update(motion=m_cues["energy"], motion_times=m_cues["energy_times"], visual_onsets=m_cues["visual"],
                        visual_times=m_cues["times"])

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
            a_cues["timing"].double(), timeline["env_times"], m_cues["visual"], m_cues["times"],
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


def expand_media_paths(inputs: str | os.PathLike | AVClip | Iterable[str | os.PathLike | AVClip]) -> list:
    """Paths, folders (their media files by :data:`MEDIA_SUFFIXES`, sorted, not recursive) and clips as one list."""
    items = [inputs] if isinstance(inputs, (str, os.PathLike, AVClip)) else list(inputs)
    out: list = []
    for item in items:
        if isinstance(item, AVClip):
            out.append(item)
        elif Path(item).is_dir():
            out += [str(p) for p in sorted(Path(item).iterdir()) if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES]
        else:
            out.append(os.fspath(item))
    return out


def describe_many(
    inputs: str | os.PathLike | AVClip | Iterable[str | os.PathLike | AVClip],
    *,
    on_error: str = "skip",
    progress: bool | None = None,
    **kwargs,
) -> Iterator[Description | DescribeFailure]:
    """Describe many files (folders expand to their media files), one result per item, in order.

    Args:
        inputs: files, folders (see :func:`expand_media_paths`) or :class:`AVClip` s.
        on_error: ``"skip"``: a file that cannot be read yields a :class:`DescribeFailure` (source and
            one-line reason) and the others go on; ``"raise"``: the error propagates.
        progress: a tqdm bar on stderr; ``None``: only when there are several items and stderr is a terminal.
        kwargs: passed to :func:`describe` (``start``, ``duration``, ``max_lag_s``, ...).

    Yields:
        :class:`Description` or :class:`DescribeFailure`, one per item.

    Example:
        >>> results = list(describe_many(["a.mp4", "clips/"]))
        >>> ok = [r for r in results if isinstance(r, Description)]
    """
    if on_error not in ("skip", "raise"):
        raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
    items = expand_media_paths(inputs)
    if progress is None:
        progress = len(items) > 1 and sys.stderr.isatty()
    from tqdm.auto import tqdm

    with tqdm(total=len(items), desc="describe", unit="file", disable=not progress, file=sys.stderr) as bar:
        for item in items:
            try:
                result = describe(item, **kwargs)
            except (AvperceiveError, OSError) as err:
                if on_error == "raise":
                    raise
                source = item.path or "<AVClip>" if isinstance(item, AVClip) else str(item)
                reason = str(err).splitlines()[0] if str(err) else type(err).__name__
                if isinstance(err, AvperceiveError) and reason.startswith(f"{source}: "):
                    reason = reason[len(source) + 2 :]
                result = DescribeFailure(source=source, reason=reason)
            bar.update(1)
            yield result
