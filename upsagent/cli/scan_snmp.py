# -*- test-case-name: tests.test_snmp_scan -*-
"""``upsagent scan snmp START_IP END_IP [options]``: UPS network cards in an address range.

Every address from START_IP to END_IP (IPv4, both included, at most a /16) gets one SNMP
GET (sysObjectID, sysDescr, each MIB's probe and identity objects) with a short timeout
(``--timeout``, default 1 s, ``--retries`` 1), ``--parallel`` addresses at a time (default
64), so a /24 of silent addresses takes a few seconds.  v1/v2c use ``--community`` (default
``public``); v3 takes ``--sec-level``, ``--sec-name``, the protocols and the pass phrases from
files (``--auth-password-file``, ``--priv-password-file``: a pass phrase on the command line
would show in ``ps``).  On a terminal a progress line is shown on standard error.

For each card: address, MIB, manufacturer, model and sysDescr, then the ``ups.conf`` section
and the native ``[[ups]]`` table to paste (v3 pass phrases as ``*_file`` options pointing at
the files given).  Exit status 0 when a card was found, 1 when none, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import TextIO

from upsagent.cli.scan import config_snippets

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    from upsagent.drivers.snmp.settings import AUTH_PROTOCOLS, PRIV_PROTOCOLS, SEC_LEVELS

    parser = argparse.ArgumentParser(
        prog="upsagent scan snmp",
        description="Find UPS network cards between START_IP and END_IP; print the "
                    "configuration that serves each.")
    parser.add_argument("start", metavar="START_IP")
    parser.add_argument("end", metavar="END_IP")
    parser.add_argument("--port", type=int, default=161, help="UDP port (default 161)")
    parser.add_argument("--snmp-version", choices=("v1", "v2c", "v3"), default="v1",
                        help="SNMP version (default v1, as snmp-ups)")
    parser.add_argument("--community", default="public",
                        help="v1/v2c community (default public)")
    parser.add_argument("--sec-level", choices=SEC_LEVELS, default="noAuthNoPriv")
    parser.add_argument("--sec-name", help="v3 user name")
    parser.add_argument("--auth-protocol", choices=AUTH_PROTOCOLS, default="MD5")
    parser.add_argument("--auth-password-file", metavar="FILE")
    parser.add_argument("--priv-protocol", choices=PRIV_PROTOCOLS, default="DES")
    parser.add_argument("--priv-password-file", metavar="FILE")
    parser.add_argument("--mibs", default="auto", help="only cards of this MIB table")
    parser.add_argument("--timeout", type=float, default=1.0,
                        help="seconds to wait for each answer (default 1)")
    parser.add_argument("--retries", type=int, default=1, help="retries (default 1)")
    parser.add_argument("--parallel", type=int, default=64,
                        help="addresses probed at once (default 64)")
    return parser


def _read_secret(path: str | None) -> str | None:
    if path is None:
        return None
    with open(path, encoding="utf-8") as handle:
        return handle.readline().rstrip("\r\n")


def main(argv: list[str], stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """``upsagent scan snmp``; returns the exit status."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        from upsagent.drivers.snmp.client import MISSING_PYSNMP  # noqa: F401
        import pysnmp.hlapi.v3arch.asyncio  # noqa: F401
    except ImportError:
        err.write("upsagent scan snmp: needs pysnmp: install upsagent[snmp]\n")
        return 2
    from upsagent.drivers.snmp import discover, mibs
    from upsagent.drivers.snmp.settings import SettingsError, SnmpSettings, check_v3

    try:
        hosts = list(discover.addresses(args.start, args.end))
    except ValueError as exc:
        parser.error(str(exc))
    if args.mibs != "auto" and mibs.by_name(args.mibs) is None:
        parser.error(f"--mibs {args.mibs!r} is neither auto nor one of "
                     f"{', '.join(sorted(mibs.MIBS))}")
    try:
        template = SnmpSettings(
            host="", port=args.port, version=args.snmp_version, community=args.community,
            sec_level=args.sec_level, sec_name=args.sec_name,
            auth_password=_read_secret(args.auth_password_file),
            priv_password=_read_secret(args.priv_password_file),
            auth_protocol=args.auth_protocol, priv_protocol=args.priv_protocol,
            mibs=args.mibs, timeout=args.timeout, retries=args.retries)
        if args.snmp_version == "v3":
            check_v3(template)
    except (OSError, SettingsError) as exc:
        parser.error(str(exc))
    tty = err.isatty()

    def progress(done: int, total: int, found: int) -> None:
        if tty:
            err.write(f"\rscanning: {done}/{total} addresses, {found} card(s)")
            err.flush()

    began = time.monotonic()
    cards = asyncio.run(discover.scan(hosts, template, args.parallel, progress))
    took = time.monotonic() - began
    if tty:
        err.write("\n")
    out.write(f"{len(cards)} UPS card(s) found between {args.start} and {args.end} "
              f"({len(hosts)} addresses, {took:.1f} s)\n")
    if not cards:
        return 1
    rows = [("ADDRESS", "MIB", "MANUFACTURER", "MODEL", "DESCRIPTION")]
    for card in cards:
        where = card.host if card.port == 161 else f"{card.host}:{card.port}"
        rows.append((where, card.mib, card.mfr or "-", card.model or "-",
                     card.description or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    out.write("\n")
    for row in rows:
        out.write("  ".join(cell.ljust(widths[i]) if i < 4 else cell
                            for i, cell in enumerate(row)).rstrip() + "\n")
    for card in cards:
        where = card.host if card.port == 161 else f"{card.host}:{card.port}"
        name = "ups-" + card.host.replace(".", "-")
        options = [("mibs", card.mib), ("snmp_version", args.snmp_version)]
        if args.snmp_version == "v3":
            options += [("secLevel", args.sec_level), ("secName", args.sec_name or "")]
            if args.sec_level != "noAuthNoPriv":
                options += [("authProtocol", args.auth_protocol),
                            ("authPassword_file", args.auth_password_file or "")]
            if args.sec_level == "authPriv":
                options += [("privProtocol", args.priv_protocol),
                            ("privPassword_file", args.priv_password_file or "")]
        else:
            options.append(("community", args.community))
        desc = " ".join(part for part in (card.mfr, card.model) if part) or None
        nut, native = config_snippets(name, "snmp-ups", where, options, desc)
        out.write(f"\n# {where}: ups.conf\n{nut}\n# {where}: upsagent.toml\n{native}")
    return 0
