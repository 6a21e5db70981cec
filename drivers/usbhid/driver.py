# -*- test-case-name: tests.test_usbhid_driver -*-
"""The USB HID Power Device driver, ``driver = usbhid-ups`` (NUT's name), on Twisted.

The Twisted shell around the pure decoder (``decoder.py``) and the blocking USB transport
(``transport.py``).  Every USB call runs through the injected ``run_blocking`` seam (by
default the reactor's thread pool; tests pass one that runs at once, so a ``Clock`` drives
everything deterministically); the reactor thread never blocks.

**Finding the device** (NUT's options, regular expressions matched case-insensitively
against the whole value): ``vendorid``, ``productid``, ``vendor``, ``product``, ``serial``,
``bus``, ``busport``; ``port`` is ignored (``auto``).  A device qualifies when one of the
vendor tables claims its USB ids (``subdriver`` forces a table) or, failing that, when its
HID usage page is 0x84 (a Power Device).  No library: with ``serve = "auto"`` the registry
gives the UPS to NUT's own usbhid-ups (through its socket, see :meth:`implements`); with
``serve = "upsagent"`` the UPS stays not connected and the log says ``install
upsagent[usb]``.

**Reading**: Input reports from the interrupt endpoint are decoded as they arrive (a read
with a short timeout, re-armed at once), so a status change reaches the server's WATCH
clients immediately; Feature reports are polled every ``pollinterval`` (default 2 s) for the
``quick`` rows and every ``pollfreq`` (default 30 s, 12 for CyberPower) for all of them.
``pollonly`` (or a table's quirk, e.g. APC 051d:0003) turns the interrupt pipe off,
``interruptonly`` the polling, ``interruptsize`` bounds interrupt reads.  Every successful
poll calls ``data_ok()``, well within the master's ``maxage``.

**Unplug and replug**: a failed interrupt read, a device that answers no report, or one
that is gone marks the UPS stale at once; the driver then looks for the same device every
``pollinterval`` (same USB ids and the same serial, or the same strings when the serial is
empty or zeros) and, when it is back, reads it afresh and serves it again, no restart.

**Writing**: a writable variable or instant command exists only where the descriptor has its
field (see ``tables.py``); the write is a read-modify-write of the Feature report (NUT's
SET_REPORT), after which the ``semi`` rows are read again.  ``shutdown.return`` and
``shutdown.stayoff`` write DelayBeforeStartup, wait 125 ms (some Tripp Lite firmware drops
back-to-back commands) and write DelayBeforeShutdown, as NUT does; :meth:`killpower` tries
``shutdown.return``, ``shutdown.reboot``, ``load.off.delay``, ``shutdown.stayoff`` in turn
(NUT's upsdrv_shutdown()).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from upsagent.config.schema import UpsConfig
from upsagent.drivers.base import Driver, Result
from upsagent.drivers.usbhid import transport, vendors
from upsagent.drivers.usbhid.decoder import HidState, Mode
from upsagent.drivers.usbhid.hidparser import (
    DescriptorError, Field, ReportDescriptor, ReportType, insert, parse_descriptor)
from upsagent.drivers.usbhid.tables import DeviceInfo, Subdriver
from upsagent.model import UPS
from upsagent.system.threads import Blocking, in_thread

__all__ = ["UsbHidDriver"]

INTERRUPT_TIMEOUT_MS = 500
SHUTDOWN_ORDER = ("shutdown.return", "shutdown.reboot", "load.off.delay", "shutdown.stayoff")


class NoDevice(Exception):
    """No matching device right now."""


@dataclass
class Connection:
    """One open device and its decoded state."""

    device: transport.HidDevice
    info: DeviceInfo
    table: Subdriver
    descriptor: ReportDescriptor
    state: HidState
    quirks: set[str]
    interrupt: bool
    reports: dict[int, bytes] = field(default_factory=dict)


class _Strings:
    """USB strings by index: read from the device while ``live``, then from the cache."""

    def __init__(self, device: transport.HidDevice) -> None:
        self.device, self.live = device, True
        self.cache: dict[int, str | None] = {}

    def __call__(self, index: int) -> str | None:
        if index not in self.cache and self.live:
            self.cache[index] = self.device.string(index)
        value: str | None = self.cache.get(index)
        return value


def _seconds(text: str | None, default: int) -> int:
    try:
        value = int(text) if text is not None else default
    except ValueError:
        return default
    return value if value > 0 else default


def _trivial(serial: str | None) -> bool:
    return not serial or not serial.strip("0 ")


class UsbHidDriver(Driver):
    """NUT's usbhid-ups: one USB HID Power Device."""

    name = "usbhid-ups"
    nut_names = ("usbhid-ups",)
    usb_ids = vendors.all_usb_ids()
    version = "0.1"

    def __init__(self, config: UpsConfig, ups: UPS, reactor: IReactorTime,
                 backend: transport.Backend | None = None,
                 run_blocking: Blocking | None = None) -> None:
        super().__init__(config, ups, reactor)
        self.options = {key.lower(): value for key, value in config.options.items()}
        self.flags = {flag.lower() for flag in config.flags}
        self.pollinterval = _seconds(self.options.get("pollinterval"), 2)
        self._backend = backend
        self._run = run_blocking or in_thread(reactor)
        self._started: Deferred[None] = Deferred()
        self._running = False
        self.conn: Connection | None = None
        self._table: Subdriver | None = None
        self._identity: DeviceInfo | None = None
        self._calls: dict[str, IDelayedCall] = {}
        self._busy = False
        self._reading: Deferred[Any] | None = None
        self._last_full = 0.0
        self._published: set[str] = set()
        self._why: str | None = None

    # -- the Driver contract -----------------------------------------------------------

    @classmethod
    def unfit(cls, config: UpsConfig) -> str | None:
        """Only with a USB library to reach the device: without hidapi and pyusb, ``serve =
        "auto"`` keeps reading NUT's own usbhid-ups through its socket (as before this
        driver existed) and check-config says to install upsagent[usb]; ``serve =
        "upsagent"`` gets this driver, which then says it at start."""
        try:
            transport.backend(config.options.get("backend", "auto"))
        except transport.MissingLibrary as exc:
            return f"upsagent's usbhid-ups cannot reach USB: {exc}"
        return None

    def start(self) -> "Deferred[None]":
        self.publish_driver_info()
        if self._backend is None:
            try:
                self._backend = transport.backend(self.options.get("backend", "auto"))
            except transport.MissingLibrary as exc:
                why = f"usbhid-ups cannot reach USB: {exc}"
                self.log.error("UPS {ups}: {why}", ups=self.config.name, why=why)
                self.ups.disconnected(why)
                return self._started
        self.ups.set("driver.version.usb", self._backend.name)
        self._running = True
        self._attempt()
        return self._started

    def stop(self) -> "Deferred[None]":
        self._running = False
        for call in self._calls.values():
            if call.active():
                call.cancel()
        self._calls.clear()
        done = self._close(self.conn)
        self.conn = None
        self.ups.disconnected("driver stopped")
        return done

    def setvar(self, name: str, value: str) -> "Deferred[Result]":
        conn = self.conn
        if conn is None:
            return succeed(Result.FAILED)
        state = conn.state
        found = state.row_for(name, command=False)
        if found is None or name.lower() in state.overrides:
            return succeed(Result.UNKNOWN)
        row, item = found
        if not row.rw:
            return succeed(Result.UNKNOWN)
        if row.absent:
            state.values[row.name] = value
            self._publish()
            self.ups.commit()
            return succeed(Result.SUCCESS)
        number = state.encode(row, item, value)
        if number is None:
            return succeed(Result.INVALID_ARGUMENT)
        self.log.info("UPS {ups}: SET {name} = {value!r}", ups=self.config.name, name=name,
                      value=value)
        return self._write(conn, item, number)

    def instcmd(self, name: str, value: str | None = None) -> "Deferred[Result]":
        conn = self.conn
        if conn is None:
            return succeed(Result.FAILED)
        alias = {"beeper.off": "beeper.disable", "beeper.on": "beeper.enable"}
        if conn.state.row_for(name, command=True) is None and name.lower() in alias:
            name = alias[name.lower()]          # NUT's compatibility names
        found = conn.state.row_for(name, command=True)
        if found is not None:
            row, item = found
            number = conn.state.encode(row, item, value)
            if number is None:
                return succeed(Result.INVALID_ARGUMENT)
            self.log.info("UPS {ups}: instant command {name} {value}", ups=self.config.name,
                          name=name, value=value if value is not None else row.command)
            return self._write(conn, item, number)
        values = conn.state.values
        if name == "load.on":
            return self.instcmd("load.on.delay", "0")
        if name == "load.off":
            return self.instcmd("load.off.delay", "0")
        if name in ("shutdown.return", "shutdown.stayoff"):
            return self._composite(name == "shutdown.return", values)
        return succeed(Result.UNKNOWN)

    def killpower(self) -> "Deferred[Result]":
        """NUT's upsdrv_shutdown(): the first of SHUTDOWN_ORDER the UPS accepts."""
        order = list(SHUTDOWN_ORDER)

        def attempt(result: Result) -> "Deferred[Result] | Result":
            if result is Result.SUCCESS or not order:
                return result
            command = order.pop(0)
            return self.instcmd(command).addCallback(attempt)

        return succeed(Result.UNKNOWN).addCallback(attempt)

    # -- connecting ------------------------------------------------------------------------

    def _later(self, key: str, delay: float, func: Callable[[], object]) -> None:
        old = self._calls.get(key)
        if old is not None and old.active():
            old.cancel()
        self._calls[key] = self.reactor.callLater(delay, func)

    def _attempt(self) -> None:
        if not self._running or self.conn is not None:
            return
        self._run(self._connect_blocking).addCallbacks(self._connected, self._not_connected)

    def _wanted(self, info: DeviceInfo) -> bool:
        if not transport.matches(info, self.options):
            return False
        known = self._identity
        if known is not None:           # a replug: the same device
            if (info.vendor_id, info.product_id) != (known.vendor_id, known.product_id):
                return False
            if not _trivial(known.serial):
                return info.serial == known.serial
            return (info.manufacturer, info.product) == (known.manufacturer, known.product)
        forced = self.options.get("subdriver")
        return bool(forced) or vendors.select(
            info, productid_given="productid" in self.options) is not None \
            or info.usage_page == 0x84

    def _connect_blocking(self) -> Connection:
        """In a thread: find, open and read the device, and decode it once (INIT)."""
        assert self._backend is not None
        problems = []
        for info in self._backend.enumerate():
            if not self._wanted(info):
                continue
            try:
                return self._open(info)
            except (transport.TransportError, DescriptorError, NoDevice) as exc:
                problems.append(f"{info.vendor_id:04x}:{info.product_id:04x}: {exc}")
        detail = "; ".join(problems) if problems else "no device matches"
        raise NoDevice(f"no usable UPS found ({detail})")

    def _open(self, info: DeviceInfo) -> Connection:
        assert self._backend is not None
        device = self._backend.open(info)
        try:
            descriptor = parse_descriptor(device.descriptor())
            table = self._table or vendors.select(
                info, descriptor, self.options.get("subdriver"), "productid" in self.options)
            if table is None:
                raise NoDevice(f"no table serves it (subdriver "
                               f"{self.options.get('subdriver')!r} unknown)")
            quirks = set(table.quirks(info)) if table.quirks else set()
            interrupt = "pollonly" not in self.flags | quirks
            strings = _Strings(device)
            state = HidState(descriptor, table, info, options=self.options,
                             flags=self.flags, strings=strings, interrupt=interrupt)
            conn = Connection(device, info, table, descriptor, state, quirks, interrupt)
            reports = self._fetch(conn, state.needed(Mode.INIT), strict=False)
            state.walk(Mode.INIT, reports)
            strings.live = False
            return conn
        except Exception:
            device.close()
            raise

    def _fetch(self, conn: Connection, needed: set[int], strict: bool) -> dict[int, bytes]:
        """In a thread: the Feature reports ``needed`` (a report that fails is skipped; with
        ``strict``, none answering means the device is lost, as in NUT)."""
        if "interruptonly" in self.flags:
            return dict(conn.reports)
        got = {}
        for rid in sorted(needed):
            if f"skip:0x{rid:02x}" in conn.quirks:
                continue
            length = 64 if "maxreport" in conn.quirks else \
                conn.descriptor.report_length(ReportType.FEATURE, rid)
            try:
                got[rid] = conn.device.get_feature(rid, length)
            except transport.DeviceGone:
                raise
            except transport.TransportError:
                continue
        if strict and needed and not got:
            raise transport.DeviceGone("the UPS answered none of its reports")
        conn.reports.update(got)
        return got

    def _connected(self, conn: Connection) -> None:
        if not self._running:
            self._close(conn)
            return
        again = self._identity is not None
        self.conn, self._table = conn, conn.table
        self._identity = self._identity or conn.info
        self._why = None
        info = conn.info
        self.log.info(
            "UPS {ups}: {what} {mfr} {product} ({vid:04x}:{pid:04x}, serial {serial}), table "
            "{table}, interrupt pipe {pipe}", ups=self.config.name,
            what="back:" if again else "found", mfr=info.manufacturer or "",
            product=info.product or "", vid=info.vendor_id, pid=info.product_id,
            serial=info.serial or "-", table=conn.table.name,
            pipe="on" if conn.interrupt else "off")
        self._last_full = self.reactor.seconds()
        self._publish()
        self.ups.data_ok()
        if not self._started.called:
            self._started.callback(None)
        self._later("poll", self.pollinterval, self._poll)
        if conn.interrupt:
            self._later("read", 0, self._read)

    def _not_connected(self, failure: Failure) -> None:
        why = failure.getErrorMessage()
        if why != self._why:
            self._why = why
            self.log.warn("UPS {ups}: {why}; trying again every {s} s", ups=self.config.name,
                          why=why, s=self.pollinterval)
        self.ups.data_stale(f"usbhid-ups: {why}")
        if self._running:
            wait = _seconds(self.options.get("waitbeforereconnect"), 0)
            self._later("connect", max(self.pollinterval, wait), self._attempt)

    def _lose(self, conn: Connection, why: str) -> None:
        if conn is not self.conn:
            return
        self.conn = None
        for key in ("poll", "read"):
            call = self._calls.pop(key, None)
            if call is not None and call.active():
                call.cancel()
        self._why = why
        self.log.warn("UPS {ups}: lost the device ({why}); data is stale until it is back",
                      ups=self.config.name, why=why)
        self.ups.data_stale(f"usbhid-ups: {why}")
        self._close(conn)
        if self._running:
            wait = _seconds(self.options.get("waitbeforereconnect"), 0)
            self._later("connect", max(self.pollinterval, wait), self._attempt)

    def _close(self, conn: Connection | None) -> "Deferred[None]":
        if conn is None:
            return succeed(None)
        pending = self._reading if self._reading is not None else succeed(None)
        done: Deferred[None] = Deferred()

        def close(_: object) -> None:
            self._run(conn.device.close).addBoth(lambda _: done.callback(None))

        pending.addBoth(close)
        return done

    # -- polling and interrupts --------------------------------------------------------------

    def _pollfreq(self, conn: Connection) -> int:
        return _seconds(self.options.get("pollfreq"), conn.table.pollfreq)

    def _poll(self) -> None:
        self._later("poll", self.pollinterval, self._poll)
        conn = self.conn
        if conn is None or self._busy:
            return
        state = conn.state
        now = self.reactor.seconds()
        mode = Mode.FULL if state.data_changed or now - self._last_full >= \
            self._pollfreq(conn) else Mode.QUICK
        needed = state.needed(mode)
        self._busy = True

        def done(reports: dict[int, bytes]) -> None:
            self._busy = False
            if conn is not self.conn:
                return
            state.walk(mode, reports)
            if mode is Mode.FULL:
                self._last_full = now
            self._publish()
            self.ups.data_ok()

        def failed(failure: Failure) -> None:
            self._busy = False
            self._lose(conn, failure.getErrorMessage())

        self._run(lambda: self._fetch(conn, needed, strict=True)).addCallbacks(done, failed)

    def _read(self) -> None:
        conn = self.conn
        if conn is None or self._reading is not None:
            return
        size = _seconds(self.options.get("interruptsize"), 0) or max(
            [conn.descriptor.report_length(ReportType.INPUT, rid)
             for rid in conn.descriptor.report_ids(ReportType.INPUT)] + [8]) + 1
        started = self.reactor.seconds()
        reading = self._reading = self._run(
            lambda: conn.device.read_interrupt(size, INTERRUPT_TIMEOUT_MS))

        def got(data: bytes) -> None:
            self._reading = None
            if conn is not self.conn:
                return
            if data:
                report = data if conn.descriptor.numbered else b"\x00" + data
                conn.reports[report[0]] = report
                if conn.state.interrupt_report(report):
                    self._publish()
                    self.ups.data_ok()
            # re-armed at once; after a timeout, only once the timeout has passed (in a
            # thread it has; with a synchronous seam and a Clock it has not)
            waited = self.reactor.seconds() - started
            self._later("read", 0 if data else max(0.0, INTERRUPT_TIMEOUT_MS / 1000 - waited),
                        self._read)

        def failed(failure: Failure) -> None:
            self._reading = None
            self._lose(conn, failure.getErrorMessage())

        reading.addCallbacks(got, failed)

    # -- writing -----------------------------------------------------------------------------

    def _write(self, conn: Connection, item: Field, value: int) -> "Deferred[Result]":
        def blocking() -> None:
            length = conn.descriptor.report_length(ReportType.FEATURE, item.report_id)
            try:
                current = conn.device.get_feature(item.report_id, length)
            except transport.DeviceGone:
                raise
            except transport.TransportError:
                current = conn.reports.get(item.report_id, bytes([item.report_id]))
            buffer = bytearray(current[:length].ljust(length, b"\x00"))
            buffer[0] = item.report_id
            insert(item, buffer, value & ((1 << item.size) - 1))
            conn.device.set_feature(bytes(buffer))

        def done(_: object) -> Result:
            conn.state.data_changed = True
            self._later("poll", 0, self._poll)
            return Result.SUCCESS

        def failed(failure: Failure) -> Result:
            self.log.warn("UPS {ups}: write to report 0x{rid:02x} failed: {why}",
                          ups=self.config.name, rid=item.report_id,
                          why=failure.getErrorMessage())
            if isinstance(failure.value, transport.DeviceGone):
                self._lose(conn, failure.getErrorMessage())
            return Result.FAILED

        return self._run(blocking).addCallbacks(done, failed)

    def _composite(self, returning: bool, values: dict[str, str]) -> "Deferred[Result]":
        """shutdown.return / shutdown.stayoff: startup delay, 125 ms, shutdown delay."""
        first: Deferred[Result] = succeed(Result.SUCCESS)
        if "ups.start.auto" in values:
            first = self.setvar("ups.start.auto", "yes" if returning else "no")
        start = values.get("ups.delay.start") if returning else "-1"

        def on_delay(_: object) -> "Deferred[Result]":
            return self.instcmd("load.on.delay", start)

        def off_delay(result: Result) -> "Deferred[Result] | Result":
            if result is not Result.SUCCESS:
                return result
            pause: Deferred[None] = Deferred()
            self.reactor.callLater(0.125, pause.callback, None)
            return pause.addCallback(
                lambda _: self.instcmd("load.off.delay", values.get("ups.delay.shutdown")))

        return first.addCallback(on_delay).addCallback(off_delay)

    # -- publishing --------------------------------------------------------------------------

    def _publish(self) -> None:
        conn = self.conn
        if conn is None:
            return
        ups = self.ups
        published = conn.state.published()
        for name, (value, info) in published.items():
            ups.set(name, value)
            var = ups.get(name)
            assert var is not None
            var.writable, var.string_len = info.writable, info.string_len
            var.enum, var.ranges = list(info.enum), list(info.ranges)
        for name in self._published - set(published):
            ups.delete(name)
        self._published = set(published)
        ups.set("driver.version.data", conn.table.name)
        ups.set("driver.parameter.pollinterval", str(self.pollinterval))
        ups.set("driver.parameter.pollfreq", str(self._pollfreq(conn)))
        offered = set(conn.state.commands)
        for command in ups.commands():
            if command not in offered:
                ups.remove_command(command)
        for command in conn.state.commands:
            ups.add_command(command)

