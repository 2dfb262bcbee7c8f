"""pytest plugin for golden parity data: ``--golden-dir`` and the ``golden_case`` fixture.

Registered through the ``pytest11`` entry point, so it is active in every pytest run of an
environment where avperceive is installed, whatever the rootdir: ``pytest --golden-dir DIR`` works
from anywhere, also when ``DIR`` lies outside the repository.

A golden set is a folder of ``<case>.json`` + ``<case>.safetensors`` pairs (tensors named
``weights.*``, ``inputs.*``, ``outputs.*``). A test function taking ``golden_case`` and marked
``@pytest.mark.golden_cases("*_dgsct_adapter")`` is parametrised over every case in the folder whose
file stem matches, with the stem as the test id. Without ``--golden-dir`` the folder is
``data/golden`` beside the test module (the repository's copy in ``tests/data/golden``).

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
        metafunc.parametrize(
            "golden_case",
            [pytest.param(None, marks=pytest.mark.skip(reason=f"no golden case matching {patterns} in {folder}"))],
            ids=["no-case"],
        )
        return
    metafunc.parametrize("golden_case", paths, ids=[p.stem for p in paths], indirect=True)


@pytest.fixture
def golden_case(request) -> GoldenCase:
    return GoldenCase.load(request.param)
