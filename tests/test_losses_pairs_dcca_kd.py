"""AVC / sync pair losses (with the SAVC head), deep CCA, distillation and center loss vs independent truth."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

from avperceive.errors import ConfigError
from avperceive.models.savc import SAVCModel
from avperceive.nn.losses import (
    CenterLoss,
    avc_loss,
    avc_pairs,
    canonical_correlations,
    center_loss,
    cross_modal_distillation,
    dcca_loss,
    distillation_kl,
    distillation_mse,
    sync_loss,
    sync_offset_scores,
    sync_windows,
)


# ------------------------------------------------------------------------------------------ AVC
def test_avc_pairs_shuffled_negatives_respect_ids_and_padding():
    ids = torch.tensor([0, 0, 1, 2, 2, 3, 4, 4])
    valid = torch.tensor([True, True, True, True, True, True, True, False])
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        ai, vi, target = avc_pairs(8, ids=ids, valid=valid, generator=g)
        p = int(valid.sum())
        assert target.tolist() == [1] * p + [0] * p
        assert ai[:p].tolist() == vi[:p].tolist() == torch.nonzero(valid).flatten().tolist()
        assert ai[p:].tolist() == ai[:p].tolist()
        neg = vi[p:]
        assert (ids[neg] != ids[ai[p:]]).all() and valid[neg].all()  # never the same id, never padding
    with pytest.raises(ConfigError):
        avc_pairs(1)
    with pytest.raises(ConfigError):
        avc_pairs(3, ids=torch.tensor([5, 5, 5]))


def test_avc_loss_with_the_savc_head_equals_per_pair_cross_entropy():
    head = SAVCModel(audio_dim=6, visual_dim=5, hidden=4, rnn="gru", rnn_units=3, dropout=0.0).eval()
    g = torch.Generator().manual_seed(1)
    audio, visual = torch.randn(5, 3, 6, generator=g), torch.randn(5, 3, 5, generator=g)
    out = avc_loss(head, visual, audio, generator=torch.Generator().manual_seed(2))
    losses = []
    for a_i, v_i, t in zip(out.audio_index.tolist(), out.visual_index.tolist(), out.target.tolist()):
        logits = head(visual[v_i : v_i + 1], audio[a_i : a_i + 1])[0].double()
        losses.append(-(logits - torch.logsumexp(logits, 0))[t])  # one pair at a time
    # batched vs one-at-a-time float32 forward passes: 1e-5 covers the differing reductions
    torch.testing.assert_close(out.loss.double(), torch.stack(losses).mean(), rtol=1e-5, atol=1e-5)
    out.loss.backward()
    assert head.classifier.weight.grad is not None


# ------------------------------------------------------------------------------------------ sync
def test_sync_windows_stay_inside_the_valid_steps():
    lengths = torch.tensor([10, 7, 12, 6])
    g = torch.Generator().manual_seed(3)
    seen = set()
    for _ in range(200):
        start, shift = sync_windows(lengths, window=4, shifts=(-2, -1, 1, 2), generator=g)
        assert (shift != 0).all()
        for s, d, n in zip(start.tolist(), shift.tolist(), lengths.tolist()):
            assert 0 <= s and s + 4 <= n and 0 <= s + d and s + d + 4 <= n
            seen.add(d)
    assert seen == {-2, -1, 1, 2}
    with pytest.raises(ConfigError):
        sync_windows(torch.tensor([4]), window=4, shifts=(1,))
    with pytest.raises(ConfigError):
        sync_windows(torch.tensor([9]), window=4, shifts=(0, 1))


class _DotHead(torch.nn.Module):
    """Logit of 'in sync' = mean over the window of a_t . v_t (a fixed, hand-checkable head)."""

    def forward(self, visual, audio):
        s = (audio * visual).sum(-1).mean(-1)
        return torch.stack([torch.zeros_like(s), s], dim=-1)


def test_sync_loss_pairs_and_offset_recovery():
    g = torch.Generator().manual_seed(4)
    events = torch.randn(3, 20, 8, generator=g)
    visual = events
    audio = torch.roll(events, shifts=2, dims=1)  # the sound lags the picture by 2 steps
    out = sync_loss(_DotHead(), visual, audio, window=5, shifts=(-1, 1), generator=g)
    assert out.target.tolist() == [1, 1, 1, 0, 0, 0]
    assert out.shift[:3].tolist() == [0, 0, 0] and set(out.shift[3:].abs().tolist()) == {1}
    # cross-entropy of the logits in float64 from the formula
    want = F.cross_entropy(out.logits.double(), out.target)
    torch.testing.assert_close(out.loss.double(), want)
    scores = sync_offset_scores(_DotHead(), visual, audio, window=6, offsets=range(-3, 4), start=5)
    assert [list(range(-3, 4))[i] for i in scores.argmax(1).tolist()] == [2, 2, 2]


# ------------------------------------------------------------------------------------------ DCCA
def _numpy_dcca(h1, h2, reg):
    n = len(h1)
    h1, h2 = h1 - h1.mean(0), h2 - h2.mean(0)
    s11 = h1.T @ h1 / (n - 1) + reg * np.eye(h1.shape[1])
    s22 = h2.T @ h2 / (n - 1) + reg * np.eye(h2.shape[1])
    s12 = h1.T @ h2 / (n - 1)
    t = np.linalg.inv(scipy.linalg.sqrtm(s11)) @ s12 @ np.linalg.inv(scipy.linalg.sqrtm(s22))
    return np.linalg.svd(np.real(t), compute_uv=False)


def test_dcca_matches_symmetric_whitening_in_float64():
    g = torch.Generator().manual_seed(5)
    h1, h2 = torch.randn(40, 4, generator=g), torch.randn(40, 3, generator=g)
    h2 = h2 + h1[:, :3] * 0.7
    sv = canonical_correlations(h1, h2, reg=1e-2)
    want = _numpy_dcca(h1.double().numpy(), h2.double().numpy(), 1e-2)
    np.testing.assert_allclose(sv.numpy(), want, rtol=1e-4, atol=1e-5)  # float32 Cholesky vs float64 sqrtm
    assert float(dcca_loss(h1, h2, reg=1e-2, top_k=2)) == pytest.approx(-want[:2].sum(), rel=1e-4)


def test_dcca_edges():
    g = torch.Generator().manual_seed(6)
    x = torch.randn(50, 3, generator=g, dtype=torch.float64)
    y = x @ torch.randn(3, 3, generator=g, dtype=torch.float64)  # an invertible linear map: all correlations 1
    np.testing.assert_allclose(canonical_correlations(x, y, reg=0.0).numpy(), np.ones(3), atol=1e-8)
    same = torch.ones(6, 2, requires_grad=True)  # all-equal rows: zero covariance, zero correlation
    loss = dcca_loss(same, torch.ones(6, 2), reg=1e-3)
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.isfinite(same.grad).all()
    valid = torch.tensor([True] * 30 + [False] * 10)
    xx = torch.randn(40, 2, generator=g)
    torch.testing.assert_close(dcca_loss(xx, xx * 2, valid=valid), dcca_loss(xx[:30], xx[:30] * 2))
    with pytest.raises(ConfigError):
        dcca_loss(torch.randn(1, 2), torch.randn(1, 2))


# ------------------------------------------------------------------------------------------ KD, center
def test_distillation_losses():
    s, t = torch.tensor([[1.0, 2.0], [0.0, 0.0]]), torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    # per-row mean squared gaps: (0 + 4) / 2 = 2 and (1 + 1) / 2 = 1 -> 1.5
    assert float(distillation_mse(s, t)) == pytest.approx(1.5)
    assert float(distillation_mse(s, t, valid=torch.tensor([False, True]))) == pytest.approx(1.0)
    both = cross_modal_distillation({"audio": s, "visual": 2 * s}, {"audio": t, "visual": t})
    assert float(both) == pytest.approx(1.5 + float(((2 * s - t) ** 2).mean()))
    s_req, t_req = s.clone().requires_grad_(), t.clone().requires_grad_()
    distillation_mse(s_req, t_req).backward()
    assert s_req.grad is not None and t_req.grad is None  # the teacher is detached
    g = torch.Generator().manual_seed(7)
    zs, zt = torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g)
    pt, ps = np.exp(zt.numpy() / 3.0), np.exp(zs.numpy() / 3.0)
    pt, ps = pt / pt.sum(1, keepdims=True), ps / ps.sum(1, keepdims=True)
    want = 9.0 * np.mean((pt * np.log(pt / ps)).sum(1))
    assert float(distillation_kl(zs, zt, temperature=3.0)) == pytest.approx(want, rel=1e-5)
    assert float(distillation_kl(zt, zt)) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ConfigError):
        cross_modal_distillation({"audio": s}, {"visual": t})


def test_center_loss_hand_computed_and_learns_centres():
    x = torch.tensor([[1.0, 1.0], [3.0, 1.0], [0.0, 2.0]])
    labels = torch.tensor([0, 0, 1])
    centers = torch.tensor([[2.0, 1.0], [0.0, 0.0]])
    # squared distances 1, 1, 4 -> 0.5 * mean = 0.5 * 2 = 1.0; L1 distances 1, 1, 2 -> 4/3
    assert float(center_loss(x, labels, centers)) == pytest.approx(1.0)
    assert float(center_loss(x, labels, centers, p=1)) == pytest.approx(4 / 3)
    module = CenterLoss(num_classes=2, dim=2)
    opt = torch.optim.SGD(module.parameters(), lr=0.5)
    for _ in range(200):
        opt.zero_grad()
        module(x, labels).backward()
        opt.step()
    torch.testing.assert_close(module.centers.detach(), torch.tensor([[2.0, 1.0], [0.0, 2.0]]), atol=1e-4, rtol=0)
