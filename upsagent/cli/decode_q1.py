# -*- test-case-name: tests.test_qx_decode -*-
"""``upsagent decode q1 [--bridge NAME] LOG``: what the Q1 driver would publish from a log.

LOG is a recorded exchange in the ``.q1log`` format (see
:mod:`upsagent.drivers.qx.q1log`; ``-`` reads standard input).  Where the log has
reassembled replies (``<`` lines) they are used; where it has only raw bridge chunks, they
are reassembled with the bridge's rules: ``--bridge`` names the bridge, else the log's own
``# transport:`` line.  The replies go through the driver's own engine (dialect probing,
checks, status bits, ratings, battery estimates) and the result is printed in upsc's
format by the one renderer of ``upsagent decode``.

Exit status 0; 1 for an unreadable log, a malformed or unknown line (the message names it)
or a log from which no UPS can be decoded; 2 for a usage error.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from upsagent.cli.decode import upsc_text
from upsagent.drivers.qx.bridges import BRIDGES
from upsagent.drivers.qx.q1log import LogError, decode, parse_log

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="upsagent decode q1",
        description="Replay a recorded Megatec/Q1 exchange (.q1log) through upsagent's "
                    "nutdrv_qx driver; print what it would publish, in upsc's format.")
    parser.add_argument("--bridge", choices=BRIDGES, metavar="NAME",
                        help="the USB bridge whose rules reassemble raw chunks "
                             f"({', '.join(BRIDGES)}); default: the log's '# transport:' line")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="also say on stderr which protocol was found and what was "
                             "skipped")
    parser.add_argument("log", metavar="LOG", help="the .q1log file ('-': standard input)")
    return parser


def main(argv: list[str], stdout: TextIO | None = None, stdin: TextIO | None = None,
         stderr: TextIO | None = None) -> int:
    """``upsagent decode q1``; returns the exit status."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    args = _parser().parse_args(argv)
    try:
        if args.log == "-":
            text = (stdin or sys.stdin).read()
        else:
            with open(args.log, encoding="latin-1") as handle:
                text = handle.read()
    except OSError as exc:
        err.write(f"upsagent decode q1: cannot read {args.log}: {exc.strerror or exc}\n")
        return 1
    try:
        values, notes = decode(parse_log(text, args.log), args.bridge)
    except LogError as exc:
        err.write(f"upsagent decode q1: {exc}\n")
        return 1
    if args.verbose:
        for note in notes:
            err.write(f"upsagent decode q1: {note}\n")
    out.write(upsc_text(values.items()))
    return 0
