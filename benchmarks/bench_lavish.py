"""Benchmark: the LAVisH AVE model on one clip: fp32 reference vs fused attention vs bfloat16.

Same harness and JSON keys as ``bench_dgsct.py`` (see ``benchmarks/_forward_bench.py``): each variant
in its own worker process, warm-up, ``--rounds`` alternating rounds at each of ``--threads``, wall
and CPU time, peak RSS, decisions, FLOPs per clip and the matmul peak of this CPU in the same run.
The JSON object is the last line printed.

    python benchmarks/bench_lavish.py            # lavish-ave (full size), 10 segments, 1 and 2 threads
    python benchmarks/bench_lavish.py --quick    # lavish-ave-tiny, 1 round
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _forward_bench import add_arguments, run_from_args, summary  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap)
    result = run_from_args("lavish", ap.parse_args(argv))
    print(summary(result))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    sys.exit(0 if main()["decisions_equal_bf16"] else 1)  # bf16 must decide as fp32 on the benchmark clip
