"""Swin Transformer V2 (Liu et al., "Swin Transformer V2: Scaling Up Capacity and Resolution", CVPR 2022).

Implements, in the layout of timm 0.6 (as stored in the DG-SCT checkpoint):

* scaled cosine attention ``Sim(q_i, k_j) = cos(q_i, k_j) * exp(min(s, log 100)) + B_ij`` (eq. 2),
  with a learned per-head logit scale ``s``;
* the continuous relative-position bias ``B = 16 * sigmoid(G(Δ̂))`` where ``G`` is the 2-layer
  CPB MLP applied to log-spaced coordinates ``Δ̂ = sign(Δ) log(1 + |Δ|)`` (eq. 3-4);
* res-post-norm blocks ``x = x + LN1(WAttn(x)); x = x + LN2(MLP(x))`` (§3.1, Fig. 1);
* shifted windows with the cyclic-shift mask (Swin-V1 §3.2) and PatchMerging
  ``LN(Linear(4C -> 2C)(concat 2x2))`` at the *end* of each stage but the last.

Each block exposes its two residual sub-layers, ``attn_branch`` and ``mlp_branch``, so adapter
models (DG-SCT, LAVisH) can insert their own residuals between them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..errors import ConfigError
from ..nn.attention import AttnImpl
from ..nn.linear import linear
from ..registry import PretrainedCfg, register_config
from ._layers import PatchEmbed
from .window_ops import swinv2_relative_coords_table
from .windowed import WindowAttention, WindowedBlock, WindowedTransformer

__all__ = [
    "SwinV2",
    "SwinV2Block",
    "SwinV2WindowAttention",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "swinv2_large_window12_192",
    "swinv2_base_window12_192",
    "swinv2_test_tiny",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class SwinV2WindowAttention(WindowAttention):
    """Scaled cosine window attention with continuous position bias (Swin-V2 eq. 2-4).

    ``forward(x (B*nW, N, C), mask (nW, N, N) | None) -> (B*nW, N, C)``, ``N = wh * ww``;
    ``pretrained_window_size`` normalises the CPB coordinates (0: the own window).
    ``Sim(q_i, k_j) = cos(q_i, k_j) · exp(min(s, log 100)) + B_ij``: q and k are unit-normalised,
    the clamped per-head scale is folded into q and :func:`~avperceive.nn.attention.attend` runs
    with ``scale=1``.

    Parameters follow timm 0.6 names: ``qkv`` (no bias; the bias is ``cat(q_bias, 0, v_bias)``),
    ``q_bias``, ``v_bias``, ``logit_scale (heads, 1, 1)``, ``cpb_mlp`` (Linear(2, 512) -> ReLU ->
    Linear(512, heads, no bias)), ``proj``.
    """

    # cosine logits scaled by up to 100 plus a continuous bias up to 16: rounded to bfloat16 they lose
    # ~0.1 per logit (a tiny random model's bf16 autocast error went 4.0e-2 -> 6.1e-2), so SDPA keeps them float32
    bf16_matmul_logits = False

    def __init__(
        self,
        dim: int,
        window: tuple[int, int],
        num_heads: int,
        pretrained_window_size: int = 0,
        attn_impl: AttnImpl = "fused",
    ):
        super().__init__(dim, window, num_heads, attn_impl)
        self.logit_scale = nn.Parameter(torch.log(10 * torch.ones(num_heads, 1, 1)))
        self.cpb_mlp = nn.Sequential(nn.Linear(2, 512), nn.ReLU(inplace=True), nn.Linear(512, num_heads, bias=False))
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)
        self.register_buffer(
            "relative_coords_table",
            swinv2_relative_coords_table(self.window, (pretrained_window_size, pretrained_window_size)),
            persistent=False,
        )

    def relative_position_bias(self) -> torch.Tensor:
        """``(heads, N, N)``: ``16 * sigmoid(cpb_mlp(table))`` gathered for every token pair, in float32.

        The MLP runs in float32 whatever the weights' dtype (a bf16 model's bias then carries the
        rounding of its weights only, not of its activations); the result is input-independent and
        memoised in inference by :meth:`~avperceive.backbones.windowed.WindowAttention.window_bias`.
        """
        fc1, fc2 = self.cpb_mlp[0], self.cpb_mlp[2]
        coords = self.relative_coords_table.float()
        hidden = torch.relu(F.linear(coords, fc1.weight.float(), fc1.bias.float()))
        table = F.linear(hidden, fc2.weight.float()).reshape(-1, self.num_heads)
        return 16 * torch.sigmoid(self.gather_bias(table))

    def qkv_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
        """Unit-norm q (times the clamped logit scale), unit-norm k, v: ``(B*nW, heads, N, d)``; scale 1."""
        bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))
        qkv = linear(x, self.qkv.weight, bias, impl=self.attn_impl)
        q, k, v = rearrange(qkv, "b n (three h d) -> three b h n d", three=3, h=self.num_heads)
        scale = torch.clamp(self.logit_scale, max=math.log(1.0 / 0.01)).exp()  # (h, 1, 1)
        q = F.normalize(q, dim=-1) * scale.to(q.dtype)
        return q, F.normalize(k, dim=-1), v, 1.0


class SwinV2Block(WindowedBlock):
    """Res-post-norm Swin-V2 block: ``attn_branch(x) = norm1(WAttn(x))``, ``mlp_branch(x) = norm2(mlp(x))``.

    ``SwinV2Block(dim, input_resolution, num_heads, window_size, shift_size, mlp_ratio, drop_path,
    attn_impl, pretrained_window_size=0)``; see :class:`~avperceive.backbones.windowed.WindowedBlock`
    for the branch API and shapes.
    """

    attention_cls = SwinV2WindowAttention
    norm_placement = "post"


class SwinV2(WindowedTransformer):
    """Swin Transformer V2 backbone (timm 0.6 module layout, no timm needed).

    Args:
        img_size: input side (square) or ``(H, W)``.
        patch_size: patch side.
        in_chans: input channels.
        num_classes: classifier outputs (``0``: no ``head``).
        embed_dim: width of stage 0 (doubles each stage).
        depths: blocks per stage.
        num_heads: heads per stage.
        window_size: attention window, ``int`` or ``(h, w)`` as in timm (clamped to small grids).
        mlp_ratio: MLP hidden width / width.
        drop_path_rate: stochastic depth, linearly increasing over blocks.
        pretrained_window_sizes: per-stage window the CPB coordinates are normalised by (0 = own).
        attn_impl: ``"fused"`` (scaled_dot_product_attention) or ``"reference"``.

    Shapes: ``forward_features(x (B, 3, H, W)) -> (B, L_last, C_last)`` after the final norm;
    ``forward(x) -> (B, num_classes)`` (or pooled ``(B, C_last)`` when ``num_classes == 0``);
    ``forward_intermediates(x, indices)`` -> per-stage tokens (see
    :meth:`~avperceive.backbones.windowed.WindowedTransformer.forward_intermediates`).
    """

    def __init__(
        self,
        img_size: int | Sequence[int] = 192,
        patch_size: int = 4,
        in_chans: int = 3,
        num_classes: int = 0,
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        window_size: int | Sequence[int] = 12,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.0,
        pretrained_window_sizes: Sequence[int] = (0, 0, 0, 0),
        attn_impl: AttnImpl = "fused",
    ):
        super().__init__()
        size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self.patch_embed = PatchEmbed(size, patch_size, in_chans, embed_dim)
        pws = list(pretrained_window_sizes) + [0] * (len(depths) - len(pretrained_window_sizes))
        per_stage = [{"pretrained_window_size": p} for p in pws]
        self.build_trunk(
            SwinV2Block, embed_dim, depths, num_heads, window_size, mlp_ratio, drop_path_rate, attn_impl, per_stage
        )
        self.reset_classifier(num_classes)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace ``head`` by a fresh ``Linear(C_last, num_classes)`` (``0``: ``nn.Identity``, pooled features out)."""
        if num_classes < 0:
            raise ConfigError(f"num_classes must be >= 0, got {num_classes}")
        self.num_classes = num_classes
        ref = self.norm.weight
        self.head = (
            nn.Linear(self.num_features, num_classes, device=ref.device, dtype=ref.dtype)
            if num_classes > 0
            else nn.Identity()
        )

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Token mean ``(B, C_last)``, then the classifier unless ``pre_logits``."""
        x = x.mean(dim=1)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# -- registry ---------------------------------------------------------------------------------------
_PAPER = "Liu et al., Swin Transformer V2: Scaling Up Capacity and Resolution, CVPR 2022"


def _image_input(size: int) -> dict:
    return {"task": "image-features", "size": size, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}


def _timm_weights(name: str) -> PretrainedCfg:
    return PretrainedCfg(
        license="MIT",
        paper=_PAPER,
        input=_image_input(192),
        converter="swinv2-timm",
        official_checkpoint=f"timm {name}.ms_in22k (Hugging Face Hub repo timm/{name}.ms_in22k; "
        f"timm 0.6 name {name}_22k)",
        notes="ImageNet-22k weights of timm; no avperceive copy on the Hub. Convert the timm file with "
        "`avperceive convert swinv2-timm`.",
    )


swinv2_large_window12_192 = register_config(
    "swinv2_large_window12_192", SwinV2, "Swin-V2-L, window 12, 192 px, 21841 classes (DG-SCT's, LAVisH's backbone).",
    {"ms_in22k": _timm_weights("swinv2_large_window12_192")},
    img_size=192, embed_dim=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48), num_classes=21841,
)  # fmt: skip
swinv2_base_window12_192 = register_config(
    "swinv2_base_window12_192", SwinV2, "Swin-V2-B, window 12, 192 px, ImageNet-22k head (21841 classes).",
    {"ms_in22k": _timm_weights("swinv2_base_window12_192")},
    img_size=192, embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32), num_classes=21841,
)  # fmt: skip
swinv2_test_tiny = register_config(
    "swinv2_test_tiny", SwinV2, "A 48-px, 3-stage, 16-wide Swin-V2 for tests (not Swin-V2-T; golden g6/g7 layout).",
    {"untrained": PretrainedCfg(paper=_PAPER, input=_image_input(48), notes="Random weights.")},
    img_size=48, embed_dim=16, depths=(2, 2, 2), num_heads=(2, 4, 8), window_size=6, num_classes=0,
)  # fmt: skip
