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
from torch import nn

from avperceive.cli import EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE
from avperceive.cli import main as cli_main
from avperceive.cli.models import count_parameters_on_meta, weights_status
from avperceive.hub.pretrained_cfg import PretrainedCfg
from avperceive.models import create_model, get_pretrained_cfg, list_models, registry

ROOT = Path(__file__).resolve().parents[1]


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
    # python -m avperceive runs the same main
    res = subprocess.run([sys.executable, "-m", "avperceive", "--version"], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1"), timeout=300)
    assert (res.returncode, res.stdout.strip()) == (0, f"avperceive {expected}"), res.stderr


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


def test_usage_and_input_errors_exit_2_with_one_line():
    for res in (avperceive("models", "no-such-model*"),
                avperceive("convert", "no-such-kind", str(ROOT / "missing.pt"), str(ROOT / "never-written"))):
        assert res.returncode == 2
        assert res.stdout == ""
        err = res.stderr.strip().splitlines()
        assert len(err) == 1 and "no-such" in err[0] and "Traceback" not in res.stderr, res.stderr
    assert not (ROOT / "never-written").exists()


def test_models_text_lists_every_match(capsys):
    assert cli_main(["models", "tiny"]) == EXIT_OK  # no wildcard: substring
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["MODEL", "TASK", "PARAMS", "INPUT", "WEIGHTS"]
    assert [line.split()[0] for line in lines[1:]] == list_models("*tiny*")


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli_main([])
    assert exc.value.code == EXIT_USAGE and "usage:" in capsys.readouterr().err


class _NeedsRealData(nn.Module):
    """A model whose constructor reads a tensor value, which the meta device cannot give."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(3))
        self.threshold = float(self.scale.detach().sum())


def test_models_that_cannot_be_counted_exit_1(capsys):
    registry.register_model("test-cli-meta-fails")(lambda **kw: _NeedsRealData())
    registry.register_model("test-cli-meta-ok")(lambda **kw: nn.Linear(3, 2))
    try:
        assert cli_main(["models", "test-cli-meta-*", "--json"]) == EXIT_SOME_FAILED
    finally:
        registry._REGISTRY.pop("test-cli-meta-fails")
        registry._REGISTRY.pop("test-cli-meta-ok")
    captured = capsys.readouterr()
    rows = {row["name"]: row for row in json.loads(captured.out)}
    assert rows["test-cli-meta-ok"]["parameters"] == 3 * 2 + 2 and rows["test-cli-meta-ok"]["error"] is None
    assert rows["test-cli-meta-fails"]["parameters"] is None and rows["test-cli-meta-fails"]["error"]
    assert captured.err.count("\n") == 1 and "test-cli-meta-fails" in captured.err


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


def test_files_exit_status_rule():
    from avperceive.cli import files_exit_status

    # (done, failed) -> status: the one rule describe and predict share (docs/cli.md)
    assert [files_exit_status(d, f) for d, f in [(3, 0), (2, 1), (0, 1), (0, 3)]] == [0, 1, 2, 2]
    assert files_exit_status(0, 0, incomplete=True) == 1  # a resumable run with files still to do
    assert files_exit_status(0, 2, incomplete=True) == 1


def test_predict_single_bad_file_exit_2_one_failed_of_two_exit_1(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_text("not a video")
    good = ROOT / "tests" / "data" / "media" / "drum_snare_hard.flac"
    one = avperceive("predict", str(bad), "--model", "lavish-ave-tiny", "--no-progress")
    assert one.returncode == 2 and "broken.mp4" in one.stderr and "Traceback" not in one.stderr
    two = avperceive("predict", str(good), str(bad), "--model", "lavish-ave-tiny", "--no-progress", "--json")
    assert two.returncode == 1 and "broken.mp4" in two.stderr
    assert [p["source"] for p in json.loads(two.stdout)["predictions"]] == [str(good)]
