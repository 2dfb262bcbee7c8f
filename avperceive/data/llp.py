"""LLP reader: Look, Listen and Parse / AVVP (Tian, Li & Xu, ECCV 2020).

11,849 ten-second YouTube clips with weak (video-level) labels over 25 classes; the 649 val and
1,200 test clips also carry segment-level audio and visual event annotations (integer seconds;
the dense label is ``GT[cls, onset:offset] = 1``, and the audio-visual ground truth is
audio x visual). All files are tab-separated with a header:

* ``AVVP_train.csv`` / ``AVVP_val_pd.csv`` / ``AVVP_test_pd.csv`` / ``AVVP_dataset_full.csv``:
  ``filename  event_labels`` (labels comma-joined);
* ``AVVP_eval_audio.csv`` / ``AVVP_eval_visual.csv``: ``filename  onset  offset  event_labels``.

File names are ``<YouTube id>_<start>_<end>``; ids may contain ``_`` and some starts are fractional,
so they are split from the right. Rows that do not fit (zero-length events, names that match no
clip of the split, events whose class is not among the clip's weak labels, unknown classes) are
collected in ``problems`` rather than raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from .base import MediaDataset, read_text_rows

__all__ = ["LLP", "LLP_CLASSES", "LLPEvent", "parse_llp_filename"]

LLP_CLASSES = (
    "Speech", "Car", "Cheering", "Dog", "Cat", "Frying_(food)", "Basketball_bounce", "Fire_alarm", "Chainsaw",
    "Cello", "Banjo", "Singing", "Chicken_rooster", "Violin_fiddle", "Vacuum_cleaner", "Baby_laughter", "Accordion",
    "Lawn_mower", "Motorcycle", "Helicopter", "Acoustic_guitar", "Telephone_bell_ringing", "Baby_cry_infant_cry",
    "Blender", "Clapping",
)  # fmt: skip
LLP_SPLIT_FILES = {
    "train": "AVVP_train.csv",
    "val": "AVVP_val_pd.csv",
    "test": "AVVP_test_pd.csv",
    "full": "AVVP_dataset_full.csv",
}
LLP_SEGMENTS = 10
_FEATURE_DIRS = (("audio_feature", "vggish"), ("visual_feature", "res152"), ("motion_feature", "r2plus1d_18"))


@dataclass(frozen=True)
class LLPEvent:
    """One segment-level event row: clip ``filename``, ``[onset, offset)`` in seconds, ``label``, file ``line``."""

    filename: str
    onset: int
    offset: int
    label: str
    line: int = 0


def parse_llp_filename(filename: str) -> tuple[str, float, float]:
    """``"AP0061o0Nvk_101.8_111.8"`` -> ``("AP0061o0Nvk", 101.8, 111.8)`` (split from the right)."""
    vid, start, end = filename.rsplit("_", 2)
    return vid, float(start), float(end)


class LLP(MediaDataset):
    """LLP split as a map-style dataset.

    Args:
        root: folder with the six AVVP csv files (the eval files are optional).
        split: ``"train"`` (10,000), ``"val"`` (649), ``"test"`` (1,200) or ``"full"`` (11,849).
        media_root: folder with ``<filename>.mp4``; ``features_root``: folder with ``vggish/``,
            ``res152/``, ``r2plus1d_18/`` holding ``<id>.npy`` (upstream names them by ``filename[:11]``).

    A sample: ``name``, ``video_id``, ``start``, ``end``, ``label_names`` (list), ``labels`` float32
    ``(25,)`` multi-hot; for clips with segment-level annotations also ``audio_gt``, ``visual_gt``,
    ``av_gt`` float32 ``(25, 10)``; with features ``audio_feature`` ``(10, 128)``,
    ``visual_feature`` ``(80, 2048)``, ``motion_feature`` ``(10, 512)``.

    Attributes:
        audio_events, visual_events: every parsed eval row (:class:`LLPEvent`), all splits.
        problems: ``(file, line, filename, reason)`` for every row that does not fit.
    """

    default_clip_kwargs = {"start": 0.0, "duration": 10.0, "num_frames": LLP_SEGMENTS, "sample_rate": 16000}
    classes = LLP_CLASSES

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        features_root: str | Path | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if split not in LLP_SPLIT_FILES:
            raise ConfigError(f"LLP split must be one of {list(LLP_SPLIT_FILES)}, got {split!r}")
        self.root = Path(root)
        self.split = split
        self.features_root = Path(features_root) if features_root is not None else None
        self.class_to_index = {c: i for i, c in enumerate(LLP_CLASSES)}
        self.problems: list[tuple[str, int, str, str]] = []
        fname = LLP_SPLIT_FILES[split]
        _, rows = read_text_rows(self.root / fname, delimiter="\t", header=True)
        for line, row in enumerate(rows, 2):
            if len(row) != 2:
                self.problems.append((fname, line, row[0] if row else "", f"expected 2 fields, got {len(row)}"))
                continue
            name, joined = row
            try:
                vid, start, end = parse_llp_filename(name)
            except ValueError:
                self.problems.append((fname, line, name, "file name is not <id>_<start>_<end>"))
                continue
            names = [n for n in joined.split(",") if n]
            labels = np.zeros(len(LLP_CLASSES), dtype=np.float32)
            for n in names:
                if n in self.class_to_index:
                    labels[self.class_to_index[n]] = 1.0
                else:
                    self.problems.append((fname, line, name, f"unknown class {n!r}"))
            self.records.append(
                {"name": name, "video_id": vid, "start": start, "end": end, "label_names": names, "labels": labels}
            )
        self.index_of = {r["name"]: i for i, r in enumerate(self.records)}
        self.audio_events = self._read_events("AVVP_eval_audio.csv")
        self.visual_events = self._read_events("AVVP_eval_visual.csv")
        self._dense: dict[str, dict[str, np.ndarray]] = {}
        for kind, events in (("audio_gt", self.audio_events), ("visual_gt", self.visual_events)):
            self._densify(kind, events)

    def _read_events(self, fname: str) -> list[LLPEvent]:
        path = self.root / fname
        if not path.is_file():
            return []
        _, rows = read_text_rows(path, delimiter="\t", header=True)
        events = []
        for line, row in enumerate(rows, 2):
            if len(row) != 4:
                self.problems.append((fname, line, row[0] if row else "", f"expected 4 fields, got {len(row)}"))
                continue
            try:
                ev = LLPEvent(row[0], int(float(row[1])), int(float(row[2])), row[3], line)
            except ValueError:
                self.problems.append((fname, line, row[0], f"onset/offset not numbers: {row[1]!r}, {row[2]!r}"))
                continue
            events.append(ev)
            if ev.offset <= ev.onset:
                self.problems.append((fname, line, ev.filename, f"zero-length event [{ev.onset}, {ev.offset})"))
            if ev.label not in self.class_to_index:
                self.problems.append((fname, line, ev.filename, f"unknown class {ev.label!r}"))
        return events

    def _densify(self, kind: str, events: list[LLPEvent]) -> None:
        """Fill ``GT[cls, onset:offset] = 1`` for the events of clips in this split; report the rest."""
        fname = "AVVP_eval_audio.csv" if kind == "audio_gt" else "AVVP_eval_visual.csv"
        for ev in events:
            idx = self.index_of.get(ev.filename)
            if idx is None:
                if self.split in ("val", "test", "full") and not _in_any_split(self.root, ev.filename):
                    self.problems.append((fname, ev.line, ev.filename, "matches no clip of val or test"))
                continue
            if ev.label not in self.class_to_index:
                continue
            dense = self._dense.setdefault(ev.filename, {})
            gt = dense.setdefault(kind, np.zeros((len(LLP_CLASSES), LLP_SEGMENTS), dtype=np.float32))
            gt[self.class_to_index[ev.label], ev.onset : ev.offset] = 1.0
            if ev.label not in self.records[idx]["label_names"]:
                self.problems.append(
                    (fname, ev.line, ev.filename, f"event class {ev.label!r} is not among the weak labels")
                )

    @property
    def num_classes(self) -> int:
        return len(LLP_CLASSES)

    def has_segment_labels(self, index: int) -> bool:
        """Whether clip ``index`` has segment-level eval annotations."""
        return self.records[index]["name"] in self._dense

    def annotation(self, index: int) -> dict[str, Any]:
        rec = dict(self.records[index])
        dense = self._dense.get(rec["name"])
        if dense is not None:
            empty = np.zeros((len(LLP_CLASSES), LLP_SEGMENTS), dtype=np.float32)
            rec["audio_gt"] = dense.get("audio_gt", empty)
            rec["visual_gt"] = dense.get("visual_gt", empty)
            rec["av_gt"] = rec["audio_gt"] * rec["visual_gt"]
        if self.features_root is not None:
            stem = rec["name"][:11]
            for key, sub in _FEATURE_DIRS:
                path = self.features_root / sub / f"{stem}.npy"
                if path.is_file():
                    rec[key] = np.load(path).astype(np.float32)
        return rec


_SPLIT_NAMES_CACHE: dict[str, frozenset[str]] = {}


def _in_any_split(root: Path, filename: str) -> bool:
    """Whether ``filename`` is a clip of the val or test list under ``root`` (cached per folder)."""
    key = str(root)
    if key not in _SPLIT_NAMES_CACHE:
        names: set[str] = set()
        for split in ("val", "test"):
            path = root / LLP_SPLIT_FILES[split]
            if path.is_file():
                names.update(r[0] for r in read_text_rows(path, delimiter="\t", header=True)[1] if r)
        _SPLIT_NAMES_CACHE[key] = frozenset(names)
    return filename in _SPLIT_NAMES_CACHE[key]
