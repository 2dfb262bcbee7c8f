"""Pairwise similarity in float32, the common first step of the in-batch objectives.

Every loss of :mod:`avperceive.nn.losses` turns bf16 / fp16 embeddings into float32 before the
similarity matrix, so logits divided by a small temperature (``1/0.01 = 100``) and their
``logsumexp`` never overflow the half-precision range; gradients flow back in the input dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["pairwise_similarity", "upcast"]


def upcast(x: Tensor) -> Tensor:
    """``x`` in float32 when it is a half type (bf16 / fp16), unchanged otherwise (fp32 / fp64)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def pairwise_similarity(a: Tensor, v: Tensor, *, normalize: bool = True) -> Tensor:
    """``S_ij = cos(a_i, v_j)`` (``normalize=True``) or ``a_i · v_j``, computed in at least float32.

    Args:
        a: ``(N, D)``; v: ``(M, D)``.

    Returns:
        ``(N, M)`` similarities.
    """
    if a.dim() != 2 or v.dim() != 2 or a.shape[-1] != v.shape[-1]:
        raise ValueError(f"a and v must be (N, D) and (M, D) with equal D, got {tuple(a.shape)} and {tuple(v.shape)}")
    a, v = upcast(a), upcast(v)
    if normalize:
        a, v = F.normalize(a, dim=-1), F.normalize(v, dim=-1)
    return a @ v.transpose(0, 1)
