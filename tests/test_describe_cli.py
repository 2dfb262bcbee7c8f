"""The ``avperceive describe`` command, run as a user runs it (the installed console script, in a
subprocess): text, JSONL over many files and folders, bad files skipped, exit codes, --plot."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from avperceive.data.synthetic import make_clip
from avperceive.io import write_clip

MEDIA = Path(__file__).parent / "data" / "media"
ROOT = Path(__file__).resolve().parents[1]


def avperceive(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("avperceive") or shutil.which("avperceive", path=os.path.dirname(sys.executable))
    command = [exe] if exe else [sys.executable, "-m", "avperceive"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    return subprocess.run([*command, *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    clip, _ = make_clip("iterative", duration=2.0, av_offset=0.08, seed=11)
    write_clip(clip, root / "iter.mp4")
    shutil.copy(MEDIA / "drum_snare_hard.flac", root / "snare.flac")
    (root / "notes.txt").write_text("not media: not picked from the folder")
    return root


def test_text_output_and_plot(folder, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "timeline.png"
    run = avperceive("describe", str(folder / "iter.mp4"), "--plot", str(out))
    assert run.returncode == 0, run.stderr
    assert "perception type: iterative" in run.stdout and "audio onsets" in run.stdout and "motion peaks" in run.stdout
    assert f"timeline written to {out}" in run.stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000


def test_jsonl_over_files_and_folders(folder):
    run = avperceive("describe", str(MEDIA / "ambi_drone.flac"), str(folder), "--json")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    records = [json.loads(line) for line in lines]  # one JSON object per line
    assert [Path(r["path"]).name for r in records] == ["ambi_drone.flac", "iter.mp4", "snare.flac"]
    assert [r["perception_type"] for r in records] == ["sustained", "iterative", "impulsive"]
    assert records[1]["av_sync"]["lag_s"] == pytest.approx(0.08, abs=0.04)


def test_bad_file_reported_and_skipped_exit_1(folder, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_text("not a video")
    run = avperceive("describe", str(folder / "snare.flac"), str(bad), str(tmp_path / "missing.wav"), "--json")
    assert run.returncode == 1
    assert [json.loads(line)["perception_type"] for line in run.stdout.strip().splitlines()] == ["impulsive"]
    err = run.stderr.strip().splitlines()
    assert len(err) == 3 and "Traceback" not in run.stderr
    assert err[0].startswith(f"avperceive describe: error: {bad}: ")
    assert err[1].startswith(f"avperceive describe: error: {tmp_path / 'missing.wav'}: ")
    assert err[2] == "avperceive describe: 2 of 3 file(s) failed"


def test_nothing_to_describe_exit_2(tmp_path):
    run = avperceive("describe", str(tmp_path))  # an empty folder
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.strip().splitlines() == [f"avperceive describe: error: no media files in {tmp_path}"]


def test_plots_of_many_files_go_to_a_folder(folder, tmp_path):
    pytest.importorskip("matplotlib")
    many = tmp_path / "plots"
    run = avperceive("describe", str(folder), "--plot", str(many), "--json")
    assert run.returncode == 0, run.stderr
    assert len(run.stdout.strip().splitlines()) == 2
    assert sorted(p.name for p in many.iterdir()) == ["iter.mp4.png", "snare.flac.png"]


@pytest.mark.parametrize("where", ["no-such-folder/t.png", "a-file/t.png", "a-folder"])
def test_plot_to_unwritable_path_exit_2_before_work(folder, tmp_path, where):
    # "a-file/t.png" has a regular file as its parent folder: unwritable for every user, root included
    # (CI runs as root, where a chmod-500 folder would still be writable).
    pytest.importorskip("matplotlib")
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "a-folder").mkdir()
    run = avperceive("describe", str(folder / "iter.mp4"), "--plot", str(tmp_path / where))
    assert run.returncode == 2 and run.stdout == ""  # nothing described: checked before computing
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("avperceive describe: error: --plot ")


def test_usage_error_exit_2(folder):
    run = avperceive("describe", str(folder / "iter.mp4"), "--duration", "-1")
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1
