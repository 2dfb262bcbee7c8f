"""One-line prediction on media files: ``avperceive.predict("clip.mp4", model="dgsct-ave-tiny")``.

The preprocessing is built from the model's own :class:`~avperceive.hub.pretrained_cfg.PretrainedCfg`
``input`` settings, so a model and its input can never disagree:

1. **decode** -- :func:`avperceive.io.load_clip` with the model's frame count (``segments x
   frames_per_segment``), frame ``size`` and audio ``sample_rate`` (mono);
2. **segments** -- :meth:`AVClip.segments` cuts ``segments`` windows of ``segment_seconds``
   (the AVE layout: 10 x 1 s);
3. **front-ends** -- frames to float in [0, 1] and normalised with ``mean``/``std``; audio
   segments tiled to ``tile_audio_to`` samples when the model does not tile itself; a model that
   exposes ``audio_image(audio)`` (LAVisH) gets its audio image computed here;
4. **model** -- batched, under ``torch.inference_mode``, on ``device`` / ``dtype``.

Outputs are :class:`Prediction` objects. For AVE-style models (``task="ave"``): one
:class:`SegmentPrediction` per second with the class name, its score and the event / background
decision (the model's own ``decide``); consecutive seconds of one class are merged into
:attr:`Prediction.events`. For clip classifiers (``task="clip-classification"``): the top-k labels
with probabilities. ``Prediction.to_dict()`` is plain JSON.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from einops import rearrange, repeat

from .errors import ConfigError, MediaError
from .io import AVClip, load_clip

__all__ = [
    "predict",
    "iter_predict",
    "Prediction",
    "SegmentPrediction",
    "Event",
    "PredictionFailure",
    "PredictTimings",
    "InputSpec",
    "expand_inputs",
    "MEDIA_SUFFIXES",
]

#: file suffixes a folder is scanned for.
MEDIA_SUFFIXES = (
    ".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".mpg", ".mpeg", ".flv",
    ".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".aiff", ".aif",
)
BACKGROUND = "background"


# -- results ----------------------------------------------------------------------------------------
@dataclass
class SegmentPrediction:
    """The decision for one segment (one second for AVE).

    Attributes:
        start, end: seconds from the clip start.
        label: class name, or ``"background"``.
        index: class index; background is ``K`` (the number of classes).
        score: the model's confidence in this decision (probability of the class for an event
            segment; probability of background otherwise).
        is_event: ``True`` when the segment holds an event (not background).
        valid: ``False`` for a segment past the end of the media (padded with zeros).
    """

    start: float
    end: float
    label: str
    index: int
    score: float
    is_event: bool
    valid: bool = True


@dataclass
class Event:
    """Consecutive event segments of one class merged: ``label`` from ``start`` to ``end`` (s), mean ``score``."""

    label: str
    start: float
    end: float
    score: float


@dataclass
class Prediction:
    """What a model says about one clip.

    Attributes:
        source: the file path (or ``"<AVClip>"``).
        model: the model's architecture name.
        task: ``"ave"`` or ``"clip-classification"``.
        segments: per-segment decisions (AVE models; empty otherwise).
        topk: ``[(label, probability), ...]`` best first (clip classifiers; for AVE models the
            clip-level class scores).
        has_video / has_audio: whether the file had the modality (a missing one is fed as zeros).
    """

    source: str
    model: str
    task: str
    segments: list[SegmentPrediction] = field(default_factory=list)
    topk: list[tuple[str, float]] = field(default_factory=list)
    has_video: bool = True
    has_audio: bool = True

    @property
    def labels(self) -> list[str]:
        """Per-segment labels (AVE) or ``[top-1 label]``."""
        return [s.label for s in self.segments] if self.segments else [self.topk[0][0]] if self.topk else []

    @property
    def events(self) -> list[Event]:
        """Runs of consecutive event segments of the same class."""
        out: list[Event] = []
        run: list[SegmentPrediction] = []
        for seg in [*self.segments, None]:
            if run and (seg is None or not seg.is_event or seg.label != run[-1].label or seg.start != run[-1].end):
                out.append(Event(run[0].label, run[0].start, run[-1].end, sum(s.score for s in run) / len(run)))
                run = []
            if seg is not None and seg.is_event:
                run.append(seg)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (``Prediction.from_dict`` inverts it)."""
        return {
            "source": self.source,
            "model": self.model,
            "task": self.task,
            "has_video": self.has_video,
            "has_audio": self.has_audio,
            "segments": [vars(s).copy() for s in self.segments],
            "events": [vars(e).copy() for e in self.events],
            "topk": [{"label": lab, "probability": p} for lab, p in self.topk],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Prediction:
        return cls(
            source=d["source"],
            model=d["model"],
            task=d["task"],
            segments=[SegmentPrediction(**s) for s in d.get("segments", [])],
            topk=[(t["label"], float(t["probability"])) for t in d.get("topk", [])],
            has_video=bool(d.get("has_video", True)),
            has_audio=bool(d.get("has_audio", True)),
        )

    def __str__(self) -> str:
        if self.segments:
            ev = ", ".join(f"{e.label} {e.start:g}-{e.end:g}s ({e.score:.2f})" for e in self.events) or "no event"
            return f"{self.source}: {ev}"
        return f"{self.source}: " + ", ".join(f"{lab} ({p:.2f})" for lab, p in self.topk)


@dataclass
class PredictionFailure:
    """A file that could not be predicted: ``source`` and ``reason``."""

    source: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"source": self.source, "error": self.reason}


@dataclass
class PredictTimings:
    """Seconds spent in each stage (filled in by :func:`iter_predict` when passed ``timings=``)."""

    decode: float = 0.0
    frontend: float = 0.0
    model: float = 0.0
    clips: int = 0

    def to_dict(self) -> dict[str, float]:
        return {"decode_s": self.decode, "frontend_s": self.frontend, "model_s": self.model, "clips": self.clips}


# -- input settings ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class InputSpec:
    """The model's input settings, read from ``PretrainedCfg.input`` (see the module docstring)."""

    task: str
    sample_rate: int
    segments: int
    segment_seconds: float
    frames_per_segment: int
    size: int | tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    tile_audio_to: int | None = None
    audio_frontend: str | None = None
    onset_steps: int | None = None

    @classmethod
    def from_model(cls, model: torch.nn.Module, override: dict[str, Any] | None = None) -> InputSpec:
        cfg = getattr(model, "pretrained_cfg", None)
        settings = dict(getattr(cfg, "input", None) or {})
        settings.update(override or {})
        name = getattr(model, "architecture", type(model).__name__)
        need = ("task", "sample_rate", "size")
        absent = [k for k in need if k not in settings]
        if absent:
            raise ConfigError(
                f"model {name!r} has no input settings {absent} in its pretrained_cfg.input; pass input_cfg={{...}}"
            )
        task = settings["task"]
        if "embeddings" in settings:
            raise ConfigError(
                f"model {name!r} consumes precomputed {settings['embeddings']} embeddings, not media; call it on "
                "embedding tensors directly (predict works on models whose input is frames + waveform)"
            )
        if task not in ("ave", "clip-classification"):
            raise ConfigError(f"predict supports task 'ave' and 'clip-classification'; model {name!r} has {task!r}")
        size = settings["size"]
        segments = settings.get("segments", 1)
        if "segments" not in (override or {}) and isinstance(getattr(model, "num_segments", None), int):
            segments = model.num_segments  # a model built with num_segments=... overrides the registry default
        return cls(
            task=task,
            sample_rate=int(settings["sample_rate"]),
            segments=int(segments),
            segment_seconds=float(settings.get("segment_seconds", 1.0)),
            frames_per_segment=int(settings.get("frames_per_segment", 1)),
            size=tuple(size) if isinstance(size, (list, tuple)) else int(size),
            mean=tuple(settings.get("mean", (0.0, 0.0, 0.0))),
            std=tuple(settings.get("std", (1.0, 1.0, 1.0))),
            tile_audio_to=settings.get("tile_audio_to"),
            audio_frontend=settings.get("audio_frontend"),
            onset_steps=int(settings["steps"]) if "onsets" in settings and "steps" in settings else None,
        )

    @property
    def hw(self) -> tuple[int, int]:
        return self.size if isinstance(self.size, tuple) else (self.size, self.size)

    @property
    def duration(self) -> float:
        return self.segments * self.segment_seconds


# -- inputs -----------------------------------------------------------------------------------------
def expand_inputs(inputs: str | Path | AVClip | Sequence[str | Path | AVClip]) -> list[str | AVClip]:
    """Paths, folders (their media files, sorted) and clips as one flat list."""
    items = [inputs] if isinstance(inputs, (str, Path, AVClip)) else list(inputs)
    out: list[str | AVClip] = []
    for item in items:
        if isinstance(item, AVClip):
            out.append(item)
            continue
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES)
            out += [str(p) for p in found]
        else:
            out.append(str(path))
    return out


def _decode(item: str | AVClip, spec: InputSpec) -> AVClip:
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
        size=spec.hw,
        sample_rate=spec.sample_rate,
        mono=True,
    )


def _clip_tensors(clip: AVClip, spec: InputSpec) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One clip -> video float (T[, F], 3, H, W) normalised, audio (T, S) float, valid (T,) bool."""
    segs = clip.segments(spec.segments, spec.segment_seconds, spec.frames_per_segment)
    video, audio = segs.model_inputs()
    if tuple(video.shape[-2:]) != spec.hw:
        flat = video.reshape(-1, *video.shape[-3:])
        flat = torch.nn.functional.interpolate(flat, size=spec.hw, mode="bilinear", antialias=True, align_corners=False)
        video = flat.reshape(*video.shape[:-2], *spec.hw)
    mean = torch.tensor(spec.mean, dtype=video.dtype).view(3, 1, 1)
    std = torch.tensor(spec.std, dtype=video.dtype).view(3, 1, 1)
    return (video - mean) / std, audio, segs.valid


def _frontend(model: torch.nn.Module, video: torch.Tensor, audio: torch.Tensor, spec: InputSpec):
    """Batch-level front-ends -> ``(video, audio, extra_kwargs)``.

    AVE: audio tiled to ``tile_audio_to`` when the model does not tile itself; the model's
    ``audio_image`` (LAVisH) computed here. Clip classifiers: the ``T`` segments of frames become one
    ``(B, T*F, 3, H, W)`` sequence and the audio one ``(B, samples)`` waveform; models taking an
    ``onset_mask`` get the onsets per step (config ``"onsets"`` + ``"steps"``).
    """
    extra: dict[str, torch.Tensor] = {}
    if spec.task == "clip-classification":
        if video.dim() == 6:
            video = rearrange(video, "b t f c h w -> b (t f) c h w")
        audio = rearrange(audio, "b t s -> b (t s)")
        if spec.onset_steps and "onset_mask" in inspect.signature(model.forward).parameters:
            from .signal.onsets import onset_mask

            extra["onset_mask"] = onset_mask(audio.float(), spec.sample_rate, steps=spec.onset_steps).to(video.device)
        return video, audio, extra
    if spec.tile_audio_to and not hasattr(model, "tile_audio") and audio.shape[-1] != spec.tile_audio_to:
        reps, rest = divmod(int(spec.tile_audio_to), audio.shape[-1])
        if rest:
            raise ConfigError(f"segment length {audio.shape[-1]} does not divide tile_audio_to={spec.tile_audio_to}")
        audio = repeat(audio, "b t s -> b t (r s)", r=reps)
    if hasattr(model, "audio_image"):
        audio = model.audio_image(audio)
    return video, audio, extra


def _class_probs(outputs) -> torch.Tensor:
    """Clip-classifier outputs -> (B, K) probabilities: softmax of ``logits`` (a tensor or a
    ``"logits"`` entry), or the mean of the per-head softmaxes of a ``{head: (B, K)}`` dict."""
    if isinstance(outputs, torch.Tensor):
        return outputs.float().softmax(-1)
    if "logits" in outputs:
        return outputs["logits"].float().softmax(-1)
    heads = [v for v in outputs.values() if isinstance(v, torch.Tensor) and v.dim() == 2]
    if not heads:
        raise ConfigError(f"cannot read classifier outputs {sorted(outputs)}: expected logits (B, K)")
    return torch.stack([h.float().softmax(-1) for h in heads]).mean(dim=0)


def _label_names(model: torch.nn.Module, k: int) -> list[str]:
    cfg = getattr(model, "pretrained_cfg", None)
    names = list(getattr(cfg, "label_names", ()) or ())
    if len(names) != k:
        names = [f"class_{i}" for i in range(k)]
    return names


def _ave_results(model, outputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """-> (labels (B, T) int64, score (B, T), clip class probs (B, K), K) in float32."""
    decide = getattr(model, "decide", None)
    if "probs" in outputs or ("logits" in outputs and outputs["logits"].dim() == 3):
        probs = outputs["probs"].float() if "probs" in outputs else outputs["logits"].float().softmax(-1)
        k = probs.shape[-1] - 1
        labels = decide(outputs) if decide is not None else probs.argmax(-1)
        score = probs.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
        clip_probs = probs[..., :k].mean(dim=1)
        return labels, score, clip_probs, k
    if "is_event" in outputs and "event_scores" in outputs:
        event_p = torch.sigmoid(outputs["is_event"].float())
        class_p = outputs["event_scores"].float().softmax(-1)
        k = class_p.shape[-1]
        labels = decide(outputs) if decide is not None else torch.where(
            event_p > 0.5, class_p.argmax(-1, keepdim=True).expand_as(event_p), torch.full_like(event_p, k).long()
        )
        cls_p = class_p.gather(-1, labels.clamp(max=k - 1))
        score = torch.where(labels == k, 1.0 - event_p, event_p * cls_p)
        return labels, score, class_p, k
    raise ConfigError(f"cannot read AVE outputs {sorted(outputs)}: expected 'probs'/'logits' (B, T, K+1) or "
                      "'is_event' + 'event_scores'")


def _resolve_model(model, pretrained, device, dtype) -> torch.nn.Module:
    if isinstance(model, str):
        from .models import create_model

        model = create_model(model, pretrained=pretrained)
    elif pretrained not in (None, False):
        raise ConfigError("pretrained= applies to a model name; load weights into a model object yourself")
    if not isinstance(model, torch.nn.Module):
        raise ConfigError(f"model must be a registered name or an nn.Module, got {type(model).__name__}")
    model.eval()
    if device is not None or dtype is not None:
        model.to(device=device, dtype=dtype)
    return model


def _model_device_dtype(model: torch.nn.Module) -> tuple[torch.device, torch.dtype]:
    for p in model.parameters():
        return p.device, p.dtype
    return torch.device("cpu"), torch.float32


def _source_name(item: str | AVClip) -> str:
    return item if isinstance(item, str) else (item.path or "<AVClip>")


def _run_batch(model, spec, items, clips, topk, timings) -> list[Prediction]:
    device, dtype = _model_device_dtype(model)
    t0 = time.perf_counter()
    tensors = [_clip_tensors(c, spec) for c in clips]
    video = torch.stack([t[0] for t in tensors]).to(device=device, dtype=dtype)
    audio = torch.stack([t[1] for t in tensors]).to(device=device, dtype=dtype)
    valid = torch.stack([t[2] for t in tensors])
    with torch.inference_mode():
        video, audio, extra = _frontend(model, video, audio, spec)
        video, audio = video.to(dtype), audio.to(dtype)  # front-ends may compute in float32
        t1 = time.perf_counter()
        outputs = model(video, audio, **extra)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t2 = time.perf_counter()
    if timings is not None:
        timings.frontend += t1 - t0
        timings.model += t2 - t1
        timings.clips += len(clips)
    name = getattr(model, "architecture", type(model).__name__)
    results: list[Prediction] = []
    if spec.task == "ave":
        labels, score, clip_probs, k = _ave_results(model, outputs)
        names = [*_label_names(model, k), BACKGROUND]
        top = clip_probs.topk(min(topk, k), dim=-1)
        for b, (item, clip) in enumerate(zip(items, clips)):
            segs = [
                SegmentPrediction(
                    start=t * spec.segment_seconds,
                    end=(t + 1) * spec.segment_seconds,
                    label=names[int(labels[b, t])],
                    index=int(labels[b, t]),
                    score=float(score[b, t]),
                    is_event=int(labels[b, t]) != k,
                    valid=bool(valid[b, t]),
                )
                for t in range(labels.shape[1])
            ]
            best = [(names[int(i)], float(p)) for p, i in zip(top.values[b], top.indices[b])]
            results.append(Prediction(_source_name(item), name, spec.task, segs, best, clip.has_video, clip.has_audio))
    else:
        probs = _class_probs(outputs)
        k = probs.shape[-1]
        names = _label_names(model, k)
        top = probs.topk(min(topk, k), dim=-1)
        for b, (item, clip) in enumerate(zip(items, clips)):
            best = [(names[int(i)], float(p)) for p, i in zip(top.values[b], top.indices[b])]
            results.append(Prediction(_source_name(item), name, spec.task, [], best, clip.has_video, clip.has_audio))
    return results


def iter_predict(
    inputs,
    *,
    model: str | torch.nn.Module,
    pretrained: bool | str | Path | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    batch_size: int = 8,
    topk: int = 5,
    input_cfg: dict[str, Any] | None = None,
    on_error: str = "raise",
    timings: PredictTimings | None = None,
) -> Iterator[Prediction | PredictionFailure]:
    """Yield one :class:`Prediction` per input, in order (see :func:`predict` for the arguments).

    With ``on_error="skip"`` a file that fails to decode yields a :class:`PredictionFailure`
    (name + reason) and the others are still predicted; ``"raise"`` raises its :class:`MediaError`.
    """
    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    items = expand_inputs(inputs)
    net = _resolve_model(model, pretrained, device, dtype)
    spec = InputSpec.from_model(net, input_cfg)
    pending: list[tuple[str | AVClip, AVClip]] = []
    for item in items:
        t0 = time.perf_counter()
        try:
            clip = _decode(item, spec)
        except MediaError as err:
            if on_error == "raise":
                raise
            if pending:
                yield from _run_batch(net, spec, [p[0] for p in pending], [p[1] for p in pending], topk, timings)
                pending = []
            yield PredictionFailure(_source_name(item), err.reason)
            continue
        finally:
            if timings is not None:
                timings.decode += time.perf_counter() - t0
        pending.append((item, clip))
        if len(pending) == batch_size:
            yield from _run_batch(net, spec, [p[0] for p in pending], [p[1] for p in pending], topk, timings)
            pending = []
    if pending:
        yield from _run_batch(net, spec, [p[0] for p in pending], [p[1] for p in pending], topk, timings)


def predict(
    inputs,
    *,
    model: str | torch.nn.Module,
    pretrained: bool | str | Path | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    batch_size: int = 8,
    topk: int = 5,
    input_cfg: dict[str, Any] | None = None,
) -> Prediction | list[Prediction]:
    """Predict with a registered model on media files or clips, with the model's own preprocessing.

    Args:
        inputs: a path, a list of paths, a folder (its media files, sorted) or an :class:`AVClip`
            (already decoded at the model's sample rate).
        model: a registered name (``"dgsct-ave-tiny"``, ``"dgsct-ave.untrained"``) or a model object
            carrying ``pretrained_cfg`` (as :func:`avperceive.create_model` returns).
        pretrained: weights for a named model (``True``, ``"hf-hub:org/repo"``, ``"local-dir:/p"``, ...).
        device, dtype: where and in which precision to run (default: the model's, CPU float32).
        batch_size: clips per forward pass.
        topk: number of labels in :attr:`Prediction.topk`.
        input_cfg: overrides of the model's input settings.

    Returns:
        one :class:`Prediction` for a single path / clip; a list for a list or folder.

    Raises:
        MediaError: a file cannot be decoded (the CLI skips and reports such files instead).
    """
    single = isinstance(inputs, (str, Path, AVClip)) and not (isinstance(inputs, (str, Path)) and Path(inputs).is_dir())
    results = list(
        iter_predict(
            inputs, model=model, pretrained=pretrained, device=device, dtype=dtype, batch_size=batch_size,
            topk=topk, input_cfg=input_cfg,
        )
    )
    return results[0] if single else results  # type: ignore[return-value]
