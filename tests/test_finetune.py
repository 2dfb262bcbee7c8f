"""SoundActions fine-tuning harness: loss, config defaults, gradient accumulation, early stopping,
fresh weights per fold, the Table 3 layout, and two DDP processes agreeing."""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from avperceive.data.splits import stratified_kfold
from avperceive.errors import ConfigError
from avperceive.models.dgsct import DGSCT
from avperceive.train.finetune import (
    FinetuneConfig,
    cross_validate,
    evaluate,
    finetune,
    replace_head,
    soundactions_loss,
)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
import finetune_soundactions as example  # noqa: E402
from finetune_soundactions import MICRO, synthetic_dataset  # noqa: E402


@pytest.fixture(scope="module")
def data():
    return synthetic_dataset(6, MICRO["num_segments"], 16, MICRO["segment_samples"])


def micro_model() -> DGSCT:
    torch.manual_seed(0)
    model = DGSCT(**MICRO)
    with torch.no_grad():  # active adapters, so that the 'all' range trains something visible
        for name, p in model.adapters.named_parameters():
            if name.endswith("gate"):
                p.fill_(0.3)
    return replace_head(model, 4, seed=1)


def test_loss_and_config_defaults():
    g = torch.Generator().manual_seed(0)
    out = {"event_scores": torch.randn(3, 4, generator=g), "av_score": torch.randn(3, 4, generator=g)}
    y = torch.tensor([0, 3, 1])
    want = F.cross_entropy(out["event_scores"], y) + F.cross_entropy(out["av_score"], y)
    assert torch.allclose(soundactions_loss(out, y), want)
    cls, full = FinetuneConfig(tuning_range="cls").resolved(), FinetuneConfig(tuning_range="all").resolved()
    assert (cls.batch_size, cls.accumulation, full.batch_size, full.accumulation) == (16, 1, 4, 4)
    assert full.lr == 5e-4 and full.lr_patience == 5 and full.early_stop_patience == 10 and full.lr_factor == 0.5
    assert full.val_modalities == ("av", "a", "v")
    assert FinetuneConfig(modality="a").resolved().val_modalities == ("a",)
    with pytest.raises(ConfigError):
        FinetuneConfig(tuning_range="head").resolved()
    with pytest.raises(ConfigError):
        FinetuneConfig(modality="x").resolved()


def test_replace_head_and_ranges():
    model = micro_model()
    assert model.head.num_classes == 4 and model.num_classes == 4
    assert model.head.event_classifier.weight.shape == (4, MICRO["d_model"])


def test_gradient_accumulation_equals_one_big_batch(data):
    """4 micro-batches of 1 with accumulation 4 == one batch of 4 (same permutation, one Adam step)."""
    sub = data[:4]
    states = []
    for bs, acc in ((1, 4), (4, 1)):
        model = micro_model()
        cfg = FinetuneConfig(tuning_range="cls", batch_size=bs, accumulation=acc, max_epochs=1, lr=1e-2)
        res = finetune(model, sub, None, cfg)
        assert res.trainable_params == sum(p.numel() for p in model.head.parameters())
        states.append(copy.deepcopy(model.head.state_dict()))
    start = micro_model().head.state_dict()
    moved = max((states[0][k] - start[k]).abs().max().item() for k in start)
    diff = max((states[0][k] - states[1][k]).abs().max().item() for k in start)
    print(f"accumulated vs big batch: max|diff| {diff:.2e} (update size {moved:.2e})")
    assert moved > 1e-3 and diff < 1e-6


def test_early_stopping_on_validation_loss_and_frozen_parts(data):
    model = micro_model()
    backbone_before = copy.deepcopy(model.video_backbone.state_dict())
    cfg = FinetuneConfig(tuning_range="cls", modality="a", batch_size=2, accumulation=1, max_epochs=6, lr=0.0,
                         early_stop_patience=1)
    res = finetune(model, data[:4], data[4:], cfg)
    # lr 0: the val loss never decreases after epoch 0 -> stop once it has not decreased for > 1 epoch
    assert len(res.history) == 3 and res.best_epoch == 0
    assert set(res.best) == {"a"} and res.final["a"]["count"] == 2
    assert all(torch.equal(backbone_before[k], v) for k, v in model.video_backbone.state_dict().items())
    bn = model.adapters["audio_p1"][0].bottleneck.bn_down
    assert bn.num_batches_tracked.item() == 0  # frozen adapters stay in eval mode: no BatchNorm drift


def test_cross_validation_fresh_folds_and_table(data):
    model = micro_model()
    before = copy.deepcopy(model.state_dict())
    targets = [d["target"] for d in data]
    folds = stratified_kfold(targets, 2, seed=42)
    cfg = FinetuneConfig(tuning_range="all", modality="av", batch_size=2, accumulation=2, max_epochs=1)
    cv = cross_validate(model, data, folds, cfg)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the initial weights are never trained
    assert len(cv.folds) == 2
    for m in ("av", "a", "v"):
        acc = cv.accuracies(m)
        mean, std = cv.mean_std(m)
        assert len(acc) == 2 and all(0 <= a <= 1 for a in acc)
        assert mean == pytest.approx(sum(acc) / 2) and std == pytest.approx(abs(acc[0] - acc[1]) / 2)
    table = cv.table()
    assert table.splitlines()[0].startswith("range | FT mod | val mod") and len(table.splitlines()) == 4
    assert cv.folds[cv.best_fold].best_state is not None
    assert sum(f.best_state is not None for f in cv.folds) == 1
    # both folds started from the same weights: the first training step of fold 2 sees the initial adapters
    assert cv.folds[0].trainable_params == cv.folds[1].trainable_params > 0
    assert before["adapters.audio_p1.0.bottleneck.bn_down.num_batches_tracked"].item() == 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_processes_agree(tmp_path):
    """torchrun-style launch of the example with 2 gloo processes on loopback; ranks must agree exactly."""
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1", "GLOO_SOCKET_IFNAME": "lo"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
        "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
        str(ROOT / "examples" / "finetune_soundactions.py"), "--synthetic", "6", "--model", "micro",
        "--folds", "2", "--epochs", "1", "--batch-size", "1", "--accumulation", "2", "--out", str(out),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    from safetensors.torch import load_file

    r0, r1 = (json.loads((out / f"results_rank{r}.json").read_text()) for r in (0, 1))
    assert r0["rows"] == r1["rows"] and r0["best_fold"] == r1["best_fold"]
    w0, w1 = (load_file(str(out / f"best_fold_state_rank{r}.safetensors")) for r in (0, 1))
    assert w0.keys() == w1.keys() and len(w0) > 0
    worst = max((w0[k].float() - w1[k].float()).abs().max().item() for k in w0)
    print(f"DDP ranks: max|diff| of the best fold's trained weights {worst}")
    # exact: the all-reduce hands every rank the same averaged gradient, then each runs the same optimiser step
    assert worst == 0.0


def test_evaluate_withdrawal_zeroes_a_stream(data):
    model = micro_model().eval()
    full, audio_only = evaluate(model, data, "av"), evaluate(model, data, "a")
    assert full["count"] == audio_only["count"] == len(data)
    zeroed = [{**d, "video": torch.zeros_like(d["video"])} for d in data]
    assert evaluate(model, zeroed, "av")["loss"] == pytest.approx(audio_only["loss"], abs=1e-6)
    assert full["loss"] != pytest.approx(audio_only["loss"], abs=1e-6)


def test_documented_synthetic_smoke_run_learns_the_types():
    """The smoke command of the example's docstring must train, not just run.

    It used to print accuracy 0.00 on every fold: the head had 4 classes for 3 synthetic types, a random
    head scored the never-seen 4th class highest on every clip (the frozen random temporal module gives
    nearly the same features for every clip), and the paper's settings (effective batch 16, lr 5e-4) made
    one Adam step per epoch on 16 training clips, two in all. Fold 1 of the documented run (its own split
    and settings) must now classify held-out clips well above chance (1/3) and only into the 3 types.
    """
    line = next(ln for ln in example.__doc__.splitlines() if "--synthetic" in ln and "torchrun" not in ln)
    argv = shlex.split(re.sub(r"^.*finetune_soundactions\.py", "", line.strip()))
    args = example.parse_args(argv)
    cfg, num_classes = example.training_setup(args)
    model = replace_head(example.build_model(args.model, None), num_classes, seed=args.seed)
    data = synthetic_dataset(args.synthetic, model.num_segments, model.image_size[0], model.segment_samples)
    train_idx, val_idx = stratified_kfold([d["target"] for d in data], args.folds, seed=42)[0]
    train, val = [data[i] for i in train_idx], [data[i] for i in val_idx]
    res = finetune(model, train, val, replace(cfg, val_modalities=("av",)))
    with torch.no_grad():
        out = model(torch.stack([d["video"] for d in val]), torch.stack([d["audio"] for d in val]))
    predicted = set(out["event_scores"].argmax(-1).tolist())
    print(f"fold 1: val accuracy {res.best['av']['accuracy']:.3f} at epoch {res.best_epoch}, predicted {predicted}")
    assert predicted <= {0, 1, 2}
    # 8 balanced validation clips, chance 1/3 (2.7 right): at least 5 right (measured 0.88 with --seed 0 and 2,
    # 0.62 with --seed 1); before the fix: 0.00
    assert res.best["av"]["accuracy"] >= 0.6
