"""Timeline plot of a :class:`avperceive.analysis.describe.Description` (needs the ``plot`` extra).

Rows, sharing the time axis: waveform with the audio onsets; log-mel spectrogram; audio onset
envelope and visual motion energy with the motion peaks; and, in its own panel, the
audio-video cross-correlation against lag with the chosen lag. matplotlib is imported only
when a plot is drawn.
"""

from __future__ import annotations

import os

import torch

from ..errors import ConfigError
from ..signal.spectral import melspectrogram, power_to_db

__all__ = ["plot_description"]


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as err:  # the 'plot' extra is not installed
        raise ConfigError("plotting needs matplotlib: pip install 'avperceive[plot]'") from err
    return plt


def plot_description(description, path: str | os.PathLike | None = None, *, width: float = 10.0):
    """Draw the description's timeline; save it to ``path`` (PNG, SVG, PDF...) if given.

    Returns:
        the matplotlib ``Figure``.
    """
    plt = _pyplot()
    tl = description.timeline
    has_audio = "wave" in tl
    has_motion = "motion" in tl
    has_corr = "av_corr" in tl
    rows = (2 if has_audio else 0) + (1 if has_audio or has_motion else 0) + (1 if has_corr else 0)
    if rows == 0:
        raise ValueError("the description holds no timeline to plot")
    fig, axes = plt.subplots(rows, 1, figsize=(width, 1.9 * rows + 0.6), squeeze=False)
    axes = list(axes[:, 0])
    start, duration = tl["start"], tl["duration"]
    span = (start, start + duration)
    row = 0
    if has_audio:
        wave, sr = tl["wave"], tl["sample_rate"]
        t = start + torch.arange(wave.numel(), dtype=torch.float64) / sr
        ax = axes[row]
        ax.plot(t.numpy(), wave.numpy(), lw=0.5, color="0.3")
        for o in description.audio_onsets:
            ax.axvline(o, color="tab:red", lw=0.8, alpha=0.8)
        ax.set_ylabel("waveform")
        ax.set_title(f"{os.path.basename(description.path or 'clip')}: {description.perception_type} "
                     f"({', '.join(f'{k} {v:.2f}' for k, v in description.scores.items())}); red = audio onsets",
                     fontsize=9)
        ax.set_xlim(*span)
        row += 1
        hop = max(1, round(sr * 0.01))
        mel = power_to_db(melspectrogram(wave.float(), sr, n_fft=4 * hop, hop_length=hop, n_mels=64), top_db=80.0)
        ax = axes[row]
        ax.imshow(mel.numpy(), origin="lower", aspect="auto", cmap="magma",
                  extent=(start, start + mel.shape[-1] * hop / sr, 0, mel.shape[0]))
        ax.set_ylabel("mel band")
        ax.set_xlim(*span)
        row += 1
    ax = axes[row]
    if has_audio:
        env = tl["onset_env"]
        env = env / env.max().clamp(min=1e-9)
        ax.plot(tl["env_times"].numpy(), env.numpy(), lw=0.8, label="audio onset envelope")
    if has_motion:
        m = tl["motion"]
        ax.plot(tl["motion_times"].numpy(), (m / m.max().clamp(min=1e-9)).numpy(), lw=1.0, color="tab:green",
                marker=".", ms=3, label="motion energy")
        for p in description.motion_peaks:
            ax.axvline(p, color="tab:green", lw=0.6, ls="--", alpha=0.7)
    ax.set_ylabel("normalised")
    ax.set_xlim(*span)
    ax.legend(loc="upper right", fontsize=7)
    row += 1
    axes[row - 1].set_xlabel("time (s)")
    if has_corr:
        ax = axes[row]
        ax.plot((1000 * tl["av_lags"]).numpy(), tl["av_corr"].numpy(), color="tab:purple")
        sync = description.av_sync
        ax.axvline(1000 * sync.lag_s, color="k", lw=0.8, ls="--")
        ax.set_xlabel("lag (ms): sound after picture")
        ax.set_ylabel("AV correlation")
        ax.set_title(f"audio-video sync: lag {1000 * sync.lag_s:+.0f} ms, strength {sync.strength:.2f}", fontsize=9)
    fig.tight_layout()
    if path is not None:
        fig.savefig(os.fspath(path), dpi=110)
        plt.close(fig)
    return fig
