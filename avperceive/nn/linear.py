"""The linear op of the frozen backbones and adapters: ``act(x Wᵀ + b)`` on two paths.

A linear layer followed by its activation is the bulk of every model here (the transformer MLP
``fc2(GELU(fc1(x)))``, Vaswani et al. 2017 eq. 2, is half of the DG-SCT FLOPs). The choice between
the two paths lives here only, with the same names as :mod:`avperceive.nn.attention`:

* ``"reference"`` — :func:`torch.nn.functional.linear`, then the activation as its own op;
* ``"fused"`` — on CPU, for inference in float32 or bfloat16, oneDNN's inner product with the bias
  and the activation in its epilogue (``torch.ops.mkldnn._linear_pointwise``, the kernel PyTorch's
  own compiler emits for CPU linears). It reads the ordinary ``[out, in]`` weight (no packed copy,
  so no extra memory) and writes the activated output once, instead of GEMM, then a bias copy
  (``addmm``), then a second pass for the activation.

Where the fused route applies (:func:`fused_linear_applies`), everything else takes the reference
path: CPU tensors of one dtype; no autograd through the call (the oneDNN op has no backward; training
goes through :func:`~torch.nn.functional.linear`); not under autocast (the op is not on autocast's
lists); bfloat16 always; float32 only with an activation to fuse and at least
:data:`FP32_FUSED_MIN_ROWS` rows. Measured on a 2-core AVX512/AMX x86-64 box, one thread, the
Swin-V2-L / HTS-AT MLPs (``python benchmarks/bench_linear.py``, three runs): bfloat16 1.2–2.9×
faster from ~6·10³ rows, 0.8–1.2× below (run-to-run noise of that size on this VM); float32
1.2–1.65× faster at 10⁴–4·10⁴ rows (the GELU pass over the 4C-wide hidden activations saved),
0.92–1.06× at ~6·10³ and 5–13 % slower at ≤2.6·10³ rows, where MKL's sgemm beats oneDNN's; so
float32 fuses above the threshold only. End to end, switching the fused linear off in one process
(alternating forwards) made the full-size ``dgsct-ave`` forward 1.18× slower in bfloat16 and 1.12×
in float32.

Both paths compute the same function: float32 to a few ulp (the GEMM's summation order differs),
bfloat16 to its rounding of the output (``tests/test_linear.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Literal

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .attention import AttnImpl, check_attn_impl

__all__ = ["Activation", "ACTIVATIONS", "linear", "fused_linear_applies", "FP32_FUSED_MIN_ROWS"]

Activation = Literal["gelu", "relu"]
"""Activations the fused path applies in the GEMM epilogue: exact-erf GELU, ReLU."""

ACTIVATIONS: dict[str | None, Callable[[torch.Tensor], torch.Tensor]] = {
    None: lambda y: y,
    "gelu": F.gelu,  # exact erf form, as nn.GELU()
    "relu": torch.relu,
}

#: Rows (``x.numel() / in_features``) from which a float32 linear with an activation takes the fused route.
FP32_FUSED_MIN_ROWS = 4096

# oneDNN's names of the post-ops: (attr, algorithm)
_ONEDNN_POST_OP = {None: ("none", ""), "gelu": ("gelu", "none"), "relu": ("relu", "")}


@lru_cache(maxsize=1)
def _onednn_linear_available() -> bool:
    """This torch build has the oneDNN CPU linear (``torch.ops.mkldnn._linear_pointwise``)."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        torch.ops.mkldnn._linear_pointwise  # noqa: B018 -- resolving the op is the check
    except (AttributeError, RuntimeError):
        return False
    return True


def fused_linear_applies(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, activation: Activation | None
) -> bool:
    """Whether :func:`linear` with ``impl="fused"`` takes the oneDNN route here (see the module docstring)."""
    if x.device.type != "cpu" or x.dim() < 2 or x.dtype not in (torch.float32, torch.bfloat16):
        return False
    if weight.dtype != x.dtype or (bias is not None and bias.dtype != x.dtype):
        return False
    if x.dtype == torch.float32 and (activation is None or x.numel() < FP32_FUSED_MIN_ROWS * x.shape[-1]):
        return False
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias)):
        return False
    if torch.is_autocast_enabled("cpu"):
        return False
    return _onednn_linear_available()


def linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    activation: Activation | None = None,
    impl: AttnImpl = "fused",
) -> torch.Tensor:
    """``act(x Wᵀ + b)``.

    Args:
        x: inputs ``(..., in)``.
        weight: ``(out, in)`` (an :class:`~torch.nn.Linear`'s ``weight``).
        bias: ``(out,)`` or ``None``.
        activation: ``None``, ``"gelu"`` (exact erf) or ``"relu"``.
        impl: ``"fused"`` (oneDNN epilogue where :func:`fused_linear_applies`, else the reference
            ops) or ``"reference"``.

    Returns:
        ``(..., out)`` in ``x``'s dtype (under autocast, autocast's).
    """
    check_attn_impl(impl)
    if activation not in ACTIVATIONS:
        raise ConfigError(f"activation must be one of {[a for a in ACTIVATIONS if a]} or None, got {activation!r}")
    if impl == "fused" and fused_linear_applies(x, weight, bias, activation):
        attr, algorithm = _ONEDNN_POST_OP[activation]
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, attr, [], algorithm)
    return ACTIVATIONS[activation](F.linear(x, weight, bias))
