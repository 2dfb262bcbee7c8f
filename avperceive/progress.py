"""A tiny dependency-free progress bar for the command line (file lists, large checkpoint reads).

Drawn on ``stderr`` with carriage returns, only when that stream is a terminal (or when forced
with ``AVPERCEIVE_PROGRESS=1``; ``AVPERCEIVE_PROGRESS=0`` turns it off everywhere). Works as a
context manager with ``update(n)`` or as an iterator wrapper via :func:`track`.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, TypeVar

__all__ = ["ProgressBar", "track"]

T = TypeVar("T")


def _enabled(disable: bool | None, stream: IO[str]) -> bool:
    env = os.environ.get("AVPERCEIVE_PROGRESS")
    if disable is not None:
        return not disable
    if env is not None:
        return env.strip().lower() not in ("0", "false", "no", "off", "")
    return bool(getattr(stream, "isatty", lambda: False)())


def _human(n: float, unit: str) -> str:
    if unit != "B":
        return f"{int(n)}"
    for prefix in ("", "K", "M", "G", "T"):
        if abs(n) < 1024 or prefix == "T":
            return f"{n:.0f}{prefix}B" if prefix == "" else f"{n:.1f}{prefix}B"
        n /= 1024
    return f"{n:.1f}TB"


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


class ProgressBar:
    """``desc: 42% |########          | 21/50 [00:03<00:04]`` on one line of ``stream``.

    Args:
        total: number of steps (files, bytes); ``None`` shows only the count.
        desc: label in front of the bar.
        unit: ``"B"`` formats counts as bytes.
        disable: ``True``/``False`` to force; ``None`` draws only on a terminal.
        stream: where to draw (``sys.stderr``).
        width: bar width in characters.
    """

    def __init__(
        self,
        total: int | None = None,
        *,
        desc: str = "",
        unit: str = "",
        disable: bool | None = None,
        stream: IO[str] | None = None,
        width: int = 24,
    ):
        self.total = total
        self.desc = desc
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = _enabled(disable, self.stream)
        self.width = width
        self.n = 0
        self._start = time.perf_counter()
        self._last_draw = 0.0
        self._closed = False

    def render(self) -> str:
        """The current line (without the carriage return)."""
        elapsed = time.perf_counter() - self._start
        head = f"{self.desc}: " if self.desc else ""
        if self.total:
            frac = min(self.n / self.total, 1.0)
            filled = int(round(frac * self.width))
            eta = elapsed / frac - elapsed if frac > 0 else 0.0
            return (
                f"{head}{frac * 100:3.0f}% |{'#' * filled}{' ' * (self.width - filled)}| "
                f"{_human(self.n, self.unit)}/{_human(self.total, self.unit)} [{_clock(elapsed)}<{_clock(eta)}]"
            )
        return f"{head}{_human(self.n, self.unit)} [{_clock(elapsed)}]"

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if force or now - self._last_draw >= 0.1:
            self.stream.write("\r" + self.render())
            self.stream.flush()
            self._last_draw = now

    def update(self, n: int = 1) -> None:
        """Advance by ``n`` steps and redraw (at most ten times a second)."""
        self.n += n
        self._draw(force=self.total is not None and self.n >= self.total)

    def write(self, message: str) -> None:
        """Print a line above the bar without breaking it."""
        if self.enabled:
            self.stream.write("\r" + " " * len(self.render()) + "\r")
        print(message, file=self.stream)
        self._draw(force=True)

    def close(self) -> None:
        """Draw the final state and end the line."""
        if self._closed:
            return
        self._closed = True
        if self.enabled:
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> ProgressBar:
        self._draw(force=True)
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def track(
    iterable: Iterable[T], *, total: int | None = None, desc: str = "", disable: bool | None = None
) -> Iterator[T]:
    """Yield from ``iterable`` while drawing a :class:`ProgressBar` (``total`` defaults to ``len``)."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    with ProgressBar(total, desc=desc, disable=disable) as bar:
        for item in iterable:
            yield item
            bar.update(1)
