"""Benchmark: ``load_clip(num_frames=10, size=192, sample_rate=32000)`` vs decoding every frame.

Clip: ``tests/data/media/smpte-2997.mp4`` (10 s, 1920x1080 H.264 at 25 fps, keyframe every 12
frames, AAC 48 kHz stereo), or ``--path``. Baselines, both ending in the same tensors
(10 frames at 192x192, mono 32 kHz audio):

* ``decode_all_rgb``: decode every frame and convert each to full-size RGB (PyAV defaults),
  then keep the 10 frames and resize them with torch (the naive loader);
* ``decode_all``: decode every frame but convert only the 10 kept ones (a careful sequential
  loader).

``load_clip`` seeks to the keyframe before each wanted frame when that skips frames, and
resizes inside swscale with one thread. Wall and CPU time (``time.process_time``, all threads)
are both reported: on a shared machine the CPU-time ratio is the steadier one. Prints one JSON
object last.

    python benchmarks/bench_io.py [--quick] [--path FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import av
import numpy as np
import torch
import torch.nn.functional as F

from avperceive.io import load_clip

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT = os.path.join(HERE, "..", "tests", "data", "media", "smpte-2997.mp4")
NUM_FRAMES, SIZE, SR = 10, 192, 32000


def _audio(path: str) -> torch.Tensor:
    with av.open(path) as c:
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=SR)
        parts = []
        for frame in c.decode(audio=0):
            frame.pts = None
            parts += [f.to_ndarray() for f in resampler.resample(frame)]
        parts += [f.to_ndarray() for f in resampler.resample(None)]
    return torch.from_numpy(np.concatenate(parts, axis=1))


def decode_all(path: str, convert_all: bool) -> tuple[torch.Tensor, torch.Tensor]:
    with av.open(path) as c:
        vs = c.streams.video[0]
        duration = float(c.duration / 1e6)
        targets = [(i + 0.5) * duration / NUM_FRAMES for i in range(NUM_FRAMES)]
        frames, times = [], []
        for frame in c.decode(vs):
            frames.append(frame.to_ndarray(format="rgb24") if convert_all else frame)
            times.append(frame.time)
    times_np = np.array(times)
    picked = [int(np.searchsorted(times_np, t, side="right") - 1) for t in targets]
    chosen = [frames[i] if convert_all else frames[i].to_ndarray(format="rgb24") for i in picked]
    video = torch.from_numpy(np.stack(chosen)).permute(0, 3, 1, 2).float()
    video = F.interpolate(video, size=(SIZE, SIZE), mode="area").round().to(torch.uint8).permute(0, 2, 3, 1)
    return video, _audio(path)


def ours(path: str):
    clip = load_clip(path, num_frames=NUM_FRAMES, size=SIZE, sample_rate=SR)
    return clip.video, clip.audio


def _time(fn, repeats: int) -> tuple[float, float]:
    """Median wall time and median CPU time (all threads of this process) in seconds."""
    fn()  # warm-up (file cache, codec init)
    walls, cpus = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", default=DEFAULT)
    parser.add_argument("--quick", action="store_true", help="1 timed run each instead of 3")
    args = parser.parse_args()
    repeats = 1 if args.quick else 3
    path = os.path.abspath(args.path)

    v_ours, a_ours = ours(path)
    v_base, a_base = decode_all(path, convert_all=False)
    # same frames: mean absolute pixel difference (swscale AREA vs torch area resize)
    pixel_diff = float((v_ours.float() - v_base.float()).abs().mean())

    (t_ours, c_ours) = _time(lambda: ours(path), repeats)
    (t_all, c_all) = _time(lambda: decode_all(path, convert_all=False), repeats)
    (t_all_rgb, c_all_rgb) = _time(lambda: decode_all(path, convert_all=True), repeats)
    print(f"file: {path}")
    print("                                                   wall      CPU (all threads)")
    ours_label = f"load_clip(num_frames={NUM_FRAMES}, size={SIZE}, sample_rate={SR}):"
    print(f"{ours_label} {t_ours * 1e3:6.0f} ms {c_ours * 1e3:6.0f} ms")
    print(f"decode every frame, convert 10:                    {t_all * 1e3:6.0f} ms {c_all * 1e3:6.0f} ms")
    print(f"decode every frame, convert all to full-size RGB:  {t_all_rgb * 1e3:6.0f} ms {c_all_rgb * 1e3:6.0f} ms")
    print(f"mean |pixel difference| of the 10 frames vs baseline: {pixel_diff:.2f} (uint8)")
    result = {
        "bench": "io",
        "file": os.path.basename(path),
        "ours_ms": round(t_ours * 1000, 1),
        "decode_all_ms": round(t_all * 1000, 1),
        "decode_all_rgb_ms": round(t_all_rgb * 1000, 1),
        "speedup_load_clip_vs_decode_all_rgb": round(t_all_rgb / t_ours, 2),
        "speedup_load_clip_vs_decode_all": round(t_all / t_ours, 2),
        "speedup_cpu_load_clip_vs_decode_all_rgb": round(c_all_rgb / c_ours, 2),
        "speedup_cpu_load_clip_vs_decode_all": round(c_all / c_ours, 2),
        "pixel_mad": round(pixel_diff, 2),
        "audio_samples_equal": bool(a_ours.shape[-1] == a_base.shape[-1]),
        "repeats": repeats,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
