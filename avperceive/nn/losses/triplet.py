"""Triplet loss with batch-hard or semi-hard negative mining.

``L = max(0, d(x, x⁺) − d(x, x⁻) + ζ)`` with ``d`` the squared Euclidean distance (the survey's
form; ``squared=False`` gives the plain distance). Triplets are mined inside the (global, under
DDP) batch from class labels:

* ``"batch_hard"`` (Hermans, Beyer & Leibe, "In Defense of the Triplet Loss", 2017, eq. 5): per
  anchor, the farthest positive and the closest negative; mean over anchors that have both.
* ``"semi_hard"`` (Schroff, Kalenichenko & Philbin, FaceNet, CVPR 2015, §3.2; the rule of
  TensorFlow's ``triplet_semihard_loss``): per (anchor, positive) pair, the closest negative that is
  farther than the positive; when there is none, the farthest negative; mean over the pairs.

Cross-modal use: anchors ``x`` from one modality and candidates ``y`` from the other (positives =
candidates with the anchor's label); intra-modal use: ``y=None`` (the anchor itself is excluded
from its positives). Distances are computed in float32 whatever the input dtype.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ...errors import ConfigError
from .gather import gather_batch
from .similarity import upcast

__all__ = ["triplet_loss", "pairwise_distance"]


def pairwise_distance(x: Tensor, y: Tensor, *, squared: bool = True) -> Tensor:
    """``(N, M)`` Euclidean distances (squared by default) in at least float32."""
    x, y = upcast(x), upcast(y)
    d2 = (x * x).sum(-1)[:, None] + (y * y).sum(-1)[None, :] - 2.0 * x @ y.transpose(0, 1)
    d2 = d2.clamp(min=0.0)
    return d2 if squared else torch.sqrt(d2.clamp(min=1e-12))


def triplet_loss(
    x: Tensor,
    labels: Tensor,
    y: Tensor | None = None,
    y_labels: Tensor | None = None,
    *,
    margin: float = 0.2,
    mining: Literal["batch_hard", "semi_hard"] = "batch_hard",
    squared: bool = True,
    normalize: bool = False,
    x_valid: Tensor | None = None,
    y_valid: Tensor | None = None,
    gather: bool = True,
) -> Tensor:
    """Mined triplet loss (module docstring for the mining rules).

    Args:
        x: anchors ``(N, D)`` with ``labels`` ``(N,)``.
        y, y_labels: candidates ``(M, D)`` and their labels; ``None`` = ``x`` itself (intra-modal).
        margin: ζ.
        mining: ``"batch_hard"`` or ``"semi_hard"``.
        squared: squared Euclidean distance (default) or the distance itself.
        normalize: L2-normalise the embeddings first.
        x_valid, y_valid: boolean masks; padded items are neither anchors nor candidates.

    Returns:
        scalar float32 loss (0 when no anchor has both a positive and a negative, e.g. a
        batch of one item).
    """
    if mining not in ("batch_hard", "semi_hard"):
        raise ConfigError(f"mining must be 'batch_hard' or 'semi_hard', got {mining!r}")
    if x.dim() != 2 or labels.shape != (x.shape[0],):
        raise ValueError(f"x must be (N, D) with labels (N,), got {tuple(x.shape)} and {tuple(labels.shape)}")
    intra = y is None
    x, labels, x_valid = gather_batch(x, labels, x_valid, enabled=gather)
    if intra:
        y, y_labels, y_valid = x, labels, x_valid
    else:
        if y_labels is None or y_labels.shape != (y.shape[0],):
            raise ValueError("y_labels (M,) must be given with y (M, D)")
        y, y_labels, y_valid = gather_batch(y, y_labels, y_valid, enabled=gather)
    if normalize:
        x, y = F.normalize(upcast(x), dim=-1), F.normalize(upcast(y), dim=-1)
    d = pairwise_distance(x, y, squared=squared)
    n, m = d.shape
    dev = d.device
    xv = torch.ones(n, dtype=torch.bool, device=dev) if x_valid is None else x_valid.bool().to(dev)
    yv = torch.ones(m, dtype=torch.bool, device=dev) if y_valid is None else y_valid.bool().to(dev)
    same = labels.to(dev)[:, None] == y_labels.to(dev)[None, :]
    usable = xv[:, None] & yv[None, :]
    positive = same & usable
    if intra:
        positive = positive & ~torch.eye(n, dtype=torch.bool, device=dev)
    negative = ~same & usable
    if mining == "batch_hard":
        anchors = positive.any(1) & negative.any(1)
        hardest_pos = torch.where(positive, d, torch.zeros_like(d)).amax(dim=1)
        hardest_neg = torch.where(negative, d, torch.full_like(d, float("inf"))).amin(dim=1)
        per_anchor = F.relu(hardest_pos - hardest_neg + margin)
        return torch.where(anchors, per_anchor, 0.0).sum() / anchors.sum().clamp(min=1)
    # semi-hard: one term per (anchor i, positive p)
    has_neg = negative.any(1)
    pairs = positive & has_neg[:, None]  # (n, m)
    d_ap = d[:, :, None]  # (n, m_pos, 1)
    d_an = d[:, None, :]  # (n, 1, m_neg)
    neg = negative[:, None, :]
    farther = neg & (d_an > d_ap)
    inf = torch.tensor(float("inf"), device=dev)
    closest_farther = torch.where(farther, d_an, inf).amin(dim=2)
    farthest = torch.where(neg, d_an, -inf).amax(dim=2).expand(n, m)
    chosen = torch.where(farther.any(2), closest_farther, farthest)
    per_pair = F.relu(d - torch.where(pairs, chosen, d) + margin)
    return torch.where(pairs, per_pair, 0.0).sum() / pairs.sum().clamp(min=1)
