"""Supervised audio-visual correspondence (SAVC; Joannou, Rotshtein & Noppeney, PLoS ONE 2024, experiment 2).

Binary task: does the audio stream come from the same action **class** as the visual stream (the two
streams need not come from the same video)? AVE-Net-style fusion:

1. per step and per modality two 128-unit linear layers (no activation in the reference; AVE-Net used
   ReLU, ``activation=`` chooses; Arandjelović & Zisserman, "Objects that sound", ECCV 2018);
2. L2 normalisation of each modality (Keras ``l2_normalize``: ``x / sqrt(max(sum x^2, 1e-12))``);
3. Euclidean distance per step, ``sqrt(max(sum (a - v)^2, 1e-7))`` -- one scalar per step;
4. the distance sequence (input size 1) -> FRNN / GRU / LSTM (256 units, Keras input dropout 0.1);
5. Dense(2) -> logits (class 1 = corresponding).

Pairs (:func:`savc_pairs`): each audio stream with the visual stream of a same-class video
(corresponding) and with visual streams of the other classes, the same number from each
(non-corresponding); the two sets are interleaved 1:1 and redrawn every epoch.
Training in the paper: AdamW(lr 1e-4, weight decay 1e-5), batch 512.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from .avmit import KerasRNN
from .embedding_sequence import EMBEDDING_DIMS, EmbeddingSequenceModel, embedding_input_cfg
from .registry import PretrainedCfg, register_config, register_model

__all__ = ["SAVCModel", "savc_pairs", "SAVC_LABELS", "SAVC_PARAMS"]

SAVC_LABELS = ("non-corresponding", "corresponding")
#: Trainable parameters in the Keras convention (derived from the layer sizes of the paper's experiment 2).
SAVC_PARAMS = {
    ("yamnet-effnetb0", "frnn"): 394_754,
    ("yamnet-effnetb0", "gru"): 527_618,
    ("yamnet-effnetb0", "lstm"): 592_898,
    ("vggish-vgg16", "frnn"): 181_762,
    ("vggish-vgg16", "gru"): 314_626,
    ("vggish-vgg16", "lstm"): 379_906,
}
_PAPER = "Joannou, Rotshtein & Noppeney 2024, Audiovisual Moments in Time, PLoS ONE (AVMIT), SAVC experiment"


def _l2_normalize(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    return x * torch.rsqrt(torch.clamp((x * x).sum(-1, keepdim=True), min=eps))


class SAVCModel(EmbeddingSequenceModel):
    """AVE-Net-style SAVC network.

    Args:
        audio_dim, visual_dim: embedding sizes; hidden: width of the two per-step layers (128).
        rnn, rnn_units, dropout: the recurrent layer (``"lstm"``, 256, 0.1 in the paper).
        activation: ``None`` (linear, the reference) or ``"relu"`` (AVE-Net) between/after the layers.
        keras_compatible: one bias vector for FRNN / LSTM (Keras parameter counts, :data:`SAVC_PARAMS`).

    Forward: ``video`` ``(B, T, visual_dim)`` visual embeddings, ``audio`` ``(B, T, audio_dim)`` audio
    embeddings -> logits ``(B, 2)`` (class 1 = corresponding); ``decide`` gives 1 = corresponding, 0 = not.
    Inputs are cast to the parameters' dtype.
    """

    task = "av-correspondence"

    def __init__(
        self,
        audio_dim: int = 1024,
        visual_dim: int = 1280,
        hidden: int = 128,
        rnn: str = "lstm",
        rnn_units: int = 256,
        dropout: float = 0.1,
        activation: str | None = None,
        keras_compatible: bool = False,
    ):
        super().__init__()
        if activation not in (None, "relu"):
            raise ConfigError(f"activation must be None or 'relu', got {activation!r}")
        act = nn.ReLU() if activation == "relu" else nn.Identity()
        self.audio_net = nn.Sequential(nn.Linear(audio_dim, hidden), act, nn.Linear(hidden, hidden), act)
        self.visual_net = nn.Sequential(nn.Linear(visual_dim, hidden), act, nn.Linear(hidden, hidden), act)
        self.rnn = KerasRNN(rnn, 1, rnn_units, dropout, keras_compatible)
        self.classifier = nn.Linear(rnn_units, 2)
        self.audio_dim, self.visual_dim = audio_dim, visual_dim

    def distances(self, video: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """Per-step Euclidean distance of the L2-normalised embeddings, ``(B, T, 1)``."""
        video, audio = self.check_embeddings(video, audio)
        a = _l2_normalize(self.audio_net(audio))
        v = _l2_normalize(self.visual_net(video))
        return torch.sqrt(torch.clamp(((a - v) ** 2).sum(-1, keepdim=True), min=1e-7))

    def forward_features(self, video: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """Distances -> RNN: the last hidden state ``(B, rnn_units)``."""
        return self.rnn(self.distances(video, audio))


def savc_pairs(
    labels: Sequence[int],
    *,
    pairs_per_video: int = 1,
    include_intact: bool = True,
    seed: int = 0,
    epoch: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Balanced SAVC pairs over a labelled set of videos, redrawn for every ``epoch``.

    For every video ``i`` (its audio stream) and each of ``pairs_per_video`` draws: one corresponding
    pair (the visual stream of a same-class video; the first draw is the video's own intact pair when
    ``include_intact``) and one non-corresponding pair (a video of another class; the other classes are
    taken in turn, so each is used equally often when a class's count x ``pairs_per_video`` divides by
    the number of other classes). Both sets are shuffled, then interleaved 1:1.

    Args:
        labels: class of each video ``(N,)``.
        seed, epoch: the draw is a function of both (same ``(seed, epoch)`` -> same pairs).

    Returns:
        ``(audio_index, visual_index, target)`` int64 arrays of length ``2 * N * pairs_per_video``;
        ``target`` 1 = corresponding, 0 = not, alternating 1, 0, 1, 0, ...
    """
    y = np.asarray(labels)
    classes = sorted(set(y.tolist()))
    if len(classes) < 2:
        raise ConfigError("savc_pairs needs at least two classes")
    rng = np.random.default_rng([seed, epoch])
    members = {c: np.flatnonzero(y == c) for c in classes}
    position = {c: 0 for c in classes}
    pos, neg = [], []
    for i, c in enumerate(y.tolist()):
        others = [o for o in classes if o != c]
        j = position[c]
        position[c] += 1
        for k in range(pairs_per_video):
            partner = i if (include_intact and k == 0) else int(rng.choice(members[c]))
            pos.append((i, partner))
            other = others[(j * pairs_per_video + k) % len(others)]
            neg.append((i, int(rng.choice(members[other]))))
    pos_a, neg_a = np.asarray(pos), np.asarray(neg)
    pos_a, neg_a = pos_a[rng.permutation(len(pos_a))], neg_a[rng.permutation(len(neg_a))]
    pairs = np.empty((2 * len(pos_a), 2), dtype=np.int64)
    pairs[0::2], pairs[1::2] = pos_a, neg_a
    target = np.zeros(len(pairs), dtype=np.int64)
    target[0::2] = 1
    return pairs[:, 0], pairs[:, 1], target


def _register() -> None:
    for (emb, kind), params in SAVC_PARAMS.items():
        a_dim, v_dim = EMBEDDING_DIMS[emb]
        notes = f"{params:,} trainable parameters (Keras convention); random weights."
        register_config(
            f"savc-{kind}-{emb}",
            SAVCModel,
            f"SAVC {kind.upper()} on {emb} embeddings (128-128 per modality, 256 units, dropout 0.1).",
            {"untrained": PretrainedCfg(paper=_PAPER, input=_input_cfg(emb), label_names=SAVC_LABELS, notes=notes)},
            audio_dim=a_dim, visual_dim=v_dim, rnn=kind, keras_compatible=True,
        )


def _input_cfg(embeddings: str) -> dict:
    return embedding_input_cfg("av-correspondence", embeddings)


_register()


@register_model(
    "savc-tiny",
    pretrained_cfgs={
        "untrained": PretrainedCfg(
            paper=_PAPER,
            input={**_input_cfg("vggish-vgg16"), "embeddings": "synthetic-16-24"},
            label_names=SAVC_LABELS,
            notes="Tiny SAVC model (16-d / 24-d embeddings, hidden 8, GRU 8) for tests and examples.",
        )
    },
)
def savc_tiny(**overrides) -> SAVCModel:
    """SAVC on tiny 16-d / 24-d embeddings (hidden 8, GRU with 8 units)."""
    cfg = dict(audio_dim=16, visual_dim=24, hidden=8, rnn="gru", rnn_units=8, dropout=0.1)
    return SAVCModel(**{**cfg, **overrides})
