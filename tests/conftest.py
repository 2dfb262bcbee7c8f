"""Shared test fixtures: the golden folder option and data paths.

``pytest --golden-dir DIR`` points the parity tests at another golden set with the same layout
(default: ``tests/data/golden``). Parity tests take a ``golden_case`` argument and a
``@pytest.mark.golden_cases("*_dgsct_adapter")`` marker; they are parametrised over every case
JSON in the folder whose stem matches, with the stem as the test id.
"""

from __future__ import annotations

import fnmatch
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

# No test may reach the network; the Hub client reads this at call time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# Tiny models are dominated by per-op overhead: one intra-op thread is faster and deterministic.
torch.set_num_threads(1)

DATA = Path(__file__).parent / "data"
MEDIA = DATA / "media"
DEFAULT_GOLDEN = DATA / "golden"


def pytest_addoption(parser):
    parser.addoption("--golden-dir", default=None, help="folder of golden parity cases (default tests/data/golden)")


def pytest_configure(config):
    config.addinivalue_line("markers", "golden_cases(*patterns): parametrise over golden case stems matching")


def golden_dir_of(config) -> Path:
    opt = config.getoption("--golden-dir")
    return Path(opt) if opt else DEFAULT_GOLDEN


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
    folder = golden_dir_of(metafunc.config)
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


@pytest.fixture
def media_dir() -> Path:
    return MEDIA
