"""MediaFolder: a reader for users' own audio-video files.

Two ways to give labels:

* ``labels_csv``: a comma-separated file with a header holding a path column (``path``, ``file``,
  ``filename`` or ``name``; relative to ``root``) and a ``label`` column;
* no csv: every media file under ``root`` (recursively), labelled by its parent folder name
  (``root/<label>/<file>``; files directly in ``root`` get the label ``""``).

Class index = position in the sorted label list. Media are decoded lazily with
:func:`avperceive.io.load_clip` and the ``clip_kwargs`` given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .base import MediaDataset, read_text_rows

__all__ = ["MediaFolder", "MEDIA_EXTENSIONS"]

MEDIA_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".wav", ".flac", ".mp3", ".ogg", ".oga", ".m4a")
_PATH_COLUMNS = ("path", "file", "filename", "name")


class MediaFolder(MediaDataset):
    """Media files with labels, as a map-style dataset.

    Args:
        root: folder with the media files.
        labels_csv: optional csv (see the module doc); rows whose file is missing are kept and
            reported by :meth:`check_media` / ``on_error``.
        extensions: file suffixes picked up when scanning ``root``.

    A sample: ``name`` (path relative to ``root``), ``label_name``, ``label`` (index into ``classes``);
    with media ``video`` / ``audio``.
    """

    def __init__(
        self,
        root: str | Path,
        labels_csv: str | Path | None = None,
        *,
        extensions: tuple[str, ...] = MEDIA_EXTENSIONS,
        **kwargs: Any,
    ):
        super().__init__(media_root=root, **kwargs)
        self.root = Path(root)
        entries: list[tuple[str, str]] = []
        if labels_csv is not None:
            header, rows = read_text_rows(labels_csv, header=True)
            lower = [h.strip().lower() for h in header]
            path_col = next((lower.index(c) for c in _PATH_COLUMNS if c in lower), None)
            if path_col is None or "label" not in lower:
                raise ConfigError(f"{labels_csv}: need a path column {_PATH_COLUMNS} and a label column, got {header}")
            label_col = lower.index("label")
            entries = [(r[path_col].strip(), r[label_col].strip()) for r in rows]
        else:
            if not self.root.is_dir():
                raise ConfigError(f"{self.root} is not a folder")
            for p in sorted(self.root.rglob("*")):
                if p.is_file() and p.suffix.lower() in extensions:
                    rel = p.relative_to(self.root)
                    entries.append((rel.as_posix(), rel.parent.name if rel.parent != Path(".") else ""))
        self.classes = sorted({lab for _, lab in entries})
        self.class_to_index = {c: i for i, c in enumerate(self.classes)}
        self.records = [
            {"name": rel, "label_name": lab, "label": self.class_to_index[lab]} for rel, lab in entries
        ]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def media_path(self, index: int) -> Path | None:
        return self.root / self.records[index]["name"]
