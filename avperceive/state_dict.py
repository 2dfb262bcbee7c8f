"""State-dict rules in one place: strict loading and prefix stripping.

A bottom-layer module (imports only torch and :mod:`avperceive.errors`) used by the hub
(``from_pretrained``, the converters), by ``nn.adapter_bank`` and by ``avperceive convert``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

from .errors import CheckpointError

__all__ = ["load_state_dict_strict", "strip_prefix"]


def load_state_dict_strict(
    module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], *, source: str = ""
) -> None:
    """Load ``state_dict`` into ``module``; any missing or unexpected key or shape mismatch raises.

    Args:
        module: the model to fill (in place).
        state_dict: ``{key: tensor}``.
        source: where the tensors come from (a file), named in the error.

    Raises:
        CheckpointError: naming the source, every missing and unexpected key and every shape
            mismatch (``key (checkpoint shape vs model shape)``); nothing is loaded then.
    """
    own = module.state_dict()
    missing = sorted(k for k in own if k not in state_dict)
    unexpected = sorted(k for k in state_dict if k not in own)
    mismatched = [
        (k, tuple(state_dict[k].shape), tuple(own[k].shape))
        for k in sorted(own)
        if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or mismatched:
        where = f"{source}: weights" if source else "weights"
        raise CheckpointError(
            f"{where} do not fit {type(module).__name__}", missing=missing, unexpected=unexpected,
            mismatched=mismatched,
        )
    module.load_state_dict(dict(state_dict), strict=True)


def strip_prefix(
    state_dict: Mapping[str, torch.Tensor],
    prefixes: Iterable[str],
    *,
    always: Iterable[str] = (),
    force: bool = False,
    owner: str = "the target",
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Remove the first of ``prefixes`` that the keys carry (``module.`` of DataParallel, ``model.``
    of Lightning, ``swin.`` of a wrapper...).

    A prefix is taken when every key has it; a prefix in ``always`` (or any, with ``force``) is
    taken when some keys have it, and the keys without it are returned as dropped.

    Returns:
        ``(state_dict, dropped)``: the stripped keys, and ``{key: reason}`` for keys left out.
    """
    always = tuple(always)
    for prefix in prefixes:
        hits = [k for k in state_dict if k.startswith(prefix)]
        if hits and (len(hits) == len(state_dict) or prefix in always or force):
            kept = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
            dropped = {
                k: f"not part of {owner} (no {prefix!r} prefix)" for k in state_dict if not k.startswith(prefix)
            }
            return kept, dropped
    return dict(state_dict), {}
