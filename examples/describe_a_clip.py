"""Describe a clip without any weights: Schaeffer type, onsets, motion peaks, audio-video sync.

    python examples/describe_a_clip.py                 # a synthetic iterative clip, written to mp4
    python examples/describe_a_clip.py my_clip.mp4     # your own file
    python examples/describe_a_clip.py my_clip.mp4 --plot timeline.png

The synthetic clip has known ground truth (onset times, the sound 120 ms after the picture),
so the printed description can be checked against it.

Run time (measured on a 2-core x86-64 CPU shared with other jobs, ``OMP_NUM_THREADS=1``): about 4 s
wall, 2 s of CPU, most of it importing torch.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import avperceive as avp
from avperceive.data.synthetic import make_clip
from avperceive.io import write_clip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", help="media file (default: a synthetic clip)")
    parser.add_argument("--plot", help="write the timeline plot here (needs matplotlib)")
    args = parser.parse_args()

    path = args.path
    if path is None:
        clip, truth = make_clip("iterative", duration=3.0, fps=25, av_offset=0.12, seed=3, size=(96, 128))
        path = write_clip(clip, os.path.join(tempfile.mkdtemp(), "synthetic_iterative.mp4"))
        print(f"synthetic clip: {path}")
        print(f"  truth: {truth.perception_type}, onsets {[round(t, 3) for t in truth.onsets]}, "
              f"sound lags picture by {1000 * truth.av_offset:.0f} ms\n")

    description = avp.describe(path)
    print(description)
    print("\nas JSON keys:", sorted(description.to_dict()))
    if args.plot:
        description.plot(args.plot)
        print(f"timeline written to {args.plot}")


if __name__ == "__main__":
    main()
