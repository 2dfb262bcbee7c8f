"""Typed errors of avperceive, all in one place.

Every error names what it is about (a file, a key, a config field) and the reason, so a
user can act on the message alone. The command line prints ``str(err)`` on one line and
exits with status 2.
"""

from __future__ import annotations

import re

__all__ = ["AvperceiveError", "MediaError", "CheckpointError", "ConfigError", "one_line"]

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def one_line(text: str) -> str:
    """``text`` without terminal colour codes and with its line breaks folded into spaces."""
    return " ".join(_ANSI.sub("", text).split())


class AvperceiveError(Exception):
    """Base class of every error raised on purpose by avperceive."""


class MediaError(AvperceiveError):
    """A media file cannot be read as asked.

    Args:
        path: the file (or ``"<AVClip>"`` for in-memory clips).
        reason: why, in words (``"no audio stream"``, ``"truncated or corrupt: ..."``); kept on
            one line (line breaks and terminal colour codes of library messages removed).
    """

    def __init__(self, path: object, reason: str):
        self.path = str(path)
        self.reason = one_line(reason)
        super().__init__(f"{self.path}: {reason}")


class CheckpointError(AvperceiveError):
    """A checkpoint does not fit the model or cannot be read.

    Args:
        message: what went wrong.
        missing: keys the model expects that the checkpoint lacks.
        unexpected: keys in the checkpoint that the model does not have.
        mismatched: ``(key, checkpoint_shape, model_shape)`` triples.
    """

    def __init__(
        self,
        message: str,
        *,
        missing: list[str] | tuple[str, ...] = (),
        unexpected: list[str] | tuple[str, ...] = (),
        mismatched: list[tuple[str, tuple, tuple]] | tuple = (),
    ):
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.mismatched = list(mismatched)
        parts = [one_line(message)]
        for label, keys in (("missing keys", self.missing), ("unexpected keys", self.unexpected)):
            if keys:
                shown = ", ".join(keys[:10]) + (f", ... ({len(keys)} in all)" if len(keys) > 10 else "")
                parts.append(f"{label}: {shown}")
        if self.mismatched:
            shown = ", ".join(f"{k} (checkpoint {tuple(a)} vs model {tuple(b)})" for k, a, b in self.mismatched[:10])
            parts.append(f"shape mismatch: {shown}")
        super().__init__("; ".join(parts))


class ConfigError(AvperceiveError, ValueError):
    """A model name, config field or option is not valid (also a ``ValueError``)."""
