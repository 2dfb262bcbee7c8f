"""A deterministic corpus of bad and unusual media files, made at test time (PyAV, numpy, soundfile).

:func:`build_corpus` writes every file into a folder and returns one :class:`MediaCase` per
file: its category, its path and what ``load_clip`` must do with it (``"ok"``: decode,
``"error"``: raise ``MediaError`` naming the file, ``"either"``: one of the two; truncated and
corrupt files keep what decodes when enough survives). Files are small (a few KB to ~100 KB;
the 4K clip is one frame of a flat ramp) and the same bytes come out on every run that uses
the same FFmpeg build (fixed seeds, no wall-clock metadata: ``fflags=+bitexact``).

Every encoder used here ships with the PyAV wheels (libx264, libx265, libvpx-vp9, libopus,
FFmpeg's native vorbis / aac / mp3 (libmp3lame) / mjpeg / pcm encoders); none is skipped.
"""

from __future__ import annotations

import gzip
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf

__all__ = ["MediaCase", "build_corpus"]

Outcome = str  # "ok" | "error" | "either"


@dataclass(frozen=True)
class MediaCase:
    """One corpus file: ``category`` (the issue's list), ``path`` (str, or bytes for a non-UTF-8
    name), ``expect`` for ``load_clip`` and a short ``note``."""

    category: str
    path: str | bytes
    expect: Outcome
    note: str = ""

    @property
    def name(self) -> str:
        return os.path.basename(os.fsdecode(self.path))


@dataclass
class V:
    """A video stream to encode: ``frames`` pictures of ``size=(H, W)`` at ``fps`` (or at the
    millisecond ``pts`` list for variable frame rate), first frame at ``offset`` seconds."""

    codec: str = "libx264"
    size: tuple[int, int] = (24, 32)
    fps: int = 10
    frames: int = 10
    pix_fmt: str = "yuv420p"
    pts_ms: list[int] | None = None
    offset: float = 0.0
    flat: bool = False


@dataclass
class A:
    """An audio stream to encode: ``seconds`` of a 440 Hz tone with clicks (or silence) at ``rate``."""

    codec: str = "aac"
    rate: int = 16000
    layout: str = "mono"
    seconds: float = 1.0
    offset: float = 0.0
    silent: bool = False
    options: dict = field(default_factory=dict)


_RNG_SEED = 1234


def _picture(i: int, height: int, width: int, flat: bool) -> np.ndarray:
    if flat:
        ramp = np.linspace(0, 255, width).astype(np.uint8)
        return np.ascontiguousarray(np.broadcast_to(ramp[None, :, None], (height, width, 3)))
    rng = np.random.default_rng(_RNG_SEED + i)
    base = rng.integers(0, 255, (max(height // 4, 1), max(width // 4, 1), 3), dtype=np.uint8)
    big = np.repeat(np.repeat(base, 4, axis=0), 4, axis=1)[:height, :width]
    out = np.zeros((height, width, 3), np.uint8)
    out[: big.shape[0], : big.shape[1]] = big
    return out


def _tone(seconds: float, rate: int, channels: int, silent: bool) -> np.ndarray:
    n = max(int(round(seconds * rate)), 0)
    if silent or n == 0:
        return np.zeros((channels, n), np.float32)
    t = np.arange(n) / rate
    wave = 0.3 * np.sin(2 * np.pi * min(440.0, rate / 4) * t)
    wave[:: max(rate // 4, 1)] += 0.6  # clicks: onsets for describe
    return np.stack([wave * (1 + 0.1 * c) for c in range(channels)]).astype(np.float32)


def mux(path: str | bytes, streams: list, *, fmt: str | None = None, options: dict | None = None) -> str | bytes:
    """Encode ``streams`` (:class:`V` / :class:`A` / ``"subtitle"``) into one container with PyAV."""
    opts = {"fflags": "+bitexact", **(options or {})}
    with av.open(os.fsdecode(path), mode="w", format=fmt, options=opts) as out:
        encoders = []
        for spec in streams:
            if isinstance(spec, V):
                rate = Fraction(spec.fps) if spec.pts_ms is None else Fraction(1000)
                s = out.add_stream(spec.codec, rate=rate)
                s.height, s.width = spec.size
                s.pix_fmt = spec.pix_fmt
                if spec.codec in ("libx264", "libx265"):
                    s.codec_context.options = {"preset": "ultrafast", "threads": "1"} | (
                        {"x265-params": "log-level=none"} if spec.codec == "libx265" else {})
                if spec.codec == "libvpx-vp9":
                    s.codec_context.options = {"deadline": "realtime", "cpu-used": "8", "threads": "1"}
                encoders.append((spec, s))
            elif isinstance(spec, A):
                s = out.add_stream(spec.codec, rate=spec.rate, layout=spec.layout)
                if spec.options:
                    s.codec_context.options = dict(spec.options)
                encoders.append((spec, s))
            elif spec == "subtitle":
                source = _subtitle_source()
                encoders.append((spec, (source, out.add_stream_from_template(source.streams.subtitles[0]))))
        for spec, s in encoders:
            if isinstance(spec, V):
                fmt_in = "gray16le" if spec.pix_fmt == "gray16le" else "rgb24"
                for i in range(spec.frames):
                    pic = _picture(i, *spec.size, spec.flat)
                    if fmt_in == "gray16le":
                        frame = av.VideoFrame.from_ndarray(pic[..., 0].astype(np.uint16) * 257, format="gray16le")
                    else:
                        frame = av.VideoFrame.from_ndarray(pic, format="rgb24")
                    if spec.pts_ms is not None:
                        frame.pts = spec.pts_ms[i] + int(round(spec.offset * 1000))
                    else:
                        frame.pts = i + int(round(spec.offset * spec.fps))
                    out.mux(s.encode(frame))
                out.mux(s.encode(None))
            elif isinstance(spec, A):
                channels = s.codec_context.layout.nb_channels
                wave = _tone(spec.seconds, spec.rate, channels, spec.silent)
                step = s.codec_context.frame_size or 1024
                first = int(round(spec.offset * spec.rate))
                fmt_name = s.codec_context.format.name
                for k in range(0, wave.shape[1], step):
                    chunk = wave[:, k : k + step]
                    frame = _audio_frame(chunk, fmt_name, s.codec_context.layout.name)
                    frame.sample_rate = spec.rate
                    frame.pts = first + k
                    frame.time_base = Fraction(1, spec.rate)
                    out.mux(s.encode(frame))
                out.mux(s.encode(None))
        for spec, s in encoders:
            if spec == "subtitle":
                _mux_subtitles(out, s)
    return path


def _audio_frame(chunk: np.ndarray, fmt_name: str, layout: str) -> av.AudioFrame:
    """An AudioFrame in the encoder's sample format (planar or packed, float or integer)."""
    planar = fmt_name.endswith("p")
    base = fmt_name.rstrip("p")
    if base == "flt":
        data = chunk.astype(np.float32)
    elif base == "dbl":
        data = chunk.astype(np.float64)
    elif base == "s16":
        data = (np.clip(chunk, -1, 1) * 32767).astype(np.int16)
    elif base == "s32":
        data = (np.clip(chunk, -1, 1) * 2147483647).astype(np.int32)
    elif base == "u8":
        data = ((np.clip(chunk, -1, 1) * 127) + 128).astype(np.uint8)
    else:
        raise ValueError(fmt_name)
    if not planar:
        data = data.T.reshape(1, -1)
    return av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt_name, layout=layout)


_SRT = b"1\n00:00:00,000 --> 00:00:00,900\nhello\n\n2\n00:00:01,000 --> 00:00:01,900\nworld\n"


def _subtitle_source():
    """An SRT file opened with PyAV: its stream is the template of the subtitle track (remuxed, not encoded)."""
    import io

    return av.open(io.BytesIO(_SRT), format="srt")


def _mux_subtitles(out, pair) -> None:
    source, stream = pair
    for packet in source.demux(source.streams.subtitles[0]):
        if packet.size == 0:
            continue
        packet.stream = stream
        out.mux(packet)
    source.close()


def _wav(path, seconds: float, rate: int, channels: int = 1, subtype: str = "PCM_16", silent: bool = False):
    sf.write(os.fsdecode(path), _tone(seconds, rate, channels, silent).T, rate, subtype=subtype, format="WAV")
    return path


def _patch_mkv_duration(path: str, seconds: float) -> None:
    """Overwrite the Matroska Segment Info ``Duration`` (EBML id 0x4489) with a false claim."""
    data = bytearray(Path(path).read_bytes())
    at = data.find(b"\x44\x89")
    size = data[at + 2] & 0x7F
    if size == 8:
        data[at + 3 : at + 11] = struct.pack(">d", seconds * 1000.0)
    else:
        data[at + 3 : at + 7] = struct.pack(">f", seconds * 1000.0)
    Path(path).write_bytes(bytes(data))


def _bogus_wav_sizes(path: str) -> None:
    data = bytearray(Path(path).read_bytes())
    data[4:8] = b"\xff\xff\xff\xff"
    at = data.find(b"data")
    data[at + 4 : at + 8] = b"\xff\xff\xff\xff"
    Path(path).write_bytes(bytes(data))


def build_corpus(root: str | Path) -> list[MediaCase]:
    """Write the corpus into ``root`` (created) and return its cases (more than 60)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    cases: list[MediaCase] = []

    def add(category: str, name: str | bytes, expect: Outcome, make: Callable[[str | bytes], object], note=""):
        if isinstance(name, bytes):  # made under an ASCII name, then renamed to the raw bytes
            path: str | bytes = os.path.join(os.fsencode(root), name)
            ascii_name = str(root / ("_tmp" + os.path.splitext(os.fsdecode(name))[1]))
            make(ascii_name)
            os.rename(ascii_name, path)
        else:
            path = str(root / name)
            make(path)
        cases.append(MediaCase(category, path, expect, note))

    def write(data: bytes) -> Callable:
        return lambda p: Path(os.fsdecode(p)).write_bytes(data)

    av_clip = [V(), A()]
    rng = np.random.default_rng(_RNG_SEED)

    # -- empty and not-media ------------------------------------------------------------------
    for ext in ("mp4", "wav", "mkv"):
        add("empty", f"empty.{ext}", "error", write(b""))
    add("not media", "notes.mp4", "error", write(b"this is not a video\n" * 40))
    add("not media", "archive.mkv", "error", write(gzip.compress(b"x" * 5000, mtime=0)))
    add("not media", "noise.webm", "error", write(rng.integers(0, 256, 20000, dtype=np.uint8).tobytes()))
    add("not media", "noise.wav", "error", write(rng.integers(0, 256, 20000, dtype=np.uint8).tobytes()))
    add("not media", "magic-riff.wav", "error",
        write(b"RIFF\x24\x00\x00\x00WAVEfmt " + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes()))
    add("not media", "magic-ftyp.mp4", "error",
        write(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
              + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes()))
    add("not media", "magic-ebml.mkv", "error",
        write(b"\x1a\x45\xdf\xa3" + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes()))
    add("not media", "magic-ogg.ogg", "error",
        write(b"OggS\x00\x02" + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes()))

    # -- truncated, lost index, corrupt ------------------------------------------------------
    good_mp4 = mux(str(root / "_good.mp4"), [V(frames=30), A(seconds=3.0)])
    good_mkv = mux(str(root / "_good.mkv"), [V(frames=30), A(seconds=3.0)])
    mp4_bytes, mkv_bytes = Path(good_mp4).read_bytes(), Path(good_mkv).read_bytes()
    os.remove(good_mp4)
    os.remove(good_mkv)
    for frac in (0.05, 0.5, 0.95):
        add("truncated", f"cut-{int(frac * 100)}.mp4", "error", write(mp4_bytes[: int(len(mp4_bytes) * frac)]),
            "mp4 with its moov index at the end: lost with the tail")
    for frac in (0.02, 0.3, 0.6, 0.9):
        add("truncated", f"cut-{int(frac * 100)}.mkv", "either" if frac > 0.1 else "error",
            write(mkv_bytes[: int(len(mkv_bytes) * frac)]))
    faststart = mux(str(root / "_fs.mp4"), [V(frames=30), A(seconds=3.0)], options={"movflags": "+faststart"})
    fs_bytes = Path(faststart).read_bytes()
    os.remove(faststart)
    add("truncated", "faststart-cut-60.mp4", "either", write(fs_bytes[: int(len(fs_bytes) * 0.6)]),
        "index first, media data cut")
    cues = mkv_bytes.rfind(b"\x1c\x53\xbb\x6b")  # Matroska Cues: the seek index
    add("lost index", "no-cues.mkv", "either",
        write(mkv_bytes[:cues] + b"\xec\x80" * 8 if cues > 0 else mkv_bytes[:-64]))
    moov = mp4_bytes.find(b"moov")
    add("lost index", "no-moov.mp4", "error", write(mp4_bytes[: moov - 4]), "media data whole, moov index gone")
    for name, blob in (("corrupt-mid.mp4", mp4_bytes), ("corrupt-mid.mkv", mkv_bytes)):
        data = bytearray(blob)
        lo, hi = int(len(data) * 0.4), int(len(data) * 0.6)
        data[lo:hi] = rng.integers(0, 256, hi - lo, dtype=np.uint8).tobytes()
        add("corrupt", name, "either", write(bytes(data)), "random bytes over the middle 20 %")
    ts = mux(str(root / "_good.ts"), [V(codec="mpeg2video", frames=30), A(codec="mp2", rate=32000, seconds=3.0)],
             fmt="mpegts")
    ts_bytes = bytearray(Path(ts).read_bytes())
    os.remove(ts)
    for k in range(int(len(ts_bytes) * 0.3) // 188, int(len(ts_bytes) * 0.7) // 188, 3):
        ts_bytes[k * 188 + 20 : k * 188 + 120] = bytes(100)  # payload zeroed, sync bytes kept
    add("corrupt", "corrupt-payload.ts", "either", write(bytes(ts_bytes)))

    # -- stream combinations -----------------------------------------------------------------
    add("streams", "video-only.mp4", "ok", lambda p: mux(p, [V()]))
    add("streams", "audio-only.m4a", "ok", lambda p: mux(p, [A()], fmt="mp4"))
    add("streams", "audio-only.mkv", "ok", lambda p: mux(p, [A(codec="libopus", rate=48000)]))
    add("streams", "two-audio-two-video.mkv", "ok", lambda p: mux(p, [V(), V(size=(16, 16)), A(), A(rate=8000)]))
    add("streams", "subtitle-only.mkv", "error", lambda p: mux(p, ["subtitle"], fmt="matroska"))
    add("streams", "video-subtitle.mkv", "ok", lambda p: mux(p, [V(), "subtitle"], fmt="matroska"))
    add("streams", "audio-10s-video-1s.mkv", "ok", lambda p: mux(p, [V(frames=10), A(seconds=10.0, rate=8000)]))
    add("streams", "video-10s-audio-1s.mkv", "ok", lambda p: mux(p, [V(frames=100), A(seconds=1.0, rate=8000)]))

    # -- tiny inputs -------------------------------------------------------------------------
    add("tiny", "one-frame.mp4", "ok", lambda p: mux(p, [V(frames=1)]))
    add("tiny", "two-frames.mkv", "ok", lambda p: mux(p, [V(frames=2), A(seconds=0.2)]))
    add("tiny", "one-sample.wav", "ok", lambda p: _wav(p, 1 / 16000, 16000))
    add("tiny", "ten-ms.wav", "ok", lambda p: _wav(p, 0.01, 16000))
    add("tiny", "zero-samples.wav", "error", lambda p: _wav(p, 0.0, 16000), "a header and no samples: nothing to read")
    add("tiny", "ten-ms.mp3", "either", lambda p: mux(p, [A(codec="libmp3lame", rate=16000, seconds=0.01)]))

    # -- audio formats -----------------------------------------------------------------------
    add("audio format", "8k-mono.wav", "ok", lambda p: _wav(p, 1.0, 8000))
    add("audio format", "5.1.wav", "ok", lambda p: _wav(p, 0.5, 48000, channels=6))
    add("audio format", "5.1-aac.mp4", "ok", lambda p: mux(p, [V(), A(rate=48000, layout="5.1")]))
    add("audio format", "96k-24bit.wav", "ok", lambda p: _wav(p, 0.5, 96000, subtype="PCM_24"))
    add("audio format", "float.wav", "ok", lambda p: _wav(p, 0.5, 44100, subtype="FLOAT"))
    add("audio format", "mulaw.wav", "ok", lambda p: _wav(p, 0.5, 8000, subtype="ULAW"))
    add("audio format", "mulaw.mov", "ok", lambda p: mux(p, [V(), A(codec="pcm_mulaw", rate=8000)]))
    add("audio format", "384k.wav", "ok", lambda p: _wav(p, 0.25, 384000))
    add("audio format", "1hz.wav", "ok", lambda p: _wav(p, 5.0, 1))
    add("audio format", "bogus-sizes.wav", "ok", lambda p: (_wav(p, 1.0, 16000), _bogus_wav_sizes(p)),
        "RIFF and data sizes 0xFFFFFFFF (as streaming writers leave them)")
    add("audio format", "silence.wav", "ok", lambda p: _wav(p, 1.0, 16000, silent=True))
    add("audio format", "silence.mp4", "ok", lambda p: mux(p, [V(), A(silent=True)]))

    # -- timing ------------------------------------------------------------------------------
    add("timing", "vfr.mkv", "ok", lambda p: mux(p, [V(frames=8, pts_ms=[0, 40, 80, 300, 310, 900, 1500, 1510]), A()]))
    add("timing", "claims-1000h.mkv", "ok",
        lambda p: (mux(p, [V(frames=5)], fmt="matroska"), _patch_mkv_duration(p, 1000 * 3600.0)),
        "5 frames; Segment Info says 1000 h")
    add("timing", "claims-1000h-av.mkv", "ok",
        lambda p: (mux(p, [V(frames=5), A(seconds=0.5)], fmt="matroska"), _patch_mkv_duration(p, 1000 * 3600.0)))
    add("timing", "start-offset.mkv", "ok", lambda p: mux(p, [V(offset=5.0), A(offset=5.0)]))
    add("timing", "start-offset.ts", "ok",
        lambda p: mux(p, [V(codec="mpeg2video"), A(codec="mp2", rate=32000)], fmt="mpegts"))
    add("timing", "negative-start.mkv", "ok",
        lambda p: mux(p, [V(offset=-0.5, frames=15), A(offset=-0.5, seconds=1.5)]))
    add("timing", "video-late.mkv", "ok", lambda p: mux(p, [V(offset=2.0), A(seconds=3.0)]))
    add("timing", "gap-1000h.mkv", "error",
        lambda p: mux(p, [V(frames=3, pts_ms=[0, 100, 3_600_000_000])]),
        "a real frame 1000 h in: the silent track it would need is refused")

    # -- sizes -------------------------------------------------------------------------------
    add("size", "1x1.mkv", "ok", lambda p: mux(p, [V(codec="ffv1", size=(1, 1), pix_fmt="yuv444p"), A()]))
    add("size", "3x5.mkv", "ok", lambda p: mux(p, [V(codec="ffv1", size=(3, 5), pix_fmt="yuv444p")]))
    add("size", "4k.mp4", "ok", lambda p: mux(p, [V(size=(2160, 3840), frames=1, flat=True)]))

    # -- pixel formats -----------------------------------------------------------------------
    add("pixel format", "gray16.mkv", "ok", lambda p: mux(p, [V(codec="ffv1", pix_fmt="gray16le")]))
    add("pixel format", "yuv444p.mp4", "ok", lambda p: mux(p, [V(pix_fmt="yuv444p"), A()]))
    add("pixel format", "10bit.mp4", "ok", lambda p: mux(p, [V(pix_fmt="yuv420p10le")]))
    add("pixel format", "10bit-hevc.mkv", "ok", lambda p: mux(p, [V(codec="libx265", pix_fmt="yuv420p10le")]))

    # -- containers --------------------------------------------------------------------------
    add("container", "mpeg-ts.ts", "ok", lambda p: mux(p, [V(), A()], fmt="mpegts"))
    add("container", "vp9-opus.webm", "ok", lambda p: mux(p, [V(codec="libvpx-vp9"), A(codec="libopus", rate=48000)]))
    add("container", "vorbis.ogg", "ok",
        lambda p: mux(p, [A(codec="vorbis", rate=44100, layout="stereo", options={"strict": "experimental"})],
                      options={"strict": "experimental"}))
    add("container", "opus.opus", "ok", lambda p: mux(p, [A(codec="libopus", rate=48000)], fmt="opus"))
    add("container", "mp3.mp3", "ok", lambda p: mux(p, [A(codec="libmp3lame", rate=44100, seconds=1.0)]))
    add("container", "mjpeg.avi", "ok",
        lambda p: mux(p, [V(codec="mjpeg", pix_fmt="yuvj420p"), A(codec="pcm_s16le")], fmt="avi"))
    add("container", "hevc.mp4", "ok", lambda p: mux(p, [V(codec="libx265"), A()]))
    add("container", "wav-named.mp4", "ok", lambda p: _wav(p, 1.0, 16000))
    add("container", "mp4-named.wav", "ok", lambda p: mux(p, av_clip, fmt="mp4"))

    # -- file names --------------------------------------------------------------------------
    add("file name", "with spaces and 'quotes'.mp4", "ok", lambda p: mux(p, av_clip))
    add("file name", "ñandú – 音.mkv", "ok", lambda p: mux(p, av_clip))
    add("file name", "snow☃.wav", "ok", lambda p: _wav(p, 0.5, 16000))
    add("file name", b"latin1-\xe9t\xe9.wav", "ok", lambda p: _wav(p, 0.5, 16000))
    add("file name", b"bad-\xff\xfe.mp4", "ok", lambda p: mux(p, av_clip, fmt="mp4"))
    add("file name", "-dash-first.mp4", "ok", lambda p: mux(p, av_clip))

    # -- filesystem oddities -----------------------------------------------------------------
    add("filesystem", "folder.mp4", "error", lambda p: os.mkdir(p), "a directory named like a clip")
    add("filesystem", "loop-a.mp4", "error",
        lambda p: (os.symlink(str(root / "loop-b.mp4"), p), os.symlink(p, str(root / "loop-b.mp4"))))
    add("filesystem", "dangling.mp4", "error", lambda p: os.symlink(str(root / "nowhere.mp4"), p))
    add("filesystem", "pipe.mp4", "error", lambda p: os.mkfifo(p), "a named pipe: must not block")
    add("filesystem", "zero-device.wav", "error", lambda p: os.symlink("/dev/zero", p))
    add("filesystem", "missing.mp4", "error", lambda p: None)
    add("filesystem", "unreadable.mp4", "either",
        lambda p: (mux(p, av_clip), os.chmod(p, 0)), "mode 000 (root still reads it)")
    return cases


# -- the runner: every file through the public API, in a child process with bounded memory ----------
TIME_LIMIT_S = 30  # per file and call: the promised bound (SIGALRM in the child, not a speed assert)
MEMORY_LIMIT_BYTES = 2 * 1024**3  # address-space limit of the child (RLIMIT_AS): the promised bound


class _Timeout(Exception):
    pass


def _outcome(call: Callable[[], object]) -> dict:
    """``{"kind": "ok" | "MediaError" | other exception type, "message", "traceback"}``."""
    import signal
    import traceback

    from avperceive.errors import MediaError

    def on_alarm(signum, frame):
        raise _Timeout(f"over {TIME_LIMIT_S} s")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TIME_LIMIT_S)
    try:
        value = call()
    except MediaError as err:
        return {"kind": "MediaError", "message": str(err), "path": err.path}
    except BaseException as err:  # noqa: BLE001 - recorded and asserted on by the test
        return {"kind": type(err).__name__, "message": str(err), "traceback": traceback.format_exc()}
    finally:
        signal.alarm(0)
    return {"kind": "ok", "value": value}


def run_api(paths: list[str | bytes], model_name: str) -> list[dict]:
    """``load_clip`` (whole file; and 4 frames at 16 px, 32 kHz), ``describe`` and ``predict`` on each path."""
    import avperceive as avp

    model = avp.create_model(model_name)
    rows = []
    for path in map(os.fsdecode, paths):  # str with surrogate escapes for non-UTF-8 bytes, as os.listdir gives

        def whole(p=path):
            clip = avp.load_clip(p)
            return {"video": list(clip.video.shape), "audio": list(clip.audio.shape), "rate": clip.sample_rate}

        def sampled(p=path):
            clip = avp.load_clip(p, num_frames=4, size=16, sample_rate=32000)
            return {"video": list(clip.video.shape), "audio": list(clip.audio.shape), "rate": clip.sample_rate}

        rows.append({
            "path": os.fsdecode(path),
            "load_clip": _outcome(whole),
            "load_clip_sampled": _outcome(sampled),
            "describe": _outcome(lambda p=path: avp.describe(p).perception_type),
            "predict": _outcome(lambda p=path: str(avp.predict(p, model=model))),
        })
    return rows


def limit_memory() -> None:
    """``preexec_fn`` of the child processes: cap the address space at :data:`MEMORY_LIMIT_BYTES`."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))


if __name__ == "__main__":  # python media_corpus.py MODEL OUT.json PATH... (paths as os.fsencode'd argv)
    import json
    import sys

    out_rows = run_api(sys.argv[3:], sys.argv[1])
    Path(sys.argv[2]).write_text(json.dumps(out_rows, default=str))
