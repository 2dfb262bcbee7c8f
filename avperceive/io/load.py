"""``load_clip``: decode only what is needed from a media file into an :class:`AVClip`.

Video goes through PyAV: the packet index (demuxed, not decoded) tells where the keyframes
are, so for sparse frame sampling the reader seeks to the keyframe before each wanted frame
and decodes forward only when that skips frames, skipping unreferenced frames (``NONREF``)
that are not wanted; frames are chosen by presentation time
(``frame.time``: variable-frame-rate safe, never ``index / fps``), and the chosen frames are
resized inside the pixel-format conversion with one swscale thread (``to_ndarray(width=,
height=, threads=1)``; see the PyAV notes in ``docs/io.md``). Audio inside containers is
decoded with PyAV and resampled with ``av.AudioResampler``; audio-only files that libsndfile
reads (WAV, FLAC, OGG, MP3) go through soundfile.
"""

from __future__ import annotations

import bisect
import math
import os
from collections.abc import Iterator
from fractions import Fraction
from typing import Literal

import av
import numpy as np
import soundfile as sf
import torch

from ..errors import MediaError
from .clip import AVClip, zero_modality

__all__ = ["load_clip", "probe"]

Want = bool | Literal["required"]

DEFAULT_SAMPLE_RATE = 16000  # rate of the silent track made for files without audio and no sample_rate
MAX_BAD_PACKETS = 50  # corrupt packets tolerated per stream before the file is declared unreadable
_SOUNDFILE_EXT = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".au", ".w64", ".caf"}


def _as_size(size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int):
        size = (size, size)
    height, width = (int(s) for s in size)
    if height < 1 or width < 1:
        raise ValueError(f"size must be positive (H, W), got {size}")
    return height, width


def _open(path: str) -> av.container.InputContainer:
    try:
        return av.open(path, mode="r")
    except av.FFmpegError as err:
        raise MediaError(path, f"not a readable media file ({type(err).__name__}: {err.strerror or err})") from err
    except (OSError, UnicodeDecodeError) as err:
        raise MediaError(path, f"cannot open: {err}") from err


def _packets(container, stream, path: str) -> Iterator:
    """Demux one stream, tolerating up to MAX_BAD_PACKETS corrupt packets."""
    bad = 0
    demux = container.demux(stream)
    while True:
        try:
            packet = next(demux)
        except StopIteration:
            return
        except av.FFmpegError as err:
            bad += 1
            if bad > MAX_BAD_PACKETS:
                raise MediaError(path, f"too many corrupt packets ({err})") from err
            continue
        yield packet


def _decode(container, stream, path: str, keep: set[int] | None = None) -> Iterator:
    """Decode one stream. With ``keep`` (packet pts), frames no other frame references are
    skipped (``skip_frame="NONREF"``) unless their pts is in ``keep``: skipping them changes
    no decoded picture, since nothing predicts from them."""
    bad = 0
    context = stream.codec_context
    for packet in _packets(container, stream, path):
        if keep is not None:
            context.skip_frame = "DEFAULT" if packet.pts is None or packet.pts in keep else "NONREF"
        try:
            frames = packet.decode()
        except av.FFmpegError as err:
            bad += 1
            if bad > MAX_BAD_PACKETS:
                raise MediaError(path, f"too many undecodable packets ({err})") from err
            continue
        yield from frames


def _stream_duration(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        start = stream.start_time or 0
        return float((stream.duration + start) * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return None


def probe(path: str | os.PathLike) -> dict:
    """What a file holds, without decoding: ``duration``, ``has_video``, ``has_audio``, ``fps``,
    ``width``, ``height``, ``sample_rate``, ``channels``. Raises :class:`MediaError`."""
    path = _check_path(path)
    if _use_soundfile(path):
        info = sf.info(path)
        return dict(duration=info.frames / info.samplerate, has_video=False, has_audio=True, fps=0.0,
                    width=0, height=0, sample_rate=info.samplerate, channels=info.channels)
    with _open(path) as container:
        vs = container.streams.video[0] if container.streams.video else None
        aus = container.streams.audio[0] if container.streams.audio else None
        durations = [d for d in (_stream_duration(container, s) for s in (vs, aus) if s is not None) if d]
        return dict(
            duration=max(durations) if durations else 0.0,
            has_video=vs is not None,
            has_audio=aus is not None,
            fps=float(vs.average_rate) if vs is not None and vs.average_rate else 0.0,
            width=vs.codec_context.width if vs is not None else 0,
            height=vs.codec_context.height if vs is not None else 0,
            sample_rate=aus.codec_context.sample_rate if aus is not None else 0,
            channels=aus.codec_context.channels if aus is not None else 0,
        )


def _check_path(path) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise MediaError(path, "no such file")
    if os.path.isdir(path):
        raise MediaError(path, "is a directory, not a media file")
    if os.path.getsize(path) == 0:
        raise MediaError(path, "empty file (0 bytes)")
    return path


def _use_soundfile(path: str) -> bool:
    if os.path.splitext(path)[1].lower() not in _SOUNDFILE_EXT:
        return False
    try:
        sf.info(path)
    except (RuntimeError, sf.LibsndfileError):
        return False
    return True


def _target_times(start: float, duration: float, num_frames: int | None, fps: float | None) -> list[float] | None:
    """Presentation times to sample (None: keep every frame in the window)."""
    if num_frames is not None:
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        return [start + (i + 0.5) * duration / num_frames for i in range(num_frames)]
    if fps is not None:
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        n = max(1, int(math.floor(duration * fps + 1e-6)))
        return [start + i / fps for i in range(n)]
    return None


def _to_array(frame, size: tuple[int, int] | None, interpolation: str) -> np.ndarray:
    if size is None:
        return frame.to_ndarray(format="rgb24", threads=1)
    height, width = size
    return frame.to_ndarray(format="rgb24", width=width, height=height, interpolation=interpolation, threads=1)


def _read_video(path, start, duration, targets, size, interpolation, thread_type, skip_nonref=True):
    """Returns (frames uint8 (T,H,W,3), times float64 (T,), stream average fps)."""
    with _open(path) as container:
        vs = container.streams.video[0]
        vs.thread_type = thread_type
        tb = vs.time_base
        avg_fps = float(vs.average_rate) if vs.average_rate else 0.0
        end = start + duration
        if targets is None:
            frames, times = [], []
            if start > 0:
                container.seek(int(start / tb), stream=vs, backward=True)
            for frame in _decode(container, vs, path):
                if frame.time is None:
                    continue
                if frame.time >= end:
                    break
                if frame.time + 1e-9 < start:
                    continue
                frames.append(_to_array(frame, size, interpolation))
                times.append(frame.time)
            return frames, times, avg_fps

        # Packet index: presentation times of all packets and of the keyframes (demux only, cheap).
        keyframes: list[float] = []
        pts_times: list[float] = []
        pts_int: list[int] = []
        for packet in _packets(container, vs, path):
            if packet.pts is None or packet.size == 0:
                continue
            t = float(packet.pts * tb)
            pts_times.append(t)
            pts_int.append(int(packet.pts))
            if packet.is_keyframe:
                keyframes.append(t)
        pts_int.sort()
        pts_times.sort()
        keyframes.sort()
        # packets of the frames on screen at the targets: the last pts <= target (VFR-safe)
        keep = {pts_int[max(0, bisect.bisect_right(pts_times, t + 1e-9) - 1)] for t in targets} if pts_int else set()
        if not pts_times:
            raise MediaError(path, "video stream holds no frames")

        chosen: dict[float, tuple[float, np.ndarray]] = {}
        decoder = None
        cur = None  # last decoded frame with time <= the current target
        nxt = None  # look-ahead frame, time > the previous target
        ended = False
        for t in sorted(set(targets)):
            already = ended or (nxt is not None and nxt.time > t)  # the frame on screen at t is decoded
            if not already:
                k = bisect.bisect_right(keyframes, t) - 1
                key_time = keyframes[k] if k >= 0 else pts_times[0]
                latest = nxt if nxt is not None else cur
                if decoder is None or latest is None or key_time > latest.time:
                    container.seek(int(round(key_time / tb)), stream=vs, backward=True)
                    decoder = _decode(container, vs, path, keep=keep if skip_nonref else None)
                    cur = nxt = None
                elif nxt is not None:
                    cur, nxt = nxt, None
                for frame in decoder:
                    if frame.time is None:
                        continue
                    if frame.time > t + 1e-9:
                        nxt = frame
                        break
                    cur = frame
                else:
                    ended = True  # end of stream: the last frame stays on screen
            found = cur if cur is not None else nxt
            if found is None:
                raise MediaError(path, f"no decodable video frame at {t:.3f} s")
            chosen[t] = (found.time, _to_array(found, size, interpolation))
        frames = [chosen[t][1] for t in targets]
        times = [chosen[t][0] for t in targets]
        return frames, times, avg_fps


def _resample(chunks: list, path: str, rate: int | None, mono: bool):
    """Concatenate decoded AudioFrames resampled to float planar at ``rate``. Returns (C, S), rate."""
    if not chunks:
        return np.zeros((1 if mono else 2, 0), np.float32), rate
    first = chunks[0]
    out_rate = rate or first.sample_rate
    layout = "mono" if mono else first.layout.name
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=out_rate)
    parts = []
    try:
        for frame in chunks:
            frame.pts = None
            parts.extend(f.to_ndarray() for f in resampler.resample(frame))
        parts.extend(f.to_ndarray() for f in resampler.resample(None))
    except (av.FFmpegError, ValueError) as err:
        raise MediaError(path, f"cannot resample audio ({err})") from err
    return np.concatenate(parts, axis=1).astype(np.float32, copy=False), out_rate


def _read_audio_av(path, start, duration, sample_rate, mono):
    with _open(path) as container:
        aus = container.streams.audio[0]
        tb = aus.time_base
        if start > 0:
            container.seek(int(start / tb), stream=aus, backward=True)
        end = start + duration
        chunks, first_time = [], None
        for frame in _decode(container, aus, path):
            t = frame.time if frame.time is not None else None
            if t is not None and t >= end:
                break
            if t is not None and frame.samples and t + frame.samples / frame.sample_rate <= start:
                continue
            if first_time is None:
                first_time = t if t is not None else 0.0
            chunks.append(frame)
        audio, rate = _resample(chunks, path, sample_rate, mono)
        rate = rate or aus.codec_context.sample_rate or DEFAULT_SAMPLE_RATE
        return audio, int(rate), (first_time if first_time is not None else start)


def _read_audio_sf(path, start, duration, sample_rate, mono):
    info = sf.info(path)
    begin = int(round(start * info.samplerate))
    stop = None if duration is None else begin + int(round(duration * info.samplerate))
    try:
        data, native = sf.read(path, start=begin, stop=stop, dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as err:
        raise MediaError(path, f"cannot decode audio ({err})") from err
    audio = np.ascontiguousarray(data.T)  # (C, S)
    if mono and audio.shape[0] > 1:
        audio = audio.mean(axis=0, keepdims=True)
    if sample_rate and sample_rate != native and audio.shape[1]:
        layout = {1: "mono", 2: "stereo"}.get(audio.shape[0])
        if layout is None:  # resample channel by channel through a mono resampler
            chans = [_resample_array(a[None], native, sample_rate, "mono", path) for a in audio]
            n = min(c.shape[1] for c in chans)
            audio = np.concatenate([c[:, :n] for c in chans], axis=0)
        else:
            audio = _resample_array(audio, native, sample_rate, layout, path)
        native = sample_rate
    return audio, int(native), start


def _resample_array(audio: np.ndarray, rate_in: int, rate_out: int, layout: str, path: str) -> np.ndarray:
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio, dtype=np.float32), format="fltp", layout=layout)
    frame.sample_rate = rate_in
    frame.time_base = Fraction(1, rate_in)
    out, _ = _resample([frame], path, rate_out, mono=(layout == "mono"))
    return out


def _fit_audio(audio: np.ndarray, rate: int, first_time: float, start: float, duration: float) -> np.ndarray:
    """Place decoded samples (first one at ``first_time``) on the clip grid [start, start + duration)."""
    n = int(round(duration * rate))
    offset = int(round((start - first_time) * rate))
    out = np.zeros((audio.shape[0], n), np.float32)
    if offset >= 0:
        piece = audio[:, offset : offset + n]
        out[:, : piece.shape[1]] = piece
    else:
        piece = audio[:, : max(n + offset, 0)]
        out[:, -offset : -offset + piece.shape[1]] = piece
    return out


def _want(name: str, value) -> Want:
    if value not in (True, False, "required"):
        raise ValueError(f"{name} must be True, False or 'required', got {value!r}")
    return value


def load_clip(
    path: str | os.PathLike,
    *,
    start: float = 0.0,
    duration: float | None = None,
    num_frames: int | None = None,
    fps: float | None = None,
    size: int | tuple[int, int] | None = None,
    sample_rate: int | None = None,
    mono: bool = True,
    video: Want = True,
    audio: Want = True,
    interpolation: str = "AREA",
    thread_type: str | None = None,
    skip_nonref: bool = True,
) -> AVClip:
    """Decode the part of a media file that is asked for.

    Args:
        path: video container (mp4, mkv, webm, mov, ...) or audio file.
        start: first instant (seconds, on the file's clock).
        duration: seconds to read from ``start`` (default: to the end).
        num_frames: sample this many frames, the frames on screen at the centres of
            ``num_frames`` equal intervals of the window (AVE: 10 frames for 10 s = one per
            1-s segment). Exclusive with ``fps``.
        fps: sample frames on screen at ``start + k / fps``. Neither: every frame in the window.
        size: resize to ``(H, W)`` (an int means square) during pixel-format conversion.
        sample_rate: resample audio to this rate (PyAV's resampler); default: the file's rate.
        mono: downmix to one channel.
        video, audio: ``True`` decode if present (a missing stream gives zeros of the normal
            shape and ``has_video/has_audio=False``), ``False`` skip (zeros), ``"required"``
            raise :class:`MediaError` if the stream is absent.
        interpolation: swscale interpolation for resizing (``"AREA"``, ``"BILINEAR"``, ``"FAST_BILINEAR"``...).
        thread_type: decoder threading. Default: ``"AUTO"`` (frame + slice threads) when every
            frame is decoded, ``"SLICE"`` when sampling frames (frame threading decodes frames
            ahead that a seek then throws away: 2x slower here). Use ``"NONE"`` in DataLoader workers.
        skip_nonref: when sampling frames, do not decode frames that no other frame references
            (e.g. most H.264 B-frames) unless they are wanted; pixels are unchanged.

    Returns:
        :class:`AVClip` with video uint8 ``(T, H, W, 3)`` and audio float32 ``(C, S)``,
        ``S = round(duration * sample_rate)``.

    Raises:
        MediaError: the file is missing, empty, not media, truncated beyond use, or lacks a
            ``"required"`` stream. The message names the file and the reason.
    """
    video, audio = _want("video", video), _want("audio", audio)
    if num_frames is not None and fps is not None:
        raise ValueError("give num_frames or fps, not both")
    if start < 0 or (duration is not None and duration <= 0):
        raise ValueError(f"need start >= 0 and duration > 0, got start={start}, duration={duration}")
    size = _as_size(size)
    path = _check_path(path)
    info = probe(path)
    if video == "required" and not info["has_video"]:
        raise MediaError(path, "no video stream")
    if audio == "required" and not info["has_audio"]:
        raise MediaError(path, "no audio stream")
    if not info["has_video"] and not info["has_audio"]:
        raise MediaError(path, "no audio or video stream")
    file_duration = info["duration"]
    if duration is None:
        if file_duration <= 0:
            raise MediaError(path, "unknown duration; pass duration=")
        duration = max(file_duration - start, 0.0)
        if duration <= 0:
            raise MediaError(path, f"start={start} s is past the end ({file_duration:.3f} s)")
    targets = _target_times(start, duration, num_frames, fps)

    has_video = bool(video) and info["has_video"]
    frames_fps = 0.0
    if has_video:
        if thread_type is None:
            thread_type = "AUTO" if targets is None else "SLICE"
        frames, times, avg_fps = _read_video(path, start, duration, targets, size, interpolation, thread_type,
                                              skip_nonref)
        if not frames:
            raise MediaError(path, f"no decodable video frame in [{start:.3f}, {start + duration:.3f}) s")
        video_t = torch.from_numpy(np.stack(frames))
        times_t = torch.tensor(times, dtype=torch.float64)
        frames_fps = fps if fps is not None else (num_frames / duration if num_frames is not None else avg_fps)
    else:
        count = len(targets) if targets is not None else int(round(duration * (info["fps"] or 0)))
        video_t = zero_modality("video", num_frames=count, size=size or (0, 0))
        times_t = torch.tensor(targets if targets is not None else [start + i / info["fps"] for i in range(count)],
                               dtype=torch.float64)
        frames_fps = fps if fps is not None else (num_frames / duration if num_frames else info["fps"])

    has_audio = bool(audio) and info["has_audio"]
    if has_audio:
        if info["has_video"] or not _use_soundfile(path):
            samples, rate, first_time = _read_audio_av(path, start, duration, sample_rate, mono)
        else:
            samples, rate, first_time = _read_audio_sf(path, start, duration, sample_rate, mono)
        audio_t = torch.from_numpy(_fit_audio(samples, rate, first_time, start, duration))
    else:
        rate = int(sample_rate or info["sample_rate"] or DEFAULT_SAMPLE_RATE)
        channels = 1 if mono else max(info["channels"], 2) if info["has_audio"] else (1 if mono else 2)
        audio_t = zero_modality("audio", channels=channels, samples=int(round(duration * rate)))

    return AVClip(
        video=video_t,
        frame_times=times_t,
        audio=audio_t,
        sample_rate=int(rate),
        fps=float(frames_fps),
        duration=float(duration),
        has_video=has_video,
        has_audio=has_audio,
        path=path,
        start=float(start),
        info=info,
    )
