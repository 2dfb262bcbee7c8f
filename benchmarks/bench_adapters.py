"""Benchmark: DG-SCT adapter, fused path vs reference path, CPU fp32, real DG-SCT sizes.

Sizes from reference-models §1.3 (one clip = 10 one-second segments folded into the batch):

* stage 0 (layers 0-1): audio adapter own N=4096, C=96 / other M=2304, C_o=192; video adapter the reverse.
* stage 3 (layers 10-11): audio own N=64, C=768 / other M=36, C_o=1536; video the reverse.

Also times the LatentTokenAttention alone (SDPA vs matmul+softmax) at the stage-0 audio size, and a
LAVisH adapter (stage 2: N=M=144, C=768, K=2). Weights are randomised (gates non-zero) and each case
first checks that both paths agree. Prints one JSON object as the last line:
``speedup_<case> = reference time / fused time`` (bigger is better).

    python benchmarks/bench_adapters.py [--quick] [--threads N] [--clock wall|cpu] [--profile]

On a machine shared with other jobs, ``--threads 1 --clock cpu`` (process CPU time, one thread)
gives stable ratios; the default wall-clock figures need an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch

from avperceive.nn import DGSCTAdapter, LatentTokenAttention, LAVisHAdapter

CASES = {
    "stage0_audio": dict(dim=96, tokens=4096, other_dim=192, other_tokens=2304),
    "stage0_video": dict(dim=192, tokens=2304, other_dim=96, other_tokens=4096),
    "stage3_audio": dict(dim=768, tokens=64, other_dim=1536, other_tokens=36),
    "stage3_video": dict(dim=1536, tokens=36, other_dim=768, other_tokens=64),
}


def randomise(module: torch.nn.Module) -> None:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.numel() == 1:
                p.fill_(0.5)
            else:
                p.add_(0.1 * torch.randn(p.shape, generator=g))
            if name.endswith("latents"):
                p.mul_(0.1)


CLOCK = [time.perf_counter]


def set_path(module, impl: str):
    """``"reference"``: the readable formulas (reference attention, unfolded bottleneck norms);
    ``"fused"``: every rewrite (fused attention, folded norms). Returns the module."""
    module.attn_impl = impl
    if hasattr(module, "set_fold_bn"):
        module.set_fold_bn(impl == "fused")
    return module


def bench_module(module, inputs, repeats: int, profile: bool, label: str) -> tuple[float, float, float]:
    """Best-of-``repeats`` time of each path, the two paths interleaved (fair on a shared machine)."""
    module.eval()
    times = {"reference": float("inf"), "fused": float("inf")}
    outs = {}
    with torch.no_grad():
        for impl in times:  # warm-up + outputs
            set_path(module, impl)
            out = module(*inputs)
            outs[impl] = out[0] if isinstance(out, tuple) else out
        for _ in range(repeats):
            for impl in times:
                set_path(module, impl)
                t0 = CLOCK[0]()
                module(*inputs)
                times[impl] = min(times[impl], CLOCK[0]() - t0)
        if profile:
            from torch.profiler import ProfilerActivity
            from torch.profiler import profile as torch_profile

            for impl in times:
                set_path(module, impl)
                with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
                    module(*inputs)
                print(f"--- {label} [{impl}]")
                print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))
    diff = (outs["reference"] - outs["fused"]).abs().max().item()
    return times["reference"], times["fused"], diff


def fp64_errors(module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Max |float32 path - float64 reference| on one sample: both paths' own rounding error.

    (At these sizes the latent softmaxes, which have no 1/sqrt(d) scaling, amplify float32 rounding,
    so the two float32 paths differ from each other by about as much as each differs from float64.)
    """
    m64 = set_path(copy.deepcopy(module).double(), "reference")
    with torch.no_grad():
        want = m64(x.double(), y.double())[0]
        errs = {}
        for impl in ("reference", "fused"):
            set_path(module, impl)
            errs[impl] = (module(x, y)[0].double() - want).abs().max().item()
    return errs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="batch 2 instead of 10 segments, 3 repeats")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = leave as is)")
    ap.add_argument("--profile", action="store_true", help="print the top ops of each path")
    ap.add_argument(
        "--clock", choices=("wall", "cpu"), default="wall",
        help="wall = perf_counter; cpu = process CPU time (robust on a shared machine; use with --threads 1)",
    )
    args = ap.parse_args()
    CLOCK[0] = time.perf_counter if args.clock == "wall" else time.process_time
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    batch, repeats = (2, 3) if args.quick else (10, 7)
    result: dict[str, float | int | str] = {
        "batch": batch, "threads": torch.get_num_threads(), "dtype": "float32", "clock": args.clock,
    }
    for name, cfg in CASES.items():
        m = DGSCTAdapter(**cfg)
        randomise(m)
        x = torch.randn(batch, cfg["tokens"], cfg["dim"])
        y = torch.randn(batch, cfg["other_tokens"], cfg["other_dim"])
        t_ref, t_fused, diff = bench_module(m, (x, y), repeats, args.profile, name)
        err = fp64_errors(m, x[:1], y[:1])
        print(f"dgsct {name:14s} reference {t_ref * 1e3:8.1f} ms  fused {t_fused * 1e3:8.1f} ms  "
              f"x{t_ref / t_fused:5.2f}  max|diff| {diff:.2e}  vs float64: reference {err['reference']:.1e} "
              f"fused {err['fused']:.1e}")
        result[f"max_err_vs_fp64_dgsct_{name}_reference"] = err["reference"]
        result[f"max_err_vs_fp64_dgsct_{name}_fused"] = err["fused"]
        result[f"speedup_dgsct_{name}"] = round(t_ref / t_fused, 3)
        result[f"ms_dgsct_{name}_fused"] = round(t_fused * 1e3, 2)
        result[f"ms_dgsct_{name}_reference"] = round(t_ref * 1e3, 2)
        result[f"max_abs_diff_dgsct_{name}"] = diff
    lat = LatentTokenAttention(96, 32)
    randomise(lat)
    x, y = torch.randn(batch, 4096, 96), torch.randn(batch, 4096, 96)
    t_ref, t_fused, diff = bench_module(lat, (x, y), repeats, args.profile, "latent")
    print(f"latent attention (N=M=4096, C=96, K=32) reference {t_ref * 1e3:.1f} ms fused {t_fused * 1e3:.1f} ms "
          f"x{t_ref / t_fused:.2f} max|diff| {diff:.2e}")
    result["speedup_latent_attention"] = round(t_ref / t_fused, 3)
    lav = LAVisHAdapter(768, num_latents=2)
    randomise(lav)
    x, y = torch.randn(batch, 144, 768), torch.randn(batch, 144, 768)
    t_ref, t_fused, diff = bench_module(lav, (x, y), repeats, args.profile, "lavish")
    print(f"lavish stage2 (N=M=144, C=768, K=2) reference {t_ref * 1e3:.1f} ms fused {t_fused * 1e3:.1f} ms "
          f"x{t_ref / t_fused:.2f} max|diff| {diff:.2e}")
    result["speedup_lavish_stage2"] = round(t_ref / t_fused, 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
