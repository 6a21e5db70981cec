# -*- test-case-name: tests.test_usbhid_scan -*-
"""``upsagent scan <kind>``: find UPSes and print the configuration to paste.

One kind per transport, each a function ``main(argv) -> int`` in :data:`KINDS` (the SNMP
driver adds ``scan snmp`` there).

``upsagent scan usb [--backend auto|hidapi|pyusb]`` lists every attached USB device that a
driver claims, and every HID device with the Power Device usage page (0x84) that none
claims (the generic table serves it), with vendor, product, serial and bus/port; each is
followed by the ``ups.conf`` section and the native ``[[ups]]`` table to paste (the device
is pinned by its ids and serial, or by its bus and port when it has no usable serial).
Exit status 0 (also when nothing is found, which is said on standard error); 1 when no USB
library is installed (``install upsagent[usb]``) or USB cannot be listed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import TYPE_CHECKING, Callable, TextIO

if TYPE_CHECKING:
    from upsagent.drivers.usbhid.tables import DeviceInfo

__all__ = ["KINDS", "main", "usb"]

#: kind -> ("module:function", summary)
KINDS: dict[str, tuple[str, str]] = {
    "usb": ("upsagent.cli.scan:usb", "USB UPSes (HID Power Devices and those a driver claims)"),
}

USAGE = """\
usage: upsagent scan <kind> [options]

Find UPSes and print the ups.conf section and the [[ups]] table to paste.  Kinds:

{kinds}

'upsagent scan <kind> --help' describes each one; see also upsagent(8).
"""


def main(argv: list[str]) -> int:
    width = max(len(name) for name in KINDS)
    usage = USAGE.format(kinds="\n".join(
        f"  {name:<{width}}  {summary}" for name, (_, summary) in KINDS.items()))
    if not argv or argv[0] in ("-h", "--help"):
        (sys.stdout if argv else sys.stderr).write(usage)
        return 0 if argv else 2
    kind = KINDS.get(argv[0])
    if kind is None:
        sys.stderr.write(f"upsagent scan: unknown kind {argv[0]!r}\n\n{usage}")
        return 2
    module, _, func = kind[0].partition(":")
    entry: Callable[[list[str]], int] = getattr(importlib.import_module(module), func)
    return entry(argv[1:])


def _nut_quote(text: str) -> str:
    """A ups.conf value: quoted, with ``\\`` and ``"`` escaped (NUT's parseconf)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _trivial(serial: str | None) -> bool:
    return not serial or not serial.strip("0 ")


def usb(argv: list[str], stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
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
        table = vendors.select(info)
        if not drivers and info.usage_page != 0x84:
            continue
        seen.add(key)
        number += 1
        driver = drivers[0] if drivers else "usbhid-ups"
        how = f"table {table.name}" if table is not None and driver == "usbhid-ups" else \
            "a HID Power Device no table claims: served by the generic table"
        out.write(_describe(number, info, driver, how))
    if not number:
        err.write("upsagent scan usb: no UPS found (a device may need the udev rules in "
                  "udev/ to be visible to this user)\n")
    return 0


def _describe(number: int, info: "DeviceInfo", driver: str, how: str) -> str:
    """The comment block, the ups.conf section and the [[ups]] table for one device."""
    where = " ".join(part for part in (f"bus {info.bus}" if info.bus else "",
                                       f"port {info.port}" if info.port else "") if part)
    lines = [f"# {info.vendor_id:04x}:{info.product_id:04x} "
             f"{info.manufacturer or '(no manufacturer)'} / {info.product or '(no product)'}"
             f", serial {info.serial or '(none)'}{', ' + where if where else ''}",
             f"# driver {driver} ({how})"]
    options = [("vendorid", f"{info.vendor_id:04x}"), ("productid", f"{info.product_id:04x}")]
    if not _trivial(info.serial):
        options.append(("serial", info.serial or ""))
    else:
        if info.bus:
            options.append(("bus", info.bus))
        if info.port:
            options.append(("busport", info.port))
    desc = " ".join(part for part in (info.manufacturer, info.product) if part)
    name = f"nutdev{number}"
    lines += [f"[{name}]", f"\tdriver = {_nut_quote(driver)}", '\tport = "auto"']
    lines += [f"\t{key} = {_nut_quote(value)}" for key, value in options]
    if desc:
        lines.append(f"\tdesc = {_nut_quote(desc.strip())}")
    lines += ["", "[[ups]]", f"name = {_toml_quote(name)}", f"driver = {_toml_quote(driver)}",
              'port = "auto"']
    if desc:
        lines.append(f"desc = {_toml_quote(desc.strip())}")
    lines.append("[ups.options]")
    lines += [f"{key} = {_toml_quote(value)}" for key, value in options]
    return "\n".join(lines) + "\n\n"
