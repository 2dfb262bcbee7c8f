"""LAVisH for audio-visual event localisation (AVE).

Lin et al., "Vision Transformers are Parameter-Efficient Audio-Visual Learners" (CVPR 2023), §3
and the AVE model of the official code (``AVE/nets/net_trans.py``): ONE frozen Swin-V2 processes
both the video frame and the audio "image" (a normalised 192-bin Kaldi fbank of the 1-s segment,
repeated to 3 channels). At every block b (same frozen weights for both streams)::

    r_a1 = A^a_p1(a, v);  r_v1 = A^v_p1(v, a)          # both read the block input
    v = v + LN1(WAttn(v)) + r_v1;  a = a + LN1(WAttn(a)) + r_a1
    r_a2 = A^a_p2(a, v);  r_v2 = A^v_p2(v, a)
    v = v + LN2(MLP(v)) + r_v2;  a = a + LN2(MLP(a)) + r_a2

with :class:`~avperceive.nn.adapters.LAVisHAdapter` (latent-token cross attention + gated
bottleneck). Then the shared patch merging per stage, the final norm on both streams, the mean
over tokens, and the two-layer head ``Linear(2C -> 512) -> Linear(512 -> K + 1)`` (no
non-linearity between) gives per-segment logits over K events + background (index K).

Both streams have the same token grid (the audio image is H frames × W mel bins, the frame size),
so every shared frozen layer runs once on the two streams stacked along the batch (audio first),
and the two adapters of a position run their latent-token attentions as one batched call
(:func:`~avperceive.nn.adapters.lavish_adapter_pair`).
"""

from __future__ import annotations

import torch
from einops import rearrange, reduce, repeat
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..backbones.swinv2 import SwinV2
from ..errors import ConfigError
from ..hub.mixin import PretrainedMixin
from ..nn.adapter_bank import AdapterBank
from ..nn.adapters import lavish_adapter_pair
from ..signal.kaldi import lavish_audio_image
from .contract import AVModel
from .dgsct import AVE_CATEGORIES, IMAGENET_MEAN, IMAGENET_STD, TINY_VIDEO_BACKBONE, build_backbone
from .registry import PretrainedCfg, register_model
from .segment_prediction import SegmentPredictionMixin

__all__ = ["LAVisH"]


class LAVisH(AVModel, PretrainedMixin, SegmentPredictionMixin):
    """LAVisH AVE model: one frozen Swin-V2 for both streams, LAVisH adapters at every block, MLP head.

    Segments are folded into the batch (B·T images per stream), then unfolded for the head.

    Args:
        backbone: Swin-V2 registry name or constructor kwargs; built without classifier (``num_classes=0``).
        num_classes: K events (AVE: 28); the head outputs K + 1 logits, background = K.
        num_segments: T (10).
        sample_rate: audio rate (16 000; LAVisH assumes 16 kHz).
        segment_samples: samples per segment (16 000 = 1 s).
        num_mel_bins, frame_shift_ms: audio-image options (192 bins, 5.2 ms -> 188 frames padded to
            the image height); the audio image must match the backbone's input size.
        num_latents, reduction, groups: LAVisH adapter settings (README: 2, 8, 2).
        hidden_dim: width of the first head layer (512).
        attn_impl: ``"fused"`` or ``"reference"`` for every attention op (backbone and adapters).
        fold_bn: fold the adapters' bottleneck norms (``True``, default) or not (see
            :class:`~avperceive.nn.adapters.GatedBottleneck`).
        grad_checkpointing: recompute each block in the backward pass.

    Inputs are cast to the parameters' dtype on entry; the audio image (Kaldi fbank) is computed in
    float32.
    """

    task = "ave"

    def __init__(
        self,
        backbone: str | dict = "swinv2_large_window12_192",
        num_classes: int = 28,
        num_segments: int = 10,
        sample_rate: int = 16000,
        segment_samples: int = 16000,
        num_mel_bins: int = 192,
        frame_shift_ms: float = 5.2,
        num_latents: int = 2,
        reduction: int = 8,
        groups: int = 2,
        hidden_dim: int = 512,
        attn_impl: str = "fused",
        grad_checkpointing: bool = False,
        fold_bn: bool = True,
    ):
        super().__init__()
        self.num_classes, self.num_segments = num_classes, num_segments
        self.sample_rate, self.segment_samples = sample_rate, segment_samples
        self.num_mel_bins, self.frame_shift_ms = num_mel_bins, frame_shift_ms
        self.grad_checkpointing = grad_checkpointing
        self.backbone = build_backbone(backbone, SwinV2, "backbone", num_classes=0)
        h, w = self.backbone.patch_embed.img_size
        if w != num_mel_bins:
            raise ConfigError(f"the audio image has {num_mel_bins} mel columns but the backbone expects width {w}")
        dims = [int(self.backbone.embed_dim * 2**s) for s in range(len(self.backbone.stages))]
        block_dims = [dims[s] for s, stage in enumerate(self.backbone.stages) for _ in stage.blocks]
        self.adapters = AdapterBank.lavish(
            block_dims, num_latents=num_latents, reduction=reduction, groups=groups, attn_impl=attn_impl,
            fold_bn=fold_bn,
        )
        self.head = nn.Sequential(nn.Linear(2 * dims[-1], hidden_dim), nn.Linear(hidden_dim, num_classes + 1))
        self.set_attn_impl(attn_impl)
        self.backbone.requires_grad_(False)

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.backbone.patch_embed.img_size)

    def set_attn_impl(self, attn_impl: str) -> None:
        """Switch every attention op (backbone and adapters) to ``"fused"`` or ``"reference"``."""
        self.backbone.attn_impl = attn_impl
        for family in self.adapters.values():
            for adapter in family:
                adapter.set_attn_impl(attn_impl)

    def set_fold_bn(self, fold_bn: bool = True) -> None:
        """Fold (``True``) or do not fold the bottleneck norms of every adapter."""
        self.adapters.set_fold_bn(fold_bn)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    def trainable_groups(self) -> dict[str, nn.Module]:
        """Parts for :func:`avperceive.models.set_trainable`: ``head`` and ``adapters``."""
        return {"head": self.head, "adapters": self.adapters}

    def train(self, mode: bool = True):
        """Train mode for adapters and head; the frozen backbone stays in eval mode."""
        super().train(mode)
        self.backbone.eval()
        return self

    # -- inputs -----------------------------------------------------------------------------------
    def input_settings(self) -> dict:
        """Segments, frame size and the audio-image step fixed by the constructor."""
        h, w = self.image_size
        step = {"op": "lavish-audio-image", "num_mel_bins": self.num_mel_bins, "frames": h,
                "frame_shift_ms": self.frame_shift_ms}
        return {"segments": self.num_segments, "size": [h, w], "sample_rate": self.sample_rate,
                "segment_seconds": self.segment_samples / self.sample_rate, "audio_steps": [step]}

    def audio_image(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, T, segment_samples) waveform -> (B, T, H, num_mel_bins) normalised fbank image, float32."""
        b, t = audio.shape[:2]
        img = lavish_audio_image(
            rearrange(audio.float(), "b t s -> (b t) s"), self.sample_rate, segments=1,
            segment_samples=self.segment_samples,
            num_mel_bins=self.num_mel_bins, target_frames=self.image_size[0], frame_shift_ms=self.frame_shift_ms,
        )
        return rearrange(img, "(b t) 1 f m -> b t f m", b=b, t=t)

    def _check_inputs(self, video: torch.Tensor, audio: torch.Tensor) -> None:
        h, w = self.image_size
        t = self.num_segments
        if video.dim() != 5 or video.shape[1] != t or tuple(video.shape[2:]) != (3, h, w):
            raise ValueError(f"video must be (B, {t}, 3, {h}, {w}) (B clips of {t} segments), got {tuple(video.shape)}")
        ok_wave = audio.dim() == 3 and audio.shape[2] == self.segment_samples
        ok_image = audio.dim() == 4 and tuple(audio.shape[2:]) == (h, w)
        if not (ok_wave or ok_image) or audio.shape[0] != video.shape[0] or audio.shape[1] != t:
            raise ValueError(
                f"audio must be (B, {t}, {self.segment_samples}) waveform segments or (B, {t}, {h}, {w}) audio images "
                f"with B = {video.shape[0]}, got {tuple(audio.shape)}"
            )
        if not video.is_floating_point() or not audio.is_floating_point():
            raise ValueError(f"video and audio must be floating tensors, got {video.dtype} and {audio.dtype}")

    # -- forward ----------------------------------------------------------------------------------
    def _block(self, i: int, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """One shared block on the stacked streams ``x = [a; v]`` of shape ``(2 B·T, N, C)``."""
        ad = self.adapters
        a, v = x.chunk(2)
        x = x + block.attn_branch(x) + torch.cat(lavish_adapter_pair(ad["audio_p1"][i], ad["video_p1"][i], a, v))
        a, v = x.chunk(2)
        return x + block.mlp_branch(x) + torch.cat(lavish_adapter_pair(ad["audio_p2"][i], ad["video_p2"][i], a, v))

    def forward_features(self, video: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, 3, H, W) frames + (B, T, S) waveform or (B, T, H, W) audio image -> token means
        ``(video (B, T, C), audio (B, T, C))`` after the final norm."""
        self._check_inputs(video, audio)
        b, t = video.shape[:2]
        img = self.audio_image(audio) if audio.dim() == 3 else audio
        video, img = self.cast_inputs(video, img)
        images = torch.cat([
            repeat(img, "b t f m -> (b t) c f m", c=3),
            rearrange(video, "b t c h w -> (b t) c h w"),
        ])  # both (B·T, 3, H, W): audio first, then video
        x = self.backbone.patch_embed(images)
        i = 0
        for stage in self.backbone.stages:
            for block in stage.blocks:
                if self.grad_checkpointing and torch.is_grad_enabled():
                    x = checkpoint(self._block, i, block, x, use_reentrant=False)
                else:
                    x = self._block(i, block, x)
                i += 1
            x = stage.downsample(x)
        a, v = reduce(self.backbone.norm(x), "(s b t) n c -> s b t c", "mean", s=2, b=b, t=t)
        return v, a

    def forward_head(self, features: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Two-layer head on the token means -> the output dict of :meth:`forward`."""
        v, a = features
        logits = self.head(torch.cat([v, a], dim=-1))
        probs = logits.float().softmax(dim=-1)
        return {"logits": logits, "probs": probs, "video_pooled": v, "audio_pooled": a}

    def forward(self, video: torch.Tensor, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-segment scores.

        Returns:
            ``{"logits": (B, T, K + 1), "probs": (B, T, K + 1) softmax (float32), "video_pooled"/"audio_pooled":
            (B, T, C)}``.
        """
        return self.forward_head(self.forward_features(video, audio))

    def decide(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, T) int64 per-second class (argmax over K + 1; background = K)."""
        return outputs["logits"].argmax(dim=-1)


_PAPER = "Lin et al., Vision Transformers are Parameter-Efficient Audio-Visual Learners, CVPR 2023"


def _input(size: int, num_mel_bins: int) -> dict:
    return {
        "task": "ave",
        "sample_rate": 16000,
        "segments": 10,
        "segment_seconds": 1.0,
        "frames_per_segment": 1,
        "size": size,
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "audio_frontend": "lavish-kaldi-fbank",
        "audio_steps": [
            {"op": "lavish-audio-image", "num_mel_bins": num_mel_bins, "frames": size, "frame_shift_ms": 5.2}
        ],
    }


@register_model(
    "lavish-ave",
    pretrained_cfgs={
        "untrained": PretrainedCfg(
            paper=_PAPER, input=_input(192, 192), label_names=AVE_CATEGORIES,
            notes="Random initialisation; the LAVisH authors released no trained AVE checkpoint. "
            "A state dict saved by main_trans_v2.py converts with convert_checkpoint('lavish-ave', path).",
        )
    },
)
def lavish_ave(**overrides) -> LAVisH:
    """LAVisH AVE at the reference size (Swin-V2-L 192 px for both streams, 2 latent tokens)."""
    return LAVisH(**overrides)


@register_model(
    "lavish-ave-tiny",
    pretrained_cfgs={
        "untrained": PretrainedCfg(
            paper=_PAPER, input=_input(32, 32), label_names=AVE_CATEGORIES,
            notes="Tiny backbone (Swin-V2 width 16, 32 px; 32-bin audio image) for tests and examples.",
        )
    },
)
def lavish_ave_tiny(**overrides) -> LAVisH:
    """LAVisH AVE with a tiny Swin-V2 (32 px, width 16) and a 32x32 audio image."""
    cfg = dict(backbone=dict(TINY_VIDEO_BACKBONE), num_mel_bins=32, hidden_dim=32)
    cfg.update(overrides)
    return LAVisH(**cfg)
