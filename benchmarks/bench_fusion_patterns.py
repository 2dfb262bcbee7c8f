"""Parameter count and forward cost of every FusionTransformer interaction pattern.

Counts the parameters and the forward FLOPs (``torch.utils.flop_counter.FlopCounterMode``: matmuls,
linear layers and attention; elementwise ops, softmax and LayerNorm are not counted) of
:class:`avperceive.nn.FusionTransformer` for each pattern at one configuration (default D = 256,
4 layers, 4 heads, 64 audio + 64 visual tokens, batch 1, fusion layer 2, 4 bottleneck tokens).
FLOPs are counted on the reference attention path (explicit matmuls): the counter does not see
the CPU SDPA kernel of the fused path, which does the same products. Deterministic: no timing.

Prints a table, then one JSON object as the last line
(``{"config": ..., "patterns": {pattern: {"params": n, "gflops": g, "gflops_vs_early_concat": r}}}``).

    python benchmarks/bench_fusion_patterns.py [--dim 256] [--depth 4] [--tokens 64 64]
"""

from __future__ import annotations

import argparse
import json

import torch
from torch.utils.flop_counter import FlopCounterMode

from avperceive.nn import FUSION_PATTERNS, FusionTransformer


def count_flops(model: torch.nn.Module, *inputs: torch.Tensor) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*inputs)
    return int(counter.get_total_flops())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--tokens", type=int, nargs=2, default=(64, 64), metavar=("NA", "NV"))
    parser.add_argument("--fusion-layer", type=int, default=2)
    parser.add_argument("--bottlenecks", type=int, default=4)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    na, nv = args.tokens
    audio, visual = torch.randn(1, na, args.dim), torch.randn(1, nv, args.dim)
    rows = {}
    for pattern in FUSION_PATTERNS:
        if pattern == "early_sum" and na != nv:
            continue
        model = FusionTransformer(
            args.dim,
            depth=args.depth,
            num_heads=args.heads,
            pattern=pattern,
            fusion_layer=args.fusion_layer,
            num_bottlenecks=args.bottlenecks,
            attn_impl="reference",
        ).eval()
        rows[pattern] = {
            "params": sum(p.numel() for p in model.parameters()),
            "gflops": round(count_flops(model, audio, visual) / 1e9, 4),
        }
    base = rows["early_concat"]["gflops"]
    for row in rows.values():
        row["gflops_vs_early_concat"] = round(row["gflops"] / base, 3)
    print(f"{'pattern':28s} {'params':>10s} {'GFLOPs':>8s} {'vs concat':>9s}")
    for name, row in rows.items():
        print(f"{name:28s} {row['params']:10d} {row['gflops']:8.4f} {row['gflops_vs_early_concat']:9.3f}")
    config = {
        "dim": args.dim,
        "depth": args.depth,
        "heads": args.heads,
        "tokens": [na, nv],
        "fusion_layer": args.fusion_layer,
        "bottlenecks": args.bottlenecks,
        "batch": 1,
    }
    result = {"config": config, "patterns": rows}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
