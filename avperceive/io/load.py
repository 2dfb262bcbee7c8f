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
import contextlib
import math
import os
import stat
from collections.abc import Iterator
from fractions import Fraction
from typing import Literal

import av
import numpy as np
import soundfile as sf
import torch

from ..errors import ConfigError, MediaError
from .clip import AVClip, zero_modality

__all__ = ["load_clip", "probe", "MEDIA_SUFFIXES"]

#: file suffixes that folder expansion (``describe_many``, ``predict``) looks for.
MEDIA_SUFFIXES = (
    ".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".mpg", ".mpeg", ".flv",
    ".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".aiff", ".aif",
)

Want = bool | Literal["required"]

DEFAULT_SAMPLE_RATE = 16000  # rate of the silent track made for files without audio and no sample_rate
MAX_BAD_PACKETS = 50  # corrupt packets tolerated per stream before the file is declared unreadable
#: Largest array (bytes) load_clip plans from a duration rather than from decoded data: the silent
#: track of a file without audio, the sample grid of a window, the frames of ``fps=`` sampling. A
#: header or a timestamp claiming 1000 hours then fails with a MediaError instead of allocating.
MAX_PLANNED_BYTES = 1 << 30
#: A container's claimed duration is replaced by its last packet's end when it claims this much more.
DURATION_SLACK_S = 0.5
_SOUNDFILE_EXT = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".au", ".w64", ".caf"}


def _as_size(size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int):
        size = (size, size)
    height, width = (int(s) for s in size)
    if height < 1 or width < 1:
        raise ConfigError(f"size must be positive (H, W), got {size}")
    return height, width


def _encodable(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _open(path: str) -> av.container.InputContainer:
    """Open with PyAV; a name that is not valid UTF-8 (surrogate-escaped bytes) goes through a file object."""
    try:
        if _encodable(path):
            return av.open(path, mode="r")
        return av.open(open(os.fsencode(path), "rb"), mode="r")  # the container closes the file object
    except av.FFmpegError as err:
        raise MediaError(path, f"not a readable media file ({type(err).__name__}: {err.strerror or err})") from err
    except (OSError, UnicodeError, ValueError) as err:
        raise MediaError(path, f"cannot open: {err}") from err


def _sf_info(path: str):
    """``soundfile.info`` through a file object (libsndfile cannot take names that are not UTF-8)."""
    with open(os.fsencode(path), "rb") as fh:
        return sf.info(fh)


def _planned(path: str, nbytes: float, what: str) -> None:
    """Refuse to allocate ``nbytes`` planned from a duration (see :data:`MAX_PLANNED_BYTES`)."""
    if nbytes > MAX_PLANNED_BYTES:
        raise MediaError(
            path, f"{what} would need {nbytes / 2**30:.1f} GiB (limit {MAX_PLANNED_BYTES / 2**30:.0f} GiB); "
            "pass duration= (and num_frames=) to read a window"
        )


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


def _packet_end(container, streams: list, claimed: float) -> float:
    """End (s, file clock) of the last packet of ``streams``: what the file holds, not what its header says.

    Seeks to the last keyframe before the claimed end and demuxes (never decodes) from there to
    the end of the file; when that finds nothing (a header claiming more than the file holds,
    no index), demuxes the whole file from the start. Returns 0.0 when no packet has a time.
    """

    def scan() -> float:
        end = 0.0
        with contextlib.suppress(av.FFmpegError):  # a corrupt tail: what was demuxed so far is the end
            for packet in container.demux(streams):
                if packet.pts is None or packet.time_base is None:
                    continue
                end = max(end, float((packet.pts + max(packet.duration or 0, 0)) * packet.time_base))
        return end

    if claimed > 0:
        with contextlib.suppress(av.FFmpegError):  # no seek near the claimed end: scan from the start
            container.seek(int(claimed * av.time_base), backward=True, any_frame=False)
            end = scan()
            if end > 0:
                return end
    try:
        container.seek(0, backward=True, any_frame=False)
    except av.FFmpegError:
        return 0.0
    return scan()


def probe(path: str | os.PathLike) -> dict:
    """What a file holds, without decoding: ``duration``, ``has_video``, ``has_audio``, ``fps``,
    ``width``, ``height``, ``sample_rate``, ``channels``. Raises :class:`MediaError`.

    ``duration`` is the container's claim unless the packets end more than
    :data:`DURATION_SLACK_S` earlier (a corrupt or lying header, a truncated file): then it is
    the end of the last packet (demuxed, not decoded).
    """
    path = _check_path(path)
    if _use_soundfile(path):
        info = _sf_info(path)
        return dict(duration=info.frames / info.samplerate, has_video=False, has_audio=True, fps=0.0,
                    width=0, height=0, sample_rate=info.samplerate, channels=info.channels)
    with _open(path) as container:
        vs = container.streams.video[0] if container.streams.video else None
        aus = container.streams.audio[0] if container.streams.audio else None
        durations = [d for d in (_stream_duration(container, s) for s in (vs, aus) if s is not None) if d]
        duration = max(durations) if durations else 0.0
        streams = [s for s in (vs, aus) if s is not None]
        if streams:
            end = _packet_end(container, streams, duration)
            if end > 0 and (duration <= 0 or duration > end + DURATION_SLACK_S):
                duration = end
        return dict(
            duration=duration,
            has_video=vs is not None,
            has_audio=aus is not None,
            fps=float(vs.average_rate) if vs is not None and vs.average_rate else 0.0,
            width=vs.codec_context.width if vs is not None else 0,
            height=vs.codec_context.height if vs is not None else 0,
            sample_rate=aus.codec_context.sample_rate if aus is not None else 0,
            channels=aus.codec_context.channels if aus is not None else 0,
        )


def _check_path(path) -> str:
    """The path as ``str`` (bytes names are surrogate-escaped), or :class:`MediaError` when it is not a
    readable, non-empty regular file: a FIFO or a device is refused before anything opens it (reading
    a named pipe blocks, ``/dev/zero`` never ends)."""
    path = os.fsdecode(os.fspath(path))
    try:
        st = os.stat(path)
    except FileNotFoundError as err:
        if os.path.islink(path):
            raise MediaError(path, f"broken symbolic link (points to {os.readlink(path)!r})") from err
        raise MediaError(path, "no such file") from err
    except OSError as err:  # ELOOP (a symlink loop), ENAMETOOLONG, EACCES on a parent folder...
        raise MediaError(path, f"cannot open: {err.strerror or err}") from err
    if stat.S_ISDIR(st.st_mode):
        raise MediaError(path, "is a directory, not a media file")
    if not stat.S_ISREG(st.st_mode):
        kind = "a named pipe" if stat.S_ISFIFO(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode) or \
            stat.S_ISBLK(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file"
        raise MediaError(path, f"is {kind}, not a media file")
    if st.st_size == 0:
        raise MediaError(path, "empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise MediaError(path, "cannot open: permission denied")
    return path


def _use_soundfile(path: str) -> bool:
    if os.path.splitext(path)[1].lower() not in _SOUNDFILE_EXT:
        return False
    try:
        _sf_info(path)
    except (RuntimeError, sf.LibsndfileError, OSError):
        return False
    return True


def _target_times(start: float, duration: float, num_frames: int | None, fps: float | None) -> list[float] | None:
    """Presentation times to sample (None: keep every frame in the window)."""
    if num_frames is not None:
        if num_frames < 1:
            raise ConfigError(f"num_frames must be >= 1, got {num_frames}")
        return [start + (i + 0.5) * duration / num_frames for i in range(num_frames)]
    if fps is not None:
        if fps <= 0:
            raise ConfigError(f"fps must be > 0, got {fps}")
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
    channels = 1 if mono else len(first.layout.channels)
    if not parts:  # a few samples that the resampler's filter delay swallowed (1 sample, 1 Hz audio)
        return np.zeros((channels, 0), np.float32), out_rate
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
        rate = sample_rate or rate or aus.codec_context.sample_rate or DEFAULT_SAMPLE_RATE
        return audio, int(rate), (first_time if first_time is not None else start)


def _read_audio_sf(path, start, duration, sample_rate, mono):
    try:
        with open(os.fsencode(path), "rb") as fh:  # a file object: libsndfile cannot take non-UTF-8 names
            info = sf.info(fh)
            fh.seek(0)
            begin = int(round(start * info.samplerate))
            stop = None if duration is None else begin + int(round(duration * info.samplerate))
            data, native = sf.read(fh, start=begin, stop=stop, dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, OSError) as err:
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
    if sample_rate:
        native = sample_rate  # also for 0 samples: the clip is at the rate asked for
    return audio, int(native), start


def _resample_array(audio: np.ndarray, rate_in: int, rate_out: int, layout: str, path: str) -> np.ndarray:
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio, dtype=np.float32), format="fltp", layout=layout)
    frame.sample_rate = rate_in
    frame.time_base = Fraction(1, rate_in)
    out, _ = _resample([frame], path, rate_out, mono=(layout == "mono"))
    return out


def _fit_audio(audio: np.ndarray, rate: int, first_time: float, start: float, duration: float,
               path: str) -> np.ndarray:
    """Place decoded samples (first one at ``first_time``) on the clip grid [start, start + duration)."""
    n = int(round(duration * rate))
    _planned(path, 4.0 * audio.shape[0] * n, f"{duration:.0f} s of audio at {rate} Hz")
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
        raise ConfigError(f"{name} must be True, False or 'required', got {value!r}")
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
        raise ConfigError("give num_frames or fps, not both")
    if start < 0 or (duration is not None and duration <= 0):
        raise ConfigError(f"need start >= 0 and duration > 0, got start={start}, duration={duration}")
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
    if fps is not None:
        frame_bytes = 3 * (size[0] * size[1] if size else info["width"] * info["height"])
        _planned(path, duration * fps * (frame_bytes + 8.0), f"{duration * fps:.0f} frames at fps={fps}")
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
        _planned(path, count * (8.0 + 3 * (size or (0, 0))[0] * (size or (0, 0))[1]), f"{count} blank frames")
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
        audio_t = torch.from_numpy(_fit_audio(samples, rate, first_time, start, duration, path))
    else:
        rate = int(sample_rate or info["sample_rate"] or DEFAULT_SAMPLE_RATE)
        channels = 1 if mono else max(info["channels"], 2) if info["has_audio"] else (1 if mono else 2)
        _planned(path, 4.0 * channels * duration * rate, f"a silent track of {duration:.0f} s at {rate} Hz")
        audio_t = zero_modality("audio", channels=channels, samples=int(round(duration * rate)))

    return AVClip(
        video=video_t, frame_times=times_t, fps=float(frames_fps), has_video=has_video,
        audio=audio_t, sample_rate=int(rate), has_audio=has_audio,
        duration=float(duration), start=float(start), path=path, info=info,
    )
