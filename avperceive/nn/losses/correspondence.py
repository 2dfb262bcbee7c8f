"""Audio-visual correspondence (AVC) and synchronisation (AV-sync) as binary pair classification.

**AVC** (Arandjelović & Zisserman, "Look, Listen and Learn", ICCV 2017 §2; AVE-Net, ECCV 2018):
does this sound come from this video? Every valid item ``i`` gives a corresponding pair
``(a_i, v_i)`` (target 1) and a non-corresponding pair ``(a_i, v_π(i))`` (target 0), where ``π(i)``
is drawn uniformly among the other items of the batch with a different id (shuffled negatives).
It is the unsupervised sibling of AVMIT's supervised correspondence (SAVC; Joannou et al. 2024):
same-class audio counts as a negative here, and the same pair classifier serves both. Pass the
SAVC network (:class:`avperceive.models.savc.SAVCModel`) or any module mapping
``(video (N, ...), audio (N, ...))`` to logits ``(N, 2)`` (class 1 = corresponding) as ``head``
(the library's ``(video, audio)`` argument order).

**AV-sync** (Owens & Efros, "Audio-Visual Scene Analysis with Self-Supervised Multisensory
Features", ECCV 2018 §3; Chung & Zisserman's SyncNet, 2016): are the two streams aligned? From
per-step features ``(B, T, ·)`` a window of ``W`` steps is cut at a random start ``s``; the
positive pairs ``audio[s:s+W]`` with ``visual[s:s+W]``; the negative pairs the audio window shifted
by ``δ`` steps (``audio[s+δ:s+δ+W]``, ``δ ≠ 0`` drawn from ``shifts``) with the same visual window.
:func:`sync_offset_scores` scores every candidate offset with the trained head, and the arg-max
recovers an injected offset (audio lagging the picture by ``δ`` steps gives ``δ``).

Both losses are the cross-entropy of the head's logits (computed in float32) over the 2·B pairs;
padded items (``valid``) and padded steps (``lengths``) are never drawn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ...errors import ConfigError
from .similarity import upcast

__all__ = ["PairClassification", "avc_pairs", "avc_loss", "sync_windows", "sync_loss", "sync_offset_scores"]

PairHead = Callable[[Tensor, Tensor], Tensor]  # (video, audio) -> logits (N, 2)


class PairClassification(NamedTuple):
    """Output of :func:`avc_loss` / :func:`sync_loss`.

    Attributes:
        loss: scalar float32 cross-entropy.
        logits: ``(2P, 2)`` head outputs, positives first then negatives.
        target: long ``(2P,)``, 1 = corresponding / in sync.
        audio_index, visual_index: long ``(2P,)`` item of each pair (AVC); for sync the item index.
        shift: long ``(2P,)`` audio shift of each pair in steps (0 for AVC and for sync positives).
    """

    loss: Tensor
    logits: Tensor
    target: Tensor
    audio_index: Tensor
    visual_index: Tensor
    shift: Tensor


def avc_pairs(
    batch_size: int,
    *,
    ids: Tensor | None = None,
    valid: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Corresponding and shuffled non-corresponding pairs of a batch.

    Args:
        batch_size: B.
        ids: ``(B,)`` (same video / same source); a negative never shares the anchor's id.
            Default: every item its own id.
        valid: boolean ``(B,)``; padded items are neither anchors nor negatives.
        generator: torch RNG for the draw.

    Returns:
        ``(audio_index, visual_index, target)``, long ``(2P,)`` each, P valid items: the P
        positives ``(i, i, 1)`` then the P negatives ``(i, π(i), 0)``.

    Raises:
        ConfigError: when some valid item has no valid partner with a different id (e.g. B = 1).
    """
    keep = torch.ones(batch_size, dtype=torch.bool) if valid is None else valid.detach().bool().cpu()
    who = torch.arange(batch_size) if ids is None else ids.detach().cpu()
    if who.shape != (batch_size,) or keep.shape != (batch_size,):
        raise ValueError(f"ids and valid must be ({batch_size},)")
    anchors = torch.nonzero(keep).flatten()
    allowed = (who[anchors][:, None] != who[None, :]) & keep[None, :]
    if len(anchors) == 0 or not bool(allowed.any(1).all()):
        raise ConfigError("AVC needs at least two valid items with different ids in the batch")
    partner = torch.multinomial(allowed.double(), 1, generator=generator).flatten()
    audio_index = torch.cat([anchors, anchors])
    visual_index = torch.cat([anchors, partner])
    target = torch.cat([torch.ones_like(anchors), torch.zeros_like(anchors)])
    return audio_index, visual_index, target


def avc_loss(
    head: PairHead,
    visual: Tensor,
    audio: Tensor,
    *,
    ids: Tensor | None = None,
    valid: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> PairClassification:
    """AVC cross-entropy with shuffled negatives (module docstring).

    Args:
        head: pair classifier ``(video (N, ...), audio (N, ...)) -> (N, 2)`` logits, e.g. SAVC.
        visual: ``(B, ...)`` visual inputs of the head (embeddings or per-step sequences).
        audio: ``(B, ...)`` audio inputs of the head, row ``i`` from the same clip as ``visual[i]``.
        ids, valid, generator: as :func:`avc_pairs`.
    """
    if audio.shape[0] != visual.shape[0]:
        raise ValueError(f"audio and visual batch sizes differ: {audio.shape[0]} vs {visual.shape[0]}")
    ai, vi, target = avc_pairs(audio.shape[0], ids=ids, valid=valid, generator=generator)
    ai, vi, target = ai.to(audio.device), vi.to(audio.device), target.to(audio.device)
    logits = head(visual[vi], audio[ai])
    loss = F.cross_entropy(upcast(logits), target)
    return PairClassification(loss, logits, target, ai, vi, torch.zeros_like(target))


def _window(x: Tensor, start: Tensor, window: int) -> Tensor:
    """``x[b, start[b] : start[b] + window]`` for every row: ``(B, W, ...)``."""
    steps = start[:, None] + torch.arange(window, device=x.device)[None, :]
    index = steps.reshape(*steps.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:])
    return torch.gather(x, 1, index)


def sync_windows(
    lengths: Tensor,
    *,
    window: int,
    shifts: Sequence[int],
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Random window starts and negative shifts for AV-sync.

    Args:
        lengths: long ``(B,)`` valid steps per item.
        window: W.
        shifts: candidate non-zero audio shifts in steps (e.g. ``(-3, -2, -1, 1, 2, 3)``).

    Returns:
        ``(start, shift)`` long ``(B,)``: the visual window is ``[start, start + W)``, the negative
        audio window ``[start + shift, start + shift + W)``, both inside ``[0, length)``.
    """
    shift_list = [int(s) for s in shifts]
    if not shift_list or any(s == 0 for s in shift_list):
        raise ConfigError(f"shifts must be non-empty and non-zero, got {tuple(shifts)}")
    if window < 1:
        raise ConfigError(f"window must be >= 1, got {window}")
    cand = torch.tensor(shift_list)
    lengths = lengths.detach().long().cpu()
    room = lengths[:, None] - window - cand.abs()[None, :]  # (B, S): number of feasible starts - 1
    feasible = room >= 0
    if not bool(feasible.any(1).all()):
        short = int(torch.nonzero(~feasible.any(1))[0])
        raise ConfigError(
            f"item {short} has {int(lengths[short])} steps, fewer than window {window} + the smallest |shift| "
            f"{int(cand.abs().min())}"
        )
    pick = torch.multinomial(feasible.double(), 1, generator=generator).flatten()
    shift = cand[pick]
    n_starts = room.gather(1, pick[:, None]).flatten() + 1
    offset = torch.floor(torch.rand(len(lengths), generator=generator) * n_starts).long()
    start = offset + (-shift).clamp(min=0)
    return start, shift


def sync_loss(
    head: PairHead,
    visual: Tensor,
    audio: Tensor,
    *,
    window: int,
    shifts: Sequence[int] = (-3, -2, -1, 1, 2, 3),
    lengths: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> PairClassification:
    """AV-sync cross-entropy with temporally shifted negatives (module docstring).

    Args:
        head: pair classifier ``(video (N, W, ·), audio (N, W, ·)) -> (N, 2)``.
        visual: ``(B, T, ·)`` per-step visual features; audio: ``(B, T, ·)``, step-aligned.
        window: W steps per pair; shifts: candidate negative shifts (non-zero steps).
        lengths: long ``(B,)`` valid steps (default T).
    """
    if audio.dim() < 2 or visual.shape[:2] != audio.shape[:2]:
        raise ValueError(
            f"audio and visual must be (B, T, ...) with equal B, T; got {tuple(audio.shape)}, {tuple(visual.shape)}"
        )
    b, t = audio.shape[:2]
    if lengths is None:
        lengths = torch.full((b,), t, dtype=torch.long)
    start, shift = sync_windows(lengths, window=window, shifts=shifts, generator=generator)
    start, shift = start.to(audio.device), shift.to(audio.device)
    vis = _window(visual, start, window)
    aud_pos = _window(audio, start, window)
    aud_neg = _window(audio, start + shift, window)
    logits = head(torch.cat([vis, vis]), torch.cat([aud_pos, aud_neg]))
    target = torch.cat([torch.ones(b, dtype=torch.long), torch.zeros(b, dtype=torch.long)]).to(audio.device)
    index = torch.arange(b, device=audio.device).repeat(2)
    loss = F.cross_entropy(upcast(logits), target)
    return PairClassification(loss, logits, target, index, index, torch.cat([torch.zeros_like(shift), shift]))


@torch.no_grad()
def sync_offset_scores(
    head: PairHead, visual: Tensor, audio: Tensor, *, window: int, offsets: Sequence[int], start: int | None = None
) -> Tensor:
    """In-sync log-probability of every candidate offset: ``(B, len(offsets))``.

    The visual window ``[start, start + W)`` is compared with the audio windows
    ``[start + δ, start + δ + W)``; ``start`` defaults to ``max |δ|`` (every candidate fits).
    ``offsets[scores.argmax(1)]`` is the estimated audio lag in steps.
    """
    b, t = audio.shape[:2]
    reach = max(abs(int(d)) for d in offsets)
    s0 = reach if start is None else int(start)
    if s0 - reach < 0 or s0 + reach + window > t:
        raise ConfigError(f"window {window} at start {s0} with offsets up to ±{reach} does not fit in T={t} steps")
    vis = visual[:, s0 : s0 + window]
    scores = [
        F.log_softmax(upcast(head(vis, audio[:, s0 + int(d) : s0 + int(d) + window])), dim=-1)[:, 1] for d in offsets
    ]
    return torch.stack(scores, dim=1)
