"""One function from decoded media to model inputs: :func:`prepare_inputs`, driven by the model's input config.

A model's ``input_cfg`` (its ``pretrained_cfg.input`` section, see :mod:`avperceive.models.contract`)
describes its preprocessing completely; :class:`InputSpec` reads it:

* ``task`` -- ``"ave"`` (segment layout: video ``(B, T, 3, H, W)``, audio ``(B, T, S)``) or
  ``"clip-classification"`` (clip layout: video ``(B, T*F, 3, H, W)``, audio ``(B, samples)``);
* ``sample_rate``, ``segments`` (T), ``segment_seconds``, ``frames_per_segment`` (F), ``size``
  (frame height/width), ``mean`` / ``std`` (frame normalisation);
* ``audio_steps`` -- front-end steps applied to the audio batch, in order:

  - ``{"op": "tile", "samples": N}``: repeat each segment to N samples (DG-SCT feeds its
    HTS-AT a 1-s segment tiled to the 10-s input, as the reference code does);
  - ``{"op": "lavish-audio-image", "num_mel_bins": M, "frames": H, "frame_shift_ms": s}``:
    LAVisH's normalised Kaldi-fbank image per segment, ``(B, T, H, M)``
    (:func:`avperceive.signal.kaldi.lavish_audio_image`);

* ``extra_inputs`` -- further model inputs by keyword, e.g.
  ``{"onset_mask": {"op": "onset-mask", "steps": 100}}``: audio onsets per step
  (:func:`avperceive.signal.onsets.onset_mask`), for event-specific fusion;
* ``audio_dtype`` -- ``"float32"`` when the model computes its own spectral front-end from the
  waveform it is given (DG-SCT's HTS-AT log-mel): the audio then stays float32 whatever the model's
  dtype, so a bfloat16 model does not see a waveform rounded to 8 significant bits (noise ~48 dB
  below the signal in every quiet mel bin). Absent: the audio is cast to the model's dtype;
* ``embeddings`` -- the model consumes precomputed embeddings, not media (AVMIT, SAVC): refused.

The audio front-end steps compute in float32 on purpose (STFT / fbank statistics lose too much in
16-bit formats); the result is cast to the model's dtype at the end unless ``audio_dtype`` says
float32.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange, repeat

from ..errors import ConfigError
from ..io import AVClip, load_clip

__all__ = ["InputSpec", "ModelInputs", "prepare_inputs", "decode_for", "AUDIO_STEPS", "EXTRA_INPUTS", "AUDIO_DTYPES"]

#: audio front-end steps understood by :func:`prepare_inputs` (``op`` -> required keys).
AUDIO_STEPS = {"tile": ("samples",), "lavish-audio-image": ("num_mel_bins", "frames", "frame_shift_ms")}
#: extra-input operations (``op`` -> required keys).
EXTRA_INPUTS = {"onset-mask": ("steps",)}
_TASK_LAYOUT = {"ave": "segments", "clip-classification": "clip"}
#: values of ``audio_dtype`` (absent / None: the model's dtype).
AUDIO_DTYPES = {"float32": torch.float32}


@dataclass(frozen=True)
class InputSpec:
    """A model's input settings (see the module docstring for each field)."""

    task: str
    sample_rate: int
    segments: int
    segment_seconds: float
    frames_per_segment: int
    size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    audio_steps: tuple[dict[str, Any], ...] = ()
    extra_inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    audio_dtype: torch.dtype | None = None

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any], *, name: str = "model") -> InputSpec:
        """Read and check an input config; ``name`` is used in error messages."""
        absent = [k for k in ("task", "sample_rate", "size") if k not in cfg]
        if absent:
            raise ConfigError(f"{name}: input config lacks {absent}; pass input_cfg={{...}}")
        if "embeddings" in cfg:
            raise ConfigError(
                f"{name} consumes precomputed {cfg['embeddings']} embeddings, not media; call it on embedding "
                "tensors directly (predict works on models whose input is frames + waveform)"
            )
        task = cfg["task"]
        if task not in _TASK_LAYOUT:
            raise ConfigError(f"{name}: predict supports tasks {sorted(_TASK_LAYOUT)}, the input config has {task!r}")
        steps = tuple(dict(s) for s in cfg.get("audio_steps") or ())
        for step in steps:
            _check_op(step, AUDIO_STEPS, f"{name}: audio_steps")
        extra = {k: dict(v) for k, v in (cfg.get("extra_inputs") or {}).items()}
        for key, op in extra.items():
            _check_op(op, EXTRA_INPUTS, f"{name}: extra_inputs[{key!r}]")
        audio_dtype = cfg.get("audio_dtype")
        if audio_dtype is not None and audio_dtype not in AUDIO_DTYPES:
            raise ConfigError(
                f"{name}: audio_dtype must be one of {sorted(AUDIO_DTYPES)} or absent, got {audio_dtype!r}"
            )
        size = cfg["size"]
        return cls(
            task=task,
            sample_rate=int(cfg["sample_rate"]),
            segments=int(cfg.get("segments", 1)),
            segment_seconds=float(cfg.get("segment_seconds", 1.0)),
            frames_per_segment=int(cfg.get("frames_per_segment", 1)),
            size=(int(size[0]), int(size[1])) if isinstance(size, (list, tuple)) else (int(size), int(size)),
            mean=tuple(float(m) for m in cfg.get("mean", (0.0, 0.0, 0.0))),
            std=tuple(float(s) for s in cfg.get("std", (1.0, 1.0, 1.0))),
            audio_steps=steps,
            extra_inputs=extra,
            audio_dtype=None if audio_dtype is None else AUDIO_DTYPES[audio_dtype],
        )

    @property
    def duration(self) -> float:
        """Seconds of media one clip covers (``segments * segment_seconds``)."""
        return self.segments * self.segment_seconds


def _check_op(step: Mapping[str, Any], known: dict[str, tuple[str, ...]], where: str) -> None:
    op = step.get("op")
    if op not in known:
        raise ConfigError(f"{where}: unknown op {op!r}; known: {sorted(known)}")
    absent = [k for k in known[op] if k not in step]
    if absent:
        raise ConfigError(f"{where}: op {op!r} lacks {absent}")


@dataclass
class ModelInputs:
    """What :func:`prepare_inputs` returns: call ``model(inputs.video, inputs.audio, **inputs.extra)``.

    Attributes:
        video: ``(B, T, 3, H, W)`` (segment layout) or ``(B, T*F, 3, H, W)`` (clip layout), normalised.
        audio: after the declared front-end steps (``(B, T, S)``, ``(B, T, H, M)`` or ``(B, samples)``).
        extra: further inputs by keyword (``onset_mask``).
        valid: ``(B, T)`` bool, False for segments past the end of the media (zero padding).
    """

    video: torch.Tensor
    audio: torch.Tensor
    extra: dict[str, torch.Tensor]
    valid: torch.Tensor


def decode_for(item: str | AVClip, spec: InputSpec) -> AVClip:
    """Decode a file with the spec's frame count, size, duration and (mono) sample rate; a clip is checked."""
    if isinstance(item, AVClip):
        if item.has_audio and item.sample_rate != spec.sample_rate:
            raise ConfigError(
                f"AVClip audio is at {item.sample_rate} Hz, the model needs {spec.sample_rate} Hz; load it with "
                f"load_clip(path, sample_rate={spec.sample_rate})"
            )
        return item
    return load_clip(
        item,
        duration=spec.duration,
        num_frames=spec.segments * spec.frames_per_segment,
        size=spec.size,
        sample_rate=spec.sample_rate,
        mono=True,
    )


def _clip_tensors(clip: AVClip, spec: InputSpec) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One clip -> normalised video ``(T[, F], 3, H, W)``, audio ``(T, S)`` float32, valid ``(T,)``."""
    segs = clip.segments(spec.segments, spec.segment_seconds, spec.frames_per_segment)
    video, audio = segs.model_inputs()
    if tuple(video.shape[-2:]) != spec.size:
        flat = video.reshape(-1, *video.shape[-3:])
        flat = F.interpolate(flat, size=spec.size, mode="bilinear", antialias=True, align_corners=False)
        video = flat.reshape(*video.shape[:-2], *spec.size)
    mean = torch.tensor(spec.mean, dtype=video.dtype).view(3, 1, 1)
    std = torch.tensor(spec.std, dtype=video.dtype).view(3, 1, 1)
    return (video - mean) / std, audio.float(), segs.valid


def _audio_step(audio: torch.Tensor, step: Mapping[str, Any], spec: InputSpec) -> torch.Tensor:
    if step["op"] == "tile":
        reps, rest = divmod(int(step["samples"]), audio.shape[-1])
        if rest:
            raise ConfigError(f"segment length {audio.shape[-1]} does not divide tile samples={step['samples']}")
        return repeat(audio, "b t s -> b t (r s)", r=reps)
    from ..signal.kaldi import lavish_audio_image

    b, t, s = audio.shape
    img = lavish_audio_image(
        rearrange(audio, "b t s -> (b t) s"), spec.sample_rate, segments=1, segment_samples=s,
        num_mel_bins=int(step["num_mel_bins"]), target_frames=int(step["frames"]),
        frame_shift_ms=float(step["frame_shift_ms"]),
    )
    return rearrange(img, "(b t) 1 f m -> b t f m", b=b, t=t)


def _extra_input(wave: torch.Tensor, op: Mapping[str, Any], spec: InputSpec) -> torch.Tensor:
    from ..signal.onsets import onset_mask

    return onset_mask(wave, spec.sample_rate, steps=int(op["steps"]))


def prepare_inputs(
    clips: Sequence[AVClip],
    spec: InputSpec,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> ModelInputs:
    """Decoded clips -> the model's inputs, as its input config describes (see the module docstring).

    Args:
        clips: decoded clips (:func:`decode_for` gives them at the spec's rate, frames and size).
        spec: the model's :class:`InputSpec`.
        device, dtype: where the returned floating tensors live (the front-ends run in float32 first);
            the audio keeps ``spec.audio_dtype`` when the spec sets one.
    """
    if not clips:
        raise ConfigError("prepare_inputs needs at least one clip")
    tensors = [_clip_tensors(c, spec) for c in clips]
    video = torch.stack([t[0] for t in tensors])
    audio = torch.stack([t[1] for t in tensors])
    valid = torch.stack([t[2] for t in tensors])
    extra: dict[str, torch.Tensor] = {}
    if _TASK_LAYOUT[spec.task] == "clip":
        if video.dim() == 6:
            video = rearrange(video, "b t f c h w -> b (t f) c h w")
        audio = rearrange(audio, "b t s -> b (t s)")
    for key, op in spec.extra_inputs.items():
        wave = audio if audio.dim() == 2 else rearrange(audio, "b t s -> b (t s)")
        extra[key] = _extra_input(wave, op, spec).to(device)
    for step in spec.audio_steps:
        audio = _audio_step(audio, step, spec)
    audio_dtype = spec.audio_dtype or dtype
    return ModelInputs(video.to(device=device, dtype=dtype), audio.to(device=device, dtype=audio_dtype), extra, valid)
