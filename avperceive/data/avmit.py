"""AVMIT reader: Audiovisual Moments in Time (Joannou, Rotshtein & Noppeney, PLoS ONE 2024; Zenodo 8253350).

Annotation files (comma-separated, header):

* ratings -- ``video_ratings.csv`` (``filename,r1,r2,r3,AVMIT_label,MIT_label,video_location,
  tfrecord_filename``; r1/r2/r3 count the raters who gave rating 1/2/3) or the released training
  lists ``AVMIT_train.csv`` / ``AVMIT_validation.csv`` (``filename,actual_label,r1,r2,r3,label,...``,
  ``actual_label`` = MIT label, ``label`` = AVMIT label);
* ``test_set.csv`` -- the 960-clip test set (16 classes x 60, unanimous rating 3);
* ``MIT16_validation.csv`` -- the unfiltered MIT baseline list (unnamed index column).

Derived flags (paper §2): *present* = a majority of raters gave 2 or 3; *prominent* = a majority gave 3;
*unanimous* = every rater gave 3 (the test-set criterion). Rating sums above 3 occur in the released
files (merged duplicates); the majority is taken over the actual sum.

Embeddings: one GZIP TFRecord ``SequenceExample`` per video at ``<embeddings_root>/<tfrecord_filename>``,
context ``filename``, ``label``, ``audio_timesteps``, ``visual_timesteps``; sequences ``audio`` and
``visual_object`` of raw little-endian float32 vectors (VGGish 128 + VGG16 512, or YamNet 1024 +
EfficientNetB0 1280). The reference training code zero-pads both to 7 steps without masking.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, MediaError
from .base import MediaDataset, SkippedSample, read_text_rows
from .tfrecord import parse_sequence_example, read_tfrecords

__all__ = ["AVMIT", "AVMIT_CLASSES", "read_avmit_embeddings", "rating_flags"]

AVMIT_CLASSES = (
    "barking", "diving", "drumming", "frying", "giggling", "howling", "inflating", "mowing", "pouring", "raining",
    "sanding", "shredding", "sneezing", "tapping", "vacuuming", "whistling",
)  # fmt: skip
AVMIT_SPLIT_FILES = {
    "train": "AVMIT_train.csv",
    "val": "AVMIT_validation.csv",
    "test": "test_set.csv",
    "mit16_val": "MIT16_validation.csv",
    "ratings": "video_ratings.csv",
}
_SUBDIRS = ("", "audiovisual_action_recognition")
# column aliases -> our key
_COLS = {
    "filename": ("filename",),
    "label": ("AVMIT_label", "label", "AVMIT label"),
    "mit_label": ("MIT_label", "actual_label", "MIT label"),
    "video_location": ("video_location",),
    "tfrecord_filename": ("tfrecord_filename",),
    "new_filename": ("new_filename",),
    "r1": ("r1",),
    "r2": ("r2",),
    "r3": ("r3",),
}


def rating_flags(r1: int, r2: int, r3: int) -> dict[str, bool]:
    """``present`` (majority of 2+3), ``prominent`` (majority of 3), ``unanimous`` (all 3) from rating counts."""
    total = r1 + r2 + r3
    return {
        "present": 2 * (r2 + r3) > total,
        "prominent": 2 * r3 > total,
        "unanimous": total > 0 and r3 == total,
    }


def read_avmit_embeddings(path: str | Path, *, verify: bool = True) -> dict[str, Any]:
    """One AVMIT embedding record -> ``{"filename", "label", "audio" (Ta, Da), "visual" (Tv, Dv)}`` float32.

    Raises:
        MediaError: unreadable file, bad checksum, or step counts that disagree with the context.
    """
    records = list(read_tfrecords(path, verify=verify))
    if not records:
        raise MediaError(path, "no record in TFRecord file")
    try:
        context, lists = parse_sequence_example(records[0])
    except ValueError as err:
        raise MediaError(path, f"not a SequenceExample: {err}") from err
    out: dict[str, Any] = {
        "filename": b"".join(context.get("filename", [b""])).decode("utf-8", "replace"),
        "label": b"".join(context.get("label", [b""])).decode("utf-8", "replace"),
    }
    for key, seq, steps_key in (("audio", "audio", "audio_timesteps"), ("visual", "visual_object", "visual_timesteps")):
        steps = lists.get(seq, [])
        vectors = [np.frombuffer(b"".join(s), dtype="<f4") for s in steps]
        if vectors and len({v.size for v in vectors}) != 1:
            raise MediaError(path, f"{seq}: steps of different sizes")
        arr = np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, 0), dtype=np.float32)
        declared = context.get(steps_key)
        if declared is not None and len(declared) and int(declared[0]) != arr.shape[0]:
            raise MediaError(path, f"{steps_key} says {int(declared[0])} but {arr.shape[0]} steps are stored")
        out[key] = arr
    return out


class AVMIT(MediaDataset):
    """AVMIT split as a map-style dataset.

    Args:
        root: folder with the csv files (directly or under ``audiovisual_action_recognition/``).
        split: ``"train"`` (AVMIT_train.csv), ``"val"``, ``"test"`` (960), ``"mit16_val"`` or
            ``"ratings"`` (video_ratings.csv, all 41 classes).
        rating_filter: ``None``, ``"present"``, ``"prominent"`` or ``"unanimous"`` (needs rating columns).
        classes_only: keep only rows of the 16 AVMIT classes (default for every split but ratings).
        embeddings_root: folder with ``<class>/<video>.tfrecord`` (the released embedding tar, unpacked).
        pad_to: zero-pad (or cut) the embedding sequences to this many steps (7 in the reference);
            ``None`` keeps the stored lengths (then batches need ``collate_clips``' ragged lists).
        media_root: folder with the MIT videos (``<filename>``); clips are 3 s.

    A sample: ``name`` (filename), ``label`` (index into :data:`AVMIT_CLASSES`, -1 outside them),
    ``label_name``, ``mit_label``, ``r1``/``r2``/``r3`` and the three flags when rated; with
    embeddings ``audio_embedding`` ``(pad_to, Da)``, ``visual_embedding`` ``(pad_to, Dv)``,
    ``audio_steps``, ``visual_steps``; with media ``video``/``audio`` from ``load_clip``.
    """

    default_clip_kwargs = {"start": 0.0, "duration": 3.0, "sample_rate": 16000}
    classes = AVMIT_CLASSES

    def __init__(
        self,
        root: str | Path,
        split: str = "test",
        *,
        rating_filter: str | None = None,
        classes_only: bool | None = None,
        embeddings_root: str | Path | None = None,
        pad_to: int | None = 7,
        media_root: str | Path | None = None,
        **kwargs: Any,
    ):
        super().__init__(media_root=media_root, **kwargs)
        if split not in AVMIT_SPLIT_FILES:
            raise ConfigError(f"AVMIT split must be one of {list(AVMIT_SPLIT_FILES)}, got {split!r}")
        if rating_filter not in (None, "present", "prominent", "unanimous"):
            raise ConfigError(
                f"rating_filter must be None, 'present', 'prominent' or 'unanimous', got {rating_filter!r}"
            )
        self.root = Path(root)
        self.split = split
        self.embeddings_root = Path(embeddings_root) if embeddings_root is not None else None
        self.pad_to = pad_to
        path = self._find(AVMIT_SPLIT_FILES[split])
        header, rows = read_text_rows(path, header=True)
        cols = {k: next((header.index(a) for a in names if a in header), None) for k, names in _COLS.items()}
        if cols["filename"] is None or cols["label"] is None:
            raise ConfigError(f"{path}: no filename / AVMIT label column in header {header}")
        rated = all(cols[r] is not None for r in ("r1", "r2", "r3"))
        if rating_filter is not None and not rated:
            raise ConfigError(f"{path}: rating_filter={rating_filter!r} needs the r1/r2/r3 rating columns")
        keep16 = split != "ratings" if classes_only is None else classes_only
        index = {c: i for i, c in enumerate(AVMIT_CLASSES)}
        for row in rows:
            rec: dict[str, Any] = {k: row[i] for k, i in cols.items() if i is not None and k not in ("r1", "r2", "r3")}
            rec["name"] = rec["filename"]
            rec["label_name"] = rec.pop("label")
            rec["label"] = index.get(rec["label_name"], -1)
            if keep16 and rec["label"] < 0:
                continue
            if rated:
                r = [int(float(row[cols[k]])) for k in ("r1", "r2", "r3")]
                rec.update(r1=r[0], r2=r[1], r3=r[2], **rating_flags(*r))
                if rating_filter is not None and not rec[rating_filter]:
                    continue
            if "tfrecord_filename" not in rec:
                rec["tfrecord_filename"] = str(Path(rec["filename"]).with_suffix(".tfrecord"))
            self.records.append(rec)

    def _find(self, fname: str) -> Path:
        for sub in _SUBDIRS:
            p = self.root / sub / fname
            if p.is_file():
                return p
        raise ConfigError(f"{self.root}: {fname} not found (also looked in {_SUBDIRS[1]}/)")

    def class_counts(self) -> dict[str, int]:
        """Rows per AVMIT label."""
        counts: dict[str, int] = {}
        for r in self.records:
            counts[r["label_name"]] = counts.get(r["label_name"], 0) + 1
        return counts

    def embedding_path(self, index: int) -> Path | None:
        if self.embeddings_root is None:
            return None
        return self.embeddings_root / self.records[index]["tfrecord_filename"]

    def _pad(self, x: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(x))
        if self.pad_to is None:
            return t
        if t.shape[0] >= self.pad_to:
            return t[: self.pad_to]
        return torch.nn.functional.pad(t, (0, 0, 0, self.pad_to - t.shape[0]))

    def annotation(self, index: int) -> dict[str, Any]:
        return dict(self.records[index])

    def __getitem__(self, index: int):
        if index < 0:
            index += len(self)
        emb_path = self.embedding_path(index)
        if emb_path is None:
            return super().__getitem__(index)
        try:
            if not emb_path.is_file():
                raise MediaError(emb_path, "file not found")
            emb = read_avmit_embeddings(emb_path)
        except MediaError as err:
            if self.on_error == "raise":
                raise
            name = self.records[index]["name"]
            self.skipped[name] = err.reason
            return SkippedSample(index, name, str(emb_path), err.reason)
        sample = super().__getitem__(index)
        if not isinstance(sample, dict):
            return sample
        sample["audio_steps"] = int(emb["audio"].shape[0])
        sample["visual_steps"] = int(emb["visual"].shape[0])
        sample["audio_embedding"] = self._pad(emb["audio"])
        sample["visual_embedding"] = self._pad(emb["visual"])
        return sample

    def media_path(self, index: int) -> Path | None:
        if self.media_root is None:
            return None
        return self.media_root / self.records[index]["filename"]
