# -*- test-case-name: tests.test_usbhid_cli -*-
"""``upsagent decode <family> ...``: what a driver would publish from recorded device data.

This is what a user runs to send us a device we do not know: the data the device gave, in,
``upsc`` output out.  One family per driver; each is a function ``main(argv) -> int`` in
:data:`FAMILIES` (the Q1 and SNMP drivers add ``decode q1`` and ``decode snmp`` there), and
every family prints through the one renderer :func:`upsc_text`, so that the output is
byte for byte what ``upsc`` prints for the same variables (``name: value`` lines, in the
order upsd lists them).

``upsagent decode usbhid [--usb-id VVVV:PPPP] [--paths] DESCRIPTOR [REPORTS]``:

* DESCRIPTOR: the HID report descriptor as hex text (white space and line breaks ignored),
  as ``usbhid-ups -DDD`` logs it or ``xxd -p /sys/class/hidraw/hidraw0/device/
  report_descriptor`` prints it; ``-`` reads standard input.
* REPORTS: recorded reports, one per line, the first (tab-separated) column the raw report
  in hex whose first byte is the report id; other columns and ``#`` lines are ignored.  A
  report feeds the Feature and the Input fields of its id.
* ``--usb-id`` picks the vendor table as the device's USB ids would (and publishes
  ``ups.vendorid``/``ups.productid``); without it the descriptor alone decides.
* ``--paths`` prints instead every usage path of every Input and Feature field, one per
  line, ``PATH: VALUE`` (the value after units and exponent) or ``PATH`` alone where no
  report gave one.

Not printed, because a descriptor and reports cannot say them: ups.mfr, ups.model,
ups.serial (USB strings) and the variables whose value is a USB string (battery.type ...).
Exit status 0; 1 for a malformed descriptor (the parser's error, which names the byte) or
unreadable input; 2 for a usage error.
"""

from __future__ import annotations

import argparse
import sys
from typing import Iterable, TextIO

from upsagent.model import UPS
from upsagent.cli.families import run_family

__all__ = ["FAMILIES", "main", "upsc_text", "usbhid"]

#: family -> ("module:function", summary)
FAMILIES: dict[str, tuple[str, str]] = {
    "usbhid": ("upsagent.cli.decode:usbhid",
               "a USB HID Power Device: report descriptor and reports (usbhid-ups)"),
    "q1": ("upsagent.cli.decode_q1:main",
           "a Megatec/Q1 UPS: a recorded exchange, .q1log (nutdrv_qx, blazer_*)"),
    "snmp": ("upsagent.cli.decode_snmp:main",
             "a UPS network card: a recorded SNMP walk, .snmprec or snmpwalk -On (snmp-ups)"),
}

USAGE = """\
usage: upsagent decode <family> [options] FILES...

Print what the driver would publish from recorded device data, in upsc's format.
Families:

{families}

'upsagent decode <family> --help' describes each one; see also upsagent(8).
"""


class InputError(Exception):
    """Input that cannot be read (exit status 1)."""


def upsc_text(variables: Iterable[tuple[str, str]]) -> str:
    """``name: value`` lines in the order upsd lists them (what ``upsc`` prints)."""
    ups = UPS("decode")
    for name, value in variables:
        ups.set(name, value)
    return "".join(f"{var.name}: {var.value}\n" for var in ups.variables())


def main(argv: list[str]) -> int:
    """``upsagent decode <family> ...``."""
    return run_family("decode", FAMILIES, USAGE, argv)


# -- usbhid ------------------------------------------------------------------------------


def _usbhid_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="upsagent decode usbhid",
        description="Decode a USB HID Power Device's report descriptor (and recorded "
                    "reports) as upsagent's usbhid-ups driver would; print upsc's format.")
    parser.add_argument("--usb-id", metavar="VVVV:PPPP",
                        help="the device's USB vendor:product ids (hex); picks the vendor "
                             "table (default: by the descriptor alone)")
    parser.add_argument("--paths", action="store_true",
                        help="print every Input and Feature usage path (PATH: VALUE) "
                             "instead of the NUT variables")
    parser.add_argument("descriptor", metavar="DESCRIPTOR",
                        help="report descriptor as hex text ('-': standard input)")
    parser.add_argument("reports", metavar="REPORTS", nargs="?",
                        help="recorded reports: first column the raw report in hex, first "
                             "byte the report id")
    return parser


def _read(path: str, stdin: TextIO) -> str:
    try:
        if path == "-":
            return stdin.read()
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None


def _usb_id(text: str) -> tuple[int, int]:
    vendor, sep, product = text.partition(":")
    try:
        if not sep or len(vendor) > 4 or len(product) > 4:
            raise ValueError
        return int(vendor, 16), int(product, 16)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--usb-id {text!r}: expected VVVV:PPPP in hex") from None


def parse_reports(text: str, source: str = "REPORTS") -> list[bytes]:
    """The reports of a .tsv text, in order (first column, hex, first byte the id)."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        first = line.split("\t")[0].strip()
        if not first or first.startswith("#"):
            continue
        try:
            raw = bytes.fromhex(first)
        except ValueError:
            raise InputError(f"{source} line {number}: {first!r} is not a report in "
                             "hex") from None
        if raw:
            out.append(raw)
    return out


def usbhid(argv: list[str], stdout: TextIO | None = None, stdin: TextIO | None = None,
           stderr: TextIO | None = None) -> int:
    """``upsagent decode usbhid``; returns the exit status."""
    from upsagent.drivers.usbhid import vendors
    from upsagent.drivers.usbhid.decoder import HidState, Mode
    from upsagent.drivers.usbhid.hidparser import (
        DescriptorError, ReportType, extract, parse_descriptor, parse_hex)
    from upsagent.drivers.usbhid.conversions import physical
    from upsagent.drivers.usbhid.tables import DeviceInfo

    out, err = stdout or sys.stdout, stderr or sys.stderr
    parser = _usbhid_parser()
    args = parser.parse_args(argv)
    try:
        ids = _usb_id(args.usb_id) if args.usb_id else None
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    try:
        text = _read(args.descriptor, stdin or sys.stdin)
        try:
            data = parse_hex(text)
        except ValueError as exc:
            raise InputError(f"{args.descriptor}: {exc}") from None
        descriptor = parse_descriptor(data)
        reports = parse_reports(_read(args.reports, stdin or sys.stdin), args.reports) \
            if args.reports else []
    except (InputError, DescriptorError) as exc:
        err.write(f"upsagent decode usbhid: {exc}\n")
        return 1
    device = DeviceInfo(*(ids or (0, 0)))
    sub = vendors.select(device, descriptor) if ids else vendors.by_descriptor(descriptor)
    sub = sub or vendors.by_descriptor(descriptor)
    by_id = {raw[0]: raw for raw in reports}
    if args.paths:
        seen: set[tuple[int, ...]] = set()
        for item in descriptor.fields:
            if item.kind is ReportType.OUTPUT or item.path in seen:
                continue
            seen.add(item.path)
            name = sub.names.path_text(item.path)
            raw = by_id.get(item.report_id)
            out.write(f"{name}: {physical(item, extract(item, raw)):g}\n" if raw is not None
                      else f"{name}\n")
        return 0
    state = HidState(descriptor, sub, device)
    state.walk(Mode.INIT, by_id)
    for raw in reports:
        state.interrupt_report(raw)
    variables = [(name, value) for name, (value, _) in
                 state.published(identity=False).items()]
    if ids is None:
        variables = [(n, v) for n, v in variables if n not in ("ups.vendorid", "ups.productid")]
    variables += [("driver.name", "usbhid-ups"), ("driver.version.data", sub.name),
                  ("device.type", "ups")]
    out.write(upsc_text(variables))
    return 0
