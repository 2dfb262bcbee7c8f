"""bfloat16 / float16 against the published goldens: adapters (g1, g2), temporal module + head (g3),
HTS-AT from the waveform (g4), Swin-V2 (g6, g7); weights cast (``module.to(dtype)``) or autocast.

Truth: the reference code's float32 outputs stored in the goldens (not our float32 path).

Metric: the relative error ``‖low − golden‖₂ / ‖golden‖₂`` of each output tensor. Tolerances come
from the unit roundoff of the format, u = 2⁻⁸ = 3.9e-3 for bfloat16 (8 significant bits) and
u = 2⁻¹¹ = 4.9e-4 for float16 (11 bits): every weight and every activation between two ops is
rounded once (relative error ≤ u each; matmuls accumulate in float32), and independent roundings
add like a random walk, so a chain of n rounded stages is off by about √n·u. The bounds allow
``4u`` for a single adapter (a handful of rounded stages), ``8u`` for the temporal module + head
and the small backbones (tens of stages); measured values are printed (``-s``) and sit at 15-60 %
of the bounds. Exact quantities (the AVE decisions of g3) must be equal.
"""

from __future__ import annotations

from contextlib import nullcontext

import pytest
import torch
from einops import rearrange
from test_adapters import build_dgsct, to_tokens
from test_backbones_htsat import HEAD_OUTPUTS
from test_backbones_htsat import load_case_model as load_htsat
from test_backbones_swinv2 import _tokens
from test_backbones_swinv2 import load_case_model as load_swinv2
from test_head import _head_from_case

from avperceive.hub import convert_checkpoint
from avperceive.hub.mixin import load_state_dict_strict
from avperceive.nn import LAVisHAdapter
from avperceive.nn.heads import ave_decision

UNIT_ROUNDOFF = {torch.bfloat16: 2.0**-8, torch.float16: 2.0**-11}
# (dtype, mode): weights cast, or float32 weights under autocast (bfloat16, CPU's autocast type).
SETTINGS = [(torch.bfloat16, "cast"), (torch.bfloat16, "autocast"), (torch.float16, "cast")]
IDS = ["bf16-cast", "bf16-autocast", "fp16-cast"]


def rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    got, want = got.double(), want.double()
    return ((got - want).norm() / want.norm()).item()


def lowered(module: torch.nn.Module, dtype: torch.dtype, mode: str):
    """``(module, context, input cast)`` for running ``module`` in ``dtype`` by ``mode``."""
    if mode == "cast":
        return module.to(dtype), nullcontext(), (lambda t: t.to(dtype))
    return module, torch.autocast("cpu", dtype=dtype), (lambda t: t)


def check(name: str, errors: dict[str, float], bound: float) -> None:
    print(name, {k: f"{v:.2e}" for k, v in errors.items()}, f"bound {bound:.2e}")
    assert max(errors.values()) <= bound, errors


@pytest.mark.parametrize(("dtype", "mode"), SETTINGS, ids=IDS)
@pytest.mark.golden_cases("*_dgsct_adapter")
def test_dgsct_adapter_low_precision_parity(golden_case, dtype, mode):
    m, ctx, cast = lowered(build_dgsct(golden_case.weights, golden_case.meta["config"]), dtype, mode)
    x, y = (cast(to_tokens(golden_case.inputs[k])) for k in ("x", "y"))
    with torch.no_grad(), ctx:
        residual, pooling_map = m(x, y)
    errors = {
        "residual": rel_err(rearrange(residual, "b n c -> b c n 1"), golden_case.outputs["residual"]),
        "spatial_map": rel_err(rearrange(pooling_map, "b n -> b 1 n"), golden_case.outputs["spatial_attention"]),
    }
    check(golden_case.stem, errors, 4 * UNIT_ROUNDOFF[dtype])


@pytest.mark.parametrize(("dtype", "mode"), SETTINGS, ids=IDS)
@pytest.mark.golden_cases("*_lavish_adapter")
def test_lavish_adapter_low_precision_parity(golden_case, dtype, mode):
    cfg = golden_case.meta["config"]
    report = convert_checkpoint("lavish-adapter", golden_case.weights, return_report=True)
    m = LAVisHAdapter(cfg["C"], cfg["num_tokens"], cfg["reduction_factor"], cfg["num_conv_group"])
    load_state_dict_strict(m, report.state_dict)
    m, ctx, cast = lowered(m.eval(), dtype, mode)
    with torch.no_grad(), ctx:
        residual = m(cast(to_tokens(golden_case.inputs["x"])), cast(to_tokens(golden_case.inputs["y"])))
    errors = {"residual": rel_err(rearrange(residual, "b n c -> b c n 1"), golden_case.outputs["residual"])}
    check(golden_case.stem, errors, 4 * UNIT_ROUNDOFF[dtype])


@pytest.mark.parametrize(("dtype", "mode"), SETTINGS, ids=IDS)
@pytest.mark.golden_cases("*_dgsct_head")
def test_dgsct_head_low_precision_parity(golden_case, dtype, mode):
    m, ctx, cast = lowered(_head_from_case(golden_case, "fused"), dtype, mode)
    x, y = golden_case.inputs, golden_case.outputs
    with torch.no_grad(), ctx:
        out = m(cast(x["v"]), cast(x["a"]))
    ours = {
        "video_feature": rearrange(out["video_feature"], "b t d -> t b d"),
        "audio_feature": rearrange(out["audio_feature"], "b t d -> t b d"),
        "event_scores": out["event_scores"],
        "av_score": out["av_score"],
    }
    check(golden_case.stem, {k: rel_err(v, y[k]) for k, v in ours.items()}, 8 * UNIT_ROUNDOFF[dtype])
    # The is-event logit w·x nearly cancels (|logit| << |w||x|), which inflates its *relative* error; the
    # decision reads sigmoid(logit) against 0.5, and sigmoid' <= 1/4 turns a logit error of a few u·|w||x|
    # into a probability error below 4u.
    p_low = torch.sigmoid(rearrange(out["is_event"].float(), "b t -> t b 1"))
    p_ref = torch.sigmoid(y["is_event_scores"])
    assert (p_low - p_ref).abs().max().item() <= 4 * UNIT_ROUNDOFF[dtype]
    assert torch.equal(ave_decision(out["is_event"].float(), out["event_scores"].float()), y["segment_pred"])


@pytest.mark.parametrize(("dtype", "mode"), SETTINGS, ids=IDS)
@pytest.mark.golden_cases("g4_htsat*")
def test_htsat_low_precision_parity_from_waveform(golden_case, dtype, mode):
    """The waveform stays float32 (the log-mel front-end runs in float32 whatever the weights' dtype)."""
    m, ctx, _ = lowered(load_htsat(golden_case), dtype, mode)
    with torch.no_grad(), ctx:
        logmel = m.frontend(golden_case.inputs["waveform"])
        result = m(golden_case.inputs["waveform"])
    assert logmel.dtype == torch.float32
    errors = {k: rel_err(result[k], golden_case.outputs[k]) for k in HEAD_OUTPUTS}
    errors["logmel_dB"] = rel_err(logmel, golden_case.outputs["logmel"])
    check(golden_case.stem, errors, 8 * UNIT_ROUNDOFF[dtype])
    assert errors["logmel_dB"] <= 1e-6  # float32 front-end: the float32 parity (2e-4 dB of ~100 dB)


@pytest.mark.parametrize(("dtype", "mode"), SETTINGS, ids=IDS)
@pytest.mark.golden_cases("g6_swinv2*", "g7_swinv2*")
def test_swinv2_low_precision_parity(golden_case, dtype, mode):
    m, ctx, cast = lowered(load_swinv2(golden_case), dtype, mode)
    x = cast(golden_case.inputs["images"])
    with torch.no_grad(), ctx:
        feats = m.forward_features(x)
        logits = m(x)
    errors = {
        "forward_features": rel_err(feats, _tokens(golden_case.outputs["forward_features"])),
        "logits": rel_err(logits, golden_case.outputs["logits"]),
    }
    check(golden_case.stem, errors, 8 * UNIT_ROUNDOFF[dtype])
