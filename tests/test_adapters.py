"""DG-SCT / LAVisH adapters and the latent-token attention: golden parity, fused == reference, validation."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from einops import rearrange

from avperceive.hub import convert_checkpoint
from avperceive.hub.mixin import load_state_dict_strict
from avperceive.nn import (
    AdapterBank,
    DGSCTAdapter,
    GatedBottleneck,
    LatentTokenAttention,
    LAVisHAdapter,
    latent_attention_pair,
    lavish_adapter_pair,
)

ATOL = 1e-5
IMPLS = ("reference", "fused")


def to_tokens(t: torch.Tensor) -> torch.Tensor:
    """Reference layout ``[B, C, N, 1]`` -> ours ``[B, N, C]``."""
    return rearrange(t, "b c n 1 -> b n c")


def build_dgsct(weights: dict[str, torch.Tensor], meta_config: dict) -> DGSCTAdapter:
    report = convert_checkpoint("dgsct-adapter", weights, return_report=True)
    cfg = report.config
    # every dimension comes from the case JSON; the converter's inferred config must agree with it
    assert (cfg["dim"], cfg["tokens"]) == (meta_config["C_x"], meta_config["N_x"])
    assert (cfg["other_dim"], cfg["other_tokens"]) == (meta_config["C_y"], meta_config["N_y"])
    assert cfg["num_latents"] == meta_config["num_tk"]
    assert (cfg["reduction"], cfg["groups"]) == (meta_config["reduction_factor"], meta_config["num_conv_group"])
    assert set(report.dropped) == {"gate_tk"}
    m = DGSCTAdapter(
        meta_config["C_x"], meta_config["N_x"], meta_config["C_y"], meta_config["N_y"], meta_config["num_tk"],
        meta_config["reduction_factor"], meta_config["num_conv_group"],
    )
    load_state_dict_strict(m, report.state_dict)
    return m.eval()


@pytest.mark.parametrize("fold_bn", [True, False])
@pytest.mark.parametrize("attn_impl", IMPLS)
@pytest.mark.golden_cases("*_dgsct_adapter")
def test_dgsct_adapter_parity(golden_case, attn_impl, fold_bn):
    m = build_dgsct(golden_case.weights, golden_case.meta["config"])
    m.attn_impl = attn_impl
    m.fold_bn = fold_bn
    with torch.no_grad():
        residual, pooling_map = m(to_tokens(golden_case.inputs["x"]), to_tokens(golden_case.inputs["y"]))
    want_r, want_p = golden_case.outputs["residual"], golden_case.outputs["spatial_attention"]
    d_r = (rearrange(residual, "b n c -> b c n 1") - want_r).abs().max().item()
    d_p = (rearrange(pooling_map, "b n -> b 1 n") - want_p).abs().max().item()
    print(f"{golden_case.stem} [{attn_impl}] max|diff| residual {d_r:.3e} spatial map {d_p:.3e}")
    assert residual.shape == to_tokens(want_r).shape
    assert d_r <= ATOL and d_p <= ATOL


@pytest.mark.parametrize("fold_bn", [True, False])
@pytest.mark.parametrize("attn_impl", IMPLS)
@pytest.mark.golden_cases("*_lavish_adapter")
def test_lavish_adapter_parity(golden_case, attn_impl, fold_bn):
    cfg = golden_case.meta["config"]
    report = convert_checkpoint("lavish-adapter", golden_case.weights, return_report=True)
    assert report.config == {
        "dim": cfg["C"], "num_latents": cfg["num_tokens"], "reduction": cfg["reduction_factor"],
        "groups": cfg["num_conv_group"],
    }
    m = LAVisHAdapter(
        cfg["C"], cfg["num_tokens"], cfg["reduction_factor"], cfg["num_conv_group"],
        attn_impl=attn_impl, fold_bn=fold_bn,
    )
    load_state_dict_strict(m, report.state_dict)
    m.eval()
    with torch.no_grad():
        residual = m(to_tokens(golden_case.inputs["x"]), to_tokens(golden_case.inputs["y"]))
    d = (rearrange(residual, "b n c -> b c n 1") - golden_case.outputs["residual"]).abs().max().item()
    print(f"{golden_case.stem} [{attn_impl}] max|diff| residual {d:.3e}")
    assert d <= ATOL


@pytest.mark.parametrize("attn_impl", IMPLS)
@pytest.mark.golden_cases("*_eopma_mix")
def test_eopma_mix_adapter_parity(golden_case, attn_impl):
    """EoPMA at one position: mix = (1 - β)·causal(x, y) + β·reduced(x, y), map from the causal adapter."""
    x, y = to_tokens(golden_case.inputs["x"]), to_tokens(golden_case.inputs["y"])
    members = {}
    for name in ("causal", "reduced"):
        weights = {k[len(name) + 1:]: v for k, v in golden_case.weights.items() if k.startswith(name + ".")}
        members[name] = build_dgsct(weights, golden_case.meta["config"]).set_attn_impl(attn_impl)
    with torch.no_grad():
        r_c, map_c = members["causal"](x, y)
        r_r, _ = members["reduced"](x, y)
    worst = 0.0
    checks = {"residual_causal": r_c, "residual_reduced": r_r}
    for beta in golden_case.meta["forward"]["betas"]:
        checks["mix_beta_" + f"{beta:g}".replace(".", "p")] = beta * r_r + (1 - beta) * r_c
    for name, got in checks.items():
        d = (rearrange(got, "b n c -> b c n 1") - golden_case.outputs[name]).abs().max().item()
        worst = max(worst, d)
    d_map = (rearrange(map_c, "b n -> b 1 n") - golden_case.outputs["spatial_attention_causal"]).abs().max().item()
    print(f"{golden_case.stem} [{attn_impl}] max|diff| residuals/mixes {worst:.3e} spatial map {d_map:.3e}")
    assert len(checks) == 2 + len(golden_case.meta["forward"]["betas"]) >= 4
    assert worst <= ATOL and d_map <= ATOL


# -- fused == reference on random, non-trivial weights ----------------------------------------------------


def randomise(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            noise = torch.randn(p.shape, generator=g)
            p.copy_(0.5 + 0.1 * noise if p.numel() == 1 else p + 0.2 * noise)
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.2 * torch.randn(b.shape, generator=g))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g))
    return module


def both_paths(module, *inputs, train: bool = False):
    outs = {}
    for impl in IMPLS:
        m = copy.deepcopy(module).train(train)
        m.attn_impl = impl
        out = m(*[t.clone().requires_grad_(True) for t in inputs])
        first = out[0] if isinstance(out, tuple) else out
        first.square().sum().backward()
        outs[impl] = (out, {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}, m)
    return outs


def test_latent_attention_fused_equals_reference():
    torch.manual_seed(1)
    m = randomise(LatentTokenAttention(24, 4))
    x, y = torch.randn(3, 11, 24), torch.randn(3, 7, 24)
    outs = both_paths(m, x, y)
    d = (outs["reference"][0] - outs["fused"][0]).abs().max().item()
    g = max((outs["reference"][1][k] - outs["fused"][1][k]).abs().max().item() for k in outs["reference"][1])
    print(f"latent attention fused vs reference max|diff| {d:.2e}, grads {g:.2e}")
    assert d <= ATOL and g <= 1e-4
    # the equations, written out once more
    with torch.no_grad():
        lat = m.latents + torch.softmax(m.latents @ y.transpose(1, 2), -1) @ y
        want = m.gate * torch.softmax(x @ lat.transpose(1, 2), -1) @ lat
    assert torch.allclose(outs["fused"][0], want, atol=ATOL)


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("sizes", [(32, 10, 16, 14), (8, 20, 16, 6)], ids=["tokens<dim", "tokens>dim"])
def test_dgsct_adapter_fused_equals_reference(train, sizes):
    torch.manual_seed(2)
    dim, tokens, other_dim, other_tokens = sizes
    m = randomise(DGSCTAdapter(dim, tokens, other_dim, other_tokens, num_latents=4, reduction=4, groups=2))
    x, y = torch.randn(3, tokens, dim), torch.randn(3, other_tokens, other_dim)
    outs = both_paths(m, x, y, train=train)
    (r_ref, p_ref), (r_fu, p_fu) = outs["reference"][0], outs["fused"][0]
    d = max((r_ref - r_fu).abs().max().item(), (p_ref - p_fu).abs().max().item())
    grads_ref, grads_fu = outs["reference"][1], outs["fused"][1]
    assert set(grads_ref) == set(grads_fu)
    g = max((grads_ref[k] - grads_fu[k]).abs().max().item() for k in grads_ref)
    print(f"DG-SCT adapter (train={train}) fused vs reference max|diff| {d:.2e}, grads {g:.2e}")
    assert d <= ATOL and g <= 1e-4
    assert torch.allclose(p_fu.sum(-1), torch.ones(3), atol=1e-6)
    if train:  # BatchNorm running statistics move the same way on both paths
        bn_ref, bn_fu = outs["reference"][2].bottleneck.bn_up, outs["fused"][2].bottleneck.bn_up
        assert torch.allclose(bn_ref.running_mean, bn_fu.running_mean, atol=1e-6)
        assert not torch.allclose(bn_fu.running_mean, m.bottleneck.bn_up.running_mean)


@pytest.mark.parametrize("train", [False, True])
def test_lavish_adapter_fused_equals_reference(train):
    torch.manual_seed(3)
    m = randomise(LAVisHAdapter(32, num_latents=3, reduction=8, groups=2))
    x, y = torch.randn(2, 9, 32), torch.randn(2, 13, 32)
    outs = both_paths(m, x, y, train=train)
    d = (outs["reference"][0] - outs["fused"][0]).abs().max().item()
    print(f"LAVisH adapter (train={train}) fused vs reference max|diff| {d:.2e}")
    assert d <= ATOL


@pytest.mark.parametrize("attn_impl", IMPLS)
def test_fresh_adapters_are_identity_residuals(attn_impl):
    """Both gates start at 0: a fresh adapter adds nothing (the frozen host is unchanged)."""
    x, y = torch.randn(2, 6, 16), torch.randn(2, 5, 8)
    r, p = DGSCTAdapter(16, 6, 8, 5, num_latents=4, attn_impl=attn_impl).eval()(x, y)
    assert torch.count_nonzero(r) == 0 and p.shape == (2, 6)
    r2 = LAVisHAdapter(16, attn_impl=attn_impl).eval()(x, torch.randn(2, 5, 16))
    assert torch.count_nonzero(r2) == 0
    lat = LatentTokenAttention(16, 4, attn_impl=attn_impl)
    assert torch.count_nonzero(lat(x, torch.randn(2, 5, 16))) == 0
    assert 0.0 <= lat.latents.min() and lat.latents.max() < 1.0  # U[0,1) like the AVE reference


def test_input_validation_names_expected_shape():
    m = DGSCTAdapter(16, 6, 8, 5, num_latents=4)
    with pytest.raises(ValueError, match=r"\[B, 6, 16\]"):
        m(torch.randn(2, 7, 16), torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match=r"\[B, 5, 8\]"):
        m(torch.randn(2, 6, 16), torch.randn(2, 5, 9))
    with pytest.raises(ValueError, match=r"\[B, 6, 16\]"):
        m(torch.randn(2, 16, 6, 1), torch.randn(2, 5, 8))  # the reference's [B, C, N, 1] layout
    with pytest.raises(ValueError, match="dtype"):
        m(torch.randn(2, 6, 16), torch.randn(2, 5, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match="batch"):
        m(torch.randn(2, 6, 16), torch.randn(3, 5, 8))
    with pytest.raises(ValueError, match=r"\[B, N, 16\]"):
        LAVisHAdapter(16)(torch.randn(2, 6, 16), torch.randn(2, 5, 12))
    with pytest.raises(ValueError, match="attn_impl"):
        m.attn_impl = "flash"


def test_bf16_autocast_and_float64():
    torch.manual_seed(4)
    m = randomise(DGSCTAdapter(32, 8, 16, 6, num_latents=4)).eval()
    x, y = torch.randn(2, 8, 32), torch.randn(2, 6, 16)
    with torch.no_grad():
        ref, _ = m(x, y)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low, low_map = m(x, y)
        m64 = copy.deepcopy(m).double()
        hi, _ = m64(x.double(), y.double())
    assert torch.isfinite(low.float()).all() and low_map.shape == (2, 8)
    rel = ((low.float() - ref).norm() / ref.norm()).item()
    print(f"bf16 autocast relative error {rel:.3e}; float64 vs float32 max|diff| {(hi - ref).abs().max().item():.2e}")
    assert rel < 0.1
    assert hi.dtype == torch.float64 and torch.allclose(hi.float(), ref, atol=1e-4)


@pytest.mark.parametrize("same_shape", [True, False])
def test_latent_attention_pair_batches_both_directions(same_shape):
    torch.manual_seed(5)
    first, second = randomise(LatentTokenAttention(16, 3), 1), randomise(LatentTokenAttention(16, 3), 2)
    a = torch.randn(2, 12, 16)
    v = torch.randn(2, 12 if same_shape else 7, 16)
    with torch.no_grad():
        got_a, got_v = latent_attention_pair(first, second, a, v)
        want_a, want_v = first(a, v), second(v, a)
        first.attn_impl = second.attn_impl = "reference"
        ref_a, ref_v = first(a, v), second(v, a)
    d = max((got_a - ref_a).abs().max().item(), (got_v - ref_v).abs().max().item())
    print(f"latent attention pair vs reference max|diff| {d:.2e}")
    assert torch.allclose(got_a, want_a, atol=1e-6) and torch.allclose(got_v, want_v, atol=1e-6)
    assert d <= ATOL and got_v.shape == v.shape


@pytest.mark.parametrize("same_shape", [True, False])
def test_lavish_adapter_pair_equals_two_calls(same_shape):
    torch.manual_seed(6)
    first, second = randomise(LAVisHAdapter(16, num_latents=3, reduction=4), 1), randomise(LAVisHAdapter(16, 3, 4), 2)
    a = torch.randn(2, 12, 16)
    v = torch.randn(2, 12 if same_shape else 7, 16)
    for impl in IMPLS:
        with torch.no_grad():
            first.attn_impl = second.attn_impl = impl
            got_a, got_v = lavish_adapter_pair(first.eval(), second.eval(), a, v)
            want_a, want_v = first(a, v), second(v, a)
        # the batched latent attention runs the same kernels over 2B rows: equal to float rounding
        torch.testing.assert_close(got_a, want_a, atol=1e-6, rtol=0)
        torch.testing.assert_close(got_v, want_v, atol=1e-6, rtol=0)


# -- the bottleneck's BatchNorm folding: its own switch, not attn_impl -----------------------------------


def numpy_bottleneck(m: GatedBottleneck, x: torch.Tensor) -> np.ndarray:
    """Eval-mode ``g · LN_post(BN(Conv_G(ReLU(BN(Conv_G(LN_before(x)))))))`` in float64 numpy."""
    p = {k: t.detach().double().numpy() for k, t in m.state_dict().items()}
    h = x.double().numpy()  # [B, N, C]

    def layer_norm(t, w, b, eps):
        mu, var = t.mean(-1, keepdims=True), t.var(-1, keepdims=True)
        return (t - mu) / np.sqrt(var + eps) * w + b

    def grouped(t, w):  # 1x1 conv with G groups: out group j reads in group j
        ins, outs = np.split(t, m.groups, axis=-1), np.split(w, m.groups, axis=0)
        return np.concatenate([i @ o.T for i, o in zip(ins, outs)], axis=-1)

    def batch_norm(t, name, eps):
        return (t - p[f"{name}.running_mean"]) / np.sqrt(p[f"{name}.running_var"] + eps) * p[f"{name}.weight"] + p[
            f"{name}.bias"
        ]

    h = layer_norm(h, p["norm_in.weight"], p["norm_in.bias"], m.norm_in.eps)
    h = np.maximum(batch_norm(grouped(h, p["down_weight"]), "bn_down", m.bn_down.eps), 0.0)
    h = batch_norm(grouped(h, p["up_weight"]), "bn_up", m.bn_up.eps)
    return p["gate"] * layer_norm(h, p["norm_out.weight"], p["norm_out.bias"], m.norm_out.eps)


@pytest.mark.parametrize("fold_bn", [True, False])
def test_bottleneck_matches_the_formula_in_float64(fold_bn):
    torch.manual_seed(7)
    m = randomise(GatedBottleneck(32, reduction=4, groups=2, fold_bn=fold_bn)).eval()
    x = torch.randn(3, 10, 32)
    with torch.no_grad():
        got = m(x)
    # fp32 through two LayerNorms and two 32-wide matmuls of O(1) values: ~1e-6 from float64
    np.testing.assert_allclose(got.numpy(), numpy_bottleneck(m, x), atol=1e-5, rtol=0)


def test_bottleneck_folding_equals_the_plain_formula_in_training():
    """Batch statistics cannot be folded: both settings normalise with them and update the running ones."""
    torch.manual_seed(8)
    m = randomise(GatedBottleneck(32, reduction=4, groups=2))
    x = torch.randn(3, 10, 32)
    runs = {}
    for fold_bn in (True, False):
        c = copy.deepcopy(m).train()
        c.fold_bn = fold_bn
        xi = x.clone().requires_grad_(True)
        out = c(xi)
        out.square().sum().backward()
        runs[fold_bn] = (out, xi.grad, c.bn_up.running_mean, c.bn_down.running_var)
    for a, b in zip(runs[True], runs[False]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    assert not torch.allclose(runs[True][2], m.bn_up.running_mean)  # the running statistics moved


def test_attn_impl_and_fold_bn_are_independent_switches():
    ad = DGSCTAdapter(16, 6, 8, 5, num_latents=4)
    ad.attn_impl = "reference"
    assert ad.fold_bn is True and ad.bottleneck.fold_bn is True and ad.latent.attn_impl == "reference"
    ad.set_fold_bn(False)
    assert ad.attn_impl == "reference" and ad.bottleneck.fold_bn is False
    bank = AdapterBank.lavish([16, 16], fold_bn=False, attn_impl="reference")
    assert bank.fold_bn is False and bank.attn_impl == "reference"
    bank.set_attn_impl("fused")
    assert {a.fold_bn for _, a in bank.named_adapters()} == {False}
    bank.fold_bn = True
    assert {a.bottleneck.fold_bn for _, a in bank.named_adapters()} == {True}
    assert {a.attn_impl for _, a in bank.named_adapters()} == {"fused"}
