"""``avperceive predict PATH... --model NAME [--pretrained SRC] [--json] [--device DEV]``.

Predicts every file (folders expand to their media files) with a progress bar on stderr. A file
that fails to decode is reported (name + reason) and skipped; the others are still predicted.
Exit status: 0 when every file was predicted, 1 when some failed, 2 on a usage / model error.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from ..errors import ConfigError
from ..predict import PredictionFailure, expand_inputs, iter_predict
from ..progress import ProgressBar

__all__ = ["add_subcommand"]

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _pretrained_arg(value: str | None):
    if value is None:
        return None
    return True if value.lower() in ("true", "1", "yes") else value


def _run(args: argparse.Namespace) -> int:
    items = expand_inputs(args.paths)
    if not items:
        raise ConfigError(f"no media files in {', '.join(args.paths)}")
    predictions, failures = [], []
    out = sys.stdout
    with ProgressBar(len(items), desc="predict", disable=True if args.no_progress else None) as bar:
        for result in iter_predict(
            items,
            model=args.model,
            pretrained=_pretrained_arg(args.pretrained),
            device=args.device,
            dtype=_DTYPES[args.dtype] if args.dtype else None,
            batch_size=args.batch_size,
            topk=args.topk,
            on_error="skip",
        ):
            if isinstance(result, PredictionFailure):
                failures.append(result)
                bar.write(f"skipped {result.source}: {result.reason}")
            else:
                predictions.append(result)
                if not args.json:
                    print(str(result), file=out)
            bar.update(1)
    if args.json:
        doc = {
            "model": args.model,
            "predictions": [p.to_dict() for p in predictions],
            "failures": [f.to_dict() for f in failures],
        }
        print(json.dumps(doc, indent=2), file=out)
    if failures:
        print(f"avperceive predict: {len(failures)} of {len(items)} file(s) failed", file=sys.stderr)
        return 1
    return 0


def add_subcommand(subparsers) -> argparse.ArgumentParser:
    """Add ``predict`` to the ``avperceive`` command line."""
    p = subparsers.add_parser(
        "predict",
        help="predict with a registered model on media files",
        description="Run a registered model on media files with its own preprocessing. Files that fail to "
        "decode are reported and skipped; exit status 1 if any failed.",
    )
    p.add_argument("paths", nargs="+", help="media files or folders")
    p.add_argument("--model", required=True, help="registered model name (avperceive models)")
    p.add_argument("--pretrained", help="weights: true, hf-hub:org/repo[@rev], local-dir:/path, folder or file")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--device", default=None, help="torch device (cpu, cuda, cuda:1, mps)")
    p.add_argument("--dtype", choices=sorted(_DTYPES), default=None, help="model precision")
    p.add_argument("--batch-size", type=int, default=8, help="clips per forward pass (8)")
    p.add_argument("--topk", type=int, default=5, help="labels in the top-k list (5)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)
    return p
