"""Event-specific fusion layers (Senocak et al. 2023, eqs 1-3): hand-computed pooling, masks, heads, loss."""

from __future__ import annotations

import pytest
import torch

from avperceive.errors import ConfigError
from avperceive.nn.fusion import (
    EVENT_LAYERS,
    EventSpecificFusion,
    event_specific_pool,
    event_specific_pool_reference,
    localization_map,
    multi_head_loss,
)

BOTH = [event_specific_pool, event_specific_pool_reference]


def _toy():
    # B=1, T=4, D=2. s_t = z_v,t . z_a,t = [1, 6, 0, 4]
    z_v = torch.tensor([[[1.0, 0.0], [2.0, 1.0], [0.0, 3.0], [1.0, 1.0]]])
    z_a = torch.tensor([[[1.0, 5.0], [3.0, 0.0], [2.0, 0.0], [2.0, 2.0]]])
    return z_v, z_a


@pytest.mark.parametrize("pool", BOTH)
def test_every_layer_hand_computed(pool):
    z_v, z_a = _toy()
    onset = torch.tensor([[True, False, True, False]])
    out = pool(z_v, z_a, onset, k=2)
    assert list(out) == list(EVENT_LAYERS)
    # continuous: mean of c_t = [z_v ; z_a] over the 4 steps
    torch.testing.assert_close(out["continuous"], torch.tensor([[1.0, 1.25, 2.0, 1.75]]), atol=1e-6, rtol=0)
    # instant, k=2: steps 1 (s=6) and 3 (s=4)
    torch.testing.assert_close(out["instant"], torch.tensor([[1.5, 1.0, 2.5, 1.0]]), atol=1e-6, rtol=0)
    # onset: steps 0 and 2
    torch.testing.assert_close(out["onset"], torch.tensor([[0.5, 1.5, 1.5, 2.5]]), atol=1e-6, rtol=0)
    torch.testing.assert_close(out["visual"], torch.tensor([[1.0, 1.25, 0.0, 0.0]]), atol=1e-6, rtol=0)
    torch.testing.assert_close(out["audio"], torch.tensor([[0.0, 0.0, 2.0, 1.75]]), atol=1e-6, rtol=0)


@pytest.mark.parametrize("pool", BOTH)
def test_instant_ties_go_to_the_earlier_step_and_k_is_clamped(pool):
    z_v = torch.tensor([[[1.0], [2.0], [1.0], [2.0], [0.5]]])
    z_a = torch.tensor([[[1.0], [1.0], [2.0], [1.0], [1.0]]])  # s = [1, 2, 2, 2, 0.5]
    out = pool(z_v, z_a, k=2)["instant"]
    # ties among s=2 at steps 1, 2, 3: the two earliest (1 and 2) are taken
    torch.testing.assert_close(out, torch.tensor([[1.5, 1.5]]), atol=1e-6, rtol=0)
    # k larger than T: every step, i.e. the continuous mean
    big = pool(z_v, z_a, k=50)
    torch.testing.assert_close(big["instant"], big["continuous"], atol=1e-6, rtol=0)


@pytest.mark.parametrize("pool", BOTH)
def test_empty_onset_set_falls_back_to_all_steps(pool):
    z_v, z_a = _toy()
    z_v, z_a = z_v.repeat(2, 1, 1), z_a.repeat(2, 1, 1)
    onset = torch.tensor([[False, False, False, False], [False, False, False, True]])
    out = pool(z_v, z_a, onset, k=2)
    torch.testing.assert_close(out["onset"][0], out["continuous"][0], atol=1e-6, rtol=0)
    torch.testing.assert_close(out["onset"][1], torch.tensor([1.0, 1.0, 2.0, 2.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(pool(z_v, z_a, None, k=2)["onset"], out["continuous"], atol=1e-6, rtol=0)


@pytest.mark.parametrize("pool", BOTH)
def test_padding_masks_steps_out_of_every_layer(pool):
    z_v, z_a = _toy()
    # clip 0: the toy clip padded with 2 garbage steps; clip 1: the toy clip's first 2 steps then padding
    pad_v = torch.cat([z_v, torch.full((1, 2, 2), 100.0)], dim=1)
    pad_a = torch.cat([z_a, torch.full((1, 2, 2), 100.0)], dim=1)
    z_v2, z_a2 = torch.cat([pad_v, pad_v]), torch.cat([pad_a, pad_a])
    padding = torch.tensor([[False] * 4 + [True] * 2, [False] * 2 + [True] * 4])
    onset = torch.tensor([[True, False, True, False, True, True], [False, False, False, False, True, False]])
    out = pool(z_v2, z_a2, onset, padding, k=3)
    ref = pool(z_v, z_a, onset[:1, :4], k=3)
    for name in EVENT_LAYERS:
        torch.testing.assert_close(out[name][:1], ref[name], atol=1e-6, rtol=0)
    # clip 1 has 2 valid steps: k=3 clamps to 2; its only onset is padded, so all (valid) steps
    short = torch.tensor([1.5, 0.5, 2.0, 2.5])
    for name in ("continuous", "instant", "onset"):
        torch.testing.assert_close(out[name][1], short, atol=1e-6, rtol=0)


def test_batched_equals_per_sample_reference_random():
    g = torch.Generator().manual_seed(0)
    b, t, d = 9, 23, 7
    z_v, z_a = torch.randn(b, t, d, generator=g), torch.randn(b, t, d, generator=g)
    onset = torch.rand(b, t, generator=g) < 0.2
    onset[0] = False
    lengths = torch.randint(1, t + 1, (b,), generator=g)
    padding = torch.arange(t)[None] >= lengths[:, None]
    fast = event_specific_pool(z_v, z_a, onset, padding, k=10)
    slow = event_specific_pool_reference(z_v, z_a, onset, padding, k=10)
    diff = max((fast[n] - slow[n]).abs().max().item() for n in EVENT_LAYERS)
    print("max abs diff batched vs reference:", diff)
    assert diff <= 1e-6


def test_gradients_reach_selected_features_only():
    z_v, z_a = _toy()
    z_v.requires_grad_(True)
    out = event_specific_pool(z_v, z_a, k=1, layers=("instant",))
    out["instant"].sum().backward()
    # only step 1 (s=6) is selected; each of its visual entries gets 1/k = 1
    expected = torch.zeros_like(z_v)
    expected[0, 1] = 1.0
    torch.testing.assert_close(z_v.grad, expected)


def test_module_logits_heads_and_layer_subsets():
    torch.manual_seed(0)
    fusion = EventSpecificFusion(dim=3, num_classes=4, k=2, layers=("onset", "audio"))
    assert sorted(k for k in fusion.state_dict()) == [
        "heads.audio.bias",
        "heads.audio.weight",
        "heads.onset.bias",
        "heads.onset.weight",
    ]
    z_v, z_a = torch.randn(2, 5, 3), torch.randn(2, 5, 3)
    logits = fusion(z_v, z_a)
    assert list(logits) == ["onset", "audio"] and logits["audio"].shape == (2, 4)
    pooled = event_specific_pool(z_v, z_a, k=2)
    torch.testing.assert_close(logits["audio"], fusion.heads["audio"](pooled["audio"]))
    reference = EventSpecificFusion(dim=3, num_classes=4, k=2, layers=("onset", "audio"), pool_impl="reference")
    reference.load_state_dict(fusion.state_dict())
    torch.testing.assert_close(reference(z_v, z_a)["onset"], logits["onset"], atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="layers"):
        EventSpecificFusion(3, 4, layers=("continuous", "beat"))
    with pytest.raises(ConfigError, match="pool_impl"):
        EventSpecificFusion(3, 4, pool_impl="batched")  # the old name of "fused"
    with pytest.raises(ValueError, match=r"\(B, T, 3\)"):
        fusion(torch.randn(2, 5, 4), torch.randn(2, 5, 4))
    with pytest.raises(ValueError, match="padding"):
        fusion(z_v, z_a, padding_mask=torch.ones(2, 5, dtype=torch.bool))


def test_half_unimodal_heads_equal_the_concat_layout():
    torch.manual_seed(0)
    concat = EventSpecificFusion(dim=3, num_classes=4, layers=("visual", "audio"))
    half = EventSpecificFusion(dim=3, num_classes=4, layers=("visual", "audio"), unimodal_heads="half")
    assert half.heads["visual"].weight.shape == (4, 3)
    with torch.no_grad():
        half.heads["visual"].weight.copy_(concat.heads["visual"].weight[:, :3])
        half.heads["audio"].weight.copy_(concat.heads["audio"].weight[:, 3:])
        half.heads["visual"].bias.copy_(concat.heads["visual"].bias)
        half.heads["audio"].bias.copy_(concat.heads["audio"].bias)
    z_v, z_a = torch.randn(2, 6, 3), torch.randn(2, 6, 3)
    a, b = concat(z_v, z_a), half(z_v, z_a)
    for name in ("visual", "audio"):
        torch.testing.assert_close(b[name], a[name])


def test_bf16_autocast_runs():
    fusion = EventSpecificFusion(dim=4, num_classes=3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fusion(torch.randn(2, 12, 4), torch.randn(2, 12, 4))
    assert out["instant"].dtype == torch.bfloat16 and out["instant"].shape == (2, 3)


def test_multi_head_loss_is_the_sum_of_cross_entropies():
    logits = {"continuous": torch.tensor([[2.0, 0.0]]), "instant": torch.tensor([[0.0, 0.0]])}
    y = torch.tensor([0])
    expected = torch.log1p(torch.exp(torch.tensor(-2.0))) + torch.log(torch.tensor(2.0))
    torch.testing.assert_close(multi_head_loss(logits, y), expected)
    torch.testing.assert_close(multi_head_loss(logits, y, {"instant": 0.0}), expected - torch.log(torch.tensor(2.0)))


def test_localization_map_dot_product_and_upsampling():
    v_map = torch.zeros(1, 2, 3, 2, 2)
    v_map[0, 0, :, 0, 1] = torch.tensor([1.0, 2.0, 3.0])
    v_map[0, 1, :, 1, 0] = torch.tensor([0.0, 0.0, 2.0])
    z_a = torch.tensor([[[1.0, 1.0, 1.0], [0.0, 0.0, 5.0]]])
    alpha = localization_map(v_map, z_a)
    torch.testing.assert_close(alpha, torch.tensor([[[[0.0, 6.0], [0.0, 0.0]], [[0.0, 0.0], [10.0, 0.0]]]]))
    big = localization_map(v_map, z_a, size=(8, 8))
    assert big.shape == (1, 2, 8, 8)
    # the hot spot stays in the top-right corner; the bottom-left corner interpolates exact zeros only (exact 0)
    assert big[0, 0, 0, 7].item() == pytest.approx(6.0) and big[0, 0, 7, 0].item() == 0.0
    cosine = localization_map(v_map, z_a, normalize=True)
    assert abs(cosine[0, 1, 1, 0].item() - 1.0) < 1e-6
    with pytest.raises(ValueError, match="v_map"):
        localization_map(v_map, z_a[:, :1])
