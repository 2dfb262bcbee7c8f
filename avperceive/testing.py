"""pytest plugin for golden parity data: ``--golden-dir``, ``--golden-strict`` and the ``golden_case`` fixture.

Opt-in: load it with ``pytest -p avperceive.testing`` (the repository's ``[tool.pytest.ini_options]``
does so for its own suite); installing avperceive does not activate it in other projects' test runs.
``pytest --golden-dir DIR`` then works also when ``DIR`` lies outside the repository.

A golden set is a folder of ``<case>.json`` + ``<case>.safetensors`` pairs (tensors named
``weights.*``, ``inputs.*``, ``outputs.*``). A test function taking ``golden_case`` and marked
``@pytest.mark.golden_cases("*_dgsct_adapter")`` is parametrised over every case in the folder whose
file stem matches, with the stem as the test id. Without ``--golden-dir`` the folder is
``data/golden`` beside the test module (the repository's copy in ``tests/data/golden``).

By default a pattern with no matching case (or a missing folder) gives one skipped test. With
``--golden-strict`` parity cannot pass by skipping: a missing folder or case is a failure, and so is
any skip of a golden test (one taking ``golden_case`` or with ``parity`` in its name), whatever
skipped it (``pytest.skip``, ``importorskip``, a ``skipif`` mark).

This module is imported by pytest only; the library never imports it.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

DEFAULT_GOLDEN = Path("data") / "golden"  # relative to the test module's folder


def pytest_addoption(parser):
    parser.addoption("--golden-dir", default=None, help="folder of golden parity cases (default tests/data/golden)")
    parser.addoption(
        "--golden-strict",
        action="store_true",
        default=False,
        help="a missing golden folder or case, or any skipped golden/parity test, is a failure instead of a skip",
    )


def pytest_configure(config):
    config.addinivalue_line("markers", "golden_cases(*patterns): parametrise over golden case stems matching")


def golden_dir_of(config, test_module: Path) -> Path:
    """The folder given by ``--golden-dir``, else ``data/golden`` beside ``test_module``."""
    opt = config.getoption("--golden-dir")
    return Path(opt) if opt else Path(test_module).parent / DEFAULT_GOLDEN


@dataclass
class GoldenCase:
    """One golden case: ``meta`` (the JSON) and ``tensors`` split by prefix."""

    stem: str
    meta: dict
    weights: dict[str, torch.Tensor]
    inputs: dict[str, torch.Tensor]
    outputs: dict[str, torch.Tensor]

    @classmethod
    def load(cls, json_path: Path) -> GoldenCase:
        from safetensors.torch import load_file

        meta = json.loads(json_path.read_text())
        tensors = load_file(str(json_path.with_suffix(".safetensors")))
        parts: dict[str, dict[str, torch.Tensor]] = {"weights": {}, "inputs": {}, "outputs": {}}
        for k, v in tensors.items():
            prefix, _, rest = k.partition(".")
            parts.setdefault(prefix, {})[rest] = v
        return cls(json_path.stem, meta, parts["weights"], parts["inputs"], parts["outputs"])


def pytest_generate_tests(metafunc):
    if "golden_case" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("golden_cases")
    patterns = marker.args if marker else ("*",)
    folder = golden_dir_of(metafunc.config, Path(str(metafunc.definition.path)))
    paths = sorted(
        p for p in folder.glob("*.json")
        if p.with_suffix(".safetensors").is_file() and any(fnmatch.fnmatch(p.stem, pat) for pat in patterns)
    )
    if not paths:
        reason = f"no golden case matching {patterns} in {folder}" + ("" if folder.is_dir() else " (no such folder)")
        if metafunc.config.getoption("--golden-strict"):
            # parametrised with the reason: the fixture fails the test with it
            metafunc.parametrize("golden_case", [MissingCase(reason)], ids=["no-case"], indirect=True)
        else:
            metafunc.parametrize(
                "golden_case", [pytest.param(None, marks=pytest.mark.skip(reason=reason))], ids=["no-case"]
            )
        return
    metafunc.parametrize("golden_case", paths, ids=[p.stem for p in paths], indirect=True)


@dataclass(frozen=True)
class MissingCase:
    """Stands for the cases a ``golden_cases`` pattern did not find, under ``--golden-strict``."""

    reason: str


@pytest.fixture
def golden_case(request) -> GoldenCase:
    if isinstance(request.param, MissingCase):
        pytest.fail(f"--golden-strict: {request.param.reason}", pytrace=False)
    return GoldenCase.load(request.param)


def is_golden_test(item) -> bool:
    """A test that checks parity: it takes ``golden_case`` or has ``parity`` in its name."""
    return "golden_case" in getattr(item, "fixturenames", ()) or "parity" in item.name


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under ``--golden-strict`` a skipped golden test is reported as failed, with the skip reason."""
    outcome = yield
    report = outcome.get_result()
    if not (report.skipped and item.config.getoption("--golden-strict") and is_golden_test(item)):
        return
    if hasattr(report, "wasxfail"):  # an expected failure is not a skip
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"--golden-strict: golden test {item.nodeid} was skipped ({reason})"
