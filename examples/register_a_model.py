"""Register a new model: a mean-pooled audio + video linear classifier, from definition to reload.

The steps every model of avperceive goes through (docs/architecture.md, "How to add a model"):

1. subclass :class:`avperceive.models.AVModel` (the contract: ``forward_features(video, audio)``,
   ``forward_head(features)``, ``decide(outputs)``) and :class:`avperceive.hub.PretrainedMixin`
   (``save_pretrained`` / ``from_pretrained``, constructor arguments captured into config.json);
2. register a builder with :func:`avperceive.models.register_model` and a :class:`~avperceive.models.PretrainedCfg`
   whose ``input`` section describes the preprocessing (sample rate, segments, frame size,
   normalisation) -- :func:`avperceive.predict` reads it, nothing else;
3. build it with :func:`avperceive.create_model`, predict on a file, save it, and reload it with
   ``create_model("local-dir:...")``.

Runs in a few seconds on CPU with random weights (no download):

    python examples/register_a_model.py [--media tests/data/media/smpte-2997.mp4] [--out DIR]

The last line printed is a JSON object: the prediction before and after the reload, and the
largest difference between the two models' logits on the same inputs (0.0: the reload is exact).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from pathlib import Path

import torch
from einops import reduce
from torch import nn

import avperceive as avp
from avperceive.hub import PretrainedMixin
from avperceive.inference import UntrainedWeightsWarning
from avperceive.models import AVModel, InputSpec, PretrainedCfg, prepare_inputs, register_model
from avperceive.models.inputs import decode_for
from avperceive.registry import is_model
from avperceive.signal import melspectrogram, power_to_db

NAME = "meanpool-av-example"
LABELS = ("impulsive", "sustained", "iterative")  # Schaeffer's types, as an example label set
MEDIA = Path(__file__).resolve().parents[1] / "tests" / "data" / "media" / "smpte-2997.mp4"


class MeanPooledAVClassifier(AVModel, PretrainedMixin):
    """Mean-pooled audio + video features, concatenated, one linear layer.

    Video: a ``patch x patch`` patch embedding (a strided convolution) of every frame, averaged over
    frames and patches -> ``(B, dim)``. Audio: log-mel energies (``n_mels`` bands, 25 ms Hann window,
    10 ms hop at 16 kHz), averaged over frames and projected -> ``(B, dim)``. Head: ``Linear(2 * dim, K)``.

    Forward: ``video`` ``(B, N, 3, H, W)`` normalised frames, ``audio`` ``(B, samples)`` mono waveform
    (the ``"clip-classification"`` layout of :func:`avperceive.models.prepare_inputs`) -> logits ``(B, K)``.
    """

    task = "clip-classification"

    def __init__(self, num_classes: int = 3, dim: int = 32, patch: int = 8, n_mels: int = 40, sample_rate: int = 16000):
        super().__init__()
        self.sample_rate, self.n_mels = sample_rate, n_mels
        self.patch_embed = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)
        self.audio_proj = nn.Linear(n_mels, dim)
        self.classifier = nn.Linear(2 * dim, num_classes)

    def forward_features(self, video: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """``(B, 2 * dim)``: the video half first, then the audio half."""
        video, audio = self.cast_inputs(video, audio)
        b = video.shape[0]
        patches = self.patch_embed(video.flatten(0, 1))  # (B*N, dim, H/patch, W/patch)
        v = reduce(patches, "(b n) d h w -> b d", "mean", b=b)
        n_fft = self.sample_rate // 40  # 25 ms window
        mel = melspectrogram(audio, self.sample_rate, n_fft=n_fft, hop_length=self.sample_rate // 100,
                             n_mels=self.n_mels)  # (B, n_mels, frames), float32 on purpose
        a = self.audio_proj(reduce(power_to_db(mel), "b m t -> b m", "mean").to(video.dtype))
        return torch.cat([v, a], dim=-1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K)``."""
        return self.classifier(features)

    def decide(self, outputs: torch.Tensor) -> torch.Tensor:
        """``(B,)`` class indices (argmax of the logits)."""
        return outputs.argmax(dim=-1)


#: the preprocessing predict applies: 4 one-second segments, 2 frames each, 64 x 64, 16 kHz mono.
INPUT = {
    "task": "clip-classification",
    "sample_rate": 16000,
    "segments": 4,
    "segment_seconds": 1.0,
    "frames_per_segment": 2,
    "size": 64,
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
}


def register() -> None:
    """Register :data:`NAME` (once per process)."""
    if is_model(NAME):
        return

    @register_model(
        NAME,
        pretrained_cfgs={
            "untrained": PretrainedCfg(
                paper="(example) mean-pooled audio-video linear classifier",
                input=INPUT,
                label_names=LABELS,
                notes="Random weights; the worked example of docs/architecture.md.",
            )
        },
    )
    def meanpool_av_example(**overrides) -> MeanPooledAVClassifier:
        """Mean-pooled audio + video linear classifier (32-d halves, 3 classes)."""
        return MeanPooledAVClassifier(**overrides)


def logits_on(model: AVModel, media: Path) -> torch.Tensor:
    """The model's logits on ``media``, preprocessed exactly as its ``input_cfg`` says (what predict does)."""
    spec = InputSpec.from_cfg(model.input_cfg, name=NAME)
    inputs = prepare_inputs([decode_for(str(media), spec)], spec)
    with torch.no_grad():
        return model(inputs.video, inputs.audio)


def run(media: Path = MEDIA, out_dir: Path | None = None, seed: int = 0) -> dict:
    """Build, predict, save, reload, predict again; return what the example prints."""
    register()
    torch.manual_seed(seed)
    model = avp.create_model(NAME).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedWeightsWarning)  # random weights, on purpose
        before = avp.predict(str(media), model=model, topk=3)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(out_dir) if out_dir is not None else Path(tmp) / NAME
        model.save_pretrained(folder)
        reloaded = avp.create_model(f"local-dir:{folder}")
        after = avp.predict(str(media), model=reloaded, topk=3)
        logits_before, logits_after = logits_on(model, media), logits_on(reloaded, media)
    return {
        "model": NAME,
        "decision_before": before.decision,
        "decision_after": after.decision,
        "topk_before": before.topk,
        "topk_after": after.topk,
        "weights_after": after.weights,
        "logits_before": logits_before[0].tolist(),
        "logits_after": logits_after[0].tolist(),
        "max_abs_diff": float((logits_before - logits_after).abs().max()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--media", type=Path, default=MEDIA, help="a media file (default: the test clip)")
    ap.add_argument("--out", type=Path, default=None, help="keep the saved model in this folder")
    args = ap.parse_args()
    result = run(args.media, args.out)
    print(f"{NAME}: {result['decision_before']!r} before saving, {result['decision_after']!r} after reloading "
          f"({result['weights_after']}); largest logit difference {result['max_abs_diff']}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
