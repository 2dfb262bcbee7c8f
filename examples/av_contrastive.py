"""Learn a coordinated audio-visual embedding with InfoNCE, then an AV-sync classifier.

Generated clips: each clip is ``T`` steps of hidden events (one of ``K`` event kinds, or silence,
per step). The sound of a step is the event's "timbre" vector plus noise, the picture the event's
"appearance" vector through a fixed random non-linearity plus noise: sound and picture share the
hidden events and nothing else. Two experiments:

1. **Coordinated joint space + InfoNCE.** Two small temporal encoders (``f`` for audio, ``g`` for
   video) in an :class:`avperceive.nn.JointSpace` are trained with the symmetric InfoNCE loss
   (learnable temperature). Held-out audio→visual retrieval R@1 is measured after every epoch
   (chance = 1 / number of held-out clips) and plotted.
2. **AV synchronisation with shifted negatives.** The SAVC pair network of AVMIT
   (:class:`avperceive.models.savc.SAVCModel`) is trained with :func:`avperceive.nn.losses.sync_loss`
   (aligned windows vs. windows with the audio shifted by ±1..3 steps). On held-out clips whose
   sound lags the picture by an injected offset in −3..3 steps, the offset with the highest in-sync
   score (:func:`avperceive.nn.losses.sync_offset_scores`) recovers the injected one (chance 1/7).

Runs on CPU in under 30 s with one thread (measured with ``python examples/av_contrastive.py`` on a
shared 2-core x86-64 box: 13.7 s wall, and 19.9 s wall at load average 7.8, of which training took
7-10 s and imports the rest); prints the numbers as a JSON line and writes the R@1 curve
to ``--out`` (PNG, needs matplotlib).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from avperceive.metrics import cross_modal_retrieval
from avperceive.models.savc import SAVCModel
from avperceive.nn import JointSpace
from avperceive.nn.losses import InfoNCELoss, sync_loss, sync_offset_scores

AUDIO_DIM, VISUAL_DIM, NUM_EVENTS = 24, 32, 8


@dataclass
class World:
    """The fixed mapping from hidden events to sound and picture (shared by training and test clips)."""

    timbre: Tensor  # (K + 1, AUDIO_DIM); row 0 = silence
    appearance: Tensor  # (K + 1, VISUAL_DIM)
    mix: Tensor  # (VISUAL_DIM, VISUAL_DIM)

    @classmethod
    def make(cls, seed: int = 0) -> World:
        g = torch.Generator().manual_seed(seed)
        return cls(
            torch.randn(NUM_EVENTS + 1, AUDIO_DIM, generator=g),
            torch.randn(NUM_EVENTS + 1, VISUAL_DIM, generator=g),
            torch.randn(VISUAL_DIM, VISUAL_DIM, generator=g) / VISUAL_DIM**0.5,
        )


def make_clips(
    world: World, n: int, *, steps: int = 16, seed: int = 0, offsets: Tensor | None = None, noise: float = 0.5
) -> tuple[Tensor, Tensor]:
    """``n`` clips: audio ``(n, steps, AUDIO_DIM)``, visual ``(n, steps, VISUAL_DIM)``.

    Each step holds an event with probability 0.5. ``offsets (n,)`` (steps) delays the sound of
    clip ``i`` behind its picture: ``audio[t]`` sounds the event shown at ``t - offsets[i]``.
    """
    g = torch.Generator().manual_seed(seed)
    pad = 0 if offsets is None else int(offsets.abs().max())
    events = torch.randint(1, NUM_EVENTS + 1, (n, steps + 2 * pad), generator=g)
    events = events * (torch.rand(n, steps + 2 * pad, generator=g) < 0.5)
    shown = events[:, pad : pad + steps]
    if offsets is None:
        heard = shown
    else:
        idx = pad + torch.arange(steps)[None, :] - offsets[:, None]
        heard = torch.gather(events, 1, idx)
    audio = world.timbre[heard] + noise * torch.randn(n, steps, AUDIO_DIM, generator=g)
    visual = torch.tanh(world.appearance[shown] @ world.mix) + noise * torch.randn(n, steps, VISUAL_DIM, generator=g)
    return audio, visual


class TemporalEncoder(nn.Module):
    """Per-step MLP, a temporal convolution, mean pooling over steps: ``(B, T, C) -> (B, dim)``."""

    def __init__(self, in_dim: int, dim: int = 32, hidden: int = 64):
        super().__init__()
        self.step = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU())
        self.conv = nn.Conv1d(hidden, hidden, kernel_size=3, padding=1)
        self.out = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        h = self.step(x).transpose(1, 2)  # (B, hidden, T)
        h = torch.nn.functional.gelu(self.conv(h)).transpose(1, 2)  # (B, T, hidden)
        return self.out(h.mean(dim=1))


def train_contrastive(
    *, n_train: int = 2048, n_test: int = 256, epochs: int = 12, batch: int = 128, seed: int = 0
) -> dict:
    """Train the coordinated space; returns per-epoch held-out R@1 (percent) and the final metrics."""
    torch.manual_seed(seed)
    world = World.make(seed)
    train_a, train_v = make_clips(world, n_train, seed=seed + 1)
    test_a, test_v = make_clips(world, n_test, seed=seed + 2)
    space = JointSpace("coordinated", TemporalEncoder(AUDIO_DIM), TemporalEncoder(VISUAL_DIM))
    loss_fn = InfoNCELoss(temperature=0.1, learnable_temperature=True)
    opt = torch.optim.AdamW([*space.parameters(), *loss_fn.parameters()], lr=3e-3, weight_decay=1e-4)

    def held_out() -> dict:
        space.eval()
        with torch.no_grad():
            out = space(test_a, test_v)
        space.train()
        return cross_modal_retrieval(out.audio, out.visual)

    r1 = [held_out()["a2v"]["R@1"]]
    g = torch.Generator().manual_seed(seed + 3)
    for _ in range(epochs):
        for idx in torch.randperm(n_train, generator=g).split(batch):
            out = space(train_a[idx], train_v[idx])
            loss = loss_fn(out.audio, out.visual)
            opt.zero_grad()
            loss.backward()
            opt.step()
        r1.append(held_out()["a2v"]["R@1"])
    final = held_out()
    return {
        "r1_per_epoch": r1,
        "chance_r1": 100.0 / n_test,
        "a2v": final["a2v"],
        "v2a": final["v2a"],
        "temperature": float(loss_fn.temperature().detach()),
    }


def train_sync(
    *, n_train: int = 1024, n_test: int = 280, epochs: int = 10, batch: int = 128, window: int = 8, seed: int = 0
) -> dict:
    """Train the SAVC pair network on shifted negatives; returns the offset-recovery accuracy."""
    torch.manual_seed(seed)
    world = World.make(seed)
    train_a, train_v = make_clips(world, n_train, seed=seed + 11)
    head = SAVCModel(audio_dim=AUDIO_DIM, visual_dim=VISUAL_DIM, hidden=32, rnn="gru", rnn_units=32, dropout=0.0)
    opt = torch.optim.AdamW(head.parameters(), lr=3e-3, weight_decay=1e-5)
    g = torch.Generator().manual_seed(seed + 12)
    shifts = (-3, -2, -1, 1, 2, 3)
    for _ in range(epochs):
        for idx in torch.randperm(n_train, generator=g).split(batch):
            out = sync_loss(head, train_v[idx], train_a[idx], window=window, shifts=shifts, generator=g)
            opt.zero_grad()
            out.loss.backward()
            opt.step()
    offsets = torch.arange(n_test) % 7 - 3  # injected lags -3..3, balanced
    test_a, test_v = make_clips(world, n_test, seed=seed + 13, offsets=offsets)
    head.eval()
    candidates = list(range(-3, 4))
    scores = sync_offset_scores(head, test_v, test_a, window=window, offsets=candidates)
    estimate = torch.tensor(candidates)[scores.argmax(1)]
    return {"offset_accuracy": float((estimate == offsets).float().mean()), "chance": 1 / 7}


def plot_r1(r1: list[float], chance: float, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(range(len(r1)), r1, marker="o", label="held-out audio→visual R@1")
    ax.axhline(chance, color="grey", linestyle="--", label=f"chance ({chance:.2f}%)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("R@1 (%)")
    ax.set_ylim(0, 100)
    ax.legend(loc="center right")
    ax.set_title("InfoNCE on generated audio-visual clips")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="av_contrastive_r1.png", help="PNG of the R@1 curve ('' = no plot)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    contrastive = train_contrastive(seed=args.seed)
    t1 = time.perf_counter()
    sync = train_sync(seed=args.seed)
    t2 = time.perf_counter()
    if args.out:
        plot_r1(contrastive["r1_per_epoch"], contrastive["chance_r1"], args.out)
    result = {
        "heldout_r1_per_epoch": [round(x, 2) for x in contrastive["r1_per_epoch"]],
        "chance_r1": contrastive["chance_r1"],
        "a2v_R@1": contrastive["a2v"]["R@1"],
        "v2a_R@1": contrastive["v2a"]["R@1"],
        "a2v_median_rank": contrastive["a2v"]["median_rank"],
        "learned_temperature": round(contrastive["temperature"], 4),
        "sync_offset_accuracy": sync["offset_accuracy"],
        "sync_chance": sync["chance"],
        "seconds_contrastive": round(t1 - t0, 1),
        "seconds_sync": round(t2 - t1, 1),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
