"""Helpers for the USB HID tests: fixture loading, a descriptor builder, report bytes.

The builder writes a real report descriptor (bytes our parser reads like any other) from a
list of :class:`Spec`, so that a vendor quirk can be tested against the very usage paths
NUT's tables name, with values put into reports by :func:`report`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from upsagent.drivers.usbhid.hidparser import (
    INDEX_NODE, ReportDescriptor, ReportType, insert, parse_descriptor, parse_hex)
from upsagent.drivers.usbhid.tables import Subdriver
from upsagent.drivers.usbhid.usages import GENERIC, UsageNames

DATA = Path(__file__).parent / "data" / "usbhid"
BACKUPS = "apc-back-ups-cs-500_051d-0002"
SMARTUPS = "apc-smart-ups-x-750_051d-0003"
SANTAK = "santak-tg-box-850_mge-hid"

VOLT, SECOND, VA, KELVIN, HERTZ = 0x00F0D121, 0x00001001, 0x0000D121, 0x00010001, 0x0000F001


def descriptor_bytes(name: str) -> bytes:
    return parse_hex((DATA / f"{name}.rdesc.hex").read_text())


def recorded_reports(name: str) -> dict[int, bytes]:
    """The fixture's reports by id (first column of the .tsv, first byte the id)."""
    out: dict[int, bytes] = {}
    path = DATA / f"{name}.reports.tsv"
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            raw = bytes.fromhex(line.split("\t")[0])
            out[raw[0]] = raw
    return out


def nut_dump(path: Path) -> dict[str, str]:
    """``name: value`` lines of a NUT .dev dump (values kept exactly, spaces included)."""
    out = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#") and ": " in line:
            name, value = line.split(": ", 1)
            out[name] = value
    return out


@dataclass(frozen=True)
class Spec:
    """One field: its path, report and encoding (feature and input by default)."""

    path: str
    report_id: int
    size: int = 8
    logical_min: int = 0
    logical_max: int = 255
    unit: int = 0
    exponent: int = 0
    kinds: tuple[str, ...] = ("feature", "input")


def build(specs: list[Spec], names: UsageNames | None = None) -> bytes:
    """A report descriptor declaring these fields (each in its own collections)."""
    names = names or UsageNames(GENERIC)
    out = bytearray()
    for spec in specs:
        nodes = names.path(spec.path)
        assert nodes is not None, spec.path
        collections: list[tuple[int, int]] = []
        inner, i = nodes[:-1], 0
        while i < len(inner):
            kind = 0x00 if collections else 0x01
            if i + 1 < len(inner) and inner[i + 1] & 0xFFFF0000 == INDEX_NODE:
                kind = 0x80 | (inner[i + 1] & 0x7F)
            collections.append((inner[i], kind))
            i += 2 if kind & 0x80 else 1
        for usage, kind in collections:
            out += b"\x0b" + usage.to_bytes(4, "little") + bytes([0xA1, kind])
        opened = len(collections)
        out += bytes([0x85, spec.report_id, 0x75, spec.size, 0x95, 0x01])
        out += b"\x17" + spec.logical_min.to_bytes(4, "little", signed=True)
        out += b"\x27" + spec.logical_max.to_bytes(4, "little", signed=True)
        out += b"\x67" + spec.unit.to_bytes(4, "little") + bytes([0x55, spec.exponent & 0x0F])
        for kind in spec.kinds:
            out += b"\x0b" + nodes[-1].to_bytes(4, "little")
            out += {"feature": b"\xb1\x02", "input": b"\x81\x02"}[kind]
        out += b"\xc0" * opened
    return bytes(out)


def parse_specs(specs: list[Spec], sub: Subdriver | None = None) -> ReportDescriptor:
    return parse_descriptor(build(specs, sub.names if sub else None))


def report(desc: ReportDescriptor, report_id: int, values: dict[str, int],
           names: UsageNames | None = None, kind: ReportType = ReportType.FEATURE) -> bytes:
    """The bytes of one report with these values (by path) in it."""
    names = names or UsageNames(GENERIC)
    buf = bytearray([report_id]) + bytes(desc.lengths.get((kind, report_id), 0))
    for path, value in values.items():
        nodes = names.path(path)
        assert nodes is not None
        item = desc.find(nodes, kind)
        assert item is not None and item.report_id == report_id, path
        insert(item, buf, value & ((1 << item.size) - 1))
    return bytes(buf)
