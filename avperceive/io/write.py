"""``write_clip``: encode an :class:`AVClip` to a real media file with PyAV (H.264 + AAC in MP4,
H.264 + PCM in MKV/MOV), so that readers are tested on encoded files.

Timing: every frame is given an explicit ``pts`` on the clip's clock (video ``round((t - start)
* fps)``, audio the running sample count), so FFmpeg's muxer accounts for the AAC encoder's
1024 priming samples: a click written at 0.5 s decodes at 0.5 s (checked at 8, 16 and 48 kHz in
``tests/test_io.py``).
"""

from __future__ import annotations

import os
from fractions import Fraction

import av
import numpy as np

from ..errors import MediaError
from .clip import AVClip

__all__ = ["write_clip"]

_LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}


def _rate(fps: float) -> Fraction:
    rate = Fraction(fps).limit_denominator(1001)
    if rate <= 0:
        raise ValueError(f"clip.fps must be > 0 to write video, got {fps}")
    return rate


def write_clip(
    clip: AVClip,
    path: str | os.PathLike,
    *,
    video_codec: str = "libx264",
    audio_codec: str | None = None,
    crf: int = 23,
    gop: int | None = None,
    preset: str | None = None,
) -> str:
    """Write ``clip`` (video at ``clip.fps``, audio at ``clip.sample_rate``) to ``path``.

    Args:
        clip: frames must have even H and W (yuv420p); ``clip.fps`` > 0. A modality with
            ``has_video``/``has_audio`` False is not written (the file then lacks that stream).
        path: ``.mp4`` (AAC audio by default), ``.mkv``/``.mov`` (PCM s16 audio by default).
        audio_codec: override the audio codec (``"aac"``, ``"pcm_s16le"``, ``"libopus"``...).
        crf: H.264 quality.
        gop: keyframe interval in frames (default: the encoder's).
        preset: x264 preset (e.g. ``"ultrafast"`` for fast test fixtures).

    Returns:
        the path written.
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if audio_codec is None:
        audio_codec = "aac" if ext in (".mp4", ".m4v", ".m4a") else "pcm_s16le"
    if not clip.has_video and not clip.has_audio:
        raise ValueError("clip has neither video nor audio to write")
    try:
        with av.open(path, mode="w") as container:
            vstream = astream = None
            if clip.has_video:
                _, height, width, _ = clip.video.shape
                if height % 2 or width % 2:
                    raise ValueError(f"frame size must be even for yuv420p, got {height}x{width}")
                vstream = container.add_stream(video_codec, rate=_rate(clip.fps))
                vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
                vstream.codec_context.thread_count = 1
                options = {"crf": str(crf)}
                if gop:
                    options["g"] = str(gop)
                if preset:
                    options["preset"] = preset
                vstream.codec_context.options = options
            if clip.has_audio:
                channels = clip.audio.shape[0]
                if channels not in _LAYOUTS:
                    raise ValueError(f"cannot write {channels} audio channels (1, 2 or 6)")
                astream = container.add_stream(audio_codec, rate=clip.sample_rate)
                astream.layout = _LAYOUTS[channels]
            if vstream is not None:
                rate = _rate(clip.fps)
                for frame_array, t in zip(clip.video.numpy(), clip.frame_times.tolist()):
                    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame_array), format="rgb24")
                    frame.pts = int(round((t - clip.start) * rate))
                    container.mux(vstream.encode(frame))
                container.mux(vstream.encode(None))
            if astream is not None:
                _write_audio(container, astream, clip)
    except av.FFmpegError as err:
        raise MediaError(path, f"cannot write ({err})") from err
    return path


def _write_audio(container, astream, clip: AVClip) -> None:
    audio = clip.audio.numpy().astype(np.float32)
    layout = _LAYOUTS[audio.shape[0]]
    fmt = astream.codec_context.codec.audio_formats[0].name if astream.codec_context.codec.audio_formats else "fltp"
    chunk = astream.codec_context.frame_size or 1024
    resampler = av.AudioResampler(format=fmt, layout=layout, rate=clip.sample_rate)
    pts = 0
    for begin in range(0, audio.shape[1], chunk):
        piece = np.ascontiguousarray(audio[:, begin : begin + chunk])
        frame = av.AudioFrame.from_ndarray(piece, format="fltp", layout=layout)
        frame.sample_rate = clip.sample_rate
        frame.pts = pts
        frame.time_base = Fraction(1, clip.sample_rate)
        pts += piece.shape[1]
        for converted in resampler.resample(frame):
            container.mux(astream.encode(converted))
    for converted in resampler.resample(None):
        container.mux(astream.encode(converted))
    container.mux(astream.encode(None))
