"""Contrastive losses under DDP: 2 gloo processes give the loss and local gradients of one process
on the concatenated batch (negatives gathered across ranks, gradients into the local part)."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from avperceive.nn.losses import hinge_ranking_loss, info_nce, masked_margin_softmax, mil_nce, triplet_loss

SIZES = (3, 5)  # unequal local batches exercise the padded collective


def _data():
    g = torch.Generator().manual_seed(0)
    n = sum(SIZES)
    return {
        "a": torch.randn(n, 4, generator=g),
        "v": torch.randn(n, 4, generator=g),
        "bags": torch.randn(n, 2, 4, generator=g),
        "labels": torch.tensor([0, 1, 0, 2, 1, 1, 2, 0]),
        "valid": torch.tensor([True, True, False, True, True, True, False, True]),
    }


def _losses(a, v, bags, labels, valid) -> dict[str, torch.Tensor]:
    return {
        "info_nce": info_nce(a, v, temperature=0.2, valid=valid),
        "mil_nce": mil_nce(a, bags, temperature=0.3),
        "hinge": hinge_ranking_loss(a, v, margin=0.3, ids=labels),
        "mms": masked_margin_softmax(a, v, margin=0.1, temperature=0.2, ids=labels, valid=valid),
        "triplet_semi_hard": triplet_loss(a, labels, v, labels, margin=0.5, mining="semi_hard"),
        "triplet_batch_hard": triplet_loss(a, labels, margin=0.5, mining="batch_hard", x_valid=valid),
    }


def _results(lo: int, hi: int) -> dict[str, tuple[float, torch.Tensor, torch.Tensor, torch.Tensor]]:
    d = _data()
    out = {}
    for name in _losses(d["a"][:1], d["v"][:1], d["bags"][:1], d["labels"][:1], d["valid"][:1]):
        a = d["a"][lo:hi].clone().requires_grad_()
        v = d["v"][lo:hi].clone().requires_grad_()
        bags = d["bags"][lo:hi].clone().requires_grad_()
        loss = _losses(a, v, bags, d["labels"][lo:hi], d["valid"][lo:hi])[name]
        loss.backward()
        grads = [t.grad if t.grad is not None else torch.zeros_like(t) for t in (a, v, bags)]
        out[name] = (float(loss.detach()), *grads)
    return out


def _worker(rank: int, world: int, init_file: str, result_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        lo = sum(SIZES[:rank])
        torch.save(_results(lo, lo + SIZES[rank]), f"{result_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_equal_one_process_on_the_concatenated_batch(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    single = _results(0, sum(SIZES))
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    bounds = [(0, SIZES[0]), (SIZES[0], sum(SIZES))]
    for name, (loss, *grads) in single.items():
        for (lo, hi), res in zip(bounds, ranks):
            r_loss, *r_grads = res[name]
            # same float32 ops on the same global matrix; only the gather order of sums may differ
            assert abs(r_loss - loss) <= 1e-6 * max(1.0, abs(loss)), name
            for g_single, g_rank in zip(grads, r_grads):
                torch.testing.assert_close(g_rank, g_single[lo:hi], rtol=1e-5, atol=1e-6, msg=name)
