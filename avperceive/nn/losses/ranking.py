"""Bidirectional hinge ranking and masked-margin softmax (MMS) over in-batch pairs.

Both take paired embeddings ``a (B, D)``, ``v (B, D)`` with ``s_ij = cos(a_i, v_j)`` (or the dot
product) and treat every other item of the (global, under DDP) batch as a negative. Items that
share an id (``ids``: same video, same class) are not negatives of each other (the mask ``M`` of
MMS); padded items (``valid = False``) are neither anchors nor negatives.

**Hinge ranking** (Karpathy & Fei-Fei 2015; Kiros et al. 2014), the survey's hinge loss with its
two printed-identical terms corrected to the two retrieval directions::

    L = mean_i Σ_{j∈N_i} [ max(0, α − s_ii + s_ij) + max(0, α − s_ii + s_ji) ]

With ``hardest=True`` the sums become maxima over the negatives (VSE++, Faghri et al. 2018).

**Masked-margin softmax** (Ilharco, Zhang & Baldridge, "Large-scale representation learning from
visually grounded untranscribed speech", CoNLL 2019, eq. 2), with the survey's index typos
corrected: the margin δ is subtracted from the positive logit in both directions::

    L = −mean_i [ log e^{(s_ii−δ_i)/τ} / (e^{(s_ii−δ_i)/τ} + Σ_{j≠i} M_ij e^{s_ij/τ})
                + log e^{(s_ii−δ_i)/τ} / (e^{(s_ii−δ_i)/τ} + Σ_{j≠i} M_ji e^{s_ji/τ}) ]

``M_ij = 0`` for masked pairs (same id, padding). The margin δ is fixed, **scheduled** (rising
linearly from 0 to δ_max over ``warmup_steps``, :func:`scheduled_margin`) or **adaptive**
(δ_i = δ_max (1 − sg(cos(a_i, v_i))) / 2: larger for pairs that are still far apart,
:func:`adaptive_margin`; the survey leaves the margin rule open, this is the library's choice).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import ConfigError
from .gather import gather_batch
from .similarity import pairwise_similarity, upcast

__all__ = [
    "hinge_ranking_loss",
    "masked_margin_softmax",
    "scheduled_margin",
    "adaptive_margin",
    "MaskedMarginSoftmaxLoss",
    "negative_mask",
]


def negative_mask(n: int, ids: Tensor | None, valid: Tensor | None, device: torch.device) -> Tensor:
    """``(n, n)`` boolean: True where ``j`` is a negative of ``i`` (``j ≠ i``, different id, both valid)."""
    if ids is None:
        mask = ~torch.eye(n, dtype=torch.bool, device=device)
    else:
        ids = ids.to(device)
        mask = ids[:, None] != ids[None, :]
    if valid is not None:
        valid = valid.to(device=device, dtype=torch.bool)
        mask = mask & valid[:, None] & valid[None, :]
    return mask


def _prepare(a: Tensor, v: Tensor, ids: Tensor | None, valid: Tensor | None, gather: bool):
    if a.shape != v.shape or a.dim() != 2:
        raise ValueError(f"a and v must both be (B, D), got {tuple(a.shape)} and {tuple(v.shape)}")
    for name, t in (("ids", ids), ("valid", valid)):
        if t is not None and t.shape != (a.shape[0],):
            raise ValueError(f"{name} must be ({a.shape[0]},), got {tuple(t.shape)}")
    a, v, ids, valid = gather_batch(a, v, ids, valid, enabled=gather)
    keep = torch.ones(a.shape[0], dtype=torch.bool, device=a.device) if valid is None else valid.bool().to(a.device)
    return a, v, ids, keep


def hinge_ranking_loss(
    a: Tensor,
    v: Tensor,
    *,
    margin: float = 0.2,
    ids: Tensor | None = None,
    valid: Tensor | None = None,
    hardest: bool = False,
    normalize: bool = True,
    gather: bool = True,
) -> Tensor:
    """Bidirectional hinge ranking loss (module docstring for the formula).

    Args:
        a, v: paired embeddings ``(B, D)``.
        margin: α.
        ids: ``(B,)``; items sharing an id are not negatives of each other.
        valid: boolean ``(B,)``; padded items are neither anchors nor negatives.
        hardest: hardest negative only (VSE++) instead of the sum over negatives.

    Returns:
        scalar float32 loss, the mean over valid anchors (0 when no anchor has a negative).
    """
    a, v, ids, keep = _prepare(a, v, ids, valid, gather)
    s = pairwise_similarity(a, v, normalize=normalize)
    neg = negative_mask(s.shape[0], ids, keep, s.device)
    pos = s.diagonal()
    cost_av = F.relu(margin - pos[:, None] + s) * neg  # anchor a_i against v_j
    cost_va = F.relu(margin - pos[:, None] + s.transpose(0, 1)) * neg  # anchor v_i against a_j
    if hardest:
        per_anchor = cost_av.amax(dim=1) + cost_va.amax(dim=1)
    else:
        per_anchor = cost_av.sum(dim=1) + cost_va.sum(dim=1)
    return per_anchor[keep].sum() / keep.sum().clamp(min=1)


def scheduled_margin(step: int, max_margin: float, warmup_steps: int) -> float:
    """δ(step) = δ_max · min(1, step / warmup_steps): a margin rising linearly to ``max_margin``."""
    if warmup_steps <= 0:
        return float(max_margin)
    return float(max_margin) * min(1.0, max(0, step) / warmup_steps)


def adaptive_margin(a: Tensor, v: Tensor, max_margin: float) -> Tensor:
    """δ_i = δ_max (1 − cos(a_i, v_i)) / 2 per pair, without gradient: ``(B,)`` in ``[0, δ_max]``."""
    with torch.no_grad():
        cos = F.cosine_similarity(upcast(a), upcast(v), dim=-1)
        return max_margin * (1.0 - cos) / 2.0


def masked_margin_softmax(
    a: Tensor,
    v: Tensor,
    *,
    margin: float | Tensor = 0.1,
    temperature: float = 0.07,
    ids: Tensor | None = None,
    valid: Tensor | None = None,
    normalize: bool = True,
    gather: bool = True,
) -> Tensor:
    """Masked-margin softmax loss (module docstring for the formula).

    Args:
        a, v: paired embeddings ``(B, D)``.
        margin: δ, a float or a per-pair tensor ``(B,)`` (e.g. :func:`adaptive_margin`), in
            similarity units (before the temperature).
        temperature: τ (1 with ``normalize=False`` gives the paper's raw dot products).
        ids: ``(B,)``; items sharing an id are masked out of each other's denominators (M).
        valid: boolean ``(B,)``; padded items are neither anchors nor negatives.

    Returns:
        scalar float32 loss (the sum of both directions, mean over valid anchors).
    """
    if temperature <= 0:
        raise ConfigError(f"temperature must be > 0, got {temperature}")
    if isinstance(margin, Tensor) and margin.dim() == 1:
        if margin.shape[0] != a.shape[0]:
            raise ValueError(f"a per-pair margin must be ({a.shape[0]},), got {tuple(margin.shape)}")
        (margin_all,) = gather_batch(margin.detach().float(), enabled=gather)
    else:
        margin_all = margin
    a, v, ids, keep = _prepare(a, v, ids, valid, gather)
    s = pairwise_similarity(a, v, normalize=normalize)
    n = s.shape[0]
    neg = negative_mask(n, ids, keep, s.device)
    eye = torch.eye(n, dtype=torch.bool, device=s.device)
    delta = torch.as_tensor(margin_all, dtype=s.dtype, device=s.device).expand(n)
    logits = (s - torch.diag(delta)) / temperature
    allowed = neg | eye
    neg_inf = torch.tensor(float("-inf"), device=s.device)
    pos = logits.diagonal()
    loss_av = torch.logsumexp(torch.where(allowed, logits, neg_inf), dim=1) - pos
    loss_va = torch.logsumexp(torch.where(allowed.transpose(0, 1), logits.transpose(0, 1), neg_inf), dim=1) - pos
    per_anchor = loss_av + loss_va
    return per_anchor[keep].sum() / keep.sum().clamp(min=1)


class MaskedMarginSoftmaxLoss(nn.Module):
    """MMS with a fixed, scheduled or adaptive margin.

    Args:
        margin: δ (``"fixed"``) or δ_max (``"scheduled"``, ``"adaptive"``).
        mode: ``"fixed"`` | ``"scheduled"`` | ``"adaptive"``.
        warmup_steps: length of the linear ramp of ``"scheduled"``.
        temperature, normalize, gather: as :func:`masked_margin_softmax`.

    ``forward(a (B, D), v (B, D), ids=None, valid=None, step=None)``: ``"scheduled"`` uses ``step``
    when given, otherwise an internal counter advanced by every training-mode call.
    """

    def __init__(
        self,
        margin: float = 0.1,
        mode: Literal["fixed", "scheduled", "adaptive"] = "fixed",
        warmup_steps: int = 1000,
        temperature: float = 0.07,
        normalize: bool = True,
        gather: bool = True,
    ):
        super().__init__()
        if mode not in ("fixed", "scheduled", "adaptive"):
            raise ConfigError(f"mode must be 'fixed', 'scheduled' or 'adaptive', got {mode!r}")
        self.margin, self.mode, self.warmup_steps = float(margin), mode, int(warmup_steps)
        self.temperature, self.normalize, self.gather = temperature, normalize, gather
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def current_margin(self, a: Tensor, v: Tensor, step: int | None = None) -> float | Tensor:
        """The margin the next call uses: a float, or a ``(B,)`` tensor in ``"adaptive"`` mode."""
        if self.mode == "fixed":
            return self.margin
        if self.mode == "scheduled":
            return scheduled_margin(int(self.step) if step is None else step, self.margin, self.warmup_steps)
        return adaptive_margin(a, v, self.margin)

    def forward(
        self, a: Tensor, v: Tensor, ids: Tensor | None = None, valid: Tensor | None = None, step: int | None = None
    ) -> Tensor:
        margin = self.current_margin(a, v, step)
        if self.training and step is None:
            self.step += 1
        return masked_margin_softmax(
            a,
            v,
            margin=margin,
            temperature=self.temperature,
            ids=ids,
            valid=valid,
            normalize=self.normalize,
            gather=self.gather,
        )
