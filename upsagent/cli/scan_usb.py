# -*- test-case-name: tests.test_usbhid_scan -*-
"""``upsagent scan usb [--backend auto|hidapi|pyusb]``: the USB UPSes attached here.

Lists every attached USB device that a driver claims (its ``usb_ids``: the USB HID vendor
tables, the Q1 USB bridges ...), and every HID device with the Power Device usage page
(0x84) that none claims (the USB HID driver's generic table serves it), with vendor,
product, serial and bus/port; each is followed by the ``ups.conf`` section and the native
``[[ups]]`` table to paste (``scan.config_snippets``, the shapes every ``scan`` family
prints), which pin the device by its USB ids and serial, or by its bus and port when it has
no usable serial.

Exit status 0 (also when nothing is found, which is said on standard error); 1 when no USB
library is installed (``install upsagent[usb]``) or USB cannot be listed.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, TextIO

from upsagent.cli.scan import config_snippets

if TYPE_CHECKING:
    from upsagent.drivers.usbhid.tables import DeviceInfo

__all__ = ["main"]


def _trivial(serial: str | None) -> bool:
    return not serial or not serial.strip("0 ")


def main(argv: list[str], stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """``upsagent scan usb``; returns the exit status."""
    from upsagent.drivers.udevrules import claimed_ids
    from upsagent.drivers.usbhid import transport, vendors

    out, err = stdout or sys.stdout, stderr or sys.stderr
    parser = argparse.ArgumentParser(
        prog="upsagent scan usb",
        description="List the USB UPSes attached here and print the configuration for each.")
    parser.add_argument("--backend", choices=("auto", "hidapi", "pyusb"), default="auto",
                        help="the USB library to list devices with (default: hidapi if "
                             "installed, else pyusb)")
    args = parser.parse_args(argv)
    try:
        found = transport.backend(args.backend).enumerate()
    except (transport.MissingLibrary, transport.TransportError) as exc:
        err.write(f"upsagent scan usb: {exc}\n")
        return 1
    claims = claimed_ids()
    seen: set[tuple[object, ...]] = set()
    number = 0
    for info in found:
        key = (info.vendor_id, info.product_id, info.serial, info.bus, info.port)
        if key in seen:
            continue
        ids = (info.vendor_id, info.product_id)
        drivers = [name for name, pairs in claims.items() if ids in pairs]
        if not drivers and info.usage_page != 0x84:
            continue
        seen.add(key)
        number += 1
        driver = drivers[0] if drivers else "usbhid-ups"
        table = vendors.select(info) if driver == "usbhid-ups" else None
        how = f"table {table.name}" if table is not None else (
            "a HID Power Device no table claims: served by the generic table"
            if driver == "usbhid-ups" else f"claimed by {driver}")
        out.write(_describe(number, info, driver, how))
    if not number:
        err.write("upsagent scan usb: no UPS found (a device may need the udev rules in "
                  "udev/ to be visible to this user)\n")
    return 0


def _describe(number: int, info: "DeviceInfo", driver: str, how: str) -> str:
    """The comment lines, the ups.conf section and the [[ups]] table for one device."""
    where = " ".join(part for part in (f"bus {info.bus}" if info.bus else "",
                                       f"port {info.port}" if info.port else "") if part)
    head = (f"# {info.vendor_id:04x}:{info.product_id:04x} "
            f"{info.manufacturer or '(no manufacturer)'} / {info.product or '(no product)'}"
            f", serial {info.serial or '(none)'}{', ' + where if where else ''}\n"
            f"# driver {driver} ({how})\n")
    options = [("vendorid", f"{info.vendor_id:04x}"), ("productid", f"{info.product_id:04x}")]
    if not _trivial(info.serial):
        options.append(("serial", info.serial or ""))
    else:
        if info.bus:
            options.append(("bus", info.bus))
        if info.port:
            options.append(("busport", info.port))
    desc = " ".join(part for part in (info.manufacturer, info.product) if part).strip()
    nut, native = config_snippets(f"nutdev{number}", driver, "auto", options, desc or None)
    return f"{head}{nut}\n{native}\n"
