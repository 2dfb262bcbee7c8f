"""Event-specific audio-visual fusion layers (Senocak, Kim, Oh, Li, Kweon, WACV 2023, eqs 1-3).

Five parameter-free pooling layers turn per-step features ``z_v, z_a (B, T, D)`` into one clip
feature ``z_i (B, 2D)`` each, and one linear head per layer gives the logits ``O_i = FC_i(z_i)``.
With ``c_t = [z_v,t ; z_a,t]``:

* ``continuous`` (eq. 1): ``(1/T) sum_t c_t``, the mean over every step;
* ``instant`` (eq. 2): the mean of ``c_t`` over the top-k steps of ``s_t = z_v,t . z_a,t``
  (k = 10 by default, clamped to the clip's length; ties go to the earlier step);
* ``onset`` (eq. 3): the mean of ``c_t`` over the audio-onset steps (every step when a clip has none);
* ``visual`` / ``audio``: ``continuous`` with the other modality's half zeroed.

All layers are one batched masked mean: a weight mask ``(B, R, T)`` with one row per distinct step
set (all valid steps, the top-k steps, the onset steps; each row sums to one over the clip's valid
steps) times each half of ``c``; the unimodal layers reuse the all-steps row with the other half
zeroed. Variable-length clips come through ``padding_mask``. A plain
per-sample path (``pool_impl="reference"``) spells the equations out and is tested equal.

The top-k selection is hard: gradients reach the selected features, never ``s_t``.
``multi_head_loss`` is the paper's training loss (the sum of the per-head cross-entropies) and
``localization_map`` its training-free sound-source map ``alpha_t = V_t . z_a,t``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..errors import ConfigError

__all__ = [
    "EVENT_LAYERS",
    "POOL_IMPLS",
    "EventSpecificFusion",
    "event_specific_pool",
    "event_specific_pool_reference",
    "instant_step_mask",
    "onset_step_mask",
    "multi_head_loss",
    "localization_map",
]

EVENT_LAYERS: tuple[str, ...] = ("continuous", "instant", "onset", "visual", "audio")
#: the two pooling paths, named like the attention paths (``attn_impl``): ``"fused"`` = one batched
#: masked mean for every layer (default), ``"reference"`` = the per-clip loop that spells out eqs 1-3.
POOL_IMPLS: tuple[str, ...] = ("fused", "reference")


def _check_inputs(z_v: Tensor, z_a: Tensor, onset_mask: Tensor | None, padding_mask: Tensor | None) -> Tensor:
    """Validate shapes and return the valid-step mask ``(B, T)`` (True = a real step)."""
    if z_v.ndim != 3 or z_v.shape != z_a.shape:
        raise ValueError(
            f"z_v and z_a must both be (B, T, D) with equal shapes; got {tuple(z_v.shape)} and {tuple(z_a.shape)}"
        )
    batch, steps, _ = z_v.shape
    for name, mask in (("onset_mask", onset_mask), ("padding_mask", padding_mask)):
        if mask is not None and tuple(mask.shape) != (batch, steps):
            raise ValueError(f"{name} must be a (B, T) = ({batch}, {steps}) boolean mask; got {tuple(mask.shape)}")
    if padding_mask is None:
        return torch.ones(batch, steps, dtype=torch.bool, device=z_v.device)
    valid = ~padding_mask.to(device=z_v.device, dtype=torch.bool)
    if not bool(valid.any(dim=1).all()):
        raise ValueError("padding_mask marks every step of a clip as padding; each clip needs >= 1 valid step")
    return valid


def _check_layers(layers: Sequence[str]) -> tuple[str, ...]:
    layers = tuple(layers)
    unknown = [name for name in layers if name not in EVENT_LAYERS]
    if unknown or not layers or len(set(layers)) != len(layers):
        raise ConfigError(f"layers must be distinct names from {EVENT_LAYERS}; got {layers}")
    return layers


def instant_step_mask(z_v: Tensor, z_a: Tensor, k: int, valid: Tensor) -> Tensor:
    """Steps picked by the instant layer (eq. 2): the top-k of ``s_t = z_v,t . z_a,t`` per clip.

    Args:
        z_v, z_a: ``(B, T, D)`` per-step features.
        k: number of steps; clamped per clip to its number of valid steps.
        valid: ``(B, T)`` bool, True on real (non-padded) steps.

    Returns:
        ``(B, T)`` bool mask with ``min(k, valid steps)`` True entries per clip. Ties in ``s_t`` go
        to the earlier step (a stable descending sort). ``s_t`` is detached: the selection is hard.
    """
    if k < 1:
        raise ConfigError(f"k must be >= 1; got {k}")
    scores = (z_v.detach() * z_a.detach()).sum(dim=-1).float()  # s_t = z_v,t . z_a,t
    scores = scores.masked_fill(~valid, float("-inf"))
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    k_per_clip = valid.sum(dim=1).clamp(max=k)
    rank = torch.arange(scores.shape[1], device=scores.device)
    take = rank[None, :] < k_per_clip[:, None]
    return torch.zeros_like(valid).scatter(1, order, take)


def onset_step_mask(onset_mask: Tensor | None, valid: Tensor) -> Tensor:
    """Steps averaged by the onset layer (eq. 3): the onset steps, or every valid step if a clip has none.

    Args:
        onset_mask: ``(B, T)`` bool (True at audio-onset steps) or ``None`` (no onsets known).
        valid: ``(B, T)`` bool, True on real steps; onsets on padded steps are ignored.

    Returns:
        ``(B, T)`` bool mask.
    """
    if onset_mask is None:
        return valid
    onsets = onset_mask.to(device=valid.device, dtype=torch.bool) & valid
    empty = ~onsets.any(dim=1, keepdim=True)
    return torch.where(empty, valid, onsets)


def event_specific_pool(
    z_v: Tensor,
    z_a: Tensor,
    onset_mask: Tensor | None = None,
    padding_mask: Tensor | None = None,
    *,
    k: int = 10,
    layers: Sequence[str] = EVENT_LAYERS,
) -> dict[str, Tensor]:
    """Pooled feature of every layer, all layers in one batched masked mean.

    Args:
        z_v, z_a: ``(B, T, D)`` visual and audio features, one step each per time step.
        onset_mask: ``(B, T)`` bool, True at audio-onset steps (``None``: no onsets, so all steps).
        padding_mask: ``(B, T)`` bool, **True at padded steps** (the ``key_padding_mask``
            convention); ``None`` means every step is real.
        k: steps of the instant layer.
        layers: which of :data:`EVENT_LAYERS`, in output order.

    Returns:
        ``{layer: (B, 2D)}``; the first ``D`` channels are visual, the last ``D`` audio.
    """
    layers = _check_layers(layers)
    valid = _check_inputs(z_v, z_a, onset_mask, padding_mask)
    # one weight row per distinct step set: all steps (continuous / visual / audio), top-k, onsets
    step_masks = {"continuous": valid}
    if "instant" in layers:
        step_masks["instant"] = instant_step_mask(z_v, z_a, k, valid)
    if "onset" in layers:
        step_masks["onset"] = onset_step_mask(onset_mask, valid)
    row = {name: list(step_masks).index(name if name in step_masks else "continuous") for name in layers}
    weights = torch.stack(list(step_masks.values()), dim=1).to(z_v.dtype)  # (B, R, T)
    weights = weights / weights.sum(dim=-1, keepdim=True)
    pooled_v = torch.einsum("brt,btd->brd", weights, z_v)  # masked means of each half,
    pooled_a = torch.einsum("brt,btd->brd", weights, z_a.to(weights.dtype))  # no (B, T, 2D) concat
    out = {}
    for name in layers:
        v, a = pooled_v[:, row[name]], pooled_a[:, row[name]]
        if name == "visual":
            a = torch.zeros_like(a)
        elif name == "audio":
            v = torch.zeros_like(v)
        out[name] = torch.cat([v, a], dim=-1)
    return out


def event_specific_pool_reference(
    z_v: Tensor,
    z_a: Tensor,
    onset_mask: Tensor | None = None,
    padding_mask: Tensor | None = None,
    *,
    k: int = 10,
    layers: Sequence[str] = EVENT_LAYERS,
) -> dict[str, Tensor]:
    """Eqs 1-3 written plainly, one clip at a time (the readable specification; slow).

    Same arguments and result as :func:`event_specific_pool`.
    """
    layers = _check_layers(layers)
    valid = _check_inputs(z_v, z_a, onset_mask, padding_mask)
    out: dict[str, list[Tensor]] = {name: [] for name in layers}
    for b in range(z_v.shape[0]):
        steps = valid[b].nonzero().squeeze(1)
        zv, za = z_v[b, steps], z_a[b, steps]
        c = torch.cat([zv, za], dim=-1)  # (n, 2D): c_t = [z_v,t ; z_a,t] on the clip's real steps
        for name in layers:
            if name == "continuous":
                z = c.mean(dim=0)
            elif name == "instant":
                s = (zv.detach().float() * za.detach().float()).sum(dim=-1)
                top = torch.sort(s, descending=True, stable=True).indices[: min(k, len(steps))]
                z = c[top].mean(dim=0)
            elif name == "onset":
                onsets = onset_mask[b, steps].bool() if onset_mask is not None else torch.zeros_like(steps, dtype=bool)
                z = c[onsets].mean(dim=0) if bool(onsets.any()) else c.mean(dim=0)
            elif name == "visual":
                z = torch.cat([zv, torch.zeros_like(za)], dim=-1).mean(dim=0)
            else:
                z = torch.cat([torch.zeros_like(zv), za], dim=-1).mean(dim=0)
            out[name].append(z)
    return {name: torch.stack(zs) for name, zs in out.items()}


class EventSpecificFusion(nn.Module):
    """The five event-specific layers and their heads (Senocak et al. 2023, eqs 1-3).

    Args:
        dim: feature width ``D`` of each modality (both must match: ``s_t`` is a dot product).
        num_classes: ``K``.
        k: steps of the instant layer (default 10).
        layers: which of :data:`EVENT_LAYERS` to build, in output order.
        pool_impl: ``"fused"`` (one batched masked mean for all layers, :func:`event_specific_pool`;
            default) or ``"reference"`` (the per-clip loop of :func:`event_specific_pool_reference`),
            the same vocabulary as ``attn_impl``.
        unimodal_heads: ``"concat"`` (default, the paper's layout): the visual / audio heads are
            ``nn.Linear(2 * dim, num_classes)`` like the others, and their zeroed half receives no
            gradient; ``"half"``: ``nn.Linear(dim, num_classes)`` on the non-zero half only (the same
            function with fewer parameters; the paper leaves this open).

    Heads are stored as ``heads.<layer>``.
    """

    def __init__(
        self,
        dim: int,
        num_classes: int,
        k: int = 10,
        layers: Sequence[str] = EVENT_LAYERS,
        pool_impl: str = "fused",
        unimodal_heads: str = "concat",
    ):
        super().__init__()
        if unimodal_heads not in ("concat", "half"):
            raise ConfigError(f"unimodal_heads must be 'concat' or 'half'; got {unimodal_heads!r}")
        if pool_impl not in POOL_IMPLS:
            raise ConfigError(f"pool_impl must be one of {POOL_IMPLS}; got {pool_impl!r}")
        if k < 1:
            raise ConfigError(f"k must be >= 1; got {k}")
        self.dim, self.num_classes, self.k = dim, num_classes, k
        self.layers = _check_layers(layers)
        self.pool_impl, self.unimodal_heads = pool_impl, unimodal_heads
        half = unimodal_heads == "half"
        self.heads = nn.ModuleDict(
            {
                name: nn.Linear(dim if half and name in ("visual", "audio") else 2 * dim, num_classes)
                for name in self.layers
            }
        )

    def pool(
        self, z_v: Tensor, z_a: Tensor, onset_mask: Tensor | None = None, padding_mask: Tensor | None = None
    ) -> dict[str, Tensor]:
        """``{layer: (B, 2*dim)}`` pooled features; see :func:`event_specific_pool` for the masks."""
        if z_v.shape[-1] != self.dim:
            raise ValueError(f"expected features (B, T, {self.dim}); got {tuple(z_v.shape)}")
        fn = event_specific_pool if self.pool_impl == "fused" else event_specific_pool_reference
        return fn(z_v, z_a, onset_mask, padding_mask, k=self.k, layers=self.layers)

    def forward(
        self, z_v: Tensor, z_a: Tensor, onset_mask: Tensor | None = None, padding_mask: Tensor | None = None
    ) -> dict[str, Tensor]:
        """``{layer: (B, num_classes)}`` logits, in the order of ``self.layers``."""
        pooled = self.pool(z_v, z_a, onset_mask, padding_mask)
        if self.unimodal_heads == "half":
            if "visual" in pooled:
                pooled["visual"] = pooled["visual"][..., : self.dim]
            if "audio" in pooled:
                pooled["audio"] = pooled["audio"][..., self.dim :]
        return {name: self.heads[name](pooled[name]) for name in self.layers}


def multi_head_loss(logits: Mapping[str, Tensor], y: Tensor, weights: Mapping[str, float] | None = None) -> Tensor:
    """The paper's loss: ``sum_i CE(O_i, y)`` over the heads, equal weights by default.

    Args:
        logits: ``{layer: (B, K)}``.
        y: ``(B,)`` class indices (the same single label for every head).
        weights: optional ``{layer: weight}`` (missing layers weigh 1).
    """
    if not logits:
        raise ValueError("logits is empty; expected {layer: (B, K)}")
    weights = weights or {}
    return sum(weights.get(name, 1.0) * F.cross_entropy(o, y) for name, o in logits.items())


def localization_map(
    v_map: Tensor, z_a: Tensor, size: tuple[int, int] | None = None, *, normalize: bool = False
) -> Tensor:
    """Training-free sound-source map ``alpha_t = V_t . z_a,t`` at every spatial location.

    Args:
        v_map: ``(B, T, D, h, w)`` last visual conv map (MC3-18: ``h = w = 7``, ``D = 512``).
        z_a: ``(B, T, D)`` audio features.
        size: ``(H, W)`` to upsample to (bilinear), or ``None`` to keep ``(h, w)``.
        normalize: cosine similarity instead of the raw dot product (the paper does not say which;
            the raw dot product is the default).

    Returns:
        ``(B, T, H, W)`` maps.
    """
    if v_map.ndim != 5 or z_a.ndim != 3 or v_map.shape[:3] != z_a.shape:
        raise ValueError(
            f"expected v_map (B, T, D, h, w) and z_a (B, T, D); got {tuple(v_map.shape)} and {tuple(z_a.shape)}"
        )
    if normalize:
        v_map = F.normalize(v_map, dim=2)
        z_a = F.normalize(z_a, dim=-1)
    alpha = torch.einsum("btdhw,btd->bthw", v_map, z_a)
    if size is None:
        return alpha
    batch = alpha.shape[0]
    alpha = F.interpolate(rearrange(alpha, "b t h w -> (b t) 1 h w"), size=tuple(size), mode="bilinear")
    return rearrange(alpha, "(b t) 1 h w -> b t h w", b=batch)
