"""HTS-AT (Chen et al., "HTS-AT: A Hierarchical Token-Semantic Audio Transformer for Sound
Classification and Detection", ICASSP 2022), in the layout of the official ``model/htsat.py``.

Pipeline (paper §2, Fig. 1): 32 kHz log-mel (:class:`avperceive.signal.frontends.HTSATFrontend`)
-> ``bn0`` over mel bins -> spectrogram-to-image folding (time resized to ``4 * spec_size / 4``
frames, cut into ``freq_ratio`` chunks stacked along frequency, §2.1) -> patch embedding ->
Swin-V1 stages (Liu et al., ICCV 2021: pre-norm blocks ``x = x + WAttn(LN1(x))``,
``x = x + MLP(LN2(x))``, window attention ``softmax(QK^T / sqrt(d) + B) V`` with a learned
relative-position bias table ``B`` (eq. 4), shifted windows, PatchMerging
``Linear(LN(concat 2x2))``) -> token-semantic head (§2.2: a (2, 3) convolution over the
regrouped final tokens gives per-frame class activations; clip-wise = sigmoid of their mean).

Each block exposes ``attn_branch`` / ``mlp_branch`` (the residuals to add) for adapter models.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..errors import ConfigError
from ..signal.frontends import HTSATFrontend
from ._layers import DropPath, Mlp, PatchEmbed
from .window_ops import (
    merge_patches_2x2,
    relative_position_index,
    shifted_window_mask,
    window_and_shift,
    window_merge,
    window_partition,
    windowed_attention,
)

__all__ = [
    "HTSAT",
    "HTSATBlock",
    "HTSATStage",
    "HTSATWindowAttention",
    "HTSATPatchMerging",
    "HTSAT_PRESETS",
    "htsat_audioset",
    "htsat_test_tiny",
]

ATTN_IMPLS = ("fused", "reference")


def _check_impl(impl: str) -> str:
    if impl not in ATTN_IMPLS:
        raise ConfigError(f"attn_impl must be one of {ATTN_IMPLS}, got {impl!r}")
    return impl


class HTSATWindowAttention(nn.Module):
    """Swin-V1 window attention with a relative-position bias table.

    ``forward(x (B*nW, N, C), mask (nW, N, N) | None) -> (B*nW, N, C)``, ``N = wh * ww``.
    Parameters: ``qkv`` (with bias), ``relative_position_bias_table ((2wh-1)(2ww-1), heads)``, ``proj``.
    """

    def __init__(
        self, dim: int, window: tuple[int, int], num_heads: int, qkv_bias: bool = True, attn_impl: str = "fused"
    ):
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim = dim
        self.window = tuple(window)
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.attn_impl = _check_impl(attn_impl)
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window[0] - 1) * (2 * window[1] - 1), num_heads)
        )
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(self.window), persistent=False)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def relative_position_bias(self) -> torch.Tensor:
        """``(heads, N, N)`` bias gathered from the table."""
        n = self.relative_position_index.shape[0]
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        return rearrange(bias, "(i j) h -> h i j", i=n, j=n)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b_, n, c = x.shape
        n_win = self.window[0] * self.window[1]
        if c != self.dim or n != n_win:
            raise ValueError(f"window attention: expected (B*nW, {n_win}, {self.dim}), got {tuple(x.shape)}")
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.num_heads)
        bias = self.relative_position_bias()[None]  # (1, h, N, N)
        if mask is not None:
            bias = bias + mask[:, None]  # (nW, h, N, N)
        out = windowed_attention(q * self.scale, k, v, bias, impl=self.attn_impl)
        return self.proj(rearrange(out, "b h n d -> b n (h d)"))


class HTSATPatchMerging(nn.Module):
    """Swin-V1 patch merging: ``(B, H*W, C) -> (B, H/2*W/2, 2C)`` = ``reduction(norm(concat 2x2))``."""

    def __init__(self, dim: int, input_resolution: tuple[int, int]):
        super().__init__()
        self.input_resolution = tuple(input_resolution)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.input_resolution
        x = merge_patches_2x2(rearrange(x, "b (h w) c -> b h w c", h=h, w=w))
        return self.reduction(self.norm(rearrange(x, "b h w c -> b (h w) c")))


class HTSATBlock(nn.Module):
    """Pre-norm Swin-V1 block on a ``(H, W)`` token grid.

    Sub-layers (each returns the residual to ADD, shape ``(B, H*W, C)``):

    * ``attn_branch(x) = WAttn(norm1(x))`` (shifted-window attention);
    * ``mlp_branch(x) = mlp(norm2(x))``.

    ``forward(x) = x + attn_branch(x)``, then ``x + mlp_branch(x)`` (drop path in training).
    """

    def __init__(
        self,
        dim: int,
        input_resolution: tuple[int, int],
        num_heads: int,
        window_size: int = 8,
        shift_size: int = 0,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
        attn_impl: str = "fused",
    ):
        super().__init__()
        self.dim = dim
        self.input_resolution = tuple(input_resolution)
        self.window_size, self.shift_size = window_and_shift(
            self.input_resolution, (window_size, window_size), (shift_size, shift_size)
        )
        self.norm1 = nn.LayerNorm(dim)
        self.attn = HTSATWindowAttention(dim, self.window_size, num_heads, True, attn_impl)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.register_buffer(
            "attn_mask", shifted_window_mask(self.input_resolution, self.window_size, self.shift_size), persistent=False
        )

    def window_attention(self, x: torch.Tensor) -> torch.Tensor:
        """Shifted-window attention on already-normalised tokens: ``(B, H*W, C) -> (B, H*W, C)``."""
        h, w = self.input_resolution
        if x.ndim != 3 or x.shape[1] != h * w or x.shape[2] != self.dim:
            raise ValueError(f"HTSATBlock: expected (B, {h * w}, {self.dim}), got {tuple(x.shape)}")
        grid = rearrange(x, "b (h w) c -> b h w c", h=h, w=w)
        sh, sw = self.shift_size
        if sh or sw:
            grid = torch.roll(grid, shifts=(-sh, -sw), dims=(1, 2))
        windows = self.attn(window_partition(grid, self.window_size), self.attn_mask)
        grid = window_merge(windows, self.window_size, h, w)
        if sh or sw:
            grid = torch.roll(grid, shifts=(sh, sw), dims=(1, 2))
        return rearrange(grid, "b h w c -> b (h w) c")

    def attn_branch(self, x: torch.Tensor) -> torch.Tensor:
        """Residual of the attention sub-layer: ``WAttn(LN1(x))``, ``(B, H*W, C)``."""
        return self.window_attention(self.norm1(x))

    def mlp_branch(self, x: torch.Tensor) -> torch.Tensor:
        """Residual of the MLP sub-layer: ``MLP(LN2(x))``, ``(B, H*W, C)``."""
        return self.mlp(self.norm2(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn_branch(x))
        return x + self.drop_path(self.mlp_branch(x))


class HTSATStage(nn.Module):
    """A stage: ``blocks`` (alternating unshifted / shifted) then ``downsample`` (PatchMerging or Identity)."""

    def __init__(
        self,
        dim: int,
        input_resolution: tuple[int, int],
        depth: int,
        num_heads: int,
        window_size: int,
        mlp_ratio: float = 4.0,
        drop_path: Sequence[float] | float = 0.0,
        downsample: bool = False,
        attn_impl: str = "fused",
    ):
        super().__init__()
        self.dim = dim
        self.input_resolution = tuple(input_resolution)
        self.grad_checkpointing = False
        dps = list(drop_path) if isinstance(drop_path, Sequence) else [drop_path] * depth
        self.blocks = nn.ModuleList(
            HTSATBlock(
                dim,
                self.input_resolution,
                num_heads,
                window_size,
                0 if i % 2 == 0 else window_size // 2,
                mlp_ratio,
                dps[i],
                attn_impl,
            )
            for i in range(depth)
        )
        self.downsample = HTSATPatchMerging(dim, self.input_resolution) if downsample else nn.Identity()

    def forward_blocks(self, x: torch.Tensor) -> torch.Tensor:
        """Run the blocks only (no downsampling)."""
        for blk in self.blocks:
            if self.grad_checkpointing and torch.is_grad_enabled():
                x = checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(self.forward_blocks(x))


class HTSAT(nn.Module):
    """HTS-AT audio backbone with its 32 kHz front-end and token-semantic head.

    Args:
        sample_rate, n_fft, hop_length, n_mels, fmin, fmax: the log-mel front-end.
        spec_size: side of the square image the spectrogram is folded into (256).
        patch_size, patch_stride: patch embedding.
        in_chans: image channels (1).
        num_classes: classes of the token-semantic head (527 for AudioSet).
        embed_dim, depths, num_heads, window_size, mlp_ratio: the Swin-V1 stages.
        drop_path_rate: stochastic depth, linearly increasing over blocks.
        attn_impl: ``"fused"`` (scaled_dot_product_attention) or ``"reference"``.

    Shapes (AudioSet config): ``forward_frontend(wave (B, 320000)) -> (B, 1, 256, 256)``;
    ``forward_features(image) -> (B, 64, 768)`` (after ``norm``); ``forward(wave) -> dict`` with
    ``framewise_output (B, 1024, classes)``, ``clipwise_output (B, classes)``, ``latent_output (B, 768)``.
    """

    def __init__(
        self,
        sample_rate: int = 32000,
        n_fft: int = 1024,
        hop_length: int = 320,
        n_mels: int = 64,
        fmin: float = 50.0,
        fmax: float = 14000.0,
        spec_size: int = 256,
        patch_size: int = 4,
        patch_stride: Sequence[int] = (4, 4),
        in_chans: int = 1,
        num_classes: int = 527,
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (4, 8, 16, 32),
        window_size: int = 8,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.1,
        attn_impl: str = "fused",
    ):
        super().__init__()
        if len(depths) != len(num_heads):
            raise ConfigError(f"depths {tuple(depths)} and num_heads {tuple(num_heads)} differ in length")
        if spec_size % n_mels:
            raise ConfigError(f"spec_size {spec_size} must be a multiple of n_mels {n_mels}")
        self.spec_size = spec_size
        self.freq_ratio = spec_size // n_mels
        self.patch_stride = tuple(patch_stride)
        self.num_classes = num_classes
        self.num_stages = len(depths)
        self.num_features = int(embed_dim * 2 ** (self.num_stages - 1))
        # the front-end's fixed buffers need real data: under a meta-device context build them on CPU
        meta = torch.empty(0).is_meta
        with torch.device("cpu") if meta else contextlib.nullcontext():
            self.frontend = HTSATFrontend(sample_rate, n_fft, hop_length, n_mels, fmin, fmax)
        self.bn0 = nn.BatchNorm2d(n_mels)
        self.patch_embed = PatchEmbed((spec_size, spec_size), patch_size, in_chans, embed_dim, stride=self.patch_stride)
        grid = self.patch_embed.grid_size
        n_blocks = sum(depths)
        dpr = [drop_path_rate * i / max(n_blocks - 1, 1) for i in range(n_blocks)]
        self.stages = nn.ModuleList(
            HTSATStage(
                int(embed_dim * 2**s),
                (grid[0] // 2**s, grid[1] // 2**s),
                depth,
                num_heads[s],
                window_size,
                mlp_ratio,
                dpr[sum(depths[:s]) : sum(depths[: s + 1])],
                downsample=s < self.num_stages - 1,
                attn_impl=attn_impl,
            )
            for s, depth in enumerate(depths)
        )
        self.norm = nn.LayerNorm(self.num_features)
        self.final_grid = (grid[0] // 2 ** (self.num_stages - 1), grid[1] // 2 ** (self.num_stages - 1))
        if self.final_grid[0] % self.freq_ratio:
            raise ConfigError(
                f"final token grid {self.final_grid} does not split into {self.freq_ratio} frequency chunks"
            )
        self.tscam_conv = nn.Conv2d(
            self.num_features, num_classes, kernel_size=(self.final_grid[0] // self.freq_ratio, 3), padding=(0, 1)
        )
        self._attn_impl = _check_impl(attn_impl)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> HTSAT:
        """Build a named preset (see :data:`HTSAT_PRESETS`), with keyword overrides."""
        if name not in HTSAT_PRESETS:
            raise ConfigError(f"unknown HTS-AT preset {name!r}; known: {', '.join(sorted(HTSAT_PRESETS))}")
        return cls(**{**HTSAT_PRESETS[name], **overrides})

    @property
    def attn_impl(self) -> str:
        """``"fused"`` or ``"reference"``; setting it switches every attention module."""
        return self._attn_impl

    @attn_impl.setter
    def attn_impl(self, impl: str) -> None:
        self._attn_impl = _check_impl(impl)
        for m in self.modules():
            if isinstance(m, HTSATWindowAttention):
                m.attn_impl = impl

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block in the backward pass."""
        for stage in self.stages:
            stage.grad_checkpointing = enable

    @property
    def blocks(self) -> list[HTSATBlock]:
        """All blocks in order (a flat list view of ``stages[s].blocks``)."""
        return [blk for stage in self.stages for blk in stage.blocks]

    # -- front-end ----------------------------------------------------------------------------
    def normalize_logmel(self, logmel: torch.Tensor) -> torch.Tensor:
        """``bn0`` over the mel bins: ``(B, 1, frames, mels) -> (B, 1, frames, mels)``.

        The log-mel arrives in float32 (the front-end computes in float32 on purpose) and is cast to
        the parameters' dtype here, so a bfloat16 / float16 model runs.
        """
        logmel = logmel.to(self.bn0.weight.dtype)
        return rearrange(self.bn0(rearrange(logmel, "b c t f -> b f t c")), "b f t c -> b c t f")

    def wav_to_image(self, spec: torch.Tensor) -> torch.Tensor:
        """Fold a normalised log-mel into the square image (HTS-AT ``reshape_wav2img``).

        Time is resized (bicubic, ``align_corners=True``) to ``freq_ratio * spec_size`` frames
        (1024), then cut into ``freq_ratio`` chunks stacked along frequency:
        ``(B, 1, frames, mels) -> (B, 1, spec_size, spec_size)`` with
        ``image[b, 0, r*mels + f, t] = spec[b, 0, r*spec_size + t, f]``.
        """
        b, c, t, f = spec.shape
        target_t, target_f = self.spec_size * self.freq_ratio, self.spec_size // self.freq_ratio
        if t > target_t or f > target_f:
            raise ValueError(f"wav_to_image: expected (B, C, <= {target_t}, <= {target_f}), got {tuple(spec.shape)}")
        if t < target_t:
            spec = F.interpolate(spec, (target_t, f), mode="bicubic", align_corners=True)
        if f < target_f:
            spec = F.interpolate(spec, (spec.shape[2], target_f), mode="bicubic", align_corners=True)
        return rearrange(spec, "b c (r t) f -> b c (r f) t", r=self.freq_ratio)

    def forward_frontend(self, wave: torch.Tensor) -> torch.Tensor:
        """``(B, samples)`` at 32 kHz -> image ``(B, 1, spec_size, spec_size)`` (log-mel, bn0, fold)."""
        if wave.ndim != 2:
            raise ValueError(f"HTSAT.forward_frontend: expected (B, samples), got {tuple(wave.shape)}")
        return self.wav_to_image(self.normalize_logmel(self.frontend(wave)))

    # -- transformer --------------------------------------------------------------------------
    def forward_intermediates(self, image: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(features after norm (B, N_last, C_last), [stage s blocks output (B, N_s, C_s)])``.

        The last entry is the last stage's output before ``norm`` (the tokens DG-SCT uses).
        """
        x = self.patch_embed(image)
        outs = []
        for stage in self.stages:
            x = stage.forward_blocks(x)
            outs.append(x)
            x = stage.downsample(x)
        return self.norm(x), outs

    def forward_features(self, image: torch.Tensor) -> torch.Tensor:
        """``(B, 1, spec_size, spec_size) -> (B, N_last, C_last)`` tokens after the final LayerNorm."""
        x = self.patch_embed(image)
        for stage in self.stages:
            x = stage(x)
        return self.norm(x)

    def forward_head(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        """Token-semantic head on normalised tokens ``(B, N_last, C_last)``.

        Returns ``framewise_output (B, T_img, classes)`` (sigmoid, each head frame repeated to the
        image width), ``clipwise_output (B, classes)`` (sigmoid of the frame-mean logits),
        ``latent_output (B, C_last)`` (token mean), ``framewise_logits (B, T_head, classes)``.
        """
        gf, gt = self.final_grid
        x = rearrange(tokens, "b (f t) c -> b c f t", f=gf, t=gt)
        x = rearrange(x, "b c (r k) t -> b c k (r t)", r=self.freq_ratio)  # frequency chunks back into time
        latent = x.flatten(2).mean(dim=2)
        logits = self.tscam_conv(x).flatten(2)  # (B, classes, T_head)
        ratio = 2 ** (self.num_stages - 1) * self.patch_stride[1]
        framewise = repeat(torch.sigmoid(logits), "b k t -> b (t r) k", r=ratio)
        return {
            "framewise_output": framewise,
            "clipwise_output": torch.sigmoid(logits.mean(dim=2)),
            "latent_output": latent,
            "framewise_logits": rearrange(logits, "b k t -> b t k"),
        }

    def forward(self, wave: torch.Tensor) -> dict[str, torch.Tensor]:
        """``(B, samples)`` waveform at ``sample_rate`` -> the head's output dict."""
        return self.forward_head(self.forward_features(self.forward_frontend(wave)))


HTSAT_PRESETS: dict[str, dict] = {
    # the official AudioSet configuration (HTSAT_AudioSet_Saved_*.ckpt, DG-SCT's audio backbone)
    "htsat_audioset": dict(
        num_classes=527,
        embed_dim=96,
        depths=(2, 2, 6, 2),
        num_heads=(4, 8, 16, 32),
        window_size=8,
    ),
    # tiny configuration for tests (the g4 golden network)
    "htsat_test_tiny": dict(
        num_classes=20,
        embed_dim=16,
        depths=(2, 2, 2, 1),
        num_heads=(1, 2, 4, 8),
        window_size=8,
    ),
}


def htsat_audioset(**overrides) -> HTSAT:
    """HTS-AT, AudioSet configuration (527 classes, embed 96, depths 2-2-6-2)."""
    return HTSAT.from_preset("htsat_audioset", **overrides)


def htsat_test_tiny(**overrides) -> HTSAT:
    """A 16-wide HTS-AT with the real 256x256 input layout, for tests."""
    return HTSAT.from_preset("htsat_test_tiny", **overrides)
