"""VGGSound reader (Chen, Xie, Vedaldi & Zisserman, ICASSP 2020; annotations CC BY 4.0).

``vggsound.csv`` (no header, CRLF, labels with commas double-quoted): ``youtube_id,start_seconds,label,split``
with split ``train`` / ``test``; a clip is ``[start, start + 10)`` s and local files are usually named
``<ytid>_<start:06d>.mp4``. ``test.csv`` (``<ytid>_<start:06d>.mp4,label``) lists the official test split
and is used when ``vggsound.csv`` is absent. The class index is the **sorted** class list, as upstream
``datasets/dataloader.py`` builds it from ``stat.csv`` (``label,count,category``); without ``stat.csv``
the sorted labels of the annotation file are used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .base import MediaDataset, read_text_rows

__all__ = ["VGGSound", "vggsound_clip_name"]


def vggsound_clip_name(youtube_id: str, start: int) -> str:
    """Local file stem of a clip: ``<ytid>_<start:06d>``."""
    return f"{youtube_id}_{int(start):06d}"


class VGGSound(MediaDataset):
    """VGGSound split as a map-style dataset.

    Args:
        root: folder with ``vggsound.csv`` (and/or ``test.csv``) and optionally ``stat.csv``.
        split: ``"train"``, ``"test"`` or ``"all"``.
        media_root: folder with ``<ytid>_<start:06d>.mp4``.

    A sample: ``name`` (the clip stem), ``youtube_id``, ``start`` (s), ``label_name``, ``label`` (index
    into the sorted class list ``classes``), ``category`` (from stat.csv, ``""`` when unknown); with media
    ``video`` / ``audio`` (10 s, 10 frames, 16 kHz by default).
    """

    default_clip_kwargs = {"start": 0.0, "duration": 10.0, "num_frames": 10, "sample_rate": 16000}

    def __init__(
        self,
        root: str | Path,
        split: str = "test",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if split not in ("train", "test", "all"):
            raise ConfigError(f"VGGSound split must be 'train', 'test' or 'all', got {split!r}")
        self.root = Path(root)
        self.split = split
        rows: list[tuple[str, int, str, str]] = []
        main = self.root / "vggsound.csv"
        if main.is_file():
            for r in read_text_rows(main)[1]:
                if len(r) != 4:
                    raise ConfigError(f"{main}: expected 4 fields (ytid,start,label,split), got {r}")
                rows.append((r[0], int(float(r[1])), r[2], r[3].strip()))
        elif (self.root / "test.csv").is_file() and split == "test":
            for r in read_text_rows(self.root / "test.csv")[1]:
                stem = Path(r[0]).stem
                ytid, start = stem.rsplit("_", 1)
                rows.append((ytid, int(start), r[1], "test"))
        else:
            raise ConfigError(f"{self.root}: no vggsound.csv (or test.csv for split='test')")
        self.category: dict[str, str] = {}
        stat = self.root / "stat.csv"
        if stat.is_file():
            stats = read_text_rows(stat)[1]
            self.category = {r[0]: (r[2] if len(r) > 2 else "") for r in stats}
            self.classes = sorted(self.category)
        else:
            self.classes = sorted({r[2] for r in rows})
        self.class_to_index = {c: i for i, c in enumerate(self.classes)}
        for ytid, start, label, sp in rows:
            if split != "all" and sp != split:
                continue
            if label not in self.class_to_index:
                raise ConfigError(f"VGGSound: label {label!r} of {ytid} is not in the class list")
            self.records.append(
                {
                    "name": vggsound_clip_name(ytid, start),
                    "youtube_id": ytid,
                    "start": start,
                    "label_name": label,
                    "label": self.class_to_index[label],
                    "category": self.category.get(label, ""),
                }
            )

    @property
    def num_classes(self) -> int:
        return len(self.classes)
