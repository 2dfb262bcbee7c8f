"""The inference memo of window biases (:mod:`avperceive.nn.weight_cache`): stale values are never used.

Truth: the same model with the memo cleared (every bias recomputed from the weights).
"""

from __future__ import annotations

import torch

from avperceive.backbones.swinv2 import SwinV2
from avperceive.nn import clear_weight_cache


def _model() -> SwinV2:
    torch.manual_seed(0)
    return SwinV2(img_size=48, embed_dim=16, depths=(2, 2), num_heads=(2, 4), window_size=6).eval()


def _fresh(model: SwinV2, x: torch.Tensor) -> torch.Tensor:
    clear_weight_cache(model)
    with torch.no_grad():
        return model.forward_features(x)


def test_memo_follows_in_place_edits_loads_and_casts():
    model, x = _model(), torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        first = model.forward_features(x)
        assert torch.equal(model.forward_features(x), first)  # memo hit: bit-identical
        model.stages[0].blocks[1].attn.cpb_mlp[2].weight.mul_(3.0)  # in-place edit bumps the version
        edited = model.forward_features(x)
    assert not torch.equal(edited, first)
    assert torch.equal(edited, _fresh(model, x))
    model.load_state_dict(_model().state_dict())  # load: back to the first weights
    with torch.no_grad():
        assert torch.equal(model.forward_features(x), first)
        low = model.to(torch.bfloat16).forward_features(x.bfloat16())  # cast: new tensors, new memo
    assert low.dtype == torch.bfloat16
    assert torch.equal(low, _fresh(model, x.bfloat16()))


def test_no_memo_while_training_the_bias():
    model, x = _model(), torch.randn(1, 3, 48, 48)
    model.train()
    model.forward_features(x).square().mean().backward()
    grad = model.stages[0].blocks[1].attn.cpb_mlp[0].weight.grad
    assert grad is not None and grad.abs().sum() > 0  # the bias stayed in the autograd graph


def test_dgsct_adapter_memo_follows_edits_and_matches_the_reference_path():
    """The fused adapter's weight-only factors (W_ch 1, L W_ch, mean_n W_tok, ...) are memoised too.

    Truth: the reference path (the equations in order, nothing memoised) on the same weights.
    """
    from avperceive.nn import DGSCTAdapter

    torch.manual_seed(0)
    m = DGSCTAdapter(16, 12, 8, 10, num_latents=4).eval()
    with torch.no_grad():
        m.latent.gate.fill_(0.5)
        m.bottleneck.gate.fill_(0.5)
    x, y = torch.randn(2, 12, 16), torch.randn(2, 10, 8)

    def both():
        m.set_attn_impl("fused")
        fused = m(x, y)
        m.set_attn_impl("reference")
        return fused, m(x, y)

    with torch.inference_mode():
        (f1, p1), (r1, q1) = both()
        (f2, _), _ = both()  # memo hit: bit-identical
        m.token_proj.bias.add_(1.0)  # in-place edit of a source of the memo
        m.channel_proj.weight.mul_(-2.0)
        (f3, p3), (r3, q3) = both()
    assert torch.equal(f1, f2)
    # fused vs reference: the same equations reassociated, float32 (observed ~1e-7 relative)
    for got, want in ((f1, r1), (p1, q1), (f3, r3), (p3, q3)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(f3, f1)  # the edit reached the fused path
