# -*- test-case-name: tests.test_usbhid_decode -*-
"""The shape of a vendor table ("subdriver") and the little language its rows are written in.

A table is text, one row per line, columns separated by white space::

    <name>              <usage path>                              <how>     [flags]
    battery.charge      UPS.PowerSummary.RemainingCapacity        %.0f
    battery.charge.low  UPS.PowerSummary.RemainingCapacityLimit   %.0f      rw:10 semi
    ups.delay.shutdown  UPS.PowerSummary.DelayBeforeShutdown      =20       rw:10
    BOOL                UPS.PowerSummary.PresentStatus.ACPresent  online    quick
    ups.alarm           UPS.PowerSummary.PresentStatus.X          alarm_x
    load.off.delay      UPS.PowerSummary.DelayBeforeShutdown      cmd=20

``<how>`` is a printf format (the value as a number), a conversion name (see
``conversions.py``: lookup tables, dates, status words), ``=<value>`` (a variable the
driver keeps itself, published only when the device has the path: NUT's HU_FLAG_ABSENT), or
``cmd[=<value>]`` (an instant command writing that value, NUT's HU_TYPE_CMD).  ``BOOL``
rows feed status bits, ``ups.alarm`` rows alarm texts.  Flags: ``rw:<n>`` writable string
of at most n characters, ``str:<n>`` read-only string, ``quick`` (read at every
``pollinterval``), ``static`` and ``semi`` (read once; ``semi`` again after a write),
``enum`` (publish the lookup's values as ENUM), ``via:<conversion>`` (a command's value
goes through that conversion).

Rows with the same name are **alternatives tried in order**: the first whose path the
descriptor has and whose value could be read and converted wins (NUT's rule).  A row's
name may be repeated on purpose for ``BOOL`` and ``ups.alarm``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from upsagent.drivers.usbhid.conversions import CONVERSIONS, Conversion
from upsagent.drivers.usbhid.usages import GENERIC, UsageNames, parse_names

if TYPE_CHECKING:
    from upsagent.drivers.usbhid.hidparser import ReportDescriptor

__all__ = ["DeviceInfo", "Row", "Subdriver", "parse_table"]


@dataclass(frozen=True)
class Row:
    """One line of a table."""

    name: str
    path: str
    fmt: str | None = None
    conversion: str | None = None
    default: str | None = None
    command: str | None = None
    is_command: bool = False
    rw: bool = False
    string_len: int | None = None
    quick: bool = False
    static: bool = False
    semi: bool = False
    enum: bool = False
    line: int = 0

    @property
    def absent(self) -> bool:
        """A variable the driver keeps itself (the device only proves it is supported)."""
        return self.default is not None

    @property
    def kind(self) -> str:
        if self.is_command:
            return "cmd"
        if self.absent:
            return "absent"
        if self.name == "BOOL":
            return "bool"
        if self.name.startswith("ups.alarm"):
            return "alarm"
        return "var"


def parse_table(text: str, conversions: Mapping[str, Conversion]) -> tuple[Row, ...]:
    """Parse a table; a mistake in it is a programming error (ValueError at import)."""
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if len(words) < 3:
            raise ValueError(f"table line {number}: {line!r}: need name, path and how")
        name, path, how, flags = words[0], words[1], words[2], words[3:]
        row: dict[str, object] = {"name": name, "path": path, "line": number}
        if how.startswith("%"):
            row["fmt"] = how
        elif how.startswith("="):
            row["default"] = how[1:].replace("\\x20", " ")
        elif how == "cmd" or how.startswith("cmd="):
            row["is_command"] = True
            row["command"] = how[4:] if how.startswith("cmd=") else None
        elif how in conversions:
            row["conversion"] = how
        else:
            raise ValueError(f"table line {number}: unknown conversion {how!r}")
        for word in flags:
            key, _, arg = word.partition(":")
            if key in ("rw", "str"):
                row["rw"] = key == "rw"
                row["string_len"] = int(arg)
            elif key in ("quick", "static", "semi", "enum") and not arg:
                row[key] = True
            elif key == "via" and arg in conversions:
                row["conversion"] = arg
            else:
                raise ValueError(f"table line {number}: bad flag {word!r}")
        rows.append(Row(**row))  # type: ignore[arg-type]
    return tuple(rows)


@dataclass(frozen=True)
class DeviceInfo:
    """What USB says about a device before it is opened (also what ``scan`` lists)."""

    vendor_id: int
    product_id: int
    manufacturer: str | None = None
    product: str | None = None
    serial: str | None = None
    bus: str | None = None
    port: str | None = None
    release: int | None = None
    #: the backend's handle to open it (hidapi path, pyusb device ...)
    handle: object = None
    #: the HID top-level usage page and usage, when the backend knows them
    usage_page: int | None = None
    usage: int | None = None


FixHook = Callable[["ReportDescriptor", DeviceInfo], "ReportDescriptor"]


@dataclass
class Subdriver:
    """A vendor's table and its hooks (NUT's ``subdriver_t``)."""

    key: str
    #: published as driver.version.data (NUT's subdriver name and version)
    name: str
    usb_ids: tuple[tuple[int, int], ...]
    table: str
    usages: str = ""
    conversions: dict[str, Conversion] = field(default_factory=dict)
    #: ups.mfr when the device gives no manufacturer string
    mfr_default: str | None = None
    offdelay: str = "20"
    ondelay: str = "30"
    pollfreq: int = 30
    #: vendor ids this table accepts for any product when ``productid`` is configured
    vendors: tuple[int, ...] = ()
    #: vendor usage pages that betray this family in a descriptor (0xff86: APC)
    pages: tuple[int, ...] = ()
    claim_hook: Callable[[DeviceInfo], bool | None] | None = None
    fix_hook: FixHook | None = None
    #: device -> quirks: ``pollonly`` (interrupt pipe unusable), ``maxreport``
    quirks: Callable[[DeviceInfo], set[str]] | None = None
    #: (decoder state, reports) -> (ups.model, extra variables); APC packs the firmware
    #: into the product string, MGE names the model from iProduct + iModel
    model_hook: Callable[[Any, Mapping[int, bytes]],
                         tuple[str | None, dict[str, str]]] | None = None
    #: per-device state a table's conversions need, reset at every (re)connection
    init_state: Callable[[DeviceInfo], dict[str, object]] | None = None

    def __post_init__(self) -> None:
        self.all_conversions = {**CONVERSIONS, **self.conversions}
        self.rows = parse_table(self.table, self.all_conversions)
        self.names = UsageNames(parse_names(self.usages), GENERIC)

    def claims(self, device: DeviceInfo, productid_given: bool = False) -> bool:
        """Whether this table serves the device (NUT's ``claim``)."""
        if self.claim_hook is not None:
            verdict = self.claim_hook(device)
            if verdict is not None:
                return verdict
        if (device.vendor_id, device.product_id) in self.usb_ids:
            return True
        return productid_given and device.vendor_id in self.vendors

    def conversion(self, name: str | None) -> Conversion | None:
        return None if name is None else self.all_conversions.get(name)
