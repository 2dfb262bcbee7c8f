"""Converter ``"mc3-torchvision"``: torchvision's ``mc3_18`` state dict -> :class:`avperceive.backbones.mc3.MC3`.

Our MC3 keeps torchvision's module names (``stem.0``, ``layer1.0.conv1.0``, ``layer2.0.downsample.0`` ...),
so the mapping is the identity on the backbone keys. The converter

* strips a ``module.`` prefix (DataParallel checkpoints);
* drops the Kinetics-400 classifier ``fc.weight`` / ``fc.bias`` (the backbone is a feature extractor);
* refuses the sibling architectures with the same key names: ``r2plus1d_18`` (its stem has
  ``stem.3``) and ``r3d_18`` (3x3x3 kernels in ``layer2``-``layer4``), which would otherwise load
  into the wrong convolutions or fail with a shape error far from the cause;
* infers ``widths`` and ``blocks`` (the :class:`MC3` constructor arguments) into ``config``.
"""

from __future__ import annotations

import re

import torch

from ...errors import CheckpointError
from ...state_dict import strip_prefix
from ..convert import ConvertedCheckpoint, register_converter

__all__ = ["convert_mc3_torchvision"]

_LAYER_KEY = re.compile(r"^layer([1-4])\.(\d+)\.")


@register_converter("mc3-torchvision", "torchvision mc3_18 (Kinetics-400) -> MC3 backbone (fc dropped)")
def convert_mc3_torchvision(state_dict: dict[str, torch.Tensor]) -> ConvertedCheckpoint:
    """torchvision ``mc3_18`` state dict -> :class:`~avperceive.backbones.mc3.MC3` state dict."""
    sd = strip_prefix(state_dict, ("module.",))[0]
    if "stem.0.weight" not in sd:
        raise CheckpointError("not a torchvision video ResNet checkpoint", missing=["stem.0.weight"])
    if "stem.3.weight" in sd:
        raise CheckpointError(
            "this is an R(2+1)D checkpoint (stem.3 present), not MC3-18", unexpected=["stem.3.weight"]
        )
    stem = sd["stem.0.weight"]
    if stem.ndim != 5 or tuple(stem.shape[2:]) != (3, 7, 7):
        raise CheckpointError(
            "stem.0.weight is not a (C, 3, 3, 7, 7) Conv3d kernel",
            mismatched=[("stem.0.weight", tuple(stem.shape), ("C", 3, 3, 7, 7))],
        )
    for key, value in sd.items():
        match = _LAYER_KEY.match(key)
        if match and match.group(1) != "1" and key.endswith("conv1.0.weight") and value.shape[2] != 1:
            raise CheckpointError(
                f"{key} has temporal kernel {value.shape[2]}: an R3D checkpoint, not MC3-18 (1x3x3 in layer2-4)",
                mismatched=[(key, tuple(value.shape), (value.shape[0], value.shape[1], 1, 3, 3))],
            )
    dropped = {k: "Kinetics-400 classifier; MC3 here is a feature extractor" for k in sd if k.startswith("fc.")}
    out = {k: v for k, v in sd.items() if k not in dropped}
    blocks, widths = [], []
    for layer in range(1, 5):
        indices = {int(m.group(2)) for k in out if (m := _LAYER_KEY.match(k)) and m.group(1) == str(layer)}
        if not indices:
            raise CheckpointError(f"no layer{layer} keys: not an MC3-18 checkpoint", missing=[f"layer{layer}.0.*"])
        blocks.append(max(indices) + 1)
        widths.append(int(out[f"layer{layer}.0.conv1.0.weight"].shape[0]))
    return ConvertedCheckpoint(state_dict=out, dropped=dropped, config={"widths": widths, "blocks": blocks})
