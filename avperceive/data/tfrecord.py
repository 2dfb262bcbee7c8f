"""A small TFRecord + ``tf.train.(Sequence)Example`` reader and writer, without TensorFlow.

Used for the released AVMIT embeddings (Joannou, Rotshtein & Noppeney, PLoS ONE 2024): one
GZIP-compressed TFRecord per video holding one ``SequenceExample``.

TFRecord framing (per record, little-endian)::

    uint64 length | uint32 masked_crc32c(length bytes) | data[length] | uint32 masked_crc32c(data)

with ``masked(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8 (mod 2**32)`` and crc32c the
Castagnoli CRC (reflected polynomial 0x82F63B78), implemented here in pure Python.

Protobuf messages decoded (tensorflow/core/example/{example,feature}.proto)::

    Example         { Features features = 1; }
    SequenceExample { Features context = 1; FeatureLists feature_lists = 2; }
    Features        { map<string, Feature> feature = 1; }
    FeatureLists    { map<string, FeatureList> feature_list = 1; }
    FeatureList     { repeated Feature feature = 1; }
    Feature         { oneof { BytesList bytes_list = 1; FloatList float_list = 2; Int64List int64_list = 3; } }
    BytesList       { repeated bytes value = 1; }
    FloatList       { repeated float value = 1; }   (packed or not)
    Int64List       { repeated int64 value = 1; }   (packed or not)

A ``Feature`` decodes to ``list[bytes]``, float32 ``np.ndarray`` or int64 ``np.ndarray``.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, MediaError

__all__ = [
    "crc32c",
    "masked_crc32c",
    "read_tfrecords",
    "write_tfrecords",
    "parse_example",
    "parse_sequence_example",
    "encode_example",
    "encode_sequence_example",
]


def _make_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _make_table()


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC-32C (Castagnoli) of ``data``; ``crc32c(b"123456789") == 0xE3069283``."""
    crc ^= 0xFFFFFFFF
    table = _TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """The TFRecord checksum: crc32c rotated right by 15 bits plus 0xa282ead8 (mod 2**32)."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _open(path: Path, compression: str | None, mode: str):
    if compression == "auto":
        if mode == "rb":
            with open(path, "rb") as f:
                compression = "gzip" if f.read(2) == b"\x1f\x8b" else None
        else:
            compression = "gzip" if path.suffix in (".gz", ".gzip") else None
    if compression == "gzip":
        return gzip.open(path, mode)
    if compression is None:
        return open(path, mode)
    raise ConfigError(f"compression must be 'gzip', None or 'auto', got {compression!r}")


def read_tfrecords(path: str | Path, *, compression: str | None = "auto", verify: bool = True) -> Iterator[bytes]:
    """Yield the payload of every record of a TFRecord file.

    Args:
        compression: ``"gzip"``, ``None`` or ``"auto"`` (gzip magic bytes sniffed).
        verify: check both masked CRCs.

    Raises:
        MediaError: truncated file or checksum mismatch (naming the file and the record number).
    """
    path = Path(path)
    try:
        with _open(path, compression, "rb") as f:
            n = 0
            while True:
                head = f.read(8)
                if not head:
                    return
                if len(head) != 8:
                    raise MediaError(path, f"record {n}: truncated length field")
                head_crc = f.read(4)
                if len(head_crc) != 4:
                    raise MediaError(path, f"record {n}: truncated header")
                (length,) = struct.unpack("<Q", head)
                data = f.read(length)
                tail = f.read(4)
                if len(data) != length or len(tail) != 4:
                    raise MediaError(path, f"record {n}: truncated data ({len(data)} of {length} bytes)")
                if verify:
                    if struct.unpack("<I", head_crc)[0] != masked_crc32c(head):
                        raise MediaError(path, f"record {n}: length checksum mismatch")
                    if struct.unpack("<I", tail)[0] != masked_crc32c(data):
                        raise MediaError(path, f"record {n}: data checksum mismatch")
                yield data
                n += 1
    except (OSError, EOFError) as err:  # gzip errors
        raise MediaError(path, f"cannot read TFRecord: {err}") from err


def write_tfrecords(path: str | Path, records: list[bytes], *, compression: str | None = "gzip") -> Path:
    """Write ``records`` as a TFRecord file (GZIP by default, as the AVMIT release)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _open(path, compression, "wb") as f:
        for data in records:
            head = struct.pack("<Q", len(data))
            f.write(head + struct.pack("<I", masked_crc32c(head)) + data + struct.pack("<I", masked_crc32c(data)))
    return path


# ------------------------------------------------------------------------------------------- protobuf wire format
def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """Yield ``(field_number, wire_type, value)``; value is int (types 0, 1, 5) or bytes (type 2)."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value = buf[pos : pos + 8]
            pos += 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value = buf[pos : pos + n]
            if len(value) != n:
                raise ValueError("truncated length-delimited field")
            pos += n
        elif wire == 5:
            value = buf[pos : pos + 4]
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield num, wire, value


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _parse_feature(buf: bytes) -> list[bytes] | np.ndarray:
    for num, _, value in _fields(buf):
        if num == 1:
            return [v for n, _, v in _fields(value) if n == 1]
        if num == 2:
            parts = [v for n, _, v in _fields(value) if n == 1]  # packed (type 2) or one float (type 5)
            return np.frombuffer(b"".join(parts), dtype="<f4").astype(np.float32)
        if num == 3:
            out: list[int] = []
            for n, w, v in _fields(value):
                if n != 1:
                    continue
                if w == 0:
                    out.append(_signed64(v))
                else:
                    p = 0
                    while p < len(v):
                        x, p = _varint(v, p)
                        out.append(_signed64(x))
            return np.asarray(out, dtype=np.int64)
    return []


def _parse_map(buf: bytes, field: int, parse_value) -> dict[str, Any]:
    out = {}
    for num, _, entry in _fields(buf):
        if num != field:
            continue
        key, value = "", b""
        for n, _, v in _fields(entry):
            if n == 1:
                key = v.decode("utf-8")
            elif n == 2:
                value = v
        out[key] = parse_value(value)
    return out


def parse_example(buf: bytes) -> dict[str, Any]:
    """``tf.train.Example`` bytes -> ``{name: feature}``."""
    for num, _, value in _fields(buf):
        if num == 1:
            return _parse_map(value, 1, _parse_feature)
    return {}


def parse_sequence_example(buf: bytes) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """``tf.train.SequenceExample`` bytes -> ``(context, feature_lists)``.

    ``context[name]`` is a feature; ``feature_lists[name]`` a list of features (one per step).
    """
    context: dict[str, Any] = {}
    lists: dict[str, list[Any]] = {}
    for num, _, value in _fields(buf):
        if num == 1:
            context = _parse_map(value, 1, _parse_feature)
        elif num == 2:
            lists = _parse_map(value, 1, lambda b: [_parse_feature(f) for n, _, f in _fields(b) if n == 1])
    return context, lists


# ------------------------------------------------------------------------------------------- encoding
def _enc_varint(v: int) -> bytes:
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _enc_len(field: int, payload: bytes) -> bytes:
    return _enc_varint(field << 3 | 2) + _enc_varint(len(payload)) + payload


def _enc_feature(value: Any) -> bytes:
    """bytes / str / list of bytes -> BytesList; float array -> packed FloatList; int -> packed Int64List."""
    if isinstance(value, (bytes, str)):
        value = [value]
    if isinstance(value, list) and value and isinstance(value[0], (bytes, str)):
        items = b"".join(_enc_len(1, v.encode() if isinstance(v, str) else v) for v in value)
        return _enc_len(1, items)
    arr = np.atleast_1d(np.asarray(value))
    if np.issubdtype(arr.dtype, np.integer):
        return _enc_len(3, _enc_len(1, b"".join(_enc_varint(int(x)) for x in arr)))
    return _enc_len(2, _enc_len(1, arr.astype("<f4").tobytes()))


def _enc_map(entries: dict[str, bytes]) -> bytes:
    return b"".join(_enc_len(1, _enc_len(1, k.encode()) + _enc_len(2, v)) for k, v in entries.items())


def encode_example(features: dict[str, Any]) -> bytes:
    """``{name: value}`` -> ``tf.train.Example`` bytes (see :func:`_enc_feature` for value types)."""
    return _enc_len(1, _enc_map({k: _enc_feature(v) for k, v in features.items()}))


def encode_sequence_example(context: dict[str, Any], feature_lists: dict[str, list[Any]]) -> bytes:
    """``(context, {name: [step values]})`` -> ``tf.train.SequenceExample`` bytes."""
    ctx = _enc_map({k: _enc_feature(v) for k, v in context.items()})
    lists = _enc_map({k: b"".join(_enc_len(1, _enc_feature(s)) for s in steps) for k, steps in feature_lists.items()})
    return _enc_len(1, ctx) + _enc_len(2, lists)
