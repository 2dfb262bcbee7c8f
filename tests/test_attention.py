"""The attention primitive: both paths of ``attend`` against a float64 numpy formula, validation, switching."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from avperceive.errors import ConfigError
from avperceive.nn import LatentTokenAttention, TemporalAttention
from avperceive.nn.attention import ATTN_IMPLS, Attend, AttnImplAttribute, attend, check_attn_impl, set_attn_impl

PACKAGE = Path(__file__).resolve().parents[1] / "avperceive"
# fp32 inputs of unit scale, d <= 16, softmax over <= 13 keys: both paths agree with the float64
# formula to ~1e-6 (a few ulps of the O(1) outputs); 1e-5 leaves a margin for kernel blocking.
ATOL = 1e-5


def numpy_attention(q, k, v, bias=None, scale=None) -> np.ndarray:
    """Vaswani et al. (2017) eq. 1 with an additive bias, in float64 numpy (max-shifted softmax)."""
    q, k, v = (np.asarray(t, dtype=np.float64) for t in (q, k, v))
    s = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    logits = s * np.einsum("...id,...jd->...ij", q, k)
    if bias is not None:
        logits = logits + np.asarray(bias, dtype=np.float64)
    logits = logits - logits.max(axis=-1, keepdims=True)
    w = np.exp(logits)
    w = w / w.sum(axis=-1, keepdims=True)
    return np.einsum("...ij,...jd->...id", w, v)


def _mask(lq: int, lk: int, fill: float, g: torch.Generator) -> torch.Tensor:
    """A (Lq, Lk) additive mask with ``fill`` at random places, key 0 always visible (no empty row)."""
    hidden = torch.rand(lq, lk, generator=g) < 0.4
    hidden[:, 0] = False
    return torch.zeros(lq, lk).masked_fill(hidden, fill)


CASES = {
    "3d": dict(shape=(3,), bias=None, scale=None),
    "4d": dict(shape=(2, 4), bias=None, scale=None),
    "3d-scale1": dict(shape=(3,), bias=None, scale=1.0),
    "4d-scale0.3-bias": dict(shape=(2, 4), bias="dense", scale=0.3),
    "3d-bias-per-sample": dict(shape=(3,), bias="per-sample", scale=None),
    "4d-mask-inf": dict(shape=(2, 4), bias=float("-inf"), scale=None),
    "4d-mask-100": dict(shape=(2, 4), bias=-100.0, scale=0.5),
    "3d-mask-inf": dict(shape=(3,), bias=float("-inf"), scale=1.0),
}


@pytest.mark.parametrize("impl", ATTN_IMPLS)
@pytest.mark.parametrize("case", list(CASES))
def test_attend_matches_the_formula_in_float64(case, impl):
    spec = CASES[case]
    g = torch.Generator().manual_seed(sorted(CASES).index(case))
    lead, lq, lk, d, dv = spec["shape"], 7, 13, 16, 5  # Lq != Lk and dv != d
    q, k, v = (torch.randn(*lead, n, w, generator=g) for n, w in ((lq, d), (lk, d), (lk, dv)))
    if spec["bias"] is None:
        bias = None
    elif spec["bias"] == "dense":
        bias = torch.randn(*lead, lq, lk, generator=g)
    elif spec["bias"] == "per-sample":  # (B, Lq, Lk) with 3-D q: the fused path adds the head axis
        bias = torch.randn(lead[0], lq, lk, generator=g)
    else:
        bias = _mask(lq, lk, spec["bias"], g)  # broadcast over all leading axes
    got = attend(q, k, v, bias=bias, scale=spec["scale"], impl=impl)
    want = numpy_attention(q, k, v, None if bias is None else bias.numpy(), spec["scale"])
    assert got.shape == (*lead, lq, dv) and got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), want, atol=ATOL, rtol=0)


def test_masks_remove_the_hidden_keys():
    """-inf hides a key exactly; -100 leaves it a weight below e^-90 (invisible in fp32)."""
    g = torch.Generator().manual_seed(7)
    q, k = torch.randn(1, 4, 8, generator=g), torch.randn(1, 6, 8, generator=g)
    v = torch.randn(1, 6, 3, generator=g)
    visible = torch.tensor([0, 2, 5])
    for fill in (float("-inf"), -100.0):
        bias = torch.full((4, 6), fill)
        bias[:, visible] = 0.0
        for impl in ATTN_IMPLS:
            got = attend(q, k, v, bias=bias, impl=impl)
            want = numpy_attention(q, k[:, visible], v[:, visible])
            np.testing.assert_allclose(got.numpy(), want, atol=ATOL, rtol=0)


def test_broadcast_keys_and_gradients_agree():
    g = torch.Generator().manual_seed(11)
    q = torch.randn(3, 5, 8, generator=g)
    k, v = torch.randn(1, 9, 8, generator=g), torch.randn(1, 9, 10, generator=g)  # shared by the batch
    grads = {}
    for impl in ATTN_IMPLS:
        leaves = [t.clone().requires_grad_(True) for t in (q, k, v)]
        out = attend(*leaves, scale=1.0, impl=impl)
        out.square().sum().backward()
        grads[impl] = [t.grad for t in leaves]
        np.testing.assert_allclose(out.detach().numpy(), numpy_attention(q, k, v, scale=1.0), atol=ATOL, rtol=0)
    for a, b in zip(grads["fused"], grads["reference"]):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)  # sums of up to 45 products of O(1) terms


@pytest.mark.parametrize("bad", ["flash", "Fused", "", None])
def test_unknown_path_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="attn_impl"):
        check_attn_impl(bad)
    x = torch.randn(1, 2, 4)
    with pytest.raises(ConfigError, match="attn_impl"):
        attend(x, x, x, impl=bad)
    with pytest.raises(ConfigError, match="attn_impl"):
        Attend(bad)
    module = Attend("reference")
    with pytest.raises(ConfigError, match="attn_impl"):
        module.attn_impl = bad
    assert module.attn_impl == "reference"
    with pytest.raises(ValueError):  # ConfigError is a ValueError
        check_attn_impl(bad)


def _count_sdpa_calls(monkeypatch) -> list[int]:
    calls = [0]
    real = F.scaled_dot_product_attention

    def spy(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    return calls


def test_attend_module_follows_attn_impl_changes(monkeypatch):
    calls = _count_sdpa_calls(monkeypatch)
    g = torch.Generator().manual_seed(3)
    q, k, v = torch.randn(2, 3, 6, 8, generator=g), torch.randn(2, 3, 4, 8, generator=g), torch.randn(2, 3, 4, 8)
    module = Attend("fused", dropout=0.5).eval()  # eval: no dropout
    want = numpy_attention(q, k, v)
    np.testing.assert_allclose(module(q, k, v).numpy(), want, atol=ATOL, rtol=0)
    assert calls[0] == 1
    module.attn_impl = "reference"
    np.testing.assert_allclose(module(q, k, v).numpy(), want, atol=ATOL, rtol=0)
    assert calls[0] == 1  # the reference path does not call SDPA
    module.train()
    torch.manual_seed(0)
    dropped = module(q, k, v)
    assert not torch.allclose(dropped, torch.from_numpy(want).float(), atol=1e-3)  # p = 0.5 in training


def test_set_attn_impl_switches_every_attend_of_a_model(monkeypatch):
    model = torch.nn.ModuleDict({
        "temporal": TemporalAttention(video_dim=8, audio_dim=6, d_model=8, video_input_dim=8, audio_input_dim=4,
                                      ffn_dim=16, num_heads=2),
        "latent": LatentTokenAttention(8, 2),
    }).eval()
    attends = [m for m in model.modules() if isinstance(m, Attend)]
    assert len(attends) == 2 * 2 + 2 * 1 + 1  # two 2-layer encoders, two 1-layer decoders, one latent module
    with pytest.raises(ConfigError):
        set_attn_impl(model, "flash")
    assert {m.attn_impl for m in attends} == {"fused"}
    set_attn_impl(model, "reference")
    assert {m.attn_impl for m in attends} == {"reference"}
    calls = _count_sdpa_calls(monkeypatch)
    with torch.no_grad():
        model["temporal"](torch.randn(2, 3, 8), torch.randn(2, 3, 6))
        model["latent"](torch.randn(2, 5, 8), torch.randn(2, 4, 8))
    assert calls[0] == 0
    assert "attend" not in " ".join(model.state_dict())  # the path choice holds no state


def _sdpa_call_sites(folder: Path) -> list[str]:
    """``file:line`` of every call ``….scaled_dot_product_attention(…)`` in the Python files of ``folder``."""
    sites = []
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
                if name == "scaled_dot_product_attention":
                    sites.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    return sites


def test_one_sdpa_call_site():
    """Every attention op goes through ``nn/attention.py``: the only SDPA call of the whole package."""
    sites = _sdpa_call_sites(PACKAGE)
    assert len(sites) == 1 and sites[0].startswith("avperceive/nn/attention.py:"), sites


def test_attn_impl_attribute_reads_and_switches_every_attend():
    """``AttnImplAttribute``: one setting on the holder reaches each ``Attend`` inside; bad values raise."""

    class TwoAttends(nn.Module):
        attn_impl = AttnImplAttribute()

        def __init__(self):
            super().__init__()
            self.first, self.second = Attend("fused"), Attend("fused")

    m = TwoAttends()
    assert m.attn_impl == "fused"
    m.attn_impl = "reference"
    assert (m.first.attn_impl, m.second.attn_impl, m.attn_impl) == ("reference", "reference", "reference")
    with pytest.raises(ConfigError):
        m.attn_impl = "flash"
    assert m.second.attn_impl == "reference"


def test_bfloat16_softmax_statistics_are_float32():
    """The bf16-matmul route takes ``softmax`` on bfloat16 logits: PyTorch's CPU kernel widens to float32
    inside, so the weights equal ``softmax(dtype=float32)`` rounded to bfloat16, bit for bit (exact:
    one rounding of the same float32 value)."""
    g = torch.Generator().manual_seed(0)
    for shape in [(10, 256, 64, 64), (3, 5, 7, 33), (2, 1, 1, 1)]:
        logits = (4 * torch.randn(shape, generator=g)).to(torch.bfloat16)
        widened = torch.softmax(logits, dim=-1, dtype=torch.float32).to(torch.bfloat16)
        assert torch.equal(torch.softmax(logits, dim=-1), widened)
