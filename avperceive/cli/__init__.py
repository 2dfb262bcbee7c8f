"""The ``avperceive`` command line: ``describe``, ``predict``, ``convert``, ``models``, ``--version``.

One package holds the whole command line; each sub-command lives in its own module
(:mod:`.describe`, :mod:`.predict`, :mod:`.convert`, :mod:`.models`) and adds itself with
``add_subcommand(subparsers)``. Nothing below this layer imports it (only ``avperceive/__main__.py``).

Exit status, the same for every sub-command (``docs/cli.md``):

* :data:`EXIT_OK` (0) -- everything asked for was done;
* :data:`EXIT_SOME_FAILED` (1) -- some inputs failed (each reported on stderr), the others were done;
* :data:`EXIT_USAGE` (2) -- usage or input error: a bad option (argparse), any error raised on
  purpose (:class:`avperceive.errors.AvperceiveError`), printed as one line on stderr, no traceback,
  or input files none of which could be used (one bad file alone is an input error: nothing was done).

:func:`files_exit_status` is the one rule the file-processing commands (``describe``, ``predict``) use.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ..errors import AvperceiveError, one_line

__all__ = [
    "main", "build_parser", "files_exit_status",
    "EXIT_OK", "EXIT_SOME_FAILED", "EXIT_USAGE", "EXIT_INTERRUPTED", "EXIT_BROKEN_PIPE",
]  # fmt: skip

#: everything asked for was done.
EXIT_OK = 0
#: some inputs failed (reported one line each on stderr); the others were done.
EXIT_SOME_FAILED = 1
#: usage or input error (argparse's own status for a bad option is 2 as well).
EXIT_USAGE = 2
#: Ctrl-C (128 + SIGINT, the shell convention).
EXIT_INTERRUPTED = 130
#: stdout closed early (``avperceive models --json | head``): 128 + SIGPIPE, as a shell reports it.
EXIT_BROKEN_PIPE = 141


def files_exit_status(done: int, failed: int, *, incomplete: bool = False) -> int:
    """Exit status of a command over input files: ``done`` handled, ``failed`` reported as failed.

    0 when nothing failed (and nothing is left to do); 2 (input error) when files failed and none was
    done, e.g. the one file given cannot be read; 1 when some failed and others were done, or when a
    resumable run left files without a result (``incomplete``).
    """
    if failed and not done and not incomplete:
        return EXIT_USAGE
    return EXIT_SOME_FAILED if failed or incomplete else EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The ``avperceive`` parser with every sub-command (an import error in one is an error, not a gap)."""
    # Imported here, not at the top: the sub-command modules import the exit codes above.
    from .. import __version__
    from . import convert, describe, models, predict

    parser = argparse.ArgumentParser(
        prog="avperceive",
        description="Auditory-visual perception toolkit: describe clips, predict with registered models, "
        "convert official checkpoints, list models.",
        epilog="Exit status: 0 ok, 1 some files failed (reported, others done), 2 usage or input error.",
    )
    parser.add_argument("--version", action="version", version=f"avperceive {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (describe, predict, convert, models):
        module.add_subcommand(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on ``argv`` (default ``sys.argv[1:]``) and return the exit status.

    A usage error exits through argparse (``SystemExit(2)``); every :class:`AvperceiveError` is one
    line ``avperceive COMMAND: error: ...`` on stderr and status 2.
    """
    # File names that are not valid UTF-8 reach us surrogate-escaped (PEP 383): print their bytes back.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="surrogateescape" if stream is sys.stdout else "backslashreplace")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or EXIT_OK)
    except AvperceiveError as err:
        print(f"avperceive {args.command}: error: {one_line(str(err))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("avperceive: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away: stop quietly (no "Exception ignored" message when Python flushes stdout at exit).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
