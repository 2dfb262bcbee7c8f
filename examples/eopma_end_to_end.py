"""EoPMA end to end on synthetic clips (CPU, about a minute): the SoundActions paper's pipeline in miniature.

Guo, Tørresen & Jensenius, TISMIR 2026, §3: causal adapters trained on a causal label set, reduced
adapters fine-tuned on the perception type, the two banks mixed with β inside every layer, β swept
(Figure 8) against the final-embedding baseline (Table 4).

1. *causal* task (AVE format): per-segment labels — background where the clip is silent, else the
   event class "early" / "late" (whether the first sound starts in the first or second half);
   the DG-SCT host's adapters + head are trained on it (BCE on is-event + CE on the class scores);
2. *reduced* task: impulsive / sustained / iterative (+ Unknown, K = 4), fine-tuned from a copy of the
   causal host with a new head (:func:`avperceive.train.finetune.cross_validate`, range ``all``);
   the adapters of the best fold are the reduced bank;
3. EoPMA = causal host + reduced bank; ``sweep_beta`` on held-out causal clips; the plot and a JSON
   summary go to ``--out``.

    python examples/eopma_end_to_end.py --out /tmp/eopma_demo
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange

from avperceive.analysis.beta_plot import plot_beta_sweep
from avperceive.data.splits import stratified_kfold
from avperceive.data.synthetic import SOUND_TYPES, make_clip
from avperceive.models.dgsct import DGSCT, IMAGENET_MEAN, IMAGENET_STD
from avperceive.models.eopma import PerceptionModeEnsemble, final_embedding_ensemble, reduced_alone, sweep_beta
from avperceive.models.trainable import set_trainable
from avperceive.train.finetune import FinetuneConfig, cross_validate, replace_head

SEGMENTS, SIZE, SEGMENT_SAMPLES = 4, 16, 2000
MICRO = dict(
    video_backbone=dict(
        img_size=SIZE, patch_size=4, embed_dim=16, depths=(1, 1, 2), num_heads=(1, 1, 2), window_size=2, num_classes=0
    ),
    audio_backbone=dict(
        sample_rate=8000, n_fft=256, hop_length=80, n_mels=16, fmax=3800.0, spec_size=64, embed_dim=16,
        depths=(1, 1, 1), num_heads=(1, 1, 2), window_size=4, num_classes=4, drop_path_rate=0.0,
    ),
    num_classes=2, num_segments=SEGMENTS, segment_samples=SEGMENT_SAMPLES, audio_input_samples=8000, num_latents=4,
    d_model=16, video_input_dim=16, audio_input_dim=8, ffn_dim=32,
)
CAUSAL_CLASSES = ("early", "late")  # background index = 2


def make_items(n: int, seed: int) -> list[dict]:
    """Synthetic clips with a causal (AVE-format) and a reduced (perception-type) label."""
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    items = []
    for k in range(n):
        kind = SOUND_TYPES[k % 3]
        clip, truth = make_clip(kind, duration=float(SEGMENTS), fps=1.0, sample_rate=SEGMENT_SAMPLES, seed=seed + k,
                                size=(SIZE, SIZE))
        video = rearrange(clip.video.float() / 255.0, "t h w c -> t c h w")[:SEGMENTS]
        audio = rearrange(clip.audio[0, : SEGMENTS * SEGMENT_SAMPLES], "(t s) -> t s", t=SEGMENTS)
        cls = 0 if truth.onsets[0] < SEGMENTS / 2 else 1
        energy = audio.square().mean(-1)
        segments = torch.where(energy > 10 * energy.min(), torch.tensor(cls), torch.tensor(len(CAUSAL_CLASSES)))
        items.append({
            "video": (video - mean) / std, "audio": audio, "target": SOUND_TYPES.index(kind),
            "causal_class": cls, "segments": segments,
        })
    return items


def batches(items: list[dict], size: int, key: str = "segments") -> list[tuple]:
    return [
        (torch.stack([d["video"] for d in items[s : s + size]]), torch.stack([d["audio"] for d in items[s : s + size]]),
         torch.stack([torch.as_tensor(d[key]) for d in items[s : s + size]]))
        for s in range(0, len(items), size)
    ]


def train_causal(model: DGSCT, items: list[dict], epochs: int, lr: float = 2e-3) -> None:
    """DG-SCT's AVE loss without the reference quirks: BCE(is_event) + CE(event_scores) + CE(av_score)."""
    set_trainable(model, "all")
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    for epoch in range(epochs):
        model.train()
        total = 0.0
        for video, audio, seg in batches(items, 8):
            out = model(video, audio)
            fg = (seg < len(CAUSAL_CLASSES)).float()
            cls = torch.where(fg.bool(), seg, seg.new_zeros(())).max(dim=1).values
            loss = F.binary_cross_entropy_with_logits(out["is_event"], fg) + F.cross_entropy(
                out["event_scores"], cls) + F.cross_entropy(out["av_score"], cls)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss)
        print(f"causal epoch {epoch}: loss {total:.3f}")
    model.eval()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("eopma_demo"))
    ap.add_argument("--clips", type=int, default=36)
    ap.add_argument("--causal-epochs", type=int, default=6)
    ap.add_argument("--reduced-epochs", type=int, default=4)
    ap.add_argument("--folds", type=int, default=3)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    train, held_out = make_items(args.clips, seed=0), make_items(max(12, args.clips // 2), seed=10_000)

    causal = DGSCT(**MICRO)
    with torch.no_grad():
        for name, p in causal.adapters.named_parameters():
            if name.endswith("gate"):
                p.fill_(0.1)  # start with active adapters (the zero-initialised gates would keep them silent)
    train_causal(causal, train, args.causal_epochs)

    reduced_start = replace_head(copy.deepcopy(causal), num_classes=4, seed=1)
    folds = stratified_kfold([d["target"] for d in train], args.folds, seed=42)
    cfg = FinetuneConfig(tuning_range="all", modality="av", max_epochs=args.reduced_epochs, lr=2e-3, batch_size=4,
                         accumulation=1)
    cv = cross_validate(reduced_start, train, folds, cfg, log=print)
    print(cv.table())
    reduced_model = copy.deepcopy(reduced_start)
    for group, state in cv.folds[cv.best_fold].best_state.items():
        reduced_model.trainable_groups()[group].load_state_dict(state)
    reduced_bank = reduced_model.adapters

    eval_batches = batches(held_out, 8)
    betas = [round(0.1 * k, 1) for k in range(11)]
    ens = PerceptionModeEnsemble(causal, {"causal": causal.adapters, "reduced": reduced_bank}, beta=0.0)
    curves = [
        sweep_beta(ens.set_beta(0.0, modality=m), eval_batches, betas, label=f"PT_av_{m}") for m in ("av", "a", "v")
    ]
    ens.eval()
    with torch.no_grad():  # how much the reduced bank moves the AVE scores (decisions may not flip on easy clips)
        video, audio, _ = eval_batches[0]
        shift = {b: ens.set_beta(b, modality="av")(video, audio)["event_scores"] for b in (0.0, 0.1, 1.0)}
    score_shift = {f"beta_{b}": float((shift[b] - shift[0.0]).abs().mean()) for b in (0.1, 1.0)}
    print(f"mean |event_scores(beta) - event_scores(0)|: {score_shift}")
    reduced_with_causal_head = reduced_alone(causal, reduced_bank)
    fe = final_embedding_ensemble(causal, reduced_with_causal_head)
    curves.append(sweep_beta(fe, eval_batches, betas, label="final embedding (PT)"))
    args.out.mkdir(parents=True, exist_ok=True)
    plot = plot_beta_sweep(curves, args.out / "beta_sweep.png", baseline=curves[0].baseline_accuracy,
                           title="EoPMA on synthetic clips (causal: early/late, reduced: perception type)")
    summary = {
        "table3_like": cv.as_dict()["rows"],
        "sweeps": [c.as_dict() for c in curves],
        "host_accuracy": curves[0].baseline_accuracy,
        "mean_abs_event_score_shift": score_shift,
        "plot": str(plot),
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    for c in curves:
        print(f"{c.label:>22}: best beta {c.best_beta:.2f} accuracy {c.best_accuracy:.3f} "
              f"(beta = 0: {c.baseline_accuracy:.3f})")
    print(f"plot: {plot}")
    return summary


if __name__ == "__main__":
    main()
