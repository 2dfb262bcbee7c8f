"""β vs accuracy curves of EoPMA sweeps (the SoundActions paper's Figure 8; Guo, Tørresen & Jensenius,
TISMIR 2026). matplotlib is imported only when a plot is drawn."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["plot_beta_sweep"]


def plot_beta_sweep(
    sweeps,
    path: str | Path | None = None,
    *,
    baseline: float | None = None,
    ax=None,
    title: str = "EoPMA: accuracy vs beta",
    percent: bool = True,
):
    """Draw one line per :class:`~avperceive.models.eopma.BetaSweep` (β on x, accuracy on y).

    Args:
        sweeps: one sweep or a sequence of them (each ``.betas``, ``.accuracies``, ``.label``).
        path: save the figure there (PNG/PDF by suffix) and return the path; otherwise return the axes.
        baseline: accuracy of the host (β = 0) drawn as a dashed line.
        ax: draw into these matplotlib axes.
        percent: show accuracy in % (as the paper).
    """
    import matplotlib

    if ax is None and path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if not isinstance(sweeps, Sequence):
        sweeps = [sweeps]
    scale = 100.0 if percent else 1.0
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 4))
    for k, s in enumerate(sweeps):
        label = s.label or f"sweep {k}"
        ax.plot(s.betas, [scale * a for a in s.accuracies], marker="o", markersize=3, label=label)
        ax.plot([s.best_beta], [scale * s.best_accuracy], marker="*", markersize=10, color=ax.lines[-1].get_color())
    if baseline is not None:
        ax.axhline(scale * baseline, linestyle="--", color="grey", label="host (beta = 0)")
    ax.set_xlabel("beta (weight of the reduced adapters)")
    ax.set_ylabel("accuracy (%)" if percent else "accuracy")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    if path is None:
        return ax
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    (fig or ax.figure).savefig(path, dpi=120, bbox_inches="tight")
    if fig is not None:
        plt.close(fig)
    return path
