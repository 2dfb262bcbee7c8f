"""``avperceive models [PATTERN] [--pretrained] [--json]``: what each registered model is and expects.

One row per model (or per weight set with ``--pretrained``): the task, the parameter count, the
input the model expects (audio sample rate, segments x seconds, frame size) and the weights
status. Parameters are counted on a model built on the ``meta`` device (``torch.device("meta")``:
shapes only, no memory, no initialisation), so listing the full-size models takes about a second.

A pattern with no shell wildcard matches as a substring (``dgsct`` = ``*dgsct*``). A pattern that
matches nothing is an input error (exit 2, one line on stderr); a model that cannot be built on the
meta device is reported on stderr and listed without a count (exit 1).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ConfigError
from ..models import create_model, get_pretrained_cfg, list_models
from . import EXIT_OK, EXIT_SOME_FAILED

__all__ = [
    "SUMMARY", "DESCRIPTION", "add_arguments", "run",
    "ModelInfo", "model_info", "weights_status", "count_parameters_on_meta",
]

_WILDCARDS = set("*?[")


def weights_status(cfg) -> str:
    """``"hf-hub:<repo>@<revision>"`` for published weights, else ``"untrained"`` (random initialisation).

    Args:
        cfg: the weight set's :class:`~avperceive.hub.pretrained_cfg.PretrainedCfg`, or ``None``.
    """
    if cfg is None or not cfg.hub_id:
        return "untrained"
    return f"hf-hub:{cfg.hub_id}@{cfg.revision}" if cfg.revision else f"hf-hub:{cfg.hub_id}"


def count_parameters_on_meta(name: str) -> tuple[int, int]:
    """``(parameters, trainable parameters)`` of ``create_model(name)``, built on the meta device.

    Shared parameters are counted once (``nn.Module.parameters`` de-duplicates); buffers are not
    parameters. ``requires_grad`` flags set by the builder (frozen backbones, Keras-compatible zero
    biases) hold on the meta device too, so the trainable count is the real one.
    """
    with torch.device("meta"):
        model = create_model(name)
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


@dataclass
class ModelInfo:
    """One row of ``avperceive models``.

    Attributes:
        name: ``arch`` (or ``arch.tag`` with ``--pretrained``).
        task: ``pretrained_cfg.input["task"]`` (``"ave"``, ``"clip-classification"``, ``"av-correspondence"``).
        parameters: parameter elements (``None`` when the model could not be built on the meta device).
        trainable: elements with ``requires_grad`` as built.
        sample_rate: audio sample rate in Hz.
        segments: segments per clip.
        segment_seconds: seconds per segment.
        frames_per_segment: video frames per segment (``None``: not stated).
        size: square frame size in pixels.
        classes: number of output labels.
        weights: :func:`weights_status`.
        converter: ``avperceive convert`` kind that converts the official checkpoint, if any.
        error: why the parameters could not be counted.
    """

    name: str
    task: str | None
    parameters: int | None
    trainable: int | None
    sample_rate: int | None
    segments: int | None
    segment_seconds: float | None
    frames_per_segment: int | None
    size: int | None
    classes: int
    weights: str
    converter: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def input_text(self) -> str:
        """``"32 kHz, 10 x 1 s, 1 frame/seg, 192 px"`` (parts that are not stated are left out)."""
        parts = []
        if self.sample_rate:
            parts.append(f"{self.sample_rate / 1000:g} kHz")
        if self.segments and self.segment_seconds:
            parts.append(f"{self.segments} x {self.segment_seconds:g} s")
        elif self.segments:
            parts.append(f"{self.segments} seg")
        if self.frames_per_segment:
            parts.append(f"{self.frames_per_segment} frame{'s' if self.frames_per_segment > 1 else ''}/seg")
        if self.size:
            parts.append(f"{self.size} px")
        return ", ".join(parts) or "-"


def model_info(name: str) -> ModelInfo:
    """Describe ``name`` (``arch`` or ``arch.tag``) from its pretrained config and a meta-device build."""
    cfg = get_pretrained_cfg(name)
    spec = dict(cfg.input) if cfg is not None else {}
    error = None
    try:
        parameters, trainable = count_parameters_on_meta(name)
    except Exception as err:  # any builder failure is reported; the listing goes on
        parameters = trainable = None
        error = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    return ModelInfo(
        name=name,
        task=spec.get("task"),
        parameters=parameters,
        trainable=trainable,
        sample_rate=spec.get("sample_rate"),
        segments=spec.get("segments"),
        segment_seconds=spec.get("segment_seconds"),
        frames_per_segment=spec.get("frames_per_segment"),
        size=spec.get("size"),
        classes=len(cfg.label_names) if cfg is not None else 0,
        weights=weights_status(cfg),
        converter=cfg.converter if cfg is not None else None,
        error=error,
    )


def _human_count(n: int | None) -> str:
    if n is None:
        return "?"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if n >= scale:
            return f"{n / scale:.1f}{suffix}"
    return str(n)


def _matching(pattern: str, pretrained: bool) -> list[str]:
    glob = pattern if _WILDCARDS & set(pattern) else f"*{pattern}*"
    names = list_models(glob, pretrained=pretrained)
    if not names:
        raise ConfigError(f"no registered model matches {pattern!r} ({len(list_models())} models: avperceive models)")
    return names


def run(args: argparse.Namespace) -> int:
    infos = [model_info(name) for name in _matching(args.pattern, args.pretrained)]
    if args.json:
        print(json.dumps([info.to_dict() for info in infos], indent=2))
    else:
        rows = [("MODEL", "TASK", "PARAMS", "INPUT", "WEIGHTS")]
        for info in infos:
            weights = info.weights
            if info.weights == "untrained" and info.converter:
                weights += f" (official checkpoint: avperceive convert {info.converter})"
            rows.append((info.name, info.task or "-", _human_count(info.parameters), info.input_text(), weights))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        for row in rows:
            print("  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths)) + "  " + row[4])
    failed = [info for info in infos if info.error]
    for info in failed:
        print(f"avperceive models: {info.name}: cannot count parameters on the meta device: {info.error}",
              file=sys.stderr)
    return EXIT_SOME_FAILED if failed else EXIT_OK


#: the line ``avperceive --help`` shows for ``models``.
SUMMARY = "list registered models: task, parameters, input, weights"
#: the heading of ``avperceive models --help``.
DESCRIPTION = (
    "List registered models with their task, parameter count, expected input and weights "
    "status. A PATTERN without wildcards matches as a substring; one that matches nothing exits 2."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``avperceive models``."""
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter ('dgsct*') or a substring ('tiny')")
    p.add_argument("--pretrained", action="store_true", help="one row per weight set (arch.tag)")
    p.add_argument("--json", action="store_true", help="print a JSON list (exact counts)")
