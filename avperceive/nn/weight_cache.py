"""Memoise tensors that depend on weights only (not on the input), for inference.

Some per-call quantities are functions of parameters and fixed buffers alone: Swin-V2's
continuous position bias ``16 · sigmoid(MLP(Δ̂))`` (Liu et al., "Swin Transformer V2", CVPR
2022, eq. 3-4), a relative-position bias gathered from its table plus the shifted-window mask
(Liu et al., "Swin Transformer", ICCV 2021, eq. 4). :func:`weight_derived` computes such a value
once and returns the stored copy while every source tensor is unchanged.

"Unchanged" is checked on each call, so no explicit invalidation is needed: a source must be the
*same tensor object* (``model.to(...)``, ``model.half()``, replacing a parameter create new
objects) with the same in-place version counter (``load_state_dict``, an optimiser step and any
``p.copy_()`` / ``p.fill_()`` bump it). Nothing is stored while autograd needs the graph
(grad mode on and a source requiring grad), and a value stored under another inference-mode or
autocast state (``torch.autocast(dtype=...)``) is recomputed, so
training and fine-tuning always recompute. The store lives outside the module (a
``WeakKeyDictionary`` keyed by the module), so state dicts, ``deepcopy`` and pickling see nothing.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch
from torch import nn

__all__ = ["weight_derived", "clear_weight_cache"]

T = TypeVar("T")

_STORE: weakref.WeakKeyDictionary[nn.Module, dict[str, tuple[tuple, object]]] = weakref.WeakKeyDictionary()


def _modes() -> tuple:
    """Global states that change what ``compute`` returns: inference mode and autocast (dtype) per device."""
    autocast = tuple(
        torch.get_autocast_dtype(d) if torch.is_autocast_enabled(d) else None for d in ("cpu", "cuda")
    )
    return (torch.is_inference_mode_enabled(), autocast)


def _stamp(sources: Sequence[torch.Tensor | None]) -> tuple:
    return (_modes(),) + tuple(
        (None, 0) if s is None else (weakref.ref(s), s._version) for s in sources
    )


def _same(a: tuple, b: tuple) -> bool:
    if len(a) != len(b) or a[0] != b[0]:
        return False
    for (ra, va), (rb, vb) in zip(a[1:], b[1:]):
        if va != vb or (ra is None) != (rb is None):
            return False
        if ra is not None and ra() is not rb():  # both refs must point at the same live tensor
            return False
    return True


def weight_derived(
    owner: nn.Module, key: str, sources: Sequence[torch.Tensor | None], compute: Callable[[], T]
) -> T:
    """``compute()``, memoised on ``owner`` under ``key`` while all ``sources`` are unchanged.

    Args:
        owner: the module the value belongs to.
        key: name of the value within ``owner`` (one module may hold several).
        sources: every tensor ``compute`` reads (parameters, buffers, masks; ``None`` allowed).
        compute: builds the value from ``sources`` only (it must not read the input).

    Returns:
        The stored value or a fresh one (recomputed whenever autograd needs a graph through a source).
    """
    if torch.is_grad_enabled() and any(s is not None and s.requires_grad for s in sources):
        return compute()
    stamp = _stamp(sources)
    entries = _STORE.setdefault(owner, {})
    hit = entries.get(key)
    if hit is not None and _same(hit[0], stamp):
        return hit[1]  # type: ignore[return-value]
    value = compute()
    entries[key] = (stamp, value)
    return value


def clear_weight_cache(module: nn.Module | None = None) -> None:
    """Drop the stored values of ``module`` and its submodules (all modules when ``None``), e.g. to free memory."""
    if module is None:
        _STORE.clear()
        return
    for m in module.modules():
        _STORE.pop(m, None)
