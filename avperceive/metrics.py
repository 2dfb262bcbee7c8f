"""Evaluation metrics of the seeds and of the benchmarks they evaluate on.

* :func:`ave_segment_accuracy` -- AVE segment accuracy (Tian et al., ECCV 2018), with the is-event
  decision rule of CMBS / DG-SCT (a segment is background unless ``sigmoid(is_event) > 0.5``, then
  it takes the clip's arg-max event class), written once in :func:`avperceive.nn.heads.ave_decision`.
* :func:`avvp_segment_f1`, :func:`avvp_event_f1`, :func:`avvp_metrics` -- AVVP / LLP segment-level
  and event-level F1 for audio, visual and audio-visual events, Type@AV and Event@AV (Tian, Li & Xu,
  ECCV 2020, the definitions of their ``eval_metrics.py``: per video, F1 per class averaged over the
  classes present in prediction or ground truth, 1.0 for a video with nothing in either; events are
  runs of consecutive positive segments matched at temporal IoU >= 0.5).
* :func:`topk_accuracy` -- top-k clip accuracy (AVMIT Table 6).
* :func:`free_marginal_kappa` -- Randolph's free-marginal multirater kappa (SoundActions Table 2).
* :func:`savc_accuracy` -- supervised audio-visual correspondence accuracy (AVMIT Table 7).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .nn.heads import ave_decision

__all__ = [
    "ave_segment_accuracy",
    "ave_segment_predictions",
    "avvp_segment_f1",
    "avvp_event_f1",
    "avvp_metrics",
    "extract_events",
    "topk_accuracy",
    "free_marginal_kappa",
    "rater_agreement",
    "savc_accuracy",
]


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x)


# ----------------------------------------------------------------------------------------------- AVE
def ave_segment_predictions(
    is_event_logits: torch.Tensor, event_logits: torch.Tensor, *, threshold: float = 0.5
) -> torch.Tensor:
    """Per-segment class predictions by the is-event rule of :func:`avperceive.nn.heads.ave_decision`.

    Args:
        is_event_logits: ``(B, T)`` (or ``(B, T, 1)``) logits that a segment holds the event.
        event_logits: ``(B, K)`` clip-level event-class scores (K = 28 for AVE), or ``(B, T, K)``.
        threshold: probability above which a segment holds the event (0.5).

    Returns:
        long ``(B, T)``: ``argmax event_logits`` where ``sigmoid(is_event) > threshold``, else the
        background index K.
    """
    if is_event_logits.dim() == 3:
        is_event_logits = is_event_logits.squeeze(-1)
    if is_event_logits.dim() != 2:
        raise ValueError(f"is_event_logits must be (B, T), got {tuple(is_event_logits.shape)}")
    return ave_decision(is_event_logits, event_logits, threshold)


def ave_segment_accuracy(
    predictions: torch.Tensor,
    targets: torch.Tensor,
    *,
    event_logits: torch.Tensor | None = None,
    threshold: float = 0.5,
) -> float:
    """AVE segment accuracy: the fraction of segments whose predicted class (incl. background) is right.

    Args:
        predictions: long ``(B, T)`` class indices, or float ``(B, T, K+1)`` per-segment scores
            (arg-max taken); with ``event_logits`` given, ``predictions`` are the ``(B, T)`` is-event
            logits and the is-event rule of :func:`ave_segment_predictions` is applied.
        targets: long ``(B, T)`` class indices, or one-hot ``(B, T, K+1)`` (the ``labels.h5`` layout).

    Returns:
        accuracy in [0, 1].
    """
    if event_logits is not None:
        pred = ave_segment_predictions(predictions, event_logits, threshold=threshold)
    elif predictions.dim() == 3:
        pred = predictions.argmax(-1)
    else:
        pred = predictions
    tgt = targets.argmax(-1) if targets.dim() == 3 else targets
    if pred.shape != tgt.shape:
        raise ValueError(f"predictions {tuple(pred.shape)} and targets {tuple(tgt.shape)} must both be (B, T)")
    return float((pred.long() == tgt.long()).float().mean())


# ----------------------------------------------------------------------------------------------- AVVP
def _f1_over_classes(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> float:
    """Mean F1 over the classes with any prediction or ground truth; 1.0 when there are none."""
    present = (tp + fp != 0) | (tp + fn != 0)
    if not present.any():
        return 1.0
    return float(np.mean(2 * tp[present] / (2 * tp[present] + fn[present] + fp[present])))


def _segment_counts(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (pred * gt).sum(-1), (pred * (1 - gt)).sum(-1), ((1 - pred) * gt).sum(-1)


def avvp_segment_f1(pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor) -> float:
    """Segment-level F1 of one video: ``pred``, ``gt`` binary ``(C, T)`` (classes x segments)."""
    tp, fp, fn = _segment_counts(_np(pred), _np(gt))
    return _f1_over_classes(tp, fp, fn)


def extract_events(seq: np.ndarray | Sequence[int]) -> list[tuple[int, int]]:
    """Runs of consecutive ones in a binary ``(T,)`` sequence, as ``[start, end)`` pairs."""
    seq = np.asarray(seq).astype(bool)
    events, start = [], None
    for t, on in enumerate(seq):
        if on and start is None:
            start = t
        elif not on and start is not None:
            events.append((start, t))
            start = None
    if start is not None:
        events.append((start, len(seq)))
    return events


def _iou(a: tuple[int, int], b: tuple[int, int]) -> float:
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    return inter / union if union else 0.0


def _event_counts(pred: np.ndarray, gt: np.ndarray, iou: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class (TP, FP, FN) event counts: a predicted event is a TP when some GT event has IoU >= ``iou``."""
    n = pred.shape[0]
    tp, fp, fn = np.zeros(n), np.zeros(n), np.zeros(n)
    for c in range(n):
        p_ev, g_ev = extract_events(pred[c]), extract_events(gt[c])
        for p in p_ev:
            if any(_iou(p, g) >= iou for g in g_ev):
                tp[c] += 1
            else:
                fp[c] += 1
        for g in g_ev:
            if not any(_iou(g, p) >= iou for p in p_ev):
                fn[c] += 1
    return tp, fp, fn


def avvp_event_f1(pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor, *, iou: float = 0.5) -> float:
    """Event-level F1 of one video: ``pred``, ``gt`` binary ``(C, T)``; events matched at tIoU >= ``iou``."""
    return _f1_over_classes(*_event_counts(_np(pred), _np(gt), iou))


def avvp_metrics(
    pred_audio, pred_visual, gt_audio, gt_visual, *, pred_av=None, gt_av=None, iou: float = 0.5
) -> dict[str, float]:
    """The ten AVVP numbers (percent) over a set of videos.

    Args:
        pred_audio, pred_visual, gt_audio, gt_visual: binary ``(N, C, T)`` (videos x classes x segments).
        pred_av, gt_av: audio-visual events; default ``pred_audio * pred_visual`` / ``gt_audio * gt_visual``.

    Returns:
        ``{"segment_audio", "segment_visual", "segment_av", "segment_type_av", "segment_event_av",
        "event_audio", ..., "event_event_av"}``. Type@AV is the mean of the audio, visual and
        audio-visual scores; Event@AV pools the audio and visual counts of each video before F1.
    """
    pa, pv, ga, gv = (_np(x) for x in (pred_audio, pred_visual, gt_audio, gt_visual))
    pav = _np(pred_av) if pred_av is not None else pa * pv
    gav = _np(gt_av) if gt_av is not None else ga * gv
    if pa.ndim != 3 or pa.shape != ga.shape:
        raise ValueError(f"AVVP inputs must be (N, C, T) of equal shapes, got {pa.shape} and {ga.shape}")
    out: dict[str, float] = {}
    levels = (("segment", _segment_counts), ("event", lambda p, g: _event_counts(p, g, iou)))
    for level, counts in levels:
        f_a, f_v, f_av, f_ev = [], [], [], []
        for n in range(pa.shape[0]):
            ca, cv, cav = counts(pa[n], ga[n]), counts(pv[n], gv[n]), counts(pav[n], gav[n])
            f_a.append(_f1_over_classes(*ca))
            f_v.append(_f1_over_classes(*cv))
            f_av.append(_f1_over_classes(*cav))
            f_ev.append(_f1_over_classes(*(x + y for x, y in zip(ca, cv))))
        a, v, av = 100 * np.mean(f_a), 100 * np.mean(f_v), 100 * np.mean(f_av)
        out[f"{level}_audio"] = float(a)
        out[f"{level}_visual"] = float(v)
        out[f"{level}_av"] = float(av)
        out[f"{level}_type_av"] = float((a + v + av) / 3)
        out[f"{level}_event_av"] = float(100 * np.mean(f_ev))
    return out


# ----------------------------------------------------------------------------------------------- classification
def topk_accuracy(logits: torch.Tensor, targets: torch.Tensor, k: int | Sequence[int] = 1) -> float | list[float]:
    """Fraction of rows whose target is among the ``k`` highest scores.

    Args:
        logits: ``(N, C)``; targets: long ``(N,)`` (or one-hot ``(N, C)``).
        k: an int or a sequence of ints (returns a list then).
    """
    if logits.dim() != 2:
        raise ValueError(f"logits must be (N, C), got {tuple(logits.shape)}")
    tgt = targets.argmax(-1) if targets.dim() == 2 else targets
    ks = [k] if isinstance(k, int) else list(k)
    top = logits.topk(max(ks), dim=-1).indices
    hits = top == tgt[:, None]
    res = [float(hits[:, :kk].any(-1).float().mean()) for kk in ks]
    return res[0] if isinstance(k, int) else res


def savc_accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """SAVC accuracy: ``logits`` ``(N, 2)`` (or ``(N,)`` corresponding-probability), ``targets`` ``(N,)`` in {0, 1}.

    Class 1 = corresponding. A ``(N,)`` input is thresholded at 0.5.
    """
    pred = (logits > 0.5).long() if logits.dim() == 1 else logits.argmax(-1)
    return float((pred == targets.long()).float().mean())


# ----------------------------------------------------------------------------------------------- agreement
def free_marginal_kappa(votes, n_categories: int, *, counts: bool | None = None) -> float:
    """Randolph's free-marginal multirater kappa: ``(P_o - 1/k) / (1 - 1/k)``.

    ``P_o = mean_i [sum_c n_ic (n_ic - 1)] / [r (r - 1)]`` with ``r`` raters per item (Fleiss' observed
    agreement) and chance agreement ``1/k`` for ``k = n_categories``.

    Args:
        votes: ``(N, R)`` integer category labels in ``[0, k)`` (one column per rater), or, with
            ``counts=True``, ``(N, k)`` per-category vote counts.
        n_categories: k. SoundActions Table 2 uses k = 4 for PerceptionType (incl. unknown) and
            k = 3 for Enjoyability (seeds-spec §4 A6).
    """
    if counts:
        n = np.asarray(votes, dtype=np.int64)
        if n.ndim != 2 or n.shape[1] != n_categories:
            raise ValueError(f"counts must be (N, {n_categories}), got {n.shape}")
    else:
        v = np.asarray(votes)
        if v.ndim != 2:
            raise ValueError(f"votes must be (N, R), got {v.shape}")
        n = np.stack([(v == c).sum(1) for c in range(n_categories)], 1)
    r = n.sum(1)
    if (r < 2).any():
        raise ValueError("every item needs at least 2 ratings")
    p_o = float(np.mean((n * (n - 1)).sum(1) / (r * (r - 1))))
    p_e = 1.0 / n_categories
    return (p_o - p_e) / (1 - p_e)


def rater_agreement(votes) -> dict[str, float]:
    """Share of items on which at least two raters agree and on which all agree (``votes`` ``(N, R)``)."""
    v = np.asarray(votes)
    most = np.array([np.unique(row, return_counts=True)[1].max() for row in v])
    return {"at_least_two": float(np.mean(most >= 2)), "all": float(np.mean(most == v.shape[1]))}
