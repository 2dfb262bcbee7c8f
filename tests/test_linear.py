"""The linear op's two paths (``avperceive.nn.linear``): same function, fused route only where it applies."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from avperceive.backbones._layers import Mlp
from avperceive.errors import ConfigError
from avperceive.models import create_model
from avperceive.nn.linear import FP32_FUSED_MIN_ROWS, fused_linear_applies, linear

onednn = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="this torch build has no oneDNN")


def _args(rows: int, k: int, n: int, dtype: torch.dtype, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, k, generator=g)
    w = torch.randn(n, k, generator=g) / k**0.5
    b = torch.randn(n, generator=g)
    return x.to(dtype), w.to(dtype), b.to(dtype)


def _float64_truth(x, w, b, activation):
    y = F.linear(x.double(), w.double(), b.double())
    return {None: y, "gelu": F.gelu(y), "relu": torch.relu(y)}[activation]


def _oneDNN_calls(fn) -> int:
    """How many times ``fn()`` ran the oneDNN linear (from the profiler's op names)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return sum(1 for e in prof.events() if e.name == "mkldnn::_linear_pointwise")


@onednn
@pytest.mark.parametrize("activation", [None, "gelu", "relu"])
def test_bf16_fused_equals_reference_within_bf16_rounding(activation):
    x, w, b = _args(300, 96, 384, torch.bfloat16)
    assert fused_linear_applies(x, w, b, activation)
    fused = linear(x, w, b, activation=activation)
    ref = linear(x, w, b, activation=activation, impl="reference")
    truth = _float64_truth(x, w, b, activation)
    assert fused.dtype == ref.dtype == torch.bfloat16 and fused.shape == ref.shape == (300, 384)
    # Both are the float32-accumulated product rounded to bfloat16 once (8-bit mantissa): each is within
    # one bf16 ulp (2^-7 relative) of the float64 value, plus float32 accumulation noise near zero.
    bound = 2.0**-7 * truth.abs() + 1e-3
    assert ((fused.double() - truth).abs() <= bound).all()
    assert ((ref.double() - truth).abs() <= bound).all()


@onednn
@pytest.mark.parametrize("activation", ["gelu", "relu"])
def test_fp32_fused_equals_reference(activation):
    x, w, b = _args(FP32_FUSED_MIN_ROWS, 192, 768, torch.float32)
    assert fused_linear_applies(x, w, b, activation)
    fused = linear(x, w, b, activation=activation)
    ref = linear(x, w, b, activation=activation, impl="reference")
    # Same float32 GEMM up to summation order: |error| <~ K * eps * |x||w| = 192 * 1.2e-7 * O(1).
    torch.testing.assert_close(fused, ref, rtol=1e-5, atol=3e-5)
    assert _oneDNN_calls(lambda: linear(x, w, b, activation=activation)) == 1


@onednn
def test_route_only_where_it_applies():
    x, w, b = _args(8, 16, 4, torch.bfloat16)
    assert fused_linear_applies(x, w, b, None)
    assert not fused_linear_applies(x.double(), w.double(), b.double(), None)  # oneDNN has no float64
    assert not fused_linear_applies(x, w.float(), b, None)  # mixed dtypes
    assert not fused_linear_applies(x[0], w, b, None)  # 1-D input
    # float32: only with an activation to fuse, and from FP32_FUSED_MIN_ROWS rows on
    x32, w32, b32 = _args(FP32_FUSED_MIN_ROWS, 16, 4, torch.float32)
    assert not fused_linear_applies(x32, w32, b32, None)
    assert fused_linear_applies(x32, w32, b32, "gelu")
    assert not fused_linear_applies(x32[:-1], w32, b32, "gelu")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not fused_linear_applies(x, w, b, None)
        y = linear(x32, w32, b32, activation="gelu")
    assert y.dtype == torch.bfloat16  # autocast's dtype: the reference ops ran under autocast
    assert _oneDNN_calls(lambda: linear(x32[:-1], w32, b32, activation="gelu")) == 0


@onednn
def test_autograd_takes_the_reference_path_and_gets_gradients():
    x, w, b = _args(5, 6, 3, torch.bfloat16)
    w = w.float().requires_grad_()
    x, b = x.float(), b.float()
    x_big = x.repeat(FP32_FUSED_MIN_ROWS, 1)
    assert not fused_linear_applies(x_big, w, b, "gelu")
    linear(x_big, w, b, activation="gelu").sum().backward()
    expected = torch.autograd.grad(F.gelu(F.linear(x_big, w, b)).sum(), w)[0]
    torch.testing.assert_close(w.grad, expected)
    with torch.no_grad():
        assert fused_linear_applies(x_big, w, b, "gelu")  # same tensors, no graph: the fused route


def test_unknown_names_raise_config_error():
    x, w, b = _args(2, 3, 4, torch.float32)
    with pytest.raises(ConfigError, match="activation"):
        linear(x, w, b, activation="tanh")
    with pytest.raises(ConfigError, match="attn_impl"):
        linear(x, w, b, impl="fast")


@onednn
def test_mlp_paths_agree_in_bfloat16():
    torch.manual_seed(0)
    mlp = Mlp(64, 256).eval()
    ref = Mlp(64, 256, impl="reference").eval()
    ref.load_state_dict(mlp.state_dict())
    mlp.to(torch.bfloat16), ref.to(torch.bfloat16)
    x = torch.randn(2, 50, 64).bfloat16()
    with torch.inference_mode():
        a, r = mlp(x), ref(x)
        truth = copy.deepcopy(ref).double()(x.double())
    # two bf16 GEMMs with a bf16 hidden layer in between: a few bf16 ulps of the output scale
    scale = truth.abs().max().item()
    assert (a.double() - truth).abs().max().item() <= 0.02 * scale
    assert (a.double() - truth).abs().max().item() <= 2 * (r.double() - truth).abs().max().item() + 2.0**-8 * scale
    with torch.inference_mode():
        assert _oneDNN_calls(lambda: mlp(x)) == 2 and _oneDNN_calls(lambda: ref(x)) == 0
    assert _oneDNN_calls(lambda: mlp(x)) == 0  # parameters that need gradients: the reference ops


@onednn
def test_backbone_switch_reaches_every_linear():
    """``attn_impl`` switches the MLPs, patch mergings and qkv/proj too; bf16 inference uses oneDNN."""
    model = create_model("swinv2_test_tiny").eval().to(torch.bfloat16)
    x = torch.randn(1, 3, *model.patch_embed.img_size).bfloat16()
    linears = sum(1 for m in model.modules() if isinstance(m, torch.nn.Linear) and m.weight.shape[1] > 2)
    with torch.inference_mode():
        fused_calls = _oneDNN_calls(lambda: model.forward_features(x))
        model.attn_impl = "reference"
        assert all(m.impl == "reference" for m in model.modules() if hasattr(m, "impl"))
        assert _oneDNN_calls(lambda: model.forward_features(x)) == 0
    # every block's qkv, proj, fc1, fc2 and every patch merging (the CPB MLPs run once, in float32, cached)
    blocks = sum(len(s.blocks) for s in model.stages)
    mergings = len(model.stages) - 1
    assert fused_calls == 4 * blocks + mergings
    assert linears >= fused_calls


@pytest.mark.slow
def test_linear_benchmark_quick_json():
    """``benchmarks/bench_linear.py --quick`` runs (it asserts fused == reference itself) and prints its keys;
    one quick shape takes the float32 oneDNN route and the other not. Timings are not asserted."""
    bench = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_linear.py"
    proc = subprocess.run([sys.executable, str(bench), "--quick"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    onednn = torch.backends.mkldnn.is_available()
    for dtype in ("float32", "bfloat16"):
        for shape in ("htsat_s1_x2", "swin_s3_x2"):
            for variant in ("fused", "onednn") if onednn else ("fused",):
                assert result[f"speedup_{variant}_{dtype}_{shape}"] > 0
    routes = [line for line in proc.stdout.splitlines() if line.startswith("float32")]
    assert ["oneDNN)" in line for line in routes] == [onednn, False]  # 10240 rows fused, 360 rows not
