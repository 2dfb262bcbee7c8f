"""Deep CCA correlation objective (Andrew, Arora, Bilmes & Livescu, ICML 2013, eq. 10).

For projections ``H₁ = f(x₁) (N, o₁)`` and ``H₂ = g(x₂) (N, o₂)`` of a batch of pairs, with centred
``H̄`` and ridge terms ``r₁, r₂``::

    Σ₁₂ = H̄₁ᵀ H̄₂ / (N − 1),  Σ₁₁ = H̄₁ᵀ H̄₁ / (N − 1) + r₁ I,  Σ₂₂ = H̄₂ᵀ H̄₂ / (N − 1) + r₂ I
    T = Σ₁₁^{-1/2} Σ₁₂ Σ₂₂^{-1/2}
    corr(H₁, H₂) = ‖T‖_tr = Σ σ_k(T)       (all canonical correlations, or the top ``k``)
    L = −corr

Maximising it drives the whitened cross-correlation matrix toward the identity (its singular
values, the canonical correlations, toward 1). ``T`` is formed with Cholesky whitening
(``L₁⁻¹ Σ₁₂ L₂⁻ᵀ``, ``Σ = L Lᵀ``), which has the singular values of the symmetric form above
(the two whitening matrices differ by an orthogonal factor) and stays differentiable when
eigenvalues repeat. Computed in float32 (float64 inputs stay float64); needs at least 2 valid items.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...errors import ConfigError
from .similarity import upcast

__all__ = ["dcca_loss", "canonical_correlations"]


def canonical_correlations(h1: Tensor, h2: Tensor, *, reg: float = 1e-3, valid: Tensor | None = None) -> Tensor:
    """Singular values of ``T`` (descending), ``(min(o₁, o₂),)``: the regularised canonical correlations."""
    if h1.dim() != 2 or h2.dim() != 2 or h1.shape[0] != h2.shape[0]:
        raise ValueError(f"h1 and h2 must be (N, o1) and (N, o2), got {tuple(h1.shape)} and {tuple(h2.shape)}")
    if valid is not None:
        keep = valid.to(device=h1.device, dtype=torch.bool)
        h1, h2 = h1[keep], h2[keep]
    n = h1.shape[0]
    if n < 2:
        raise ConfigError(f"deep CCA needs at least 2 valid items in the batch, got {n}")
    if reg < 0:
        raise ConfigError(f"reg must be >= 0, got {reg}")
    h1, h2 = upcast(h1), upcast(h2)
    h1 = h1 - h1.mean(0, keepdim=True)
    h2 = h2 - h2.mean(0, keepdim=True)
    s12 = h1.transpose(0, 1) @ h2 / (n - 1)
    s11 = h1.transpose(0, 1) @ h1 / (n - 1) + reg * torch.eye(h1.shape[1], dtype=h1.dtype, device=h1.device)
    s22 = h2.transpose(0, 1) @ h2 / (n - 1) + reg * torch.eye(h2.shape[1], dtype=h2.dtype, device=h2.device)
    l1 = torch.linalg.cholesky(s11)
    l2 = torch.linalg.cholesky(s22)
    left = torch.linalg.solve_triangular(l1, s12, upper=False)  # L1^-1 S12
    t = torch.linalg.solve_triangular(l2, left.transpose(0, 1), upper=False).transpose(0, 1)  # ... L2^-T
    return torch.linalg.svdvals(t)


def dcca_loss(
    h1: Tensor, h2: Tensor, *, reg: float = 1e-3, top_k: int | None = None, valid: Tensor | None = None
) -> Tensor:
    """Negative total (or top-``k``) canonical correlation of two projected views.

    Args:
        h1: ``(N, o₁)``; h2: ``(N, o₂)`` (row ``i`` of each is a pair).
        reg: ridge ``r₁ = r₂`` added to the auto-covariances (must be > 0 unless ``N > o``).
        top_k: sum only the ``k`` largest correlations (DCCA's ``outdim_size``); ``None`` = all.
        valid: boolean ``(N,)``; padded rows are left out of the covariances.

    Returns:
        scalar ``−corr``; −min(o₁, o₂) at most in magnitude (when ``reg → 0``).
    """
    sv = canonical_correlations(h1, h2, reg=reg, valid=valid)
    if top_k is not None:
        if top_k < 1:
            raise ConfigError(f"top_k must be >= 1, got {top_k}")
        sv = sv[:top_k]
    return -sv.sum()
