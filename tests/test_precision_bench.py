"""The forward benchmark harness in ``--quick`` mode (tiny models, 1 round, each variant in its own process):
the JSON line carries every key the benchmark promises, and bfloat16 decides as float32 on the clip.

Timing values are not asserted (no wall-clock asserts); only what is exact (decisions, keys) and
what is fixed by the definition (ratios are positive numbers, the FLOP count of a forward is > 0).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
KEYS = {
    "speedup_fused_fp32", "speedup_fused_bf16", "speedup_fused_fp32_cpu", "speedup_fused_bf16_cpu", "mem_ratio_bf16",
    "decisions_equal_bf16", "max_abs_prob_diff_bf16", "gflop_per_clip", "achieved_gflops_fp32", "achieved_gflops_bf16",
    "matmul_peak_gflops_fp32", "matmul_peak_gflops_bf16", "roofline_fraction_fp32", "roofline_fraction_bf16",
    "by_threads", "load_average_start",
}
# bench_lavish.py / bench_eopma.py share the harness (benchmarks/_forward_bench.py); only its model builder
# differs, so one script is run here to keep the suite short (each run starts four Python processes).
CASES = [("bench_dgsct.py", [])]


@pytest.mark.slow
@pytest.mark.parametrize(("script", "extra"), CASES, ids=[c[0] for c in CASES])
def test_quick_benchmark_json(script, extra):
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), "--quick", *extra], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert KEYS <= set(result), KEYS - set(result)
    assert result["decisions_equal_bf16"] is True
    assert result["gflop_per_clip"] > 0
    for key in ("speedup_fused_fp32", "speedup_fused_bf16", "mem_ratio_bf16", "matmul_peak_gflops_bf16"):
        assert result[key] > 0, key
    if script == "bench_dgsct.py":
        assert result["decisions_equal"]["bf16_autocast"] is True
