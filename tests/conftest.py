"""Shared test set-up: offline, one thread, data paths.

The golden parity machinery (``pytest --golden-dir DIR --golden-strict``, the ``golden_case`` fixture
and the ``golden_cases`` marker) is the opt-in pytest plugin :mod:`avperceive.testing`, loaded by
``addopts = "-p avperceive.testing"`` in ``pyproject.toml``.
"""

from __future__ import annotations

import os
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


@pytest.fixture
def media_dir() -> Path:
    return MEDIA
