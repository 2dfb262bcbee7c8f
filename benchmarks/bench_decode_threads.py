"""Benchmark: does decoding several files in threads overlap? (why ``speedup_workers`` stays near 1).

Writes 24 synthetic 10-s 320x240 clips (the ones of ``bench_predict.py``), then decodes them with
:func:`avperceive.load_clip` at a tiny model's input settings, serially and with two threads, and
prints wall and CPU time of each. Threads that overlapped would cut the wall time at equal CPU time;
if PyAV holds the GIL, the wall time stays and the CPU time grows (contention).

    python benchmarks/bench_decode_threads.py

Prints one JSON object last: ``speedup_threads_decode`` = serial wall / threaded wall, and the CPU
seconds of both.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_predict import make_clip  # noqa: E402

from avperceive.io import load_clip, write_clip  # noqa: E402


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    folder = Path(tempfile.mkdtemp())
    paths = [write_clip(make_clip(i, 320, 240), folder / f"c{i:02d}.mp4") for i in range(24)]
    settings = dict(duration=10.0, num_frames=10, size=32, sample_rate=16000, mono=True)
    out = {"clips": len(paths), "load_average": list(os.getloadavg())}
    for workers in (0, 2, 0, 2):  # alternating rounds; the last of each kind is reported
        c0, t0 = cpu_seconds(), time.perf_counter()
        if workers:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(lambda p: load_clip(p, **settings), paths))
        else:
            for p in paths:
                load_clip(p, **settings)
        key = "threads2" if workers else "serial"
        out[f"wall_s_{key}"] = round(time.perf_counter() - t0, 3)
        out[f"cpu_s_{key}"] = round(cpu_seconds() - c0, 3)
    out["speedup_threads_decode"] = round(out["wall_s_serial"] / out["wall_s_threads2"], 3)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
