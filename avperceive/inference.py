"""One-line prediction on media files: ``avperceive.predict("clip.mp4", model="dgsct-ave-tiny")``.

Uses the model contract (:mod:`avperceive.models.contract`) and nothing else:

1. **inputs** -- :class:`~avperceive.models.inputs.InputSpec` from the model's ``input_cfg``;
   :func:`~avperceive.models.inputs.decode_for` decodes each file at the model's rate, frame count
   and size; :func:`~avperceive.models.inputs.prepare_inputs` runs the declared front-end steps;
2. **model** -- ``model(video, audio, **extra)`` in batches, under ``torch.inference_mode``, on
   ``device`` / ``dtype``;
3. **reading** -- one rule per task: AVE models give ``outputs["probs"]`` ``(B, T, K + 1)`` and
   ``model.decide(outputs)`` ``(B, T)``; clip classifiers give logits ``(B, K)`` and ``decide``
   ``(B,)``.

Outputs are :class:`Prediction` objects. For AVE models: one :class:`SegmentPrediction` per
segment with the decided class, its probability and whether the segment lies inside the media
(``valid``); consecutive *valid* event segments of one class are merged into
:attr:`Prediction.events`; ``topk`` ranks the classes by their mean probability over the valid
segments. For clip classifiers: the top-k labels with probabilities and the decided label.
``Prediction.weights`` says where the weights come from; untrained weights raise an
:class:`UntrainedWeightsWarning` once per call.

Throughput: files are decoded in ``num_workers`` forked processes (the default where the platform can
fork), or decoded and put through the front-ends in threads or spawned DataLoader workers, while the
model runs, results in input order (:func:`default_num_workers`, :func:`default_worker_kind`).
Scale-out: :func:`predict_to_part` predicts one process's :func:`shard` of the files into its own
JSON-lines part file, skipping files already recorded (resumable); :func:`merge_results` joins the
parts in input order (``torchrun -m avperceive predict ... --out results.jsonl``).
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from glob import escape as glob_escape
from pathlib import Path
from typing import Any

import torch

from .errors import ConfigError, MediaError
from .io import MEDIA_SUFFIXES, AVClip
from .models.contract import UNTRAINED, AVModel
from .models.inputs import InputSpec, ModelInputs, decode_for, prepare_inputs

__all__ = [
    "predict",
    "iter_predict",
    "Prediction",
    "SegmentPrediction",
    "Event",
    "PredictionFailure",
    "PredictTimings",
    "InputSpec",
    "UntrainedWeightsWarning",
    "expand_inputs",
    "default_num_workers",
    "default_worker_kind",
    "fork_available",
    "WORKER_KINDS",
    "shard",
    "part_path",
    "read_results",
    "recorded_sources",
    "predict_to_part",
    "merge_results",
    "MergeSummary",
    "resolve_device",
    "resolve_dtype",
    "MEDIA_SUFFIXES",
    "DTYPES",
]

BACKGROUND = "background"
#: label of a segment past the end of the media (its model output is kept, but it is never an event).
PADDING = "padding"
#: dtype names accepted by ``predict(dtype=...)`` and ``avperceive predict --dtype``.
DTYPES = {
    "float32": torch.float32, "fp32": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
}


class UntrainedWeightsWarning(UserWarning):
    """The model predicting has random (untrained) weights: its labels mean nothing."""


# -- results ----------------------------------------------------------------------------------------
@dataclass
class SegmentPrediction:
    """The decision for one segment (one second for AVE).

    Attributes:
        start, end: seconds from the clip start.
        label: class name, or ``"background"``.
        index: class index; background is ``K`` (the number of classes).
        score: the model's probability of this decision (``outputs["probs"]`` at ``index``).
        is_event: ``True`` when the segment holds an event (not background).
        valid: ``False`` for a segment past the end of the media (zero padding): never part of an event.
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
    """Consecutive valid event segments of one class merged: ``label`` from ``start`` to ``end`` (s), mean ``score``."""

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
        topk: ``[(label, probability), ...]`` best first (clip classifiers: softmax of the logits; AVE
            models: mean probability over the valid segments).
        has_video / has_audio: whether the file had the modality (a missing one is fed as zeros).
        weights: where the weights come from: ``"untrained"``, ``"local-dir:<path>"``,
            ``"hf-hub:<repo>@<revision>"`` (the model's ``weights_source``).
        decision: clip classifiers: the decided class (``model.decide``); AVE models: ``""``.
    """

    source: str
    model: str
    task: str
    segments: list[SegmentPrediction] = field(default_factory=list)
    topk: list[tuple[str, float]] = field(default_factory=list)
    has_video: bool = True
    has_audio: bool = True
    weights: str = UNTRAINED
    decision: str = ""

    @property
    def labels(self) -> list[str]:
        """Per-segment labels (AVE; ``"padding"`` past the end of the media) or ``[decision]``."""
        if self.segments:
            return [s.label if s.valid else PADDING for s in self.segments]
        return [self.decision] if self.decision else []

    @property
    def events(self) -> list[Event]:
        """Runs of consecutive valid event segments of the same class (padding never counts)."""
        out: list[Event] = []
        run: list[SegmentPrediction] = []
        for seg in [*self.segments, None]:
            joins = seg is not None and seg.valid and seg.is_event
            if run and (not joins or seg.label != run[-1].label or seg.start != run[-1].end):
                out.append(Event(run[0].label, run[0].start, run[-1].end, sum(s.score for s in run) / len(run)))
                run = []
            if joins:
                run.append(seg)
        return out

    @property
    def padded(self) -> tuple[float, float] | None:
        """``(start, end)`` seconds of the padded segments at the end, or ``None``."""
        pad = [s for s in self.segments if not s.valid]
        return (pad[0].start, pad[-1].end) if pad else None

    @property
    def untrained(self) -> bool:
        return self.weights == UNTRAINED

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (``Prediction.from_dict`` inverts it)."""
        return {
            "source": self.source,
            "model": self.model,
            "task": self.task,
            "weights": self.weights,
            "has_video": self.has_video,
            "has_audio": self.has_audio,
            "decision": self.decision,
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
            weights=str(d.get("weights", UNTRAINED)),
            decision=str(d.get("decision", "")),
        )

    def __str__(self) -> str:
        if self.segments:
            text = ", ".join(f"{e.label} {e.start:g}-{e.end:g}s ({e.score:.2f})" for e in self.events) or "no event"
            if self.padded is not None:
                text += f"; {self.padded[0]:g}-{self.padded[1]:g}s padding (past the end of the media)"
        else:
            text = ", ".join(f"{lab} ({p:.2f})" for lab, p in self.topk)
        if self.untrained:
            text += " [untrained weights: labels are meaningless]"
        return f"{self.source}: {text}"


@dataclass
class PredictionFailure:
    """A file that could not be predicted: ``source`` and ``reason``."""

    source: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"source": self.source, "error": self.reason}


@dataclass
class PredictTimings:
    """Seconds spent in each stage (filled in by :func:`iter_predict` when passed ``timings=``).

    ``decode`` sums the decoding time of every file, wherever it ran (in the decoding workers it
    overlaps the model); ``wait`` is the time the main process waited for decoded files (equal to
    ``decode`` without workers, near zero when the workers keep ahead of the model).
    """

    decode: float = 0.0
    frontend: float = 0.0
    model: float = 0.0
    wait: float = 0.0
    clips: int = 0

    def to_dict(self) -> dict[str, float]:
        return {"decode_s": self.decode, "frontend_s": self.frontend, "model_s": self.model, "wait_s": self.wait,
                "clips": self.clips}


# -- arguments --------------------------------------------------------------------------------------
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


def resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    """``None``, a floating ``torch.dtype`` or a name of :data:`DTYPES` -> the dtype; else :class:`ConfigError`."""
    if dtype is None:
        return None
    if isinstance(dtype, str):
        if dtype.lower() not in DTYPES:
            raise ConfigError(f"dtype {dtype!r} is not one of {', '.join(sorted(DTYPES))}")
        return DTYPES[dtype.lower()]
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    raise ConfigError(f"dtype must be float32, bfloat16 or float16 (a torch.dtype or its name), got {dtype!r}")


def resolve_device(device: torch.device | str | None) -> torch.device | None:
    """``None`` or a device this torch build can use -> ``torch.device``; else one-line :class:`ConfigError`."""
    if device is None:
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"device {device!r} is not a torch device ({err})") from err
    try:
        torch.empty(0, device=dev)
    except (RuntimeError, AssertionError, AttributeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"device {str(dev)!r} is not available here (torch {torch.__version__}): {reason}") from err
    return dev


def _resolve_model(model, pretrained, device, dtype) -> AVModel:
    if isinstance(model, str):
        from .models import create_model

        model = create_model(model, pretrained=pretrained)
    elif pretrained not in (None, False):
        raise ConfigError("pretrained= applies to a model name; load weights into a model object yourself")
    if not isinstance(model, AVModel):
        raise ConfigError(
            f"model must be a registered name or an avperceive model (avperceive.models.contract.AVModel), "
            f"got {type(model).__name__}"
        )
    model.eval()
    if device is not None or dtype is not None:
        model.to(device=device, dtype=dtype)
    return model


def _input_spec(model: AVModel, override: dict[str, Any] | None) -> InputSpec:
    name = model.architecture or type(model).__name__
    if override:
        try:
            base = model.input_cfg
        except ConfigError:
            base = {}
        return InputSpec.from_cfg({**base, **override}, name=name)
    return InputSpec.from_cfg(model.input_cfg, name=name)


def _model_device_dtype(model: AVModel) -> tuple[torch.device, torch.dtype]:
    for p in model.parameters():
        return p.device, model.parameter_dtype()
    return torch.device("cpu"), torch.float32


def _source_name(item: str | AVClip) -> str:
    return item if isinstance(item, str) else (item.path or "<AVClip>")


def _label_names(model: AVModel, k: int) -> list[str]:
    names = list(model.pretrained_cfg.label_names) if model.pretrained_cfg is not None else []
    return names if len(names) == k else [f"class_{i}" for i in range(k)]


def _warn_untrained(model: AVModel) -> None:
    name = model.architecture or type(model).__name__
    warnings.warn(
        f"{name} has untrained (random) weights: its labels are meaningless. Pass pretrained=... "
        "(avperceive models --pretrained lists weight sets; avperceive convert makes them from official checkpoints)",
        UntrainedWeightsWarning,
        stacklevel=3,
    )


# -- the batch --------------------------------------------------------------------------------------
def _read_ave(model: AVModel, outputs, valid: torch.Tensor):
    if not isinstance(outputs, dict) or "probs" not in outputs:
        raise ConfigError(f"{type(model).__name__} breaks the AVE output contract: expected a dict with 'probs'")
    probs = outputs["probs"].float().cpu()  # (B, T, K + 1)
    labels = model.decide(outputs).cpu()  # (B, T)
    k = probs.shape[-1] - 1
    score = probs.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    weight = valid.float().unsqueeze(-1)  # (B, T, 1): the clip score ignores padding
    clip_probs = (probs[..., :k] * weight).sum(1) / weight.sum(1).clamp(min=1.0)
    return labels, score, clip_probs, k


def _join_inputs(
    parts: Sequence[ModelInputs], device: torch.device, dtype: torch.dtype, audio_dtype: torch.dtype | None = None
) -> ModelInputs:
    """Per-clip model inputs (batch 1 each, float32 on the CPU) -> one batch on ``device`` / ``dtype``
    (the audio in ``audio_dtype`` when the input config sets one, see :class:`InputSpec`)."""
    video = torch.cat([p.video for p in parts]).to(device=device, dtype=dtype)
    audio = torch.cat([p.audio for p in parts]).to(device=device, dtype=audio_dtype or dtype)
    extra = {k: torch.cat([p.extra[k] for p in parts]).to(device) for k in parts[0].extra}
    return ModelInputs(video, audio, extra, torch.cat([p.valid for p in parts]))


def _run_batch(model: AVModel, spec: InputSpec, items, prepared: Sequence[_Prepared], topk: int,
               timings) -> list[Prediction]:
    device, dtype = _model_device_dtype(model)
    t0 = time.perf_counter()
    inputs = _join_inputs([p.inputs for p in prepared], device, dtype, spec.audio_dtype)
    t1 = time.perf_counter()
    with torch.inference_mode():
        outputs = model(inputs.video, inputs.audio, **inputs.extra)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    t2 = time.perf_counter()
    if timings is not None:
        timings.frontend += t1 - t0
        timings.model += t2 - t1
        timings.clips += len(prepared)
    name = model.architecture or type(model).__name__
    common = [dict(source=_source_name(i), model=name, task=spec.task, has_video=c.has_video,
                   has_audio=c.has_audio, weights=model.weights_source) for i, c in zip(items, prepared)]
    results: list[Prediction] = []
    if spec.task == "ave":
        labels, score, clip_probs, k = _read_ave(model, outputs, inputs.valid)
        names = [*_label_names(model, k), BACKGROUND]
        top = clip_probs.topk(min(topk, k), dim=-1)
        for b, kw in enumerate(common):
            segs = [
                SegmentPrediction(
                    start=t * spec.segment_seconds,
                    end=(t + 1) * spec.segment_seconds,
                    label=names[int(labels[b, t])],
                    index=int(labels[b, t]),
                    score=float(score[b, t]),
                    is_event=int(labels[b, t]) != k,
                    valid=bool(inputs.valid[b, t]),
                )
                for t in range(labels.shape[1])
            ]
            best = [(names[int(i)], float(p)) for p, i in zip(top.values[b], top.indices[b])]
            results.append(Prediction(segments=segs, topk=best, **kw))
        return results
    if not isinstance(outputs, torch.Tensor) or outputs.dim() != 2:
        raise ConfigError(f"{type(model).__name__} breaks the clip-classification contract: expected logits (B, K)")
    probs = outputs.float().softmax(-1).cpu()
    decided = model.decide(outputs).cpu()
    k = probs.shape[-1]
    names = _label_names(model, k)
    top = probs.topk(min(topk, k), dim=-1)
    for b, kw in enumerate(common):
        best = [(names[int(i)], float(p)) for p, i in zip(top.values[b], top.indices[b])]
        results.append(Prediction(topk=best, decision=names[int(decided[b])], **kw))
    return results


def default_num_workers(num_items: int, *, processes_per_machine: int = 1) -> int:
    """Decoding workers used when ``num_workers=None``: 0 for a single file, else ``min(4, CPUs - 1)``,
    at least 2 when there are 2 CPUs or more (1 on one CPU).

    ``CPUs`` is this process's share of the machine (the CPUs it may run on divided by
    ``processes_per_machine``, e.g. torchrun's ``LOCAL_WORLD_SIZE``); one of them is left to the
    main process (batching + model). Four workers keep the model fed when decoding takes ~4x the
    model's time per file; more only add memory. On 2 CPUs two decoders share them with the main
    process: decoding is ~3/4 of the serial time there, so one decoder would bound the speed-up at
    ~1.3x, two measured 1.8x (see ``docs/predict.md``).
    """
    if num_items <= 1:
        return 0
    cpus = _cpus() // max(1, processes_per_machine)
    return max(min(4, cpus - 1), 2 if cpus >= 2 else 1)


def _cpus() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@dataclass
class _Prepared:
    """One input decoded and through the front-ends (made in a worker, read in the main process), or why not."""

    index: int
    inputs: ModelInputs | None  # batch of one, float32 on the CPU; None when the file failed
    has_video: bool = True
    has_audio: bool = True
    reason: str = ""  # why the file failed
    config_error: str = ""  # a configuration error (raised as ConfigError by the main process)
    decode_s: float = 0.0
    frontend_s: float = 0.0


def _prepare_one(index: int, item: str | AVClip, spec: InputSpec, on_error: str) -> _Prepared:
    """Decode ``item`` and run the front-ends (:func:`prepare_inputs`) on it alone.

    A :class:`MediaError` becomes a failure record (so it crosses process boundaries without pickling
    the exception); any other decoding exception too when ``on_error="skip"``, so one odd file never
    stops a long run; a :class:`ConfigError` is carried as text and raised by the main process.
    """
    t0 = time.perf_counter()
    try:
        clip = decode_for(item, spec)
        t1 = time.perf_counter()
        inputs = prepare_inputs([clip], spec)
    except ConfigError as err:
        return _Prepared(index, None, config_error=str(err))
    except MediaError as err:
        return _Prepared(index, None, reason=err.reason, decode_s=time.perf_counter() - t0)
    except Exception as err:  # noqa: BLE001  (an unexpected decoder error is still one file's failure)
        if on_error == "raise":
            raise
        return _Prepared(index, None, reason=f"decoding raised {type(err).__name__}: {err}",
                         decode_s=time.perf_counter() - t0)
    return _Prepared(index, inputs, clip.has_video, clip.has_audio, decode_s=t1 - t0,
                     frontend_s=time.perf_counter() - t1)


class _PrepareDataset(torch.utils.data.Dataset):
    """``items[i]`` decoded and prepared for ``spec`` (map-style: the DataLoader keeps input order)."""

    def __init__(self, items: Sequence[str | AVClip], spec: InputSpec, on_error: str):
        self.items, self.spec, self.on_error = list(items), spec, on_error

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> _Prepared:
        return _prepare_one(index, self.items[index], self.spec, self.on_error)


def _no_collate(sample: _Prepared) -> _Prepared:
    return sample


@dataclass
class _Decoded:
    """One input decoded (in a forked decoding process, read in the main process), or why not."""

    index: int
    clip: AVClip | None  # None when the file failed
    reason: str = ""
    config_error: str = ""
    decode_s: float = 0.0


def _decode_one(index: int, item: str | AVClip, spec: InputSpec) -> _Decoded:
    """Decode ``item`` (:func:`decode_for`) and nothing else; every exception becomes a record, never raised."""
    t0 = time.perf_counter()
    try:
        clip = decode_for(item, spec)
    except ConfigError as err:
        return _Decoded(index, None, config_error=str(err))
    except MediaError as err:
        return _Decoded(index, None, reason=err.reason, decode_s=time.perf_counter() - t0)
    except Exception as err:  # noqa: BLE001  (an unexpected decoder error is still one file's failure)
        return _Decoded(index, None, reason=f"decoding raised {type(err).__name__}: {err}",
                        decode_s=time.perf_counter() - t0)
    return _Decoded(index, clip, decode_s=time.perf_counter() - t0)


def _init_decode_worker() -> None:
    """A forked decoding process runs one intra-op thread: it never enters the OpenMP / MKL pools the
    parent may have started (those are not fork-safe: a forked child running the audio front-end's FFT
    was seen spinning forever in MKL's allocator, which is why the front-ends stay in the parent)."""
    torch.set_num_threads(1)


#: where ``num_workers`` decoding workers run: ``"fork"`` forked processes that only decode (front-ends
#: and model stay in the main process), ``"thread"`` threads, ``"process"`` spawned DataLoader workers.
WORKER_KINDS = ("fork", "thread", "process")


def default_worker_kind() -> str:
    """``workers=None`` means ``"fork"`` where the platform can fork (:func:`fork_available`), else ``"thread"``."""
    return "fork" if fork_available() else "thread"


def fork_available() -> bool:
    """Whether this platform can fork decoding processes (``multiprocessing``'s ``"fork"`` start method)."""
    import multiprocessing

    return "fork" in multiprocessing.get_all_start_methods()


#: Files each forked decoding process may have in flight (decoded clips are small: the frames the model
#: takes, at its size, and the resampled audio).
FORK_PREFETCH = 2


def _fork_executor(num_workers: int):
    """A pool of ``num_workers`` forked decoding processes (one intra-op thread each)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(num_workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=_init_decode_worker)


def _decode_alone(index: int, item: str, spec: InputSpec) -> _Decoded:
    """Decode one file in a process of its own: the file whose decoding killed a pool's process is the
    one that kills this one too (its failure is recorded, with the signal or exit code)."""
    from concurrent.futures.process import BrokenProcessPool

    t0 = time.perf_counter()
    with _fork_executor(1) as solo:
        future = solo.submit(_decode_one, index, item, spec)
        try:
            return future.result()
        except BrokenProcessPool:
            return _Decoded(index, None, reason="the decoding process died while decoding this file "
                            "(a crash in the decoder library)", decode_s=time.perf_counter() - t0)


def _forked_decoded(items, spec: InputSpec, num_workers: int) -> Iterator[_Decoded]:
    """``items`` decoded in ``num_workers`` forked processes, in input order, at most 2 files per process
    in flight (memory stays bounded). Clips already decoded (:class:`AVClip`) are checked here and never
    cross a process boundary. A process that dies (a segfault in a decoder library, the OOM killer)
    breaks the pool: the files then in flight are decoded again one by one, each in a process of its
    own, so the file that crashes is recorded as failed and the others are not lost; a fresh pool
    takes the rest."""
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    pool = _fork_executor(num_workers)
    try:
        ahead: deque = deque()  # (index, item, future | _Decoded)
        todo = iter(enumerate(items))

        def submit(i: int, item: str | AVClip) -> None:
            if isinstance(item, AVClip):
                ahead.append((i, item, _decode_one(i, item, spec)))
                return
            try:
                future = pool.submit(_decode_one, i, item, spec)
            except BrokenProcessPool as err:  # a process died since: recovered when this file is next
                future = Future()
                future.set_exception(err)
            ahead.append((i, item, future))

        for i, item in todo:
            submit(i, item)
            if len(ahead) >= FORK_PREFETCH * num_workers:
                break
        while ahead:
            i, item, head = ahead.popleft()
            try:
                decoded: _Decoded = head if isinstance(head, _Decoded) else head.result()
            except BrokenProcessPool:
                _stop(pool)
                pool = _fork_executor(num_workers)
                decoded = _decode_alone(i, item, spec)
                ahead = deque((j, it, f if _finished(f) else _decode_alone(j, it, spec)) for j, it, f in ahead)
            nxt = next(todo, None)
            if nxt is not None:
                submit(*nxt)
            yield decoded
    finally:
        _stop(pool)


def _finished(f) -> bool:
    """A decoded record, or a future that completed with one (before its pool broke)."""
    return isinstance(f, _Decoded) or (f.done() and not f.cancelled() and f.exception() is None)


def _stop(pool) -> None:
    """Stop a decoding pool at once: queued files are dropped, running decoders are terminated."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        proc.terminate()


def _forked_stream(items, spec: InputSpec, on_error: str, num_workers: int) -> Iterator[_Prepared]:
    """``items`` decoded in forked processes (:func:`_forked_decoded`), the front-ends run here, in input order."""
    # the decoding processes take num_workers CPUs: the front-ends and the model get the rest, at least
    # one thread (idle intra-op threads spinning on CPUs the decoders hold made the front-ends ~4x slower)
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, min(threads, _cpus() - num_workers)))
    decoded_stream = _forked_decoded(items, spec, num_workers)
    try:
        for decoded in decoded_stream:
            if decoded.clip is None:
                yield _Prepared(decoded.index, None, reason=decoded.reason, config_error=decoded.config_error,
                                decode_s=decoded.decode_s)
                continue
            t1 = time.perf_counter()
            try:
                inputs = prepare_inputs([decoded.clip], spec)
            except ConfigError as err:
                yield _Prepared(decoded.index, None, config_error=str(err))
                continue
            except MediaError as err:
                yield _Prepared(decoded.index, None, reason=err.reason, decode_s=decoded.decode_s)
                continue
            except Exception as err:  # noqa: BLE001  (as in _prepare_one)
                if on_error == "raise":
                    raise
                yield _Prepared(decoded.index, None, reason=f"decoding raised {type(err).__name__}: {err}",
                                decode_s=decoded.decode_s)
                continue
            yield _Prepared(decoded.index, inputs, decoded.clip.has_video, decoded.clip.has_audio,
                            decode_s=decoded.decode_s, frontend_s=time.perf_counter() - t1)
    finally:
        decoded_stream.close()  # stops the decoding processes
        torch.set_num_threads(threads)


def _prepared_stream(items, spec: InputSpec, on_error: str, num_workers: int, workers: str) -> Iterator[_Prepared]:
    """``items`` decoded and prepared, in input order: in this thread, or in ``num_workers`` threads
    (``workers="thread"``) / forked decode-only processes (``"fork"``, front-ends here, see
    :func:`_forked_stream`) / DataLoader worker processes (``"process"``) working ahead while the caller
    runs the model."""
    if num_workers == 0:
        for i, item in enumerate(items):
            yield _prepare_one(i, item, spec, on_error)
        return
    if workers == "fork":
        yield from _forked_stream(items, spec, on_error, num_workers)
        return
    if workers == "thread":
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(num_workers, thread_name_prefix="avperceive-decode") as pool:
            ahead: deque = deque()
            it = iter(enumerate(items))
            for i, item in it:  # keep 2 files per thread in flight, the DataLoader's default prefetch
                ahead.append(pool.submit(_prepare_one, i, item, spec, on_error))
                if len(ahead) >= 2 * num_workers:
                    break
            while ahead:
                done = ahead.popleft().result()
                nxt = next(it, None)
                if nxt is not None:
                    ahead.append(pool.submit(_prepare_one, *nxt, spec, on_error))
                yield done
        return
    # spawn, not fork: a worker forked after the parent ran MKL / OpenMP from several threads can spin
    # forever in MKL's allocator (seen here in the FFT of the audio front-end).
    loader = torch.utils.data.DataLoader(
        _PrepareDataset(items, spec, on_error), batch_size=None, shuffle=False, num_workers=num_workers,
        collate_fn=_no_collate, prefetch_factor=2, persistent_workers=False, multiprocessing_context="spawn",
    )
    yield from loader


def iter_predict(
    inputs,
    *,
    model: str | AVModel,
    pretrained: bool | str | Path | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    batch_size: int = 8,
    topk: int = 5,
    input_cfg: dict[str, Any] | None = None,
    on_error: str = "raise",
    timings: PredictTimings | None = None,
    num_workers: int | None = None,
    workers: str | None = None,
) -> Iterator[Prediction | PredictionFailure]:
    """Yield one :class:`Prediction` per input, in order (see :func:`predict` for the arguments).

    With ``on_error="skip"`` a file that fails to decode yields a :class:`PredictionFailure`
    (name + reason) in its place and the others are still predicted; ``"raise"`` raises its
    :class:`MediaError`. With ``num_workers > 0`` files are decoded ahead of the model, results in
    input order, the same as with ``num_workers=0`` (all in this thread):

    * ``workers="fork"`` (the default, ``None``, where the platform can fork): ``num_workers`` forked
      processes only decode (:func:`decode_for`, one intra-op thread each, at most two files each in
      flight); the front-ends and the model run in this process, with the intra-op threads the
      decoders leave free (at least one) while they run. An unexpected decoder exception is one
      file's failure (raised as its :class:`MediaError` with ``on_error="raise"``), never an
      exception across processes; a decoding process that dies (a decoder segfault) is replaced, the
      file it was decoding is recorded as failed and the others are decoded again. Threads where
      the platform cannot fork (:func:`fork_available`);
    * ``"thread"`` (the default where the platform cannot fork): decoding and the front-ends in
      threads (PyAV holds the GIL while decoding, so this overlaps little on CPU);
    * ``"process"``: decoding and the front-ends in spawned ``torch.utils.data.DataLoader`` workers
      (each imports torch first, ~2 s).
    """
    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if num_workers is not None and (not isinstance(num_workers, int) or num_workers < 0):
        raise ConfigError(f"num_workers must be an int >= 0 or None (automatic), got {num_workers!r}")
    if workers is None:
        workers = default_worker_kind()
    if workers not in WORKER_KINDS:
        raise ConfigError(f"workers must be one of {', '.join(WORKER_KINDS)}, got {workers!r}")
    if workers == "fork" and not fork_available():
        workers = "thread"
    items = expand_inputs(inputs)
    net = _resolve_model(model, pretrained, resolve_device(device), resolve_dtype(dtype))
    spec = _input_spec(net, input_cfg)
    if net.weights_source == UNTRAINED:
        _warn_untrained(net)
    if num_workers is None:
        files = sum(not isinstance(item, AVClip) for item in items)  # decoded clips need no worker
        num_workers = default_num_workers(files)
    stream = _prepared_stream(items, spec, on_error, num_workers, workers)
    try:
        yield from _batched(net, spec, items, stream, on_error, batch_size, topk, timings)
    finally:
        stream.close()  # stops the decoding workers at once, also when the caller stops early or on an error


def _batched(net: AVModel, spec: InputSpec, items, stream: Iterator[_Prepared], on_error: str, batch_size: int,
             topk: int, timings: PredictTimings | None) -> Iterator[Prediction | PredictionFailure]:
    """Prepared inputs in input order -> predictions (batches of ``batch_size``) and failures, in order."""
    pending: list[tuple[str | AVClip, _Prepared]] = []

    def flush() -> list[Prediction]:
        done = _run_batch(net, spec, [p[0] for p in pending], [p[1] for p in pending], topk, timings)
        pending.clear()
        return done

    while True:
        t0 = time.perf_counter()
        prepared = next(stream, None)
        if timings is not None:
            timings.wait += time.perf_counter() - t0
        if prepared is None:
            break
        if prepared.config_error:
            raise ConfigError(prepared.config_error)
        item = items[prepared.index]
        if timings is not None:
            timings.decode += prepared.decode_s
            timings.frontend += prepared.frontend_s
        if prepared.inputs is None:
            if on_error == "raise":
                raise MediaError(_source_name(item), prepared.reason)
            if pending:
                yield from flush()
            yield PredictionFailure(_source_name(item), prepared.reason)
            continue
        pending.append((item, prepared))
        if len(pending) == batch_size:
            yield from flush()
    if pending:
        yield from flush()


def predict(
    inputs,
    *,
    model: str | AVModel,
    pretrained: bool | str | Path | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    batch_size: int = 8,
    topk: int = 5,
    input_cfg: dict[str, Any] | None = None,
    progress: bool = False,
    num_workers: int | None = None,
    workers: str | None = None,
) -> Prediction | list[Prediction]:
    """Predict with a registered model on media files or clips, with the model's own preprocessing.

    Args:
        inputs: a path, a list of paths, a folder (its media files, sorted) or an :class:`AVClip`
            (already decoded at the model's sample rate).
        model: a registered name (``"dgsct-ave-tiny"``, ``"dgsct-ave.untrained"``), a source
            (``"local-dir:/path"``) or a model object (:class:`~avperceive.models.contract.AVModel`).
        pretrained: weights for a named model (``True``, ``"hf-hub:org/repo"``, ``"local-dir:/p"``, ...).
        device: where to run (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``); an unavailable one
            raises :class:`ConfigError`. Default: the model's.
        dtype: ``torch.float32`` / ``torch.bfloat16`` / ``torch.float16`` or their names; the model
            is cast in place. Default: the model's.
        batch_size: clips per forward pass.
        topk: number of labels in :attr:`Prediction.topk`.
        input_cfg: overrides of the model's input settings.
        progress: a tqdm progress bar on stderr.
        num_workers: workers decoding files ahead of the model (results in input order); ``0``
            decodes in this thread. Default (``None``): 0 for one file, else ``min(4, CPUs - 1)``
            (at least 2 on 2 CPUs or more), see :func:`default_num_workers`.
        workers: ``"fork"`` (forked decode-only processes; the default, ``None``, where the platform
            can fork), ``"thread"`` (the default elsewhere) or ``"process"`` (spawned DataLoader
            workers); see :func:`iter_predict`.

    Returns:
        one :class:`Prediction` for a single path / clip; a list for a list or folder.

    Raises:
        MediaError: a file cannot be decoded (the CLI skips and reports such files instead).
        ConfigError: unknown model, dtype or device, or a model that takes embeddings, not media.

    Warns:
        UntrainedWeightsWarning: the model's weights are untrained (random).
    """
    single = isinstance(inputs, (str, Path, AVClip)) and not (isinstance(inputs, (str, Path)) and Path(inputs).is_dir())
    items = expand_inputs(inputs)
    results = iter_predict(
        items, model=model, pretrained=pretrained, device=device, dtype=dtype, batch_size=batch_size,
        topk=topk, input_cfg=input_cfg, num_workers=num_workers, workers=workers,
    )
    if progress:
        from tqdm.auto import tqdm

        results = tqdm(results, total=len(items), desc="predict", unit="file", file=sys.stderr)
    out = list(results)
    return out[0] if single else out  # type: ignore[return-value]


# -- sharded, resumable JSON-lines output (``torchrun -m avperceive predict ... --out results.jsonl``) ---------
def shard(items: Sequence[Any], rank: int, world_size: int) -> list[Any]:
    """Process ``rank``'s share of ``items``: every ``world_size``-th item from ``rank`` (disjoint, covering,
    deterministic for a given order, sizes within one of each other)."""
    if not 0 <= rank < world_size:
        raise ConfigError(f"rank must be in [0, {world_size}), got {rank}")
    return list(items[rank::world_size])


def part_path(out: str | Path, rank: int, world_size: int) -> Path:
    """The file process ``rank`` of ``world_size`` appends its results to: ``OUT.rank{r}-of-{N}.part``."""
    out = Path(out)
    return out.with_name(f"{out.name}.rank{rank}-of-{world_size}.part")


def _part_files(out: Path) -> list[Path]:
    """Every part file of ``out`` (whatever the world size that wrote it), sorted."""
    return sorted(out.parent.glob(f"{glob_escape(out.name)}.rank*-of-*.part"))


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """The result records of a JSON-lines file; a missing file is empty.

    Only complete lines (ending in a newline) that hold a JSON object with a ``"source"`` count: a
    last line cut short by a crash (or a killed process) is ignored.
    """
    path = Path(path)
    if not path.exists():
        return []
    records = []
    with path.open("rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                break
            try:
                rec = json.loads(raw)
            except ValueError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("source"), str):
                records.append(rec)
    return records


def recorded_sources(out: str | Path, *, retry_failed: bool = False) -> set[str]:
    """Sources that ``out`` or its part files already hold a result for (failures too, unless ``retry_failed``)."""
    out = Path(out)
    done: set[str] = set()
    for path in [out, *_part_files(out)]:
        done.update(r["source"] for r in read_results(path) if not (retry_failed and "error" in r))
    return done


def _open_part(path: Path):
    """Open a part file for appending, first cutting a trailing partial line (left by a killed process)."""
    if path.exists():
        data = path.read_bytes()
        keep = data.rfind(b"\n") + 1
        if keep != len(data):
            with path.open("r+b") as f:
                f.truncate(keep)
    return path.open("a", encoding="utf-8")


def predict_to_part(
    items: Sequence[str | AVClip],
    out: str | Path,
    *,
    rank: int = 0,
    world_size: int = 1,
    retry_failed: bool = False,
    **kwargs: Any,
) -> Iterator[Prediction | PredictionFailure]:
    """Predict this process's shard of ``items`` into its part file, one JSON line per file, resumably.

    The shard is :func:`shard` of ``items``; files ``out`` or any part file of ``out`` already holds
    a result for are skipped (:func:`recorded_sources`), so a re-run after a crash only does the
    rest. Each result is appended as one line (:meth:`Prediction.to_dict`, or
    ``{"source": ..., "error": reason}`` for a file that failed) and flushed before it is yielded.
    ``kwargs`` go to :func:`iter_predict` (``on_error`` is always ``"skip"``). Merge the parts with
    :func:`merge_results` once every process is done.
    """
    out = Path(out)
    done = recorded_sources(out, retry_failed=retry_failed)
    todo = [item for item in shard(items, rank, world_size) if _source_name(item) not in done]
    if not todo:
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    with _open_part(part_path(out, rank, world_size)) as f:
        for result in iter_predict(todo, on_error="skip", **kwargs):
            f.write(json.dumps(result.to_dict()) + "\n")
            f.flush()
            yield result


@dataclass
class MergeSummary:
    """What :func:`merge_results` wrote: ``predicted`` + ``failed`` lines; ``missing`` inputs had no result."""

    predicted: int
    failed: int
    missing: list[str]


def merge_results(items: Sequence[str | AVClip], out: str | Path) -> MergeSummary:
    """Write ``out``: one line per input in input order, from ``out`` (an earlier merge) and every part file.

    A file recorded more than once (a failure retried, a re-run with another world size) keeps a
    success over a failure, else the record read last (part files after ``out``). ``out`` is
    replaced atomically, then the part files are removed. Inputs without a record are listed in
    :attr:`MergeSummary.missing` (and absent from ``out``; a re-run predicts them).
    """
    out = Path(out)
    parts = _part_files(out)
    best: dict[str, dict[str, Any]] = {}
    for path in [out, *parts]:
        for rec in read_results(path):
            old = best.get(rec["source"])
            if old is None or "error" in old or "error" not in rec:
                best[rec["source"]] = rec
    predicted = failed = 0
    missing: list[str] = []
    tmp = out.with_name(out.name + ".merging")
    with tmp.open("w", encoding="utf-8") as f:
        for item in items:
            rec = best.get(_source_name(item))
            if rec is None:
                missing.append(_source_name(item))
                continue
            failed += "error" in rec
            predicted += "error" not in rec
            f.write(json.dumps(rec) + "\n")
    os.replace(tmp, out)
    for path in parts:
        path.unlink()
    return MergeSummary(predicted, failed, missing)
