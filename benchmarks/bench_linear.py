"""Benchmark: the transformer MLP ``fc2(GELU(fc1(x)))`` on the linear paths of :mod:`avperceive.nn.linear`.

Shapes are the MLPs of the frozen backbones for one 10-s clip (reference-models §1.3): rows = tokens
of all windows of all segments, C = the stage's width, hidden 4C. Three variants, timed alternately
(``--rounds`` rounds, the order rotated each round, each timed call preceded by an untimed one of
the same variant, median), one thread by default:

* ``reference`` — ``linear(..., impl="reference")``: ``addmm`` then GELU as its own pass;
* ``fused`` — ``linear(..., impl="fused")``: what the library runs (oneDNN with the GELU epilogue
  where :func:`~avperceive.nn.linear.fused_linear_applies`; in float32 only from
  ``FP32_FUSED_MIN_ROWS`` rows, so below it this is the reference route);
* ``onednn_always`` — the oneDNN op on every shape, whatever the threshold (shows why the threshold;
  left out where torch has no oneDNN).

Each case first checks that ``fused`` equals ``reference`` (float32: 1e-4 relative to the output's
scale, a GEMM summation-order difference; bfloat16: 2e-2, its rounding of the output). Prints one
JSON object as the last line: per case ``speedup_fused_<dtype>_<case>`` and
``speedup_onednn_<dtype>_<case>`` (reference time / variant time; bigger is better).

    python benchmarks/bench_linear.py [--rounds 9] [--threads 1] [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from avperceive.nn.linear import FP32_FUSED_MIN_ROWS, fused_linear_applies, linear

#: (rows, C) of the backbone MLPs at one 10-s clip; the name says how many blocks have that shape.
SHAPES = {
    "swin_s0_x2": (23040, 192),
    "swin_s1_x2": (5760, 384),
    "swin_s2_x18": (1440, 768),
    "swin_s3_x2": (360, 1536),
    "htsat_s0_x2": (40960, 96),
    "htsat_s1_x2": (10240, 192),
    "htsat_s2_x6": (2560, 384),
    "htsat_s3_x2": (640, 768),
}


def mlp(x, w1, b1, w2, b2, impl: str) -> torch.Tensor:
    return linear(linear(x, w1, b1, activation="gelu", impl=impl), w2, b2, impl=impl)


def mlp_onednn(x, w1, b1, w2, b2) -> torch.Tensor:
    op = torch.ops.mkldnn._linear_pointwise
    return op(op(x, w1, b1, "gelu", [], "none"), w2, b2, "none", [], "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="2 shapes, one each side of the fp32 threshold; 3 rounds")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # --quick: one shape on each side of FP32_FUSED_MIN_ROWS
    shapes = {k: SHAPES[k] for k in ("htsat_s1_x2", "swin_s3_x2")} if args.quick else SHAPES
    rounds = 3 if args.quick else args.rounds
    result: dict[str, object] = {
        "machine": platform.processor() or platform.machine(),
        "threads": args.threads,
        "rounds": rounds,
        "fp32_fused_min_rows": FP32_FUSED_MIN_ROWS,
    }
    g = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for dtype, tol in ((torch.float32, 1e-4), (torch.bfloat16, 2e-2)):
            dname = str(dtype).removeprefix("torch.")
            for name, (rows, c) in shapes.items():
                x = torch.randn(rows, c, generator=g).to(dtype)
                w1 = (torch.randn(4 * c, c, generator=g) / c**0.5).to(dtype)
                b1 = (0.1 * torch.randn(4 * c, generator=g)).to(dtype)
                w2 = (torch.randn(c, 4 * c, generator=g) / (4 * c) ** 0.5).to(dtype)
                b2 = (0.1 * torch.randn(c, generator=g)).to(dtype)
                ref, fus = mlp(x, w1, b1, w2, b2, "reference"), mlp(x, w1, b1, w2, b2, "fused")
                err = ((fus.float() - ref.float()).abs().max() / ref.float().abs().max()).item()
                assert err < tol, f"{dname} {name}: fused differs from reference by {err:.2e} (> {tol})"
                inputs = (x, w1, b1, w2, b2)
                variants = {
                    "reference": lambda a=inputs: mlp(*a, "reference"),
                    "fused": lambda a=inputs: mlp(*a, "fused"),
                }
                if torch.backends.mkldnn.is_available():
                    variants["onednn_always"] = lambda a=inputs: mlp_onednn(*a)
                times: dict[str, list[float]] = {k: [] for k in variants}
                order = list(variants)
                for r in range(rounds):  # rotate the order: no variant always runs right after another
                    for k in order[r % len(order) :] + order[: r % len(order)]:
                        f = variants[k]
                        f()  # untimed: the first call after another variant pays its page faults
                        t = time.perf_counter()
                        f()
                        times[k].append(time.perf_counter() - t)
                med = {k: statistics.median(v) for k, v in times.items()}
                routed = fused_linear_applies(x, w1, b1, "gelu")
                result[f"speedup_fused_{dname}_{name}"] = round(med["reference"] / med["fused"], 3)
                line = (
                    f"{dname:8s} {name:12s} rows={rows:6d} C={c:5d}  reference {med['reference'] * 1e3:8.2f} ms"
                    f"  fused {med['fused'] * 1e3:8.2f} ms ({med['reference'] / med['fused']:.2f}x,"
                    f" {'oneDNN' if routed else 'reference route'})"
                )
                if "onednn_always" in med:
                    result[f"speedup_onednn_{dname}_{name}"] = round(med["reference"] / med["onednn_always"], 3)
                    line += (
                        f"  oneDNN always {med['onednn_always'] * 1e3:8.2f} ms"
                        f" ({med['reference'] / med['onednn_always']:.2f}x)"
                    )
                print(f"{line}  max rel diff {err:.1e}", flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
