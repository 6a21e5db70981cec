# -*- test-case-name: tests.test_snmp_cli -*-
"""``upsagent decode snmp [--mibs NAME] WALK``: what snmp-ups would publish from a walk.

WALK is a recorded walk of the card: snmpsim's ``.snmprec`` (``OID|TYPE|VALUE`` lines, as
``snmpsim-record-commands`` writes them) or net-snmp's ``snmpwalk -On`` output (``.1.3.6... =
TYPE: value``), ``-`` for standard input.  Walk the whole card (``snmpwalk -v2c -c public
-On HOST .1`` > card.walk) so that sysObjectID and the UPS subtrees are in it.

The MIB is chosen as the driver chooses it (sysObjectID, then probing; ``--mibs`` forces
one); the output is ``upsc``'s format, through the one renderer of ``upsagent decode``:
the table's variables, ``ups.status``/``ups.alarm``, ``device.*`` and ``driver.name`` /
``driver.version.data``.  ``--commands`` prints the instant commands the card's objects
allow instead, one per line.  Exit status 0; 1 for an unreadable walk or when no MIB fits
(the message names the sysObjectID); 2 for a usage error.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from upsagent.cli.decode import upsc_text

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="upsagent decode snmp",
        description="Decode a recorded SNMP walk of a UPS network card as upsagent's "
                    "snmp-ups driver would; print upsc's format.")
    parser.add_argument("--mibs", default="auto", metavar="NAME",
                        help="the MIB table to use (default auto: by sysObjectID, then "
                             "probing), as snmp-ups' mibs option")
    parser.add_argument("--commands", action="store_true",
                        help="print the instant commands the walk's objects allow instead")
    parser.add_argument("walk", metavar="WALK",
                        help="the walk: .snmprec or 'snmpwalk -On' text ('-': standard input)")
    return parser


def main(argv: list[str], stdout: TextIO | None = None, stdin: TextIO | None = None,
         stderr: TextIO | None = None) -> int:
    """``upsagent decode snmp``; returns the exit status."""
    from upsagent.drivers.snmp import mibs
    from upsagent.drivers.snmp.mib import publication
    from upsagent.drivers.snmp.values import WalkError, parse_walk

    out, err = stdout or sys.stdout, stderr or sys.stderr
    args = _parser().parse_args(argv)
    if args.mibs != "auto" and mibs.by_name(args.mibs) is None:
        err.write(f"upsagent decode snmp: --mibs {args.mibs!r} is neither auto nor one of "
                  f"{', '.join(sorted(mibs.MIBS))}\n")
        return 2
    try:
        if args.walk == "-":
            text = (stdin or sys.stdin).read()
        else:
            with open(args.walk, encoding="utf-8", errors="surrogateescape") as handle:
                text = handle.read()
        values = parse_walk(text, args.walk)
    except OSError as exc:
        err.write(f"upsagent decode snmp: cannot read {args.walk}: {exc.strerror or exc}\n")
        return 1
    except WalkError as exc:
        err.write(f"upsagent decode snmp: {exc}\n")
        return 1
    found = mibs.from_walk(values, args.mibs)
    if found is None:
        sysoid = mibs.sysoid_text(values.get((1, 3, 6, 1, 2, 1, 1, 2, 0)))
        err.write(f"upsagent decode snmp: no {'' if args.mibs == 'auto' else args.mibs + ' '}"
                  f"UPS MIB fits this walk (sysObjectID {sysoid or 'missing'}); the tables "
                  f"known: {', '.join(m.name for m in mibs.ORDER)}\n")
        return 1
    mib, reading = found
    if args.commands:
        out.write("".join(f"{name}\n" for name in reading.commands))
        return 0
    variables = publication(reading)
    variables["driver.name"] = "snmp-ups"
    variables["driver.version.data"] = f"{mib.name} MIB {mib.version}"
    out.write(upsc_text(variables.items()))
    return 0
