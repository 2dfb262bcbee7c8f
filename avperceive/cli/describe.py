"""``avperceive describe PATH [--json] [--plot out.png]``: the weight-free description of a clip."""

from __future__ import annotations

import argparse
import json

__all__ = ["add_subcommand"]


def _run(args: argparse.Namespace) -> int:
    from ..analysis.describe import describe

    description = describe(args.path, start=args.start, duration=args.duration, max_lag_s=args.max_lag)
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
        help="describe a clip: Schaeffer type, onsets, motion peaks, audio-video sync",
        description="Weight-free perceptual description of an audio, video or audio-video file.",
    )
    p.add_argument("path", help="media file (video container or audio file)")
    p.add_argument("--json", action="store_true", help="print the description as JSON")
    p.add_argument("--plot", metavar="OUT.png", help="draw the timeline (needs the 'plot' extra: matplotlib)")
    p.add_argument("--start", type=float, default=0.0, help="first second to analyse")
    p.add_argument("--duration", type=float, default=None, help="seconds to analyse (default: to the end)")
    p.add_argument("--max-lag", type=float, default=0.5, help="largest audio-video lag searched (s)")
    p.set_defaults(func=_run)
    return p
