"""Metrics against hand-worked examples."""

import numpy as np
import pytest
import torch

from avperceive.metrics import (
    ave_segment_accuracy,
    ave_segment_predictions,
    avvp_event_f1,
    avvp_metrics,
    avvp_segment_f1,
    extract_events,
    free_marginal_kappa,
    rater_agreement,
    savc_accuracy,
    topk_accuracy,
)


def test_ave_segment_accuracy_is_event_rule():
    # 1 clip, 4 segments; is-event logits: +, -, +, + ; clip class scores -> class 2
    is_event = torch.tensor([[3.0, -2.0, 0.5, -0.1]])
    event = torch.tensor([[0.1, 0.2, 0.9]])
    pred = ave_segment_predictions(is_event, event)  # K = 3 classes: background = 3
    assert pred.tolist() == [[2, 3, 2, 3]]
    target = torch.tensor([[2, 3, 3, 3]])
    # segments 0, 1, 3 right, segment 2 wrong -> 3/4
    assert ave_segment_accuracy(is_event, target, event_logits=event) == pytest.approx(0.75)
    one_hot = torch.nn.functional.one_hot(target, 4).float()
    assert ave_segment_accuracy(pred, one_hot) == pytest.approx(0.75)
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        ave_segment_accuracy(pred, target[:, :3])


def _video():
    # C = 2 classes, T = 10 segments
    pa = np.zeros((2, 10)); ga = np.zeros((2, 10)); pv = np.zeros((2, 10)); gv = np.zeros((2, 10))  # noqa: E702
    pa[0, 0:4] = 1; ga[0, 0:5] = 1  # noqa: E702  audio: TP 4, FN 1 -> F1 8/9; one event, IoU 4/5
    pv[1, 5:10] = 1; gv[1, 2:4] = 1  # noqa: E702  visual: TP 0 -> F1 0; no event match
    return pa, pv, ga, gv


def test_avvp_hand_worked_example():
    pa, pv, ga, gv = _video()
    assert avvp_segment_f1(pa, ga) == pytest.approx(8 / 9)
    assert avvp_event_f1(pa, ga) == pytest.approx(1.0)
    assert avvp_segment_f1(pv, gv) == pytest.approx(0.0)
    assert avvp_event_f1(np.zeros((2, 10)), np.zeros((2, 10))) == 1.0  # all true negatives
    m = avvp_metrics(pa[None], pv[None], ga[None], gv[None])
    assert m["segment_audio"] == pytest.approx(100 * 8 / 9)
    assert m["segment_visual"] == pytest.approx(0.0)
    assert m["segment_av"] == pytest.approx(100.0)  # no AV events predicted or present
    assert m["segment_type_av"] == pytest.approx(100 * (8 / 9 + 0 + 1) / 3)
    assert m["segment_event_av"] == pytest.approx(100 * (8 / 9 + 0) / 2)  # pooled a+v counts per class
    assert m["event_audio"] == pytest.approx(100.0)
    assert m["event_visual"] == pytest.approx(0.0)
    assert m["event_event_av"] == pytest.approx(50.0)


def test_avvp_event_iou_threshold_and_extraction():
    assert extract_events([1, 1, 0, 0, 1, 0, 1, 1, 1, 1]) == [(0, 2), (4, 5), (6, 10)]
    pred = np.zeros((1, 10)); gt = np.zeros((1, 10))  # noqa: E702
    pred[0, 0:2] = 1; gt[0, 0:4] = 1  # noqa: E702  IoU 2/4 = 0.5 -> match
    assert avvp_event_f1(pred, gt) == 1.0
    pred[0, 0:2] = 0; pred[0, 3] = 1  # noqa: E702  IoU 1/4 -> FP 1, FN 1
    assert avvp_event_f1(pred, gt) == 0.0
    # two videos average
    m = avvp_metrics(np.stack([pred, gt]), np.zeros((2, 1, 10)), np.stack([gt, gt]), np.zeros((2, 1, 10)))
    assert m["event_audio"] == pytest.approx(50.0)
    assert m["segment_audio"] == pytest.approx(100 * (2 * 1 / (2 * 1 + 3) + 1) / 2)


def test_topk_and_savc():
    logits = torch.tensor([[0.1, 0.5, 0.4], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5]])
    target = torch.tensor([2, 0, 0])
    assert topk_accuracy(logits, target, 1) == pytest.approx(1 / 3)
    assert topk_accuracy(logits, target, (1, 2, 3)) == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert savc_accuracy(torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]]), torch.tensor([0, 1, 0])) == pytest.approx(
        2 / 3
    )
    assert savc_accuracy(torch.tensor([0.9, 0.1]), torch.tensor([1, 1])) == pytest.approx(0.5)


def test_free_marginal_kappa_hand_worked():
    votes = np.array([[0, 0, 0], [0, 0, 1], [0, 1, 1]])
    # P_o = (1 + 1/3 + 1/3) / 3 = 5/9 ; kappa = (5/9 - 1/2) / (1/2) = 1/9
    assert free_marginal_kappa(votes, 2) == pytest.approx(1 / 9)
    counts = np.array([[3, 0], [2, 1], [1, 2]])
    assert free_marginal_kappa(counts, 2, counts=True) == pytest.approx(1 / 9)
    # k = 3: (5/9 - 1/3) / (2/3) = 1/3
    assert free_marginal_kappa(votes, 3) == pytest.approx(1 / 3)
    assert free_marginal_kappa(np.zeros((4, 3), int), 4) == pytest.approx(1.0)
    agree = rater_agreement(votes)
    assert agree == {"at_least_two": 1.0, "all": pytest.approx(1 / 3)}


def test_free_marginal_kappa_reproduces_soundactions_table2():
    """SoundActions Table 2: 43.3% all agree, 91.5% >= 2 agree -> kappa 0.46 with k = 4 (spec §4 A6)."""
    n = 1000
    all3, two, none = 433, 915 - 433, 1000 - 915
    votes = np.array([[0, 0, 0]] * all3 + [[0, 0, 1]] * two + [[0, 1, 2]] * none)
    assert votes.shape == (n, 3)
    assert round(free_marginal_kappa(votes, 4), 2) == 0.46
    ej = np.array([[0, 0, 0]] * 254 + [[0, 0, 1]] * (885 - 254) + [[0, 1, 2]] * (1000 - 885))
    assert round(free_marginal_kappa(ej, 3), 2) == 0.20


def test_ave_rule_with_per_segment_scores():
    # 1 clip, 3 segments, K = 2: per-segment arg-max classes 1, 0, 1; is-event +, +, - -> [1, 0, 2]
    is_event = torch.tensor([[1.0, 0.2, -0.3]])
    event = torch.tensor([[[0.1, 0.7], [0.9, 0.3], [0.0, 5.0]]])
    assert ave_segment_predictions(is_event, event).tolist() == [[1, 0, 2]]
    # fp16 logits decide as their float32 values: sigmoid(-0.0001) < 0.5 -> background
    half = torch.tensor([[-1e-4, 1e-4]], dtype=torch.float16)
    assert ave_segment_predictions(half, torch.tensor([[0.0, 1.0]])).tolist() == [[2, 1]]
    with pytest.raises(ValueError, match="event_scores"):
        ave_segment_predictions(is_event, torch.zeros(1, 4, 2))  # 4 segments of scores for 3 is-event logits


def test_ave_rule_matches_nn_heads_decision():
    from avperceive.nn.heads import ave_decision

    g = torch.Generator().manual_seed(0)
    is_event, event = torch.randn(5, 10, generator=g), torch.randn(5, 28, generator=g)
    assert torch.equal(ave_segment_predictions(is_event, event), ave_decision(is_event, event))
