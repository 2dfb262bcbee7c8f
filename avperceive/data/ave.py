"""AVE reader: Audio-Visual Event localisation (Tian, Shi, Li, Duan & Xu, ECCV 2018).

4,143 ten-second YouTube clips (4,097 distinct videos), 28 event classes; every second is either
inside the annotated audio-visual event (its class) or background (index 28). Files
(``&``-delimited, integer seconds): ``Annotations.txt`` (with or without the header
``Category&VideoID&Quality&StartTime&EndTime``), ``trainSet.txt`` / ``valSet.txt`` /
``testSet.txt`` (3,339 / 402 / 402 rows, no header) and optionally ``categories.txt`` (class order;
otherwise the order in which classes first appear in Annotations.txt, which is the same).

Per-second label (the ``labels.h5`` of the official code): ``labels[t, c] = 1`` for the event class
``c`` when ``StartTime <= t < EndTime``, else ``labels[t, 28] = 1``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from .base import MediaDataset

__all__ = ["AVE", "AVE_SPLIT_FILES", "AVE_BACKGROUND", "read_ave_annotations"]

AVE_SPLIT_FILES = {"train": "trainSet.txt", "val": "valSet.txt", "test": "testSet.txt"}
AVE_BACKGROUND = 28
AVE_SEGMENTS = 10
_HEADER = ["Category", "VideoID", "Quality", "StartTime", "EndTime"]


def read_ave_annotations(path: str | Path) -> list[tuple[str, str, str, int, int]]:
    """Rows ``(category, video_id, quality, start, end)`` of an AVE ``&`` file; a header line is skipped."""
    rows = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("&")
        if parts == _HEADER:
            continue
        if len(parts) != 5:
            raise ConfigError(f"{path}:{lineno}: expected 5 '&'-separated fields, got {len(parts)}: {line!r}")
        cat, vid, quality, start, end = parts
        rows.append((cat, vid, quality, int(float(start)), int(float(end))))
    return rows


class AVE(MediaDataset):
    """AVE split as a map-style dataset.

    Args:
        root: folder with ``Annotations.txt`` and the split files (and optionally ``categories.txt``).
        split: ``"train"``, ``"val"``, ``"test"`` or ``"all"`` (every row of Annotations.txt).
        media_root: folder with ``<VideoID>.mp4`` (``None``: annotations only).
        features_root: folder with the official ``audio_feature.h5`` / ``visual_feature.h5``
            (key ``avadataset``, rows in Annotations.txt order); read lazily with h5py (optional extra).
            Default: ``root`` when ``root/audio_feature.h5`` exists.
        on_error, clip_kwargs, transform: see :class:`~avperceive.data.base.MediaDataset`.

    A sample is a dict: ``name`` (VideoID), ``row`` (index into Annotations.txt, header excluded),
    ``category``, ``label`` (class index), ``start``, ``end``, ``labels`` float32 ``(10, 29)`` one-hot
    per second, ``event_mask`` float32 ``(10,)`` (``labels_closs``), ``video_label`` float32 ``(29,)``
    (``mil_labels``); with media ``video`` uint8 ``(10, H, W, 3)`` and ``audio`` float32 ``(C, S)``; with
    features ``audio_feature`` ``(10, 128)`` and ``visual_feature`` ``(10, 7, 7, 512)``.
    """

    default_clip_kwargs = {"start": 0.0, "duration": 10.0, "num_frames": AVE_SEGMENTS, "sample_rate": 16000}

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        features_root: str | Path | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.root = Path(root)
        self.split = split
        if features_root is None and (self.root / "audio_feature.h5").is_file():
            features_root = self.root
        self.features_root = Path(features_root) if features_root is not None else None
        annotations = read_ave_annotations(self.root / "Annotations.txt")
        cat_file = self.root / "categories.txt"
        if cat_file.is_file():
            self.categories = [c for c in cat_file.read_text(encoding="utf-8").splitlines() if c.strip()]
        else:
            self.categories = list(dict.fromkeys(r[0] for r in annotations))
        self.class_to_index = {c: i for i, c in enumerate(self.categories)}
        if split == "all":
            chosen = list(range(len(annotations)))
        elif split in AVE_SPLIT_FILES:
            chosen = self._match_rows(annotations, read_ave_annotations(self.root / AVE_SPLIT_FILES[split]))
        else:
            raise ConfigError(f"AVE split must be one of {[*AVE_SPLIT_FILES, 'all']}, got {split!r}")
        for row in chosen:
            cat, vid, quality, start, end = annotations[row]
            if cat not in self.class_to_index:
                raise ConfigError(f"AVE: category {cat!r} of {vid} is not in categories.txt")
            label = self.class_to_index[cat]
            self.records.append(
                {"name": vid, "row": row, "category": cat, "label": label, "quality": quality}
                | {"start": start, "end": end}
            )

    @staticmethod
    def _match_rows(annotations, split_rows) -> list[int]:
        """Index into Annotations.txt of every split row (identical rows are matched in order)."""
        where: dict[tuple, list[int]] = {}
        for i, r in enumerate(annotations):
            where.setdefault(r, []).append(i)
        used: dict[tuple, int] = {}
        out = []
        for r in split_rows:
            if r not in where:
                raise ConfigError(f"AVE split row {'&'.join(map(str, r))!r} is not in Annotations.txt")
            k = used.get(r, 0)
            out.append(where[r][min(k, len(where[r]) - 1)])
            used[r] = k + 1
        return out

    @property
    def num_classes(self) -> int:
        """29: the 28 event classes plus background."""
        return len(self.categories) + 1

    def segment_labels(self, index: int) -> np.ndarray:
        """float32 ``(10, 29)``: the event class inside ``[start, end)``, background elsewhere."""
        rec = self.records[index]
        t = np.arange(AVE_SEGMENTS)
        inside = (t >= rec["start"]) & (t < rec["end"])
        labels = np.zeros((AVE_SEGMENTS, self.num_classes), dtype=np.float32)
        labels[inside, rec["label"]] = 1.0
        labels[~inside, AVE_BACKGROUND] = 1.0
        return labels

    def annotation(self, index: int) -> dict[str, Any]:
        rec = dict(self.records[index])
        labels = self.segment_labels(index)
        rec["labels"] = labels
        rec["event_mask"] = 1.0 - labels[:, AVE_BACKGROUND]
        video_label = np.zeros(self.num_classes, dtype=np.float32)
        video_label[rec["label"]] = 1.0
        rec["video_label"] = video_label
        if self.features_root is not None:
            rec.update(self._features(rec["row"]))
        return rec

    def _features(self, row: int) -> dict[str, np.ndarray]:
        try:
            import h5py
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ConfigError("reading AVE HDF5 features needs h5py (pip install h5py)") from err
        out = {}
        for key, fname in (("audio_feature", "audio_feature.h5"), ("visual_feature", "visual_feature.h5")):
            path = self.features_root / fname
            if path.is_file():
                with h5py.File(path, "r") as f:
                    out[key] = np.asarray(f["avadataset"][row], dtype=np.float32)
        return out
