"""Objectives of audio-visual correlation learning (the families of Vilaça, Yu & Viana's survey).

One file per family; each module docstring gives the formula (as corrected from the survey's
printed equations), the shapes and the masking of padded items:

* :mod:`.infonce` -- symmetric InfoNCE (fixed or learnable temperature) and MIL-NCE;
* :mod:`.ranking` -- bidirectional hinge ranking and masked-margin softmax (fixed, scheduled,
  adaptive margin);
* :mod:`.triplet` -- triplet loss with batch-hard and semi-hard mining;
* :mod:`.correspondence` -- AV correspondence (shuffled negatives, any pair head such as SAVC's)
  and AV synchronisation (temporally shifted negatives, offset scoring);
* :mod:`.dcca` -- deep CCA; :mod:`.distillation` -- cross-modal knowledge distillation;
  :mod:`.center` -- center loss;
* :mod:`.gather` -- cross-rank negatives under DDP (gradients into the local part).

Every loss computes its logits / distances in float32 whatever the input dtype.
"""

from .center import CenterLoss, center_loss
from .correspondence import (
    PairClassification,
    avc_loss,
    avc_pairs,
    sync_loss,
    sync_offset_scores,
    sync_windows,
)
from .dcca import canonical_correlations, dcca_loss
from .distillation import cross_modal_distillation, distillation_kl, distillation_mse
from .gather import distributed_rank_and_world, gather_batch
from .infonce import InfoNCELoss, LogitScale, MILNCELoss, info_nce, mil_nce
from .ranking import (
    MaskedMarginSoftmaxLoss,
    adaptive_margin,
    hinge_ranking_loss,
    masked_margin_softmax,
    negative_mask,
    scheduled_margin,
)
from .similarity import pairwise_similarity
from .triplet import pairwise_distance, triplet_loss

__all__ = [
    "info_nce",
    "mil_nce",
    "LogitScale",
    "InfoNCELoss",
    "MILNCELoss",
    "hinge_ranking_loss",
    "masked_margin_softmax",
    "scheduled_margin",
    "adaptive_margin",
    "MaskedMarginSoftmaxLoss",
    "negative_mask",
    "triplet_loss",
    "pairwise_distance",
    "PairClassification",
    "avc_pairs",
    "avc_loss",
    "sync_windows",
    "sync_loss",
    "sync_offset_scores",
    "dcca_loss",
    "canonical_correlations",
    "distillation_mse",
    "distillation_kl",
    "cross_modal_distillation",
    "center_loss",
    "CenterLoss",
    "gather_batch",
    "distributed_rank_and_world",
    "pairwise_similarity",
]
