"""Benchmark: ``avperceive.predict`` throughput on a folder of 10-s clips with a -tiny model.

Makes ``--clips`` synthetic 10-s clips (``--width`` x ``--height`` H.264 at 25 fps with AAC audio:
moving colour gradients and a click train, written with :func:`avperceive.io.write_clip`) in a
temporary folder, then predicts the folder twice with the same model: ``batch_size=1`` (the
baseline) and ``--batch-size``. The time of the batched run is split into decode
(``load_clip``), front-end (segments, normalisation, audio tiling / audio image) and model
(forward under ``torch.inference_mode``). Prints one JSON object last:

* ``clips_per_s``: clips per second of the batched run, end to end;
* ``decode_ms_per_clip`` / ``frontend_ms_per_clip`` / ``model_ms_per_clip``;
* ``speedup_batching`` = time with batch_size 1 / time with ``--batch-size`` (same clips).

    python benchmarks/bench_predict.py [--quick] [--model lavish-ave-tiny] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import torch

import avperceive
from avperceive.inference import PredictTimings, iter_predict
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


def run(folder: Path, model, batch_size: int) -> tuple[float, PredictTimings]:
    timings = PredictTimings()
    t0 = time.perf_counter()
    results = list(iter_predict(folder, model=model, batch_size=batch_size, timings=timings))
    elapsed = time.perf_counter() - t0
    assert all(hasattr(r, "segments") for r in results), results
    return elapsed, timings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4 clips instead of 16")
    ap.add_argument("--clips", type=int, default=None)
    ap.add_argument("--model", default="lavish-ave-tiny")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--device", default=None)
    args = ap.parse_args()
    n = args.clips or (4 if args.quick else 16)
    torch.manual_seed(0)
    model = avperceive.create_model(args.model).eval()
    if args.device:
        model.to(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        for i in range(n):
            write_clip(make_clip(i, args.width, args.height), folder / f"clip_{i:03d}.mp4", preset="ultrafast")
        print(f"wrote {n} clips of 10 s ({args.width}x{args.height}) in {time.perf_counter() - t0:.1f} s")
        run(folder, model, args.batch_size)  # warm-up (allocator, lazy buffers, file cache)
        base_s, _ = run(folder, model, 1)
        ours_s, tm = run(folder, model, args.batch_size)
    result = {
        "model": args.model,
        "device": str(next(model.parameters()).device),
        "clips": n,
        "batch_size": args.batch_size,
        "clips_per_s": n / ours_s,
        "clips_per_s_batch1": n / base_s,
        "decode_ms_per_clip": 1000 * tm.decode / n,
        "frontend_ms_per_clip": 1000 * tm.frontend / n,
        "model_ms_per_clip": 1000 * tm.model / n,
        "speedup_batching": base_s / ours_s,
    }
    for key in ("clips_per_s", "decode_ms_per_clip", "frontend_ms_per_clip", "model_ms_per_clip", "speedup_batching"):
        print(f"{key:22s} {result[key]:.3f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
