"""Benchmark: EoPMA forward cost against its host (the backbone is shared, only the adapters run per bank), and
the ensemble in fp32 reference / fp32 fused / bfloat16.

Precision and roofline part (``benchmarks/_forward_bench.py``, the keys of ``bench_dgsct.py``): the
ensemble (two banks, β = 0.01, modality ``av``) in each variant in its own worker process:
``speedup_fused_fp32``, ``speedup_fused_bf16``, ``mem_ratio_bf16``, ``decisions_equal_bf16``,
``gflop_per_clip``, ``achieved_gflops_*``, ``matmul_peak_gflops_*`` (top level: first thread count).

Host-ratio part (in this process, unless ``--no-host-ratio``):

Times, on one batch of clips (fp32, inference mode; ``--reps`` interleaved rounds after a warm-up; medians,
ratios per round):

* the DG-SCT host alone;
* EoPMA with two banks, β = 0.01, modality ``av`` (every adapter runs twice);
* EoPMA with modality ``a`` (only the audio adapters run twice);
* the final-embedding baseline (two full models: two backbone passes).

Prints one JSON object as the last line:

* ``time_ratio_ensemble_vs_host`` = EoPMA (av) time / host time (target ≤ 1.5);
* ``time_ratio_ensemble_a_vs_host`` = EoPMA (a) time / host time;
* ``speedup_shared_backbone_vs_two_models`` = final-embedding (two models) time / EoPMA (av) time.

    python benchmarks/bench_eopma.py --quick          # dgsct-ave-tiny host, 10 segments, 1 round (seconds)
    python benchmarks/bench_eopma.py                  # dgsct-ave (full size) host, 4 segments, 1 and 2 threads

Full-size defaults (4 segments, the fewest the AVE head's top-4 pooling accepts; 3 rounds; 3 host-ratio
rounds) keep the run near 5 minutes on two quiet cores: the ensemble costs ~1.4 hosts and both
parts time four models each; ``segments`` and ``rounds`` are in the JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from avperceive.models import create_model
from avperceive.models.eopma import PerceptionModeEnsemble, final_embedding_ensemble, reduced_alone
from avperceive.nn import AdapterBank

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _forward_bench import add_arguments, run_from_args, summary  # noqa: E402


def _clock(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def _interleaved(fns: dict, reps: int, device: torch.device) -> dict[str, list[float]]:
    """Time every variant once per round, ``reps`` rounds (after a warm-up round), so that load drift on a
    shared machine hits all variants alike; ratios are taken per round."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            times[k].append(_clock(fn, device))
    return times


def _active(bank: AdapterBank, seed: int) -> AdapterBank:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in bank.named_parameters():
            if name.endswith("gate"):
                p.copy_(0.5 + 0.1 * torch.randn(p.shape, generator=g))
    return bank


def host_ratio(args: argparse.Namespace) -> dict:
    """EoPMA (av / a) and two full models against the host alone, interleaved in this process."""
    threads = int((args.threads or "1").split(",")[0])
    torch.set_num_threads(threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = "dgsct-ave-tiny" if args.quick else "dgsct-ave"
    segments = args.segments
    reps = args.reps or (1 if args.quick else 3)
    torch.manual_seed(0)
    host = create_model(name, num_segments=segments).eval().to(device)
    _active(host.adapters, 1)
    reduced = _active(AdapterBank(**host.adapters.config), 2).eval().to(device)
    size = host.image_size
    video = torch.randn(args.batch, segments, 3, *size, device=device)
    audio = 0.1 * torch.randn(args.batch, segments, host.segment_samples, device=device)

    ens = PerceptionModeEnsemble(host, {"reduced": reduced}, beta=0.01, modality="av")
    ens_a = PerceptionModeEnsemble(host, {"reduced": reduced}, beta=0.01, modality="a")
    two = final_embedding_ensemble(host, reduced_alone(host, reduced), beta=0.01)
    with torch.inference_mode():
        t = _interleaved(
            {"host": lambda: host(video, audio), "av": lambda: ens(video, audio), "a": lambda: ens_a(video, audio),
             "two": lambda: two(video, audio)},
            reps, device,
        )

    def ratio(num: str, den: str) -> float:
        return round(statistics.median(x / y for x, y in zip(t[num], t[den])), 3)

    t_host, t_ens, t_ens_a, t_two = (statistics.median(t[k]) for k in ("host", "av", "a", "two"))
    result = {
        "host_model": name,
        "batch": args.batch,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu",
        "host_threads": torch.get_num_threads(),
        "host_ratio_rounds": reps,
        "host_ms": round(1000 * t_host, 2),
        "eopma_av_ms": round(1000 * t_ens, 2),
        "eopma_a_ms": round(1000 * t_ens_a, 2),
        "two_models_ms": round(1000 * t_two, 2),
        "adapter_params_per_bank": sum(p.numel() for p in host.adapters.parameters()),
        "time_ratio_ensemble_vs_host": ratio("av", "host"),
        "time_ratio_ensemble_a_vs_host": ratio("a", "host"),
        "speedup_shared_backbone_vs_two_models": ratio("two", "av"),
    }
    print(f"host {result['host_ms']} ms | EoPMA av {result['eopma_av_ms']} ms | EoPMA a {result['eopma_a_ms']} ms | "
          f"two models {result['two_models_ms']} ms")
    return result


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap, default_segments=4)
    ap.add_argument("--batch", type=int, default=1, help="clips per batch of the host-ratio part")
    ap.add_argument("--reps", type=int, default=None, help="rounds of the host-ratio part (default 3; 1 quick)")
    ap.add_argument("--no-host-ratio", action="store_true", help="skip the EoPMA-vs-host timing")
    args = ap.parse_args(argv)
    result = run_from_args("eopma", args)
    print(summary(result))
    if not args.no_host_ratio:
        result.update(host_ratio(args))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    sys.exit(0 if main()["decisions_equal_bf16"] else 1)  # bf16 must decide as fp32 on the benchmark clip
