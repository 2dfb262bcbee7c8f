"""Cross-rank gathering for contrastive losses under DDP, with gradients into the local part.

In-batch contrastive objectives (InfoNCE, MIL-NCE, hinge ranking, MMS, mined triplets) get
better with more negatives. Under ``torch.distributed`` every rank gathers the embeddings of all
ranks and computes the loss of the **global** batch; the other ranks' rows enter as constants and
the local rows keep their graph (the ``gather_with_grad=False`` scheme of OpenCLIP, Ilharco et
al. 2021). Each rank then returns the loss of the concatenated batch, and the gradient reaching
its local embeddings equals the single-process gradient of that loss on the concatenated batch.
DDP averages parameter gradients over the ``R`` ranks, so the parameter gradient is the
single-process one divided by ``R`` (a constant learning-rate factor; scale-free optimisers such
as Adam are unaffected).

Ranks may hold different numbers of items: sizes are exchanged first and the rows padded for the
collective, then trimmed.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["distributed_rank_and_world", "gather_batch"]


def distributed_rank_and_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group, ``(0, 1)`` outside ``torch.distributed``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_gather_rows(x: Tensor, sizes: list[int]) -> list[Tensor]:
    """All ranks' ``x`` (leading sizes ``sizes``), padded to the largest size for the collective."""
    n_max = max(sizes)
    send = x.detach()
    as_uint8 = send.dtype == torch.bool
    if as_uint8:
        send = send.to(torch.uint8)
    if send.shape[0] < n_max:
        pad = send.new_zeros((n_max - send.shape[0], *send.shape[1:]))
        send = torch.cat([send, pad])
    parts = [torch.empty_like(send) for _ in sizes]
    dist.all_gather(parts, send.contiguous())
    parts = [p[:n] for p, n in zip(parts, sizes)]
    return [p.bool() for p in parts] if as_uint8 else parts


def gather_batch(*tensors: Tensor | None, enabled: bool = True) -> tuple[Tensor | None, ...]:
    """Concatenate each tensor over the ranks along dim 0 (rank order); ``None`` passes through.

    Args:
        tensors: tensors sharing the local leading size ``n`` (embeddings ``(n, D)``, masks
            ``(n,)``, ids ``(n,)``, bags ``(n, K, D)``).
        enabled: ``False`` returns the inputs unchanged (local negatives only).

    Returns:
        The gathered tensors ``(N, ...)``, ``N = sum of n over ranks``. This rank's slice is the
        input tensor itself (its autograd graph is kept); the other slices carry no gradient.
    """
    rank, world = distributed_rank_and_world()
    if not enabled or world == 1:
        return tensors
    present = [t for t in tensors if t is not None]
    n = present[0].shape[0]
    if any(t.shape[0] != n for t in present):
        raise ValueError(f"gather_batch: tensors must share the leading size, got {[t.shape[0] for t in present]}")
    size = torch.tensor([n], dtype=torch.long, device=present[0].device)
    size_parts = [torch.empty_like(size) for _ in range(world)]
    dist.all_gather(size_parts, size)
    sizes = [int(s) for s in size_parts]
    out: list[Tensor | None] = []
    for t in tensors:
        if t is None:
            out.append(None)
            continue
        parts = _all_gather_rows(t, sizes)
        parts[rank] = t
        out.append(torch.cat(parts))
    return tuple(out)
