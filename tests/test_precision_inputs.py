"""Model inputs in bfloat16: a model whose audio front-end runs inside it gets a float32 waveform.

Truth: the log-mel the same model computes in float32 from the same decoded clip (the front-end is
float32 in both, so the only way the two can differ is a rounded waveform); and, to show the check
can fail, the log-mel of the waveform rounded to bfloat16 (what predict fed DG-SCT before).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import avperceive
from avperceive.errors import ConfigError
from avperceive.models.inputs import InputSpec, decode_for, prepare_inputs

FLAC = Path(__file__).parent / "data" / "media" / "drum_snare_hard.flac"


def _logmel_seen_by(model, inputs) -> torch.Tensor:
    """The HTS-AT log-mel computed inside ``model(video, audio)`` (captured by a forward hook)."""
    seen: list[torch.Tensor] = []
    hook = model.audio_backbone.frontend.register_forward_hook(lambda m, a, out: seen.append(out.detach()))
    try:
        with torch.inference_mode():
            model(inputs.video, inputs.audio, **inputs.extra)
    finally:
        hook.remove()
    (logmel,) = seen
    return logmel


def rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    got, want = got.double(), want.double()
    return ((got - want).norm() / want.norm()).item()


def test_dgsct_bf16_inputs_keep_the_waveform_float32_and_the_logmel_equal():
    torch.manual_seed(0)
    model = avperceive.create_model("dgsct-ave-tiny").eval()
    spec = InputSpec.from_cfg(model.input_cfg)
    assert spec.audio_dtype == torch.float32
    clip = decode_for(str(FLAC), spec)
    fp32 = prepare_inputs([clip], spec)
    bf16 = prepare_inputs([clip], spec, dtype=torch.bfloat16)
    assert bf16.video.dtype == torch.bfloat16 and bf16.audio.dtype == torch.float32
    assert torch.equal(bf16.audio, fp32.audio)

    want = _logmel_seen_by(model, fp32)
    got = _logmel_seen_by(model.to(torch.bfloat16), bf16)
    assert got.dtype == torch.float32
    # Same float32 front-end on the same float32 samples: equal up to float32 roundoff (u = 6e-8; the
    # STFT/mel/log chain is a few hundred roundings, so 1e-6 relative leaves a margin of ~10x).
    assert rel_err(got, want) <= 1e-6
    # The check can fail: a waveform rounded to bfloat16 (8 significant bits, noise ~48 dB below the
    # signal) moves the quiet mel bins' log energies by up to ~0.05 dB, 6.7e-5 relative on this clip
    # (the norm is diluted by the -100 dB floor of the padded segments): 10x above the bound at least.
    rounded = prepare_inputs([clip], spec)
    rounded.audio = rounded.audio.to(torch.bfloat16).float()
    rounded.video = bf16.video
    assert rel_err(_logmel_seen_by(model, rounded), want) > 1e-5


def test_audio_dtype_is_checked():
    cfg = {"task": "ave", "sample_rate": 16000, "size": 32, "audio_dtype": "float8"}
    with pytest.raises(ConfigError, match="audio_dtype"):
        InputSpec.from_cfg(cfg, name="toy")
    cfg.pop("audio_dtype")
    assert InputSpec.from_cfg(cfg).audio_dtype is None


@pytest.mark.filterwarnings("ignore::UserWarning")  # untrained weights: only the log-mel is compared
def test_predict_in_bf16_feeds_dgsct_the_float32_log_mel():
    """Through ``avperceive.predict`` (its batching casts the inputs): same log-mel as in float32."""
    seen: dict[str, torch.Tensor] = {}

    def run(dtype: torch.dtype) -> None:
        torch.manual_seed(0)
        model = avperceive.create_model("dgsct-ave-tiny").eval()
        hook = model.audio_backbone.frontend.register_forward_hook(
            lambda m, a, out: seen.__setitem__(str(dtype), out.detach())
        )
        avperceive.predict(str(FLAC), model=model, dtype=dtype, num_workers=0)
        hook.remove()

    run(torch.float32)
    run(torch.bfloat16)
    want, got = seen[str(torch.float32)], seen[str(torch.bfloat16)]
    assert got.dtype == torch.float32
    assert rel_err(got, want) <= 1e-6  # float32 front-end on the same samples (see the test above)
