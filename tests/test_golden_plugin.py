"""The golden parity plugin (avperceive.testing): cases found, and --golden-strict turns every skip into a failure.

Runs pytest in a subprocess on a throw-away test folder, so the outcomes are pytest's own report.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]

TESTS = '''
import pytest


@pytest.mark.golden_cases("*_present")
def test_found(golden_case):
    assert golden_case.meta == {"scale": 2.0}
    assert torch.equal(golden_case.outputs["y"], golden_case.meta["scale"] * golden_case.inputs["x"])


@pytest.mark.golden_cases("*_absent")
def test_missing_case(golden_case):
    pass


def test_converter_parity():
    pytest.skip("converter not registered")


def test_ordinary():
    pytest.skip("an ordinary skip")
'''


def _run(folder: Path, *args: str) -> tuple[int, dict[str, str]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "-p", "avperceive.testing",
           "--rootdir", str(folder), str(folder / "test_x.py"), *args]
    proc = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=120)
    outcomes = {m[2]: m[0] for m in re.findall(r"^(PASSED|FAILED|SKIPPED|ERROR) (\S+::)?(\S+)", proc.stdout, re.M)}
    # -rA prints skips as "SKIPPED [1] test_x.py:NN: reason" without the test name: count them
    outcomes["skipped"] = str(len(re.findall(r"^SKIPPED ", proc.stdout, re.M)))
    return proc.returncode, outcomes | {"stdout": proc.stdout}


def test_golden_strict_fails_missing_cases_and_skipped_parity_tests(tmp_path):
    (tmp_path / "test_x.py").write_text("import torch\n" + TESTS)
    golden = tmp_path / "data" / "golden"
    golden.mkdir(parents=True)
    x = torch.arange(3.0)
    save_file({"inputs.x": x, "outputs.y": 2 * x}, str(golden / "c1_present.safetensors"))
    (golden / "c1_present.json").write_text(json.dumps({"scale": 2.0}))

    rc, out = _run(tmp_path)
    assert rc == 0, out["stdout"]
    assert out["test_found[c1_present]"] == "PASSED"
    assert out["skipped"] == "3", out["stdout"]  # no case, the parity skip, the ordinary skip

    rc, out = _run(tmp_path, "--golden-strict")
    assert rc == 1, out["stdout"]
    assert out["test_found[c1_present]"] == "PASSED"
    assert out["test_missing_case[no-case]"] == "ERROR"  # fails in the fixture, naming the pattern and folder
    assert "--golden-strict: no golden case matching ('*_absent',)" in out["stdout"]
    assert out["test_converter_parity"] == "FAILED" and "converter not registered" in out["stdout"]
    assert out["skipped"] == "1"  # a test that is not a golden test may still skip

    rc, out = _run(tmp_path, "--golden-strict", "--golden-dir", str(tmp_path / "nonexistent"))
    assert rc == 1 and out["test_found[no-case]"] == "ERROR"
    assert "(no such folder)" in out["stdout"]
