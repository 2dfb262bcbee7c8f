"""Converter ``"swinv2-timm"``: timm Swin-V2 state dicts -> :class:`avperceive.backbones.SwinV2`.

Accepts both published layouts, detected from the keys:

* timm 0.6 / original Microsoft (as stored under ``swin.`` in the DG-SCT checkpoint):
  ``layers.{s}.downsample.*`` at the END of stage ``s``; persistent ``attn_mask`` buffers;
  ``head.{weight,bias}``;
* timm >= 0.9 (``swinv2_large_window12_192.ms_in22k``): ``layers.{s+1}.downsample.*`` at the START
  of stage ``s + 1``; ``head.fc.{weight,bias}``.

Ours keeps the 0.6 placement under ``stages.{s}``. The derived buffers ``attn_mask``,
``relative_position_index`` and ``relative_coords_table`` are rebuilt by the model; stored copies
are checked against the model's definition (a mismatch raises) and listed in ``dropped``.
A leading ``swin.``, ``model.``, ``module.`` or ``backbone.`` prefix is stripped; in a whole
DG-SCT state dict only the ``swin.`` keys are taken and the rest listed as dropped.
"""

from __future__ import annotations

import re

import torch

from ...backbones.window_ops import swinv2_relative_coords_table
from ...errors import CheckpointError
from ...state_dict import strip_prefix
from ..convert import ConvertedCheckpoint, register_converter
from .windowed import CHECKED_BUFFER, META_BUFFER, check_window_buffer, require_patch_embed, stage_depths_and_heads

__all__ = ["convert_swinv2_timm"]

KNOWN_PREFIXES = ("swin.", "model.", "module.", "backbone.")
DERIVED_BUFFERS = ("attn_mask", "relative_position_index", "relative_coords_table")


def _strip_swin(
    sd: dict[str, torch.Tensor], prefixes=KNOWN_PREFIXES, force: bool = False
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The first known prefix found on the keys removed (``swin.`` even when only some keys carry it)."""
    return strip_prefix(sd, prefixes, always=("swin.",), force=force, owner="the Swin-V2 backbone")


def _check_buffer(key: str, value: torch.Tensor) -> str:
    """Compare a stored derived buffer with our definition; return the drop reason."""
    if key.rsplit(".", 1)[-1] != "relative_coords_table":
        return check_window_buffer(key, value, "Swin-V2")
    if value.is_meta:
        return META_BUFFER
    ws = (value.shape[1] + 1) // 2, (value.shape[2] + 1) // 2
    if not torch.allclose(value.float(), swinv2_relative_coords_table(ws), atol=1e-6):
        return "derived buffer, rebuilt by the model (normalised by a pretrained window: set pretrained_window_sizes)"
    return CHECKED_BUFFER


@register_converter(
    "swinv2-timm",
    "timm Swin-V2 (0.6 layout, as in DG-SCT's swin.*, or >= 0.9 layout) -> SwinV2",
    architecture="avperceive.backbones.swinv2:SwinV2",
)
def convert_swinv2_timm(sd: dict[str, torch.Tensor], prefix: str | None = None) -> ConvertedCheckpoint:
    """timm Swin-V2 (0.6 layout, as in DG-SCT's ``swin.*``, or >= 0.9 layout) -> ``SwinV2``.

    ``prefix``: take only the keys under this prefix (e.g. ``"visual.trunk."``); by default a known
    prefix (``swin.``, ``model.``, ``module.``, ``backbone.``) is detected and stripped.
    """
    sd, dropped = _strip_swin(sd, (prefix,) if prefix else KNOWN_PREFIXES, force=bool(prefix))
    require_patch_embed(sd, "swinv2-timm", "Swin-V2")
    layout_06 = "layers.0.downsample.reduction.weight" in sd
    out: dict[str, torch.Tensor] = {}
    down = re.compile(r"^layers\.(\d+)\.downsample\.(.+)$")
    for key, value in sd.items():
        name = key.rsplit(".", 1)[-1]
        if name in DERIVED_BUFFERS:
            dropped[key] = _check_buffer(key, value)
            continue
        if name == "k_bias":
            dropped[key] = "constant zero key bias (not a parameter)"
            continue
        m = down.match(key)
        if m and not layout_06:
            stage = int(m.group(1)) - 1
            if stage < 0:
                raise CheckpointError(f"swinv2-timm: {key} in a >= 0.9 layout (stage 0 has no downsample)")
            out[f"stages.{stage}.downsample.{m.group(2)}"] = value
        elif key.startswith("layers."):
            out["stages." + key[len("layers.") :]] = value
        elif key.startswith("head.fc."):
            out["head." + key[len("head.fc.") :]] = value
        else:
            out[key] = value
    config = _infer_config(out)
    return ConvertedCheckpoint(out, dropped, config)


def _infer_config(sd: dict[str, torch.Tensor]) -> dict:
    """Constructor arguments readable from the shapes (embed_dim, depths, num_heads, patch, classes)."""
    w = sd["patch_embed.proj.weight"]
    depths, heads = stage_depths_and_heads(sd, "logit_scale", head_dim=0)
    cfg = {"embed_dim": int(w.shape[0]), "in_chans": int(w.shape[1]), "patch_size": int(w.shape[2])}
    if depths:
        cfg.update(depths=depths, num_heads=heads)
    cfg["num_classes"] = int(sd["head.weight"].shape[0]) if "head.weight" in sd else 0
    return cfg
