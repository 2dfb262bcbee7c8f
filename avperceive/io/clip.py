"""The decoded clip (:class:`AVClip`), its per-segment layout and the missing-modality zeros.

A clip is what :func:`avperceive.io.load_clip` returns: uint8 frames with their presentation
times, float32 audio, and what the file held. Models of the seeds (AVE / DG-SCT, LAVisH,
CMBS) consume a clip as ``T`` one-second segments; :meth:`AVClip.segments` produces that
layout. A missing modality is an all-zero tensor of the normal shape (the seeds' convention,
e.g. EoPMA's modality withdrawal and AVMIT's digital silence); :func:`zero_modality` is the
one function that makes such tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from einops import rearrange, reduce

from ..errors import ConfigError
from ..modality import MODALITY_STREAMS, check_modality

__all__ = ["AVClip", "ClipSegments", "zero_missing_modality", "zero_modality"]


def zero_modality(
    modality: Literal["video", "audio"],
    *,
    num_frames: int = 0,
    size: tuple[int, int] = (0, 0),
    channels: int = 1,
    samples: int = 0,
) -> torch.Tensor:
    """The all-zero stand-in for a missing modality, in the normal shape and dtype.

    Args:
        modality: ``"video"`` -> uint8 ``(num_frames, H, W, 3)`` with ``size=(H, W)``;
            ``"audio"`` -> float32 ``(channels, samples)`` (digital silence).
    """
    if modality == "video":
        height, width = size
        return torch.zeros(num_frames, height, width, 3, dtype=torch.uint8)
    if modality == "audio":
        return torch.zeros(channels, samples, dtype=torch.float32)
    raise ConfigError(f"modality must be 'video' or 'audio', got {modality!r}")


def zero_missing_modality(sample: dict[str, Any], modality: str) -> dict[str, Any]:
    """The seeds' missing-modality convention: the absent stream becomes all zeros of its normal shape.

    Args:
        sample: a dict with ``"audio"`` and ``"video"`` tensors (any shapes).
        modality: ``"av"`` (both kept), ``"a"`` (video zeroed) or ``"v"`` (audio zeroed).
    """
    kept = MODALITY_STREAMS[check_modality(modality)]
    out = dict(sample)
    for stream in ("audio", "video"):
        if stream not in kept and out.get(stream) is not None:
            out[stream] = torch.zeros_like(out[stream])
    return out


@dataclass
class ClipSegments:
    """A clip cut into ``T`` equal segments (the AVE layout: T=10 segments of 1 s).

    Attributes:
        video: uint8 ``(T, F, H, W, 3)``, ``F`` frames per segment, each the frame on screen
            at the centre of its sub-interval; all-zero where the segment lies past the end of
            the video (or the clip has no video).
        audio: float32 ``(T, C, S)``, ``S = round(seconds * sample_rate)``; zero past the end.
        valid: bool ``(T,)``: the segment starts before the end of the clip.
        seconds: segment length in seconds.
        sample_rate: audio sample rate.
    """

    video: torch.Tensor
    audio: torch.Tensor
    valid: torch.Tensor
    seconds: float
    sample_rate: int

    def model_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Tensors in model space: video float ``(T, 3, H, W)`` in [0, 1] (``(T, F, 3, H, W)``
        when ``F > 1``) and mono audio ``(T, S)``. Add the batch axis with ``[None]``."""
        video = rearrange(self.video.float() / 255.0, "t f h w c -> t f c h w")
        if video.shape[1] == 1:
            video = video[:, 0]
        audio = reduce(self.audio, "t c s -> t s", "mean")
        return video, audio


@dataclass
class AVClip:
    """A decoded audio-video clip.

    Attributes:
        video: uint8 ``(T, H, W, 3)`` RGB frames (all-zero, see :func:`zero_modality`, when
            the clip has no video).
        frame_times: float64 ``(T,)`` presentation time of each frame in seconds, on the
            file's clock (``start`` is subtracted nowhere).
        audio: float32 ``(channels, samples)``; sample 0 is at time ``start``.
        sample_rate: audio samples per second.
        fps: frames per second of ``video`` as returned (the requested ``fps``, ``num_frames /
            duration``, or the stream's average rate when every frame is kept).
        duration: seconds covered by the clip, from ``start``.
        has_video / has_audio: whether the modality was decoded from the file.
        path: the source file (``None`` for clips built in memory).
        start: the clip's first instant on the file's clock (seconds).
    """

    video: torch.Tensor
    frame_times: torch.Tensor
    audio: torch.Tensor
    sample_rate: int
    fps: float
    duration: float
    has_video: bool
    has_audio: bool
    path: str | None = None
    start: float = 0.0
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.video.dim() != 4 or self.video.shape[-1] != 3:
            raise ValueError(f"video must be (T, H, W, 3), got {tuple(self.video.shape)}")
        if self.audio.dim() != 2:
            raise ValueError(f"audio must be (channels, samples), got {tuple(self.audio.shape)}")
        if self.frame_times.shape != (self.video.shape[0],):
            raise ValueError(
                f"frame_times must be ({self.video.shape[0]},), got {tuple(self.frame_times.shape)}"
            )

    @property
    def num_frames(self) -> int:
        return int(self.video.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)`` of the frames."""
        return int(self.video.shape[1]), int(self.video.shape[2])

    def __repr__(self) -> str:
        return (
            f"AVClip(path={self.path!r}, duration={self.duration:.3f}s, video={tuple(self.video.shape)}"
            f"{'' if self.has_video else ' (missing)'}, audio={tuple(self.audio.shape)}@{self.sample_rate}Hz"
            f"{'' if self.has_audio else ' (missing)'})"
        )

    def frame_at(self, t: float) -> int | None:
        """Index of the frame on screen at file time ``t`` (the last frame with time <= t), or
        ``None`` if there is no frame or ``t`` is before the first frame's time minus one frame."""
        if self.num_frames == 0:
            return None
        idx = int(torch.searchsorted(self.frame_times, torch.tensor([t], dtype=self.frame_times.dtype),
                                     right=True)[0]) - 1
        return max(idx, 0)

    def segments(self, T: int = 10, seconds: float = 1.0, frames_per_segment: int = 1) -> ClipSegments:
        """Cut the clip into ``T`` segments of ``seconds`` from ``start`` (the AVE layout).

        Video: ``frames_per_segment`` frames per segment, the frame on screen at the centre of
        each equal sub-interval. Audio: ``round(seconds * sample_rate)`` samples per segment.
        Padding: a segment (or the part of it) past the end of the clip is all zeros in both
        modalities (the missing-modality convention), and ``valid`` is False for segments that
        start at or after the end of the clip or of the file (``load_clip(duration=10)`` on a
        7.5-s file gives ``valid = [True] * 8 + [False] * 2``); frames are not repeated past the
        last frame's display interval.

        Returns:
            :class:`ClipSegments` with video ``(T, F, H, W, 3)`` and audio ``(T, C, S)``.
        """
        if T < 1 or seconds <= 0 or frames_per_segment < 1:
            raise ConfigError(f"need T >= 1, seconds > 0, frames_per_segment >= 1; got {T}, {seconds}, "
                             f"{frames_per_segment}")
        height, width = self.size
        video = zero_modality("video", num_frames=T * frames_per_segment, size=(height, width))
        end = self.duration
        if self.info.get("duration"):  # a window asked past the end of the file: pad, and say so
            end = min(end, float(self.info["duration"]) - self.start)
        source_fps = float(self.info.get("fps") or self.fps)
        if self.has_video and self.num_frames:
            last_end = float(self.frame_times[-1]) + (1.0 / source_fps if source_fps > 0 else seconds)
            for i in range(T * frames_per_segment):
                t = self.start + (i + 0.5) * seconds / frames_per_segment
                if t >= self.start + end or t >= last_end:
                    continue
                video[i] = self.video[self.frame_at(t)]
        video = rearrange(video, "(t f) h w c -> t f h w c", t=T)

        seg = int(round(seconds * self.sample_rate))
        audio = zero_modality("audio", channels=self.audio.shape[0], samples=T * seg)
        if self.has_audio:
            n = min(self.audio.shape[1], T * seg)
            audio[:, :n] = self.audio[:, :n]
        audio = rearrange(audio, "c (t s) -> t c s", t=T)
        valid = torch.arange(T, dtype=torch.float64) * seconds < end
        return ClipSegments(video=video, audio=audio, valid=valid, seconds=seconds, sample_rate=self.sample_rate)
