"""avperceive.predict / `avperceive predict` end to end on the real media fixtures with -tiny models."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import avperceive
import avperceive.models.dgsct  # noqa: F401  (registers the DG-SCT models)
import avperceive.models.lavish  # noqa: F401  (registers the LAVisH models)
from avperceive.errors import ConfigError, MediaError
from avperceive.hub import PretrainedMixin
from avperceive.inference import Prediction, PredictTimings, iter_predict, predict
from avperceive.io import load_clip
from avperceive.models import registry
from avperceive.models.contract import AVModel
from avperceive.models.dgsct import AVE_CATEGORIES

MEDIA = Path(__file__).parent / "data" / "media"
WEBM = MEDIA / "big_buck_bunny_432_433.webm"
FLAC = MEDIA / "drum_snare_hard.flac"
MP4 = MEDIA / "smpte-2997.mp4"
NAMES = set(AVE_CATEGORIES) | {"background"}
REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore::avperceive.inference.UntrainedWeightsWarning")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """The installed ``avperceive`` console script on this checkout (stdout and stderr apart)."""
    script = shutil.which("avperceive") or str(Path(sys.executable).parent / "avperceive")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    return subprocess.run([script, *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def lavish():
    torch.manual_seed(0)
    return avperceive.create_model("lavish-ave-tiny").eval()


@pytest.fixture(scope="module")
def lavish3():
    """Three 1-s segments: the same preprocessing, a third of the compute (the CPU of CI is small)."""
    torch.manual_seed(0)
    return avperceive.create_model("lavish-ave-tiny", num_segments=3).eval()


def _check_ave(p: Prediction, source: Path, *, has_video: bool):
    assert p.source == str(source) and p.task == "ave" and p.model == "lavish-ave-tiny"
    assert len(p.segments) == 10
    assert [s.start for s in p.segments] == [float(t) for t in range(10)]
    assert all(s.label in NAMES for s in p.segments)
    assert all(0.0 <= s.score <= 1.0 for s in p.segments)
    assert all(s.is_event == (s.index != 28) for s in p.segments)
    assert all(s.label == ("background" if s.index == 28 else AVE_CATEGORIES[s.index]) for s in p.segments)
    assert len(p.topk) == 5 and all(lab in AVE_CATEGORIES for lab, _ in p.topk)
    assert p.topk[0][1] >= p.topk[-1][1]
    assert p.has_video is has_video and p.has_audio


def test_predict_ave_on_media_files_and_json_roundtrip(lavish):
    preds = predict([WEBM, FLAC, MP4], model=lavish, batch_size=2)
    assert len(preds) == 3
    _check_ave(preds[0], WEBM, has_video=True)
    _check_ave(preds[1], FLAC, has_video=False)
    _check_ave(preds[2], MP4, has_video=True)
    for p in preds:
        d = json.loads(json.dumps(p.to_dict()))
        assert Prediction.from_dict(d) == p
        assert d["segments"][3]["label"] == p.segments[3].label
        # events cover valid event seconds only: never the zero padding past the end of the media
        assert sum(e["end"] - e["start"] for e in d["events"]) == sum(s.is_event and s.valid for s in p.segments)
    # the 10-s mp4 covers all ten segments; the 1-s webm only the first (the rest is zero padding)
    assert all(s.valid for s in preds[2].segments)
    assert [s.valid for s in preds[0].segments] == [True] + [False] * 9


def test_same_clip_alone_and_in_batch(lavish3):
    batch = predict([FLAC, WEBM, FLAC], model=lavish3, batch_size=3)
    alone = predict(WEBM, model=lavish3)
    inside = batch[1]
    assert [s.label for s in alone.segments] == [s.label for s in inside.segments]
    diff = max(abs(a.score - b.score) for a, b in zip(alone.segments, inside.segments))
    diff = max(diff, max(abs(a[1] - b[1]) for a, b in zip(alone.topk, inside.topk)))
    print("max abs diff alone vs batch:", diff)
    assert diff <= 1e-5
    assert batch[0] == Prediction.from_dict(batch[2].to_dict())


def test_avclip_input_matches_path(lavish3):
    clip = load_clip(WEBM, duration=10.0, num_frames=10, size=32, sample_rate=16000)
    from_clip = predict(clip, model=lavish3)
    from_path = predict(str(WEBM), model=lavish3)
    assert [s.index for s in from_clip.segments] == [s.index for s in from_path.segments]
    assert max(abs(a.score - b.score) for a, b in zip(from_clip.segments, from_path.segments)) <= 1e-6
    with pytest.raises(ConfigError, match="16000 Hz"):
        predict(load_clip(FLAC, duration=2.0, sample_rate=8000), model=lavish3)


def test_dgsct_tiny_by_name_with_decision():
    torch.manual_seed(0)
    timings = PredictTimings()
    (p,) = list(iter_predict([WEBM], model="dgsct-ave-tiny", timings=timings))
    assert p.model == "dgsct-ave-tiny" and len(p.segments) == 10
    assert all(s.label in NAMES for s in p.segments)
    # DG-SCT's score: P(event) * P(class) for an event second, 1 - P(event) for background
    assert all(0.0 <= s.score <= 1.0 for s in p.segments)
    assert timings.clips == 1 and timings.model > 0 and timings.decode > 0


def test_saved_folder_gives_the_saved_models_output(lavish3, tmp_path):
    folder = lavish3.save_pretrained(tmp_path / "lavish")
    a = predict(FLAC, model=f"local-dir:{folder}")
    b = predict(FLAC, model=lavish3)
    assert len(a.segments) == 3 and a.model == "lavish-ave-tiny"
    assert [s.index for s in a.segments] == [s.index for s in b.segments]
    assert max(abs(x.score - y.score) for x, y in zip(a.segments, b.segments)) <= 1e-6


def test_bad_file_raises_in_api_and_is_skipped_by_cli(lavish3, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    with pytest.raises(MediaError) as info:
        predict([bad], model=lavish3)
    assert "broken.mp4" in str(info.value)
    results = list(iter_predict([FLAC, bad, FLAC], model=lavish3, on_error="skip", batch_size=2))
    assert [type(r).__name__ for r in results] == ["Prediction", "PredictionFailure", "Prediction"]
    folder = tmp_path / "clips"
    folder.mkdir()
    (folder / "a.flac").write_bytes(FLAC.read_bytes())
    (folder / "b.mp4").write_bytes(bad.read_bytes())
    (folder / "notes.txt").write_text("ignored")
    run = run_cli("predict", str(folder), "--model", "lavish-ave-tiny", "--json")
    assert run.returncode == 1
    doc = json.loads(run.stdout)
    assert [p["source"] for p in doc["predictions"]] == [str(folder / "a.flac")]
    assert doc["predictions"][0]["weights"] == "untrained" and doc["weights"] == "untrained"
    assert doc["failures"][0]["source"] == str(folder / "b.mp4") and doc["failures"][0]["error"]
    assert "skipped" in run.stderr and "b.mp4" in run.stderr and "1 of 2 file(s) failed" in run.stderr
    assert "Traceback" not in run.stderr


class MeanClassifier(AVModel, PretrainedMixin):
    """Raw-media clip classifier for the test: video (B, T, 3, H, W) + audio (B, S) -> logits (B, K)."""

    task = "clip-classification"

    def __init__(self, num_classes: int = 3):
        super().__init__()
        self.fc = nn.Linear(4, num_classes)

    def forward_features(self, video: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        return torch.cat([video.mean(dim=(1, 3, 4)), audio.abs().mean(dim=1, keepdim=True)], dim=-1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(features)

    def decide(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.argmin(dim=-1)  # deliberately not the argmax: predict must use decide


def test_clip_classification_topk():
    from avperceive.models.registry import PretrainedCfg

    cfg = PretrainedCfg(
        label_names=("low", "mid", "high"),
        input={"task": "clip-classification", "sample_rate": 8000, "segments": 4, "segment_seconds": 0.5,
               "frames_per_segment": 1, "size": 16, "mean": [0.5] * 3, "std": [0.25] * 3},
    )
    registry.register_model("test-predict-classifier", pretrained_cfgs={"untrained": cfg})(
        lambda **kw: MeanClassifier(**kw)
    )
    try:
        torch.manual_seed(0)
        model = avperceive.create_model("test-predict-classifier")
        p = predict(WEBM, model=model, topk=2)
        assert p.task == "clip-classification" and p.segments == []
        assert len(p.topk) == 2 and {lab for lab, _ in p.topk} <= {"low", "mid", "high"}
        # the probabilities are the softmax of the model's logits on the same preprocessing
        clip = load_clip(WEBM, duration=2.0, num_frames=4, size=16, sample_rate=8000)
        video, audio = clip.segments(4, 0.5).model_inputs()
        video = (video - 0.5) / 0.25
        with torch.no_grad():
            probs = model(video[None], audio.reshape(1, -1)).softmax(-1)[0]
        assert math.isclose(p.topk[0][1], float(probs.max()), abs_tol=1e-5)
        assert p.labels == [("low", "mid", "high")[int(probs.argmin())]] == [p.decision]
    finally:
        registry._REGISTRY.pop("test-predict-classifier")


def test_embedding_models_refused_clearly():
    import avperceive.models.avmit  # noqa: F401

    with pytest.raises(ConfigError, match="precomputed .* embeddings"):
        predict(FLAC, model="avmit-gru-tiny")


def test_event_specific_clip_classifier_gets_onsets():
    torch.manual_seed(0)
    model = avperceive.create_model("event-specific-tiny")
    seen = {}
    original = model.forward

    def spy(video, audio, onset_mask=None, padding_mask=None):
        seen["video"], seen["audio"], seen["onsets"] = video.shape, audio.shape, onset_mask
        return original(video, audio, onset_mask)

    model.forward = spy
    amen = MEDIA / "loop_amen_full.flac"
    p = predict(amen, model=model, topk=3)
    assert seen["video"] == (1, 100, 3, 112, 112) and seen["audio"] == (1, 160000)
    assert seen["onsets"].shape == (1, 100) and seen["onsets"].dtype == torch.bool
    assert int(seen["onsets"].sum()) >= 4  # the Amen break has drum hits every few steps
    assert p.task == "clip-classification" and len(p.topk) == 3
    assert p.topk[0][1] >= p.topk[1][1] >= p.topk[2][1] and p.topk[0][0].startswith("class_")


def test_bfloat16_matches_float32_labels_and_scores():
    torch.manual_seed(0)
    model = avperceive.create_model("lavish-ave-tiny", num_segments=2)
    seen = []
    hook = model.register_forward_hook(lambda mod, args, out: seen.append(out["logits"].detach().float()))
    a = predict(FLAC, model=model)
    hook.remove()
    b = predict(FLAC, model=model, dtype=torch.bfloat16)
    assert next(model.parameters()).dtype == torch.bfloat16
    diff = max(abs(x.score - y.score) for x, y in zip(a.segments, b.segments))
    top2 = seen[0].softmax(-1).topk(2, dim=-1).values  # (1, T, 2) float32 probabilities
    margin = float((top2[..., 0] - top2[..., 1]).min())
    print(f"max abs score diff bf16 vs fp32: {diff:.2e}; smallest float32 top-1 margin {margin:.2e}")
    assert diff < 0.02  # bf16 keeps 8 mantissa bits: ~4e-3 relative per op
    # a label can flip only where the top-1 lead is below twice the score error; here it is not, so the
    # decisions must agree exactly
    assert margin > 2 * diff
    assert len(a.labels) == len(b.labels) == 2 and b.labels == a.labels
    assert [s.index for s in b.segments] == [s.index for s in a.segments]
    assert [s.is_event for s in b.segments] == [s.is_event for s in a.segments]


def test_cli_dtype_device_and_untrained_warning():
    # --dtype bfloat16 crashed DG-SCT before (mixed dtype in HTS-AT's bn0); one file, one line out
    run = run_cli("predict", str(FLAC), str(FLAC), "--model", "dgsct-ave-tiny", "--dtype", "bfloat16")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith(f"{FLAC}: ") for line in lines)
    assert all("untrained weights" in line and "1-10s padding" in line for line in lines)
    assert run.stderr.count("untrained (random) weights") == 1 and "Traceback" not in run.stderr
    # an unavailable device: exit 2, one line, no traceback (unknown names take the same path)
    bad = run_cli("predict", str(FLAC), "--model", "lavish-ave-tiny", "--device", "nosuchdevice:0")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert bad.stderr.startswith("avperceive predict: error: device") and bad.stdout == ""
