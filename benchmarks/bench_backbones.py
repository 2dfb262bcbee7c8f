"""Benchmark the two frozen backbones: fused vs reference attention, peak memory, GPU bf16 throughput.

* Swin-V2-L (``swinv2_large_window12_192``, no classifier) on one AVE clip: ``--frames`` frames at 192 px.
* HTS-AT (AudioSet configuration) on ``--segments`` 10-s segments at 32 kHz, waveform to head.

CPU fp32: times are the best of ``--repeats`` forwards, the two paths alternating on one model; peak
memory (the rise of resident memory during one forward, sampled every 2 ms) is measured for each
path in its own subprocess.
``speedup_fused_<model>`` = reference time / fused time; ``mem_ratio_fused_<model>`` = fused peak /
reference peak. With a CUDA device: bf16 autocast fused throughput (items/s) as well.
Random weights (speed does not depend on their values). The last output line is one JSON object.

    python benchmarks/bench_backbones.py            # 10 frames, 10 segments
    python benchmarks/bench_backbones.py --quick    # 2 frames, 2 segments
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import threading
import time

import torch


def _build(model: str):
    from avperceive.backbones import htsat_audioset, swinv2_large_window12_192

    torch.manual_seed(0)
    if model == "swinv2":
        return swinv2_large_window12_192(num_classes=0).eval()
    return htsat_audioset().eval()


def _inputs(model: str, n: int, device: str = "cpu") -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    if model == "swinv2":
        return torch.randn(n, 3, 192, 192, generator=g).to(device)
    return (0.1 * torch.randn(n, 320000, generator=g)).to(device)


def _run(net, model: str, x: torch.Tensor) -> torch.Tensor:
    return net.forward_features(x) if model == "swinv2" else net(x)["clipwise_output"]


def _rss_mib() -> float:
    """Current resident set size of this process (Linux ``/proc``; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


def peak_memory_worker(model: str, impl: str, n: int) -> dict:
    """Peak RSS rise (MiB) during one forward on ``n`` items, sampled every 2 ms, in a fresh process."""
    net = _build(model)
    net.attn_impl = impl
    x = _inputs(model, n)
    gc.collect()
    base = _rss_mib()
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mib())
            time.sleep(0.002)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    with torch.inference_mode():
        _run(net, model, x)
    done.set()
    thread.join()
    return {"peak_rss_rise_mib": max(peak[0], _rss_mib()) - base}


def time_alternating(model: str, n: int, repeats: int) -> dict[str, float]:
    """Best-of-``repeats`` CPU time per path, the two paths alternating on one model (shared-CPU noise
    hits both alike)."""
    net = _build(model)
    x = _inputs(model, n)
    best = {"reference": float("inf"), "fused": float("inf")}
    with torch.inference_mode():
        _run(net, model, x[:1])  # warm-up
        for _ in range(repeats):
            for impl in best:
                net.attn_impl = impl
                t0 = time.perf_counter()
                _run(net, model, x)
                best[impl] = min(best[impl], time.perf_counter() - t0)
    return best


def gpu_bf16(model: str, n: int, repeats: int) -> float:
    """Fused bf16-autocast throughput on CUDA, items per second."""
    net = _build(model).to("cuda")
    x = _inputs(model, n, "cuda")
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        _run(net, model, x)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(repeats):
            _run(net, model, x)
        torch.cuda.synchronize()
    return n * repeats / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 frames / 2 segments, 2 repeats")
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--segments", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--models", default="swinv2,htsat")
    ap.add_argument("--worker", nargs=3, metavar=("MODEL", "IMPL", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        model, impl, n = args.worker
        print(json.dumps(peak_memory_worker(model, impl, int(n))))
        return
    if args.quick:
        args.frames, args.segments, args.repeats = 2, 2, 2
    result: dict = {
        "bench": "backbones",
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "frames": args.frames,
        "segments": args.segments,
        "repeats": args.repeats,
    }
    for model in args.models.split(","):
        n = args.frames if model == "swinv2" else args.segments
        best = time_alternating(model, n, args.repeats)
        runs = {}
        for impl in ("reference", "fused"):
            cmd = [sys.executable, __file__, "--worker", model, impl, str(n)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            runs[impl] = {"seconds": best[impl], **json.loads(out)}
            r = runs[impl]
            print(f"{model} {impl}: {r['seconds']:.2f} s for {n}, peak RSS +{r['peak_rss_rise_mib']:.0f} MiB")
        result[f"{model}_fused_s"] = round(runs["fused"]["seconds"], 3)
        result[f"{model}_reference_s"] = round(runs["reference"]["seconds"], 3)
        result[f"speedup_fused_{model}"] = round(runs["reference"]["seconds"] / runs["fused"]["seconds"], 3)
        result[f"{model}_fused_peak_mib"] = round(runs["fused"]["peak_rss_rise_mib"], 1)
        result[f"{model}_reference_peak_mib"] = round(runs["reference"]["peak_rss_rise_mib"], 1)
        ref_peak = max(runs["reference"]["peak_rss_rise_mib"], 1e-6)
        result[f"mem_ratio_fused_{model}"] = round(runs["fused"]["peak_rss_rise_mib"] / ref_peak, 3)
        if torch.cuda.is_available():
            result[f"{model}_gpu_bf16_fused_items_per_s"] = round(gpu_bf16(model, n, 5), 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
