"""Per-second prediction for AVE-style models (DG-SCT, LAVisH): one shared ``predict_segments``."""

from __future__ import annotations

import torch

__all__ = ["SegmentPredictionMixin"]


class SegmentPredictionMixin:
    """Adds ``predict_segments`` to a model that defines ``decide(outputs) -> (B, T)``."""

    @torch.no_grad()
    def predict_segments(self, video: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """(B, T) int64 per-second class index (background = ``num_classes``), in eval mode."""
        was_training = self.training
        self.eval()
        try:
            return self.decide(self(video, audio))
        finally:
            self.train(was_training)
