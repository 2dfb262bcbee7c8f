"""What the converters of the two windowed transformers (Swin-V2, HTS-AT) share.

Both reference layouts store derived buffers (``*.attn_mask`` of the shifted-window configuration,
Swin eq. 4's ``*.relative_position_index``) that our backbones rebuild; a stored copy is checked
against the definition in :mod:`avperceive.backbones.window_ops` and then dropped. Both lay out
their stages as ``stages.{s}.blocks.{b}.*`` once renamed, so the depths and head counts are read
from the keys the same way.
"""

from __future__ import annotations

import math

import torch

from ...backbones.window_ops import relative_position_index, shifted_window_mask
from ...errors import CheckpointError

__all__ = ["check_window_buffer", "stage_depths_and_heads", "require_patch_embed"]

#: drop reason of a derived buffer whose values cannot be read (``device="meta"``).
META_BUFFER = "derived buffer, rebuilt by the model (not checked: meta tensor)"
#: drop reason of a derived buffer found equal to our definition.
CHECKED_BUFFER = "derived buffer, rebuilt by the model (checked equal)"


def _isqrt_exact(n: int, what: str) -> int:
    root = math.isqrt(n)
    if root * root != n:
        raise CheckpointError(f"{what}: {n} is not a square window area")
    return root


def check_window_buffer(key: str, value: torch.Tensor, family: str) -> str | None:
    """Compare a stored ``attn_mask`` / ``relative_position_index`` with our definition.

    Args:
        key: the checkpoint key (its last component names the buffer).
        value: the stored tensor: ``relative_position_index`` ``(ws*ws, ws*ws)``; ``attn_mask``
            ``(num_windows, ws*ws, ws*ws)`` of a square ``(side, side)`` grid shifted by ``ws // 2``.
        family: named in the error (``"Swin-V2"``, ``"HTS-AT"``).

    Returns:
        The drop reason, or ``None`` when ``key`` is neither buffer.

    Raises:
        CheckpointError: the stored buffer differs from the definition (not a standard checkpoint).
    """
    name = key.rsplit(".", 1)[-1]
    if name not in ("relative_position_index", "attn_mask"):
        return None
    if value.is_meta:
        return META_BUFFER
    if name == "relative_position_index":
        ws = _isqrt_exact(value.shape[0], key)
        ok = torch.equal(value.long(), relative_position_index((ws, ws)))
    else:
        ws = _isqrt_exact(value.shape[1], key)
        side = ws * _isqrt_exact(value.shape[0], key)
        ours = shifted_window_mask((side, side), (ws, ws), (ws // 2, ws // 2))
        ok = ours is not None and torch.equal(value.float(), ours)
    if not ok:
        raise CheckpointError(f"{key}: stored buffer differs from the model's own definition; not a standard {family}")
    return CHECKED_BUFFER


def stage_depths_and_heads(
    sd: dict[str, torch.Tensor], per_head_param: str, head_dim: int
) -> tuple[list[int], list[int]]:
    """Blocks per stage and attention heads per stage, read from ``stages.{s}.blocks.{b}.attn.*`` keys.

    Args:
        per_head_param: the attention parameter with one entry per head (``"logit_scale"`` of
            Swin-V2, ``(heads, 1, 1)``; ``"relative_position_bias_table"`` of Swin-V1 / HTS-AT,
            ``(table, heads)``).
        head_dim: the dimension of that parameter that counts the heads.
    """
    depths, heads = [], []
    stage = 0
    while f"stages.{stage}.blocks.0.attn.{per_head_param}" in sd:
        block = 0
        while f"stages.{stage}.blocks.{block}.attn.{per_head_param}" in sd:
            block += 1
        depths.append(block)
        heads.append(int(sd[f"stages.{stage}.blocks.0.attn.{per_head_param}"].shape[head_dim]))
        stage += 1
    return depths, heads


def require_patch_embed(sd: dict[str, torch.Tensor], kind: str, family: str) -> None:
    """Raise when the patch embedding (present in every windowed transformer) is missing."""
    if "patch_embed.proj.weight" not in sd:
        raise CheckpointError(
            f"{kind}: no 'patch_embed.proj.weight' key; not a {family} state dict", missing=["patch_embed.proj.weight"]
        )
