"""The ``avperceive`` command line through the real console script: --version, models, exit codes.

Each case runs the installed ``avperceive`` entry point (``[project.scripts]`` of pyproject.toml)
in a subprocess, with this checkout first on ``PYTHONPATH`` so the code under test is this tree's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from avperceive.cli import EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE
from avperceive.cli.models import count_parameters_on_meta, weights_status
from avperceive.hub.pretrained_cfg import PretrainedCfg
from avperceive.models import create_model, get_pretrained_cfg, list_models

ROOT = Path(__file__).resolve().parents[1]
FLAC = ROOT / "tests" / "data" / "media" / "drum_snare_hard.flac"


def _console_script() -> str:
    # Next to the interpreter first (a venv that is not activated), then PATH.
    beside = Path(sys.executable).with_name("avperceive")
    found = str(beside) if beside.is_file() else shutil.which("avperceive")
    assert found, "the avperceive console script is not installed: pip install -e .[test]"
    return found


def avperceive(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    return subprocess.run([_console_script(), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def test_exit_code_constants_are_the_documented_ones():
    # docs/cli.md and DESIGN.md: 0 ok, 1 some files failed, 2 usage or input error.
    assert (EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE) == (0, 1, 2)
    doc = (ROOT / "docs" / "cli.md").read_text()
    for code, meaning in ((0, "ok"), (1, "failed"), (2, "usage")):
        assert any(line.startswith(f"| {code} ") and meaning in line for line in doc.splitlines()), code


def test_version_matches_pyproject():
    expected = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    res = avperceive("--version")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"avperceive {expected}"


def test_models_json_counts_and_inputs():
    res = avperceive("models", "avmit-*-*-*", "--json")  # the six paper configurations (embeddings x RNN)
    assert res.returncode == 0, res.stderr
    rows = {row["name"]: row for row in json.loads(res.stdout)}
    # Joannou, Rotshtein & Noppeney 2024 (AVMIT), Table 5: trainable parameters as published.
    table5 = {
        "avmit-frnn-yamnet-effnetb0": 675_472, "avmit-gru-yamnet-effnetb0": 248_976,
        "avmit-lstm-yamnet-effnetb0": 740_112, "avmit-frnn-vggish-vgg16": 366_352,
        "avmit-gru-vggish-vgg16": 413_968, "avmit-lstm-vggish-vgg16": 956_944,
    }
    assert sorted(rows) == sorted(table5)
    for name, published in table5.items():
        row = rows[name]
        assert row["trainable"] == published, name
        cfg = get_pretrained_cfg(name)
        assert (row["task"], row["sample_rate"], row["segments"], row["size"]) == (
            cfg.input["task"], cfg.input["sample_rate"], cfg.input["segments"], cfg.input["size"])
        assert row["classes"] == 16 and row["weights"] == "untrained"


def test_models_text_lists_every_match_and_no_match_is_exit_2():
    res = avperceive("models", "tiny")  # no wildcard: substring
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert lines[0].split() == ["MODEL", "TASK", "PARAMS", "INPUT", "WEIGHTS"]
    assert [line.split()[0] for line in lines[1:]] == list_models("*tiny*")

    res = avperceive("models", "no-such-model*")
    assert res.returncode == 2
    assert res.stdout == ""
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and "no-such-model*" in err[0] and "Traceback" not in res.stderr


def test_exit_codes_across_commands(tmp_path):
    no_command = avperceive()
    assert no_command.returncode == 2 and "usage:" in no_command.stderr

    unknown_model = avperceive("predict", str(FLAC), "--model", "no-such-model")
    assert unknown_model.returncode == 2
    unknown_kind = avperceive("convert", "no-such-kind", str(tmp_path / "a.pt"), str(tmp_path / "out"))
    assert unknown_kind.returncode == 2
    for res in (unknown_model, unknown_kind):
        assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr, res.stderr

    # One unreadable file among the inputs: reported on stderr, the good one predicted, exit 1.
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    one_bad = avperceive("predict", str(FLAC), str(bad), "--model", "lavish-ave-tiny", "--no-progress")
    assert one_bad.returncode == 1
    assert "broken.wav" in one_bad.stderr and "Traceback" not in one_bad.stderr
    assert FLAC.name in one_bad.stdout


def test_python_dash_m_runs_the_same_main():
    res = subprocess.run([sys.executable, "-m", "avperceive", "models", "savc-tiny", "--json"], capture_output=True,
                         text=True, env=dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1"), timeout=300)
    assert res.returncode == 0, res.stderr
    assert [row["name"] for row in json.loads(res.stdout)] == ["savc-tiny"]


@pytest.mark.parametrize("name", ["dgsct-ave-tiny", "lavish-ave-tiny", "event-specific-tiny", "avmit-lstm-tiny"])
def test_meta_count_equals_a_real_build(name):
    """The meta-device count (no memory, no init) equals the count of the model really built on CPU."""
    model = create_model(name)
    params = list(model.parameters())
    real = (sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad))
    assert count_parameters_on_meta(name) == real
    assert next(model.parameters()).device == torch.device("cpu")


def test_weights_status_vocabulary():
    assert weights_status(None) == "untrained"
    assert weights_status(PretrainedCfg()) == "untrained"
    assert weights_status(PretrainedCfg(hub_id="org/repo", revision="a" * 40)) == f"hf-hub:org/repo@{'a' * 40}"
