"""In-batch contrastive objectives against direct per-pair loops in numpy float64."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from avperceive.errors import ConfigError
from avperceive.nn.losses import (
    InfoNCELoss,
    LogitScale,
    MaskedMarginSoftmaxLoss,
    adaptive_margin,
    hinge_ranking_loss,
    info_nce,
    masked_margin_softmax,
    mil_nce,
    scheduled_margin,
    triplet_loss,
)

# The losses run in float32; references in float64. Values are O(1)-O(10) sums of <= ~100 terms,
# so 1e-5 relative (about 100 float32 ulps) covers the accumulated rounding.
TOL = dict(rtol=1e-5, atol=1e-5)


def _cos(a: np.ndarray, v: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    return a @ v.T


def _np(*xs):
    return [x.detach().double().numpy() for x in xs]


# ------------------------------------------------------------------------------------------ references
def ref_info_nce(a, v, tau, valid=None):
    s = _cos(a, v)
    idx = [i for i in range(len(a)) if valid is None or valid[i]]
    total = 0.0
    for i in idx:
        den_av = math.exp(s[i, i] / tau) + sum(math.exp(s[i, j] / tau) for j in idx if j != i)
        den_va = math.exp(s[i, i] / tau) + sum(math.exp(s[j, i] / tau) for j in idx if j != i)
        total += 0.5 * (-math.log(math.exp(s[i, i] / tau) / den_av) - math.log(math.exp(s[i, i] / tau) / den_va))
    return total / len(idx)


def ref_mil_nce(a, v, a_ids, v_ids, tau, a_valid=None, v_valid=None):
    s = _cos(a, v)
    rows = [i for i in range(len(a)) if a_valid is None or a_valid[i]]
    cols = [j for j in range(len(v)) if v_valid is None or v_valid[j]]
    losses = []
    for i in rows:
        pos = [j for j in cols if v_ids[j] == a_ids[i]]
        if not pos:
            continue
        num = sum(math.exp(s[i, j] / tau) for j in pos)
        den = sum(math.exp(s[i, j] / tau) for j in cols) + sum(math.exp(s[k, j] / tau) for j in pos for k in rows)
        losses.append(-math.log(num / den))
    return float(np.mean(losses))


def ref_hinge(a, v, margin, ids=None, hardest=False):
    s = _cos(a, v)
    n = len(a)
    ids = list(range(n)) if ids is None else ids
    out = []
    for i in range(n):
        c1 = [max(0.0, margin - s[i, i] + s[i, j]) for j in range(n) if ids[j] != ids[i]]
        c2 = [max(0.0, margin - s[i, i] + s[j, i]) for j in range(n) if ids[j] != ids[i]]
        if hardest:
            out.append((max(c1) if c1 else 0.0) + (max(c2) if c2 else 0.0))
        else:
            out.append(sum(c1) + sum(c2))
    return float(np.mean(out))


def ref_mms(a, v, margin, tau, ids=None):
    s = _cos(a, v)
    n = len(a)
    ids = list(range(n)) if ids is None else ids
    margin = np.broadcast_to(np.asarray(margin, dtype=np.float64), (n,))
    out = []
    for i in range(n):
        p = math.exp((s[i, i] - margin[i]) / tau)
        den1 = p + sum(math.exp(s[i, j] / tau) for j in range(n) if ids[j] != ids[i])
        den2 = p + sum(math.exp(s[j, i] / tau) for j in range(n) if ids[j] != ids[i])
        out.append(-math.log(p / den1) - math.log(p / den2))
    return float(np.mean(out))


def ref_triplet(x, y, labels, y_labels, margin, mining, intra):
    n, m = len(x), len(y)
    d = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    terms = []
    for i in range(n):
        pos = [j for j in range(m) if y_labels[j] == labels[i] and not (intra and j == i)]
        neg = [j for j in range(m) if y_labels[j] != labels[i]]
        if not pos or not neg:
            continue
        if mining == "batch_hard":
            terms.append(max(0.0, max(d[i, p] for p in pos) - min(d[i, q] for q in neg) + margin))
        else:
            for p in pos:
                farther = [d[i, q] for q in neg if d[i, q] > d[i, p]]
                dn = min(farther) if farther else max(d[i, q] for q in neg)
                terms.append(max(0.0, d[i, p] - dn + margin))
    return float(np.mean(terms)) if terms else 0.0


# ------------------------------------------------------------------------------------------ InfoNCE
@pytest.mark.parametrize("b", [1, 2, 7])
def test_info_nce_matches_loop(b):
    g = torch.Generator().manual_seed(b)
    a, v = torch.randn(b, 5, generator=g), torch.randn(b, 5, generator=g)
    got = info_nce(a, v, temperature=0.2)
    np.testing.assert_allclose(float(got), ref_info_nce(*_np(a, v), 0.2), **TOL)


def test_info_nce_edge_values():
    # one item: the positive is the whole denominator
    assert float(info_nce(torch.randn(1, 4), torch.randn(1, 4))) == pytest.approx(0.0, abs=1e-6)
    # all-equal embeddings: every logit equal, loss = log B exactly (up to float32 rounding)
    x = torch.ones(6, 3)
    assert float(info_nce(x, x, temperature=0.05)) == pytest.approx(math.log(6), rel=1e-6)


def test_info_nce_duplicate_pairs_are_negatives_and_padding_is_dropped():
    g = torch.Generator().manual_seed(3)
    a, v = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    a[3], v[3] = a[1], v[1]  # a duplicated pair: each is a negative of the other
    valid = torch.tensor([True, True, False, True, True, False])
    got = info_nce(a, v, temperature=0.1, valid=valid)
    np.testing.assert_allclose(float(got), ref_info_nce(*_np(a, v), 0.1, valid.tolist()), **TOL)
    # the padded rows may hold anything (inf / nan would poison a naive implementation)
    a2, v2 = a.clone(), v.clone()
    a2[2], v2[5] = float("nan"), float("inf")
    assert float(info_nce(a2, v2, temperature=0.1, valid=valid)) == pytest.approx(float(got), rel=1e-6)


def test_info_nce_gradcheck_and_dot_product_form():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4, 3, dtype=torch.float64, generator=g, requires_grad=True)
    v = torch.randn(4, 3, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, y: info_nce(x, y, temperature=0.3), (a, v))
    # normalize=False uses raw dot products: compare with the loop on pre-normalised data
    an, vn = torch.nn.functional.normalize(a.detach(), dim=1), torch.nn.functional.normalize(v.detach(), dim=1)
    torch.testing.assert_close(
        info_nce(an, vn, temperature=0.3, normalize=False), info_nce(a.detach(), v.detach(), temperature=0.3)
    )


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_info_nce_half_precision_is_stable(dtype):
    g = torch.Generator().manual_seed(5)
    a, v = torch.randn(32, 16, generator=g), torch.randn(32, 16, generator=g)
    v = a + 0.1 * v  # confident positives: logits up to 1/0.01 = 100, exp(100) overflows fp16
    ah, vh = a.to(dtype).requires_grad_(), v.to(dtype).requires_grad_()
    loss = info_nce(ah, vh, temperature=0.01)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert torch.isfinite(ah.grad).all() and ah.grad.dtype == dtype
    # same value as float64 on the rounded inputs: only the half rounding of the inputs differs
    np.testing.assert_allclose(float(loss.detach()), ref_info_nce(*_np(ah, vh), 0.01), rtol=1e-4, atol=1e-4)


def test_learnable_temperature():
    loss_fn = InfoNCELoss(temperature=0.1, learnable_temperature=True)
    g = torch.Generator().manual_seed(1)
    a, v = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
    loss = loss_fn(a, v)
    np.testing.assert_allclose(float(loss.detach()), ref_info_nce(*_np(a, v), 0.1), **TOL)
    loss.backward()
    assert loss_fn.temperature.log_scale.grad is not None and loss_fn.temperature.log_scale.grad.abs() > 0
    fixed = LogitScale(0.1, learnable=False)
    assert not list(fixed.parameters()) and float(fixed()) == pytest.approx(0.1)
    # CLIP's clamp: 1/tau never exceeds max_scale
    assert float(LogitScale(0.001, max_scale=100.0)().detach()) == pytest.approx(0.01)
    with pytest.raises(ConfigError):
        LogitScale(0.0)


# ------------------------------------------------------------------------------------------ MIL-NCE
def test_mil_nce_bag_form_matches_loop():
    g = torch.Generator().manual_seed(2)
    a, v = torch.randn(5, 4, generator=g), torch.randn(5, 3, 4, generator=g)
    v_valid = torch.ones(5, 3, dtype=torch.bool)
    v_valid[1, 2] = v_valid[4, 0] = False  # short bags
    got = mil_nce(a, v, temperature=0.5, v_valid=v_valid)
    ids = np.repeat(np.arange(5), 3)
    want = ref_mil_nce(*_np(a, v.reshape(15, 4)), list(range(5)), ids, 0.5, v_valid=v_valid.reshape(-1).tolist())
    np.testing.assert_allclose(float(got), want, **TOL)


def test_mil_nce_authors_form_on_full_bags():
    """The released MIL-NCE (Miech et al.) builds the denominator from x (B, B, K) and its transpose."""
    g = torch.Generator().manual_seed(4)
    a, v = torch.randn(4, 3, dtype=torch.float64, generator=g), torch.randn(4, 2, 3, dtype=torch.float64, generator=g)
    x = (a @ v.reshape(8, 3).T).reshape(4, 4, 2)  # raw dot products, as in the authors' loss
    nominator = torch.logsumexp((x * torch.eye(4)[:, :, None]).sum(dim=1), dim=1)
    denominator = torch.logsumexp(torch.cat((x, x.permute(1, 0, 2)), dim=1).reshape(4, -1), dim=1)
    want = (denominator - nominator).mean()
    torch.testing.assert_close(mil_nce(a, v, normalize=False, temperature=1.0), want)


def test_mil_nce_ids_with_duplicate_positives_and_edges():
    g = torch.Generator().manual_seed(6)
    a, v = torch.randn(4, 3, generator=g), torch.randn(6, 3, generator=g)
    a_ids, v_ids = torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 1, 1, 3, 2])  # id 1: 2 anchors, 3 positives
    got = mil_nce(a, v, a_ids=a_ids, v_ids=v_ids, temperature=0.3)
    np.testing.assert_allclose(float(got), ref_mil_nce(*_np(a, v), a_ids.tolist(), v_ids.tolist(), 0.3), **TOL)
    # one anchor, one positive candidate: num = e^s, den = e^s + e^s -> log 2
    one = mil_nce(torch.randn(1, 3), torch.randn(1, 1, 3))
    assert float(one) == pytest.approx(math.log(2), rel=1e-6)
    # all-equal embeddings, B anchors with K positives each: log((B K + K B) / K) = log(2B)
    x = torch.ones(3, 4)
    assert float(mil_nce(x, torch.ones(3, 2, 4))) == pytest.approx(math.log(6), rel=1e-6)
    with pytest.raises(ConfigError):
        mil_nce(torch.randn(2, 3), torch.randn(3, 3))


def test_mil_nce_gradcheck():
    g = torch.Generator().manual_seed(7)
    a = torch.randn(3, 2, dtype=torch.float64, generator=g, requires_grad=True)
    v = torch.randn(3, 2, 2, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, y: mil_nce(x, y, temperature=0.4), (a, v))


# ------------------------------------------------------------------------------------------ hinge, MMS
@pytest.mark.parametrize("hardest", [False, True])
def test_hinge_ranking_matches_loop(hardest):
    g = torch.Generator().manual_seed(8)
    a, v = torch.randn(7, 4, generator=g), torch.randn(7, 4, generator=g)
    ids = torch.tensor([0, 1, 2, 2, 3, 4, 5])  # items 2 and 3 are not each other's negatives
    got = hinge_ranking_loss(a, v, margin=0.3, ids=ids, hardest=hardest)
    np.testing.assert_allclose(float(got), ref_hinge(*_np(a, v), 0.3, ids.tolist(), hardest), **TOL)


def test_hinge_edges():
    assert float(hinge_ranking_loss(torch.randn(1, 3), torch.randn(1, 3))) == 0.0
    x = torch.ones(5, 3)  # all equal: every term is the margin: 2 (B - 1) alpha per anchor
    assert float(hinge_ranking_loss(x, x, margin=0.2)) == pytest.approx(2 * 4 * 0.2, rel=1e-6)
    valid = torch.tensor([True, False, True, True, True])
    assert float(hinge_ranking_loss(x, x, margin=0.2, valid=valid)) == pytest.approx(2 * 3 * 0.2, rel=1e-6)


@pytest.mark.parametrize("margin", [0.0, 0.15, "per_pair"])
def test_mms_matches_loop(margin):
    g = torch.Generator().manual_seed(9)
    a, v = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    ids = torch.tensor([0, 1, 1, 2, 3, 4])
    m = torch.rand(6, generator=g) * 0.3 if margin == "per_pair" else margin
    got = masked_margin_softmax(a, v, margin=m, temperature=0.2, ids=ids)
    want = ref_mms(*_np(a, v), m.numpy() if isinstance(m, torch.Tensor) else m, 0.2, ids.tolist())
    np.testing.assert_allclose(float(got), want, **TOL)


def test_mms_edges_and_margins():
    x = torch.ones(4, 3)  # all equal: 2 log(1 + (B-1) e^{delta/tau})
    want = 2 * math.log(1 + 3 * math.exp(0.1 / 0.05))
    assert float(masked_margin_softmax(x, x, margin=0.1, temperature=0.05)) == pytest.approx(want, rel=1e-6)
    assert float(masked_margin_softmax(torch.randn(1, 3), torch.randn(1, 3), margin=0.5)) == pytest.approx(0, abs=1e-6)
    assert scheduled_margin(0, 0.2, 100) == 0.0
    assert scheduled_margin(50, 0.2, 100) == pytest.approx(0.1)
    assert scheduled_margin(500, 0.2, 100) == pytest.approx(0.2)
    a, v = torch.tensor([[1.0, 0.0], [1.0, 0.0]]), torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    torch.testing.assert_close(adaptive_margin(a, v, 0.4), torch.tensor([0.0, 0.4]))


def test_mms_module_modes():
    g = torch.Generator().manual_seed(10)
    a, v = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    sched = MaskedMarginSoftmaxLoss(margin=0.2, mode="scheduled", warmup_steps=4, temperature=0.1)
    first = sched(a, v)  # step 0: margin 0
    np.testing.assert_allclose(float(first), ref_mms(*_np(a, v), 0.0, 0.1), **TOL)
    for _ in range(5):
        sched(a, v)
    np.testing.assert_allclose(float(sched(a, v)), ref_mms(*_np(a, v), 0.2, 0.1), **TOL)
    adapt = MaskedMarginSoftmaxLoss(margin=0.2, mode="adaptive", temperature=0.1)
    an, vn = _np(a, v)
    cos = (an * vn).sum(1) / np.linalg.norm(an, axis=1) / np.linalg.norm(vn, axis=1)
    np.testing.assert_allclose(float(adapt(a, v)), ref_mms(an, vn, 0.2 * (1 - cos) / 2, 0.1), **TOL)
    with pytest.raises(ConfigError):
        MaskedMarginSoftmaxLoss(mode="cosine")


# ------------------------------------------------------------------------------------------ triplet
@pytest.mark.parametrize("mining", ["batch_hard", "semi_hard"])
@pytest.mark.parametrize("intra", [True, False])
def test_triplet_matches_loop(mining, intra):
    g = torch.Generator().manual_seed(11)
    x, labels = torch.randn(9, 3, generator=g), torch.tensor([0, 0, 1, 1, 1, 2, 2, 3, 0])
    if intra:
        y, y_labels = None, None
        want = ref_triplet(*_np(x, x), labels.numpy(), labels.numpy(), 0.5, mining, True)
    else:
        y, y_labels = torch.randn(7, 3, generator=g), torch.tensor([0, 1, 1, 2, 3, 3, 0])
        want = ref_triplet(*_np(x, y), labels.numpy(), y_labels.numpy(), 0.5, mining, False)
    got = triplet_loss(x, labels, y, y_labels, margin=0.5, mining=mining)
    np.testing.assert_allclose(float(got), want, **TOL)


def test_triplet_edges():
    assert float(triplet_loss(torch.randn(1, 3), torch.tensor([0]))) == 0.0
    x = torch.ones(4, 2)  # all distances zero: every mined term equals the margin
    for mining in ("batch_hard", "semi_hard"):
        assert float(triplet_loss(x, torch.tensor([0, 0, 1, 1]), margin=0.3, mining=mining)) == pytest.approx(0.3)
    # padded anchors and candidates are dropped
    g = torch.Generator().manual_seed(12)
    z, lab = torch.randn(6, 3, generator=g), torch.tensor([0, 0, 1, 1, 2, 2])
    valid = torch.tensor([True, True, True, True, False, False])
    torch.testing.assert_close(triplet_loss(z, lab, x_valid=valid), triplet_loss(z[:4], lab[:4]))
