"""Fine-tuning ranges: which parts of an adapter model are trained.

The SoundActions/EoPMA fine-tuning (Guo, Tørresen & Jensenius, TISMIR 2026, §3.2) names two ranges
on DG-SCT: ``cls`` (only the CMBS head) and ``all`` (adapters + CMBS head, backbones frozen); the
reference code's ``all`` also unfreezes the temporal module, offered here as ``train_temporal=True``.
``adapters`` trains the adapters alone.

A model takes part by defining ``trainable_groups() -> {"head": module, "adapters": module,
"temporal": module}`` (a group may be missing). Our modules hold no dead parameters (the reference's
discarded ``AVInter``/``VAInter``/``video_norm``/``audio_norm``/``gate_tk``... are not built), so the
count returned is the number of parameters that can change the output.

This stays in :mod:`avperceive.models` (the training loop lives in :mod:`avperceive.train`): it reads
only the model's own ``trainable_groups()`` and answers a question about the model -- which parts
a range trains and how many parameters that is (the papers' parameter counts, the benchmarks) --
without any loop, optimiser or data. ``avperceive.train`` imports it from here, pointing down.
"""

from __future__ import annotations

from torch import nn

from ..errors import ConfigError

__all__ = ["set_trainable", "count_trainable", "TRAINABLE_RANGES"]

TRAINABLE_RANGES = {
    "cls": ("head",),
    "adapters": ("adapters",),
    "all": ("adapters", "head"),
}


def count_trainable(model: nn.Module) -> int:
    """Number of parameter elements with ``requires_grad`` (shared parameters counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def set_trainable(model: nn.Module, tuning_range: str = "all", *, train_temporal: bool = False) -> int:
    """Freeze ``model`` except the parts named by ``tuning_range``; return the number of trainable parameters.

    Args:
        model: a model with ``trainable_groups()`` (DG-SCT, LAVisH, ...).
        tuning_range: the paper's fine-tuning range: ``"cls"`` (head only), ``"all"`` (adapters + head;
            backbones frozen) or ``"adapters"``.
        train_temporal: also train the temporal module where the model has one (the reference
            SoundActions code does this in ``all``; the paper's 189M figure does not).

    Returns:
        The number of trainable parameter elements (every one of them can affect the output).
    """
    if tuning_range not in TRAINABLE_RANGES:
        raise ConfigError(f"tuning_range must be one of {sorted(TRAINABLE_RANGES)}, got {tuning_range!r}")
    if not hasattr(model, "trainable_groups"):
        raise ConfigError(f"{type(model).__name__} has no trainable_groups(); cannot apply a fine-tuning range")
    groups: dict[str, nn.Module] = model.trainable_groups()
    wanted = list(TRAINABLE_RANGES[tuning_range]) + (["temporal"] if train_temporal else [])
    missing = [g for g in wanted if g not in groups]
    if missing:
        raise ConfigError(f"{type(model).__name__} has no {missing} part(s) for range {tuning_range!r}")
    model.requires_grad_(False)
    for name in wanted:
        groups[name].requires_grad_(True)
    return count_trainable(model)
