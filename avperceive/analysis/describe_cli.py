"""``avperceive describe PATH... [--json] [--plot out.png]``: the weight-free description of clips.

One path: its description (text, or one JSON document with ``--json``); an unreadable file is
one error line and exit status 2. Several paths: each file is described on its own (``--json``:
one JSON object per line, JSON Lines); a file that cannot be read is reported on one stderr line
and the others are still described; the exit status is 2 when any file failed.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import ConfigError, MediaError

__all__ = ["add_subcommand"]


def _run(args: argparse.Namespace) -> int:
    from .describe import describe

    if len(args.paths) == 1:
        return _describe_one(describe, args.paths[0], args)
    if args.plot:
        raise ConfigError("--plot takes one PATH")
    failed = 0
    for path in args.paths:
        try:
            description = describe(path, start=args.start, duration=args.duration, max_lag_s=args.max_lag)
        except MediaError as err:
            failed += 1
            print(f"avperceive describe: error: {err}", file=sys.stderr, flush=True)
            continue
        if args.json:
            print(json.dumps({"path": path, **description.to_dict()}), flush=True)
        else:
            print(f"{path}:\n{description}", flush=True)
    return 2 if failed else 0


def _describe_one(describe, path: str, args: argparse.Namespace) -> int:
    description = describe(path, start=args.start, duration=args.duration, max_lag_s=args.max_lag)
    if args.json:
        print(json.dumps(description.to_dict(), indent=2))
    else:
        print(description)
    if args.plot:
        description.plot(args.plot)
        if not args.json:
            print(f"timeline written to {args.plot}")
    return 0


def add_subcommand(subparsers) -> argparse.ArgumentParser:
    """Add the ``describe`` parser to the ``avperceive`` command's sub-parsers."""
    p = subparsers.add_parser(
        "describe",
        help="describe clips: Schaeffer type, onsets, motion peaks, audio-video sync",
        description="Weight-free perceptual description of audio, video or audio-video files.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="media files (video containers or audio files)")
    p.add_argument("--json", action="store_true", help="print the description as JSON (JSON Lines for several)")
    p.add_argument("--plot", metavar="OUT.png", help="draw the timeline (needs the 'plot' extra: matplotlib)")
    p.add_argument("--start", type=float, default=0.0, help="first second to analyse")
    p.add_argument("--duration", type=float, default=None, help="seconds to analyse (default: to the end)")
    p.add_argument("--max-lag", type=float, default=0.5, help="largest audio-video lag searched (s)")
    p.set_defaults(func=_run)
    return p
