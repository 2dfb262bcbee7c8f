"""predict at scale: decoding workers (same results, same order, failures kept) and the sharded,
resumable ``--out`` JSON-lines run, on one process and under the real ``torchrun`` with 2 gloo ranks."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import avperceive
import avperceive.inference as inference
import avperceive.models.lavish  # noqa: F401  (registers the LAVisH models)
from avperceive.cli import main as cli_main
from avperceive.errors import MediaError
from avperceive.inference import (
    Prediction,
    PredictionFailure,
    default_num_workers,
    expand_inputs,
    iter_predict,
    merge_results,
    part_path,
    read_results,
    recorded_sources,
    shard,
)
from avperceive.io import AVClip, write_clip

MEDIA = Path(__file__).parent / "data" / "media"
REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore::avperceive.inference.UntrainedWeightsWarning")


def synthetic_clip(seed: int, seconds: float = 2.0, fps: int = 10, sr: int = 16000) -> AVClip:
    """A small clip (64x48): a moving colour gradient and a tone whose pitch depends on ``seed``."""
    n = int(seconds * fps)
    t = torch.arange(n, dtype=torch.float32)[:, None, None] / fps
    y = torch.linspace(0, 1, 48)[None, :, None]
    x = torch.linspace(0, 1, 64)[None, None, :]
    chans = [0.5 + 0.5 * torch.sin(2 * math.pi * (x + y + 0.3 * t) + seed + c) for c in range(3)]
    video = (torch.stack(chans, dim=-1) * 255).to(torch.uint8)
    samples = torch.arange(int(seconds * sr), dtype=torch.float32) / sr
    audio = 0.3 * torch.sin(2 * math.pi * (220 + 110 * seed) * samples)[None]
    return AVClip(video=video, frame_times=torch.arange(n, dtype=torch.float64) / fps, audio=audio,
                  sample_rate=sr, fps=float(fps), duration=seconds, has_video=True, has_audio=True)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Seven files, sorted: three real media files, two synthetic clips, one non-media file, one empty file."""
    folder = tmp_path_factory.mktemp("corpus")
    for name in ("big_buck_bunny_432_433.webm", "drum_snare_hard.flac", "smpte-2997.mp4"):
        (folder / name).write_bytes((MEDIA / name).read_bytes())
    write_clip(synthetic_clip(0), folder / "synth_0.mp4", preset="ultrafast")
    write_clip(synthetic_clip(1), folder / "synth_1.mp4", preset="ultrafast")
    (folder / "junk.mp4").write_bytes(b"this is not a media file\n" * 10)
    (folder / "empty.wav").write_bytes(b"")
    return folder


@pytest.fixture(scope="module")
def lavish3():
    """Three 1-s segments: the same preprocessing, a third of the compute."""
    torch.manual_seed(0)
    return avperceive.create_model("lavish-ave-tiny", num_segments=3).eval()


def _kinds(results) -> list[tuple[str, str]]:
    return [(type(r).__name__, r.source) for r in results]


# -- decoding workers --------------------------------------------------------------------------------------
def test_workers_give_the_serial_results_in_input_order(corpus, lavish3):
    files = expand_inputs(corpus)
    serial = list(iter_predict(files, model=lavish3, batch_size=2, on_error="skip", num_workers=0))
    # the failures are the two bad files, in place; everything else is predicted
    failed = {r.source for r in serial if isinstance(r, PredictionFailure)}
    assert failed == {str(corpus / "junk.mp4"), str(corpus / "empty.wav")}
    assert [r.source for r in serial] == files
    for workers in ("fork", "process", "thread"):
        piped = list(iter_predict(files, model=lavish3, batch_size=2, on_error="skip", num_workers=2,
                                  workers=workers))
        assert _kinds(piped) == _kinds(serial)
        # the same per-file inputs in the same batches through the same model in this process:
        # identical numbers (a worker only moves where decoding and the front-ends run).
        assert [r.to_dict() for r in piped] == [r.to_dict() for r in serial]


def test_worker_failures_never_stop_the_run(corpus, lavish3, monkeypatch):
    files = expand_inputs(corpus)
    odd = str(corpus / "synth_1.mp4")
    real = inference.decode_for

    def flaky(item, spec):  # an error the decoder was not written to expect (seen by the decoding threads)
        if item == odd:
            raise RuntimeError("decoder hiccup")
        return real(item, spec)

    monkeypatch.setattr(inference, "decode_for", flaky)  # a forked decoding process inherits the patch
    for workers in ("thread", "fork") if inference.fork_available() else ("thread",):
        results = list(iter_predict(files, model=lavish3, batch_size=3, on_error="skip", num_workers=2,
                                    workers=workers))
        assert [r.source for r in results] == files
        bad = {r.source: r.reason for r in results if isinstance(r, PredictionFailure)}
        assert set(bad) == {odd, str(corpus / "junk.mp4"), str(corpus / "empty.wav")}
        assert "RuntimeError: decoder hiccup" in bad[odd]
    with pytest.raises(MediaError, match="empty.wav"):  # on_error="raise": the first bad file's MediaError, named
        list(iter_predict(files, model=lavish3, on_error="raise", num_workers=2))


FORK_AFTER_FFT = """
import json, sys, warnings
import torch
import avperceive, avperceive.models.lavish
from avperceive.inference import PredictionFailure, expand_inputs, iter_predict
warnings.simplefilter("ignore")
torch.set_num_threads(2)
torch.fft.rfft(torch.randn(64, 4096)).abs().sum()  # MKL's FFT and the OpenMP pool started in the parent
torch.manual_seed(0)
model = avperceive.create_model("lavish-ave-tiny", num_segments=3).eval()
files = expand_inputs(sys.argv[1])
runs = [list(iter_predict(files, model=model, batch_size=2, on_error="skip", num_workers=0))]
for _ in range(2):  # the same process forks its decoding workers twice, after the FFTs of the serial run
    runs.append(list(iter_predict(files, model=model, batch_size=2, on_error="skip", num_workers=2, workers="fork")))
print(json.dumps([[r.to_dict() for r in run] for run in runs]))
"""


@pytest.mark.skipif(not inference.fork_available(), reason="the platform cannot fork")
def test_forked_decoders_after_an_fft_in_the_parent_do_not_hang(corpus):
    # a forked child that ran the audio front-end's FFT once spun forever in MKL's allocator: the forked
    # workers only decode, so this must finish (the timeout turns a hang into a failure, not a stuck suite)
    done = subprocess.run([sys.executable, "-c", FORK_AFTER_FFT, str(corpus)], capture_output=True, text=True,
                          timeout=120, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-2000:]
    serial, *forked = json.loads(done.stdout.strip().splitlines()[-1])
    files = expand_inputs(corpus)
    assert [r["source"] for r in serial] == files
    assert [r["source"] for r in serial if "error" in r] == [str(corpus / "empty.wav"), str(corpus / "junk.mp4")]
    for run in forked:
        assert [r["source"] for r in run] == files
        assert [r.get("error") for r in run] == [r.get("error") for r in serial]  # failures in place, same reason
        for got, want in zip(run, serial):
            assert [s["label"] for s in got.get("segments", [])] == [s["label"] for s in want.get("segments", [])]
            # the model ran with one intra-op thread while the decoders held the other CPU (two in the
            # serial run): sums in another order, float32 rounding differences far below 1e-5
            for s, t in zip(got.get("segments", []), want.get("segments", [])):
                assert abs(s["score"] - t["score"]) < 1e-5


def test_default_num_workers(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert default_num_workers(1) == 0  # one file: nothing to overlap
    assert default_num_workers(100) == 4  # min(4, 8 - 1)
    assert default_num_workers(100, processes_per_machine=4) == 2  # 8 // 4 = 2 CPUs: two decoders share them
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert default_num_workers(100) == 2  # decoding is most of the work: both CPUs decode
    assert default_num_workers(100, processes_per_machine=2) == 1  # one CPU: never 0 for many files


def test_default_worker_kind_is_fork_where_the_platform_forks(monkeypatch):
    assert inference.default_worker_kind() == ("fork" if inference.fork_available() else "thread")
    monkeypatch.setattr(inference, "fork_available", lambda: False)
    assert inference.default_worker_kind() == "thread"


@pytest.mark.skipif(not inference.fork_available(), reason="the platform cannot fork")
def test_a_crashing_decoder_process_costs_one_file(corpus, lavish3, monkeypatch):
    """A decoding process killed by a signal (a decoder library's segfault) fails its file only: the pool
    is replaced, the other files in flight are decoded again, the run finishes in input order."""
    import faulthandler
    import signal

    files = expand_inputs(corpus)
    fatal = str(corpus / "synth_0.mp4")
    real = inference.decode_for

    def crashing(item, spec):
        if item == fatal:
            faulthandler.disable()  # the child dies quietly (pytest's faulthandler would print its stacks)
            os.kill(os.getpid(), signal.SIGSEGV)
        return real(item, spec)

    serial = list(iter_predict(files, model=lavish3, batch_size=2, on_error="skip", num_workers=0))
    monkeypatch.setattr(inference, "decode_for", crashing)  # inherited by the forked decoding processes
    results = list(iter_predict(files, model=lavish3, batch_size=2, on_error="skip", num_workers=2, workers="fork"))
    assert [r.source for r in results] == files
    bad = {r.source: r.reason for r in results if isinstance(r, PredictionFailure)}
    assert set(bad) == {fatal, str(corpus / "junk.mp4"), str(corpus / "empty.wav")}
    assert "decoding process died" in bad[fatal]
    # every other file: the serial result (batches are made of other files once the fatal one fails, and the
    # model runs with the threads the decoders leave: float32 sums in another order, far below 1e-5)
    got = [r.to_dict() for r in results if r.source != fatal]
    want = [r.to_dict() for r in serial if r.source != fatal]
    assert [(g["source"], [s["label"] for s in g.get("segments", [])]) for g in got] == [
        (w["source"], [s["label"] for s in w.get("segments", [])]) for w in want]
    for g, w in zip(got, want):
        for s, t in zip(g.get("segments", []), w.get("segments", [])):
            assert abs(s["score"] - t["score"]) < 1e-5


# -- shards, parts, merge ---------------------------------------------------------------------------------
@pytest.mark.parametrize("world", [1, 2, 3, 5])
def test_shards_are_disjoint_and_cover_the_list(world):
    for n in (0, 1, 4, 11):
        items = [f"f{i:02d}" for i in range(n)]
        parts = [shard(items, r, world) for r in range(world)]
        flat = [x for p in parts for x in p]
        assert sorted(flat) == items and len(flat) == len(set(flat))
        assert max(map(len, parts)) - min(map(len, parts)) <= (1 if n else 0)
        assert parts == [shard(items, r, world) for r in range(world)]  # deterministic


def _line(source: str, **extra) -> str:
    return json.dumps({"source": source, **extra}) + "\n"


def test_parts_tolerate_a_cut_line_and_merge_in_input_order(tmp_path):
    out = tmp_path / "res.jsonl"
    items = [f"/d/{c}.mp4" for c in "abcdef"]
    # an earlier merge holds a; rank 0 of 2 did c (failed) and e; rank 1 did b, then died writing d
    out.write_text(_line("/d/a.mp4", decision="x"))
    part_path(out, 0, 2).write_text(_line("/d/c.mp4", error="corrupt") + _line("/d/e.mp4", decision="e"))
    part_path(out, 1, 2).write_text(_line("/d/b.mp4", decision="b") + _line("/d/d.mp4", decision="d")[:9])
    assert [r["source"] for r in read_results(part_path(out, 1, 2))] == ["/d/b.mp4"]
    assert recorded_sources(out) == {"/d/a.mp4", "/d/b.mp4", "/d/c.mp4", "/d/e.mp4"}
    assert recorded_sources(out, retry_failed=True) == {"/d/a.mp4", "/d/b.mp4", "/d/e.mp4"}
    # a later run (another world size) retried c successfully
    part_path(out, 0, 1).write_text(_line("/d/c.mp4", decision="c"))
    summary = merge_results(items, out)
    recs = read_results(out)
    assert [r["source"] for r in recs] == ["/d/a.mp4", "/d/b.mp4", "/d/c.mp4", "/d/e.mp4"]
    assert recs[2] == {"source": "/d/c.mp4", "decision": "c"}  # the success wins over the failure
    assert (summary.predicted, summary.failed, summary.missing) == (4, 0, ["/d/d.mp4", "/d/f.mp4"])
    assert list(tmp_path.iterdir()) == [out]  # parts removed after the merge


# -- the command line: one process, then torchrun with 2 gloo ranks resuming a crashed run ------------------
def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _same_prediction(a: dict, b: dict) -> bool:
    """Decisions exactly; scores to 1e-5 (the same clip in another batch: float sums in another order)."""
    if "error" in a or "error" in b:
        return a == b
    keys = ("source", "model", "task", "has_video", "has_audio", "weights", "decision")
    if any(a[k] != b[k] for k in keys) or len(a["segments"]) != len(b["segments"]):
        return False
    return all(
        sa["index"] == sb["index"] and sa["valid"] == sb["valid"] and abs(sa["score"] - sb["score"]) < 1e-5
        for sa, sb in zip(a["segments"], b["segments"])
    )


def test_out_single_process_then_torchrun_resumes_a_crashed_run(corpus, tmp_path_factory, capsys):
    items = expand_inputs(corpus)
    weights = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    avperceive.create_model("lavish-ave-tiny").save_pretrained(weights)  # the same weights in every process
    model = ["--model", "lavish-ave-tiny", "--pretrained", f"local-dir:{weights}", "--no-progress"]
    tmp_path = tmp_path_factory.mktemp("run")
    ref = tmp_path / "ref.jsonl"
    rc = cli_main(["predict", str(corpus), *model, "--out", str(ref), "--num-workers", "0"])
    err = capsys.readouterr().err
    assert rc == 1  # two files failed
    assert err.count("skipped ") == 2 and "2 of 7 file(s) failed" in err
    reference = _lines(ref)
    assert [r["source"] for r in reference] == items
    assert [("error" in r) for r in reference] == [Path(s).name in ("junk.mp4", "empty.wav") for s in items]
    assert all(Prediction.from_dict(r).source == r["source"] for r in reference if "error" not in r)

    # running it again finds everything recorded: nothing is predicted, the file is unchanged
    before = ref.read_bytes()
    assert cli_main(["predict", str(corpus), *model, "--out", str(ref)]) == 1
    assert ref.read_bytes() == before

    # the state a crash of a 2-process run leaves: rank 0 wrote one line, rank 1 one line and half of the
    # next. Pre-recorded lines carry a marker, so the merge shows they were kept, not predicted again.
    out = tmp_path / "out.jsonl"
    by_source = {r["source"]: r for r in reference}
    rank0, rank1 = shard(items, 0, 2), shard(items, 1, 2)
    part_path(out, 0, 2).write_text(json.dumps({**by_source[rank0[0]], "resumed": True}) + "\n")
    cut = json.dumps(by_source[rank1[1]])
    part_path(out, 1, 2).write_text(json.dumps({**by_source[rank1[0]], "resumed": True}) + "\n" + cut[: len(cut) // 2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "avperceive", "predict", str(corpus), *model, "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path,
    )
    assert "2 of 7 file(s) failed" in proc.stderr, proc.stderr
    assert proc.returncode == 1  # some files failed (torchrun passes the ranks' status on)
    merged = _lines(out)
    assert [r["source"] for r in merged] == items  # every file exactly once, in input order
    assert [r.get("resumed", False) for r in merged] == [s in (rank0[0], rank1[0]) for s in items]
    for got in merged:
        want = by_source[got["source"]]
        got = {k: v for k, v in got.items() if k != "resumed"}
        assert _same_prediction(got, want), got["source"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl", "ref.jsonl"]  # parts merged and removed


def test_torchrun_killed_halfway_resumes(tmp_path_factory):
    """A real crash: a 2-rank torchrun run is SIGKILLed (whole process group) once results start to appear;
    the same command run again predicts only what is missing, and the merge has every file exactly once,
    in input order, with the lines written before the kill kept as they were."""
    import signal
    import time

    folder = tmp_path_factory.mktemp("many")
    for i in range(40):
        write_clip(synthetic_clip(i % 5, seconds=1.0), folder / f"clip_{i:02d}.mp4", preset="ultrafast")
    items = expand_inputs(folder)
    weights = tmp_path_factory.mktemp("weights_kill")
    torch.manual_seed(0)
    avperceive.create_model("lavish-ave-tiny", num_segments=3).save_pretrained(weights)
    run_dir = tmp_path_factory.mktemp("killed")
    out = run_dir / "out.jsonl"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "avperceive",
           "predict", str(folder), "--model", "lavish-ave-tiny", "--pretrained", f"local-dir:{weights}",
           "--no-progress", "--num-workers", "0", "--batch-size", "1", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    parts = [part_path(out, r, 2) for r in range(2)]

    def complete_lines(path: Path) -> list[str]:
        text = path.read_text() if path.exists() else ""
        return text.splitlines()[: text.count("\n")]

    proc = subprocess.Popen(cmd, env=env, cwd=run_dir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    hang_guard = time.monotonic() + 240  # as subprocess.run(timeout=...): a hung run raises, it is not a timing check
    try:
        while not any(complete_lines(p) for p in parts):
            assert proc.poll() is None, f"the run ended before any result: {proc.stderr.read().decode()[-2000:]}"
            if time.monotonic() > hang_guard:
                raise subprocess.TimeoutExpired(cmd, 240)
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both ranks, at once (also on a failure above)
        proc.wait(timeout=60)
        proc.stderr.close()
    assert not out.exists(), "the run finished before the kill: nothing to resume"
    # mark what the killed run recorded; a cut-off last line (the crash's) is left in place for the re-run to cut
    before = {}
    for p in parts:
        lines = complete_lines(p)
        text = p.read_text() if p.exists() else ""
        tail = text[text.rfind("\n") + 1:]
        for line in lines:
            before[json.loads(line)["source"]] = line
        p.write_text("".join(json.dumps({**json.loads(line), "resumed": True}) + "\n" for line in lines) + tail)
    assert 0 < len(before) < len(items)

    done = subprocess.run(cmd, env=env, cwd=run_dir, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    merged = _lines(out)
    assert [r["source"] for r in merged] == items  # every file exactly once, in input order
    assert {r["source"] for r in merged if r.get("resumed")} == set(before)  # kept, not predicted again
    assert all("error" not in r for r in merged)
    assert sorted(p.name for p in run_dir.iterdir()) == ["out.jsonl"]  # parts merged and removed
