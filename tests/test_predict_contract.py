"""The model contract, predict's dtype / device handling, events vs padding and the weights record.

Truths used: the contract's definition (``forward == forward_head(forward_features)``, output rule
per task); float32 as the reference for bfloat16 / float16 (same weights, same inputs); the media
durations (``drum_snare_hard.flac`` lasts 0.44 s, so only its first 1-s segment is inside the media).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

import avperceive
from avperceive.errors import ConfigError
from avperceive.inference import (
    Prediction,
    SegmentPrediction,
    UntrainedWeightsWarning,
    predict,
    resolve_device,
    resolve_dtype,
)
from avperceive.io import load_clip
from avperceive.models.contract import TASKS, AVModel
from avperceive.models.inputs import InputSpec, decode_for, prepare_inputs

MEDIA = Path(__file__).parent / "data" / "media"
FLAC = MEDIA / "drum_snare_hard.flac"
MP4 = MEDIA / "smpte-2997.mp4"
TINY = avperceive.list_models("*-tiny")
MEDIA_MODELS = ["dgsct-ave-tiny", "lavish-ave-tiny", "event-specific-tiny"]
EMBEDDING_MODELS = sorted(set(TINY) - set(MEDIA_MODELS))
LOW = (torch.bfloat16, torch.float16)
# Score tolerance per format (probabilities in [0, 1]): a few units of the format's rounding
# (bfloat16 keeps 8 significant bits, 2^-8 = 0.0039; float16 11 bits, 2^-11 = 0.00049) carried
# through the network. Measured on these models and media: 0.0015 (bf16), 0.0002 (fp16).
SCORE_TOL = {torch.bfloat16: 0.01, torch.float16: 0.002}

pytestmark = pytest.mark.filterwarnings("ignore::avperceive.inference.UntrainedWeightsWarning")


def _fresh(name: str, seed: int = 0) -> AVModel:
    torch.manual_seed(seed)
    return avperceive.create_model(name).eval()


def _embedding_inputs(model: AVModel) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(32, 7, model.visual_dim, generator=g), torch.randn(32, 7, model.audio_dim, generator=g)


def test_registry_has_the_tiny_models_of_every_family():
    assert set(MEDIA_MODELS) <= set(TINY)
    assert {"avmit-frnn-tiny", "avmit-gru-tiny", "avmit-lstm-tiny", "savc-tiny"} <= set(EMBEDDING_MODELS)


def test_predict_is_a_function_and_no_module_shadows_it():
    import avperceive.inference as inference

    assert avperceive.predict is inference.predict and callable(avperceive.predict)
    assert not (Path(avperceive.__file__).parent / "predict.py").exists()


@pytest.mark.parametrize("name", TINY)
def test_every_tiny_model_follows_the_contract(name):
    model = _fresh(name)
    assert isinstance(model, AVModel) and model.task in TASKS
    assert model.weights_source == "untrained"
    if name in EMBEDDING_MODELS:
        video, audio, extra = *_embedding_inputs(model), {}
    else:
        spec = InputSpec.from_cfg(model.input_cfg)
        inputs = prepare_inputs([decode_for(str(FLAC), spec)], spec)
        video, audio, extra = inputs.video, inputs.audio, inputs.extra
    with torch.no_grad():
        out = model(video, audio, **extra)
        staged = model.forward_head(model.forward_features(video, audio, **extra))
    decision = model.decide(out)
    b = video.shape[0]
    if model.task == "ave":
        probs = out["probs"]
        torch.testing.assert_close(probs, staged["probs"], rtol=0, atol=0)  # forward is these two stages: same ops
        assert probs.shape[:2] == decision.shape == (b, spec.segments)
        torch.testing.assert_close(probs.sum(-1), torch.ones(decision.shape), atol=1e-5, rtol=0)  # a distribution
        assert int(decision.max()) <= probs.shape[-1] - 1  # background = K is the last index
    else:
        torch.testing.assert_close(out, staged, rtol=0, atol=0)
        assert out.dim() == 2 and decision.shape == (b,)
        assert torch.equal(decision, out.argmax(-1))


def _compare_ave(ref: list[Prediction], low: list[Prediction], tol: float) -> int:
    """Assert scores within ``tol`` and equal decisions wherever float32 is not a near-tie; return ties."""
    ties = 0
    for p, q in zip(ref, low):
        for a, b in zip(p.segments, q.segments):
            assert abs(a.score - b.score) <= tol
            if a.index != b.index:
                ties += 1
    return ties


@pytest.mark.parametrize("dtype", [torch.float32, *LOW], ids=str)
@pytest.mark.parametrize("name", MEDIA_MODELS)
def test_media_models_run_in_every_dtype_with_float32_decisions(name, dtype):
    files = [FLAC, MP4] if name != "event-specific-tiny" else [FLAC]  # fp16 Conv3d on CPU is slow
    ref_model = _fresh(name)
    ref = predict(files, model=ref_model)
    low_model = _fresh(name)
    out = predict(files, model=low_model, dtype=str(dtype).split(".")[-1])  # by name, as the CLI passes it
    assert next(low_model.parameters()).dtype == dtype
    tol = SCORE_TOL.get(dtype, 0.0)
    if name == "event-specific-tiny":
        for p, q in zip(ref, out):
            assert p.decision == q.decision
            assert max(abs(a[1] - b[1]) for a, b in zip(p.topk, q.topk)) <= tol
        return
    # AVE decisions: equal, except where float32's own top-two probability margin is below the
    # format's score tolerance (a near-tie that no 8- or 11-bit format can resolve)
    spec = InputSpec.from_cfg(ref_model.input_cfg)
    inputs = prepare_inputs([decode_for(str(f), spec) for f in files], spec)
    with torch.no_grad():
        top2 = ref_model(inputs.video, inputs.audio)["probs"].topk(2, -1).values
    margin = (top2[..., 0] - top2[..., 1]).flatten().tolist()
    for (p, q), m in zip(((a, b) for x, y in zip(ref, out) for a, b in zip(x.segments, y.segments)), margin):
        assert abs(p.score - q.score) <= tol
        if m > tol:
            assert p.index == q.index
    assert _compare_ave(ref, out, tol) <= 1


@pytest.mark.parametrize("name", EMBEDDING_MODELS)
def test_embedding_models_run_in_every_dtype(name):
    ref_model = _fresh(name)
    video, audio = _embedding_inputs(ref_model)
    with torch.no_grad():
        ref = ref_model(video, audio).float().softmax(-1)
        for dtype in LOW:
            model = _fresh(name).to(dtype)  # model.to(dtype); float32 inputs are cast on entry
            out = model(video, audio)
            assert out.dtype == dtype
            assert (out.float().softmax(-1) - ref).abs().max() <= SCORE_TOL[dtype]
            assert torch.equal(model.decide(out), ref_model.decide(ref))


def test_model_to_dtype_then_predict_without_dtype():
    model = _fresh("dgsct-ave-tiny").to(torch.bfloat16)
    p = predict(FLAC, model=model)
    assert len(p.segments) == 10 and all(0.0 <= s.score <= 1.0 for s in p.segments)


def test_dtype_and_device_errors_are_one_line_config_errors():
    assert resolve_dtype("bf16") is torch.bfloat16 and resolve_dtype(torch.float16) is torch.float16
    assert resolve_dtype(None) is None
    for bad in ("int8", torch.int64, 3):
        with pytest.raises(ConfigError, match="dtype"):
            resolve_dtype(bad)
    assert resolve_device("cpu") == torch.device("cpu")
    for bad in ("nosuchdevice", "nosuchdevice:0"):
        with pytest.raises(ConfigError) as info:
            resolve_device(bad)
        assert "\n" not in str(info.value)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="'cuda' is not available"):
            predict(FLAC, model="lavish-ave-tiny", device="cuda")
    with pytest.raises(ConfigError, match="dtype"):
        predict(FLAC, model="lavish-ave-tiny", dtype="int8")


def test_events_never_cover_padding_on_the_short_snare():
    clip = load_clip(FLAC)
    assert clip.duration < 1.0  # 0.44 s: only segment 0 lies inside the media
    p = predict(FLAC, model=_fresh("lavish-ave-tiny"))
    assert [s.valid for s in p.segments] == [True] + [False] * 9
    assert all(e.end <= 1.0 for e in p.events)
    assert p.labels[1:] == ["padding"] * 9
    assert p.padded == (1.0, 10.0) and "1-10s padding" in str(p)


def test_events_merge_only_valid_event_segments():
    def seg(t, label, valid=True):
        return SegmentPrediction(t, t + 1, label, 0 if label == "Bark" else 28, 0.5, label != "background", valid)

    segs = [seg(0, "Bark"), seg(1, "Bark"), seg(2, "background"), seg(3, "Bark"), seg(4, "Bark", valid=False),
            seg(5, "Bark", valid=False)]
    p = Prediction("x", "m", "ave", segs)
    assert [(e.label, e.start, e.end) for e in p.events] == [("Bark", 0, 2), ("Bark", 3, 4)]


def test_weights_record_and_untrained_warning(tmp_path):
    model = _fresh("lavish-ave-tiny")
    with pytest.warns(UntrainedWeightsWarning, match="untrained"):
        p = predict(FLAC, model=model)
    assert p.weights == "untrained" and p.to_dict()["weights"] == "untrained" and "untrained weights" in str(p)
    folder = model.save_pretrained(tmp_path / "lavish")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UntrainedWeightsWarning)  # loaded weights: no warning
        q = predict(FLAC, model=f"local-dir:{folder}")
        r = predict(FLAC, model="lavish-ave-tiny", pretrained=f"local-dir:{folder}")
    assert q.weights == r.weights == f"local-dir:{folder}"
    assert "untrained" not in str(q) and Prediction.from_dict(q.to_dict()) == q
    assert [s.index for s in q.segments] == [s.index for s in p.segments]
