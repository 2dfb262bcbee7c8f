"""The bfloat16-matmul route of :func:`avperceive.nn.attention.attend` for short windows (CPU).

Truth: eq. 1 of Vaswani et al. written out in float64 on the same (bf16-representable) inputs.
"""

from __future__ import annotations

import torch

from avperceive.backbones.swinv2 import SwinV2WindowAttention
from avperceive.backbones.windowed import WindowAttention
from avperceive.nn.attention import BF16_MATMUL_MAX_KEYS, attend

U_BF16 = 2.0**-8  # bfloat16 unit roundoff


def _exact(q, k, v, bias, scale):
    q, k, v, bias = (t.double() for t in (q, k, v, bias))
    return torch.softmax(scale * q @ k.transpose(-2, -1) + bias, dim=-1) @ v


def test_bf16_matmul_route_is_accurate_and_only_taken_when_asked():
    g = torch.Generator().manual_seed(0)
    n, d = BF16_MATMUL_MAX_KEYS, 32  # HTS-AT's 8x8 windows, head width 32
    q, k, v = (torch.randn(2, 8, n, d, generator=g).bfloat16() for _ in range(3))
    bias = (0.5 * torch.randn(1, 8, n, n, generator=g)).bfloat16()
    want = _exact(q, k, v, bias, d**-0.5)
    with torch.inference_mode():
        routed = attend(q, k, v, bias=bias, bf16_matmul=True)
        sdpa = attend(q, k, v, bias=bias)
    assert routed.dtype == torch.bfloat16
    err = lambda t: ((t.double() - want).norm() / want.norm()).item()  # noqa: E731
    # logits, weights and output each rounded to bf16 once (<= u each), plus SDPA's own output
    # rounding: within 4u of the exact value (measured 1.4u; SDPA 0.5u)
    assert err(routed) <= 4 * U_BF16
    assert err(sdpa) <= 2 * U_BF16
    assert not torch.equal(routed, sdpa)  # the route was taken
    # longer windows (Swin-V2-L's 12x12) stay on SDPA even when asked
    q2, k2, v2 = (torch.randn(1, 2, 144, d, generator=g).bfloat16() for _ in range(3))
    with torch.inference_mode():
        assert torch.equal(attend(q2, k2, v2, bf16_matmul=True), attend(q2, k2, v2))


def test_only_dot_product_windows_opt_in():
    assert WindowAttention.bf16_matmul_logits is True  # Swin-V1 / HTS-AT scaled dot-product logits
    assert SwinV2WindowAttention.bf16_matmul_logits is False  # cosine logits x up to 100, + bias up to 16
