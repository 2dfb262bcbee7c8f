"""The ``avperceive`` command line: ``describe``, ``predict``, ``convert``, ``models``.

Every error raised on purpose (:class:`avperceive.errors.AvperceiveError`) is printed as one
line on stderr and the exit status is 2; no traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .errors import AvperceiveError, one_line

__all__ = ["main", "build_parser"]


def _cmd_models(args: argparse.Namespace) -> int:
    from .models import get_pretrained_cfg, list_models

    for name in list_models(args.pattern, pretrained=args.pretrained):
        cfg = get_pretrained_cfg(name) if args.pretrained else None
        extra = f"  ({cfg.hub_id}@{cfg.revision})" if cfg and cfg.hub_id else ""
        print(f"{name}{extra}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avperceive", description="Auditory-visual perception toolkit.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list registered models")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'dgsct*'")
    p.add_argument("--pretrained", action="store_true", help="list weight sets (arch.tag)")
    p.set_defaults(func=_cmd_models)

    # Sub-commands owned by other modules add themselves here.
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


def _add_describe(sub) -> None:
    from .analysis.describe_cli import add_subcommand

    add_subcommand(sub)


def _add_predict(sub) -> None:
    from .predict_cli import add_subcommand

    add_subcommand(sub)


def _add_convert(sub) -> None:
    from .hub.convert_cli import add_subcommand

    add_subcommand(sub)


def _optional(adder):
    """Wrap a sub-command adder so a sub-command whose module is absent is simply not offered."""

    def add(sub):
        try:
            adder(sub)
        except ModuleNotFoundError as err:
            if not (err.name or "").startswith("avperceive"):
                raise

    return add


_SUBCOMMANDS = [_optional(_add_describe), _optional(_add_predict), _optional(_add_convert)]


def main(argv: Sequence[str] | None = None) -> int:
    # File names that are not valid UTF-8 reach us surrogate-escaped (PEP 383): print their bytes back.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="surrogateescape" if stream is sys.stdout else "backslashreplace")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except AvperceiveError as err:
        print(f"avperceive {args.command}: error: {one_line(str(err))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("avperceive: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
