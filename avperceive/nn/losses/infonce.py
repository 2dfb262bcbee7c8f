"""Symmetric InfoNCE and MIL-NCE for coordinated audio-video embeddings.

**InfoNCE** (Oord, Li & Vinyals 2018, eq. 4; symmetric a→v / v→a form of CLIP, Radford et al.
2021), as listed in the audio-visual correlation survey of Vilaça, Yu & Viana with its printed
typo corrected (the denominator sums the positive once and the negatives v′ ≠ v, not the positive
pair again). With ``s_ij = cos(a_i, v_j)`` (or the dot product) and temperature τ::

    ℓ_i^{a→v} = −log [ exp(s_ii/τ) / (exp(s_ii/τ) + Σ_{j≠i} exp(s_ij/τ)) ]
    ℓ_i^{v→a} = −log [ exp(s_ii/τ) / (exp(s_ii/τ) + Σ_{j≠i} exp(s_ji/τ)) ]
    L = ½ (mean_i ℓ_i^{a→v} + mean_i ℓ_i^{v→a})

**MIL-NCE** (Miech et al., "End-to-End Learning of Visual Representations from Uncurated
Instructional Videos", CVPR 2020, eq. 1) lets an anchor have several positives P_i (e.g. the audio
windows around a video clip). Written as in the authors' released loss, the denominator of anchor
``i`` holds its row (all candidates) and the columns of its positives (all anchors against each
positive), so the positives appear there twice::

    ℓ_i = −log [ Σ_{j∈P_i} exp(s_ij/τ) / (Σ_j exp(s_ij/τ) + Σ_{j∈P_i} Σ_k exp(s_kj/τ)) ]

Both assume in-batch negatives: every other item of the (global, under DDP) batch is a negative,
so larger batches give more negatives and the loss of a random embedding is ``log N``. Padded
items (``valid = False``) are neither anchors nor negatives. Logits and ``logsumexp`` are computed
in float32 whatever the input dtype.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ...errors import ConfigError
from .gather import gather_batch
from .similarity import pairwise_similarity

__all__ = ["info_nce", "mil_nce", "LogitScale", "InfoNCELoss", "MILNCELoss"]


def _valid_or_all(valid: Tensor | None, n: int, device: torch.device) -> Tensor:
    if valid is None:
        return torch.ones(n, dtype=torch.bool, device=device)
    if valid.shape != (n,):
        raise ValueError(f"valid must be a boolean (N,) = ({n},) mask, got {tuple(valid.shape)}")
    return valid.to(device=device, dtype=torch.bool)


def _as_temperature(temperature: float | Tensor) -> Tensor | float:
    if isinstance(temperature, Tensor):
        return temperature.float()
    if temperature <= 0:
        raise ConfigError(f"temperature must be > 0, got {temperature}")
    return float(temperature)


def info_nce(
    a: Tensor,
    v: Tensor,
    *,
    temperature: float | Tensor = 0.07,
    valid: Tensor | None = None,
    normalize: bool = True,
    gather: bool = True,
) -> Tensor:
    """Symmetric InfoNCE of paired embeddings (module docstring for the formula).

    Args:
        a: audio embeddings ``(B, D)``; v: visual embeddings ``(B, D)``; row ``i`` of each is a pair.
        temperature: τ, a float or a scalar tensor (e.g. from :class:`LogitScale`).
        valid: boolean ``(B,)``; padded items (False) are neither anchors nor negatives.
        normalize: cosine similarity (True) or raw dot product.
        gather: under ``torch.distributed``, use the negatives of every rank (see :mod:`.gather`).

    Returns:
        scalar float32 loss; ``log N`` for N valid all-equal embeddings, 0 for a single item.
    """
    if a.shape != v.shape or a.dim() != 2:
        raise ValueError(f"a and v must both be (B, D), got {tuple(a.shape)} and {tuple(v.shape)}")
    a, v, valid = gather_batch(a, v, valid, enabled=gather)
    keep = _valid_or_all(valid, a.shape[0], a.device)
    if not bool(keep.all()):
        a, v = a[keep], v[keep]
    logits = pairwise_similarity(a, v, normalize=normalize) / _as_temperature(temperature)
    if logits.shape[0] == 0:
        return logits.sum()
    pos = logits.diagonal()
    loss_av = torch.logsumexp(logits, dim=1) - pos
    loss_va = torch.logsumexp(logits, dim=0) - pos
    return 0.5 * (loss_av.mean() + loss_va.mean())


def mil_nce(
    a: Tensor,
    v: Tensor,
    *,
    a_ids: Tensor | None = None,
    v_ids: Tensor | None = None,
    temperature: float | Tensor = 0.07,
    a_valid: Tensor | None = None,
    v_valid: Tensor | None = None,
    normalize: bool = True,
    gather: bool = True,
) -> Tensor:
    """MIL-NCE with several positives per anchor (module docstring for the formula).

    Two input forms:

    * bags: ``a (B, D)``, ``v (B, K, D)``: the K candidates of row ``i`` are the positives of
      anchor ``i``; ``v_valid (B, K)`` marks padded candidates of short bags;
    * ids: ``a (B, D)``, ``v (M, D)``, ``a_ids (B,)``, ``v_ids (M,)``: candidate ``j`` is a positive
      of anchor ``i`` when ``v_ids[j] == a_ids[i]`` (duplicate ids give several positives);
      ``v_valid (M,)``.

    ``a_valid (B,)`` drops padded anchors. The authors' loss uses raw dot products
    (``normalize=False, temperature=1``). An anchor without any valid positive is skipped.

    Returns:
        scalar float32 loss.
    """
    if v.dim() == 3:
        if a.dim() != 2 or v.shape[0] != a.shape[0]:
            raise ValueError(f"bag form needs a (B, D) and v (B, K, D), got {tuple(a.shape)} and {tuple(v.shape)}")
        if a_ids is not None or v_ids is not None:
            raise ConfigError("mil_nce: pass either bags v (B, K, D) or ids, not both")
        a, v, a_valid, v_valid = gather_batch(a, v, a_valid, v_valid, enabled=gather)
        b, k = v.shape[:2]
        a_ids = torch.arange(b, device=a.device)
        v_ids = a_ids.repeat_interleave(k)
        v = v.reshape(b * k, v.shape[-1])
        v_valid = None if v_valid is None else v_valid.reshape(b * k)
    else:
        if (a_ids is None) != (v_ids is None):
            raise ConfigError("mil_nce: give both a_ids and v_ids, or neither")
        if a_ids is None and a.shape[0] != v.shape[0]:
            raise ConfigError("mil_nce: a_ids and v_ids are needed when a and v differ in length")
        a, a_ids, a_valid = gather_batch(a, a_ids, a_valid, enabled=gather)
        v, v_ids, v_valid = gather_batch(v, v_ids, v_valid, enabled=gather)
        if a_ids is None:
            a_ids = torch.arange(a.shape[0], device=a.device)
            v_ids = a_ids
    a_keep = _valid_or_all(a_valid, a.shape[0], a.device)
    v_keep = _valid_or_all(v_valid, v.shape[0], a.device)
    positive = (a_ids.to(a.device)[:, None] == v_ids.to(a.device)[None, :])[a_keep][:, v_keep]
    a, v = a[a_keep], v[v_keep]
    logits = pairwise_similarity(a, v, normalize=normalize) / _as_temperature(temperature)
    column = torch.logsumexp(logits, dim=0)  # every valid anchor against candidate j
    has_positive = positive.any(dim=1)  # anchors without a valid positive are skipped as anchors
    logits, positive = logits[has_positive], positive[has_positive]
    if logits.shape[0] == 0:
        return logits.sum()
    neg_inf = torch.tensor(float("-inf"), device=logits.device)
    numerator = torch.logsumexp(torch.where(positive, logits, neg_inf), dim=1)
    column_of_positives = torch.logsumexp(torch.where(positive, column[None, :], neg_inf), dim=1)
    denominator = torch.logaddexp(torch.logsumexp(logits, dim=1), column_of_positives)
    return (denominator - numerator).mean()


class LogitScale(nn.Module):
    """The temperature τ of a contrastive loss, fixed or learned (CLIP's ``logit_scale``).

    Learned as ``log(1/τ)`` (Radford et al. 2021), initialised to ``1/temperature`` and clamped
    to ``1/τ ≤ max_scale`` (100 in CLIP) so training cannot collapse τ to zero.

    Args:
        temperature: initial (or fixed) τ > 0.
        learnable: learn τ (a parameter) or keep it fixed (a buffer).
        max_scale: upper bound of ``1/τ``.

    ``forward()`` returns τ as a float32 scalar tensor.
    """

    def __init__(self, temperature: float = 0.07, learnable: bool = True, max_scale: float = 100.0):
        super().__init__()
        if temperature <= 0 or max_scale <= 0:
            raise ConfigError(f"temperature and max_scale must be > 0, got {temperature} and {max_scale}")
        init = torch.tensor(math.log(1.0 / temperature), dtype=torch.float32)
        if learnable:
            self.log_scale = nn.Parameter(init)
        else:
            self.register_buffer("log_scale", init)
        self.max_log_scale = math.log(max_scale)

    def forward(self) -> Tensor:
        return torch.exp(-self.log_scale.float().clamp(max=self.max_log_scale))


class _TemperatureLoss(nn.Module):
    """Settings shared by the NCE losses: a fixed or learnable temperature (:class:`LogitScale`),
    L2 normalisation of the embeddings, gathering of negatives across ranks."""

    def __init__(
        self,
        temperature: float = 0.07,
        learnable_temperature: bool = False,
        normalize: bool = True,
        gather: bool = True,
    ):
        super().__init__()
        self.temperature = LogitScale(temperature, learnable=learnable_temperature)
        self.normalize, self.gather = normalize, gather


class InfoNCELoss(_TemperatureLoss):
    """:func:`info_nce` with a fixed or learnable temperature (:class:`LogitScale`).

    ``forward(a (B, D), v (B, D), valid=None) -> scalar``.
    """

    def forward(self, a: Tensor, v: Tensor, valid: Tensor | None = None) -> Tensor:
        return info_nce(a, v, temperature=self.temperature(), valid=valid, normalize=self.normalize, gather=self.gather)


class MILNCELoss(_TemperatureLoss):
    """:func:`mil_nce` with a fixed or learnable temperature; ``forward`` takes :func:`mil_nce`'s arguments."""

    def forward(self, a: Tensor, v: Tensor, **kwargs) -> Tensor:
        return mil_nce(a, v, temperature=self.temperature(), normalize=self.normalize, gather=self.gather, **kwargs)
