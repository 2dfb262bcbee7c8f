"""Shape checks for token streams ``[B, N, C]`` shared by the attention and adapter modules.

A token stream is a batch-first float tensor ``[B, N, C]`` (B samples, N tokens, C channels). The
adapters and the latent-token attention read two streams at once (own ``x``, other ``y``), which
must share the batch axis and the dtype. These checks raise :class:`ValueError` whose message names
the argument and the expected shape, so a wrong layout (e.g. a reference code's ``[B, C, N, 1]``)
is caught at the module boundary instead of deep inside a matmul.
"""

from __future__ import annotations

import torch

__all__ = ["check_tokens", "check_token_pair"]


def check_tokens(name: str, t: torch.Tensor, tokens: int | None, dim: int | None) -> None:
    """Raise ``ValueError`` unless ``t`` is a float ``[B, tokens, dim]`` stream (``None`` = any size).

    Args:
        name: the argument's name, used in the message (``"x"``, ``"y"``).
        t: the tensor to check.
        tokens: required N, or ``None``.
        dim: required C, or ``None``.
    """
    want = f"[B, {tokens if tokens is not None else 'N'}, {dim if dim is not None else 'C'}]"
    if not isinstance(t, torch.Tensor) or t.dim() != 3:
        shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise ValueError(f"{name} must be a token stream of shape {want}, got {shape}")
    if (tokens is not None and t.shape[1] != tokens) or (dim is not None and t.shape[2] != dim):
        raise ValueError(f"{name} must have shape {want}, got {tuple(t.shape)}")
    if not t.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor of shape {want}, got dtype {t.dtype}")


def check_token_pair(x: torch.Tensor, y: torch.Tensor, names: tuple[str, str] = ("x", "y")) -> None:
    """Raise ``ValueError`` unless the streams ``x [B, N, C]`` and ``y [B, M, C_o]`` share B and dtype.

    Args:
        x, y: the two token streams (own and other).
        names: their names in the message.
    """
    a, b = names
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"stream {a} {tuple(x.shape)} and stream {b} {tuple(y.shape)} must share the batch axis B")
    if x.dtype != y.dtype:
        raise ValueError(f"stream {a} ({x.dtype}) and stream {b} ({y.dtype}) must have the same dtype")
