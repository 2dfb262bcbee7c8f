"""SoundActions reader (Guo, Tørresen & Jensenius, TISMIR 2026, doi 10.5334/tismir.223; data: OSF 3z65b).

365 everyday sound-producing actions, one clip per day of 2022, labelled by three raters. Single-hot
fields (PerceptionType, Enjoyability, Environment) are the majority vote, ``Unknown`` when there is
no majority (:func:`majority_merge`); Material is multi-hot (the union of the raters' tags).

Released spellings (the OSF annotation files): ``Impulse`` / ``Sustain`` / ``Iterative`` / ``Unknown``;
the columns appear as ``Perception type`` or ``PerceptionType`` and ``Enjoyability`` or ``Enjoyable``;
environment ``indoor`` means "other indoors"; the Material text has typos and unlisted tokens which
:func:`clean_materials` maps through :data:`MATERIAL_ALIASES` (unlisted tokens become ``others`` and are
reported in ``SoundActions.oov_materials``; the raw strings are kept).

Model input (the DG-SCT layout of the SoundActions fine-tuning, paper §3.2): 10 one-second
segments; video one frame per second, ``(10, 3, 192, 192)`` float, ImageNet-normalised; audio at
32 kHz, zero-padded / truncated to 10 s, each 1-s slice tiled to the 320,000-sample HTS-AT input,
``(10, 320000)``. For the ``a`` / ``v`` setups the absent modality is all zeros
(:func:`avperceive.io.zero_missing_modality`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from einops import rearrange

from ..errors import ConfigError
from .base import MediaDataset, read_text_rows, tile_segments, zero_missing_modality

__all__ = [
    "SoundActions",
    "PERCEPTION_TYPES",
    "ENJOYABILITY",
    "ENVIRONMENTS",
    "MATERIALS",
    "MATERIAL_ALIASES",
    "clean_materials",
    "majority_merge",
    "union_merge",
]

PERCEPTION_TYPES = ("Impulse", "Sustain", "Iterative", "Unknown")
ENJOYABILITY = ("Yes", "Neutral", "No", "Unknown")
ENVIRONMENTS = ("outdoor", "office", "room", "corridor", "hall", "bathroom", "kitchen", "car", "indoor")
MATERIALS = (
    "metal", "wood", "plastic", "organic", "skin", "stone", "fabric", "rubber", "liquid", "snow", "ceramic",
    "paper", "leather", "electronic", "others",
)  # fmt: skip
#: Typos of the released file and the paper's own cleaning (copper/iron/steel -> metal).
MATERIAL_ALIASES = {
    "liquide": "liquid",
    "lliquid": "liquid",
    "lectronic": "electronic",
    "copper": "metal",
    "iron": "metal",
    "steel": "metal",
    "other": "others",
}
_VALUE_ALIASES = {
    "perception_type": {"impulsive": "Impulse", "sustained": "Sustain", "impulse": "Impulse", "sustain": "Sustain"},
    "environment": {"other indoors": "indoor"},
}
_COLUMNS = {
    "number": ("SoundAction No.", "SoundActionNo", "No.", "No", "id"),
    "perception_type": ("PerceptionType", "Perception type", "Perception Type"),
    "enjoyability": ("Enjoyable", "Enjoyability"),
    "environment": ("Environment",),
    "material": ("Material", "Materials"),
}
LABEL_CLASSES = {
    "perception_type": PERCEPTION_TYPES,
    "enjoyability": ENJOYABILITY,
    "environment": ENVIRONMENTS,
    "material": MATERIALS,
}
_LABEL_FILES = ("labels.csv", "labels/SoundActions_labeling_combined.csv", "labels/SoundActions_labeling_A.csv")
_MEDIA_EXTS = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi")
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def clean_materials(raw: str, *, oov: str = "others") -> tuple[list[str], list[str]]:
    """Material text -> ``(materials, out_of_vocabulary_tokens)``.

    Lower-cases, splits on commas (then on whitespace when a piece is two vocabulary words without a
    comma, e.g. ``"metal plastic"``), maps :data:`MATERIAL_ALIASES`, drops empty pieces (trailing
    commas) and duplicates. A token outside the 15 classes is returned in the second list and, with
    ``oov="others"``, counted as ``others``; with ``oov="drop"`` it is left out.
    """
    if oov not in ("others", "drop"):
        raise ConfigError(f"oov must be 'others' or 'drop', got {oov!r}")
    out: list[str] = []
    unknown: list[str] = []

    def known(tok: str) -> str | None:
        tok = MATERIAL_ALIASES.get(tok, tok)
        return tok if tok in MATERIALS else None

    for piece in raw.lower().split(","):
        piece = piece.strip()
        if not piece:
            continue
        words = [known(w) for w in piece.split()]
        if known(piece) is not None:
            toks = [known(piece)]
        elif len(words) > 1 and all(w is not None for w in words):
            toks = words
        else:
            unknown.append(piece)
            toks = ["others"] if oov == "others" else []
        for t in toks:
            if t not in out:
                out.append(t)
    return out, unknown


def majority_merge(votes: Sequence[Sequence[str]], *, unknown: str = "Unknown") -> list[str]:
    """Merge per-rater single-hot votes into final labels.

    Args:
        votes: per item, the raters' labels (e.g. ``[["Impulse", "Impulse", "Sustain"], ...]``).

    Returns:
        per item, the label chosen by more than half of its raters, else ``unknown``.
    """
    merged = []
    for item in votes:
        if not item:
            merged.append(unknown)
            continue
        label, count = Counter(item).most_common(1)[0]
        merged.append(label if count * 2 > len(item) else unknown)
    return merged


def union_merge(votes: Sequence[Sequence[Sequence[str]]]) -> list[list[str]]:
    """Merge per-rater multi-hot tags (e.g. Material) into their union, first-seen order."""
    return [list(dict.fromkeys(t for rater in item for t in rater)) for item in votes]


def _find_column(header: list[str], field: str) -> int | None:
    norm = {re.sub(r"[\s_]", "", h).lower(): i for i, h in enumerate(header)}
    for name in _COLUMNS[field]:
        key = re.sub(r"[\s_]", "", name).lower()
        if key in norm:
            return norm[key]
    return None


class SoundActions(MediaDataset):
    """SoundActions as a map-style dataset.

    Args:
        root: folder with ``labels.csv`` (or ``labels/SoundActions_labeling_combined.csv``), or the csv itself.
        label: the target: ``"perception_type"``, ``"enjoyability"``, ``"environment"`` (single-hot)
            or ``"material"`` (multi-hot over 15).
        media_root: folder with the videos (default ``root/video-HD`` when it exists, else none).
        match: ``"number"`` (file ``<n>...`` or ``...<n>.mp4`` belongs to ``SoundAction No.`` n) or
            ``"sorted"`` (the reference convention: the i-th file in sorted order is the i-th row;
            the counts must agree).
        modality: ``"av"``, ``"a"`` or ``"v"``: for ``a`` / ``v`` the other stream is all zeros.
        drop_unknown: leave out rows whose single-hot target is ``Unknown`` (the paper's classifier is 4-way, §3.2;
            the reproduction default keeps them, a 4-way task).
        oov: ``"others"`` or ``"drop"`` for unlisted material tokens (see :func:`clean_materials`).
        layout: ``"dgsct"`` (the model input described in the module doc) or ``"raw"``
            (the :class:`~avperceive.io.AVClip` arrays as decoded).
        segments, sample_rate, tile_to, size: the DG-SCT layout parameters.

    A sample: ``name`` (str number), ``number``, ``target`` (class index, or float ``(15,)`` for
    material), ``perception_type``, ``enjoyability``, ``environment`` (strings), ``materials`` (list),
    ``material_raw``, ``material_multi_hot`` float32 ``(15,)``; with media (``layout="dgsct"``)
    ``video`` float32 ``(10, 3, size, size)`` and ``audio`` float32 ``(10, tile_to)``.
    """

    def __init__(
        self,
        root: str | Path,
        label: str = "perception_type",
        *,
        media_root: str | Path | None = None,
        match: str = "number",
        modality: str = "av",
        drop_unknown: bool = False,
        oov: str = "others",
        layout: str = "dgsct",
        segments: int = 10,
        sample_rate: int = 32000,
        tile_to: int | None = 320000,
        size: int = 192,
        **kwargs: Any,
    ):
        root = Path(root)
        if media_root is None and root.is_dir() and (root / "video-HD").is_dir():
            media_root = root / "video-HD"
        kwargs.setdefault("clip_kwargs", {})
        kwargs["clip_kwargs"] = {
            "start": 0.0,
            "duration": float(segments),
            "fps": 1.0,  # frames at 0, 1, 2, ... s (the reference takes frames 1, 26, 51, ... of 25-fps video)
            "size": size,
            "sample_rate": sample_rate,
            "mono": True,
            **kwargs["clip_kwargs"],
        }
        super().__init__(media_root=media_root, **kwargs)
        if label not in LABEL_CLASSES:
            raise ConfigError(f"label must be one of {list(LABEL_CLASSES)}, got {label!r}")
        if match not in ("number", "sorted"):
            raise ConfigError(f"match must be 'number' or 'sorted', got {match!r}")
        if layout not in ("dgsct", "raw"):
            raise ConfigError(f"layout must be 'dgsct' or 'raw', got {layout!r}")
        zero_missing_modality({}, modality)  # validates the name
        self.label = label
        self.classes = LABEL_CLASSES[label]
        self.modality, self.layout = modality, layout
        self.segments, self.sample_rate, self.tile_to, self.size = segments, sample_rate, tile_to, size
        self.labels_file = self._find_labels(root)
        self.oov_materials: Counter[str] = Counter()
        all_records = self._parse(self.labels_file, oov)
        if drop_unknown and label != "material":
            all_records = [r for r in all_records if r[label] != "Unknown"]
        self.records = all_records
        self._media = self._match_media(match) if self.media_root is not None else {}

    @staticmethod
    def _find_labels(root: Path) -> Path:
        if root.is_file():
            return root
        for rel in _LABEL_FILES:
            if (root / rel).is_file():
                return root / rel
        raise ConfigError(f"{root}: no SoundActions label file (looked for {', '.join(_LABEL_FILES)})")

    def _parse(self, path: Path, oov: str) -> list[dict[str, Any]]:
        header, rows = read_text_rows(path, delimiter=",", header=True)
        cols = {f: _find_column(header, f) for f in _COLUMNS}
        for f in ("perception_type", "enjoyability", "environment", "material"):
            if cols[f] is None:
                raise ConfigError(f"{path}: no {f} column (expected one of {_COLUMNS[f]}); header {header}")
        records = []
        for i, row in enumerate(rows):
            row = row + [""] * (len(header) - len(row))
            number = int(row[cols["number"]]) if cols["number"] is not None else i + 1
            rec: dict[str, Any] = {"name": str(number), "number": number}
            for f in ("perception_type", "enjoyability", "environment"):
                value = row[cols[f]].strip()
                value = _VALUE_ALIASES.get(f, {}).get(value.lower(), value)
                if f == "environment":
                    value = value.lower()
                elif value.lower() in ("unknown", ""):
                    value = "Unknown"
                if value not in LABEL_CLASSES[f]:
                    raise ConfigError(f"{path}: row {number}: {f} {value!r} is not one of {LABEL_CLASSES[f]}")
                rec[f] = value
            raw = row[cols["material"]]
            mats, unknown = clean_materials(raw, oov=oov)
            self.oov_materials.update(unknown)
            rec["material_raw"] = raw
            rec["materials"] = mats
            records.append(rec)
        return records

    def _match_media(self, match: str) -> dict[int, Path]:
        files = sorted(p for p in self.media_root.iterdir() if p.suffix.lower() in _MEDIA_EXTS)
        if match == "sorted":
            if len(files) != len(self.records):
                raise ConfigError(
                    f"{self.media_root}: {len(files)} media files but {len(self.records)} label rows; "
                    "match='sorted' needs equal counts"
                )
            return {i: f for i, f in enumerate(files)}
        by_number: dict[int, Path] = {}
        for f in files:
            nums = re.findall(r"\d+", f.stem)
            if nums:
                lead = re.match(r"\d+", f.stem)
                by_number.setdefault(int(lead.group() if lead else nums[-1]), f)
        return {i: by_number[r["number"]] for i, r in enumerate(self.records) if r["number"] in by_number}

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def targets(self) -> list[int]:
        """Class index of every row (single-hot labels only), e.g. for ``stratified_kfold``."""
        if self.label == "material":
            raise ConfigError("material is multi-hot; use annotation(i)['material_multi_hot']")
        return [self.classes.index(r[self.label]) for r in self.records]

    def annotation(self, index: int) -> dict[str, Any]:
        rec = dict(self.records[index])
        multi = np.zeros(len(MATERIALS), dtype=np.float32)
        for m in rec["materials"]:
            multi[MATERIALS.index(m)] = 1.0
        rec["material_multi_hot"] = multi
        rec["target"] = multi if self.label == "material" else self.classes.index(rec[self.label])
        return rec

    def media_path(self, index: int) -> Path | None:
        if self.media_root is None:
            return None
        return self._media.get(index, self.media_root / f"{self.records[index]['number']}.mp4")

    def decode(self, index: int, path: Path) -> dict[str, Any]:
        out = super().decode(index, path)
        if self.layout == "raw":
            return out
        video = out["video"].float().div(255.0)
        video = rearrange(video, "t h w c -> t c h w")
        mean = torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1)
        video = (video - mean) / std
        audio = out["audio"].float().mean(0)
        audio = tile_segments(audio, self.segments, self.sample_rate, self.tile_to)
        return zero_missing_modality({"video": video, "audio": audio}, self.modality)
