"""Event-specific audio-visual fusion model (Senocak, Kim, Oh, Li, Kweon, WACV 2023).

MC3-18 on ``T = 100`` frames of 112x112 (no temporal stride) gives ``z_v (B, 100, 512)`` and the
last conv map ``V (B, 100, 512, 7, 7)``; a 2D CNN on the 1000 x 80 log-mel of 10 s at 16 kHz gives
``z_a (B, 100, 512)``; :class:`avperceive.nn.EventSpecificFusion` pools them five ways (eqs 1-3)
and returns one logit vector per layer. Train with :func:`avperceive.nn.multi_head_loss`; decode
with :func:`avperceive.analysis.event_types.majority_vote` / ``union_multilabel``.

Registered as ``"event-specific-mc3"`` (the paper's sizes) and ``"event-specific-tiny"`` (same
layout, narrow widths, for tests and examples), each with an ``"untrained"`` tag whose
:class:`PretrainedCfg` records the paper's input settings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from einops import rearrange
from torch import Tensor

from ..backbones.audio_cnn import AudioCNN
from ..backbones.mc3 import MC3
from ..errors import ConfigError
from ..hub.mixin import PretrainedMixin
from ..nn.fusion import EVENT_LAYERS, EventSpecificFusion, localization_map
from ..signal.spectral import melspectrogram, power_to_db
from .contract import AVModel
from .registry import PretrainedCfg, register_model

__all__ = ["EventSpecificModel", "EVENT_SPECIFIC_INPUT", "event_specific_mc3", "event_specific_tiny"]

_PAPER = (
    "Senocak, Kim, Oh, Li, Kweon. Event-Specific Audio-Visual Fusion Layers: A Simple and New Perspective "
    "on Video Understanding. WACV 2023"
)

# Log-mel of the paper: 16 kHz, 10 s, 1000 frames x 80 mel bins; 10 ms hop (implied), 25 ms window (not given
# in the paper; the usual choice).
_LOGMEL = {"sample_rate": 16000, "n_fft": 512, "win_length": 400, "hop_length": 160, "n_mels": 80, "frames": 1000}

EVENT_SPECIFIC_INPUT = {
    "task": "clip-classification",
    "sample_rate": 16000,
    "segments": 1,
    "segment_seconds": 10.0,
    "frames_per_segment": 100,
    "size": 112,
    # torchvision's Kinetics-400 video normalisation (the MC3-18 initialisation)
    "mean": [0.43216, 0.394666, 0.37645],
    "std": [0.22803, 0.22145, 0.216989],
    "audio_frontend": "event-specific-logmel",
    "audio_dtype": "float32",  # the log-mel runs inside the model: the waveform reaches it unrounded in bf16/fp16
    "logmel": dict(_LOGMEL),
    "extra_inputs": {"onset_mask": {"op": "onset-mask", "steps": 100}},
}


class EventSpecificModel(AVModel, PretrainedMixin):
    """MC3 + audio CNN + the five event-specific layers.

    :meth:`forward_layers` returns the per-layer logits ``{layer: (B, num_classes)}`` (train with
    :func:`avperceive.nn.multi_head_loss`, decode with
    :func:`avperceive.analysis.event_types.majority_vote`); :meth:`forward` returns the clip
    logits of the contract, ``log mean_i softmax(O_i)`` over the layers (their softmax is the mean of
    the layers' class probabilities), and :meth:`decide` its argmax.

    Args:
        num_classes: ``K`` (VGGSound: 309).
        video_widths, video_blocks: :class:`~avperceive.backbones.mc3.MC3` sizes.
        audio_channels, audio_time_pools, audio_freq_pools: :class:`~avperceive.backbones.audio_cnn.AudioCNN` sizes;
            ``audio_channels[-1]`` must equal ``video_widths[-1]`` (the feature width ``D``), and the time
            pools must multiply to ``frames / steps`` of the log-mel (10 for 1000 frames -> 100 steps).
        k: steps of the instant layer.
        layers: which of ``("continuous", "instant", "onset", "visual", "audio")``.
        unimodal_heads: ``"concat"`` (the paper's 2D-input heads) or ``"half"`` (D-input heads for the
            visual / audio layers); see :class:`~avperceive.nn.EventSpecificFusion`.

    Inputs of :meth:`forward`:
        video: ``(B, T, 3, H, W)`` (the library's layout) or, with ``channels_first=True``,
            ``(B, 3, T, H, W)`` (the Conv3d layout), normalised with ``mean``/``std`` of the config.
        audio: a waveform ``(B, samples)`` at 16 kHz (turned into the 1000 x 80 log-mel inside the
            model), or a log-mel ``(B, frames, 80)`` / ``(B, 1, frames, 80)``.
        onset_mask: ``(B, T)`` bool, audio onsets per step (``avperceive.signal.onset_mask(wave, 16000,
            steps=T)``); ``None`` makes the onset layer equal the continuous one.
        padding_mask: ``(B, T)`` bool, True at padded steps of shorter clips.

    The audio network must give as many steps as there are frames (one audio step per video frame).
    Inputs are cast to the parameters' dtype on entry; the log-mel is computed in float32.
    """

    task = "clip-classification"

    def __init__(
        self,
        num_classes: int = 309,
        video_widths: Sequence[int] = (64, 128, 256, 512),
        video_blocks: Sequence[int] = (2, 2, 2, 2),
        audio_channels: Sequence[int] = (64, 128, 256, 512),
        audio_time_pools: Sequence[int] = (1, 2, 5, 1),
        audio_freq_pools: Sequence[int] = (2, 2, 2, 2),
        k: int = 10,
        layers: Sequence[str] = EVENT_LAYERS,
        unimodal_heads: str = "concat",
    ):
        super().__init__()
        if audio_channels[-1] != video_widths[-1]:
            raise ConfigError(
                f"audio_channels[-1] ({audio_channels[-1]}) must equal video_widths[-1] ({video_widths[-1]}): "
                "the instant layer takes the dot product of the two features"
            )
        self.video_backbone = MC3(tuple(video_widths), tuple(video_blocks))
        self.audio_backbone = AudioCNN(tuple(audio_channels), tuple(audio_time_pools), tuple(audio_freq_pools))
        self.fusion = EventSpecificFusion(
            int(video_widths[-1]), num_classes, k=k, layers=tuple(layers), unimodal_heads=unimodal_heads
        )

    def logmel(self, wave: Tensor) -> Tensor:
        """``(B, samples)`` at 16 kHz -> ``(B, samples // 160, 80)`` log-mel (25 ms Hann window, 10 ms hop, dB)."""
        mel = melspectrogram(
            wave.float(),
            _LOGMEL["sample_rate"],
            n_fft=_LOGMEL["n_fft"],
            hop_length=_LOGMEL["hop_length"],
            win_length=_LOGMEL["win_length"],
            n_mels=_LOGMEL["n_mels"],
        )
        frames = wave.shape[-1] // _LOGMEL["hop_length"]
        return rearrange(power_to_db(mel, top_db=None)[..., :frames], "b m f -> b f m")

    def encode(self, video: Tensor, audio: Tensor, *, channels_first: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """Backbone features: ``z_v (B, T, D)``, ``z_a (B, T, D)`` and the visual map ``V (B, T, D, h, w)``."""
        if video.ndim != 5:
            raise ValueError(
                f"expected video (B, T, 3, H, W) (or (B, 3, T, H, W) with channels_first); got {tuple(video.shape)}"
            )
        if not channels_first:
            if video.shape[2] != 3:
                raise ValueError(f"expected video (B, T, 3, H, W); got {tuple(video.shape)}")
            video = rearrange(video, "b t c h w -> b c t h w")
        elif video.shape[1] != 3:
            raise ValueError(f"expected video (B, 3, T, H, W) with channels_first=True; got {tuple(video.shape)}")
        if audio.ndim == 2:
            audio = self.logmel(audio)
        video, audio = self.cast_inputs(video, audio)
        v_map = self.video_backbone.forward_features(video)
        z_v = v_map.mean(dim=(-2, -1)).transpose(1, 2)
        z_a = self.audio_backbone(audio)
        if z_a.shape[1] != z_v.shape[1]:
            frames = z_v.shape[1] * self.audio_backbone.frames_per_step
            raise ValueError(
                f"audio gives {z_a.shape[1]} steps but video {z_v.shape[1]}: pass {frames} log-mel frames "
                f"(or {frames * _LOGMEL['hop_length']} samples) for {z_v.shape[1]} video frames"
            )
        return z_v, z_a, MC3.map_to_steps(v_map)

    def forward_features(
        self,
        video: Tensor,
        audio: Tensor,
        onset_mask: Tensor | None = None,
        padding_mask: Tensor | None = None,
        *,
        channels_first: bool = False,
    ) -> dict[str, Tensor]:
        """The per-layer logits ``{layer: (B, num_classes)}`` (see the class docstring for the inputs)."""
        z_v, z_a, _ = self.encode(video, audio, channels_first=channels_first)
        return self.fusion(z_v, z_a, onset_mask, padding_mask)

    #: the per-layer logits under the name training code reads best.
    forward_layers = forward_features

    def forward_head(self, features: dict[str, Tensor]) -> Tensor:
        """Per-layer logits -> clip logits ``log mean_i softmax(O_i)`` ``(B, num_classes)``."""
        stacked = torch.stack([o.float().log_softmax(dim=-1) for o in features.values()])  # (layers, B, K)
        return torch.logsumexp(stacked, dim=0) - math.log(len(features))

    def forward(
        self,
        video: Tensor,
        audio: Tensor,
        onset_mask: Tensor | None = None,
        padding_mask: Tensor | None = None,
        *,
        channels_first: bool = False,
    ) -> Tensor:
        """Clip logits ``(B, num_classes)`` (float32): the layers' mean class probability, as logits.

        Written out (not :meth:`AVModel.forward`) so that the masks can also be passed by position,
        ``model(video, audio, onset_mask)``, as callers do."""
        return self.forward_head(
            self.forward_features(video, audio, onset_mask, padding_mask, channels_first=channels_first)
        )

    def decide(self, outputs: Tensor) -> Tensor:
        """``(B,)`` class indices: the argmax of the clip logits."""
        return outputs.argmax(dim=-1)

    @torch.no_grad()
    def localize(
        self,
        video: Tensor,
        audio: Tensor,
        *,
        channels_first: bool = False,
        normalize: bool = False,
        upsample: bool = True,
    ) -> Tensor:
        """Training-free sound-source maps ``alpha_t = V_t . z_a,t``: ``(B, T, H, W)`` (or ``(B, T, h, w)``)."""
        z_v, z_a, v_map = self.encode(video, audio, channels_first=channels_first)
        size = tuple(video.shape[-2:]) if upsample else None
        return localization_map(v_map, z_a, size, normalize=normalize)


def _cfg(notes: str) -> dict[str, PretrainedCfg]:
    return {"untrained": PretrainedCfg(paper=_PAPER, input=dict(EVENT_SPECIFIC_INPUT), notes=notes)}


@register_model(
    "event-specific-mc3",
    pretrained_cfgs=_cfg(
        "Random init. The paper initialises MC3-18 from Kinetics-400: load torchvision's mc3_18 weights with "
        "convert_checkpoint('mc3-torchvision', path) into model.video_backbone."
    ),
)
def event_specific_mc3(**overrides) -> EventSpecificModel:
    """The paper's model: MC3-18 (D = 512) + audio CNN + five event-specific layers (VGGSound: 309 classes)."""
    return EventSpecificModel(**overrides)


@register_model("event-specific-tiny", pretrained_cfgs=_cfg("Random init; narrow widths for tests and examples."))
def event_specific_tiny(**overrides) -> EventSpecificModel:
    """Same layout with widths 8-32, one block per stage and 10 classes (fast on CPU)."""
    cfg = dict(
        num_classes=10,
        video_widths=(8, 16, 16, 32),
        video_blocks=(1, 1, 1, 1),
        audio_channels=(8, 16, 16, 32),
    )
    cfg.update(overrides)
    return EventSpecificModel(**cfg)
