"""Shared harness of the forward benchmarks (``bench_dgsct.py``, ``bench_lavish.py``, ``bench_eopma.py``).

Each *variant* of one model runs in its own worker process (same seed, hence the same weights),
so that its peak resident set is its own:

* ``fp32_reference`` -- float32, ``attn_impl="reference"``: the baseline of every ratio;
* ``fp32_fused`` -- float32, fused attention (the default path);
* ``bf16_fused`` -- weights cast, ``model.to(torch.bfloat16)``, fused attention;
* ``bf16_autocast`` -- float32 weights under ``torch.autocast("cpu", dtype=torch.bfloat16)``.

The parent builds the workers one after another, warms each up once, then times ``rounds``
rounds per thread count, every round running each variant once in a rotating order (load
drift on a shared machine hits all variants alike); ratios are medians of per-round ratios.
Both wall time and CPU time (``time.process_time`` of the worker) are recorded. Then: the
decisions and probabilities of every variant on the same inputs, the FLOPs of one forward
(``torch.utils.flop_counter.FlopCounterMode`` on the fp32 fused worker), each worker's peak
RSS of the timed forwards (``VmHWM`` reset after the build, Linux), and the matmul peak of this
CPU at the same thread count (a square matmul loop in the parent), for the fraction of the roofline.

Keys of the result (first thread count of ``--threads``; all of them under ``by_threads``):
``speedup_fused_fp32``, ``speedup_fused_bf16``, ``speedup_autocast_bf16`` (reference fp32 time /
variant time, wall; ``*_cpu`` from CPU time), ``mem_ratio_bf16`` (peak RSS bf16 fused / fp32
reference), ``decisions_equal_bf16`` (bf16 fused and autocast decide exactly as fp32 reference),
``max_abs_prob_diff_bf16``, ``gflop_per_clip``, ``achieved_gflops_fp32`` / ``_bf16`` (GFLOP per clip
/ fused time per clip), ``matmul_peak_gflops_fp32`` / ``_bf16``, ``roofline_fraction_fp32`` / ``_bf16``.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

VARIANTS = ("fp32_reference", "fp32_fused", "bf16_fused", "bf16_autocast")
MODELS = ("dgsct", "lavish", "eopma")


# -- the models ---------------------------------------------------------------------------------
def _active_gates(module: torch.nn.Module, seed: int) -> None:
    """Gates are zero at initialisation (adapters = identity); give them values so every adapter counts."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("gate"):
                p.copy_(0.5 + 0.1 * torch.randn(p.shape, generator=g))


def build(model: str, quick: bool, segments: int, beta: float = 0.01):
    """Seeded float32 model in eval mode and one clip of inputs: ``(model, video, audio)``."""
    from avperceive.models import create_model

    torch.manual_seed(0)
    suffix = "-tiny" if quick else ""
    if model == "lavish":
        net = create_model("lavish-ave" + suffix, num_segments=segments).eval()
        _active_gates(net.adapters, 1)
        host = net
    elif model in ("dgsct", "eopma"):
        host = create_model("dgsct-ave" + suffix, num_segments=segments).eval()
        _active_gates(host.adapters, 1)
        net = host
        if model == "eopma":
            from avperceive.models.eopma import PerceptionModeEnsemble
            from avperceive.nn import AdapterBank

            reduced = AdapterBank(**host.adapters.config).eval()
            _active_gates(reduced, 2)
            net = PerceptionModeEnsemble(host, {"reduced": reduced}, beta=beta, modality="av").eval()
    else:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    g = torch.Generator().manual_seed(1)
    h, w = host.image_size
    video = torch.randn(1, segments, 3, h, w, generator=g)
    audio = 0.1 * torch.randn(1, segments, host.segment_samples, generator=g)
    return net, host, video, audio


def _set_impl(net: torch.nn.Module, host, impl: str) -> None:
    """Every attention op of the host and of any further adapter bank (EoPMA) on ``impl``."""
    from avperceive.nn import AdapterBank

    host.set_attn_impl(impl)
    for m in net.modules():
        if isinstance(m, AdapterBank):
            for family in m.values():
                for adapter in family:
                    adapter.set_attn_impl(impl)


# -- worker --------------------------------------------------------------------------------------
def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def _reset_peak_rss() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # VmHWM := VmRSS
    except OSError:
        pass


def worker(args: argparse.Namespace) -> None:
    """Build one variant and answer JSON commands on stdin (one per line) with one JSON line on stdout."""
    reply = sys.stdout
    sys.stdout = sys.stderr  # anything the model prints must not break the protocol
    net, host, video, audio = build(args.model, args.quick, args.segments, args.beta)
    impl = "reference" if args.variant == "fp32_reference" else "fused"
    _set_impl(net, host, impl)
    if args.variant == "bf16_fused":
        net.to(torch.bfloat16)
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if args.variant == "bf16_autocast" else nullcontext

    def forward():
        with torch.inference_mode(), ctx():
            return net(video, audio)

    _reset_peak_rss()
    print(json.dumps({"ready": True, "rss_after_build_mib": _status_kb("VmRSS") / 1024}), file=reply, flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "run":
            torch.set_num_threads(int(cmd["threads"]))
            w0, c0 = time.perf_counter(), time.process_time()
            forward()
            out = {"wall_s": time.perf_counter() - w0, "cpu_s": time.process_time() - c0}
        elif op == "outputs":
            res = forward()
            out = {"decisions": net.decide(res).tolist(), "probs": res["probs"].float().flatten().tolist()}
        elif op == "peak_rss":
            out = {"peak_rss_mib": _status_kb("VmHWM") / 1024}
        elif op == "flops":
            from torch.utils.flop_counter import FlopCounterMode

            _count_onednn_linear_flops()
            counter = FlopCounterMode(display=False)
            with counter:
                forward()
            out = {"gflop": counter.get_total_flops() / 1e9}
        elif op == "exit":
            break
        else:
            out = {"error": f"unknown op {op!r}"}
        print(json.dumps(out), file=reply, flush=True)


def _count_onednn_linear_flops() -> None:
    """Teach ``FlopCounterMode`` the oneDNN linear of the fused path (``avperceive.nn.linear``): 2·rows·in·out."""
    from torch.utils.flop_counter import flop_registry, register_flop_formula

    op = torch.ops.mkldnn._linear_pointwise
    if op in flop_registry or op.default in flop_registry:
        return

    @register_flop_formula(op)
    def _linear_flops(x_shape, w_shape, *args, **kwargs) -> int:
        rows = 1
        for d in x_shape[:-1]:
            rows *= d
        return 2 * rows * w_shape[0] * w_shape[1]


class Worker:
    """The parent's handle of one worker process."""

    def __init__(self, model: str, variant: str, quick: bool, segments: int, beta: float):
        cmd = [sys.executable, __file__, "worker", "--model", model, "--variant", variant, "--segments", str(segments),
               "--beta", str(beta)] + (["--quick"] if quick else [])
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.variant = variant
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.ready: dict | None = None

    def wait_ready(self) -> dict:
        if self.ready is None:
            self.ready = self._read()
        return self.ready

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.variant} died (exit code {self.proc.wait()})")
        return json.loads(line)

    def ask(self, **cmd) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"op": "exit"}) + "\n")
                self.proc.stdin.flush()
            except BrokenPipeError:
                pass
            self.proc.wait(timeout=60)


# -- parent --------------------------------------------------------------------------------------
def matmul_peak_gflops(dtype: torch.dtype, threads: int, n: int, seconds: float) -> float:
    """Best GFLOP/s of ``n x n @ n x n`` in ``dtype`` at ``threads`` threads (wall clock, after a warm-up)."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    best, spent = float("inf"), 0.0
    while spent < seconds or best == float("inf"):
        t = time.perf_counter()
        a @ b
        dt = time.perf_counter() - t
        best, spent = min(best, dt), spent + dt
    return 2 * n**3 / best / 1e9


def _median_ratio(num: list[float], den: list[float]) -> float:
    return round(statistics.median(x / y for x, y in zip(num, den)), 3)


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def run(model: str, *, quick: bool, segments: int, rounds: int, threads: list[int], beta: float = 0.01,
        variants: tuple[str, ...] = VARIANTS, parallel_build: bool = False) -> dict:
    """Time the variants of ``model`` (see the module docstring); returns the result dict."""
    result: dict = {"model": model, "quick": quick, "segments": segments, "rounds": rounds, "threads": threads,
                    "machine": platform.machine(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
                    "load_average_start": load_average()}
    workers: dict[str, Worker] = {}
    try:
        for v in variants:
            workers[v] = Worker(model, v, quick, segments, beta)
            if not parallel_build:
                workers[v].wait_ready()
        for w in workers.values():
            w.wait_ready()
        for w in workers.values():  # warm-up (first-call allocations, oneDNN kernel selection)
            w.ask(op="run", threads=threads[0])
        times = {t: {v: {"wall_s": [], "cpu_s": []} for v in variants} for t in threads}
        for t in threads:
            for r in range(rounds):
                order = variants[r % len(variants):] + variants[: r % len(variants)]
                for v in order:
                    m = workers[v].ask(op="run", threads=t)
                    times[t][v]["wall_s"].append(m["wall_s"])
                    times[t][v]["cpu_s"].append(m["cpu_s"])
        outputs = {v: w.ask(op="outputs") for v, w in workers.items()}
        peaks = {v: w.ask(op="peak_rss")["peak_rss_mib"] for v, w in workers.items()}
        gflop = workers["fp32_fused"].ask(op="flops")["gflop"]
    finally:
        for w in workers.values():
            w.close()

    base = outputs["fp32_reference"]
    low = [v for v in variants if v.startswith("bf16")]
    decisions = {v: outputs[v]["decisions"] == base["decisions"] for v in variants}
    prob_diff = {v: max(abs(a - b) for a, b in zip(outputs[v]["probs"], base["probs"])) for v in variants}
    n = 512 if quick else 4096
    by_threads: dict = {}
    for t in threads:
        tt = times[t]
        ref_wall, ref_cpu = tt["fp32_reference"]["wall_s"], tt["fp32_reference"]["cpu_s"]
        entry: dict = {"median_wall_s": {v: round(statistics.median(tt[v]["wall_s"]), 4) for v in variants},
                       "median_cpu_s": {v: round(statistics.median(tt[v]["cpu_s"]), 4) for v in variants}}
        for v, key in (("fp32_fused", "fused_fp32"), ("bf16_fused", "fused_bf16"), ("bf16_autocast", "autocast_bf16")):
            if v in variants:
                entry[f"speedup_{key}"] = _median_ratio(ref_wall, tt[v]["wall_s"])
                entry[f"speedup_{key}_cpu"] = _median_ratio(ref_cpu, tt[v]["cpu_s"])
        peak32 = matmul_peak_gflops(torch.float32, t, n, 0.2 if quick else 3.0)
        peak16 = matmul_peak_gflops(torch.bfloat16, t, n, 0.2 if quick else 3.0)
        ach32 = gflop / entry["median_wall_s"]["fp32_fused"]
        ach16 = gflop / entry["median_wall_s"]["bf16_fused"] if "bf16_fused" in variants else float("nan")
        entry.update(
            matmul_peak_gflops_fp32=round(peak32, 1), matmul_peak_gflops_bf16=round(peak16, 1),
            achieved_gflops_fp32=round(ach32, 1), achieved_gflops_bf16=round(ach16, 1),
            roofline_fraction_fp32=round(ach32 / peak32, 3), roofline_fraction_bf16=round(ach16 / peak16, 3),
            load_average=load_average(),
        )
        by_threads[str(t)] = entry
    first = by_threads[str(threads[0])]
    result.update({k: v for k, v in first.items() if not isinstance(v, dict)})
    result.update(
        mem_ratio_bf16=round(peaks["bf16_fused"] / peaks["fp32_reference"], 3) if "bf16_fused" in variants else None,
        mem_ratio_autocast_bf16=(
            round(peaks["bf16_autocast"] / peaks["fp32_reference"], 3) if "bf16_autocast" in variants else None
        ),
        peak_rss_mib={v: round(p, 1) for v, p in peaks.items()},
        decisions_equal_bf16=all(decisions[v] for v in low),
        decisions_equal={v: decisions[v] for v in variants},
        max_abs_prob_diff_bf16=max((prob_diff[v] for v in low), default=0.0),
        max_abs_prob_diff={v: prob_diff[v] for v in variants},
        gflop_per_clip=round(gflop, 3),
        by_threads=by_threads,
        load_average_end=load_average(),
    )
    return result


def add_arguments(ap: argparse.ArgumentParser, default_segments: int = 10) -> None:
    """The options every forward benchmark shares."""
    ap.add_argument("--quick", action="store_true", help="tiny model, 1 round (a smoke run, seconds)")
    ap.add_argument("--segments", type=int, default=default_segments, help="segments per clip (>= 4)")
    ap.add_argument("--rounds", type=int, default=None, help="timed rounds per thread count (default 3; 1 quick)")
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help="comma-separated subset of the variants (fp32_reference, fp32_fused, bf16_fused needed)")
    ap.add_argument("--threads", default=None, help="comma-separated thread counts (default 1,2; 1 with --quick)")


def run_from_args(model: str, args: argparse.Namespace, **kwargs) -> dict:
    rounds = args.rounds or (1 if args.quick else 3)
    threads = [int(t) for t in (args.threads or ("1" if args.quick else "1,2")).split(",") if t]
    variants = tuple(v for v in VARIANTS if v in args.variants.split(","))
    needed = {"fp32_reference", "fp32_fused", "bf16_fused"}
    if not needed <= set(variants):
        raise SystemExit(f"--variants must include {sorted(needed)}, got {args.variants!r}")
    return run(model, quick=args.quick, segments=args.segments, rounds=rounds, threads=threads,
               variants=variants, parallel_build=args.quick, **kwargs)


def summary(result: dict) -> str:
    """One human-readable line before the JSON line."""
    return (
        f"{result['model']} ({'tiny' if result['quick'] else 'full size'}, {result['segments']} segments, "
        f"{result['threads'][0]} thread(s), load {result['load_average_start']}): fused fp32 "
        f"{result['speedup_fused_fp32']}x, bf16 {result['speedup_fused_bf16']}x "
        f"(cpu {result['speedup_fused_bf16_cpu']}x) vs fp32 reference; bf16 memory {result['mem_ratio_bf16']}x; "
        f"{result['gflop_per_clip']} GFLOP/clip; "
        f"achieved {result['achieved_gflops_fp32']} / {result['achieved_gflops_bf16']} GFLOP/s of matmul peak "
        f"{result['matmul_peak_gflops_fp32']} / {result['matmul_peak_gflops_bf16']}; "
        f"bf16 decisions equal: {result['decisions_equal_bf16']}"
    )


def _worker_main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("role", choices=["worker"])
    ap.add_argument("--model", choices=MODELS, required=True)
    ap.add_argument("--variant", choices=VARIANTS, required=True)
    ap.add_argument("--segments", type=int, required=True)
    ap.add_argument("--beta", type=float, default=0.01)
    ap.add_argument("--quick", action="store_true")
    worker(ap.parse_args())


if __name__ == "__main__":
    _worker_main()
