# -*- test-case-name: tests.test_snmp_scan -*-
"""``upsagent scan <family> ...``: find UPSes this host can reach, with the config to paste.

One family per kind of link; each is a function ``main(argv) -> int`` in :data:`FAMILIES`
(``scan snmp``, ``scan usb``).  Every family prints what it found
and, for each device, the ``ups.conf`` section and the native ``[[ups]]`` table that serve it,
through :func:`config_snippets`, so the families print the same shapes.
"""

from __future__ import annotations

from upsagent.cli.families import run_family

__all__ = ["FAMILIES", "config_snippets", "main"]

#: family -> ("module:function", summary)
FAMILIES: dict[str, tuple[str, str]] = {
    "snmp": ("upsagent.cli.scan_snmp:main",
             "UPS network cards in an IPv4 address range (SNMP v1, v2c, v3)"),
    "usb": ("upsagent.cli.scan_usb:main",
            "USB UPSes attached here (those a driver claims, and HID Power Devices)"),
}

USAGE = """\
usage: upsagent scan <family> [options] ...

Find UPSes and print the configuration that serves them.  Families:

{families}

'upsagent scan <family> --help' describes each one; see also upsagent(8).
"""


def _quote_nut(value: str) -> str:
    if value and all(c.isalnum() or c in "-_.:/@[]" for c in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _quote_toml(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def config_snippets(name: str, driver: str, port: str, options: list[tuple[str, str]],
                    desc: str | None = None) -> tuple[str, str]:
    """(``ups.conf`` section, native ``[[ups]]`` table) for one device."""
    nut = [f"[{name}]", f"\tdriver = {driver}", f"\tport = {_quote_nut(port)}"]
    if desc:
        nut.append(f"\tdesc = {_quote_nut(desc)}")
    nut += [f"\t{key} = {_quote_nut(value)}" for key, value in options]
    native = ["[[ups]]", f"name = {_quote_toml(name)}", f"driver = {_quote_toml(driver)}",
              f"port = {_quote_toml(port)}"]
    if desc:
        native.append(f"desc = {_quote_toml(desc)}")
    if options:
        native.append("[ups.options]")
        native += [f"{key} = {_quote_toml(value)}" for key, value in options]
    return "\n".join(nut) + "\n", "\n".join(native) + "\n"


def main(argv: list[str]) -> int:
    """``upsagent scan <family> ...``."""
    return run_family("scan", FAMILIES, USAGE, argv)
