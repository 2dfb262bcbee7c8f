"""Benchmark: the DG-SCT AVE model on one clip (fp32): forward time / peak memory, and
forward+backward with the ``all`` fine-tuning range, gradient checkpointing off vs on.

Peak memory on CPU is the process's resident-set high-water mark (``VmHWM``, reset through
``/proc/self/clear_refs`` after ``malloc_trim`` before each measurement) minus the resident set
before it, i.e. the activations and gradients a step adds on top of the weights (Linux/glibc
only); on CUDA ``max_memory_allocated``.

Also times the forward with ``attn_impl="reference"`` against the fused default.

Prints one JSON object as the last line:

* ``speedup_fused_vs_reference_forward`` = reference time / fused time;
* ``mem_ratio_grad_checkpointing`` = peak with checkpointing / peak without (smaller is better);
* ``speedup_no_checkpointing`` = train-step time with checkpointing / without (the recompute cost).

    python benchmarks/bench_dgsct.py            # dgsct-ave (full size), 10 segments
    python benchmarks/bench_dgsct.py --quick    # dgsct-ave-tiny, 10 segments
    python benchmarks/bench_dgsct.py --segments 4 --no-reference   # full size, cheaper
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import platform
import time

import torch

from avperceive.models import create_model, set_trainable


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


class PeakMemory:
    """Peak extra memory (MiB) of the enclosed block: CUDA allocator or process RSS high-water mark."""

    def __init__(self, device: torch.device):
        self.device = device
        self.mib = float("nan")

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            gc.collect()
            try:  # hand freed heap pages back to the OS so that new activations raise the RSS again
                ctypes.CDLL("libc.so.6").malloc_trim(0)
            except OSError:
                pass
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset VmHWM to the current RSS
            self.base = _status_kb("VmRSS") * 1024
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        else:
            peak = _status_kb("VmHWM") * 1024
        self.mib = (peak - self.base) / 2**20
        return False


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _randomise_gates(model) -> None:
    with torch.no_grad():
        for name, p in model.adapters.named_parameters():
            if name.endswith("gate"):
                p.fill_(0.1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="dgsct-ave-tiny instead of the full-size dgsct-ave")
    ap.add_argument("--segments", type=int, default=10, help="segments per clip (>= 4)")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats (best of); default 1 full / 3 quick")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-reference", action="store_true", help="skip the reference-attention forward")
    ap.add_argument("--no-train", action="store_true", help="skip the forward+backward measurements")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = "dgsct-ave-tiny" if args.quick else "dgsct-ave"
    repeats = args.repeats or (3 if args.quick else 1)

    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = create_model(name, num_segments=args.segments).to(device).eval()
    _randomise_gates(model)
    build_s = time.perf_counter() - t0
    h, w = model.image_size
    video = torch.randn(1, args.segments, 3, h, w, device=device)
    audio = 0.1 * torch.randn(1, args.segments, model.segment_samples, device=device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{name}: {n_params / 1e6:.1f} M parameters, built in {build_s:.1f} s; clip of {args.segments} segments")
    result: dict = {
        "model": name, "segments": args.segments, "device": str(device), "threads": torch.get_num_threads(),
        "machine": platform.machine(), "params_m": round(n_params / 1e6, 2),
    }

    def timed_forward(impl: str) -> tuple[float, float, torch.Tensor]:
        model.set_attn_impl(impl)
        best, peak, out = float("inf"), float("nan"), None
        with torch.no_grad():
            for _ in range(repeats):
                with PeakMemory(device) as mem:
                    _sync(device)
                    t = time.perf_counter()
                    out = model(video, audio)["event_scores"]
                    _sync(device)
                    best = min(best, time.perf_counter() - t)
                peak = mem.mib if peak != peak else min(peak, mem.mib)
        return best, peak, out

    fused_s, fused_mib, fused_out = timed_forward("fused")
    print(f"forward fused: {fused_s:.2f} s, peak +{fused_mib:.0f} MiB")
    result.update(forward_fused_s=round(fused_s, 3), forward_peak_mib=round(fused_mib, 1))
    if not args.no_reference:
        ref_s, ref_mib, ref_out = timed_forward("reference")
        diff = (ref_out - fused_out).abs().max().item()
        print(f"forward reference: {ref_s:.2f} s, peak +{ref_mib:.0f} MiB (max |diff| {diff:.2e})")
        result.update(
            forward_reference_s=round(ref_s, 3), forward_reference_peak_mib=round(ref_mib, 1),
            max_abs_diff_fused_vs_reference=diff, speedup_fused_vs_reference_forward=round(ref_s / fused_s, 3),
        )
    model.set_attn_impl("fused")

    if not args.no_train:
        trainable = set_trainable(model, "all")
        model.train()
        result["trainable_all"] = trainable
        train = {}
        for ckpt in (False, True):
            model.set_grad_checkpointing(ckpt)
            best = float("inf")
            peak = float("nan")
            for _ in range(repeats):
                model.zero_grad(set_to_none=True)
                with PeakMemory(device) as mem:
                    _sync(device)
                    t = time.perf_counter()
                    out = model(video, audio)
                    (out["event_scores"].sum() + out["is_event"].sum()).backward()
                    _sync(device)
                    best = min(best, time.perf_counter() - t)
                peak = mem.mib if peak != peak else min(peak, mem.mib)
            train[ckpt] = (best, peak)
            state = "on" if ckpt else "off"
            print(f"forward+backward ('all', checkpointing {state}): {best:.2f} s, peak +{peak:.0f} MiB")
        result.update(
            train_s=round(train[False][0], 3), train_peak_mib=round(train[False][1], 1),
            train_ckpt_s=round(train[True][0], 3), train_ckpt_peak_mib=round(train[True][1], 1),
            mem_ratio_grad_checkpointing=round(train[True][1] / train[False][1], 3),
            speedup_no_checkpointing=round(train[True][0] / train[False][0], 3),
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
