"""Retrieval, tagging mAP, cIoU / AUC and SI-SDR / SDR: hand-worked examples and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from avperceive.metrics import (
    average_precision,
    ciou,
    ciou_auc,
    consensus_map,
    cross_modal_retrieval,
    retrieval_metrics,
    retrieval_ranks,
    sdr,
    si_sdr,
    tagging_map,
)


def test_retrieval_hand_worked():
    s = np.array(
        [
            [0.9, 0.1, 0.3],  # gt 0 ranked first
            [0.8, 0.2, 0.5],  # gt 1 ranked third
            [0.4, 0.6, 0.5],  # gt 2 ranked second
        ]
    )
    assert retrieval_ranks(s).tolist() == [1, 3, 2]
    m = retrieval_metrics(s, ks=(1, 2))
    assert m["R@1"] == pytest.approx(100 / 3) and m["R@2"] == pytest.approx(200 / 3)
    assert m["median_rank"] == 2.0
    assert m["mrr"] == pytest.approx((1 + 1 / 3 + 1 / 2) / 3)
    # one relevant item per query: AP = 1 / rank
    assert m["map"] == pytest.approx(m["mrr"])
    # ties count against the query: constant scores give the worst rank
    assert retrieval_ranks(np.zeros((4, 4))).tolist() == [4, 4, 4, 4]


def test_cross_modal_retrieval_both_directions():
    a = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    v = np.array([[1.0, 0.1], [1.0, 0.9], [0.0, 1.0]])
    out = cross_modal_retrieval(a, v, ks=(1,))
    s = (a / np.linalg.norm(a, axis=1, keepdims=True)) @ (v / np.linalg.norm(v, axis=1, keepdims=True)).T
    assert out["a2v"]["R@1"] == pytest.approx(100 * np.mean(s.argmax(1) == np.arange(3)))
    assert out["v2a"]["R@1"] == pytest.approx(100 * np.mean(s.argmax(0) == np.arange(3)))


def test_average_precision_matches_sklearn_with_and_without_ties():
    rng = np.random.default_rng(0)
    for trial in range(20):
        n = int(rng.integers(5, 40))
        rel = rng.random(n) < 0.3
        rel[rng.integers(n)] = True
        scores = rng.random(n)
        if trial % 2:
            scores = np.round(scores, 1)  # many ties
        # sklearn's AP and ours agree to float64 rounding
        assert average_precision(scores, rel) == pytest.approx(average_precision_score(rel, scores), abs=1e-12)


def test_map_at_k_hand_worked_and_with_ids():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    rel = np.array([True, False, True, False, True])
    # precisions at the positives: 1/1, 2/3, 3/5; AP = (1 + 2/3 + 3/5) / 3
    assert average_precision(scores, rel) == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    # AP@3: positives within the top 3 only, divided by min(3, 3)
    assert average_precision(scores, rel, k=3) == pytest.approx((1 + 2 / 3) / 3)
    assert average_precision(scores, np.zeros(5, bool)) == 0.0  # no positives: 0 by definition (exact)
    # class-level relevance (VEGAS / AVE-style mAP): same label = relevant
    rng = np.random.default_rng(1)
    s, labels = rng.random((6, 6)), np.array([0, 1, 0, 2, 1, 0])
    m = retrieval_metrics(s, query_ids=labels, candidate_ids=labels)
    want = np.mean([average_precision_score(labels == labels[i], s[i]) for i in range(6)])
    assert m["map"] == pytest.approx(want, abs=1e-12)


def test_tagging_map_matches_sklearn_and_skips_empty_classes():
    rng = np.random.default_rng(2)
    targets = rng.random((30, 5)) < 0.3
    targets[:, 3] = False  # no positive clip
    scores = rng.random((30, 5))
    out = tagging_map(scores, targets)
    assert out["classes_without_positives"] == [3] and math.isnan(out["ap"][3])
    want = [average_precision_score(targets[:, c], scores[:, c]) for c in (0, 1, 2, 4)]
    assert out["map"] == pytest.approx(np.mean(want), abs=1e-12)


def test_ciou_hand_worked():
    heat = np.array([[0.9, 0.8, 0.1, 0.0], [0.7, 0.6, 0.2, 0.1], [0.0, 0.1, 0.3, 0.2], [0.1, 0.0, 0.2, 0.1]])
    gt = np.zeros((4, 4))
    gt[0:2, 1:3] = 1.0  # 4 gt pixels: (0,1), (0,2), (1,1), (1,2)
    # threshold 0.5 -> predicted (0,0), (0,1), (1,0), (1,1): 2 inside gt, 2 outside
    assert ciou(heat, gt, threshold=0.5) == pytest.approx(2 / (4 + 2))
    # consensus weights: a half-weight pixel counts half in both numerator and denominator
    gt2 = gt.copy()
    gt2[0, 1] = 0.5
    assert ciou(heat, gt2, threshold=0.5) == pytest.approx(1.5 / (3.5 + 2))
    # default threshold = median: the top 8 of 16 pixels
    top8 = heat > np.median(heat)
    assert ciou(heat, gt) == pytest.approx((gt * top8).sum() / (gt.sum() + (top8 & (gt == 0)).sum()))


def test_consensus_map_and_ciou_auc():
    g = consensus_map([[(0, 0, 2, 2)], [(1, 0, 3, 2)], [(1, 1, 2, 2)]], (3, 3), consensus=2)
    # pixel (row 1, col 1) is in all three boxes -> min(3/2, 1) = 1; (0, 0) in one box -> 0.5
    # (box counts / 2: exact in binary floating point)
    assert g[1, 1] == 1.0 and g[0, 0] == 0.5 and g[2, 2] == 0.0 and g[0, 2] == 0.5
    out = ciou_auc([0.0, 0.5, 1.0])
    assert out["ciou@0.5"] == pytest.approx(2 / 3)
    # success = 1 at t=0, 2/3 on (0, 0.5], 1/3 on (0.5, 1]; trapezoids of width 0.05
    want = 0.05 * ((1 + 2 / 3) / 2 + 9 * 2 / 3 + (2 / 3 + 1 / 3) / 2 + 9 * 1 / 3)
    assert out["auc"] == pytest.approx(want)


def test_si_sdr_and_sdr_hand_worked():
    ref = np.array([1.0, -1.0, 1.0, -1.0])
    noise = np.array([1.0, 1.0, -1.0, -1.0])  # zero-mean and orthogonal to ref
    est = ref + 0.5 * noise
    # alpha = 1, target energy 4, error energy 1 -> 10 log10(4)
    assert float(si_sdr(est, ref)) == pytest.approx(10 * math.log10(4))
    assert float(sdr(est, ref)) == pytest.approx(10 * math.log10(4))
    # scale invariance: SI-SDR unchanged by a gain, plain SDR not
    assert float(si_sdr(3 * est, ref)) == pytest.approx(10 * math.log10(4))
    # 3 est - ref = 2 ref + 1.5 noise: error energy 16 + 9 = 25 -> 10 log10(4 / 25)
    assert float(sdr(3 * est, ref)) == pytest.approx(10 * math.log10(4 / 25))
    batch = si_sdr(np.stack([est, 2 * est]), np.stack([ref, ref]))
    assert batch.shape == (2,) and batch[0] == pytest.approx(batch[1])
