"""AVMIT audiovisual action recognition network (Joannou, Rotshtein & Noppeney, PLoS ONE 2024, experiment 1).

Frozen per-step CNN embeddings -> **multimodal squeeze unit** -> single-layer RNN -> Dense(16).

Squeeze unit (per modality, per time step): 1x1 Conv2D with ``bottleneck`` filters (= a per-step
linear layer) -> BatchNorm -> activation (relu | swish); the audio and visual results are
concatenated, giving ``2 * bottleneck`` RNN inputs per step, so both modalities weigh the same in the
RNN. RNN: FRNN (Keras ``SimpleRNN``, tanh), GRU or LSTM; only the last state is used. Dropout is
Keras *input* dropout: one mask per sequence, reused at every step.

``keras_compatible=True`` gives the Keras parameterisation of the authors' TensorFlow code: one bias vector in
FRNN / LSTM (PyTorch's ``bias_hh`` is zeroed and frozen), GRU in the reset-after form (PyTorch's
native form, two biases), BatchNorm momentum 0.99 (PyTorch 0.01) and epsilon 1e-3. The trainable
parameter counts then equal the paper's Table 5 exactly (:data:`AVMIT_TABLE5`).
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from ..errors import ConfigError
from .embedding_sequence import EMBEDDING_DIMS, EmbeddingSequenceModel, embedding_input_cfg
from .registry import PretrainedCfg, register_config
from .trainable import count_trainable

__all__ = [
    "AVMITClassifier",
    "SqueezeUnit",
    "KerasRNN",
    "AVMIT_TABLE5",
    "AVMIT_LABELS",
    "EMBEDDING_DIMS",
    "trainable_parameters",
]

AVMIT_LABELS = (
    "barking", "diving", "drumming", "frying", "giggling", "howling", "inflating", "mowing", "pouring", "raining",
    "sanding", "shredding", "sneezing", "tapping", "vacuuming", "whistling",
)  # fmt: skip
#: Table 5: (embeddings, rnn) -> selected hyperparameters and the reported trainable parameters.
AVMIT_TABLE5 = {
    ("yamnet-effnetb0", "frnn"): dict(rnn_units=128, bottleneck=256, activation="swish", dropout=0.3, params=675_472),
    ("yamnet-effnetb0", "gru"): dict(rnn_units=128, bottleneck=64, activation="swish", dropout=0.5, params=248_976),
    ("yamnet-effnetb0", "lstm"): dict(rnn_units=64, bottleneck=256, activation="swish", dropout=0.3, params=740_112),
    ("vggish-vgg16", "frnn"): dict(rnn_units=256, bottleneck=256, activation="swish", dropout=0.4, params=366_352),
    ("vggish-vgg16", "gru"): dict(rnn_units=128, bottleneck=256, activation="relu", dropout=0.5, params=413_968),
    ("vggish-vgg16", "lstm"): dict(rnn_units=256, bottleneck=256, activation="swish", dropout=0.5, params=956_944),
}
_PAPER = "Joannou, Rotshtein & Noppeney 2024, Audiovisual Moments in Time, PLoS ONE (AVMIT)"
_ACTIVATIONS = {"relu": nn.ReLU, "swish": nn.SiLU}
_RNNS = {"frnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


class SqueezeUnit(nn.Module):
    """Per-step linear (the 1x1 conv) -> BatchNorm over channels -> activation, for one modality.

    Input ``(B, T, in_dim)``, output ``(B, T, bottleneck)``; BN statistics are over batch and steps.
    """

    def __init__(self, in_dim: int, bottleneck: int, activation: str = "relu", keras_compatible: bool = False):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ConfigError(f"activation must be one of {list(_ACTIVATIONS)}, got {activation!r}")
        self.proj = nn.Linear(in_dim, bottleneck)
        bn = {"momentum": 0.01, "eps": 1e-3} if keras_compatible else {}
        self.norm = nn.BatchNorm1d(bottleneck, **bn)
        self.act = _ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = rearrange(self.proj(x), "b t c -> b c t")
        x = rearrange(self.norm(x), "b c t -> b t c")
        return self.act(x)


class KerasRNN(nn.Module):
    """Single-layer FRNN / GRU / LSTM returning the last hidden state, with Keras input dropout.

    Args:
        kind: ``"frnn"`` (tanh), ``"gru"`` or ``"lstm"``.
        keras_compatible: zero and freeze ``bias_hh`` for FRNN / LSTM (Keras keeps one bias vector).

    Input ``(B, T, input_size)``; output ``(B, hidden)``: the state after the last step (padding included,
    as in the reference). Dropout draws one ``(B, 1, input_size)`` mask per sequence (Keras ``dropout``).
    """

    def __init__(self, kind: str, input_size: int, hidden: int, dropout: float = 0.0, keras_compatible: bool = False):
        super().__init__()
        if kind not in _RNNS:
            raise ConfigError(f"rnn must be one of {list(_RNNS)}, got {kind!r}")
        self.kind = kind
        self.dropout = float(dropout)
        self.rnn = _RNNS[kind](input_size, hidden, batch_first=True)
        if keras_compatible and kind != "gru":
            with torch.no_grad():
                self.rnn.bias_hh_l0.zero_()
            self.rnn.bias_hh_l0.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3:
            raise ValueError(f"RNN input must be (B, T, C), got {tuple(x.shape)}")
        if self.training and self.dropout > 0:
            keep = 1.0 - self.dropout
            mask = torch.bernoulli(torch.full((x.shape[0], 1, x.shape[2]), keep, device=x.device, dtype=x.dtype))
            x = x * mask / keep
        out, _ = self.rnn(x)
        return out[:, -1]


class AVMITClassifier(EmbeddingSequenceModel):
    """AVMIT squeeze-unit + RNN action classifier.

    Args:
        audio_dim, visual_dim: embedding sizes (YamNet 1024 + EffNetB0 1280, or VGGish 128 + VGG16 512).
        rnn: ``"frnn"``, ``"gru"`` or ``"lstm"``; rnn_units: its hidden size.
        bottleneck: squeeze-unit width per modality (RNN input = 2 * bottleneck).
        activation: ``"relu"`` or ``"swish"``; dropout: Keras input dropout of the RNN.
        keras_compatible: Keras parameterisation (see the module doc); Table 5 counts hold with it.

    Forward: ``video`` ``(B, T, visual_dim)`` visual embeddings, ``audio`` ``(B, T, audio_dim)`` audio
    embeddings (the reference zero-pads both to T = 7) -> logits ``(B, num_classes)``. Inputs are cast
    to the parameters' dtype on entry.
    """

    task = "clip-classification"

    def __init__(
        self,
        audio_dim: int = 1024,
        visual_dim: int = 1280,
        rnn: str = "gru",
        rnn_units: int = 128,
        bottleneck: int = 64,
        activation: str = "swish",
        dropout: float = 0.5,
        num_classes: int = 16,
        keras_compatible: bool = False,
    ):
        super().__init__()
        self.audio_squeeze = SqueezeUnit(audio_dim, bottleneck, activation, keras_compatible)
        self.visual_squeeze = SqueezeUnit(visual_dim, bottleneck, activation, keras_compatible)
        self.rnn = KerasRNN(rnn, 2 * bottleneck, rnn_units, dropout, keras_compatible)
        self.classifier = nn.Linear(rnn_units, num_classes)
        self.audio_dim, self.visual_dim = audio_dim, visual_dim

    def forward_features(self, video: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """Squeeze units + RNN: the last hidden state ``(B, rnn_units)``."""
        video, audio = self.check_embeddings(video, audio)
        squeezed = torch.cat([self.audio_squeeze(audio), self.visual_squeeze(video)], dim=-1)
        return self.rnn(squeezed)


#: number of trainable (``requires_grad``) parameters (the counts of Table 5).
trainable_parameters = count_trainable


def _register_paper_models() -> None:
    for (emb, kind), hp in AVMIT_TABLE5.items():
        a_dim, v_dim = EMBEDDING_DIMS[emb]
        cfg = dict(audio_dim=a_dim, visual_dim=v_dim, rnn=kind, keras_compatible=True)
        cfg.update({k: v for k, v in hp.items() if k != "params"})
        notes = f"Table 5 configuration ({hp['params']:,} trainable parameters, Keras convention); random weights."
        register_config(
            f"avmit-{kind}-{emb}",
            AVMITClassifier,
            f"AVMIT {kind.upper()} classifier on {emb} embeddings, Table 5 hyperparameters.",
            {"untrained": PretrainedCfg(paper=_PAPER, input=_input_cfg(emb), label_names=AVMIT_LABELS, notes=notes)},
            **cfg,
        )


def _register_tiny_models() -> None:
    for kind in _RNNS:
        register_config(
            f"avmit-{kind}-tiny",
            AVMITClassifier,
            f"AVMIT {kind.upper()} classifier on tiny 16-d / 24-d embeddings (8 units, bottleneck 8).",
            {
                "untrained": PretrainedCfg(
                    paper=_PAPER,
                    input={**_input_cfg("vggish-vgg16"), "embeddings": "synthetic-16-24"},
                    label_names=AVMIT_LABELS,
                    notes="Tiny AVMIT classifier (audio 16-d, visual 24-d embeddings) for tests and examples.",
                )
            },
            audio_dim=16, visual_dim=24, rnn=kind, rnn_units=8, bottleneck=8, activation="relu", dropout=0.1,
        )


def _input_cfg(embeddings: str) -> dict:
    return embedding_input_cfg("clip-classification", embeddings)


_register_paper_models()
_register_tiny_models()
