"""Benchmark: the DG-SCT AVE model on one clip: fp32 reference vs fused attention vs bfloat16, and training memory.

Forward (see ``benchmarks/_forward_bench.py``): each variant (fp32 ``attn_impl="reference"``, fp32
fused, bf16 weights cast, bf16 autocast) in its own worker process with the same seeded weights,
a warm-up, then ``--rounds`` alternating rounds at each of ``--threads``; wall and CPU time, peak
RSS, decisions, FLOPs per clip and this CPU's matmul peak measured in the same run.

Training (unless ``--no-train`` / ``--quick``): forward+backward with the ``all`` fine-tuning range,
gradient checkpointing off vs on, in this process (peak = ``VmHWM`` after a reset, minus the
resident set before the step).

Prints one JSON object as the last line, with (1-thread figures at top level; every thread count
under ``by_threads``): ``speedup_fused_fp32``, ``speedup_fused_bf16``, ``speedup_autocast_bf16`` (fp32
reference time / variant time; ``*_cpu`` from CPU time), ``mem_ratio_bf16``, ``decisions_equal_bf16``,
``max_abs_prob_diff_bf16``, ``gflop_per_clip``, ``achieved_gflops_fp32``/``_bf16``,
``matmul_peak_gflops_fp32``/``_bf16``, ``roofline_fraction_fp32``/``_bf16``, the load average, and with
training ``mem_ratio_grad_checkpointing`` / ``speedup_no_checkpointing``.

    python benchmarks/bench_dgsct.py                 # dgsct-ave (full size), 10 segments, 1 and 2 threads
    python benchmarks/bench_dgsct.py --no-train      # forward figures only
    python benchmarks/bench_dgsct.py --quick         # dgsct-ave-tiny, 1 round (seconds)
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _forward_bench import _active_gates, _status_kb, add_arguments, run_from_args, summary  # noqa: E402


def _peak_extra_mib(fn) -> float:
    """Peak RSS added by ``fn()`` (MiB): VmHWM reset to the current RSS first (Linux/glibc)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = _status_kb("VmRSS")
    fn()
    return (_status_kb("VmHWM") - base) / 1024


def train_figures(segments: int, threads: int) -> dict:
    """Forward+backward of the full-size model, ``all`` trainable, checkpointing off vs on (best of 1)."""
    from avperceive.models import create_model, set_trainable

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = create_model("dgsct-ave", num_segments=segments)
    _active_gates(model.adapters, 1)
    h, w = model.image_size
    video = torch.randn(1, segments, 3, h, w)
    audio = 0.1 * torch.randn(1, segments, model.segment_samples)
    out: dict = {"trainable_all": set_trainable(model, "all")}
    model.train()
    figures = {}
    for ckpt in (False, True):
        model.set_grad_checkpointing(ckpt)
        model.zero_grad(set_to_none=True)

        def step():
            o = model(video, audio)
            (o["event_scores"].sum() + o["is_event"].sum()).backward()

        t = time.perf_counter()
        peak = _peak_extra_mib(step)
        figures[ckpt] = (time.perf_counter() - t, peak)
        print(f"forward+backward ('all', checkpointing {'on' if ckpt else 'off'}): {figures[ckpt][0]:.2f} s, "
              f"peak +{peak:.0f} MiB")
    out.update(
        train_s=round(figures[False][0], 3), train_peak_mib=round(figures[False][1], 1),
        train_ckpt_s=round(figures[True][0], 3), train_ckpt_peak_mib=round(figures[True][1], 1),
        mem_ratio_grad_checkpointing=round(figures[True][1] / figures[False][1], 3),
        speedup_no_checkpointing=round(figures[True][0] / figures[False][0], 3),
    )
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap)
    ap.add_argument("--no-train", action="store_true", help="skip the forward+backward measurements")
    args = ap.parse_args(argv)
    result = run_from_args("dgsct", args)
    print(summary(result))
    if not (args.no_train or args.quick):
        result.update(train_figures(args.segments, result["threads"][0]))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    sys.exit(0 if main()["decisions_equal_bf16"] else 1)  # bf16 must decide as fp32 on the benchmark clip
