"""EoPMA: Ensemble of Perception Mode Adapters on a DG-SCT host, its baselines and the β sweep.

Guo, Tørresen & Jensenius, "SoundActions" (TISMIR 2026, doi 10.5334/tismir.223), §3.3, eqs. 1–4
and Table 4. The β-mix itself lives in :mod:`avperceive.nn.ensemble`; this module wires it into a
:class:`~avperceive.models.dgsct.DGSCT` host:

* :class:`PerceptionModeEnsemble` — one backbone pass; at every adapted layer and both positions each
  bank's adapter reads the same states and their residuals are mixed (``(1−β)·causal + β·reduced``,
  or N banks on the simplex, or the learned GEoPMA gate). Pooling maps, temporal module and CMBS head
  come from the causal host. β = 0 is the host exactly.
* Baselines of Table 4: :func:`final_embedding_ensemble` (two full models, temporal-module outputs
  mixed before the causal head), :func:`seed_ensemble` (EoPMA with a second causal bank of another
  seed) and :func:`reduced_alone` (the host with the reduced bank swapped in).
* :func:`sweep_beta` — accuracy per β (the seeds' Figure 8; default grid 0:0.001:0.039 of the reference).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import ConfigError
from ..nn.ensemble import PerceptionModeMixer
from ..nn.heads import ave_decision
from .contract import AVModel

__all__ = [
    "PerceptionModeEnsemble",
    "FinalEmbeddingEnsemble",
    "final_embedding_ensemble",
    "seed_ensemble",
    "reduced_alone",
    "sweep_beta",
    "BetaSweep",
    "REFERENCE_BETAS",
]

#: The reference sweep ``np.arange(0, 0.04, 0.001)`` (the authors' public EoPMA code).
REFERENCE_BETAS: tuple[float, ...] = tuple(round(0.001 * k, 3) for k in range(40))

_ORDERS = {"reference": "reference", "dgsct": "reference", "paper": "paper"}


class PerceptionModeEnsemble(AVModel):
    """EoPMA on a DG-SCT host.

    Args:
        host: a :class:`~avperceive.models.dgsct.DGSCT` (its adapters are the causal bank by default;
            its backbones, temporal module and head are used as they are).
        banks: ``{"causal": bank_c, "reduced": bank_r}`` (:class:`~avperceive.nn.AdapterBank` s of the
            host's layout). The first entry is the causal bank; ``"causal"`` may be left out, then
            ``host.adapters`` is used. More banks need ``weights=``.
        beta: weight of the second bank: a float or ``{"a": β_a, "v": β_v}`` (default 0).
        modality: ``"a"``, ``"v"`` or ``"av"``: which streams get the mix (the others use the causal bank).
        weights: N banks on the simplex instead of ``beta``
            (see :func:`~avperceive.nn.ensemble.resolve_stream_weights`).
        gate: ``"learned"`` for the GEoPMA per-layer softmax gate (train ``ensemble.mixer.gates``).
        residual_order: ``None`` (the host's), ``"reference"``/``"dgsct"`` (DG-SCT code) or ``"paper"`` (eqs. 1–4).

    ``forward(video (B, T, 3, H, W), audio (B, T, S))`` returns the host's output dict; the input
    settings and the weights source are the host's.
    """

    task = "ave"

    def __init__(
        self,
        host: nn.Module,
        banks: Mapping[str, nn.Module] | None = None,
        beta: float | Mapping[str, float] | None = None,
        modality: str = "av",
        *,
        weights: Mapping | None = None,
        gate: str | None = None,
        residual_order: str | None = None,
    ):
        super().__init__()
        banks = dict(banks or {})
        if "causal" not in banks:
            banks = {"causal": host.adapters, **banks}
        if len(banks) < 2:
            raise ConfigError("PerceptionModeEnsemble needs at least one bank besides the causal one")
        if residual_order is not None and residual_order not in _ORDERS:
            raise ConfigError(f"residual_order must be 'reference', 'dgsct' or 'paper', got {residual_order!r}")
        self.host = host
        self.residual_order = _ORDERS.get(residual_order) if residual_order else None
        layer_dims = [(bl["video_dim"], bl["audio_dim"]) for bl in banks["causal"].layers] if gate else None
        if gate is None and beta is None and weights is None:
            beta = 0.0
        self.mixer = PerceptionModeMixer(banks, beta, weights, modality, gate, layer_dims)
        self.train(host.training)  # an ensemble of an eval-mode host starts in eval mode (banks included)

    @property
    def modality(self) -> str:
        return self.mixer.modality

    def set_beta(self, beta: float | Mapping[str, float], modality: str | None = None) -> PerceptionModeEnsemble:
        """Set β (two banks) and optionally the modality setup; returns ``self``."""
        self.mixer.set_weights(beta=beta, modality=modality)
        return self

    def set_weights(self, weights: Mapping, modality: str | None = None) -> PerceptionModeEnsemble:
        """Set simplex weights over the banks; returns ``self``."""
        self.mixer.set_weights(weights=weights, modality=modality)
        return self

    def train(self, mode: bool = True):
        super().train(mode)
        self.host.train(mode)  # keeps the host's frozen backbones in eval mode
        return self

    @contextlib.contextmanager
    def _order(self):
        if self.residual_order is None or self.residual_order == self.host.residual_order:
            yield
            return
        saved = self.host.residual_order
        self.host.residual_order = self.residual_order
        try:
            yield
        finally:
            self.host.residual_order = saved

    def input_settings(self) -> dict:
        """The host's input settings."""
        return self.host.input_cfg

    @property
    def weights_source(self) -> str:  # type: ignore[override]
        """The host's weights source."""
        return self.host.weights_source

    def forward_features(self, video: torch.Tensor, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        """The host's pooled features with the mixed adapters (``video_pooled`` / ``audio_pooled``)."""
        with self._order():
            return self.host.forward_features(video, audio, residual_fn=self.mixer.residual)

    def forward_head(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The host's temporal module and CMBS head."""
        return self.host.forward_head(features)

    def forward(self, video: torch.Tensor, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        """Score clips with the mixed adapters: the host's output dict (``event_scores`` (B, K), ``probs``, ...)."""
        return self.forward_head(self.forward_features(video, audio))

    def decide(self, outputs: dict[str, torch.Tensor], threshold: float = 0.5) -> torch.Tensor:
        """(B, T) per-second AVE class (background = K)."""
        return ave_decision(outputs["is_event"], outputs["event_scores"], threshold)


class FinalEmbeddingEnsemble(AVModel):
    """Table 4 baseline "ensemble of final embedding": two full models, their temporal-module outputs
    mixed as ``β·f_r + (1−β)·f_c`` (streams in ``modality``), then the causal model's CMBS head.

    ``forward(video, audio)`` runs both hosts (two backbone passes) and returns the causal host's
    output layout (``event_scores`` (B, K), ``is_event`` (B, T), ``probs``, ...).
    """

    task = "ave"

    def __init__(self, causal: nn.Module, reduced: nn.Module, beta: float = 0.0, modality: str = "av"):
        super().__init__()
        if modality not in ("a", "v", "av"):
            raise ConfigError(f"modality must be 'a', 'v' or 'av', got {modality!r}")
        self.causal, self.reduced, self.modality = causal, reduced, modality
        self.set_beta(beta)
        self.train(causal.training)

    def set_beta(self, beta: float, modality: str | None = None) -> FinalEmbeddingEnsemble:
        if not 0.0 <= float(beta) <= 1.0:
            raise ConfigError(f"beta must lie in [0, 1], got {beta}")
        self.beta = float(beta)
        self.modality = modality or self.modality
        return self

    def input_settings(self) -> dict:
        """The causal host's input settings."""
        return self.causal.input_cfg

    def forward_features(self, video: torch.Tensor, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        """Both hosts up to their temporal modules: the causal host's pooled features and temporal
        outputs, with ``video_feature`` / ``audio_feature`` (B, T, D) mixed."""
        pooled_c = self.causal.forward_features(video, audio)
        out_c = self.causal.temporal(**_pooled(pooled_c))
        out_r = self.reduced.temporal(**_pooled(self.reduced.forward_features(video, audio)))
        out = {**pooled_c, **out_c}
        for key, flag in (("video_feature", "v"), ("audio_feature", "a")):
            if flag in self.modality:
                out[key] = self.beta * out_r[key] + (1 - self.beta) * out_c[key]
        return out

    def forward_head(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The causal host's CMBS head on the mixed features."""
        return self.causal.score_segments(features)

    def forward(self, video: torch.Tensor, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        """Both hosts, temporal features mixed, the causal head: the causal host's output layout."""
        return self.forward_head(self.forward_features(video, audio))

    def decide(self, outputs: dict[str, torch.Tensor], threshold: float = 0.5) -> torch.Tensor:
        """(B, T) per-second AVE class (background = K)."""
        return ave_decision(outputs["is_event"], outputs["event_scores"], threshold)


def _pooled(features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {"video": features["video_pooled"], "audio": features["audio_pooled"]}


def final_embedding_ensemble(
    causal_host: nn.Module, reduced_host: nn.Module, beta: float = 0.0, modality: str = "av"
) -> FinalEmbeddingEnsemble:
    """The final-embedding baseline (Table 4 rows 3–4; reference ``EnsembleEmbedding``)."""
    return FinalEmbeddingEnsemble(causal_host, reduced_host, beta, modality)


def seed_ensemble(host: nn.Module, second_causal_bank: nn.Module, beta: float = 0.0, modality: str = "av"):
    """Table 4 "ensemble of adapters, AVE different seed": EoPMA whose second bank is another causal bank."""
    return PerceptionModeEnsemble(host, {"causal": host.adapters, "seed": second_causal_bank}, beta, modality)


def reduced_alone(host: nn.Module, reduced_bank: nn.Module) -> nn.Module:
    """The reduced-tuned adapters alone with the host's AVE temporal module and head (a copy of the
    host with ``adapters`` swapped; the backbones and heads are shared, not copied)."""
    if hasattr(host.adapters, "same_layout") and not host.adapters.same_layout(reduced_bank):
        raise ConfigError("the reduced bank does not have the host's adapter layout")
    swapped = copy.copy(host)  # shallow: shares every sub-module and tensor, but owns its module/hook tables
    swapped.__dict__.update({k: copy.copy(v) for k, v in vars(host).items() if isinstance(v, dict)})
    swapped._modules["adapters"] = reduced_bank
    return swapped


# -- β sweep -------------------------------------------------------------------------------------
def _ave_counts(outputs: dict[str, torch.Tensor], target: torch.Tensor) -> tuple[int, int]:
    """Correct / total segments of the AVE rule (target (B, T) class index, background = K)."""
    pred = ave_decision(outputs["is_event"], outputs["event_scores"])
    if target.dim() == 3:
        target = target.argmax(-1)
    return int((pred == target.to(pred.device)).sum()), target.numel()


def _clip_counts(outputs: dict[str, torch.Tensor], target: torch.Tensor) -> tuple[int, int]:
    pred = outputs["event_scores"].argmax(-1)
    return int((pred == target.to(pred.device)).sum()), target.numel()


_METRICS = {"ave": _ave_counts, "clip": _clip_counts}


@dataclass
class BetaSweep:
    """Accuracy per β (one curve of the seeds' Figure 8)."""

    betas: list[float]
    accuracies: list[float]
    label: str = ""
    metric: str = "ave"
    extra: dict = field(default_factory=dict)

    @property
    def best_index(self) -> int:
        return max(range(len(self.accuracies)), key=lambda k: (self.accuracies[k], -k))

    @property
    def best_beta(self) -> float:
        return self.betas[self.best_index]

    @property
    def best_accuracy(self) -> float:
        return self.accuracies[self.best_index]

    @property
    def baseline_accuracy(self) -> float | None:
        """Accuracy at β = 0 (the host), if swept."""
        return self.accuracies[self.betas.index(0.0)] if 0.0 in self.betas else None

    def as_dict(self) -> dict:
        return {
            "label": self.label, "metric": self.metric, "betas": self.betas, "accuracies": self.accuracies,
            "best_beta": self.best_beta, "best_accuracy": self.best_accuracy,
        }


@torch.no_grad()
def sweep_beta(
    model: nn.Module,
    batches: Iterable,
    betas: Sequence[float] = REFERENCE_BETAS,
    *,
    metric: str | Callable[[dict, torch.Tensor], tuple[int, int]] = "ave",
    label: str = "",
) -> BetaSweep:
    """Accuracy of an ensemble for every β.

    Args:
        model: anything with ``set_beta(beta)`` and ``forward(video, audio) -> dict``
            (:class:`PerceptionModeEnsemble`, :class:`FinalEmbeddingEnsemble`).
        batches: a re-iterable of ``(video, audio, target)`` (or dicts with those keys); ``target``
            (B, T) AVE segment labels for ``metric="ave"``, (B,) clip labels for ``"clip"``.
        betas: the grid (default 0:0.001:0.039).
        metric: ``"ave"`` (segment accuracy, background = K), ``"clip"`` (argmax of ``event_scores``) or
            ``fn(outputs, target) -> (correct, total)``.
        label: curve name (Figure 8 style, e.g. ``"PT_av_a"``).

    The model's β is restored afterwards; eval mode is used.
    """
    count = _METRICS[metric] if isinstance(metric, str) else metric
    saved_beta = getattr(getattr(model, "mixer", None), "stream_weights", None)
    saved_fe = getattr(model, "beta", None) if isinstance(model, FinalEmbeddingEnsemble) else None
    was_training = model.training
    model.eval()
    accs = []
    try:
        for beta in betas:
            model.set_beta(float(beta))
            correct = total = 0
            for batch in batches:
                if isinstance(batch, Mapping):
                    video, audio, target = batch["video"], batch["audio"], batch["target"]
                else:
                    video, audio, target = batch
                c, n = count(model(video, audio), torch.as_tensor(target))
                correct, total = correct + c, total + n
            if total == 0:
                raise ValueError("sweep_beta got no batches")
            accs.append(correct / total)
    finally:
        if saved_beta is not None:
            model.mixer.stream_weights = saved_beta
        if saved_fe is not None:
            model.set_beta(saved_fe)
        model.train(was_training)
    return BetaSweep([float(b) for b in betas], accs, label, metric if isinstance(metric, str) else "custom")
