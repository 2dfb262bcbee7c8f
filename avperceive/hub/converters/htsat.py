"""Converter ``"htsat"``: official HTS-AT checkpoints -> :class:`avperceive.backbones.HTSAT`.

The official files (``HTSAT_AudioSet_Saved_*.ckpt``) are Lightning checkpoints whose
``state_dict`` keys start with ``sed_model.``; DG-SCT stores the same keys under ``htsat.``.
Either prefix is stripped (in a whole DG-SCT state dict only the ``htsat.`` keys are taken).
``layers.{s}`` becomes ``stages.{s}``; everything else keeps its name.

Dropped on purpose, each listed in ``dropped`` with the reason:

* ``spectrogram_extractor.stft.conv_{real,imag}.weight``, ``logmel_extractor.melW``: the fixed
  torchlibrosa STFT kernels and mel filterbank; our front-end rebuilds them (checked against the
  definitions when the tensors hold data);
* ``*.attn_mask``, ``*.relative_position_index``: derived buffers, rebuilt by the model and
  checked equal;
* ``head.{weight,bias}``: the Linear(527, 527) that the token-semantic head never uses.
"""

from __future__ import annotations

import math

import torch

from ...errors import CheckpointError
from ...signal.spectral import mel_filterbank
from ...state_dict import strip_prefix
from ..convert import ConvertedCheckpoint, register_converter
from .windowed import check_window_buffer, require_patch_embed, stage_depths_and_heads

__all__ = ["convert_htsat", "torchlibrosa_stft_kernels"]

PREFIXES = ("sed_model.", "htsat.", "model.", "module.")


def torchlibrosa_stft_kernels(n_fft: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed STFT convolution kernels of torchlibrosa (periodic Hann), ``(n_fft/2+1, 1, n_fft)`` each."""
    n = torch.arange(n_fft, dtype=torch.float64)
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
    w = 0.5 - 0.5 * torch.cos(2 * math.pi * n / n_fft)
    arg = 2 * math.pi * k * n / n_fft
    return (w * torch.cos(arg))[:, None].float(), (-w * torch.sin(arg))[:, None].float()


def _strip(sd: dict[str, torch.Tensor], only: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    return strip_prefix(sd, (only,) if only else PREFIXES, always=("sed_model.", "htsat."), force=bool(only),
                        owner="the HTS-AT network")


def _check(key: str, ok: bool) -> str:
    if not ok:
        raise CheckpointError(f"htsat: stored {key} differs from its definition; not a standard HTS-AT checkpoint")
    return "fixed/derived tensor, rebuilt by avperceive (checked equal)"


def _drop_reason(key: str, value: torch.Tensor, sample_rate: int, fmin: float, fmax: float) -> str | None:
    meta = value.is_meta
    if key.startswith("spectrogram_extractor.stft.conv_"):
        if meta:
            return "fixed STFT kernel, rebuilt by the front-end (not checked: meta tensor)"
        real, imag = torchlibrosa_stft_kernels(value.shape[-1])
        return _check(key, torch.allclose(value.float(), real if "conv_real" in key else imag, atol=1e-6, rtol=0))
    if key == "logmel_extractor.melW":
        if meta:
            return "fixed mel filterbank, rebuilt by the front-end (not checked: meta tensor)"
        n_fft = 2 * (value.shape[0] - 1)
        ours = mel_filterbank(sample_rate, n_fft, value.shape[1], fmin, fmax, htk=False, norm="slaney").T
        return _check(key, torch.allclose(value.float(), ours, atol=1e-6, rtol=1e-4))
    if key in ("head.weight", "head.bias"):
        return "unused by the token-semantic head (tscam) of the reference"
    return check_window_buffer(key, value, "HTS-AT")


def convert_htsat_with(
    sd: dict[str, torch.Tensor],
    sample_rate: int = 32000,
    fmin: float = 50.0,
    fmax: float = 14000.0,
    prefix: str | None = None,
) -> ConvertedCheckpoint:
    """:func:`convert_htsat` with options: another front-end (for the ``melW`` check: sample rate,
    fmin, fmax) and an explicit key ``prefix`` to take (default: detect ``sed_model.``/``htsat.``/...)."""
    sd, dropped = _strip(sd, prefix)
    require_patch_embed(sd, "htsat", "HTS-AT")
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        reason = _drop_reason(key, value, sample_rate, fmin, fmax)
        if reason is not None:
            dropped[key] = reason
        elif key.startswith("layers."):
            out["stages." + key[len("layers.") :]] = value
        else:
            out[key] = value
    depths, heads = stage_depths_and_heads(out, "relative_position_bias_table", head_dim=1)
    config = {"embed_dim": int(out["patch_embed.proj.weight"].shape[0]), "depths": depths, "num_heads": heads}
    if "tscam_conv.weight" in out:
        config["num_classes"] = int(out["tscam_conv.weight"].shape[0])
    if "bn0.weight" in out:
        config["n_mels"] = int(out["bn0.weight"].shape[0])
    return ConvertedCheckpoint(out, dropped, config)


@register_converter(
    "htsat",
    "official HTS-AT checkpoint (Lightning, state_dict under sed_model.) -> HTSAT",
    architecture="avperceive.backbones.htsat:HTSAT",
)
def convert_htsat(sd: dict[str, torch.Tensor]) -> ConvertedCheckpoint:
    """Official HTS-AT checkpoint (Lightning, ``state_dict`` under ``sed_model.``) -> ``HTSAT``."""
    return convert_htsat_with(sd)
