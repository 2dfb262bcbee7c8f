"""Event-type analysis (Senocak et al. 2023, §4, Tables 3-4): vote, union, event types, tables."""

from __future__ import annotations

import math

import pytest
import torch

from avperceive.analysis.event_types import (
    assign_event_type,
    category_event_types,
    complementarity_table,
    event_type_table,
    majority_vote,
    make_event_type_features,
    union_multilabel,
)

LAYERS = ("continuous", "instant", "onset", "visual", "audio")


def _onehot_logits(preds: list[list[int]], k: int = 4, scale: list[list[float]] | None = None) -> dict:
    """Logits whose per-head argmax is ``preds[n][h]``, with the confidence ``scale[n][h]``."""
    out = {}
    for h, name in enumerate(LAYERS):
        rows = []
        for n, row in enumerate(preds):
            logit = torch.zeros(k)
            logit[row[h]] = scale[n][h] if scale else 1.0
            rows.append(logit)
        out[name] = torch.stack(rows)
    return out


def test_majority_vote_plurality_and_tie_to_most_confident_head():
    preds = [
        [2, 2, 1, 0, 3],  # plurality 2 (two votes)
        [0, 1, 2, 3, 0],  # 0 has two votes
        [0, 1, 2, 3, 3],  # 3 has two votes
        [1, 1, 2, 2, 0],  # tie 1 vs 2: the most confident head (onset, scale 5) says 2
        [0, 1, 2, 3, 0][:4] + [1],  # tie 1 vs ... (0,1,2,3,1): 1 has two votes
        [0, 1, 2, 3, 3][:3] + [3, 2],  # (0,1,2,3,2): 2 has two votes
    ]
    scale = [[1.0] * 5 for _ in preds]
    scale[3][2] = 5.0
    votes = majority_vote(_onehot_logits(preds, scale=scale))
    assert votes.tolist() == [2, 0, 3, 2, 1, 2]


def test_majority_vote_no_repeated_label_uses_most_confident_head():
    preds = [[0, 1, 2, 3, 4]]
    scale = [[1.0, 1.0, 1.0, 7.0, 1.0]]
    assert majority_vote(_onehot_logits(preds, k=5, scale=scale)).tolist() == [3]
    scale = [[9.0, 1.0, 1.0, 7.0, 1.0]]
    assert majority_vote(_onehot_logits(preds, k=5, scale=scale)).tolist() == [0]


def test_union_multilabel():
    preds = [[2, 2, 1, 0, 3], [1, 1, 1, 1, 1]]
    union = union_multilabel(_onehot_logits(preds))
    assert union.tolist() == [[True, True, True, True], [False, True, False, False]]


def test_assign_event_type_softmax_vs_raw_logits():
    logits = {
        "continuous": torch.tensor([[3.0, 2.9, 0.0]]),  # p(y=0) ~ 0.50
        "instant": torch.tensor([[2.0, -5.0, -5.0]]),  # p(y=0) ~ 0.998 but a smaller raw logit
    }
    y = torch.tensor([0])
    assert assign_event_type(logits, y).tolist() == [1]
    assert assign_event_type(logits, y, normalize="none").tolist() == [0]
    with pytest.raises(ValueError):
        assign_event_type(logits, y, normalize="max")


def test_category_event_types_and_table4():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 3])
    types = torch.tensor([1, 1, 2, 4, 4, 0, 3, 2])
    cats = category_event_types(types, labels, num_classes=5)
    # class 2 ties between continuous (0) and visual (3): the earlier head; class 4 has no video
    assert cats.tolist() == [1, 4, 0, 2, -1]
    table = event_type_table(cats, LAYERS)
    assert table == {"continuous": 1, "instant": 1, "onset": 1, "visual": 0, "audio": 1, "total": 4}


def test_complementarity_table3():
    y = torch.tensor([0, 0, 0, 0, 0, 0])
    # correct (1) / wrong (0) per video for cont, inst, onset
    pattern = [(1, 0, 0), (0, 1, 0), (0, 1, 0), (0, 0, 1), (0, 1, 1), (1, 1, 1)]
    logits = {}
    for h, name in enumerate(("continuous", "instant", "onset")):
        logits[name] = torch.tensor([[1.0, 0.0] if p[h] else [0.0, 1.0] for p in pattern])
    table = complementarity_table(logits, y)
    assert table == {"continuous": 1, "instant": 2, "onset": 1, "instant_or_onset_not_continuous": 4}
    with pytest.raises(ValueError, match="onset"):
        complementarity_table({"continuous": logits["continuous"], "instant": logits["instant"]}, y)


def test_synthetic_features_have_the_stated_structure():
    data = make_event_type_features(4, num_classes=3, steps=20, dim=8, moments=3, period=4, seed=3)
    assert data["z_v"].shape == (12, 20, 8) and data["clip_type"].tolist() == [0] * 4 + [1] * 4 + [2] * 4
    s = (data["z_v"] * data["z_a"]).sum(-1)
    onsets = data["onset_mask"]
    assert onsets[:8].sum(1).tolist() == [3] * 8  # random onset steps
    assert onsets[8:].sum(1).tolist() == [math.ceil((20 - p) / 4) for p in onsets[8:].float().argmax(1).tolist()]
    # instant clips: the informative moments have the largest s_t, none of them on an onset
    top = s[4:8].topk(3, dim=1).indices
    assert not onsets[4:8].gather(1, top).any()
    again = make_event_type_features(4, num_classes=3, steps=20, dim=8, moments=3, period=4, seed=3)
    assert torch.equal(again["z_v"], data["z_v"])
