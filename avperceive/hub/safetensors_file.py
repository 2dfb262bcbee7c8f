"""Read a ``.safetensors`` file only after checking its header against the file itself.

The format (Hugging Face safetensors): 8 bytes little-endian ``N``, then ``N`` bytes of JSON
``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}``, then
the data. Every claim of the header is checked here with Python integers (no overflow) before
any tensor is made: the header fits the file, each shape's byte size equals its offsets, each
tensor lies inside the data. A corrupt or hostile file then fails with a
:class:`~avperceive.errors.CheckpointError` naming the file and the entry, and nothing is
allocated from a size the header merely claims.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import torch

from ..errors import CheckpointError

__all__ = ["check_safetensors", "read_safetensors", "DTYPE_BYTES", "MAX_HEADER_BYTES"]

#: bytes per element of each safetensors dtype.
DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
    "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8, "C64": 8,
}
#: the format's own bound on the JSON header (100 MB).
MAX_HEADER_BYTES = 100_000_000


def check_safetensors(path: str | os.PathLike) -> dict:
    """Parse and check the header of ``path``; returns it (tensor entries and ``__metadata__``).

    Raises:
        CheckpointError: not a regular file, too short, header length or JSON invalid, an entry
            with an unknown dtype, a negative or non-integer dimension, offsets outside the data,
            or a byte size that does not match its shape.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a safetensors file")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path}: not a safetensors file ({size} bytes, shorter than its 8-byte header "
                                  "length)")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8 or n > MAX_HEADER_BYTES:
            raise CheckpointError(f"{path}: not a safetensors file (header length {n} exceeds the file's {size} bytes)"
                                  if n > size - 8 else f"{path}: safetensors header of {n} bytes is over the limit")
        raw = fh.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise CheckpointError(f"{path}: not a safetensors file (header is not JSON: {err})") from err
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: safetensors header is a {type(header).__name__}, not a JSON object")
    data_bytes = size - 8 - n
    meta = header.get("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise CheckpointError(f"{path}: safetensors __metadata__ must map strings to strings")
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        where = f"{path}: tensor {name!r}"
        if not isinstance(entry, dict):
            raise CheckpointError(f"{where}: header entry is not an object")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in DTYPE_BYTES:
            raise CheckpointError(f"{where}: unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                  for d in shape):
            raise CheckpointError(f"{where}: shape {shape!r} is not a list of non-negative integers")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise CheckpointError(f"{where}: data_offsets {offsets!r} is not [begin, end]")
        begin, end = offsets
        if not 0 <= begin <= end <= data_bytes:
            raise CheckpointError(f"{where}: data_offsets [{begin}, {end}] lie outside the {data_bytes} data bytes "
                                  "(truncated or corrupt file)")
        numel = 1
        for d in shape:
            numel *= d  # Python integers: a [2**40, 2**40] claim cannot overflow into a small size
        if numel * DTYPE_BYTES[dtype] != end - begin:
            raise CheckpointError(f"{where}: shape {shape} of {dtype} needs {numel * DTYPE_BYTES[dtype]} bytes, "
                                  f"its offsets hold {end - begin}")
    return header


def read_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a checked ``.safetensors`` file, on CPU (see :func:`check_safetensors`)."""
    from safetensors.torch import load_file

    check_safetensors(path)
    try:
        return load_file(str(path))
    except Exception as err:  # noqa: BLE001 - safetensors raises several types; the header was checked
        raise CheckpointError(f"{path}: not a readable safetensors file ({type(err).__name__}: {err})") from err
