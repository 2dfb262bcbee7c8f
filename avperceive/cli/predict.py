"""``avperceive predict PATH... --model NAME [--pretrained SRC] [--json | --out FILE.jsonl] [--num-workers N]``.

Predicts every file (folders expand to their media files) with a tqdm progress bar on stderr;
results go to stdout through ``tqdm.write``, so bar and results never interleave. A file that
fails to decode is reported (name + reason) and skipped; the others are still predicted.
Untrained weights are reported once on stderr. Exit status: 0 when every file was predicted,
1 when some failed and others were predicted, 2 on a usage / model / device / dtype error (one
line, no traceback) or when no file could be predicted.

With ``--out results.jsonl`` the results go to a JSON-lines file instead, one line per file in
input order (failures as ``{"source": ..., "error": ...}``), and the run is resumable and
shardable: under ``torchrun --nproc_per_node=N -m avperceive predict ...`` each process predicts
its shard (:func:`avperceive.inference.shard`) into its own part file, and after a barrier
rank 0 merges the parts (:func:`avperceive.inference.merge_results`). Files already recorded in
the output or a part are skipped, so re-running the same command after a crash finishes the job.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from datetime import timedelta

from tqdm import tqdm

from ..errors import ConfigError
from ..inference import (
    DTYPES,
    WORKER_KINDS,
    PredictionFailure,
    UntrainedWeightsWarning,
    default_num_workers,
    expand_inputs,
    iter_predict,
    merge_results,
    predict_to_part,
)
from . import files_exit_status

__all__ = ["SUMMARY", "DESCRIPTION", "add_arguments", "run"]


def _pretrained_arg(value: str | None):
    if value is None:
        return None
    return True if value.lower() in ("true", "1", "yes") else value


#: how long a process waits at the barrier for the others to finish their shards.
BARRIER_TIMEOUT = timedelta(hours=48)


def _untrained_line(model: str) -> str:
    return (f"avperceive predict: warning: {model} has untrained (random) weights: its labels are meaningless; "
            "pass --pretrained SRC")


def run(args: argparse.Namespace) -> int:
    if args.num_workers is not None and args.num_workers < 0:
        raise ConfigError(f"--num-workers must be >= 0, got {args.num_workers}")
    items = expand_inputs(args.paths)
    if not items:
        raise ConfigError(f"no media files in {', '.join(args.paths)}")
    if args.out is not None:
        if args.json:
            raise ConfigError("--json and --out are exclusive (--out writes JSON lines)")
        return _run_to_file(args, items)
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
            num_workers=args.num_workers,
            workers=args.workers,
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
                        tqdm.write(_untrained_line(args.model), file=sys.stderr)
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
    return files_exit_status(len(predictions), len(failures))


def _distributed() -> tuple[int, int, int]:
    """``(rank, world_size, processes on this machine)`` from torchrun's environment; ``(0, 1, 1)`` without it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        # gloo on every device: only barriers and one small object cross the group, never tensors.
        dist.init_process_group("gloo", timeout=BARRIER_TIMEOUT)
    return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_WORLD_SIZE", "1"))


def _run_to_file(args: argparse.Namespace, items: list) -> int:
    """``--out``: this process's shard into its part file, a barrier, rank 0 merges (see the module docstring)."""
    rank, world, local_world = _distributed()
    device = args.device
    if world > 1 and device == "cuda":
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"  # one GPU per process
    num_workers = args.num_workers
    if num_workers is None:
        num_workers = default_num_workers(len(items), processes_per_machine=local_world)
    warned = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedWeightsWarning)  # said once below, as one line
        results = predict_to_part(
            items, args.out, rank=rank, world_size=world, retry_failed=args.retry_failed,
            model=args.model, pretrained=_pretrained_arg(args.pretrained), device=device, dtype=args.dtype,
            batch_size=args.batch_size, topk=args.topk, num_workers=num_workers, workers=args.workers,
        )
        bar = tqdm(total=len(items[rank::world]), desc=f"predict rank {rank}/{world}" if world > 1 else "predict",
                   unit="file", file=sys.stderr, disable=True if args.no_progress or rank else None)
        with bar:
            for result in results:
                if isinstance(result, PredictionFailure):
                    tqdm.write(f"skipped {result.source}: {result.reason}", file=sys.stderr)
                elif result.untrained and not warned and rank == 0:
                    warned = True
                    tqdm.write(_untrained_line(args.model), file=sys.stderr)
                bar.update(1)
    summary = None
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
        box = [merge_results(items, args.out) if rank == 0 else None]
        dist.broadcast_object_list(box, src=0)
        summary = box[0]
        dist.destroy_process_group()
    else:
        summary = merge_results(items, args.out)
    if rank == 0:
        print(f"avperceive predict: {summary.predicted} prediction(s), {summary.failed} failure(s) in {args.out}",
              file=sys.stderr)
        if summary.missing:
            print(f"avperceive predict: {len(summary.missing)} file(s) have no result (re-run to finish): "
                  f"{summary.missing[0]}{' ...' if len(summary.missing) > 1 else ''}", file=sys.stderr)
        if summary.failed:
            print(f"avperceive predict: {summary.failed} of {len(items)} file(s) failed", file=sys.stderr)
    return files_exit_status(summary.predicted, summary.failed, incomplete=bool(summary.missing))


#: the line ``avperceive --help`` shows for ``predict``.
SUMMARY = "predict with a registered model on media files"
#: the heading of ``avperceive predict --help``.
DESCRIPTION = (
    "Run a registered model on media files with its own preprocessing. Files that fail to "
    "decode are reported and skipped; exit status 1 if any failed, 2 on a usage or model error."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``avperceive predict``."""
    p.add_argument("paths", nargs="+", help="media files or folders")
    p.add_argument("--model", required=True, help="registered model name (avperceive models)")
    p.add_argument("--pretrained", help="weights: true, hf-hub:org/repo[@rev], local-dir:/path, folder or file")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--device", default=None, help="torch device (cpu, cuda, cuda:1, mps); must be available")
    p.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="model precision")
    p.add_argument("--batch-size", type=int, default=8, help="clips per forward pass (8)")
    p.add_argument("--topk", type=int, default=5, help="labels in the top-k list (5)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--num-workers", type=int, default=None,
                   help="workers decoding files ahead of the model (default: 0 for one file, else min(4, CPUs - 1), "
                        "at least 2 on 2 CPUs or more)")
    p.add_argument("--workers", choices=WORKER_KINDS, default=None,
                   help="where the decoding workers run: fork (forked processes; default where the platform can "
                        "fork), thread (default elsewhere), process (spawned DataLoader workers)")
    p.add_argument("--out", default=None,
                   help="write JSON lines to this file (input order; resumable; sharded under torchrun)")
    p.add_argument("--retry-failed", action="store_true",
                   help="with --out: predict again the files recorded as failed")
