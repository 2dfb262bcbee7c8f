"""Splits: stratified k-fold (SoundActions 5-fold protocol, Guo, Tørresen & Jensenius, TISMIR 2026, §3.2).

The folds are made per class: each class's members are shuffled with a seeded generator and dealt
round-robin over the k folds, continuing the deal from class to class so that fold sizes differ
by at most one. Each fold is the validation set once; the rest is its training set.

Training protocol note (paper §3.2 vs the public reference code): every fold must start from a **fresh copy of the
initial weights** (e.g. reload the AVE checkpoint, or ``copy.deepcopy`` the untouched model before
the fold loop). The reference code builds the model once before the loop, so later folds start
from weights trained on earlier folds' validation data; that leak is the harness's to avoid --
these functions only produce indices.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from ..errors import ConfigError

__all__ = ["stratified_kfold", "fold_assignment"]


def fold_assignment(labels: Sequence[Hashable], k: int = 5, seed: int = 42) -> np.ndarray:
    """Fold index in ``[0, k)`` of every item, stratified by ``labels`` (int64 ``(N,)``).

    Classes are visited in sorted order; within a class the order is a seeded permutation.
    """
    if k < 2:
        raise ConfigError(f"k must be >= 2, got {k}")
    labels = list(labels)
    if len(labels) < k:
        raise ConfigError(f"cannot make {k} folds from {len(labels)} items")
    rng = np.random.default_rng(seed)
    folds = np.full(len(labels), -1, dtype=np.int64)
    by_class: dict[Hashable, list[int]] = {}
    for i, lab in enumerate(labels):
        by_class.setdefault(lab, []).append(i)
    offset = 0
    for lab in sorted(by_class, key=str):
        members = np.asarray(by_class[lab])[rng.permutation(len(by_class[lab]))]
        folds[members] = (offset + np.arange(len(members))) % k
        offset = (offset + len(members)) % k
    return folds


def stratified_kfold(labels: Sequence[Hashable], k: int = 5, seed: int = 42) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` ``(train_indices, val_indices)`` pairs, stratified per class (sorted int64 arrays).

    Every item is in exactly one validation fold; class proportions of each fold match the whole
    set to within one item per class. Same ``seed`` -> same folds.
    """
    folds = fold_assignment(labels, k, seed)
    return [(np.flatnonzero(folds != f), np.flatnonzero(folds == f)) for f in range(k)]
