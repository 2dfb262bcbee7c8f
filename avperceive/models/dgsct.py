"""DG-SCT for audio-visual event localisation (AVE).

Duan et al., "Cross-modal Prompts: Adapting Large Pre-trained Models for Audio-Visual Downstream
Tasks" (DG-SCT, NeurIPS 2023), AVE model of the official code (``MMIL_Net``), as restated by the
EoPMA paper (Guo, Tørresen & Jensenius, TISMIR 2026, eqs. 1-4 with β = 0).

A frozen Swin-V2 (video) and a frozen HTS-AT (audio) run side by side; at each *paired layer* i
(one HTS-AT block and one Swin-V2 block) four adapters Ω add cross-modal residuals. With states
``v`` (B·T, N_v, C_v) and ``a`` (B·T, N_a, C_a), the reference order (``residual_order="reference"``)
is::

    r_a1 = Ω^a_p1(a, v);  r_v1 = Ω^v_p1(v, a)             # both read the layer input
    v = v + LN1(WAttn(v)) + r_v1                           # Swin-V2 res-post-norm attention half
    a = HTSATBlock(a) + r_a1                               # the whole pre-norm HTS-AT block
    r_a2, m_a = Ω^a_p2(a, v);  r_v2, m_v = Ω^v_p2(v, a)
    v = v + LN2(MLP(v)) + r_v2;  a = a + r_a2

``residual_order="paper"`` follows EoPMA eqs. 1-4 literally (attention half of both blocks, p1
residuals, then the MLP half of both blocks and the p2 residuals). Swin-V2 blocks without an
HTS-AT partner run unchanged (stage 2: audio block j pairs with video block 3j+2 of 18). After
the last stage ``v = norm(v)`` (the audio stream is not normed), both streams are pooled with the
spatial maps of the last p2 adapters, then :class:`~avperceive.nn.temporal.TemporalAttention` and
:class:`~avperceive.nn.heads.CMBSHead` score the clip, and :func:`~avperceive.nn.heads.ave_decision`
labels each second (class or background).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from einops import rearrange, repeat
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..backbones.htsat import HTSAT
from ..backbones.swinv2 import IMAGENET_MEAN, IMAGENET_STD, SwinV2
from ..errors import ConfigError
from ..hub.mixin import PretrainedMixin
from ..nn.adapter_bank import AdapterBank
from ..nn.heads import CMBSHead, ave_decision, ave_segment_probs
from ..nn.temporal import TemporalAttention
from .contract import AVModel
from .registry import PretrainedCfg, create_model, register_config
from .segment_prediction import SegmentPredictionMixin

__all__ = [
    "DGSCT",
    "PairedLayer",
    "ResidualFn",
    "step_paired_layer",
    "pair_layers",
    "build_backbone",
    "AVE_CATEGORIES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]

#: The 28 AVE event categories in the order of ``data/AVE/categories.txt`` (label index order).
AVE_CATEGORIES: tuple[str, ...] = (
    "Church bell", "Male speech, man speaking", "Bark", "Fixed-wing aircraft, airplane", "Race car, auto racing",
    "Female speech, woman speaking", "Helicopter", "Violin, fiddle", "Flute", "Ukulele", "Frying (food)", "Truck",
    "Shofar", "Motorcycle", "Acoustic guitar", "Train horn", "Clock", "Banjo", "Goat", "Baby cry, infant cry", "Bus",
    "Chainsaw", "Cat", "Horse", "Toilet flush", "Rodents, rats, mice", "Accordion", "Mandolin",
)

#: ``fn(i, position, modality, own, other) -> (residual, spatial_map | None)``; position "p1"/"p2",
#: modality "audio"/"video". Lets a caller (e.g. an EoPMA ensemble) replace the adapters of a layer.
ResidualFn = Callable[[int, str, str, torch.Tensor, torch.Tensor], tuple[torch.Tensor, "torch.Tensor | None"]]


@dataclass(frozen=True)
class PairedLayer:
    """One adapted layer: ``stage``, the Swin-V2 ``video_block`` and HTS-AT ``audio_block`` indices."""

    index: int
    stage: int
    video_block: int
    audio_block: int


def pair_layers(video_depths: list[int], audio_depths: list[int]) -> list[PairedLayer]:
    """The reference's pairing: per stage, audio block j <-> video block ``(j + 1) * r - 1``, r = depth ratio.

    For Swin-V2-L (2, 2, 18, 2) and HTS-AT (2, 2, 6, 2): 12 pairs; stage 2 pairs video blocks
    2, 5, ..., 17 with audio blocks 0-5.
    """
    if len(video_depths) != len(audio_depths):
        raise ConfigError(f"backbones need the same number of stages, got {video_depths} and {audio_depths}")
    layers: list[PairedLayer] = []
    for s, (dv, da) in enumerate(zip(video_depths, audio_depths)):
        if da == 0 or dv % da:
            raise ConfigError(f"stage {s}: video depth {dv} is not a multiple of audio depth {da}")
        r = dv // da
        for j in range(da):
            layers.append(PairedLayer(len(layers), s, (j + 1) * r - 1, j))
    return layers


def step_paired_layer(
    video_block: nn.Module,
    audio_block: nn.Module,
    v: torch.Tensor,
    a: torch.Tensor,
    residual: Callable[[str, str, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]],
    residual_order: str = "reference",
) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor | None, torch.Tensor | None]]:
    """Run one paired layer (Swin-V2 block + HTS-AT block + four adapter residuals).

    Args:
        video_block: block with ``attn_branch(x)`` / ``mlp_branch(x)`` (residuals to add).
        audio_block: HTS-AT block, callable whole; for ``"paper"`` also ``attn_branch``/``mlp_branch``.
        v: (B, N_v, C_v) video tokens; a: (B, N_a, C_a) audio tokens.
        residual: ``residual(position, modality, own, other) -> (residual, spatial_map | None)``.
        residual_order: ``"reference"`` (DG-SCT code) or ``"paper"`` (EoPMA eqs. 1-4).

    Returns:
        ``(v, a, (map_v, map_a))`` with the p2 spatial maps (B, N) (or None).
    """
    r_a1, _ = residual("p1", "audio", a, v)
    r_v1, _ = residual("p1", "video", v, a)
    if residual_order == "reference":
        v = v + video_block.attn_branch(v) + r_v1
        a = audio_block(a) + r_a1
        r_a2, map_a = residual("p2", "audio", a, v)
        r_v2, map_v = residual("p2", "video", v, a)
        v = v + video_block.mlp_branch(v) + r_v2
        a = a + r_a2
    elif residual_order == "paper":
        v = v + video_block.attn_branch(v) + r_v1
        a = a + audio_block.attn_branch(a) + r_a1
        r_a2, map_a = residual("p2", "audio", a, v)
        r_v2, map_v = residual("p2", "video", v, a)
        v = v + video_block.mlp_branch(v) + r_v2
        a = a + audio_block.mlp_branch(a) + r_a2
    else:
        raise ConfigError(f"residual_order must be 'reference' or 'paper', got {residual_order!r}")
    return v, a, (map_v, map_a)


def build_backbone(spec: str | dict, kind: type[nn.Module], role: str, **fixed) -> nn.Module:
    """A backbone from its registry name (``create_model(spec, **fixed)``) or config (``kind(**spec, **fixed)``).

    Args:
        spec: registered name (``"swinv2_large_window12_192"``) or constructor keyword arguments.
        kind: the class the model steps through (``SwinV2``, ``HTSAT``).
        role: argument name for messages (``"video_backbone"``).
        **fixed: arguments the model imposes (``num_classes=0`` for a feature extractor).

    Raises:
        ConfigError: the name builds another kind of backbone.
    """
    backbone = create_model(spec, **fixed) if isinstance(spec, str) else kind(**{**spec, **fixed})
    if not isinstance(backbone, kind):
        raise ConfigError(f"{role}={spec!r} builds a {type(backbone).__name__}; this model needs a {kind.__name__}")
    return backbone


class DGSCT(AVModel, PretrainedMixin, SegmentPredictionMixin):
    """DG-SCT AVE model: frozen Swin-V2 + HTS-AT with 4 x L DG-SCT adapters, temporal module, CMBS head.

    Segments are folded into the batch: a clip of T segments is processed as B·T images / waveforms
    by both backbones, then unfolded for the temporal module.

    Args:
        video_backbone: Swin-V2 registry name or constructor kwargs; built without classifier
            (``num_classes=0``), the reference's Swin-V2 is a feature extractor.
        audio_backbone: HTS-AT registry name or constructor kwargs (the token-semantic head is kept:
            the reference checkpoint stores it).
        num_classes: K event classes (AVE: 28); background index K.
        num_segments: T, segments per clip (AVE: 10).
        segment_samples: samples per 1-s segment at the audio rate (32 000).
        audio_input_samples: samples per HTS-AT input (10 s = 320 000); each segment is tiled to it.
        num_latents, reduction, groups: DG-SCT adapter settings (32, 8, 2).
        d_model, video_input_dim, audio_input_dim, ffn_dim: temporal-module widths (256, 512, 128, 1024).
        residual_order: ``"reference"`` (DG-SCT code; loads the official checkpoint) or ``"paper"``.
        attn_impl: ``"fused"`` or ``"reference"`` for every attention op.
        grad_checkpointing: recompute each layer in the backward pass.

    Inputs of :meth:`forward`: ``video`` (B, T, 3, H, W) normalised with ImageNet mean/std; ``audio``
    (B, T, S) with S = ``segment_samples`` (each segment is tiled to the HTS-AT input length, as the
    reference does) or S = the HTS-AT input length (already tiled). The video is cast to the
    parameters' dtype on entry; the waveform is not (in bf16 it would carry rounding noise ~48 dB
    below the signal into every quiet mel bin): the HTS-AT log-mel front-end computes in float32
    and ``bn0`` casts its output to the parameters' dtype.
    """

    task = "ave"

    def __init__(
        self,
        video_backbone: str | dict = "swinv2_large_window12_192",
        audio_backbone: str | dict = "htsat_audioset",
        num_classes: int = 28,
        num_segments: int = 10, segment_samples: int = 32000, audio_input_samples: int = 320000,
        num_latents: int = 32, reduction: int = 8, groups: int = 2,  # adapters
        d_model: int = 256, video_input_dim: int = 512, audio_input_dim: int = 128, ffn_dim: int = 1024,  # temporal
        residual_order: str = "reference",
        attn_impl: str = "fused",
        grad_checkpointing: bool = False,
    ):
        super().__init__()
        if residual_order not in ("reference", "paper"):
            raise ConfigError(f"residual_order must be 'reference' or 'paper', got {residual_order!r}")
        self.num_classes, self.num_segments, self.segment_samples = num_classes, num_segments, segment_samples
        self.audio_input_samples = audio_input_samples
        self.residual_order = residual_order
        self.grad_checkpointing = grad_checkpointing
        self.video_backbone = build_backbone(video_backbone, SwinV2, "video_backbone", num_classes=0)
        self.audio_backbone = build_backbone(audio_backbone, HTSAT, "audio_backbone")
        self.layers = pair_layers(
            [len(s.blocks) for s in self.video_backbone.stages], [len(s.blocks) for s in self.audio_backbone.stages]
        )
        v_dims, v_tokens = self._stage_geometry(self.video_backbone)
        a_dims, a_tokens = self._stage_geometry(self.audio_backbone)
        stages = [layer.stage for layer in self.layers]
        self.adapters = AdapterBank.dgsct(
            [v_dims[s] for s in stages], [a_dims[s] for s in stages], [v_tokens[s] for s in stages],
            [a_tokens[s] for s in stages], num_latents=num_latents, reduction=reduction, groups=groups,
            attn_impl=attn_impl,
        )
        self.temporal = TemporalAttention(
            video_dim=v_dims[-1], audio_dim=a_dims[-1], d_model=d_model, video_input_dim=video_input_dim,
            audio_input_dim=audio_input_dim, ffn_dim=ffn_dim, attn_impl=attn_impl,
        )
        self.head = CMBSHead(d_model=d_model, num_classes=num_classes)
        self.set_attn_impl(attn_impl)
        self.video_backbone.requires_grad_(False)
        self.audio_backbone.requires_grad_(False)

    # -- structure ------------------------------------------------------------------------------
    @staticmethod
    def _stage_geometry(backbone: nn.Module) -> tuple[list[int], list[int]]:
        dims = [int(stage.dim) for stage in backbone.stages]
        tokens = [int(stage.input_resolution[0] * stage.input_resolution[1]) for stage in backbone.stages]
        return dims, tokens

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.video_backbone.patch_embed.img_size)

    def set_attn_impl(self, attn_impl: str) -> None:
        """Switch every attention op (backbones, adapters, temporal module) to ``"fused"`` or ``"reference"``."""
        self.video_backbone.attn_impl = attn_impl
        self.audio_backbone.attn_impl = attn_impl
        for family in self.adapters.values():
            for adapter in family:
                adapter.set_attn_impl(attn_impl)
        self.temporal.set_attn_impl(attn_impl)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each paired layer / unpaired block in the backward pass."""
        self.grad_checkpointing = enable

    def trainable_groups(self) -> dict[str, nn.Module]:
        """Parts for :func:`avperceive.models.set_trainable`: ``head``, ``adapters``, ``temporal``."""
        return {"head": self.head, "adapters": self.adapters, "temporal": self.temporal}

    def train(self, mode: bool = True):
        """Train mode for adapters and heads; the frozen backbones stay in eval mode."""
        super().train(mode)
        self.video_backbone.eval()
        self.audio_backbone.eval()
        return self

    # -- input handling -------------------------------------------------------------------------
    def _check_inputs(self, video: torch.Tensor, audio: torch.Tensor) -> None:
        h, w = self.image_size
        t = self.num_segments
        if video.dim() != 5 or video.shape[1] != t or tuple(video.shape[2:]) != (3, h, w):
            raise ValueError(f"video must be (B, {t}, 3, {h}, {w}) (B clips of {t} segments), got {tuple(video.shape)}")
        allowed = (self.segment_samples, self.audio_input_samples)
        if audio.dim() != 3 or audio.shape[0] != video.shape[0] or audio.shape[1] != t or audio.shape[2] not in allowed:
            raise ValueError(
                f"audio must be (B, {t}, {self.segment_samples}) or (B, {t}, {self.audio_input_samples}) (already "
                f"tiled) with B = {video.shape[0]}, got {tuple(audio.shape)}"
            )
        if not video.is_floating_point() or not audio.is_floating_point():
            raise ValueError(f"video and audio must be floating tensors, got {video.dtype} and {audio.dtype}")

    def input_settings(self) -> dict:
        """Segments, frame size and audio tiling fixed by the constructor (see :mod:`avperceive.models.inputs`)."""
        return {"segments": self.num_segments, "size": list(self.image_size),
                "audio_steps": [{"op": "tile", "samples": self.audio_input_samples}]}

    def tile_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, T, segment_samples) -> (B, T, audio_input_samples): each segment repeated, as the reference."""
        if audio.shape[-1] == self.audio_input_samples:
            return audio
        reps, rest = divmod(self.audio_input_samples, audio.shape[-1])
        if rest:
            raise ValueError(
                f"segment length {audio.shape[-1]} does not divide the HTS-AT input {self.audio_input_samples}"
            )
        return repeat(audio, "b t s -> b t (r s)", r=reps)

    # -- layer stepping -------------------------------------------------------------------------
    def adapter_residual(
        self, i: int, position: str, modality: str, own: torch.Tensor, other: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Residual and spatial map of this model's adapter ``{modality}_{position}`` at layer ``i``."""
        return self.adapters[f"{modality}_{position}"][i](own, other)

    def forward_layer(
        self, i: int, v: torch.Tensor, a: torch.Tensor, residual_fn: ResidualFn | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor | None, torch.Tensor | None]]:
        """Paired layer ``i`` on (B·T, N_v, C_v) / (B·T, N_a, C_a) states; see :func:`step_paired_layer`.

        ``residual_fn(i, position, modality, own, other)`` replaces this model's adapters (default:
        :meth:`adapter_residual`), e.g. to mix several adapter banks per layer (EoPMA).
        """
        layer = self.layers[i]
        fn = residual_fn or self.adapter_residual
        vb = self.video_backbone.stages[layer.stage].blocks[layer.video_block]
        ab = self.audio_backbone.stages[layer.stage].blocks[layer.audio_block]
        return step_paired_layer(vb, ab, v, a, lambda p, m, x, y: fn(i, p, m, x, y), self.residual_order)

    def _maybe_checkpoint(self, fn, *args):
        if self.grad_checkpointing and torch.is_grad_enabled():
            return checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    def forward_backbones(
        self, video: torch.Tensor, audio: torch.Tensor, residual_fn: ResidualFn | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Both backbones with adapters, pooled per segment.

        Args:
            video: (B, T, 3, H, W); audio: (B, T, S) (see the class docstring).
            residual_fn: optional replacement of the adapters (see :meth:`forward_layer`).

        Returns:
            ``(video_pooled (B, T, C_v), audio_pooled (B, T, C_a))``.
        """
        self._check_inputs(video, audio)
        (video,) = self.cast_inputs(video)  # the waveform stays as given: the log-mel front-end runs in float32
        b, t = video.shape[:2]
        frames = rearrange(video, "b t c h w -> (b t) c h w")
        wave = rearrange(self.tile_audio(audio), "b t s -> (b t) s")
        v = self.video_backbone.patch_embed(frames)
        a = self.audio_backbone.patch_embed(self.audio_backbone.forward_frontend(wave))
        maps: tuple[torch.Tensor | None, torch.Tensor | None] = (None, None)
        by_stage: dict[int, dict[int, int]] = {}
        for layer in self.layers:
            by_stage.setdefault(layer.stage, {})[layer.video_block] = layer.index
        for s, stage in enumerate(self.video_backbone.stages):
            paired = by_stage.get(s, {})
            for j, block in enumerate(stage.blocks):
                if j in paired:
                    v, a, maps = self._maybe_checkpoint(
                        lambda v_, a_, i=paired[j]: self.forward_layer(i, v_, a_, residual_fn), v, a
                    )
                else:
                    v = self._maybe_checkpoint(block, v)
            v = stage.downsample(v)
            a = self.audio_backbone.stages[s].downsample(a)
        v = self.video_backbone.norm(v)
        map_v, map_a = maps
        if map_v is None or map_a is None:
            raise ConfigError("the last paired layer's p2 adapters returned no spatial maps to pool with")
        v_pool = torch.einsum("bn,bnc->bc", map_v.to(v.dtype), v)
        a_pool = torch.einsum("bn,bnc->bc", map_a.to(a.dtype), a)
        return rearrange(v_pool, "(b t) c -> b t c", b=b, t=t), rearrange(a_pool, "(b t) c -> b t c", b=b, t=t)

    def forward_features(
        self, video: torch.Tensor, audio: torch.Tensor, residual_fn: ResidualFn | None = None
    ) -> dict[str, torch.Tensor]:
        """Backbones with adapters, pooled per segment: ``{"video_pooled": (B, T, C_v), "audio_pooled": (B, T, C_a)}``.

        Args: see :meth:`forward`.
        """
        v_pool, a_pool = self.forward_backbones(video, audio, residual_fn)
        return {"video_pooled": v_pool, "audio_pooled": a_pool}

    def forward_head(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Temporal module + CMBS head on the pooled features -> the output dict of :meth:`forward`."""
        out = self.score_segments(self.temporal(features["video_pooled"], features["audio_pooled"]))
        out["video_pooled"], out["audio_pooled"] = features["video_pooled"], features["audio_pooled"]
        return out

    def score_segments(self, temporal_out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """CMBS head on the temporal-module outputs (``video_feature`` / ``audio_feature`` (B, T, D)),
        plus ``probs`` (B, T, K + 1) (:func:`~avperceive.nn.heads.ave_segment_probs`)."""
        out = dict(temporal_out)
        out.update(self.head(out["video_feature"], out["audio_feature"]))
        out["probs"] = ave_segment_probs(out["is_event"], out["event_scores"])
        return out

    def forward(
        self, video: torch.Tensor, audio: torch.Tensor, residual_fn: ResidualFn | None = None
    ) -> dict[str, torch.Tensor]:
        """Score a batch of clips.

        Args:
            video: (B, T, 3, H, W) frames, ImageNet-normalised, one per segment.
            audio: (B, T, segment_samples) or (B, T, audio_input_samples) at 32 kHz.
            residual_fn: optional replacement of the adapters (see :meth:`forward_layer`).

        Returns:
            dict with ``is_event`` (B, T) logits, ``event_scores`` (B, K), ``av_score`` (B, K),
            ``probs`` (B, T, K + 1) per-segment probabilities (background = K),
            ``audio_visual_gate`` (B, T), ``video_feature``/``audio_feature`` (B, T, D) (temporal
            module outputs) and ``video_pooled`` (B, T, C_v) / ``audio_pooled`` (B, T, C_a).
        """
        return self.forward_head(self.forward_features(video, audio, residual_fn))

    def decide(self, outputs: dict[str, torch.Tensor], threshold: float = 0.5) -> torch.Tensor:
        """(B, T) int64 per-second class; background = K (see :func:`avperceive.nn.heads.ave_decision`)."""
        return ave_decision(outputs["is_event"], outputs["event_scores"], threshold)


# -- registry -------------------------------------------------------------------------------------
def ave_input_cfg(
    size: int, sample_rate: int, audio_frontend: str, audio_steps: list[dict], audio_dtype: str | None = None
) -> dict:
    """``PretrainedCfg.input`` of an AVE model: 10 one-second segments, one ImageNet-normalised frame
    of ``size`` px per segment, audio at ``sample_rate`` through ``audio_frontend`` and ``audio_steps``
    (and, when given, the ``audio_dtype`` the waveform is handed over in)."""
    cfg = {
        "task": "ave",
        "sample_rate": sample_rate,
        "segments": 10,
        "segment_seconds": 1.0,
        "frames_per_segment": 1,
        "size": size,
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "audio_frontend": audio_frontend,
        "audio_steps": audio_steps,
    }
    if audio_dtype is not None:
        cfg["audio_dtype"] = audio_dtype
    return cfg


def _dgsct_cfgs(size: int, tile_to: int, notes: str) -> dict[str, PretrainedCfg]:
    # the HTS-AT log-mel is computed inside the model in float32, so the waveform is declared float32 (it reaches
    # that front-end unrounded in a bf16/fp16 model); each 1-s segment is tiled to the HTS-AT input length
    steps = [{"op": "tile", "samples": tile_to}]
    input_cfg = ave_input_cfg(size, 32000, "htsat", steps, audio_dtype="float32")
    return {
        "untrained": PretrainedCfg(paper=_PAPER, input=input_cfg, label_names=AVE_CATEGORIES, notes=notes)
    }


_PAPER = (
    "Duan et al., Cross-modal Prompts: Adapting Large Pre-trained Models for Audio-Visual Downstream Tasks, "
    "NeurIPS 2023"
)
_NOTES = (
    "Random initialisation; no DG-SCT weights are published on the Hub. Convert the official best_82.18.pt "
    "with avperceive.hub.convert_checkpoint('dgsct-ave', path) (or `avperceive convert dgsct-ave`)."
)

#: Tiny configuration for tests and examples (4-stage backbones of width 16, 32-px frames).
TINY_VIDEO_BACKBONE = dict(
    img_size=32, patch_size=4, embed_dim=16, depths=(2, 2, 6, 2), num_heads=(1, 2, 4, 8), window_size=4, num_classes=0
)
TINY_AUDIO_BACKBONE = dict(
    num_classes=4, embed_dim=16, depths=(2, 2, 2, 1), num_heads=(1, 2, 4, 8), window_size=8, spec_size=128, n_mels=32,
    drop_path_rate=0.0,
)
TINY_HEAD = dict(num_latents=4, d_model=16, video_input_dim=32, audio_input_dim=8, ffn_dim=32)


dgsct_ave = register_config(
    "dgsct-ave", DGSCT, "DG-SCT AVE at the reference size (Swin-V2-L 192 px + HTS-AT AudioSet; ~460 M parameters).",
    _dgsct_cfgs(192, 320000, _NOTES),
)
dgsct_ave_tiny = register_config(
    "dgsct-ave-tiny", DGSCT,
    "DG-SCT AVE with tiny backbones (Swin-V2 width 16, 32 px; HTS-AT width 16, 128x128 image, 5-s input).",
    _dgsct_cfgs(
        32, 160000, "Tiny backbones and adapters for tests and examples (each 1-s segment tiled to 5 s); "
        "random weights.",
    ),
    video_backbone=TINY_VIDEO_BACKBONE, audio_backbone=TINY_AUDIO_BACKBONE, audio_input_samples=160000, **TINY_HEAD,
)
