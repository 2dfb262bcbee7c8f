"""Every file of a corpus of bad and unusual media works or fails alone with a one-line ``MediaError``.

The corpus (``tests/media_corpus.py``, 87 files over the categories of ``docs/reliability.md``)
goes through the public API (``load_clip`` whole and sampled at 32 kHz, ``describe``,
``predict`` with the smallest tiny model) and the console script (``avperceive describe
--json`` and ``avperceive predict --json``), each in a child process whose address space is
capped at 2 GiB (``RLIMIT_AS``) with a 30-s alarm per file and call. Truth: the expected
outcome per file is fixed by how the file was made (an empty file cannot decode; a clean
10-frame mp4 must), not by running the code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from media_corpus import MEMORY_LIMIT_BYTES, TIME_LIMIT_S, build_corpus, limit_memory  # noqa: E402

MODEL = "lavish-ave-tiny"  # the smallest media model: ~0.05 s per clip here
CALLS = ("load_clip", "load_clip_sampled", "describe", "predict")
CORPUS_SIZE_AT_LEAST = 60


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONIOENCODING="utf-8")
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _cli() -> list[str]:
    """The ``avperceive`` console script (next to this interpreter), or ``python -m avperceive``."""
    script = Path(sys.executable).with_name("avperceive")
    return [str(script)] if script.exists() else [sys.executable, "-m", "avperceive"]


def _run_child(argv: list, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, timeout=timeout, env=_env(), preexec_fn=limit_memory)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_corpus(tmp_path_factory.mktemp("media corpus"))


@pytest.fixture(scope="module")
def api_rows(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("api") / "rows.json"
    argv = [sys.executable, str(Path(__file__).with_name("media_corpus.py")), MODEL, str(out),
            *[os.fsencode(c.path) for c in corpus]]
    proc = _run_child(argv, timeout=TIME_LIMIT_S * len(CALLS) * len(corpus))
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]
    rows = json.loads(out.read_text())
    assert [r["path"] for r in rows] == [os.fsdecode(c.path) for c in corpus]
    return dict(zip([c.path for c in corpus], rows))


def test_corpus_covers_the_categories(corpus):
    categories = {c.category for c in corpus}
    assert len(corpus) >= CORPUS_SIZE_AT_LEAST
    assert categories == {"empty", "not media", "truncated", "lost index", "corrupt", "streams", "tiny",
                          "audio format", "timing", "size", "pixel format", "container", "file name",
                          "filesystem"}
    assert any(isinstance(c.path, bytes) for c in corpus)  # a name that is not valid UTF-8


def test_api_result_or_media_error(corpus, api_rows):
    """Each call gives a result or a MediaError naming the file; load_clip matches the expectation."""
    problems = []
    for case in corpus:
        row = api_rows[case.path]
        for call in CALLS:
            got = row[call]
            if got["kind"] == "MediaError":
                if case.name not in got["message"] or got["path"] != os.fsdecode(case.path):
                    problems.append(f"{case.name} {call}: message does not name the file: {got['message']}")
            elif got["kind"] != "ok":
                problems.append(f"{case.name} {call}: {got['kind']}: {got.get('traceback', got['message'])[-600:]}")
        kind = row["load_clip"]["kind"]
        if case.expect == "ok" and kind != "ok":
            problems.append(f"{case.name}: expected to decode, got {row['load_clip']['message']}")
        if case.expect == "error" and kind != "MediaError":
            problems.append(f"{case.name}: expected a MediaError, got {kind}")
    assert not problems, "\n".join(problems)


def test_api_decoded_clips_are_what_was_asked(corpus, api_rows):
    """Sampled loads return 4 frames of 16x16 and audio at exactly 32 kHz (also for 0/1-sample and 1-Hz audio)."""
    for case in corpus:
        got = api_rows[case.path]["load_clip_sampled"]
        if got["kind"] == "ok":
            assert got["value"]["video"] == [4, 16, 16, 3], case.name
            assert got["value"]["rate"] == 32000, case.name
            assert got["value"]["audio"][0] == 1, case.name


def test_api_truths_of_chosen_files(corpus, api_rows):
    """Facts fixed by how the files were made (exact: frame counts and sample counts are integers)."""
    value = {c.name: api_rows[c.path]["load_clip"].get("value") for c in corpus}
    assert value["claims-1000h.mkv"]["video"][0] == 5  # the 5 frames, not 1000 hours of anything
    assert value["claims-1000h.mkv"]["audio"][1] == 16000 // 2  # 5 frames at 10 fps = 0.5 s of silence
    assert value["one-sample.wav"]["audio"] == [1, 1]
    assert value["1hz.wav"] == {"video": [0, 0, 0, 3], "audio": [1, 5], "rate": 1}
    assert value["4k.mp4"]["video"] == [1, 2160, 3840, 3]
    assert value["3x5.mkv"]["video"] == [10, 3, 5, 3]
    assert value["bogus-sizes.wav"]["audio"] == [1, 16000]  # the data, not the 0xFFFFFFFF claim
    assert value["audio-10s-video-1s.mkv"]["video"][0] == 10
    reasons = {c.name: api_rows[c.path]["load_clip"].get("message", "") for c in corpus}
    assert "named pipe" in reasons["pipe.mp4"] and "device" in reasons["zero-device.wav"]
    assert "directory" in reasons["folder.mp4"] and "broken symbolic link" in reasons["dangling.mp4"]
    assert "symbolic links" in reasons["loop-a.mp4"] and "empty file" in reasons["empty.mp4"]
    assert "GiB" in reasons["gap-1000h.mkv"]  # refused before allocating 215 GiB of silence


def test_cli_describe_one_line_errors_bounded(corpus, tmp_path):
    """``avperceive describe --json`` on the whole corpus: JSON per good file, one line per bad one, exit 1."""
    corpus = [c for c in corpus if c.name != "folder.mp4"]  # a folder is expanded to its media files
    argv = [*_cli(), "describe", "--json", *[os.fsencode(c.path) for c in corpus]]
    proc = _run_child(argv, timeout=TIME_LIMIT_S * len(corpus))
    err = proc.stderr.decode("utf-8", errors="surrogateescape")
    assert proc.returncode == 1, err[-2000:]
    assert "Traceback" not in err
    described = [json.loads(line)["path"] for line in proc.stdout.decode("utf-8", "surrogateescape").splitlines()]
    failed = [line for line in err.splitlines() if line.startswith("avperceive describe: error: ")]
    assert len(described) + len(failed) == len(corpus), err[-2000:]
    for case in corpus:
        mentioned = [line for line in failed if os.fsdecode(case.path) + ": " in line]
        assert (os.fsdecode(case.path) in described) != bool(mentioned), case.name
        if case.expect == "error":
            assert mentioned, case.name


def test_cli_single_file_exit_2(corpus):
    """One bad file alone: exit 2 (an input error: nothing could be described), one stderr line naming it,
    nothing on stdout."""
    pipe = next(c for c in corpus if c.name == "pipe.mp4")
    proc = _run_child([*_cli(), "describe", "--json", pipe.path], timeout=TIME_LIMIT_S)
    lines = proc.stderr.decode().strip().splitlines()
    assert proc.returncode == 2 and proc.stdout == b""
    assert len(lines) == 1 and pipe.path in lines[0] and "named pipe" in lines[0]


def test_cli_predict_reports_failed_files_bounded(corpus):
    """``avperceive predict --json``: every file predicted or listed as failed with its reason; exit 1."""
    files = [c for c in corpus if c.name != "folder.mp4"]  # a folder is expanded to its media files
    argv = [*_cli(), "predict", "--model", MODEL, "--json", "--no-progress", *[os.fsencode(c.path) for c in files]]
    proc = _run_child(argv, timeout=TIME_LIMIT_S * len(files))
    err = proc.stderr.decode("utf-8", errors="surrogateescape")
    assert proc.returncode == 1, err[-2000:]
    assert "Traceback" not in err
    doc = json.loads(proc.stdout)
    ok = {p["source"] for p in doc["predictions"]}
    failed = {f["source"]: f["error"] for f in doc["failures"]}
    assert len(ok) + len(failed) == len(files)
    for case in files:
        path = os.fsdecode(case.path)
        assert (path in ok) != (path in failed), case.name
        if case.expect == "error" and case.name not in ("zero-samples.wav", "gap-1000h.mkv"):
            # (predict reads a fixed 10-s window: a header-only wav is 10 s of silence, the 1000-h gap is past it)
            assert path in failed and failed[path], case.name
        if case.expect == "ok":
            assert path in ok, (case.name, failed.get(path))
        assert f"skipped {path}: " not in err or path in failed


def test_memory_bound_held(api_rows):
    """The children ran under RLIMIT_AS = 2 GiB; their peak resident size is also below it."""
    import resource

    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # Linux: KiB
    assert 0 < peak_kib * 1024 < MEMORY_LIMIT_BYTES
