"""Gradients against float64 finite differences: the adapters, the temporal module, the AVE head; and the
BatchNorm layout hazard of the research code.

``torch.autograd.gradcheck`` compares every analytical partial derivative (inputs and parameters) with
central differences in float64 (eps 1e-6; default tolerances atol 1e-5, rtol 1e-3). Dimensions are tiny so
the full Jacobians take well under a second each. Parameters are drawn at random (gates non-zero, otherwise
the gate-0 initialisation would zero every other gradient) and BatchNorm statistics are non-trivial.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call

from avperceive.nn import DGSCTAdapter, LAVisHAdapter
from avperceive.nn.adapters import GatedBottleneck
from avperceive.nn.heads import AVEHead
from avperceive.nn.temporal import TemporalAttention

# BatchNorm folding into the bottleneck matmuls happens in eval mode only (training uses batch statistics),
# switched by GatedBottleneck.fold_bn; without that switch (older code) it was tied to the fused path.
HAS_FOLD_SWITCH = hasattr(GatedBottleneck(8, 2, 2), "fold_bn")
FOLD = [True, False] if HAS_FOLD_SWITCH else [None]


def _expect_folded(attn_impl: str, mode: str, fold_bn: bool | None) -> bool:
    return mode == "eval" and (attn_impl == "fused" if fold_bn is None else fold_bn)
MODES = ["eval", "train"]
IMPLS = ["fused", "reference"]


def _randomise(module: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    module.double()
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g, dtype=torch.float64) * 0.3)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g, dtype=torch.float64) + 0.5)
    return module


def _configure(module: nn.Module, attn_impl: str, mode: str, fold_bn: bool | None) -> nn.Module:
    if hasattr(module, "set_attn_impl"):
        module.set_attn_impl(attn_impl)
    module.train(mode == "train")
    if fold_bn is not None:
        for m in module.modules():
            if isinstance(m, GatedBottleneck):
                m.fold_bn = fold_bn
    return module


def _gradcheck(module: nn.Module, inputs: tuple[torch.Tensor, ...], select=lambda out: out, fast: bool = False) -> None:
    """gradcheck of ``select(module(*inputs))`` w.r.t. the inputs and every trainable parameter.

    ``fast``: gradcheck's fast mode, which compares ``vᵀ J u`` for random ``u``, ``v`` per input tensor
    instead of the full Jacobian (for the larger temporal module and head; any wrong block of J shows).
    """
    names = [n for n, p in module.named_parameters() if p.requires_grad]
    params = [p.detach().clone().requires_grad_(True) for n, p in module.named_parameters() if p.requires_grad]
    leaves = [x.detach().clone().requires_grad_(True) for x in inputs]

    def f(*tensors):
        own = dict(zip(names, tensors[len(leaves):]))
        return select(functional_call(module, own, tuple(tensors[: len(leaves)])))

    assert torch.autograd.gradcheck(f, (*leaves, *params), eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=fast)


def _tokens(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _bn_is_folded(module: nn.Module, x, y) -> bool:
    """Whether BatchNorm ran as a module (unfolded) in a forward pass."""
    calls = []
    hooks = [m.register_forward_hook(lambda *a: calls.append(1)) for m in module.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        module(x, y)
    for h in hooks:
        h.remove()
    return not calls


@pytest.mark.parametrize("fold_bn", FOLD)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("attn_impl", IMPLS)
def test_dgsct_adapter_gradients_match_finite_differences(attn_impl, mode, fold_bn):
    # own stream N=4 tokens x C=8, other stream M=3 x 6, K=2 latents, C/r = 4, G = 2
    adapter = _configure(_randomise(DGSCTAdapter(8, 4, 6, 3, num_latents=2, reduction=2, groups=2), 0),
                         attn_impl, mode, fold_bn)
    x, y = _tokens(1, 2, 4, 8), _tokens(2, 2, 3, 6)
    assert _bn_is_folded(adapter, x, y) == _expect_folded(attn_impl, mode, fold_bn)  # the path under test
    # both outputs (the residual and the pooling map); the full Jacobian for the unfolded training path (batch
    # statistics: where the research code's gradients go wrong), gradcheck's fast mode for the other paths
    _gradcheck(adapter, (x, y), fast=(mode, fold_bn) != ("train", False))


@pytest.mark.parametrize("fold_bn", FOLD)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("attn_impl", IMPLS)
def test_lavish_adapter_gradients_match_finite_differences(attn_impl, mode, fold_bn):
    adapter = _configure(_randomise(LAVisHAdapter(8, num_latents=2, reduction=2, groups=2), 3), attn_impl, mode,
                         fold_bn)
    x, y = _tokens(4, 2, 4, 8), _tokens(5, 2, 3, 8)
    assert _bn_is_folded(adapter, x, y) == _expect_folded(attn_impl, mode, fold_bn)
    _gradcheck(adapter, (x, y))


def _temporal_kwargs() -> dict:
    return dict(video_dim=6, audio_dim=5, d_model=4, video_input_dim=4, audio_input_dim=3, ffn_dim=6, num_heads=2,
                num_encoder_layers=1, num_decoder_layers=1)


@pytest.mark.parametrize("attn_impl", IMPLS)
def test_temporal_attention_gradients_match_finite_differences(attn_impl):
    # dropout off (train-mode dropout is random; eval mode is what gradcheck can compare)
    module = _randomise(TemporalAttention(**_temporal_kwargs(), dropout=0.0, video_dropout=0.0, attn_impl=attn_impl), 6)
    module.train()
    video, audio = _tokens(7, 2, 3, 6), _tokens(8, 2, 3, 5)
    outputs = ("video_feature", "audio_feature", "audio_visual_gate")
    _gradcheck(module, (video, audio), lambda out: tuple(out[k] for k in outputs), fast=True)


@pytest.mark.parametrize("attn_impl", IMPLS)
def test_ave_head_gradients_match_finite_differences(attn_impl):
    kw = _temporal_kwargs()
    kw.pop("num_encoder_layers"), kw.pop("num_decoder_layers")
    head = _randomise(AVEHead(**kw, num_classes=3, attn_impl=attn_impl), 9).eval()
    video, audio = _tokens(10, 2, 5, 6), _tokens(11, 2, 5, 5)  # T = 5 >= top_k = 4
    _gradcheck(head, (video, audio), lambda out: (out["is_event"], out["event_scores"], out["av_score"]), fast=True)


# -- the BatchNorm layout hazard ----------------------------------------------------------------------------
# On torch CPU (measured on 2.13), BatchNorm2d's backward returns wrong input/weight/bias gradients when its
# grad_output is a permuted [B, C, N, 1] view with strides (N*C, 1, C, 1) while its input is contiguous.
# DG-SCT's adapter produces exactly that: bn2 -> squeeze(-1) -> permute(0, 2, 1) -> LayerNorm. So fine-tuning
# with the research code gets wrong adapter gradients. Our adapters must never hand BatchNorm that layout.


def _hazardous(grad_output: torch.Tensor, inp: torch.Tensor) -> bool:
    """A 4-D gradient whose memory layout differs from the (4-D) input's: the case torch mishandles."""
    if grad_output.dim() != 4:
        return False
    formats = (torch.contiguous_format, torch.channels_last)
    return any(grad_output.is_contiguous(memory_format=f) != inp.is_contiguous(memory_format=f) for f in formats)


class _ResearchCodeBottleneckTail(nn.Module):
    """The research code's layout: 1x1 Conv2d -> BatchNorm2d on [B, C, N, 1] -> squeeze -> permute -> LayerNorm."""

    def __init__(self, dim: int):
        super().__init__()
        self.up_sampler = nn.Conv2d(dim, dim, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(dim)
        self.ln_post = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [B, N, C]
        z = self.bn2(self.up_sampler(x.permute(0, 2, 1).unsqueeze(-1)))
        return self.ln_post(z.squeeze(-1).permute(0, 2, 1))


def _record_bn_layouts(module: nn.Module) -> tuple[list[tuple[str, bool]], list]:
    """Hooks on every BatchNorm: (name, hazardous?) for each backward call."""
    seen, inputs, hooks = [], {}, []
    for name, m in module.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            hooks.append(m.register_forward_hook(lambda mod, args, out, name=name: inputs.__setitem__(name, args[0])))
            hooks.append(m.register_full_backward_hook(
                lambda mod, gin, gout, name=name: seen.append((name, _hazardous(gout[0], inputs[name])))))
    return seen, hooks


def test_research_code_layout_is_the_hazard_and_torch_behaviour_is_recorded():
    torch.manual_seed(0)
    tail = _randomise(_ResearchCodeBottleneckTail(6), 12).train()
    seen, hooks = _record_bn_layouts(tail)
    x = _tokens(13, 2, 5, 6).requires_grad_(True)
    (tail(x) * _tokens(14, 2, 5, 6)).sum().backward()
    for h in hooks:
        h.remove()
    assert seen == [("bn2", True)]  # the guard recognises the research code's layout
    # Informational (no assert: a future torch may fix it): does this torch get that layout wrong?
    bn = tail.bn2
    z = torch.randn(2, 6, 5, 1, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 5, 6, dtype=torch.float64).permute(0, 2, 1).unsqueeze(-1)
    assert g.stride() == (30, 1, 6, 1) and _hazardous(g, z)
    grads = []
    for grad_output in (g, g.contiguous()):
        z.grad, bn.bias.grad = None, None
        bn(z).backward(grad_output)
        grads.append(bn.bias.grad.clone())
    wrong = not torch.allclose(grads[0], grads[1], rtol=1e-6, atol=1e-9)
    fd_ok = torch.autograd.gradcheck(lambda t: tail(t), (x.detach().clone().requires_grad_(True),),
                                     raise_exception=False)
    print(f"torch {torch.__version__}: BatchNorm2d backward on the permuted layout is "
          f"{'WRONG' if wrong else 'right'} (bias grad {grads[0].tolist()} vs {grads[1].tolist()}); "
          f"research-code layout vs finite differences: {'agrees' if fd_ok else 'DISAGREES'}")


@pytest.mark.parametrize("fold_bn", FOLD)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("attn_impl", IMPLS)
@pytest.mark.parametrize("cls", ["dgsct", "lavish"])
def test_adapters_never_feed_batchnorm_the_hazardous_layout(cls, attn_impl, mode, fold_bn):
    if cls == "dgsct":
        adapter, y = DGSCTAdapter(8, 4, 6, 3, num_latents=2, reduction=2, groups=2), _tokens(2, 2, 3, 6)
    else:
        adapter, y = LAVisHAdapter(8, num_latents=2, reduction=2, groups=2), _tokens(5, 2, 3, 8)
    adapter = _configure(_randomise(adapter, 15), attn_impl, mode, fold_bn)
    seen, hooks = _record_bn_layouts(adapter)
    x = _tokens(1, 2, 4, 8).requires_grad_(True)
    out = adapter(x, y)
    residual = out[0] if isinstance(out, tuple) else out
    (residual * _tokens(16, *residual.shape)).sum().backward()
    for h in hooks:
        h.remove()
    assert not any(bad for _, bad in seen), seen
    # unfolded BatchNorm runs as a module and is seen by the hooks (bn_down, bn_up); folded, it is not there
    assert len(seen) == (0 if _expect_folded(attn_impl, mode, fold_bn) else 2)
