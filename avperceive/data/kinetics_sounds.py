"""Kinetics-Sounds reader: the 34-class Kinetics subset of Arandjelović & Zisserman (arXiv 1705.08168, App. A1).

There is no official annotation file: Kinetics-Sounds is a filter over the DeepMind Kinetics csv files
(``label,youtube_id,time_start,time_end,split[,is_cc]``, header, 10-s clips). The paper's class names do
not all match the Kinetics-400 names; :data:`KINETICS_NAME_ALIASES` maps the ones known to differ, and
classes found under neither name are listed in ``missing_classes`` (later papers use 31/32-class
variants, pass ``classes=`` for those). Local files are usually named
``<youtube_id>_<start:06d>_<end:06d>.mp4``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .base import MediaDataset, read_text_rows

__all__ = ["KineticsSounds", "KINETICS_SOUNDS_CLASSES", "KINETICS_NAME_ALIASES"]

KINETICS_SOUNDS_CLASSES = (
    "blowing nose", "bowling", "chopping wood", "ripping paper", "shuffling cards", "singing", "tapping pen",
    "typing", "blowing out", "dribbling ball", "laughing", "mowing the lawn by pushing lawnmower",
    "shoveling snow", "stomping", "tap dancing", "tapping guitar", "tickling", "fingerpicking", "patting",
    "playing accordion", "playing bagpipes", "playing bass guitar", "playing clarinet", "playing drums",
    "playing guitar", "playing harmonica", "playing keyboard", "playing organ", "playing piano",
    "playing saxophone", "playing trombone", "playing trumpet", "playing violin", "playing xylophone",
)  # fmt: skip
#: Paper name -> Kinetics-400 label where the two differ.
KINETICS_NAME_ALIASES = {
    "blowing out": "blowing out candles",
    "dribbling ball": "dribbling basketball",
    "mowing the lawn by pushing lawnmower": "mowing lawn",
}


class KineticsSounds(MediaDataset):
    """Kinetics-Sounds as a filter over a Kinetics csv.

    Args:
        root: folder with the Kinetics csv files, or a csv file.
        split: ``"train"``, ``"validate"``/``"val"`` or ``"test"``: selects ``<split>.csv`` in ``root``
            (a csv path is read as is, filtered by its ``split`` column when present).
        classes: the class list (default the 34 of the paper); the index is the position in this list.
        media_root: folder with ``<youtube_id>_<start:06d>_<end:06d>.mp4``.

    A sample: ``name``, ``youtube_id``, ``start``, ``end``, ``label_name`` (paper name), ``kinetics_label``,
    ``label``. Rows without a label (the Kinetics test csv) are dropped.
    """

    default_clip_kwargs = {"start": 0.0, "duration": 10.0, "num_frames": 10, "sample_rate": 16000}

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        classes: tuple[str, ...] | list[str] = KINETICS_SOUNDS_CLASSES,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        split = "validate" if split == "val" else split
        root = Path(root)
        path = root if root.is_file() else root / f"{split}.csv"
        if not path.is_file():
            raise ConfigError(f"Kinetics csv not found: {path}")
        header, rows = read_text_rows(path, header=True)
        need = ("label", "youtube_id", "time_start", "time_end")
        if any(c not in header for c in need):
            raise ConfigError(f"{path}: header must contain {need}, got {header}")
        col = {c: header.index(c) for c in header}
        self.classes = tuple(classes)
        to_paper = {KINETICS_NAME_ALIASES.get(c, c): c for c in self.classes}
        to_paper.update({c: c for c in self.classes})
        found: set[str] = set()
        for r in rows:
            if "split" in col and root.is_file() and r[col["split"]] != split:
                continue
            kin = r[col["label"]].strip().strip('"')
            paper = to_paper.get(kin)
            if paper is None:
                continue
            found.add(paper)
            start, end = int(float(r[col["time_start"]])), int(float(r[col["time_end"]]))
            self.records.append(
                {
                    "name": f"{r[col['youtube_id']]}_{start:06d}_{end:06d}",
                    "youtube_id": r[col["youtube_id"]],
                    "start": start,
                    "end": end,
                    "label_name": paper,
                    "kinetics_label": kin,
                    "label": self.classes.index(paper),
                }
            )
        self.missing_classes = [c for c in self.classes if c not in found]

    @property
    def num_classes(self) -> int:
        return len(self.classes)
