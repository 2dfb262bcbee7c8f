"""The one attention primitive of avperceive: ``softmax(s · Q Kᵀ + B) V`` on two paths.

Vaswani et al., "Attention Is All You Need" (NeurIPS 2017), eq. 1, with an optional additive
logit bias ``B`` (relative-position bias, shifted-window mask, padding mask) and a free scale
``s`` (``1/√d`` by default; latent-token attention uses ``s = 1``; Swin-V2's cosine attention
passes unit-norm q/k and folds its per-head logit scale into ``q``).

Every attention-like op of the library calls :func:`attend` (or holds an :class:`Attend`):
latent-token attention (LAVisH / DG-SCT Ω), windowed attention of Swin-V2 and HTS-AT, the
temporal module's multi-head attention, and the generic cross-modal attention. The choice
between the two paths lives here only:

* ``"reference"`` — the formula written plainly (matmul, add, softmax, matmul): the readable
  specification, and the baseline of the benchmarks;
* ``"fused"`` — :func:`torch.nn.functional.scaled_dot_product_attention` (the default).

Both paths keep the softmax statistics in the input dtype the way SDPA does; callers that run in
bf16/fp16 get SDPA's internal fp32 accumulation on the fused path.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

__all__ = ["AttnImpl", "ATTN_IMPLS", "check_attn_impl", "attend", "Attend", "set_attn_impl"]

AttnImpl = Literal["fused", "reference"]
"""Which path an attention op takes: ``"fused"`` (SDPA, default) or ``"reference"`` (plain formula)."""

ATTN_IMPLS: tuple[str, ...] = ("fused", "reference")


def check_attn_impl(attn_impl: str) -> str:
    """Return ``attn_impl`` if it is one of :data:`ATTN_IMPLS`, else raise :class:`ConfigError`."""
    if attn_impl not in ATTN_IMPLS:
        raise ConfigError(f"attn_impl must be one of {ATTN_IMPLS}, got {attn_impl!r}")
    return attn_impl


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
    scale: float | None = None,
    dropout_p: float = 0.0,
    impl: AttnImpl = "fused",
    bf16_matmul: bool = False,
) -> torch.Tensor:
    """``softmax(scale · q kᵀ + bias) v`` over the last two axes.

    Args:
        q: queries ``(..., Lq, d)``.
        k: keys ``(..., Lk, d)``; leading axes broadcast against those of ``q`` (e.g. ``(1, Lk, d)``).
        v: values ``(..., Lk, dv)``, broadcast like ``k``.
        bias: additive logits broadcastable to ``(..., Lq, Lk)`` (float), or ``None``.
        scale: logit scale; ``None`` means ``1/√d``.
        dropout_p: dropout on the attention weights (pass 0 in eval).
        impl: ``"fused"`` or ``"reference"``.
        bf16_matmul: allow the bfloat16-matmul route of the fused path for bfloat16 CPU inputs with
            at most :data:`BF16_MATMUL_MAX_KEYS` keys (see :func:`_attend_bf16_matmul`); callers opt in
            (windowed attention does; the temporal module's attention, whose is-event logit nearly
            cancels, does not).

    Returns:
        ``(..., Lq, dv)``.

    Three-dimensional inputs ``(B, L, d)`` get a singleton head axis on the fused path: on CPU the
    4-D layout runs SDPA's fused kernel in parallel over the batch (measured 2–5× faster than the
    same call on 3-D tensors).
    """
    check_attn_impl(impl)
    if impl == "reference":
        s = q.shape[-1] ** -0.5 if scale is None else scale
        logits = (q @ k.transpose(-2, -1)) * s
        if bias is not None:
            logits = logits + bias.to(logits.dtype)
        weights = logits.softmax(dim=-1)
        if dropout_p > 0.0:
            weights = F.dropout(weights, p=dropout_p)
        return weights @ v
    if bias is not None:
        bias = bias.to(q.dtype)
    if bf16_matmul and _small_bf16_windows(q, k, dropout_p):
        return _attend_bf16_matmul(q, k, v, bias, scale)
    headless = q.dim() == 3
    if headless:  # (B, L, d) -> (B, 1, L, d)
        q, k, v = q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1)
        if bias is not None and bias.dim() == 3:
            bias = bias.unsqueeze(1)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p, scale=scale)
    return out.squeeze(1) if headless else out


#: Longest key sequence that takes the bfloat16-matmul route on CPU (see :func:`_attend_bf16_matmul`).
BF16_MATMUL_MAX_KEYS = 64


def _small_bf16_windows(q: torch.Tensor, k: torch.Tensor, dropout_p: float) -> bool:
    """bfloat16 on CPU, at most :data:`BF16_MATMUL_MAX_KEYS` keys, no dropout, no autograd."""
    return (
        q.dtype == torch.bfloat16 and q.device.type == "cpu" and k.shape[-2] <= BF16_MATMUL_MAX_KEYS
        and dropout_p == 0.0 and not (torch.is_grad_enabled() and (q.requires_grad or k.requires_grad))
    )


def _attend_bf16_matmul(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None, scale: float | None
) -> torch.Tensor:
    """Eq. 1 with both products as bfloat16 matmuls (oneDNN's AVX512-BF16 kernels, float32 accumulation).

    PyTorch's CPU SDPA kernel converts bfloat16 to float32 and multiplies in float32; on short key
    sequences (HTS-AT's 8x8 windows, 64 keys) the bfloat16 matmuls measured 2.3x faster at one
    thread. The logits and the softmax weights are rounded to bfloat16 once each (SDPA keeps them in
    float32), which costs about 4x SDPA's relative error on that op (7.7e-3 vs 1.9e-3 on random
    unit-norm q/k); the model-level bounds of the bfloat16 parity tests still hold (docs/precision.md).
    The softmax statistics are float32: PyTorch's CPU softmax widens bfloat16 to float32 inside the
    kernel, bitwise equal to ``softmax(dtype=float32)`` rounded to bfloat16 (``tests/test_attention.py``)
    without the float32 copy (5x faster on HTS-AT's stage-0 logits, and 4 bytes less per logit).
    """
    s = q.shape[-1] ** -0.5 if scale is None else scale
    logits = torch.matmul(q * s if s != 1.0 else q, k.transpose(-2, -1))
    if bias is not None:
        logits += bias  # a fresh tensor, and no autograd on this route (_small_bf16_windows)
    return torch.matmul(torch.softmax(logits, dim=-1), v)


class Attend(nn.Module):
    """Module form of :func:`attend` that owns the path choice (as x-transformers' ``Attend``).

    Args:
        attn_impl: ``"fused"`` (default) or ``"reference"``.
        dropout: dropout on the attention weights, applied in training mode only.

    Shapes: ``forward(q (..., Lq, d), k (..., Lk, d), v (..., Lk, dv), bias=None, scale=None)
    -> (..., Lq, dv)``. Change the path on a built model with ``module.attn_impl = "reference"``
    (validated: an unknown name raises :class:`~avperceive.errors.ConfigError`), or on every
    ``Attend`` inside a model at once with :func:`set_attn_impl`. It holds no parameters, so adding
    it to a module does not change that module's state dict.
    """

    def __init__(self, attn_impl: AttnImpl = "fused", dropout: float = 0.0):
        super().__init__()
        self.attn_impl = attn_impl
        self.dropout = float(dropout)

    @property
    def attn_impl(self) -> str:
        """``"fused"`` or ``"reference"``."""
        return self._attn_impl

    @attn_impl.setter
    def attn_impl(self, value: AttnImpl) -> None:
        self._attn_impl = check_attn_impl(value)

    def extra_repr(self) -> str:
        return f"attn_impl={self.attn_impl!r}, dropout={self.dropout}"

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        bias: torch.Tensor | None = None,
        scale: float | None = None,
    ) -> torch.Tensor:
        p = self.dropout if self.training else 0.0
        return attend(q, k, v, bias=bias, scale=scale, dropout_p=p, impl=self.attn_impl)


def set_attn_impl(module: nn.Module, attn_impl: AttnImpl) -> nn.Module:
    """Set the path of every :class:`Attend` inside ``module`` (itself included); returns ``module``.

    Raises :class:`~avperceive.errors.ConfigError` for an unknown ``attn_impl`` before changing anything.
    """
    check_attn_impl(attn_impl)
    for m in module.modules():
        if isinstance(m, Attend):
            m.attn_impl = attn_impl
    return module


class AttnImplAttribute:
    """The ``attn_impl`` attribute of a module that holds :class:`Attend` sub-modules.

    Reading gives the path of the first :class:`Attend` found in the module (they are all switched
    together); setting validates the value and switches every one (:func:`set_attn_impl`). Declared
    once on the class::

        class MyAttention(nn.Module):
            attn_impl = AttnImplAttribute()
    """

    def __get__(self, module: nn.Module | None, owner: type | None = None):
        if module is None:
            return self
        return next(m for m in module.modules() if isinstance(m, Attend)).attn_impl

    def __set__(self, module: nn.Module, value: AttnImpl) -> None:
        set_attn_impl(module, value)

__all__.append("AttnImplAttribute")
