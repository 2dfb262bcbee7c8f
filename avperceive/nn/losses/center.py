"""Center loss (Wen, Zhang, Li & Qiao, "A Discriminative Feature Learning Approach for Deep Face
Recognition", ECCV 2016, eq. 2): intra-class compactness around learned class centres::

    L₂ = ½ mean_i ‖x_i − c_{y_i}‖²        (p = 2, the paper's form, averaged over the batch)
    L₁ =   mean_i ‖x_i − c_{y_i}‖₁        (p = 1)

The paper updates the centres with their own rate α; here they are parameters learned by the
optimiser with the rest of the model (give their parameter group a separate learning rate for α).
Combine with a classification or contrastive loss (L = L_cls + λ L_c). Float32 internally.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...errors import ConfigError
from .similarity import upcast

__all__ = ["center_loss", "CenterLoss"]


def center_loss(x: Tensor, labels: Tensor, centers: Tensor, *, p: int = 2, valid: Tensor | None = None) -> Tensor:
    """Center loss of features ``x (B, D)`` with labels ``(B,)`` against ``centers (K, D)``."""
    if p not in (1, 2):
        raise ConfigError(f"p must be 1 or 2, got {p}")
    if x.dim() != 2 or labels.shape != (x.shape[0],) or centers.dim() != 2 or centers.shape[1] != x.shape[1]:
        raise ValueError(
            f"x must be (B, D), labels (B,), centers (K, D); got {tuple(x.shape)}, {tuple(labels.shape)}, "
            f"{tuple(centers.shape)}"
        )
    diff = upcast(x) - upcast(centers)[labels.long()]
    per_item = 0.5 * (diff * diff).sum(-1) if p == 2 else diff.abs().sum(-1)
    if valid is None:
        return per_item.mean()
    keep = valid.to(device=per_item.device, dtype=torch.bool)
    return per_item[keep].sum() / keep.sum().clamp(min=1)


class CenterLoss(nn.Module):
    """Learned class centres ``(num_classes, dim)`` (zero-initialised) and :func:`center_loss`.

    ``forward(x (B, dim), labels (B,), valid=None) -> scalar``.
    """

    def __init__(self, num_classes: int, dim: int, p: int = 2):
        super().__init__()
        if p not in (1, 2):
            raise ConfigError(f"p must be 1 or 2, got {p}")
        self.centers = nn.Parameter(torch.zeros(num_classes, dim))
        self.p = p

    def forward(self, x: Tensor, labels: Tensor, valid: Tensor | None = None) -> Tensor:
        return center_loss(x, labels, self.centers, p=self.p, valid=valid)
