"""The ``avperceive describe`` command: text, --json, --plot, and one-line errors."""

from __future__ import annotations

import json

import pytest

from avperceive.cli import main
from avperceive.data.synthetic import make_clip
from avperceive.io import write_clip


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory):
    clip, _ = make_clip("iterative", duration=2.0, av_offset=0.08, seed=11)
    return str(write_clip(clip, tmp_path_factory.mktemp("cli") / "iter.mp4"))


def test_text_output(clip_path, capsys):
    assert main(["describe", clip_path]) == 0
    out = capsys.readouterr().out
    assert "perception type: iterative" in out and "audio onsets" in out and "motion peaks" in out


def test_json_output(clip_path, capsys):
    assert main(["describe", clip_path, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["perception_type"] == "iterative"
    assert data["has_audio"] and data["has_video"]
    assert data["av_sync"]["lag_s"] == pytest.approx(0.08, abs=0.04)


def test_plot_output(clip_path, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "timeline.png"
    assert main(["describe", clip_path, "--plot", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000


def test_unreadable_file_one_line_exit_1(tmp_path, capsys):
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    assert main(["describe", str(bad)]) == 1  # a file failed (docs/cli.md: the same status as predict)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "notes.mp4" in lines[0] and lines[0].startswith("avperceive describe: error:")
    assert captured.out == ""
