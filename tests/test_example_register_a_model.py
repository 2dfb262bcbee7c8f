"""examples/register_a_model.py end to end: a new model registered, predicted, saved and reloaded exactly.

The example runs in a subprocess so that its registry entry does not leak into the other tests'
``list_models()``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "register_a_model.py"
LABELS = ["impulsive", "sustained", "iterative"]


def test_register_predict_save_reload(tmp_path):
    out = tmp_path / "saved"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), "--out", str(out)], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])

    # Same weights (safetensors round trip is bit-exact) and the same deterministic CPU kernels on the
    # same decoded inputs: the reloaded model's logits are identical, not merely close.
    assert result["logits_after"] == result["logits_before"]
    assert result["max_abs_diff"] == 0.0
    assert result["weights_after"] == f"local-dir:{out}"

    # predict used the contract only: its decision is the argmax of the logits computed from the
    # model's input config, and its top-k are their softmax (numpy, float64; 1e-5 covers float32 softmax).
    logits = np.asarray(result["logits_before"], dtype=np.float64)
    assert result["decision_before"] == result["decision_after"] == LABELS[int(np.argmax(logits))]
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    order = np.argsort(-probs)
    for topk in (result["topk_before"], result["topk_after"]):
        assert [label for label, _ in topk] == [LABELS[i] for i in order]
        np.testing.assert_allclose([p for _, p in topk], probs[order], rtol=1e-5, atol=1e-7)

    # The saved folder describes itself: architecture, constructor arguments, input section.
    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == "meanpool-av-example"
    assert config["num_classes"] == 3 and config["dim"] == 32
    assert config["pretrained_cfg"]["input"]["segments"] == 4
    assert config["pretrained_cfg"]["label_names"] == LABELS
    assert (out / "model.safetensors").is_file()
