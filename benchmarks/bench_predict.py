"""Benchmark: ``avperceive.predict`` throughput on a folder of 10-s clips with a -tiny model.

Makes ``--clips`` synthetic 10-s clips (``--width`` x ``--height`` H.264 at 25 fps with AAC audio:
moving colour gradients and a click train, written with :func:`avperceive.io.write_clip`) in a
temporary folder, then predicts the folder with the same model in ``--rounds`` alternating rounds
of five variants (after one warm-up of each): serial (``num_workers=0``) with ``batch_size=1`` and
with ``--batch-size``, and with ``--num-workers`` decoding workers: avperceive's default kind
(forked decode-only processes where the platform can fork, :func:`avperceive.inference.default_worker_kind`),
threads and spawned DataLoader processes. Every
variant's outputs are asserted equal to the serial run's. Per variant the median over rounds is
kept. The serial batched run's time is split into decode (``load_clip``), front-end (segments,
normalisation, audio tiling / audio image) and model (forward under ``torch.inference_mode``).
Prints one JSON object last:

* ``clips_per_s``: clips per second with the default decoding workers, end to end;
* ``decode_ms_per_clip`` / ``frontend_ms_per_clip`` / ``model_ms_per_clip`` (serial run);
* ``speedup_batching`` = serial time with batch_size 1 / with ``--batch-size``;
* ``speedup_workers`` = serial time / time with ``--num-workers`` workers of the default kind (same
  clips, same batch size, same outputs); ``speedup_threads`` / ``speedup_processes`` the same with
  decoding threads / spawned DataLoader worker processes; ``worker_kind``: the default kind;
* ``load_avg``: the 1-minute load average before and after (the CPU is not ours alone when > 0.5).

    python benchmarks/bench_predict.py [--quick] [--clips 24] [--num-workers 2] [--model lavish-ave-tiny]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

import avperceive
from avperceive.inference import PredictTimings, default_num_workers, default_worker_kind, iter_predict
from avperceive.io import AVClip, write_clip


def make_clip(seed: int, width: int, height: int, seconds: float = 10.0, fps: int = 25, sr: int = 48000) -> AVClip:
    """A synthetic clip: drifting colour gradients; a click every 0.5 s on a low hum."""
    g = torch.Generator().manual_seed(seed)
    n = int(seconds * fps)
    t = torch.arange(n, dtype=torch.float32)[:, None, None] / fps
    y = torch.linspace(0, 1, height)[None, :, None]
    x = torch.linspace(0, 1, width)[None, None, :]
    phase = torch.rand(3, generator=g) * 2 * math.pi
    chans = [0.5 + 0.5 * torch.sin(2 * math.pi * (x + y + 0.2 * t) + phase[c]) for c in range(3)]
    video = (torch.stack(chans, dim=-1) * 255).to(torch.uint8)
    samples = torch.arange(int(seconds * sr), dtype=torch.float32) / sr
    audio = 0.05 * torch.sin(2 * math.pi * 110 * samples)
    clicks = (samples % 0.5) < 0.005
    audio = audio + 0.5 * clicks.float() * torch.sin(2 * math.pi * 2000 * samples)
    return AVClip(
        video=video, frame_times=torch.arange(n, dtype=torch.float64) / fps, audio=audio[None], sample_rate=sr,
        fps=float(fps), duration=seconds, has_video=True, has_audio=True,
    )


def run(folder: Path, model, batch_size: int, num_workers: int = 0, workers: str | None = None):
    timings = PredictTimings()
    t0 = time.perf_counter()
    results = list(iter_predict(folder, model=model, batch_size=batch_size, timings=timings,
                                num_workers=num_workers, workers=workers))
    elapsed = time.perf_counter() - t0
    assert all(hasattr(r, "segments") for r in results), results
    return elapsed, timings, results


def same_outputs(a, b) -> bool:
    """Decisions equal, scores within 1e-5 (another batch size sums in another order)."""
    return all(
        p.source == q.source and p.labels == q.labels
        and all(abs(s.score - t.score) < 1e-5 for s, t in zip(p.segments, q.segments))
        for p, q in zip(a, b, strict=True)
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="8 clips and 1 round instead of 24 and 3")
    ap.add_argument("--clips", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--model", default="lavish-ave-tiny")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--num-workers", type=int, default=None, help="default: avperceive's (default_num_workers), >= 2")
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--device", default=None)
    args = ap.parse_args()
    n = args.clips or (8 if args.quick else 24)
    rounds = args.rounds or (1 if args.quick else 3)
    workers = args.num_workers if args.num_workers is not None else max(2, default_num_workers(n))
    torch.manual_seed(0)
    model = avperceive.create_model(args.model).eval()
    if args.device:
        model.to(args.device)
    load_before = os.getloadavg()[0]
    variants = {
        "batch1": dict(batch_size=1),
        "serial": dict(batch_size=args.batch_size),
        "workers": dict(batch_size=args.batch_size, num_workers=workers),  # avperceive's default kind
        "threads": dict(batch_size=args.batch_size, num_workers=workers, workers="thread"),
        "processes": dict(batch_size=args.batch_size, num_workers=workers, workers="process"),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        for i in range(n):
            write_clip(make_clip(i, args.width, args.height), folder / f"clip_{i:03d}.mp4", preset="ultrafast")
        print(f"wrote {n} clips of 10 s ({args.width}x{args.height}) in {time.perf_counter() - t0:.1f} s")
        _, tm, reference = run(folder, model, args.batch_size)  # warm-up (allocator, lazy buffers, file cache)
        for name, kw in variants.items():
            assert same_outputs(run(folder, model, **kw)[2], reference), name  # warm-up + outputs equal
        for r in range(rounds):
            order = list(variants) if r % 2 == 0 else list(reversed(variants))  # alternate: drifts cancel
            for name in order:
                elapsed, timings, results = run(folder, model, **variants[name])
                assert same_outputs(results, reference), name
                times[name].append(elapsed)
                if name == "serial":
                    tm = timings
            print(f"round {r}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "model": args.model,
        "device": str(next(model.parameters()).device),
        "clips": n,
        "rounds": rounds,
        "batch_size": args.batch_size,
        "num_workers": workers,
        "worker_kind": default_worker_kind(),
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "clips_per_s": n / med["workers"],
        "clips_per_s_serial": n / med["serial"],
        "clips_per_s_batch1": n / med["batch1"],
        "decode_ms_per_clip": 1000 * tm.decode / n,
        "frontend_ms_per_clip": 1000 * tm.frontend / n,
        "model_ms_per_clip": 1000 * tm.model / n,
        "speedup_batching": med["batch1"] / med["serial"],
        "speedup_workers": med["serial"] / med["workers"],
        "speedup_threads": med["serial"] / med["threads"],
        "speedup_processes": med["serial"] / med["processes"],
        "wall_s": med,
        "load_avg": [load_before, os.getloadavg()[0]],
    }
    for key in ("clips_per_s", "decode_ms_per_clip", "frontend_ms_per_clip", "model_ms_per_clip",
                "speedup_batching", "speedup_workers", "speedup_threads", "speedup_processes"):
        print(f"{key:22s} {result[key]:.3f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
