"""Cross-modal knowledge distillation.

The survey's distillation objective is the mean squared gap between student and teacher
embeddings (or predictions), per modality::

    L = mse(â, â_T) + mse(v̂, v̂_T)

It is cross-modal when the teacher saw the other modality (e.g. a visual teacher supervising an
audio student, SoundNet, Aytar, Vondrick & Torralba 2016; Owens et al. 2016). For class
predictions, the soft-target form of Hinton, Vinyals & Dean (2015, §2) is also given::

    L_KL = T² · mean_i KL(softmax(z_T,i / T) ‖ softmax(z_S,i / T))

The teacher is always detached; losses are computed in float32.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from ...errors import ConfigError
from .similarity import upcast

__all__ = ["distillation_mse", "distillation_kl", "cross_modal_distillation"]


def _check(student: Tensor, teacher: Tensor) -> None:
    if student.shape != teacher.shape:
        raise ValueError(f"student {tuple(student.shape)} and teacher {tuple(teacher.shape)} shapes differ")


def distillation_mse(student: Tensor, teacher: Tensor, *, valid: Tensor | None = None) -> Tensor:
    """Mean squared error to the (detached) teacher, ``(B, ...)`` each; ``valid (B,)`` drops padded rows."""
    _check(student, teacher)
    diff = (upcast(student) - upcast(teacher.detach())) ** 2
    per_item = diff.reshape(diff.shape[0], -1).mean(dim=1)
    if valid is None:
        return per_item.mean()
    keep = valid.to(device=per_item.device, dtype=torch.bool)
    return per_item[keep].sum() / keep.sum().clamp(min=1)


def distillation_kl(
    student_logits: Tensor, teacher_logits: Tensor, *, temperature: float = 4.0, valid: Tensor | None = None
) -> Tensor:
    """Hinton soft-target loss ``T² · KL(p_T ‖ p_S)`` on ``(B, C)`` logits, mean over valid rows."""
    _check(student_logits, teacher_logits)
    if temperature <= 0:
        raise ConfigError(f"temperature must be > 0, got {temperature}")
    log_p_s = F.log_softmax(upcast(student_logits) / temperature, dim=-1)
    log_p_t = F.log_softmax(upcast(teacher_logits.detach()) / temperature, dim=-1)
    per_item = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1) * temperature**2
    if valid is None:
        return per_item.mean()
    keep = valid.to(device=per_item.device, dtype=torch.bool)
    return per_item[keep].sum() / keep.sum().clamp(min=1)


def cross_modal_distillation(
    student: Mapping[str, Tensor],
    teacher: Mapping[str, Tensor],
    *,
    kind: str = "mse",
    temperature: float = 4.0,
    valid: Tensor | None = None,
) -> Tensor:
    """Sum over modalities of the distillation loss: ``{"audio": â, "visual": v̂}`` against the teacher's.

    Args:
        student, teacher: mappings with the same keys (e.g. ``"audio"``, ``"visual"``).
        kind: ``"mse"`` (embeddings or predictions) or ``"kl"`` (logits, :func:`distillation_kl`).
    """
    if set(student) != set(teacher):
        raise ConfigError(f"student keys {sorted(student)} and teacher keys {sorted(teacher)} differ")
    if kind not in ("mse", "kl"):
        raise ConfigError(f"kind must be 'mse' or 'kl', got {kind!r}")
    terms = [
        distillation_mse(student[k], teacher[k], valid=valid)
        if kind == "mse"
        else distillation_kl(student[k], teacher[k], temperature=temperature, valid=valid)
        for k in student
    ]
    return torch.stack(terms).sum()
