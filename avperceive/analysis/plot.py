"""Timeline plot of a :class:`avperceive.analysis.describe.Description` (needs the ``plot`` extra).

Rows, sharing the time axis: waveform with the audio onsets; log-mel spectrogram (dB, with a
colour bar); the audio onset envelope with the threshold it had to pass (running median +
``min_flux_db``), the accepted onsets and the *rejected* envelope peaks (with the reason in the
legend), and the visual onset envelope and motion energy with the motion peaks; and, in its
own panel, the audio-video cross-correlation against lag with the chosen lag. matplotlib is
imported only when a plot is drawn.
"""

from __future__ import annotations

import os

import torch

from ..errors import ConfigError
from ..signal.spectral import melspectrogram, power_to_db

__all__ = ["plot_description", "require_matplotlib"]


def require_matplotlib():
    """``matplotlib.pyplot`` with a non-interactive default backend; :class:`ConfigError` if it is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as err:  # the 'plot' extra is not installed
        raise ConfigError("plotting needs matplotlib: pip install 'avperceive[plot]'") from err
    return plt


def _norm(x: torch.Tensor) -> torch.Tensor:
    return x / x.max().clamp(min=1e-9)


def plot_description(description, path: str | os.PathLike | None = None, *, width: float = 10.0):
    """Draw the description's timeline; save it to ``path`` (PNG, SVG, PDF...) if given.

    Returns:
        the matplotlib ``Figure``.

    Raises:
        ConfigError: matplotlib is missing, or ``path`` cannot be written.
    """
    plt = require_matplotlib()
    tl = description.timeline
    has_audio = "wave" in tl
    has_motion = "motion" in tl
    has_corr = "av_corr" in tl
    rows = (2 if has_audio else 0) + (1 if has_audio else 0) + (1 if has_motion else 0) + (1 if has_corr else 0)
    if rows == 0:
        raise ValueError("the description holds no timeline to plot")
    fig, axes = plt.subplots(rows, 1, figsize=(width, 1.9 * rows + 0.6), squeeze=False)
    axes = list(axes[:, 0])
    start, duration = tl["start"], tl["duration"]
    span = (start, start + duration)
    title = (f"{os.path.basename(description.path or 'clip')}: {description.perception_type} "
             f"({', '.join(f'{k} {v:.2f}' for k, v in description.scores.items())})")
    row = 0
    if has_audio:
        wave, sr = tl["wave"], tl["sample_rate"]
        t = start + torch.arange(wave.numel(), dtype=torch.float64) / sr
        ax = axes[row]
        ax.plot(t.numpy(), wave.numpy(), lw=0.5, color="0.3")
        for k, o in enumerate(description.audio_onsets):
            ax.axvline(o, color="tab:red", lw=0.8, alpha=0.8, label="audio onset" if k == 0 else None)
        ax.set_ylabel("waveform")
        ax.set_title(title, fontsize=9)
        ax.set_xlim(*span)
        if description.audio_onsets:
            ax.legend(loc="upper right", fontsize=7)
        row += 1
        hop = max(1, round(sr * 0.01))
        mel = power_to_db(melspectrogram(wave.float(), sr, n_fft=4 * hop, hop_length=hop, n_mels=64), top_db=80.0)
        ax = axes[row]
        image = ax.imshow(mel.numpy(), origin="lower", aspect="auto", cmap="magma",
                          extent=(start, start + mel.shape[-1] * hop / sr, 0, mel.shape[0]))
        bar = fig.colorbar(image, ax=ax, pad=0.01, fraction=0.04)
        bar.set_label("dB", fontsize=8)
        bar.ax.tick_params(labelsize=7)
        ax.set_ylabel("mel band")
        ax.set_xlim(*span)
        row += 1
        ax = axes[row]
        env, times = tl["onset_env"], tl["env_times"].numpy()
        ax.plot(times, env.numpy(), lw=0.8, color="tab:blue", label="onset envelope (flux, dB/band)")
        if "onset_baseline" in tl:
            ax.plot(times, (tl["onset_baseline"] + tl["min_flux_db"]).numpy(), lw=0.8, ls=":", color="0.4",
                    label=f"threshold: running median + {tl['min_flux_db']:g}")
        frame = times[1] - times[0] if len(times) > 1 else 0.01

        def value_at(when: float) -> float:
            return float(env[min(max(int(round((when - start) / frame)), 0), env.numel() - 1)])

        if description.audio_onsets:
            ax.plot(description.audio_onsets, [value_at(o) for o in description.audio_onsets], "v", color="tab:red",
                    ms=5, label="audio onset")
        for marker, reason in zip("xs+", sorted({why for _, why in tl.get("rejected_onsets", [])})):
            when = [o for o, why in tl["rejected_onsets"] if why == reason]
            ax.plot(when, [value_at(o) for o in when], marker, color="0.35", ms=5, ls="none",
                    label=f"rejected peak: {reason}")
        ax.set_ylabel("audio onsets")
        ax.set_xlim(*span)
        ax.legend(loc="upper right", fontsize=7)
        row += 1
    if has_motion:
        ax = axes[row]
        m = tl["motion"]
        ax.plot(tl["motion_times"].numpy(), _norm(m).numpy(), lw=0.8, color="0.6", label="motion energy")
        if "visual_onsets" in tl:
            ax.plot(tl["visual_times"].numpy(), _norm(tl["visual_onsets"]).numpy(), lw=1.0, color="tab:green",
                    marker=".", ms=3, label="visual onset envelope")
        for k, p in enumerate(description.motion_peaks):
            ax.axvline(p, color="tab:green", lw=0.6, ls="--", alpha=0.7, label="motion peak" if k == 0 else None)
        ax.set_ylabel("video (normalised)")
        ax.set_xlim(*span)
        ax.legend(loc="upper right", fontsize=7)
        row += 1
    axes[row - 1].set_xlabel("time (s)")
    if has_corr:
        ax = axes[row]
        ax.plot((1000 * tl["av_lags"]).numpy(), tl["av_corr"].numpy(), color="tab:purple", label="correlation")
        sync = description.av_sync
        ax.axvline(1000 * sync.lag_s, color="k", lw=0.8, ls="--", label=f"lag {1000 * sync.lag_s:+.0f} ms")
        ax.set_xlabel("lag (ms): sound after picture")
        ax.set_ylabel("AV correlation")
        ax.set_title(f"audio-video sync: lag {1000 * sync.lag_s:+.0f} ms, strength {sync.strength:.2f}", fontsize=9)
        ax.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    if path is not None:
        try:
            fig.savefig(os.fspath(path), dpi=110)
        except OSError as err:
            raise ConfigError(f"cannot write the plot to {os.fspath(path)}: {err.strerror or err}") from err
        finally:
            plt.close(fig)
    return fig
