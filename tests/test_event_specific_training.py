"""Seeded experiment: each event-specific head wins on the clips whose evidence matches its pooling.

Feature-level synthetic clips (``make_event_type_features``) carry their class evidence either at
every step (continuous), at a few moments where audio and video agree (instant) or on the audio
onsets (rhythmic). A tiny fusion model (the five heads) is trained with the paper's multi-head
loss for 200 full-batch steps on CPU. Then the instant head must be the most accurate head on
instant clips, the onset head on rhythmic clips, and the majority vote at least as accurate as
the continuous head alone. A model whose instant and onset pooling are swapped must fail the same
check, so the check depends on the layers doing what eqs 2-3 say.
"""

from __future__ import annotations

import torch

from avperceive.analysis.event_types import majority_vote, make_event_type_features
from avperceive.nn.fusion import EventSpecificFusion, multi_head_loss

NUM_CLASSES, STEPS, DIM, K = 6, 50, 16, 5
MARGIN = 0.2


class SwappedFusion(EventSpecificFusion):
    """Instant head fed the onset pooling and vice versa (a deliberately wrong model)."""

    def pool(self, z_v, z_a, onset_mask=None, padding_mask=None):
        pooled = super().pool(z_v, z_a, onset_mask, padding_mask)
        pooled["instant"], pooled["onset"] = pooled["onset"], pooled["instant"]
        return pooled


def _train_and_score(cls) -> dict:
    train = make_event_type_features(100, NUM_CLASSES, STEPS, DIM, moments=K, seed=0)
    test = make_event_type_features(100, NUM_CLASSES, STEPS, DIM, moments=K, seed=1)
    torch.manual_seed(0)
    model = cls(DIM, NUM_CLASSES, k=K)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(200):
        loss = multi_head_loss(model(train["z_v"], train["z_a"], train["onset_mask"]), train["y"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        logits = model(test["z_v"], test["z_a"], test["onset_mask"])
    y, kind = test["y"], test["clip_type"]
    acc = {
        name: [((o.argmax(-1) == y)[kind == c]).float().mean().item() for c in range(3)] for name, o in logits.items()
    }
    acc["vote"] = [((majority_vote(logits) == y)[kind == c]).float().mean().item() for c in range(3)]
    overall = {name: sum(a) / 3 for name, a in acc.items()}  # equal clips per type
    return {"per_type": acc, "overall": overall, "final_loss": loss.item()}


def _specialisation_failures(result: dict) -> list[str]:
    """Which of the three claims fail (empty list: all hold with the margin)."""
    per_type, overall = result["per_type"], result["overall"]
    heads = [h for h in per_type if h != "vote"]
    failures = []
    for head, clip_type in (("instant", 1), ("onset", 2)):
        best_other = max(per_type[h][clip_type] for h in heads if h != head)
        if per_type[head][clip_type] < best_other + MARGIN:
            failures.append(f"{head} head not the best on clip type {clip_type} by {MARGIN}")
    if overall["vote"] < overall["continuous"]:
        failures.append("vote below the continuous head")
    return failures


def test_each_head_wins_on_its_event_type():
    result = _train_and_score(EventSpecificFusion)
    print(result)
    per_type = result["per_type"]
    assert _specialisation_failures(result) == []
    assert per_type["instant"][1] >= 0.7 and per_type["onset"][2] >= 0.8
    assert per_type["continuous"][0] >= 0.8


def test_swapping_instant_and_onset_pooling_breaks_the_claims():
    result = _train_and_score(SwappedFusion)
    print(result)
    failures = _specialisation_failures(result)
    assert any("instant" in f for f in failures) and any("onset" in f for f in failures)
