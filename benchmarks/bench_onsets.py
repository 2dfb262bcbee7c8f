"""Onset strength + onset detection: avperceive.signal (torch, float32) vs librosa 0.11 on the same audio.

The Amen break (tests/data/media/loop_amen_full.flac, 44.1 kHz, mono mix) is tiled to ``--seconds``
seconds. Both sides compute ``onset_strength`` (128-mel log spectral flux) and ``onset_detect``
(librosa defaults) from the waveform; the outputs are asserted equal (envelopes allclose rtol 1e-4,
onset frames identical) before timing. Reported: the best of ``--repeats`` runs for one clip and for
a batch of ``--batch`` clips (librosa: a loop over the clips; ours: one batched call).

    python benchmarks/bench_onsets.py            # 60 s clip, batch 8
    python benchmarks/bench_onsets.py --quick    # 20 s clip, batch 4, fewer repeats
    python benchmarks/bench_onsets.py --threads 0  # torch's default thread count (1 by default)

The last line of output is one JSON object; ``speedup_* = librosa time / our time``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from avperceive.signal import onset_detect, onset_strength

MEDIA = Path(__file__).resolve().parents[1] / "tests" / "data" / "media"


def best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1, like librosa's FFT; 0 = torch's default)")
    parser.add_argument("--quick", action="store_true", help="20 s clip, batch 4, 3 repeats")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.batch, args.repeats = 20.0, 4, 3
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    import librosa  # test extra; imported here so --help works without it

    y, sr = sf.read(MEDIA / "loop_amen_full.flac", dtype="float32", always_2d=True)
    y = y.mean(axis=1).astype(np.float32)
    n = int(args.seconds * sr)
    y = np.tile(y, int(np.ceil(n / len(y))))[:n]
    rng = np.random.default_rng(0)
    clips = np.stack([np.roll(y, int(rng.integers(0, sr))) for _ in range(args.batch)])
    wave, batch = torch.from_numpy(y), torch.from_numpy(clips)

    def ref_one(x):
        env = librosa.onset.onset_strength(y=x, sr=sr)
        return env, librosa.onset.onset_detect(onset_envelope=env, sr=sr)

    def ours_one(x):
        env = onset_strength(x, sr)
        return env, onset_detect(onset_envelope=env, sample_rate=sr)

    # same output, asserted (also warms up numba and torch): the single clip and every batched row
    r_env, r_frames = ref_one(y)
    o_env, o_frames = ours_one(wave)
    np.testing.assert_allclose(o_env.numpy(), r_env, rtol=1e-4, atol=2e-5 * float(r_env.max()))
    assert o_frames.tolist() == r_frames.tolist(), "onset frames differ"
    b_env, b_frames = ours_one(batch)
    for i in range(args.batch):
        r_env, r_frames = ref_one(clips[i])
        np.testing.assert_allclose(b_env[i].numpy(), r_env, rtol=1e-4, atol=2e-5 * float(r_env.max()))
        assert b_frames[i].tolist() == r_frames.tolist(), f"batched clip {i}: onset frames differ"

    t_ref_one = best_time(lambda: ref_one(y), args.repeats)
    t_ours_one = best_time(lambda: ours_one(wave), args.repeats)
    t_ref_batch = best_time(lambda: [ref_one(c) for c in clips], max(1, args.repeats // 2))
    t_ours_batch = best_time(lambda: ours_one(batch), max(1, args.repeats // 2))
    result = {
        "seconds": args.seconds,
        "sample_rate": sr,
        "batch": args.batch,
        "torch_threads": torch.get_num_threads(),
        "librosa": librosa.__version__,
        "torch": torch.__version__,
        "n_onsets_clip": int(len(ours_one(wave)[1])),
        "librosa_s_one": round(t_ref_one, 4),
        "ours_s_one": round(t_ours_one, 4),
        "librosa_s_batch": round(t_ref_batch, 4),
        "ours_s_batch": round(t_ours_batch, 4),
        "speedup_onsets_one_clip": round(t_ref_one / t_ours_one, 2),
        "speedup_onsets_batch": round(t_ref_batch / t_ours_batch, 2),
    }
    print(f"one {args.seconds:.0f} s clip: librosa {t_ref_one * 1e3:.1f} ms, ours {t_ours_one * 1e3:.1f} ms")
    print(f"batch of {args.batch}: librosa {t_ref_batch * 1e3:.1f} ms, ours {t_ours_batch * 1e3:.1f} ms")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
