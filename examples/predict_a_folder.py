"""Predict a folder of clips fast: decoding workers, bfloat16, and a resumable, shardable results file.

Three things a run over many files needs (docs/predict.md, docs/precision.md):

1. **Decoding workers.** ``predict`` decodes files ahead of the model in ``num_workers`` forked
   decode-only processes (the default where the platform can fork); results come in input order
   and decide as a serial run (``num_workers=0``) does. Both times are printed. 16 small clips are
   too few for the workers to pay off on 2 cores (each call starts its pool); throughput on more
   and heavier files is measured by ``benchmarks/bench_predict.py`` (1.5x on 2 cores).
2. **bfloat16.** ``dtype="bfloat16"`` casts the model (the audio front-end stays float32); the
   decisions are compared with float32's, file by file, segment by segment.
3. **A results file that survives a crash.** ``predict_to_part`` appends one JSON line per file to
   a per-process part file; here process 0 of 2 finishes and process 1 "crashes" before starting.
   The command-line run with ``--out`` then predicts only what is missing and merges everything
   into one JSON-lines file in input order. On many GPUs or nodes the same command runs under
   ``torchrun`` (each rank takes a disjoint shard of the sorted file list)::

       torchrun --nproc_per_node=8 -m avperceive predict clips/ --model NAME --out results.jsonl

The model is ``lavish-ave-tiny`` with seeded random weights (saved to a folder and loaded from it,
as trained weights would be), so the labels mean nothing: the example is about throughput and
agreement. The clips are synthetic 10-s clips (:func:`avperceive.data.synthetic.make_clip`, one
Schaeffer type each) written as H.264/AAC.

    python examples/predict_a_folder.py [--clips=16] [--out=DIR]

Measured on a 2-core x86-64 CPU (torch 2.13.0+cpu, three runs, about 18 s each): serial 1.3–1.6 s,
default workers (2 forked decoders) 1.3–1.7 s (0.91–1.06x), the same labels; bfloat16 decided as
float32 on 159 of 160 segments (the other one a near-tie of random weights), largest difference of
the decided segment's probability 0.0007; the resumed run predicted the 8 missing files and merged
16 lines in input order. The last line printed is a JSON object with these figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

import avperceive as avp
from avperceive.data.synthetic import SOUND_TYPES, make_clip
from avperceive.inference import (
    UntrainedWeightsWarning,
    default_num_workers,
    default_worker_kind,
    expand_inputs,
    predict_to_part,
    read_results,
)
from avperceive.io import write_clip

MODEL = "lavish-ave-tiny"


def write_clips(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        clip, _ = make_clip(SOUND_TYPES[i % 3], duration=10.0, fps=25, sample_rate=32000, seed=i, size=(240, 320))
        write_clip(clip, folder / f"clip_{i:03d}.mp4", preset="ultrafast")


def timed_predict(folder: Path, weights: str, **kwargs) -> tuple[list[avp.Prediction], float]:
    start = time.perf_counter()
    results = avp.predict(folder, model=MODEL, pretrained=weights, **kwargs)
    return results, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=16, help="synthetic 10-s clips to write and predict")
    parser.add_argument("--out", type=Path, default=None, help="working folder (default: a temporary one)")
    args = parser.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="avp_predict_folder_"))
    clips, weights_dir = work / "clips", work / "weights"

    t0 = time.perf_counter()
    write_clips(clips, args.clips)
    torch.manual_seed(0)
    avp.create_model(MODEL).save_pretrained(weights_dir)
    weights = f"local-dir:{weights_dir}"
    print(f"wrote {args.clips} clips of 10 s (320x240) and {MODEL} weights in {time.perf_counter() - t0:.1f} s")
    warnings.simplefilter("ignore", UntrainedWeightsWarning)  # random weights on purpose, said above

    # 1. serial vs the default decoding workers (warm the model's caches and the page cache first)
    avp.predict(clips, model=MODEL, pretrained=weights, num_workers=0)
    serial, t_serial = timed_predict(clips, weights, num_workers=0)
    piped, t_piped = timed_predict(clips, weights)
    same = [p.labels for p in piped] == [s.labels for s in serial]
    workers = default_num_workers(len(expand_inputs(clips)))
    print(f"serial {t_serial:.2f} s; default workers ({workers} x {default_worker_kind()}) {t_piped:.2f} s "
          f"({t_serial / t_piped:.2f}x); same labels: {same}")

    # 2. bfloat16 vs float32, segment by segment
    bf16, _ = timed_predict(clips, weights, dtype="bfloat16")
    agree = sum(a == b for p, q in zip(bf16, serial) for a, b in zip(p.labels, q.labels))
    total = sum(len(p.labels) for p in serial)
    diff = max(abs(a.score - b.score) for p, q in zip(bf16, serial) for a, b in zip(p.segments, q.segments))
    print(f"bfloat16 decided as float32 on {agree} of {total} segments; "
          f"largest difference of the decided segment's probability {diff:.4f}")

    # 3. a sharded run where process 1 of 2 crashed: process 0's part is written, then `--out` resumes
    out = work / "results.jsonl"
    items = expand_inputs(clips)
    done = list(predict_to_part(items, out, rank=0, world_size=2, model=MODEL, pretrained=weights))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}
    cli = [sys.executable, "-m", "avperceive", "predict", str(clips), "--model", MODEL, "--pretrained", weights,
           "--no-progress", "--out", str(out)]
    proc = subprocess.run(cli, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"the resumed run failed:\n{proc.stderr}")
    merged = read_results(out)
    in_order = [r["source"] for r in merged] == items
    parts_left = sorted(p.name for p in work.iterdir() if p.name.endswith(".part"))
    print(f"rank 0 of 2 wrote {len(done)} lines before the 'crash'; the resumed run predicted "
          f"{len(items) - len(done)} missing files; {out.name}: {len(merged)} lines, in input order: {in_order}, "
          f"part files left: {parts_left}")

    print(json.dumps({
        "clips": len(items), "serial_s": round(t_serial, 3), "workers_s": round(t_piped, 3),
        "speedup_workers": round(t_serial / t_piped, 3), "num_workers": workers, "worker_kind": default_worker_kind(),
        "same_labels_workers": same, "bf16_segments_agree": agree, "segments": total,
        "bf16_max_prob_diff": round(diff, 5), "rank0_lines": len(done), "merged_lines": len(merged),
        "merged_in_order": in_order, "parts_left": parts_left,
    }))


if __name__ == "__main__":
    main()
