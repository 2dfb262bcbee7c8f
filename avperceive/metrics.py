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

from .errors import ConfigError
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
            k = 3 for Enjoyability (the only counts that reproduce the
            paper's κ = 0.46 and 0.20 from its agreement percentages).
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


# ============================================================================ correlation-learning metrics
# Cross-modal retrieval, audio tagging mAP, sound-source localisation (cIoU, AUC) and separation
# (SI-SDR, SDR) -- the task metrics listed by Vilaça, Yu & Viana's survey of audio-visual
# correlation learning.
__all__ += [
    "retrieval_ranks",
    "retrieval_metrics",
    "cross_modal_retrieval",
    "average_precision",
    "tagging_map",
    "consensus_map",
    "ciou",
    "ciou_auc",
    "si_sdr",
    "sdr",
]


def _relevance(n_queries: int, n_candidates: int, query_ids, candidate_ids) -> np.ndarray:
    if query_ids is None and candidate_ids is None:
        if n_queries != n_candidates:
            raise ConfigError("query_ids / candidate_ids are needed when queries and candidates differ in number")
        return np.eye(n_queries, dtype=bool)
    if query_ids is None or candidate_ids is None:
        raise ConfigError("give both query_ids and candidate_ids, or neither")
    q, c = np.asarray(query_ids), np.asarray(candidate_ids)
    return q[:, None] == c[None, :]


def retrieval_ranks(similarity, *, query_ids=None, candidate_ids=None) -> np.ndarray:
    """1-based rank of the best-ranked relevant candidate for every query, ``(Nq,)``.

    Rank = 1 + the number of irrelevant candidates scored **at least** as high as the best relevant
    one (ties count against the query, so constant scores give the worst rank, never a lucky R@1).
    ``similarity`` ``(Nq, Nc)``; relevant = the diagonal, or equal ids. A query with no relevant
    candidate raises ``ValueError``.
    """
    s = _np(similarity).astype(np.float64)
    rel = _relevance(*s.shape, query_ids, candidate_ids)
    if not rel.any(1).all():
        raise ValueError(f"queries {np.flatnonzero(~rel.any(1)).tolist()} have no relevant candidate")
    best = np.where(rel, s, -np.inf).max(1)
    return 1 + (~rel & (s >= best[:, None])).sum(1)


def average_precision(scores, relevant, *, k: int | None = None) -> float:
    """Average precision of one ranked list (scikit-learn's ``average_precision_score`` for ``k=None``).

    ``AP = (1/|P|) Σ_{p∈P} precision@p``, with ``precision@p`` = (relevant items scored ≥ s_p) /
    (items scored ≥ s_p), so tied items are counted together, as scikit-learn does.
    With ``k``, AP@k: only positives ranked within the top ``k`` contribute, and the sum is divided
    by ``min(k, |P|)`` (the ``apk`` convention used for mAP@50 in retrieval benchmarks). 0 when
    there is no relevant item.
    """
    s, r = _np(scores).astype(np.float64).ravel(), _np(relevant).astype(bool).ravel()
    if r.sum() == 0:
        return 0.0
    at_least = (s[None, :] >= s[r][:, None]).sum(1)  # items scored >= each positive
    pos_at_least = (s[r][None, :] >= s[r][:, None]).sum(1)
    precision = pos_at_least / at_least
    if k is None:
        return float(precision.mean())
    return float(precision[at_least <= k].sum() / min(k, r.sum()))


def retrieval_metrics(similarity, *, query_ids=None, candidate_ids=None, ks=(1, 5, 10)) -> dict[str, float]:
    """One retrieval direction: ``R@k`` (percent), median rank, MRR, mAP and mAP@50.

    Args:
        similarity: ``(Nq, Nc)`` scores (higher = more similar).
        query_ids, candidate_ids: relevance by equal ids (e.g. class labels for mAP on VEGAS / AVE);
            default: candidate ``i`` is the one relevant item of query ``i``.
        ks: the recall cut-offs.

    Returns:
        ``{"R@1", "R@5", "R@10", "median_rank", "mrr", "map", "map@50"}``; ranks as in
        :func:`retrieval_ranks`, AP as in :func:`average_precision` per query, averaged.
    """
    s = _np(similarity).astype(np.float64)
    rel = _relevance(*s.shape, query_ids, candidate_ids)
    ranks = retrieval_ranks(s, query_ids=query_ids, candidate_ids=candidate_ids)
    out = {f"R@{k}": float(100.0 * np.mean(ranks <= k)) for k in ks}
    out["median_rank"] = float(np.median(ranks))
    out["mrr"] = float(np.mean(1.0 / ranks))
    out["map"] = float(np.mean([average_precision(s[i], rel[i]) for i in range(len(s))]))
    out["map@50"] = float(np.mean([average_precision(s[i], rel[i], k=50) for i in range(len(s))]))
    return out


def cross_modal_retrieval(audio_emb, visual_emb, *, ids=None, normalize: bool = True, ks=(1, 5, 10)) -> dict:
    """Both directions of audio↔visual retrieval from paired embeddings ``(N, D)`` each.

    Returns ``{"a2v": retrieval_metrics(S), "v2a": retrieval_metrics(Sᵀ)}`` with
    ``S = cos(audio, visual)`` (or dot products). ``ids (N,)`` makes every same-id item relevant.
    """
    a, v = (torch.as_tensor(x).detach().double() for x in (audio_emb, visual_emb))
    if normalize:
        a, v = torch.nn.functional.normalize(a, dim=-1), torch.nn.functional.normalize(v, dim=-1)
    s = (a @ v.T).numpy()
    return {
        "a2v": retrieval_metrics(s, query_ids=ids, candidate_ids=ids, ks=ks),
        "v2a": retrieval_metrics(s.T, query_ids=ids, candidate_ids=ids, ks=ks),
    }


def tagging_map(scores, targets) -> dict:
    """AudioSet-style audio-tagging mAP: the mean over classes of the per-class AP over clips.

    Args:
        scores: ``(N, C)`` clip-level class scores; targets: binary ``(N, C)``.

    Returns:
        ``{"map": float, "ap": (C,) array, "classes_without_positives": [indices]}``. A class with no
        positive clip has no defined AP: it is NaN in ``ap`` and left out of the mean (scikit-learn's
        macro average would count it as 0 and warn).
    """
    s, t = _np(scores).astype(np.float64), _np(targets).astype(bool)
    if s.shape != t.shape or s.ndim != 2:
        raise ValueError(f"scores and targets must both be (N, C), got {s.shape} and {t.shape}")
    ap = np.array([average_precision(s[:, c], t[:, c]) if t[:, c].any() else np.nan for c in range(s.shape[1])])
    empty = np.flatnonzero(~t.any(0)).tolist()
    return {
        "map": float(np.nanmean(ap)) if len(empty) < len(ap) else float("nan"),
        "ap": ap,
        "classes_without_positives": empty,
    }


def consensus_map(boxes_per_annotator, size: tuple[int, int], *, consensus: int = 2) -> np.ndarray:
    """Senocak et al. (CVPR 2018, eq. 6) consensus ground truth ``g = min(Σ_j b_j / consensus, 1)``.

    Args:
        boxes_per_annotator: one list of ``(x0, y0, x1, y1)`` pixel boxes (end-exclusive) per annotator.
        size: ``(H, W)``.
        consensus: annotators needed for full weight (2 of 3 in Flickr-SoundNet).
    """
    h, w = size
    total = np.zeros((h, w))
    for boxes in boxes_per_annotator:
        b = np.zeros((h, w), dtype=bool)
        for x0, y0, x1, y1 in boxes:
            b[max(0, int(y0)) : int(y1), max(0, int(x0)) : int(x1)] = True
        total += b
    return np.minimum(total / consensus, 1.0)


def ciou(heatmap, gt_map, *, threshold: float | None = None) -> float:
    """Consensus IoU of a localisation map (Senocak et al., CVPR 2018, eq. 7).

    ``cIoU = Σ_{i∈A} g_i / (Σ_i g_i + Σ_{i∈A∖G} 1)``, with ``A`` the predicted region (``heatmap >
    threshold``), ``g`` the consensus map and ``G = {g > 0}``. ``threshold=None`` keeps the top half of
    the pixels (the median of the map), the protocol of the Flickr-SoundNet / VGG-SS evaluation code.
    Both maps ``(H, W)``.
    """
    m, g = _np(heatmap).astype(np.float64), _np(gt_map).astype(np.float64)
    if m.shape != g.shape:
        raise ValueError(f"heatmap {m.shape} and gt_map {g.shape} shapes differ")
    thr = float(np.median(m)) if threshold is None else threshold
    pred = m > thr
    denom = g.sum() + (pred & (g == 0)).sum()
    return float((g * pred).sum() / denom) if denom > 0 else 0.0


def ciou_auc(cious, thresholds=None) -> dict:
    """Success rate over cIoU thresholds and its area (trapezoid), plus the usual cIoU@0.5.

    ``success(t) = mean_n [cIoU_n ≥ t]`` on ``thresholds`` (default 0, 0.05, ..., 1.0, as in the
    evaluation code of Chen et al., "Localizing Visual Sounds the Hard Way", CVPR 2021).

    Returns:
        ``{"ciou@0.5": float, "auc": float, "thresholds": array, "success": array}``.
    """
    c = _np(cious).astype(np.float64).ravel()
    t = np.linspace(0.0, 1.0, 21) if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    success = np.array([np.mean(c >= x) for x in t])
    auc = float(np.sum((success[1:] + success[:-1]) * np.diff(t)) / 2.0)
    return {"ciou@0.5": float(np.mean(c >= 0.5)), "auc": auc, "thresholds": t, "success": success}


def si_sdr(estimate, reference, *, zero_mean: bool = True, eps: float = 1e-12) -> np.ndarray:
    """Scale-invariant SDR in dB (Le Roux et al., "SDR -- half-baked or well done?", ICASSP 2019, eqs. 3-4).

    ``α = ⟨ŝ, s⟩ / ‖s‖²``, ``SI-SDR = 10 log10(‖α s‖² / ‖α s − ŝ‖²)``; signals ``(..., samples)``,
    zero-mean first (as the paper) unless ``zero_mean=False``. Returns ``(...)``.
    """
    est, ref = _np(estimate).astype(np.float64), _np(reference).astype(np.float64)
    if est.shape != ref.shape:
        raise ValueError(f"estimate {est.shape} and reference {ref.shape} shapes differ")
    if zero_mean:
        est, ref = est - est.mean(-1, keepdims=True), ref - ref.mean(-1, keepdims=True)
    alpha = (est * ref).sum(-1, keepdims=True) / ((ref * ref).sum(-1, keepdims=True) + eps)
    target = alpha * ref
    return 10 * np.log10(((target**2).sum(-1) + eps) / (((target - est) ** 2).sum(-1) + eps))


def sdr(estimate, reference, *, eps: float = 1e-12) -> np.ndarray:
    """Signal-to-distortion ratio in dB, ``10 log10(‖s‖² / ‖s − ŝ‖²)``, over ``(..., samples)``.

    This is the plain energy ratio used by recent separation challenges (e.g. the Music Demixing
    Challenge 2021), not BSS-Eval v3's SDR, which first projects the estimate on 512-tap filtered
    copies of the references (``mir_eval.separation``); it equals it only for distortion-free gain.
    """
    est, ref = _np(estimate).astype(np.float64), _np(reference).astype(np.float64)
    if est.shape != ref.shape:
        raise ValueError(f"estimate {est.shape} and reference {ref.shape} shapes differ")
    return 10 * np.log10(((ref**2).sum(-1) + eps) / (((ref - est) ** 2).sum(-1) + eps))
