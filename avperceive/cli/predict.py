"""``avperceive predict PATH... --model NAME [--pretrained SRC] [--json] [--device DEV] [--dtype DT]``.

Predicts every file (folders expand to their media files) with a tqdm progress bar on stderr;
results go to stdout through ``tqdm.write``, so bar and results never interleave. A file that
fails to decode is reported (name + reason) and skipped; the others are still predicted.
Untrained weights are reported once on stderr. Exit status: 0 when every file was predicted,
1 when some failed, 2 on a usage / model / device / dtype error (one line, no traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from tqdm import tqdm

from ..errors import ConfigError
from ..inference import DTYPES, PredictionFailure, UntrainedWeightsWarning, expand_inputs, iter_predict

__all__ = ["add_subcommand"]


def _pretrained_arg(value: str | None):
    if value is None:
        return None
    return True if value.lower() in ("true", "1", "yes") else value


def _run(args: argparse.Namespace) -> int:
    items = expand_inputs(args.paths)
    if not items:
        raise ConfigError(f"no media files in {', '.join(args.paths)}")
    predictions, failures = [], []
    warned = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedWeightsWarning)  # said once below, as one line
        results = iter_predict(
            items,
            model=args.model,
            pretrained=_pretrained_arg(args.pretrained),
            device=args.device,
            dtype=args.dtype,
            batch_size=args.batch_size,
            topk=args.topk,
            on_error="skip",
        )
        bar = tqdm(total=len(items), desc="predict", unit="file", file=sys.stderr,
                   disable=True if args.no_progress else None)
        with bar:
            for result in results:
                if isinstance(result, PredictionFailure):
                    failures.append(result)
                    tqdm.write(f"skipped {result.source}: {result.reason}", file=sys.stderr)
                else:
                    if result.untrained and not warned:
                        warned = True
                        tqdm.write(
                            f"avperceive predict: warning: {args.model} has untrained (random) weights: its labels are "
                            "meaningless; pass --pretrained SRC", file=sys.stderr,
                        )
                    predictions.append(result)
                    if not args.json:
                        tqdm.write(str(result), file=sys.stdout)
                bar.update(1)
    if args.json:
        doc = {
            "model": args.model,
            "weights": predictions[0].weights if predictions else None,
            "predictions": [p.to_dict() for p in predictions],
            "failures": [f.to_dict() for f in failures],
        }
        print(json.dumps(doc, indent=2), file=sys.stdout)
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
        "decode are reported and skipped; exit status 1 if any failed, 2 on a usage or model error.",
    )
    p.add_argument("paths", nargs="+", help="media files or folders")
    p.add_argument("--model", required=True, help="registered model name (avperceive models)")
    p.add_argument("--pretrained", help="weights: true, hf-hub:org/repo[@rev], local-dir:/path, folder or file")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--device", default=None, help="torch device (cpu, cuda, cuda:1, mps); must be available")
    p.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="model precision")
    p.add_argument("--batch-size", type=int, default=8, help="clips per forward pass (8)")
    p.add_argument("--topk", type=int, default=5, help="labels in the top-k list (5)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)
    return p
