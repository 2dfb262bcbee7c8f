"""Reduced-type fine-tuning of an adapter host (the SoundActions recipe) in plain PyTorch.

Guo, Tørresen & Jensenius, "SoundActions" (TISMIR 2026, doi 10.5334/tismir.223), §3.2 and Table 3,
and the authors' public fine-tuning code. A DG-SCT AVE model gets a new CMBS head with K = 4
(three perception types + Unknown, or Enjoyability) and is fine-tuned with:

* range ``cls`` (head only; batch 16) or ``all`` (adapters + head, backbones frozen; batch 4 with 4-step
  gradient accumulation = effective 16);
* modality ``av``, ``a`` or ``v`` for training (the absent stream all zeros); validation with the same
  modality, and an ``av`` model also with ``a`` and ``v`` (modality withdrawal);
* loss ``CE(event_scores, y) + CE(av_score, y)`` (clip level, no is-event loss); accuracy =
  ``argmax(event_scores) == y``;
* Adam, lr 5e-4; halve the lr when the training loss has not decreased for > 5 epochs
  (``ReduceLROnPlateau``); stop when the validation loss has not decreased for > 10 epochs;
* 5-fold stratified cross-validation, **every fold from a fresh copy of the initial weights**
  (the reference code's fold-to-fold weight leak is not reproduced); per-fold accuracy, mean and std;
  metrics at the best epoch (by validation loss) and at the final epoch are both kept.

No framework: :func:`finetune` is a plain loop that also runs under ``torchrun`` (DDP: each process
takes its shard of every epoch's permutation, gradients are averaged by
``DistributedDataParallel``, losses and metrics are all-reduced so that every rank makes the same
scheduling and early-stopping decisions). Frozen parts stay in eval mode while training (so their
BatchNorm statistics do not drift and dropout in a frozen temporal module is off).
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..io.clip import zero_missing_modality
from ..modality import MODALITIES, check_modality
from ..models.trainable import TRAINABLE_RANGES, set_trainable
from ..nn.heads import CMBSHead

__all__ = [
    "FinetuneConfig",
    "FinetuneResult",
    "CrossValResult",
    "finetune",
    "cross_validate",
    "replace_head",
    "soundactions_loss",
]



@dataclass
class FinetuneConfig:
    """Settings of the SoundActions fine-tuning (defaults = the paper's).

    ``batch_size`` / ``accumulation`` default to 16 / 1 for ``cls`` and 4 / 4 for ``all``; under DDP the
    effective batch is ``batch_size × accumulation × world_size``. ``val_modalities`` defaults to
    ``(modality,)`` for ``a``/``v`` and ``("av", "a", "v")`` for ``av``; the first one drives model
    selection and early stopping. ``tuning_range`` is the paper's fine-tuning range (``"cls"``, ``"all"``,
    or ``"adapters"``; see :func:`avperceive.models.set_trainable`).
    """

    tuning_range: str = "all"
    modality: str = "av"
    val_modalities: tuple[str, ...] | None = None
    lr: float = 5e-4
    weight_decay: float = 0.0
    batch_size: int | None = None
    accumulation: int | None = None
    max_epochs: int = 100
    lr_patience: int = 5
    lr_factor: float = 0.5
    early_stop_patience: int = 10
    train_temporal: bool = False
    restore_best: bool = True
    seed: int = 0

    def resolved(self) -> FinetuneConfig:
        if self.tuning_range not in TRAINABLE_RANGES:
            raise ConfigError(f"tuning_range must be one of {sorted(TRAINABLE_RANGES)}, got {self.tuning_range!r}")
        check_modality(self.modality)
        vals = self.val_modalities or (MODALITIES if self.modality == "av" else (self.modality,))
        for m in vals:
            check_modality(m, "each of val_modalities")
        bs = self.batch_size or (16 if self.tuning_range == "cls" else 4)
        acc = self.accumulation or (1 if self.tuning_range == "cls" else 4)
        if bs < 1 or acc < 1 or self.max_epochs < 1:
            raise ConfigError("batch_size, accumulation and max_epochs must be >= 1")
        return replace(self, val_modalities=tuple(vals), batch_size=bs, accumulation=acc)


@dataclass
class FinetuneResult:
    """Outcome of one :func:`finetune` run.

    ``history``: one dict per epoch (``epoch``, ``lr``, ``train_loss``, ``val`` = {modality: {loss,
    accuracy}}); ``best_epoch`` (by the validation loss of the first validation modality); ``best`` and
    ``final``: {modality: {loss, accuracy}}; ``trainable_params``; ``best_state``: state dicts of the
    trained groups at the best epoch.
    """

    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best: dict[str, dict[str, float]] = field(default_factory=dict)
    final: dict[str, dict[str, float]] = field(default_factory=dict)
    trainable_params: int = 0
    best_state: dict[str, dict[str, torch.Tensor]] | None = None


def soundactions_loss(outputs: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """``CE(event_scores, y) + CE(av_score, y)`` (mean over the batch); ``target`` (B,) class indices."""
    return F.cross_entropy(outputs["event_scores"].float(), target) + F.cross_entropy(
        outputs["av_score"].float(), target
    )


def replace_head(model: nn.Module, num_classes: int = 4, *, seed: int | None = None) -> nn.Module:
    """Give a DG-SCT-style model a fresh :class:`CMBSHead` with ``num_classes`` (the paper's K = 4).

    The temporal module and adapters are kept. Returns the model (changed in place).
    """
    old = getattr(model, "head", None)
    if not isinstance(old, CMBSHead):
        raise ConfigError(f"{type(model).__name__} has no CMBSHead 'head' to replace")
    if seed is not None:
        torch.manual_seed(seed)
    p = next(old.parameters())
    model.head = CMBSHead(
        d_model=old.d_model, num_classes=num_classes, top_k=old.top_k, av_score_weight=old.av_score_weight
    ).to(device=p.device, dtype=p.dtype)
    if hasattr(model, "num_classes"):
        model.num_classes = num_classes
    return model


def _withdraw(video: torch.Tensor, audio: torch.Tensor, modality: str) -> tuple[torch.Tensor, torch.Tensor]:
    # The project's one missing-modality function (all zeros of the normal shape).
    out = zero_missing_modality({"video": video, "audio": audio}, modality)
    return out["video"], out["audio"]


def _item(sample) -> tuple[torch.Tensor, torch.Tensor, int]:
    if isinstance(sample, dict):
        return torch.as_tensor(sample["video"]), torch.as_tensor(sample["audio"]), int(sample["target"])
    video, audio, target = sample
    return torch.as_tensor(video), torch.as_tensor(audio), int(target)


def _collate(dataset, indices: Sequence[int], device, dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    items = [_item(dataset[int(i)]) for i in indices]
    video = torch.stack([v for v, _, _ in items]).to(device=device, dtype=dtype)
    audio = torch.stack([a for _, a, _ in items]).to(device=device, dtype=dtype)
    return video, audio, torch.tensor([t for _, _, t in items], device=device)


def _dist() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _all_sum(values: list[float], device) -> list[float]:
    _, world = _dist()
    if world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    return t.tolist()


def _average_buffers(model: nn.Module) -> None:
    """All-reduce-mean the floating buffers (BatchNorm running statistics) so that every rank holds the same."""
    _, world = _dist()
    if world == 1:
        return
    for b in model.buffers():
        if b.is_floating_point():
            torch.distributed.all_reduce(b)
            b.div_(world)


def _set_train_mode(model: nn.Module) -> None:
    model.train()
    for group in model.trainable_groups().values():
        if not any(p.requires_grad for p in group.parameters()):
            group.eval()


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset,
    modality: str = "av",
    *,
    batch_size: int = 16,
    loss_fn: Callable = soundactions_loss,
) -> dict[str, float]:
    """Clip-level ``{"loss", "accuracy", "count"}`` of ``model`` on ``dataset`` with ``modality``
    (eval mode; under DDP each rank takes every world-th item and the sums are all-reduced)."""
    rank, world = _dist()
    p = next(model.parameters())
    was_training = model.training
    model.eval()
    indices = list(range(len(dataset)))[rank::world]
    loss_sum = correct = 0.0
    for start in range(0, len(indices), batch_size):
        video, audio, target = _collate(dataset, indices[start : start + batch_size], p.device, p.dtype)
        video, audio = _withdraw(video, audio, modality)
        out = model(video, audio)
        loss_sum += float(loss_fn(out, target)) * len(target)
        correct += float((out["event_scores"].argmax(-1) == target).sum())
    loss_sum, correct, count = _all_sum([loss_sum, correct, float(len(indices))], p.device)
    model.train(was_training)
    if count == 0:
        raise ValueError("evaluate got an empty dataset")
    return {"loss": loss_sum / count, "accuracy": correct / count, "count": int(count)}


def _trained_state(model: nn.Module) -> dict[str, dict[str, torch.Tensor]]:
    return {
        name: {k: v.detach().clone() for k, v in group.state_dict().items()}
        for name, group in model.trainable_groups().items()
        if any(p.requires_grad for p in group.parameters())
    }


def finetune(
    model: nn.Module,
    train_data,
    val_data=None,
    config: FinetuneConfig | None = None,
    *,
    loss_fn: Callable = soundactions_loss,
    log: Callable[[str], None] | None = None,
) -> FinetuneResult:
    """Fine-tune ``model`` in place with the SoundActions recipe.

    Args:
        model: a host with ``trainable_groups()`` and ``forward(video, audio) -> dict`` with
            ``event_scores``/``av_score`` (B, K) (e.g. DG-SCT after :func:`replace_head`).
        train_data, val_data: map-style datasets of ``{"video" (T, 3, H, W), "audio" (T, S), "target" int}``
            dicts or ``(video, audio, target)`` tuples.
        config: :class:`FinetuneConfig`.
        loss_fn: ``fn(outputs, target) -> scalar`` (default :func:`soundactions_loss`).
        log: called with one line per epoch (rank 0 only).

    Under ``torch.distributed`` (initialised by the caller, e.g. torchrun) the model is wrapped in
    ``DistributedDataParallel``; every rank returns the same result.
    """
    cfg = (config or FinetuneConfig()).resolved()
    rank, world = _dist()
    result = FinetuneResult(trainable_params=set_trainable(model, cfg.tuning_range, train_temporal=cfg.train_temporal))
    params = [p for p in model.parameters() if p.requires_grad]
    p0 = params[0]
    optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=cfg.lr_factor, patience=cfg.lr_patience
    )
    net: nn.Module = model
    if world > 1:
        device_ids = [p0.device.index] if p0.device.type == "cuda" else None
        # the is-event classifier gets no gradient from the clip-level loss: let DDP skip unused parameters
        net = nn.parallel.DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=True)
    n = len(train_data)
    if n == 0:
        raise ValueError("finetune got an empty training set")
    best_loss, stale = math.inf, 0
    for epoch in range(cfg.max_epochs):
        g = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        order = torch.randperm(n, generator=g).tolist()
        order += order[: (-len(order)) % world]  # pad so every rank gets the same number of items
        shard = order[rank::world]
        micro = [shard[s : s + cfg.batch_size] for s in range(0, len(shard), cfg.batch_size)]
        groups = [micro[s : s + cfg.accumulation] for s in range(0, len(micro), cfg.accumulation)]
        _set_train_mode(model)
        loss_sum = 0.0
        for group in groups:
            optimizer.zero_grad(set_to_none=True)
            n_group = sum(len(b) for b in group)
            for j, batch in enumerate(group):
                last = j == len(group) - 1
                sync = contextlib.nullcontext() if (last or world == 1) else net.no_sync()
                video, audio, target = _collate(train_data, batch, p0.device, p0.dtype)
                video, audio = _withdraw(video, audio, cfg.modality)
                with sync:
                    loss = loss_fn(net(video, audio), target)
                    (loss * (len(batch) / n_group)).backward()  # the group's mean, as one batch of n_group
                loss_sum += float(loss.detach()) * len(batch)
            optimizer.step()
        _average_buffers(model)
        loss_sum, count = _all_sum([loss_sum, float(len(shard))], p0.device)
        train_loss = loss_sum / count
        scheduler.step(train_loss)
        record = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"], "train_loss": train_loss, "val": {}}
        if val_data is not None:
            for m in cfg.val_modalities:
                record["val"][m] = evaluate(model, val_data, m, batch_size=cfg.batch_size * cfg.accumulation,
                                            loss_fn=loss_fn)
        result.history.append(record)
        if log is not None and rank == 0:
            vals = " ".join(f"val[{m}] loss {v['loss']:.4f} acc {v['accuracy']:.3f}" for m, v in record["val"].items())
            log(f"epoch {epoch:3d} lr {record['lr']:.2e} train loss {train_loss:.4f} {vals}")
        if val_data is None:
            continue
        val_loss = record["val"][cfg.val_modalities[0]]["loss"]
        if val_loss < best_loss:
            best_loss, stale = val_loss, 0
            result.best_epoch = epoch
            result.best = {m: dict(v) for m, v in record["val"].items()}
            result.best_state = _trained_state(model)
        else:
            stale += 1
            if stale > cfg.early_stop_patience:
                break
    last = result.history[-1]
    result.final = {m: dict(v) for m, v in last["val"].items()}
    if val_data is None:
        result.best_epoch, result.best, result.best_state = last["epoch"], {}, _trained_state(model)
    elif cfg.restore_best and result.best_state is not None:
        groups = model.trainable_groups()
        for name, state in result.best_state.items():
            groups[name].load_state_dict(state)
    model.eval()
    return result


@dataclass
class CrossValResult:
    """Per-fold :class:`FinetuneResult` s of :func:`cross_validate` (the Table 3 layout)."""

    config: FinetuneConfig
    folds: list[FinetuneResult]

    def accuracies(self, val_modality: str | None = None, which: str = "best") -> list[float]:
        """Per-fold validation accuracy (``which`` = ``"best"`` epoch by val loss, or ``"final"``)."""
        m = val_modality or self.config.val_modalities[0]
        return [getattr(f, which)[m]["accuracy"] for f in self.folds]

    def mean_std(self, val_modality: str | None = None, which: str = "best") -> tuple[float, float]:
        """Mean and (population) standard deviation over the folds."""
        acc = torch.tensor(self.accuracies(val_modality, which), dtype=torch.float64)
        return float(acc.mean()), float(acc.std(unbiased=False))

    @property
    def best_fold(self) -> int:
        """The fold with the highest validation accuracy (the reduced-adapter checkpoint of EoPMA)."""
        acc = self.accuracies()
        return max(range(len(acc)), key=lambda k: (acc[k], -k))

    def rows(self, which: str = "best") -> list[dict]:
        """One row per validation modality: range, FT mod, val mod, mean, std, folds."""
        out = []
        for m in self.config.val_modalities:
            mean, std = self.mean_std(m, which)
            out.append({
                "range": self.config.tuning_range, "ft_modality": self.config.modality, "val_modality": m,
                "mean": mean, "std": std, "folds": self.accuracies(m, which),
            })
        return out

    def table(self, which: str = "best") -> str:
        """Table 3 layout: ``range | FT mod | val mod | mean ± std | fold 1 … k``."""
        k = len(self.folds)
        head = "range | FT mod | val mod | mean ± std | " + " ".join(f"fold{i + 1}" for i in range(k))
        lines = [head]
        for r in self.rows(which):
            folds = " ".join(f"{a:.2f}".rjust(5) for a in r["folds"])
            lines.append(
                f"{r['range']:>5} | {r['ft_modality']:>6} | {r['val_modality']:>7} | "
                f"{r['mean']:.2f} ± {r['std']:.2f} | {folds}"
            )
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"config": asdict(self.config), "rows": self.rows("best"), "rows_final_epoch": self.rows("final"),
                "best_fold": self.best_fold}


def cross_validate(
    initial_model: nn.Module,
    dataset,
    folds: Sequence[tuple[Sequence[int], Sequence[int]]],
    config: FinetuneConfig | None = None,
    *,
    loss_fn: Callable = soundactions_loss,
    log: Callable[[str], None] | None = None,
    keep_states: bool = False,
) -> CrossValResult:
    """k-fold fine-tuning; **every fold starts from a deep copy of** ``initial_model`` (left untouched).

    Args:
        initial_model: the starting point (e.g. the DG-SCT AVE checkpoint after :func:`replace_head`).
        dataset: map-style dataset (see :func:`finetune`).
        folds: ``[(train_indices, val_indices)]``, e.g. ``avperceive.data.splits.stratified_kfold(targets, 5, 42)``.
        config: :class:`FinetuneConfig`; fold f uses ``seed + f``.
        keep_states: keep every fold's ``best_state`` (default: only the best fold's, the EoPMA checkpoint).
    """
    from torch.utils.data import Subset

    cfg = (config or FinetuneConfig()).resolved()
    results = []
    for f, (train_idx, val_idx) in enumerate(folds):
        model = copy.deepcopy(initial_model)
        if log is not None:
            log(f"fold {f + 1}/{len(folds)}: {len(train_idx)} train, {len(val_idx)} val")
        res = finetune(
            model, Subset(dataset, list(map(int, train_idx))), Subset(dataset, list(map(int, val_idx))),
            replace(cfg, seed=cfg.seed + f), loss_fn=loss_fn, log=log,
        )
        results.append(res)
        del model
    cv = CrossValResult(cfg, results)
    if not keep_states:
        best = cv.best_fold
        for k, r in enumerate(results):
            if k != best:
                r.best_state = None
    return cv
