"""Benchmark the event-specific fusion layers (Senocak et al. 2023) and the full model forward.

1. Pooling of all five layers at B=64, T=100, D=512 (variable lengths, random onsets): the batched
   masked mean (``event_specific_pool``) vs the per-sample loop (``event_specific_pool_reference``).
   ``speedup_pool_batched_vs_loop`` = loop time / batched time.
2. ``event-specific-mc3`` forward at the paper's size (100 frames of 112x112, 1000 x 80 log-mel) on
   CPU (batch 1; ``--quick``: 20 frames) and, when CUDA is available, on GPU (batch 8, fp32 and bf16 autocast).

Prints one JSON object as the last line.

    python benchmarks/bench_fusion.py [--quick] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import avperceive as avp
from avperceive.nn.fusion import event_specific_pool, event_specific_pool_reference


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device: torch.device, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_pool(device: torch.device, repeats: int) -> dict:
    g = torch.Generator().manual_seed(0)
    b, t, d = 64, 100, 512
    z_v, z_a = torch.randn(b, t, d, generator=g), torch.randn(b, t, d, generator=g)
    onset = torch.rand(b, t, generator=g) < 0.1
    lengths = torch.randint(50, t + 1, (b,), generator=g)
    padding = torch.arange(t)[None] >= lengths[:, None]
    z_v, z_a, onset, padding = (x.to(device) for x in (z_v, z_a, onset, padding))
    fast = _time(lambda: event_specific_pool(z_v, z_a, onset, padding), device, repeats)
    slow = _time(lambda: event_specific_pool_reference(z_v, z_a, onset, padding), device, max(3, repeats // 5))
    ref, ours = event_specific_pool_reference(z_v, z_a, onset, padding), event_specific_pool(z_v, z_a, onset, padding)
    diff = max((ref[k] - ours[k]).abs().max().item() for k in ours)
    tag = device.type
    return {
        f"pool_batched_ms_{tag}": fast * 1e3,
        f"pool_loop_ms_{tag}": slow * 1e3,
        f"speedup_pool_batched_vs_loop_{tag}": slow / fast,
        f"pool_max_abs_diff_{tag}": diff,
    }


def bench_model(device: torch.device, frames: int, batch: int, repeats: int) -> dict:
    torch.manual_seed(0)
    model = avp.create_model("event-specific-mc3").eval().to(device)
    video = torch.randn(batch, frames, 3, 112, 112, device=device)
    mel = torch.randn(batch, frames * 10, 80, device=device)
    onsets = torch.rand(batch, frames, device=device) < 0.1
    out = {}
    with torch.no_grad():
        seconds = _time(lambda: model(video, mel, onsets), device, repeats)
        out[f"model_forward_s_{device.type}_b{batch}_t{frames}"] = seconds
        if device.type == "cuda":
            def bf16():
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    model(video, mel, onsets)

            out[f"model_forward_s_cuda_bf16_b{batch}_t{frames}"] = _time(bf16, device, repeats)
            out["speedup_model_bf16_vs_fp32_cuda"] = seconds / out[f"model_forward_s_cuda_bf16_b{batch}_t{frames}"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 frames for the CPU model forward, fewer repeats")
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None, help="only this device")
    args = parser.parse_args()
    devices = [torch.device(args.device)] if args.device else [torch.device("cpu")]
    if args.device is None and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    result: dict = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    for device in devices:
        result.update(bench_pool(device, repeats=5 if args.quick else 20))
        if device.type == "cpu":
            frames = 20 if args.quick else 100
            result.update(bench_model(device, frames=frames, batch=1, repeats=1))
        else:
            result["gpu"] = torch.cuda.get_device_name(device)
            result.update(bench_model(device, frames=100, batch=8, repeats=5))
        print({k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
