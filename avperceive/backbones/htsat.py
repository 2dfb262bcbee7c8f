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

from ..errors import ConfigError
from ..nn.attention import AttnImpl
from ..nn.linear import linear
from ..registry import PretrainedCfg, register_config
from ..signal.frontends import HTSATFrontend
from ._layers import PatchEmbed
from .windowed import WindowAttention, WindowedBlock, WindowedTransformer

__all__ = [
    "HTSAT",
    "HTSATBlock",
    "HTSATWindowAttention",
    "htsat_audioset",
    "htsat_test_tiny",
]


class HTSATWindowAttention(WindowAttention):
    """Swin-V1 window attention ``softmax(q kᵀ / √d + B) V`` with a relative-position bias table (Swin eq. 4).

    ``forward(x (B*nW, N, C), mask (nW, N, N) | None) -> (B*nW, N, C)``, ``N = wh * ww``.
    Parameters: ``qkv`` (with bias), ``relative_position_bias_table ((2wh-1)(2ww-1), heads)``, ``proj``.
    """

    def __init__(self, dim: int, window: tuple[int, int], num_heads: int, attn_impl: AttnImpl = "fused"):
        super().__init__(dim, window, num_heads, attn_impl)
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window[0] - 1) * (2 * window[1] - 1), num_heads)
        )
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def relative_position_bias(self) -> torch.Tensor:
        """``(heads, N, N)`` bias gathered from the table."""
        return self.gather_bias(self.relative_position_bias_table)

    def qkv_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
        """q, k, v ``(B*nW, heads, N, d)`` and the scale ``1/√d``."""
        qkv = linear(x, self.qkv.weight, self.qkv.bias, impl=self.attn_impl)
        q, k, v = rearrange(qkv, "b n (three h d) -> three b h n d", three=3, h=self.num_heads)
        return q, k, v, self.scale


class HTSATBlock(WindowedBlock):
    """Pre-norm Swin-V1 block: ``attn_branch(x) = WAttn(norm1(x))``, ``mlp_branch(x) = mlp(norm2(x))``.

    ``HTSATBlock(dim, input_resolution, num_heads, window_size, shift_size, mlp_ratio, drop_path,
    attn_impl)``; see :class:`~avperceive.backbones.windowed.WindowedBlock` for the branch API and shapes.
    """

    attention_cls = HTSATWindowAttention
    norm_placement = "pre"


class HTSAT(WindowedTransformer):
    """HTS-AT audio backbone with its 32 kHz front-end and token-semantic head.

    Args:
        sample_rate, n_fft, hop_length, n_mels, fmin, fmax: the log-mel front-end.
        spec_size: side of the square image the spectrogram is folded into (256).
        patch_size, patch_stride: patch embedding.
        in_chans: image channels (1).
        num_classes: classes of the token-semantic head (527 for AudioSet; ``0``: no head).
        embed_dim, depths, num_heads, window_size, mlp_ratio: the Swin-V1 stages.
        drop_path_rate: stochastic depth, linearly increasing over blocks.
        attn_impl: ``"fused"`` (scaled_dot_product_attention) or ``"reference"``.

    Shapes (AudioSet config): ``forward_frontend(wave (B, 320000)) -> (B, 1, 256, 256)``;
    ``forward_features(image) -> (B, 64, 768)`` (after ``norm``); ``forward(wave) -> dict`` with
    ``framewise_output (B, 1024, classes)``, ``clipwise_output (B, classes)``, ``latent_output (B, 768)``;
    ``forward_intermediates(image, indices)`` -> per-stage tokens (the last stage's output before
    ``norm`` is what DG-SCT uses as audio tokens).
    """

    def __init__(
        self,
        # the log-mel front-end (HTSATFrontend)
        sample_rate: int = 32000, n_fft: int = 1024, hop_length: int = 320,
        n_mels: int = 64, fmin: float = 50.0, fmax: float = 14000.0,
        spec_size: int = 256,
        patch_size: int = 4, patch_stride: Sequence[int] = (4, 4), in_chans: int = 1,
        num_classes: int = 527,
        # the Swin-V1 stages
        embed_dim: int = 96, depths: Sequence[int] = (2, 2, 6, 2), num_heads: Sequence[int] = (4, 8, 16, 32),
        window_size: int = 8, mlp_ratio: float = 4.0, drop_path_rate: float = 0.1,
        attn_impl: AttnImpl = "fused",
    ):
        super().__init__()
        if spec_size % n_mels:
            raise ConfigError(f"spec_size {spec_size} must be a multiple of n_mels {n_mels}")
        self.spec_size = spec_size
        self.freq_ratio = spec_size // n_mels
        self.patch_stride = tuple(patch_stride)
        # the front-end's fixed buffers need real data: under a meta-device context build them on CPU
        meta = torch.empty(0).is_meta
        with torch.device("cpu") if meta else contextlib.nullcontext():
            self.frontend = HTSATFrontend(sample_rate, n_fft, hop_length, n_mels, fmin, fmax)
        self.bn0 = nn.BatchNorm2d(n_mels)
        self.patch_embed = PatchEmbed((spec_size, spec_size), patch_size, in_chans, embed_dim, stride=self.patch_stride)
        self.build_trunk(HTSATBlock, embed_dim, depths, num_heads, window_size, mlp_ratio, drop_path_rate, attn_impl)
        self.final_grid = tuple(self.stages[-1].input_resolution)
        if self.final_grid[0] % self.freq_ratio:
            raise ConfigError(
                f"final token grid {self.final_grid} does not split into {self.freq_ratio} frequency chunks"
            )
        self.reset_classifier(num_classes)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the token-semantic head ``tscam_conv`` by a fresh one with ``num_classes`` outputs.

        ``0`` removes it: :meth:`forward_head` then returns ``latent_output`` only.
        """
        if num_classes < 0:
            raise ConfigError(f"num_classes must be >= 0, got {num_classes}")
        self.num_classes = num_classes
        ref = self.norm.weight
        kernel = (self.final_grid[0] // self.freq_ratio, 3)
        self.tscam_conv = (
            nn.Conv2d(self.num_features, num_classes, kernel, padding=(0, 1), device=ref.device, dtype=ref.dtype)
            if num_classes > 0
            else None
        )

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

    def forward_head(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        """Token-semantic head on normalised tokens ``(B, N_last, C_last)``.

        Returns ``framewise_output (B, T_img, classes)`` (sigmoid, each head frame repeated to the
        image width), ``clipwise_output (B, classes)`` (sigmoid of the frame-mean logits),
        ``latent_output (B, C_last)`` (token mean), ``framewise_logits (B, T_head, classes)``; only
        ``latent_output`` when the head was removed (``num_classes == 0``).
        """
        gf, gt = self.final_grid
        x = rearrange(tokens, "b (f t) c -> b c f t", f=gf, t=gt)
        x = rearrange(x, "b c (r k) t -> b c k (r t)", r=self.freq_ratio)  # frequency chunks back into time
        latent = x.flatten(2).mean(dim=2)
        if self.tscam_conv is None:
            return {"latent_output": latent}
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


# -- registry ---------------------------------------------------------------------------------------
_PAPER = (
    "Chen et al., HTS-AT: A Hierarchical Token-Semantic Audio Transformer for Sound Classification and "
    "Detection, ICASSP 2022"
)


def _audio_input() -> dict:
    return {"task": "audio-tagging", "sample_rate": 32000, "clip_seconds": 10.0, "audio_frontend": "htsat"}


_AUDIOSET_WEIGHTS = PretrainedCfg(
    license="MIT",
    paper=_PAPER,
    input=_audio_input(),
    converter="htsat",
    official_checkpoint="HTSAT_AudioSet_Saved_1.ckpt, linked from the README of the HTS-AT authors' repository "
    "RetroCirce/HTS-Audio-Transformer (Google Drive)",
    notes="AudioSet weights of the HTS-AT authors; no avperceive copy on the Hub. Convert the Lightning checkpoint "
    "with `avperceive convert htsat`.",
)

htsat_audioset = register_config(
    "htsat_audioset", HTSAT, "HTS-AT, the official AudioSet configuration (DG-SCT's audio backbone).",
    {"audioset": _AUDIOSET_WEIGHTS}, num_classes=527, embed_dim=96, depths=(2, 2, 6, 2), num_heads=(4, 8, 16, 32),
)  # fmt: skip
htsat_test_tiny = register_config(
    "htsat_test_tiny", HTSAT, "A 16-wide HTS-AT with the real 256x256 input layout, for tests (golden g4).",
    {"untrained": PretrainedCfg(paper=_PAPER, input=_audio_input(), notes="Random weights.")},
    num_classes=20, embed_dim=16, depths=(2, 2, 2, 1), num_heads=(1, 2, 4, 8),
)  # fmt: skip
