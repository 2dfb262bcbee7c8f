"""Event-type analysis with the event-specific heads (Senocak et al., WACV 2023, §4 and Tables 3-4).

Given the per-head logits ``{layer: (N, K)}`` of an :class:`avperceive.nn.EventSpecificFusion` model:

* :func:`majority_vote`: single-label prediction, the plurality of the heads' argmaxes; without a
  unique plurality of >= 2 votes, the label of the most confident head (max softmax; the paper
  leaves the tie rule open);
* :func:`union_multilabel`: the multi-label prediction ``P = U_i {argmax_j O_ij}`` (1 to 5 labels);
* :func:`assign_event_type`: the event type of a video with label ``y``, ``e* = argmax_i O_i,y``
  (on softmax probabilities by default: heads are comparable only after normalisation;
  the paper does not say);
* :func:`category_event_types`: the event type of a category, the majority of ``e*`` over its videos;
* :func:`event_type_table` (Table 4: categories per event type) and :func:`complementarity_table`
  (Table 3: videos correct only under one layer);
* :func:`make_event_type_features`: feature-level synthetic clips whose informative moments are
  continuous, instant or rhythmic (known ground truth for tests and tutorials).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError

__all__ = [
    "majority_vote",
    "union_multilabel",
    "assign_event_type",
    "category_event_types",
    "event_type_table",
    "complementarity_table",
    "make_event_type_features",
    "SYNTHETIC_CLIP_TYPES",
]


def _stack(logits: Mapping[str, Tensor]) -> Tensor:
    if not logits:
        raise ValueError("logits is empty; expected {layer: (N, K)}")
    shapes = {tuple(o.shape) for o in logits.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"every head must give (N, K) logits of one shape; got {sorted(shapes)}")
    return torch.stack(list(logits.values()), dim=1)  # (N, heads, K)


def majority_vote(logits: Mapping[str, Tensor]) -> Tensor:
    """Single-label vote of the heads.

    Args:
        logits: ``{layer: (N, K)}``.

    Returns:
        ``(N,)`` class indices: the plurality class of the heads' argmaxes when it is unique and
        has at least two votes, otherwise the argmax of the head with the highest max-softmax.
    """
    stacked = _stack(logits)
    preds = stacked.argmax(dim=-1)  # (N, heads)
    counts = F.one_hot(preds, stacked.shape[-1]).sum(dim=1)  # (N, K)
    top = counts.max(dim=-1)
    unique_top = (counts == top.values[:, None]).sum(dim=-1) == 1
    confidence = stacked.float().softmax(dim=-1).amax(dim=-1)  # (N, heads)
    most_confident = preds.gather(1, confidence.argmax(dim=-1, keepdim=True)).squeeze(1)
    return torch.where(unique_top & (top.values >= 2), top.indices, most_confident)


def union_multilabel(logits: Mapping[str, Tensor]) -> Tensor:
    """Multi-label prediction: the union of the heads' argmaxes.

    Returns:
        ``(N, K)`` bool, between 1 and ``len(logits)`` True entries per row.
    """
    stacked = _stack(logits)
    return F.one_hot(stacked.argmax(dim=-1), stacked.shape[-1]).amax(dim=1).bool()


def assign_event_type(logits: Mapping[str, Tensor], y: Tensor, *, normalize: str = "softmax") -> Tensor:
    """Event type of each video: the head that scores its ground-truth class highest.

    Args:
        logits: ``{layer: (N, K)}``.
        y: ``(N,)`` ground-truth classes.
        normalize: ``"softmax"`` (compare probabilities; default) or ``"none"`` (raw logits).

    Returns:
        ``(N,)`` indices into ``list(logits)`` (ties go to the earlier head).
    """
    if normalize not in ("softmax", "none"):
        raise ConfigError(f"normalize must be 'softmax' or 'none'; got {normalize!r}")
    stacked = _stack(logits).float()
    if normalize == "softmax":
        stacked = stacked.softmax(dim=-1)
    index = y.long().view(-1, 1, 1).expand(-1, stacked.shape[1], 1)
    return stacked.gather(2, index).squeeze(2).argmax(dim=1)


def category_event_types(event_types: Tensor, labels: Tensor, num_classes: int, num_types: int = 5) -> Tensor:
    """Event type of each category: the majority of its videos' event types.

    Args:
        event_types: ``(N,)`` from :func:`assign_event_type`.
        labels: ``(N,)`` ground-truth classes of the same videos.
        num_classes: ``K``.
        num_types: number of heads.

    Returns:
        ``(K,)`` event-type index per category (ties go to the earlier head); ``-1`` for a category
        with no videos.
    """
    if event_types.shape != labels.shape or event_types.ndim != 1:
        raise ValueError(
            f"event_types and labels must both be (N,); got {tuple(event_types.shape)}, {tuple(labels.shape)}"
        )
    counts = torch.zeros(num_classes, num_types, dtype=torch.long, device=labels.device)
    counts.index_put_((labels.long(), event_types.long()), torch.ones_like(labels, dtype=torch.long), accumulate=True)
    types = counts.argmax(dim=1)
    return torch.where(counts.sum(dim=1) > 0, types, torch.full_like(types, -1))


def event_type_table(category_types: Tensor, layer_names: Sequence[str]) -> dict[str, int]:
    """Table 4 of the paper: the number of categories assigned to each event type.

    Args:
        category_types: ``(K,)`` from :func:`category_event_types`.
        layer_names: the head names, in the order of the indices.

    Returns:
        ``{layer: count, ..., "total": categories with at least one video}``.
    """
    table = {name: int((category_types == i).sum()) for i, name in enumerate(layer_names)}
    table["total"] = int((category_types >= 0).sum())
    return table


def complementarity_table(logits: Mapping[str, Tensor], y: Tensor) -> dict[str, int]:
    """Table 3 of the paper: videos correct only under one of continuous / instant / onset.

    Returns:
        ``{"continuous": n, "instant": n, "onset": n, "instant_or_onset_not_continuous": n}``: for each
        layer the videos it classifies correctly while the other two do not, and the videos where
        instant or onset is correct and continuous is wrong.
    """
    needed = ("continuous", "instant", "onset")
    missing = [name for name in needed if name not in logits]
    if missing:
        raise ValueError(f"complementarity_table needs the heads {needed}; missing {missing}")
    correct = {name: logits[name].argmax(dim=-1) == y for name in needed}
    table = {}
    for name in needed:
        others = [correct[o] for o in needed if o != name]
        table[name] = int((correct[name] & ~others[0] & ~others[1]).sum())
    table["instant_or_onset_not_continuous"] = int(
        ((correct["instant"] | correct["onset"]) & ~correct["continuous"]).sum()
    )
    return table


SYNTHETIC_CLIP_TYPES: tuple[str, ...] = ("continuous", "instant", "rhythmic")


def make_event_type_features(
    clips_per_type: int,
    num_classes: int = 6,
    steps: int = 50,
    dim: int = 16,
    *,
    moments: int = 5,
    period: int = 5,
    noise: float = 0.5,
    seed: int = 0,
    class_seed: int = 0,
) -> dict[str, Tensor]:
    """Feature-level synthetic clips whose class evidence is continuous, instant or rhythmic.

    Each class ``y`` has a prototype ``P_y`` (a random unit vector shared by both modalities, drawn
    from ``class_seed`` so that splits drawn with different ``seed`` share the classes);
    every step gets Gaussian noise of std ``noise``.

    * continuous: every step carries weak evidence ``0.5 P_y`` in both modalities; ``moments`` decoy
      steps share one random vector in both modalities (a high ``s_t`` without class evidence) and
      the onset mask marks ``moments`` random steps;
    * instant: ``moments`` steps carry strong evidence ``3 P_y`` in both modalities (so ``s_t`` peaks
      there); every step carries a clip-constant random distractor (``0.5 N(0, I)``, one for video, one
      for audio); the onset mask marks ``moments`` random other steps;
    * rhythmic: every ``period``-th step (the onsets, random phase) carries ``2 P_y`` in both
      modalities; every step carries the distractors, and ``moments`` off-beat decoy steps a high ``s_t``.

    Returns:
        ``z_v, z_a (N, steps, dim)``, ``onset_mask (N, steps)`` bool, ``y (N,)``, ``clip_type (N,)``
        (index into :data:`SYNTHETIC_CLIP_TYPES`), with ``N = 3 * clips_per_type``.
    """
    proto = F.normalize(torch.randn(num_classes, dim, generator=torch.Generator().manual_seed(class_seed)), dim=-1)
    g = torch.Generator().manual_seed(seed)
    n = 3 * clips_per_type
    y = torch.randint(num_classes, (n,), generator=g)
    clip_type = torch.arange(3).repeat_interleave(clips_per_type)
    z_v = noise * torch.randn(n, steps, dim, generator=g)
    z_a = noise * torch.randn(n, steps, dim, generator=g)
    onset = torch.zeros(n, steps, dtype=torch.bool)
    for i in range(n):
        perm = torch.randperm(steps, generator=g)
        decoy = torch.randn(dim, generator=g)
        if clip_type[i] == 0:
            z_v[i] += 0.5 * proto[y[i]]
            z_a[i] += 0.5 * proto[y[i]]
            z_v[i, perm[:moments]] += decoy
            z_a[i, perm[:moments]] += decoy
            onset[i, perm[moments : 2 * moments]] = True
            continue
        z_v[i] += 0.5 * torch.randn(dim, generator=g)
        z_a[i] += 0.5 * torch.randn(dim, generator=g)
        if clip_type[i] == 1:
            z_v[i, perm[:moments]] += 3.0 * proto[y[i]]
            z_a[i, perm[:moments]] += 3.0 * proto[y[i]]
            onset[i, perm[moments : 2 * moments]] = True
        else:
            beats = torch.zeros(steps, dtype=torch.bool)
            beats[int(torch.randint(period, (1,), generator=g)) :: period] = True
            z_v[i, beats] += 2.0 * proto[y[i]]
            z_a[i, beats] += 2.0 * proto[y[i]]
            off_beat = perm[~beats[perm]][:moments]
            z_v[i, off_beat] += decoy
            z_a[i, off_beat] += decoy
            onset[i] = beats
    return {"z_v": z_v, "z_a": z_a, "onset_mask": onset, "y": y, "clip_type": clip_type}
