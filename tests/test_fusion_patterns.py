"""CrossModalAttention against a numpy formula; FusionTransformer patterns: both attention paths,
analytic parameter counts, the interaction structure each pattern promises, padding; JointSpace."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avperceive.errors import ConfigError
from avperceive.nn import (
    FUSION_PATTERNS,
    ConcatFusion,
    CrossModalAttention,
    FusionOutput,
    FusionTransformer,
    JointSpace,
    projection_head,
)

# fused (SDPA) vs reference attention in float32 on O(1) activations: differ by summation order only
PATH_TOL = dict(rtol=1e-5, atol=1e-5)


def _numpy_cross_attention(m: CrossModalAttention, x, y, mask):
    w = {k: p.detach().double().numpy() for k, p in m.named_parameters()}
    x, y = x.double().numpy(), y.double().numpy()
    q = x @ w["to_q.weight"].T + w["to_q.bias"]
    k = y @ w["to_k.weight"].T + w["to_k.bias"]
    v = y @ w["to_v.weight"].T + w["to_v.bias"]
    h, d = m.num_heads, m.head_dim
    out = np.zeros_like(q)
    for b in range(x.shape[0]):
        for head in range(h):
            sl = slice(head * d, (head + 1) * d)
            logits = q[b, :, sl] @ k[b, :, sl].T / np.sqrt(d)
            if mask is not None:
                logits[:, ~mask[b].numpy()] = -np.inf
            p = np.exp(logits - logits.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            out[b, :, sl] = p @ v[b, :, sl]
    return out @ w["proj.weight"].T + w["proj.bias"]


@pytest.mark.parametrize("impl", ["fused", "reference"])
def test_cross_modal_attention_matches_numpy(impl):
    torch.manual_seed(0)
    m = CrossModalAttention(12, num_heads=3, context_dim=8, attn_impl=impl)
    x, y = torch.randn(2, 5, 12), torch.randn(2, 7, 8)
    mask = torch.tensor([[True] * 7, [True, True, True, False, True, False, False]])
    got = m(x, y, mask)
    np.testing.assert_allclose(got.detach().numpy(), _numpy_cross_attention(m, x, y, mask), rtol=1e-5, atol=1e-5)


def test_cross_modal_attention_paths_agree_and_validate():
    torch.manual_seed(1)
    m = CrossModalAttention(16, num_heads=4)
    x = torch.randn(3, 6, 16)
    fused = m(x)
    m.attn_impl = "reference"
    torch.testing.assert_close(m(x), fused, **PATH_TOL)
    with pytest.raises(ConfigError):
        CrossModalAttention(10, num_heads=3)
    with pytest.raises(ConfigError):
        CrossModalAttention(8, num_heads=2, attn_impl="flash")


def _block_params(d: int, ratio: float = 4.0) -> int:
    h = int(d * ratio)
    return 3 * 2 * d + 4 * (d * d + d) + (d * h + h) + (h * d + d)  # 3 LayerNorms, q/k/v/out, MLP


@pytest.mark.parametrize("pattern", FUSION_PATTERNS)
def test_parameter_counts_are_analytic(pattern):
    d, depth, nb = 16, 4, 3
    m = FusionTransformer(d, depth=depth, num_heads=2, pattern=pattern, fusion_layer=1, num_bottlenecks=nb)
    blocks = {
        "early_sum": depth,
        "early_concat": depth,
        "hierarchical_multi_single": 2 * 1 + 3,
        "hierarchical_single_multi": 1 + 2 * 3,
        "cross_attention": 2 * depth,
        "bottleneck": 2 * depth,
    }[pattern]
    extra = 2 * d + 2 * d  # modality embeddings + final LayerNorm
    extra += 2 if pattern == "early_sum" else 0
    extra += nb * d if pattern == "bottleneck" else 0
    assert sum(p.numel() for p in m.parameters()) == blocks * _block_params(d) + extra


@pytest.mark.parametrize("pattern", FUSION_PATTERNS)
def test_patterns_shapes_and_both_paths(pattern):
    torch.manual_seed(2)
    m = FusionTransformer(16, depth=2, num_heads=2, pattern=pattern).eval()
    a, v = torch.randn(2, 6, 16), torch.randn(2, 6 if pattern == "early_sum" else 4, 16)
    out = m(a, v)
    assert isinstance(out, FusionOutput) and out.pooled.shape == (2, 16)
    if pattern == "early_sum":
        assert out.tokens.shape == (2, 6, 16) and out.audio is None
    else:
        assert out.tokens.shape == (2, 10, 16) and out.audio.shape == (2, 6, 16) and out.visual.shape == (2, 4, 16)
    m.attn_impl = "reference"
    torch.testing.assert_close(m(a, v).tokens, out.tokens, **PATH_TOL)


def _changes(m, a, v, which: str) -> tuple[bool, bool]:
    """Does perturbing `which` stream change the audio / visual outputs?"""
    base = m(a, v)
    a2, v2 = (a + torch.randn_like(a), v) if which == "audio" else (a, v + torch.randn_like(v))
    new = m(a2, v2)
    return (
        not torch.allclose(base.audio, new.audio, atol=1e-6),
        not torch.allclose(base.visual, new.visual, atol=1e-6),
    )


def test_interaction_structure():
    torch.manual_seed(3)
    a, v = torch.randn(1, 5, 8), torch.randn(1, 3, 8)
    # no fusion layer reached: the streams never meet
    for pattern in ("hierarchical_multi_single", "bottleneck"):
        isolated = FusionTransformer(8, depth=2, num_heads=2, pattern=pattern, fusion_layer=2).eval()
        assert _changes(isolated, a, v, "visual") == (False, True)
        # hierarchical: one shared layer mixes the streams; MBT: the bottleneck needs two fusion layers,
        # one to take the visual tokens into z and one for the audio tokens to read z
        fused = FusionTransformer(8, depth=2, num_heads=2, pattern=pattern, fusion_layer=1 if pattern[0] == "h" else 0)
        assert _changes(fused.eval(), a, v, "visual") == (True, True)
    one_exchange = FusionTransformer(8, depth=2, num_heads=2, pattern="bottleneck", fusion_layer=1).eval()
    assert _changes(one_exchange, a, v, "visual") == (False, True)
    # pure cross-attention: audio token 0 depends on the visual stream but not on the other audio tokens
    cross = FusionTransformer(8, depth=1, num_heads=2, pattern="cross_attention").eval()
    base = cross(a, v).audio[:, 0]
    a_other = a.clone()
    a_other[:, 1:] += torch.randn_like(a[:, 1:])
    torch.testing.assert_close(cross(a_other, v).audio[:, 0], base, rtol=1e-6, atol=1e-6)
    assert not torch.allclose(cross(a, v + torch.randn_like(v)).audio[:, 0], base)  # (a constant would be normed away)


@pytest.mark.parametrize("pattern", FUSION_PATTERNS)
def test_padded_tokens_do_not_leak(pattern):
    torch.manual_seed(4)
    m = FusionTransformer(8, depth=2, num_heads=2, pattern=pattern).eval()
    a, v = torch.randn(2, 4, 8), torch.randn(2, 4, 8)
    a_mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    v_mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    a2, v2 = a.clone(), v.clone()
    a2[~a_mask] = 50.0
    v2[~v_mask] = -50.0
    out, out2 = m(a, v, a_mask, v_mask), m(a2, v2, a_mask, v_mask)
    torch.testing.assert_close(out2.pooled, out.pooled, rtol=1e-5, atol=1e-5)


def test_early_sum_needs_equal_lengths_and_pattern_is_validated():
    with pytest.raises(ConfigError):
        FusionTransformer(8, pattern="early_sum")(torch.randn(1, 3, 8), torch.randn(1, 4, 8))
    with pytest.raises(ConfigError):
        FusionTransformer(8, pattern="late")


def test_joint_space_modes():
    torch.manual_seed(5)
    f, g = projection_head(10, 6, hidden_dim=12), projection_head(7, 6)
    coord = JointSpace("coordinated", f, g)
    out = coord(torch.randn(4, 10), torch.randn(4, 7))
    assert out.shared is None
    torch.testing.assert_close(out.audio.norm(dim=-1), torch.ones(4))
    shared = JointSpace("shared", f, g, ConcatFusion(6, 6, 5))
    out = shared(torch.randn(4, 10), torch.randn(4, 7))
    assert out.shared.shape == (4, 5)
    tokens = JointSpace(
        "shared", f, g, FusionTransformer(6, depth=1, num_heads=2, pattern="bottleneck", output="pooled")
    )
    assert tokens(torch.randn(2, 5, 10), torch.randn(2, 3, 7)).shared.shape == (2, 6)
    with pytest.raises(ConfigError):
        JointSpace("shared", f, g)
    with pytest.raises(ConfigError):
        JointSpace("joint", f, g)
