"""Checkpoint converters: reference layouts -> avperceive state dicts.

``convert_checkpoint(kind, path_or_state_dict)`` looks ``kind`` up in a registry that the
converter modules fill with :func:`register_converter`. Each converter takes a plain
``dict[str, Tensor]`` in the reference layout and returns a :class:`ConvertedCheckpoint`
(the state dict in our layout, plus the keys it dropped on purpose and why).

Legacy files are read with ``torch.load(weights_only=True)`` only: nothing is unpickled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import CheckpointError

__all__ = ["ConvertedCheckpoint", "register_converter", "convert_checkpoint", "list_converters", "read_checkpoint"]


@dataclass
class ConvertedCheckpoint:
    """Result of a conversion.

    Attributes:
        state_dict: tensors in avperceive's layout.
        dropped: ``{reference_key: reason}`` for every key left out on purpose.
        config: constructor arguments inferred from the checkpoint (may be empty).
    """

    state_dict: dict[str, torch.Tensor]
    dropped: dict[str, str] = field(default_factory=dict)
    config: dict = field(default_factory=dict)


_CONVERTERS: dict[str, tuple[Callable[[dict[str, torch.Tensor]], ConvertedCheckpoint], str]] = {}


def register_converter(kind: str, description: str = ""):
    """Decorator registering ``fn(state_dict) -> ConvertedCheckpoint`` under ``kind``."""

    def deco(fn):
        if kind in _CONVERTERS:
            raise ValueError(f"converter {kind!r} registered twice")
        _CONVERTERS[kind] = (fn, description or (fn.__doc__ or "").strip().splitlines()[0])
        return fn

    return deco


def list_converters() -> dict[str, str]:
    """``{kind: one-line description}`` of every registered converter."""
    _import_converters()
    return {k: d for k, (_, d) in sorted(_CONVERTERS.items())}


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a reference checkpoint file into a flat ``{key: tensor}`` dict, never unpickling code.

    ``.safetensors`` is read directly; ``.pt``/``.pth``/``.pth.tar``/``.ckpt``/``.bin`` through
    ``torch.load(weights_only=True)``. A ``state_dict``/``model`` entry is unwrapped.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        raise CheckpointError(f"{path}: cannot be read with torch.load(weights_only=True): {err}") from err
    return unwrap_state_dict(obj, source=str(path))


def unwrap_state_dict(obj, *, source: str = "") -> dict[str, torch.Tensor]:
    """Find the tensor dict inside a loaded checkpoint object (``state_dict``, ``model`` ...)."""
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model", "model_state_dict", "module"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and any(isinstance(v, torch.Tensor) for v in inner.values()):
                return {k: v for k, v in inner.items() if isinstance(v, torch.Tensor)}
        if any(isinstance(v, torch.Tensor) for v in obj.values()):
            return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    raise CheckpointError(f"{source or 'checkpoint'}: no tensor state dict found")


def _import_converters() -> None:
    # Converter modules register themselves on import.
    from . import converters  # noqa: F401


def convert_checkpoint(kind: str, path_or_state_dict, *, return_report: bool = False):
    """Convert a reference checkpoint (path or state dict) of ``kind`` into avperceive's layout.

    Returns the converted state dict, or the full :class:`ConvertedCheckpoint` with
    ``return_report=True``.
    """
    _import_converters()
    if kind not in _CONVERTERS:
        raise CheckpointError(f"unknown converter kind {kind!r}; known: {', '.join(sorted(_CONVERTERS))}")
    if isinstance(path_or_state_dict, (str, Path)):
        sd = read_checkpoint(path_or_state_dict)
    else:
        sd = dict(path_or_state_dict)
    result = _CONVERTERS[kind][0](sd)
    return result if return_report else result.state_dict
