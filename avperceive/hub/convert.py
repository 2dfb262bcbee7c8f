"""Checkpoint converters: reference layouts -> avperceive state dicts.

``convert_checkpoint(kind, path_or_state_dict)`` looks ``kind`` up in a registry that the
converter modules fill with :func:`register_converter`. Each converter takes a plain
``dict[str, Tensor]`` in the reference layout and returns a :class:`ConvertedCheckpoint`
(the state dict in our layout, plus the keys it dropped on purpose and why). A converter may
name the ``architecture`` its output fits (a registered model name such as ``"dgsct-ave"``, or
a class path such as ``"avperceive.nn.adapters:DGSCTAdapter"``); ``avperceive convert`` builds
that target and loads the result strictly before writing it.

Legacy files are read with ``torch.load(weights_only=True)`` only: nothing is unpickled. The
few non-tensor types a PyTorch Lightning ``.ckpt`` holds in its metadata (``AttributeDict``
hyper-parameters, ``argparse.Namespace``, paths, numpy scalars) are allow-listed by name and
rebuilt as harmless stand-ins (``AttributeDict`` -> plain ``dict``); no other global is
accepted.
"""

from __future__ import annotations

import argparse
import io
import pathlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointError, ConfigError

__all__ = [
    "ConvertedCheckpoint",
    "ConverterInfo",
    "register_converter",
    "convert_checkpoint",
    "list_converters",
    "converter_info",
    "read_checkpoint",
    "unwrap_state_dict",
    "LEGACY_SUFFIXES",
]

#: File suffixes that only the converters read (pickle containers, read with weights_only=True).
LEGACY_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".tar", ".pkl")


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


@dataclass(frozen=True)
class ConverterInfo:
    """One registered converter: its ``kind``, function, one-line description and target architecture."""

    kind: str
    fn: Callable[[dict[str, torch.Tensor]], ConvertedCheckpoint]
    description: str
    architecture: str | None = None


_CONVERTERS: dict[str, ConverterInfo] = {}


def register_converter(kind: str, description: str = "", *, architecture: str | None = None):
    """Decorator registering ``fn(state_dict) -> ConvertedCheckpoint`` under ``kind``.

    Args:
        kind: converter name used by :func:`convert_checkpoint` and ``avperceive convert KIND``.
        description: one line (defaults to the first line of the function's docstring).
        architecture: what the converted weights fit: a registered model name (``"dgsct-ave"``)
            or a class path ``"package.module:Class"``; constructor arguments come from
            ``ConvertedCheckpoint.config``. Optional; the CLI also accepts ``--arch``.
    """

    def deco(fn):
        if kind in _CONVERTERS:
            raise ConfigError(f"converter {kind!r} registered twice")
        doc = (fn.__doc__ or "").strip().splitlines()
        _CONVERTERS[kind] = ConverterInfo(kind, fn, description or (doc[0] if doc else ""), architecture)
        return fn

    return deco


def list_converters() -> dict[str, str]:
    """``{kind: one-line description}`` of every registered converter."""
    _import_converters()
    return {k: info.description for k, info in sorted(_CONVERTERS.items())}


def converter_info(kind: str) -> ConverterInfo:
    """The :class:`ConverterInfo` registered under ``kind``; :class:`CheckpointError` if unknown."""
    _import_converters()
    if kind not in _CONVERTERS:
        known = ", ".join(sorted(_CONVERTERS)) or "none registered"
        raise CheckpointError(f"unknown converter kind {kind!r}; known: {known}")
    return _CONVERTERS[kind]


class _AttributeDictStandIn:
    """Allow-listed stand-in for Lightning's ``AttributeDict``: unpickles as a plain ``dict``."""

    def __new__(cls, *args, **kwargs):
        return {}


_ATTRIBUTE_DICT_PATHS = (
    "lightning.fabric.utilities.data.AttributeDict",
    "lightning_fabric.utilities.data.AttributeDict",
    "pytorch_lightning.utilities.parsing.AttributeDict",
    "lightning.pytorch.utilities.parsing.AttributeDict",
)


def _numpy_scalar():
    core = getattr(np, "_core", None) or np.core  # numpy 2 / numpy 1
    return core.multiarray.scalar


def lightning_safe_globals() -> list:
    """The allow-list used by :func:`read_checkpoint`: non-tensor types of Lightning checkpoint metadata.

    Each entry is a class/function or ``(stand_in, "module.Name")``; nothing here runs user code.
    """
    scalar = _numpy_scalar()
    dtype_classes = [type(np.dtype(t)) for t in ("float16", "float32", "float64", "int32", "int64", "bool")]
    return [
        *[(_AttributeDictStandIn, p) for p in _ATTRIBUTE_DICT_PATHS],
        argparse.Namespace,
        (pathlib.PosixPath, "pathlib.PosixPath"),
        (pathlib.WindowsPath, "pathlib.WindowsPath"),
        (pathlib.PurePosixPath, "pathlib.PurePosixPath"),
        (pathlib.PureWindowsPath, "pathlib.PureWindowsPath"),
        np.dtype,
        *dtype_classes,
        (scalar, "numpy.core.multiarray.scalar"),
        (scalar, "numpy._core.multiarray.scalar"),
    ]


def load_legacy(source: str | Path | io.BytesIO, *, name: str = "") -> object:
    """``torch.load(weights_only=True)`` with the Lightning allow-list; a clear error otherwise."""
    label = name or str(source)
    try:
        with torch.serialization.safe_globals(lightning_safe_globals()):
            return torch.load(source, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the file and the offending globals named
        unsafe = ""
        try:
            if isinstance(source, io.BytesIO):
                source.seek(0)
            found = torch.serialization.get_unsafe_globals_in_checkpoint(source)
            allowed = {n for g in lightning_safe_globals() for n in ([g[1]] if isinstance(g, tuple) else [])}
            found = [g for g in found if g not in allowed]
            if found:
                unsafe = f"; it holds Python objects outside the allow-list: {', '.join(found[:8])}"
        except Exception:  # noqa: BLE001 - the diagnosis is best effort
            unsafe = ""
        raise CheckpointError(
            f"{label}: cannot be read with torch.load(weights_only=True){unsafe} ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}). avperceive never unpickles arbitrary objects: "
            "re-save the state dict alone (torch.save(model.state_dict(), path)) and convert that."
        ) from err


def read_checkpoint(path: str | Path, *, progress: bool = False) -> dict[str, torch.Tensor]:
    """Read a reference checkpoint file into a flat ``{key: tensor}`` dict, never unpickling code.

    ``.safetensors`` is read directly; ``.pt``/``.pth``/``.pth.tar``/``.ckpt``/``.bin`` through
    ``torch.load(weights_only=True)`` (plus the Lightning metadata allow-list of
    :func:`lightning_safe_globals`). A ``state_dict``/``model`` entry is unwrapped.

    Args:
        path: the checkpoint file.
        progress: show a ``tqdm`` progress bar (bytes, on stderr) while reading (large files).
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        from .safetensors_file import read_safetensors

        return read_safetensors(path)
    source: str | io.BytesIO = str(path)
    if progress:
        from tqdm.auto import tqdm

        size = path.stat().st_size
        buf = io.BytesIO()
        bar = tqdm(total=size, desc=f"reading {path.name}", unit="B", unit_scale=True, unit_divisor=1024)
        with open(path, "rb") as fh, bar:
            while chunk := fh.read(1 << 22):
                buf.write(chunk)
                bar.update(len(chunk))
        buf.seek(0)
        source = buf
    obj = load_legacy(source, name=str(path))
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


def convert_checkpoint(kind: str, path_or_state_dict, *, return_report: bool = False, progress: bool = False):
    """Convert a reference checkpoint (path or state dict) of ``kind`` into avperceive's layout.

    Returns the converted state dict, or the full :class:`ConvertedCheckpoint` with
    ``return_report=True``.
    """
    info = converter_info(kind)
    if isinstance(path_or_state_dict, (str, Path)):
        sd = read_checkpoint(path_or_state_dict, progress=progress)
    else:
        sd = dict(path_or_state_dict)
    result = info.fn(sd)
    if not isinstance(result, ConvertedCheckpoint):
        raise CheckpointError(f"converter {kind!r} returned {type(result).__name__}, not ConvertedCheckpoint")
    return result if return_report else result.state_dict
