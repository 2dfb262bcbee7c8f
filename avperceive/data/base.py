"""The one reader API of :mod:`avperceive.data`: map-style datasets, clip collate, missing-media policy.

Every reader parses its annotation files **eagerly** in ``__init__`` (so label statistics, splits and
problems in the files are known at once and are testable without any media) and decodes media
**lazily** in ``__getitem__`` through :func:`avperceive.io.load_clip`. Readers are plain
``torch.utils.data.Dataset`` objects with ``__len__``: they work with ``DataLoader`` workers
(nothing unpicklable is held) and with ``DistributedSampler``.

Missing or broken media (``on_error``):

* ``"raise"`` (default): the :class:`avperceive.errors.MediaError` propagates, naming the file;
* ``"skip"``: ``__getitem__`` returns a :class:`SkippedSample` (name, path, reason) instead of a
  sample; :func:`collate_clips` drops it from the batch and lists it under ``batch["skipped"]``,
  so the rest of the batch is kept and the failure is reported by name (also across worker
  processes, where the dataset object itself is a copy).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from einops import rearrange

from ..errors import ConfigError, MediaError
from ..io.clip import zero_missing_modality

__all__ = [
    "MediaDataset",
    "SkippedSample",
    "collate_clips",
    "read_text_rows",
    "zero_missing_modality",
    "tile_segments",
    "ON_ERROR_CHOICES",
]

ON_ERROR_CHOICES = ("raise", "skip")


@dataclass(frozen=True)
class SkippedSample:
    """Stand-in returned by ``__getitem__`` when ``on_error="skip"`` and the media cannot be read."""

    index: int
    name: str
    path: str
    reason: str


def read_text_rows(
    path: str | Path, *, delimiter: str = ",", header: bool = False
) -> tuple[list[str], list[list[str]]]:
    """Read a delimited text file (LF or CRLF, quoted fields) into ``(header, rows)``.

    Blank lines are skipped. ``header`` is ``[]`` when ``header=False``.
    """
    with open(path, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f, delimiter=delimiter) if r and any(c.strip() for c in r)]
    if header:
        return (rows[0] if rows else []), rows[1:]
    return [], rows


class MediaDataset(torch.utils.data.Dataset):
    """Base class of the readers: annotation records in memory, media decoded on access.

    Subclasses fill ``self.records`` (one dict per sample, with at least ``"name"``) and implement
    :meth:`media_path` (``None`` when no media folder was given). ``__getitem__`` returns the
    record's labels (:meth:`annotation`) plus, when media are available, what :meth:`decode` gives.

    Args:
        media_root: folder with the media files, or ``None`` for annotations only.
        media_ext: the media files' extension (default ``media_path``: ``<name><media_ext>``).
        on_error: ``"raise"`` or ``"skip"`` for missing / broken media (see the module doc).
        clip_kwargs: keyword arguments for :func:`avperceive.io.load_clip` (overrides the reader's defaults).
        transform: optional ``fn(sample) -> sample`` applied last.
    """

    default_clip_kwargs: dict[str, Any] = {}

    def __init__(
        self,
        *,
        media_root: str | Path | None = None,
        media_ext: str = ".mp4",
        on_error: str = "raise",
        clip_kwargs: dict[str, Any] | None = None,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ):
        if on_error not in ON_ERROR_CHOICES:
            raise ConfigError(f"on_error must be one of {ON_ERROR_CHOICES}, got {on_error!r}")
        self.media_root = Path(media_root) if media_root is not None else None
        self.media_ext = media_ext
        self.on_error = on_error
        self.clip_kwargs = {**self.default_clip_kwargs, **(clip_kwargs or {})}
        self.transform = transform
        self.records: list[dict[str, Any]] = []
        self.skipped: dict[str, str] = {}

    # -- annotation side -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.records)

    def annotation(self, index: int) -> dict[str, Any]:
        """The labels of sample ``index`` (no media decoded)."""
        return dict(self.records[index])

    def media_path(self, index: int) -> Path | None:
        """Path of the media file of sample ``index``, or ``None`` when there is no media folder.

        The default is ``media_root / (record["name"] + media_ext)``; readers whose files are named
        otherwise override it.
        """
        if self.media_root is None:
            return None
        return self.media_root / f"{self.records[index]['name']}{self.media_ext}"

    def check_media(self) -> dict[str, str]:
        """``{name: reason}`` for every sample whose media file is missing (a cheap existence scan)."""
        missing: dict[str, str] = {}
        for i, rec in enumerate(self.records):
            path = self.media_path(i)
            if path is not None and not path.is_file():
                missing[rec["name"]] = f"{path}: file not found"
        return missing

    # -- media side --------------------------------------------------------------------------------
    def decode(self, index: int, path: Path) -> dict[str, Any]:
        """Decode the media of sample ``index``: ``{"video": uint8 (T,H,W,3), "audio": float32 (C,S)}``."""
        from ..io import load_clip

        clip = load_clip(path, **self.clip_kwargs)
        out: dict[str, Any] = {}
        for key in ("video", "audio"):
            value = getattr(clip, key, None)
            if value is not None:
                out[key] = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(value))
        return out

    def __getitem__(self, index: int) -> dict[str, Any] | SkippedSample:
        if index < 0:
            index += len(self)
        sample = self.annotation(index)
        path = self.media_path(index)
        if path is not None:
            try:
                if not path.is_file():
                    raise MediaError(path, "file not found")
                sample.update(self.decode(index, path))
            except MediaError as err:
                if self.on_error == "raise":
                    raise
                self.skipped[sample["name"]] = err.reason
                return SkippedSample(index, sample["name"], str(path), err.reason)
        if self.transform is not None:
            sample = self.transform(sample)
        return sample


def _collate_values(values: Sequence[Any]) -> Any:
    first = values[0]
    if isinstance(first, torch.Tensor):
        if all(v.shape == first.shape for v in values):
            return torch.stack(list(values))
        return list(values)
    if isinstance(first, np.ndarray):
        return _collate_values([torch.from_numpy(np.ascontiguousarray(v)) for v in values])
    if isinstance(first, bool):
        return torch.tensor(values, dtype=torch.bool)
    if isinstance(first, int):
        return torch.tensor(values, dtype=torch.long)
    if isinstance(first, float):
        return torch.tensor(values, dtype=torch.float32)
    if isinstance(first, dict):
        return {k: _collate_values([v[k] for v in values]) for k in first}
    return list(values)


def collate_clips(batch: Iterable[dict[str, Any] | SkippedSample]) -> dict[str, Any]:
    """Collate reader samples into a batch dict; skipped samples are dropped and reported.

    Tensors / arrays of equal shape are stacked (``video`` -> ``(B, T, H, W, 3)``), numbers become
    1-D tensors, strings and ragged items stay lists. ``batch["skipped"]`` lists the
    :class:`SkippedSample` entries left out (empty list when none); ``batch["size"]`` is B.
    """
    items = list(batch)
    kept = [b for b in items if not isinstance(b, SkippedSample)]
    skipped = [b for b in items if isinstance(b, SkippedSample)]
    out: dict[str, Any] = {}
    if kept:
        keys = [k for k in kept[0] if all(k in b for b in kept)]
        out = {k: _collate_values([b[k] for b in kept]) for k in keys}
    out["skipped"] = skipped
    out["size"] = len(kept)
    return out


def tile_segments(audio: torch.Tensor, segments: int, segment_samples: int, tile_to: int | None) -> torch.Tensor:
    """Cut a mono waveform into ``segments`` slices of ``segment_samples`` and tile each slice.

    Args:
        audio: ``(S,)`` waveform; zero-padded or truncated to ``segments * segment_samples``.
        tile_to: length each slice is tiled (repeated) to, e.g. 320000 for the HTS-AT input;
            ``None`` keeps the slices as they are.

    Returns:
        ``(segments, tile_to or segment_samples)``.
    """
    need = segments * segment_samples
    if audio.shape[-1] < need:
        audio = torch.nn.functional.pad(audio, (0, need - audio.shape[-1]))
    sliced = rearrange(audio[..., :need], "(t s) -> t s", t=segments)
    if tile_to is None:
        return sliced
    reps = -(-tile_to // segment_samples)
    return sliced.repeat(1, reps)[:, :tile_to]
