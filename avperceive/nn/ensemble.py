"""EoPMA: the β-mix of perception-mode adapter residuals (eqs. 1–4).

Guo, Tørresen & Jensenius, "SoundActions: ... Ensemble of Perception Mode Adapters" (TISMIR 2026,
doi 10.5334/tismir.223), §3.3, eqs. 1–4 (the printed equations lose their minus signs and
superscripts; read here with weight (1−β) on causal and β on reduced in eqs. 2 and 4). For adapted layer l
with audio state ``a`` and video state ``v``, and adapter sets m ∈ {c (causal), r (reduced)} of the
same architecture (two :class:`~avperceive.nn.adapter_bank.AdapterBank` s)::

    (1)  a_f^m = Ω^m_{v→a}(v, a),            v_f^m = Ω^m_{a→v}(a, v)           # both read the same states
    (2)  a_y = a + MHA(a) + (1−β)·a_f^c + β·a_f^r
         v_y = v + MHA(v) + (1−β)·v_f^c + β·v_f^r
    (3)  a_yf^m = Ωʸ^m_{v→a}(v_y, a_y),      v_yf^m = Ωʸ^m_{a→v}(a_y, v_y)
    (4)  a' = a_y + MLP(a_y) + (1−β)·a_yf^c + β·a_yf^r
         v' = v_y + MLP(v_y) + (1−β)·v_yf^c + β·v_yf^r

Only the adapter residuals are mixed; the backbone blocks run once. The layer wiring (the
reference order of the DG-SCT code, or eqs. 1–4 literally) is the host's
(:func:`avperceive.models.dgsct.step_paired_layer`); this module supplies the mixed residual for
each (layer, position, stream) through :meth:`PerceptionModeMixer.residual`, which has the host's
``residual_fn`` signature. The mix is computed as ``β·r + (1−β)·c`` (the reference's expression),
so β = 0 gives the causal residual and β = 1 the reduced one bit-exactly.

Beyond the paper: N banks with weights on the simplex (``{"causal": .9, "reduced": .05,
"semantic": .05}``), per-stream weights, and the learned per-layer gate of the authors' GEoPMA
(reference ``soundactions/eopma.py``): before each position of layer i a ``Linear(C_v + C_a → N)``
on the token means of the streams, softmax → per-sample member weights.

The spatial pooling map of each position is always the causal (first) member's, as in the reference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..modality import MODALITY_STREAMS, STREAMS, canonical_stream, check_modality

__all__ = [
    "mix_residuals",
    "resolve_stream_weights",
    "AdapterMix",
    "ResidualGate",
    "PerceptionModeMixer",
    "STREAMS",
]


Weight = float | torch.Tensor


def mix_residuals(residuals: Sequence[torch.Tensor], weights: Sequence[Weight]) -> torch.Tensor:
    """``Σ_k w_k · r_k`` over the members (eq. 2 / 4 with N members).

    Args:
        residuals: N tensors ``[B, N_tok, C]`` (same shape).
        weights: N python floats, or ``[B]`` tensors (per-sample weights of a gate).

    Returns:
        ``[B, N_tok, C]``. With two members and float weights ``(1−β, β)`` this is the reference's
        ``β·r_reduced + (1−β)·r_causal`` (addition of two terms is commutative in IEEE arithmetic).
    """
    if len(residuals) != len(weights) or not residuals:
        raise ValueError(f"need one weight per residual, got {len(weights)} weights for {len(residuals)} residuals")
    total = None
    for r, w in zip(residuals, weights):
        if isinstance(w, torch.Tensor):
            if w.dim() != 1 or w.shape[0] != r.shape[0]:
                raise ValueError(f"per-sample weights must be [B] with B = {r.shape[0]}, got {tuple(w.shape)}")
            w = w.to(r.dtype).reshape(-1, *([1] * (r.dim() - 1)))
        term = w * r
        total = term if total is None else total + term
    return total


def _check_simplex(weights: Mapping[str, float], where: str) -> dict[str, float]:
    out = {k: float(v) for k, v in weights.items()}
    if any(v < 0 or not math.isfinite(v) for v in out.values()):
        raise ConfigError(f"{where}: weights must be finite and >= 0, got {out}")
    if abs(sum(out.values()) - 1.0) > 1e-6:
        total = sum(out.values())
        raise ConfigError(f"{where}: weights must sum to 1 (a point of the simplex), got {out} (sum {total})")
    return out


def resolve_stream_weights(
    members: Sequence[str],
    beta: float | Mapping[str, float] | None = None,
    weights: Mapping | None = None,
    modality: str = "av",
) -> dict[str, dict[str, float]]:
    """Member weights per stream: ``{"audio": {member: w}, "video": {member: w}}``.

    Args:
        members: bank names; the first is the causal one.
        beta: with two members, the weight β of the second (``(1−β, β)``); a float for both streams or a
            per-stream dict ``{"a": β_a, "v": β_v}``. β ∈ [0, 1].
        weights: N-member alternative: ``{member: w}`` on the simplex for both streams, or per stream
            ``{"a": {member: w}, "v": {...}}``. Exactly one of ``beta`` / ``weights``.
        modality: ``"a"``, ``"v"`` or ``"av"``: the streams that get the mix; the others use the causal
            member only (weight 1).
    """
    check_modality(modality)
    members = list(members)
    causal = members[0]
    if (beta is None) == (weights is None):
        raise ConfigError("give exactly one of beta (two banks) or weights (N banks on the simplex)")
    per_stream: dict[str, dict[str, float]] = {}
    if beta is not None:
        if len(members) != 2:
            raise ConfigError(f"beta needs exactly two banks (causal, other); got {members}: use weights=")
        betas = beta if isinstance(beta, Mapping) else {"audio": beta, "video": beta}
        betas = {canonical_stream(k): float(v) for k, v in betas.items()}
        for s in STREAMS:
            b = betas.get(s, 0.0)
            if not 0.0 <= b <= 1.0:
                raise ConfigError(f"beta must lie in [0, 1], got {b} for the {s} stream")
            per_stream[s] = {causal: 1 - b, members[1]: b}
    else:
        if all(isinstance(v, Mapping) for v in weights.values()):
            given = {canonical_stream(k): dict(v) for k, v in weights.items()}
        else:
            given = {s: dict(weights) for s in STREAMS}
        for s in STREAMS:
            w = given.get(s, {causal: 1.0})
            unknown = set(w) - set(members)
            if unknown:
                raise ConfigError(f"weights name unknown banks {sorted(unknown)}; banks are {members}")
            per_stream[s] = _check_simplex({m: w.get(m, 0.0) for m in members}, f"{s} weights")
    for s in STREAMS:
        if s not in MODALITY_STREAMS[modality]:
            per_stream[s] = {m: (1.0 if m == causal else 0.0) for m in members}
    return per_stream


class AdapterMix(nn.Module):
    """EoPMA at one adapted position: ``Σ_k w_k Ω_k(x, y)``, pooling map from the first (causal) member.

    Args:
        members: adapters of the same architecture (e.g. :class:`~avperceive.nn.adapters.DGSCTAdapter`);
            each returns ``(residual, map)`` or a residual.
        beta: default weight of the second member for two members (``(1−β, β)``).

    Shapes: ``forward(x [B, N, C], y [B, M, C_o], weights=None) -> (residual [B, N, C], map [B, N] | None)``.
    """

    def __init__(self, members: Sequence[nn.Module], beta: float = 0.0):
        super().__init__()
        if len(members) < 2:
            raise ConfigError("AdapterMix needs at least two adapters")
        self.members = nn.ModuleList(members)
        self.beta = float(beta)

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, weights: Sequence[Weight] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if weights is None:
            if len(self.members) != 2:
                raise ConfigError("give weights for more than two members")
            weights = (1 - self.beta, self.beta)
        outs = [m(x, y) for m in self.members]
        residuals = [o[0] if isinstance(o, tuple) else o for o in outs]
        causal_map = outs[0][1] if isinstance(outs[0], tuple) else None
        return mix_residuals(residuals, list(weights)), causal_map


class ResidualGate(nn.Module):
    """GEoPMA gate of one position: ``softmax(W · [mean_n v ; mean_n a] + b)`` → per-sample member weights.

    Args:
        video_dim, audio_dim: C_v, C_a of the layer.
        num_members: N banks.
        inputs: ``"av"`` (both token means, concatenated video first), ``"a"`` or ``"v"``.

    Shapes: ``forward(v [B, N_v, C_v], a [B, N_a, C_a]) -> [B, N]`` (rows sum to 1).
    """

    def __init__(self, video_dim: int, audio_dim: int, num_members: int = 2, inputs: str = "av"):
        super().__init__()
        self.inputs = check_modality(inputs, "gate inputs")
        in_dim = (video_dim if "v" in inputs else 0) + (audio_dim if "a" in inputs else 0)
        self.proj = nn.Linear(in_dim, num_members)

    def forward(self, v: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        parts = ([v.mean(dim=1)] if "v" in self.inputs else []) + ([a.mean(dim=1)] if "a" in self.inputs else [])
        feats = torch.cat(parts, dim=-1)
        return torch.softmax(self.proj(feats.to(self.proj.weight.dtype)), dim=-1).to(v.dtype)


class PerceptionModeMixer(nn.Module):
    """The EoPMA residual function over N adapter banks (eqs. 2 and 4, every layer, both positions).

    Args:
        banks: ``{name: AdapterBank}`` with the same layout; the first is the causal bank (its spatial
            maps are used for pooling).
        beta / weights / modality: see :func:`resolve_stream_weights`.
        gate: ``None`` (fixed weights) or ``"learned"`` (GEoPMA: a :class:`ResidualGate` per layer and
            position, trained on the target task; ``beta``/``weights`` are then ignored except that
            streams outside ``modality`` still use the causal bank only).
        layer_dims: ``[(C_v, C_a)]`` per layer, needed with ``gate="learned"``.

    Members whose weight is exactly 0 for a stream are not run (they could not change the result);
    the causal member always runs (its pooling map is needed).

    Use: ``host(video, audio, residual_fn=mixer.residual)``; ``residual(i, position, stream, own, other)``
    returns ``(mixed residual [B, N_own, C_own], causal map [B, N_own])``.
    """

    def __init__(
        self,
        banks: Mapping[str, nn.Module],
        beta: float | Mapping[str, float] | None = None,
        weights: Mapping | None = None,
        modality: str = "av",
        gate: str | None = None,
        layer_dims: Sequence[tuple[int, int]] | None = None,
    ):
        super().__init__()
        if len(banks) < 2:
            raise ConfigError(f"EoPMA needs at least two banks, got {list(banks)}")
        names = list(banks)
        first = banks[names[0]]
        for n in names[1:]:
            same = getattr(first, "same_layout", None)
            if same is not None and not same(banks[n]):
                raise ConfigError(f"bank {n!r} does not have the layout of the causal bank {names[0]!r}")
        self.member_names = names
        self.banks = nn.ModuleDict(dict(banks))
        self.modality = modality
        if gate not in (None, "learned"):
            raise ConfigError(f"gate must be None or 'learned', got {gate!r}")
        self.gate = gate
        if gate == "learned":
            if layer_dims is None:
                raise ConfigError("gate='learned' needs layer_dims [(C_v, C_a)] per layer")
            self.gates = nn.ModuleDict({
                p: nn.ModuleList(ResidualGate(cv, ca, len(names), modality) for cv, ca in layer_dims)
                for p in ("p1", "p2")
            })
            check_modality(modality)
            self.stream_weights = None
        else:
            if beta is None and weights is None:
                beta = 0.0
            self.set_weights(beta=beta, weights=weights, modality=modality)

    def set_weights(
        self,
        beta: float | Mapping[str, float] | None = None,
        weights: Mapping | None = None,
        modality: str | None = None,
    ) -> None:
        """Change β (two banks) or the simplex weights (and optionally the modality setup)."""
        if self.gate == "learned":
            raise ConfigError("a learned gate has no fixed weights")
        self.modality = modality or self.modality
        self.stream_weights = resolve_stream_weights(self.member_names, beta, weights, self.modality)

    def member_weights(
        self, i: int, position: str, stream: str, own: torch.Tensor, other: torch.Tensor
    ) -> dict[str, Weight]:
        """Weights of each member for this layer/position/stream (floats, or ``[B]`` tensors with a gate)."""
        causal = self.member_names[0]
        if self.gate == "learned":
            if stream not in MODALITY_STREAMS[self.modality]:
                return {m: (1.0 if m == causal else 0.0) for m in self.member_names}
            v, a = (own, other) if stream == "video" else (other, own)
            w = self.gates[position][i](v, a)
            return {m: w[:, k] for k, m in enumerate(self.member_names)}
        return self.stream_weights[stream]

    def residual(
        self, i: int, position: str, stream: str, own: torch.Tensor, other: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Mixed residual of layer ``i`` at ``position`` ('p1'|'p2') for ``stream`` ('audio'|'video').

        Returns ``(Σ_k w_k Ω_k(own, other) [B, N, C], causal pooling map [B, N])``.
        """
        weights = self.member_weights(i, position, stream, own, other)
        family = f"{stream}_{position}"
        causal = self.member_names[0]
        residuals, ws, causal_map = [], [], None
        for name in self.member_names:
            w = weights[name]
            if name != causal and isinstance(w, float) and w == 0.0:
                continue
            out = self.banks[name][family][i](own, other)
            r, m = out if isinstance(out, tuple) else (out, None)
            if name == causal:
                causal_map = m
            residuals.append(r)
            ws.append(w)
        if len(residuals) == 1 and isinstance(ws[0], float) and ws[0] == 1.0:
            return residuals[0], causal_map  # β = 0 for this stream: exactly the causal adapter
        return mix_residuals(residuals, ws), causal_map

    def extra_repr(self) -> str:
        return f"members={self.member_names}, modality={self.modality!r}, gate={self.gate!r}"
