# -*- test-case-name: tests.test_usbhid_decode -*-
"""The decoding core: a descriptor, a vendor table and report bytes in, NUT variables out.

Pure: no I/O, no clock, no Twisted.  The driver fetches the reports a walk needs (in a
thread) and hands them over as a dict ``{report id: bytes}``; ``upsagent decode`` hands over
the recorded ones.  The walk follows NUT's ``hid_ups_walk()`` (``drivers/usbhid-ups.c``):

* ``INIT`` maps each table row to the descriptor's **Feature** field with that path (rows
  whose path the device lacks are dropped); a variable already published by an earlier row
  drops the later alternatives; variables the driver keeps itself (``=value`` rows) are
  published with their default; commands are offered only when their field could be read.
* ``QUICK`` reads the ``quick`` rows (status, timers) every ``pollinterval``; ``FULL`` reads
  every mapped row every ``pollfreq``, except ``static``/``semi`` ones while the interrupt
  pipe works (``semi`` ones again after a write).
* An **Input report** from the interrupt pipe updates every mapped row whose field has the
  path of one of the report's Input fields (NUT updates only the first such row; we update
  each, e.g. both ``APCLineFailCause`` rows).

A row whose report is missing (not read, or not recorded) is skipped, exactly like a read
that failed; a conversion that returns None publishes nothing.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from upsagent.drivers.usbhid.conversions import format_value, logical, physical
from upsagent.drivers.usbhid.hidparser import Field, ReportDescriptor, ReportType, extract
from upsagent.drivers.usbhid.status import alarm_texts, apply_word, status_words
from upsagent.drivers.usbhid.tables import DeviceInfo, Row, Subdriver

__all__ = ["HidState", "Mode", "VarInfo"]


def _prefixed(options: Mapping[str, str], prefix: str) -> dict[str, str]:
    return {key[len(prefix):].lower(): value for key, value in options.items()
            if key.lower().startswith(prefix) and len(key) > len(prefix)}


def _strtol(text: str) -> int:
    """C's strtol(text, NULL, 10): the leading integer, 0 if none."""
    digits = ""
    for char in text.strip():
        if char.isdigit() or (not digits and char in "+-"):
            digits += char
        else:
            break
    try:
        return int(digits)
    except ValueError:
        return 0


class Mode(enum.Enum):
    """NUT's walk modes."""

    INIT = "init"
    QUICK = "quick"
    FULL = "full"


@dataclass
class VarInfo:
    """Flags of a published variable (what GET TYPE / LIST ENUM / LIST RANGE show)."""

    writable: bool = False
    string_len: int | None = None
    enum: list[str] = field(default_factory=list)
    ranges: list[tuple[int, int]] = field(default_factory=list)


class HidState:
    """One device's decoded state (NUT's dstate subset, status bits, alarms, commands)."""

    def __init__(self, descriptor: ReportDescriptor, subdriver: Subdriver,
                 device: DeviceInfo, *, options: Mapping[str, str] | None = None,
                 flags: Iterable[str] = (), strings: Callable[[int], str | None] | None = None,
                 interrupt: bool = True) -> None:
        self.subdriver = subdriver
        self.device = device
        self.options: Mapping[str, str] = dict(options or {})
        self.flags = {flag.lower() for flag in flags}
        if subdriver.fix_hook is not None and "disable_fix_report_desc" not in self.flags:
            descriptor = subdriver.fix_hook(descriptor, device)
        self.descriptor = descriptor
        self.vendor_id, self.product_id = device.vendor_id, device.product_id
        self._strings = strings
        #: the interrupt pipe is in use (then static/semi rows are not re-read)
        self.interrupt = interrupt
        self.interrupt_only = "interruptonly" in self.flags
        #: ``override.<var>`` options: fixed values the device never changes; ``default.<var>``
        #: ones: published from the start, so the device's rows for them are dropped (NUT)
        self.overrides = _prefixed(self.options, "override.")
        self.values: dict[str, str] = {**_prefixed(self.options, "default."), **self.overrides}
        self.info: dict[str, VarInfo] = {}
        self.status: set[str] = set()
        self.alarms: list[str] = []
        self.commands: list[str] = []
        self.state: dict[str, Any] = dict(subdriver.init_state(device)) \
            if subdriver.init_state else {}
        #: rows that found their field, in table order
        self.mapped: list[tuple[Row, Field | None]] = []
        #: a write happened: the next full walk re-reads the ``semi`` rows
        self.data_changed = False
        self._resolve()

    # -- the conversion Context ----------------------------------------------------

    def string(self, index: int) -> str | None:
        """A USB string descriptor (None without a device, for index 0, or on failure)."""
        if index <= 0 or self._strings is None:
            return None
        return self._strings(index)

    # -- mapping ---------------------------------------------------------------------

    def _kind(self) -> ReportType:
        return ReportType.INPUT if self.interrupt_only else ReportType.FEATURE

    def field_for(self, path_text: str) -> Field | None:
        """The field a row's path names (Feature, as NUT; Input with ``interruptonly``)."""
        path = self.subdriver.names.path(path_text)
        return None if path is None else self.descriptor.find(path, self._kind())

    def _resolve(self) -> None:
        for row in self.subdriver.rows:
            found = self.field_for(row.path)
            if found is not None:
                self.mapped.append((row, found))

    def needed(self, mode: Mode) -> set[int]:
        """The report ids a walk in this mode reads."""
        return {item.report_id for row, item in self.mapped
                if item is not None and self._due(row, mode)}

    def _due(self, row: Row, mode: Mode) -> bool:
        if mode is Mode.INIT:
            return True
        if mode is Mode.QUICK:
            return row.quick and not row.is_command and not row.absent
        if row.absent or row.is_command:
            return False
        if row.static and self.interrupt:
            return False
        return not (row.semi and not self.data_changed and self.interrupt)

    # -- walking ---------------------------------------------------------------------

    def walk(self, mode: Mode, reports: Mapping[int, bytes]) -> int:
        """Read the due rows from ``reports``; returns how many rows had their report."""
        if mode is Mode.INIT:
            self.identify(reports)
        if mode is Mode.FULL:
            self.alarms = []
        kept: list[tuple[Row, Field | None]] = []
        read = 0
        for row, item in self.mapped:
            if mode is Mode.INIT and not self._keep(row, item):
                continue
            kept.append((row, item))
            if row.absent or not self._due(row, mode) or item is None:
                continue
            report = reports.get(item.report_id)
            if report is None:
                continue
            read += 1
            value = physical(item, extract(item, report))
            if row.is_command:
                if row.name not in self.commands:
                    self.commands.append(row.name)
                continue
            if self.set_value(row, item, value) and mode is Mode.INIT:
                self._set_flags(row, item)
        if mode is Mode.INIT:
            self.mapped = kept
            self._after_init()
        if mode is Mode.FULL:
            self.data_changed = False
            self.alarms = [*self.alarms, *alarm_texts(self.status)]
        return read

    def read_path(self, path_text: str, reports: Mapping[int, bytes]) -> float | None:
        """The physical value at a path in these reports (for the model hooks)."""
        item = self.field_for(path_text)
        report = None if item is None else reports.get(item.report_id)
        if item is None or report is None:
            return None
        return physical(item, extract(item, report))

    def identify(self, reports: Mapping[int, bytes]) -> None:
        """ups.mfr, ups.model, ups.serial and the USB ids, as NUT's callback() sets them."""
        device, sub = self.device, self.subdriver
        model: str | None = device.product
        extra: dict[str, str] = {}
        if sub.model_hook is not None:
            model, extra = sub.model_hook(self, reports)
        mfr = device.manufacturer if device.manufacturer is not None else sub.mfr_default
        self.identity = {name: value for name, value in (
            ("ups.mfr", mfr), ("ups.model", model), ("ups.serial", device.serial))
            if value is not None}
        self.identity.update(extra)
        self.identity["ups.vendorid"] = f"{device.vendor_id:04x}"
        self.identity["ups.productid"] = f"{device.product_id:04x}"

    def _after_init(self) -> None:
        """NUT's upsdrv_initinfo(): user thresholds and delays, composite commands."""
        for option, name in (("lowbatt", "battery.charge.low"), ("ondelay", "ups.delay.start"),
                             ("offdelay", "ups.delay.shutdown")):
            given = self.options.get(option)
            if given is not None and name in self.values and name not in self.overrides:
                self.values[name] = str(_strtol(given))
        # the alarms of the status bits read so far (NUT waits for its first full poll)
        self.alarms = [*self.alarms, *(text for text in alarm_texts(self.status)
                                       if text not in self.alarms)]
        have = {row.name for row, item in self.mapped if row.is_command and item is not None}
        extra = []
        if "load.off.delay" in have:
            extra.append("load.off")
        if "load.on.delay" in have:
            extra.append("load.on")
        if {"load.off.delay", "load.on.delay"} <= have:
            extra += ["shutdown.return", "shutdown.stayoff"]
        for name in extra:
            if name not in self.commands:
                self.commands.append(name)

    def published(self, identity: bool = True) -> dict[str, tuple[str, VarInfo]]:
        """Every variable the driver publishes from the device, with its flags."""
        out: dict[str, tuple[str, VarInfo]] = {}
        ident = getattr(self, "identity", {})
        if identity:
            out["device.type"] = ("ups", VarInfo())
            for name in ("mfr", "model", "serial"):
                if f"ups.{name}" in ident:
                    out[f"device.{name}"] = (ident[f"ups.{name}"], VarInfo())
            for name, value in ident.items():
                out[name] = (value, VarInfo())
        else:
            for name in ("ups.vendorid", "ups.productid"):
                if name in ident:
                    out[name] = (ident[name], VarInfo())
        for name, value in self.values.items():
            out[name] = (value, self.info.get(name, VarInfo()))
        words = self.status_words()
        alarm = self.alarm_text()
        if alarm is not None:
            out["ups.alarm"] = (alarm, VarInfo())
            words = ["ALARM", *words]
        out["ups.status"] = (" ".join(words), VarInfo())
        return out

    def _keep(self, row: Row, item: Field | None) -> bool:
        """INIT: does this row stay mapped (NUT's "only the first alternative")?"""
        if row.absent:
            if row.name not in self.values:
                self.values[row.name] = row.default or ""
                info = self.info[row.name] = VarInfo(row.rw, row.string_len)
                numeric = (row.default or "").lstrip("-").isdigit()
                if row.rw and numeric and item is not None:   # a delay: the field's, >= 0
                    low = max(0, math.ceil(physical(item, item.logical_min)))
                    high = math.floor(physical(item, item.logical_max))
                    info.ranges = [(low, high)] if low <= high else []
            return True
        kind = row.kind
        return kind in ("bool", "alarm", "cmd") or row.name not in self.values

    def interrupt_report(self, report: bytes) -> bool:
        """An Input report from the interrupt pipe; True if it fed a mapped row."""
        if not report:
            return False
        fed = False
        for item in self.descriptor.fields:
            if item.kind is not ReportType.INPUT or item.report_id != report[0]:
                continue
            target = self.descriptor.find(item.path, self._kind()) or item
            value = physical(item, extract(item, report))
            for row, mapped in self.mapped:
                if mapped is target and not row.is_command and not row.absent:
                    self.set_value(row, mapped, value)
                    fed = True
        return fed

    def set_value(self, row: Row, item: Field, value: float) -> bool:
        """NUT's ups_infoval_set(): True when a variable was published."""
        conversion = self.subdriver.conversion(row.conversion)
        text: str | None
        if conversion is not None:
            text = conversion.read(value, self)
            if text is None:
                return False
        elif row.fmt is not None:
            if math.isnan(value) or math.isinf(value):
                return False
            text = format_value(row.fmt, value)
        else:
            return False
        kind = row.kind
        if kind == "bool":
            apply_word(self.status, text)
            return False
        if row.name in self.overrides:
            return False
        if kind == "alarm":
            if text not in self.alarms:
                self.alarms.append(text)
            return False
        self.values[row.name] = text
        return True

    def _set_flags(self, row: Row, item: Field) -> None:
        info = VarInfo(row.rw, row.string_len)
        conversion = self.subdriver.conversion(row.conversion)
        if row.rw and row.enum and conversion is not None:
            info.enum = [text for value, text in conversion.choices
                         if conversion.read(float(value), self) is not None]
        elif row.rw and conversion is None:
            low = math.ceil(physical(item, item.logical_min))
            high = math.floor(physical(item, item.logical_max))
            if low <= high:
                info.ranges = [(low, high)]
        self.info[row.name] = info

    # -- writing ---------------------------------------------------------------------

    def row_for(self, name: str, *, command: bool) -> tuple[Row, Field] | None:
        """The first mapped row of a command or variable (NUT's find_nut_info())."""
        for row, item in self.mapped:
            if row.name.lower() == name.lower() and row.is_command == command \
                    and item is not None:
                return row, item
        return None

    def encode(self, row: Row, item: Field, text: str | None) -> int | None:
        """The logical value writing ``text`` (or the row's default) means; None if invalid."""
        conversion = self.subdriver.conversion(row.conversion)
        if text is None:
            text = row.command
        if conversion is not None and conversion.write is not None:
            number = conversion.write(text or "", self)
            if number is None:
                return None
        else:
            try:
                number = float(int(text or "0"))
            except ValueError:
                return None
        return logical(item, number)

    # -- what gets published -------------------------------------------------------

    def status_words(self) -> list[str]:
        """The words of ups.status; with ``ignorelb``, LB from the thresholds only (NUT)."""
        words = status_words(self.status, self.flags, self.values.get("battery.charge"))
        if "ignorelb" in self.flags:
            words = [word for word in words if word != "LB"]
            for value, low in (("battery.charge", "battery.charge.low"),
                               ("battery.runtime", "battery.runtime.low")):
                if value in self.values and low in self.values and \
                        _strtol(self.values[value]) < _strtol(self.values[low]):
                    words.append("LB")
                    break
        return words

    def alarm_text(self) -> str | None:
        return " ".join(self.alarms) if self.alarms else None
