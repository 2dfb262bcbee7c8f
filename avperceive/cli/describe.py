"""``avperceive describe PATH... [--json] [--plot OUT]``: the weight-free description of media files.

Folders expand to their media files. Text: one description per file. ``--json``: one JSON object
per line (JSONL), one line per file. A file that cannot be read is reported on stderr (one line,
``avperceive describe: error: PATH: reason``) and skipped; the others are still described (and a
last line counts the failures when several files were given). ``--plot``: the timeline of one file to ``OUT``
(PNG, SVG, PDF), or, with several files, one ``<name>.png`` per file in the folder ``OUT``;
the destination is checked before anything is computed. Exit status: 0 when every file was
described, 1 when some failed and others were described, 2 on a usage or input error (nothing to
describe, no file could be described -- e.g. the one file given is bad --, an unwritable plot path,
matplotlib missing); see ``docs/cli.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..errors import ConfigError, one_line
from . import files_exit_status

__all__ = ["add_subcommand"]


def _check_writable_file(path: Path) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise ConfigError(f"--plot {path}: is a folder, expected a file name such as timeline.png")
    if not parent.is_dir():
        raise ConfigError(f"--plot {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ConfigError(f"--plot {path}: not writable (permission denied)")


def _plot_targets(plot: str | None, items: list) -> list[Path | None]:
    """Where each item's plot goes (None: no plot); raises ConfigError before any work if it cannot be written."""
    if plot is None:
        return [None] * len(items)
    from ..analysis.plot import require_matplotlib

    require_matplotlib()
    out = Path(plot)
    if len(items) == 1:
        _check_writable_file(out)
        return [out]
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--plot {out}: with several files, --plot names a folder (one <name>.png per file)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"--plot {out}: cannot create the folder ({err.strerror or err})") from err
    if not os.access(out, os.W_OK):
        raise ConfigError(f"--plot {out}: not writable (permission denied)")
    return [out / f"{Path(str(item)).name}.png" for item in items]


def _run(args: argparse.Namespace) -> int:
    from ..analysis.describe import DescribeFailure, describe_many, expand_media_paths

    if args.start < 0 or (args.duration is not None and args.duration <= 0) or args.max_lag <= 0:
        raise ConfigError(f"need --start >= 0, --duration > 0 and --max-lag > 0, got {args.start}, {args.duration}, "
                          f"{args.max_lag}")
    items = expand_media_paths(args.paths)
    if not items:
        raise ConfigError(f"no media files in {', '.join(args.paths)}")
    targets = _plot_targets(args.plot, items)
    failures = 0
    progress = None if not args.no_progress else False
    results = describe_many(items, progress=progress, start=args.start, duration=args.duration,
                            max_lag_s=args.max_lag)
    for n, (result, target) in enumerate(zip(results, targets)):
        if isinstance(result, DescribeFailure):
            failures += 1
            line = f"avperceive describe: error: {result.source}: {one_line(result.reason)}"
            print(line, file=sys.stderr, flush=True)
            continue
        if args.json:
            print(json.dumps(result.to_dict()), flush=True)
        else:
            print(("\n" if n else "") + str(result), flush=True)
        if target is not None:
            result.plot(target)
            if not args.json:
                print(f"timeline written to {target}")
    if failures and len(items) > 1:
        print(f"avperceive describe: {failures} of {len(items)} file(s) failed", file=sys.stderr)
    return files_exit_status(len(items) - failures, failures)


def add_subcommand(subparsers) -> argparse.ArgumentParser:
    """Add the ``describe`` parser to the ``avperceive`` command's sub-parsers."""
    p = subparsers.add_parser(
        "describe",
        help="describe media files: Schaeffer type, onsets, motion peaks, audio-video sync",
        description="Weight-free perceptual description of audio, video or audio-video files. Files that "
        "cannot be read are reported on stderr and skipped; exit status 1 if any failed, 2 on a usage error.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="media files or folders (their media files)")
    p.add_argument("--json", action="store_true", help="one JSON object per line (JSONL), one line per file")
    p.add_argument("--plot", metavar="OUT",
                   help="draw the timeline to OUT (one file) or to OUT/<name>.png (several); needs matplotlib")
    p.add_argument("--start", type=float, default=0.0, help="first second to analyse")
    p.add_argument("--duration", type=float, default=None, help="seconds to analyse (default: to the end)")
    p.add_argument("--max-lag", type=float, default=0.5, help="largest audio-video lag searched (s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (shown on a terminal for several files)")
    p.set_defaults(func=_run)
    return p
