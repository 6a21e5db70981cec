# -*- test-case-name: tests.test_qx_driver -*-
"""The Q1 driver: NUT's ``nutdrv_qx``, ``blazer_ser`` and ``blazer_usb`` on Twisted.

**Transport.**  ``blazer_ser`` uses the serial port ``port``; ``blazer_usb`` the USB
bridges; ``nutdrv_qx`` uses USB when ``port = auto`` or a USB matching option is given
(``subdriver``, ``vendorid``, ``productid``, ``vendor``, ``product``, ``serial``, ``bus``,
``langid_fix``), as NUT does, else the serial port.

**Threads.**  Serial and USB I/O block, so every exchange with the device runs through
one injected seam, ``blocking(func) -> Deferred``: the reactor's thread pool in the daemon,
a direct call in tests (with a ``Clock``, so nothing waits for real time but the device's
own reply timeout).  A ``DeferredLock`` keeps one exchange at a time: polls, instant
commands and ``killpower`` never interleave on the wire.

**Life cycle.**  ``start()`` opens the device, probes the dialect (:mod:`.device`) and
fires after the first good status reply; until then the UPS is not connected and the
driver retries with backoff (5, 10, 20, 40, then every 60 s).  Every ``pollinterval``
seconds (default 2) one status query follows; a good reply publishes everything and
calls ``data_ok``.  A poll that gives no data (silence, garbage, echo, truncated) is
counted: three in a row mark the data stale, the next good one makes it current again.
A device that is gone (USB unplugged, serial adapter removed) marks the data stale at once
and the driver reopens it every poll interval: unplug and replug need no restart.

**Commands.**  The dialect's instant commands (:mod:`.publish` formats them; ``(ACK`` or
silence is success, an echo or ``NAK`` failure); ``ups.delay.shutdown`` and
``ups.delay.start`` are server-side values (nutdrv_qx: writable within the dialect's
ranges, rounded to what the UPS can count, the rounding logged).  ``killpower`` does what
NUT's ``upsdrv_shutdown`` does: ``shutdown.stop`` (C) first, then ``shutdown.return``
(``shutdown.stayoff`` with the ``stayoff`` flag), each tried three times; polling stops.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from twisted.internet.defer import Deferred, DeferredLock, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from upsagent.config.schema import UpsConfig
from upsagent.drivers.base import Driver, Result
from upsagent.drivers.qx.bridges import USB_IDS
from upsagent.drivers.qx.codec import NoData, Outcome, StatusReading
from upsagent.drivers.qx.device import Device, Identity, ProbeFailed, Settings
from upsagent.drivers.qx.publish import FLAVOURS, CommandError, QxState
from upsagent.drivers.qx.transport import MissingExtra, SerialTransport, Transport, TransportError
from upsagent.model import UPS
from upsagent.system.threads import Blocking, in_thread

__all__ = ["QxDriver", "make_transport"]

T = TypeVar("T")
#: runs a blocking function somewhere and fires with its result

USB_OPTIONS = ("subdriver", "vendorid", "productid", "vendor", "product", "serial", "bus",
               "langid_fix")
RETRY_DELAYS = (5, 10, 20, 40, 60)
#: polls without data in a row before the data is stale
STALE_AFTER = 3


def make_transport(config: UpsConfig) -> Transport:
    """The transport a section asks for (ValueError with the reason for a bad one)."""
    options = config.options
    flavour = FLAVOURS.get(config.driver, FLAVOURS["nutdrv_qx"])
    port = config.port or options.get("port") or "auto"
    usb = flavour.usb
    if usb is None:
        usb = port.lower() == "auto" or any(key in options for key in USB_OPTIONS)
    if not usb:
        return SerialTransport(port, options.get("cablepower", "normal"))
    from upsagent.drivers.qx.usb import UsbMatch, UsbTransport

    subdriver = options.get("subdriver")
    if subdriver and not (options.get("vendorid") and options.get("productid")):
        raise ValueError("with subdriver, vendorid and productid are needed too (as NUT)")
    langid = options.get("langid_fix")
    try:
        langid_fix = int(langid, 16) if langid else None
    except ValueError:
        raise ValueError(f"langid_fix {langid!r}: a hexadecimal number expected") from None
    return UsbTransport(UsbMatch.from_options(options), subdriver, langid_fix)


def _pollinterval(text: str | None) -> int:
    if text is not None and text.strip().isdigit() and int(text) > 0:
        return int(text)
    return 2


class QxDriver(Driver):
    """A Megatec/Q1 UPS on a serial port or a USB bridge (see the module docstring)."""

    name = "nutdrv_qx"
    nut_names = ("nutdrv_qx", "blazer_ser", "blazer_usb")
    usb_ids = tuple(sorted({(row.vendor_id, row.product_id) for row in USB_IDS}))
    version = "0.32"

    def __init__(self, config: UpsConfig, ups: UPS, reactor: IReactorTime, *,
                 transport: Transport | None = None, blocking: Blocking | None = None) -> None:
        super().__init__(config, ups, reactor)
        options = config.options
        self.flavour = FLAVOURS.get(config.driver, FLAVOURS["nutdrv_qx"])
        self.pollinterval = _pollinterval(options.get("pollinterval"))
        self.flags = tuple(flag.lower() for flag in config.flags)
        self.error: str | None = None
        if transport is None:
            try:
                transport = make_transport(config)
            except ValueError as exc:
                self.error = str(exc)
        self.transport = transport
        self.blocking = blocking or in_thread(reactor)
        settings = Settings(blazer=self.flavour.blazer, protocol=options.get("protocol"),
                            novendor="novendor" in self.flags, norating="norating" in self.flags,
                            ignoresab="ignoresab" in self.flags)
        self.device = Device(transport, settings) if transport is not None else None
        self.state: QxState | None = None
        self._transport_values: dict[str, str] = {}
        self._lock = DeferredLock()
        self._started: Deferred[None] = Deferred()
        self._fired = False
        self._running = False
        self._open = False
        self._call: IDelayedCall | None = None
        self._failures = 0
        self._attempt = 0
        self._logged: str | None = None
        self._dynamic: set[str] = set()

    # -- the Driver contract ----------------------------------------------------------

    def start(self) -> "Deferred[None]":
        """Publish driver.*, then reach the UPS; fires after the first good status."""
        self._publish_driver_info()
        if self.error is not None or self.device is None:
            why = f"configuration: {self.error}"
            self.log.error("UPS {ups}: {why}", ups=self.config.name, why=why)
            self.ups.disconnected(why)
            return self._started
        self._running = True
        self._connect()
        return self._started

    def stop(self) -> "Deferred[None]":
        """Stop polling and release the device."""
        self._running = False
        self._cancel()
        self.ups.disconnected("driver stopped")
        if self.transport is None:
            return succeed(None)
        transport = self.transport
        done: Deferred[None] = self._lock.run(self.blocking, transport.close)
        return done.addErrback(lambda _: None)

    def instcmd(self, name: str, value: str | None = None) -> "Deferred[Result]":
        """Send one of the dialect's instant commands."""
        if self.state is None:
            return succeed(Result.FAILED)
        try:
            text = self.state.command_text(name, value)
        except KeyError:
            return succeed(Result.UNKNOWN)
        except CommandError as exc:
            self.log.error("UPS {ups}: instcmd {name}: {why}", ups=self.config.name, name=name,
                           why=exc)
            return succeed(Result.INVALID_ARGUMENT)
        self.log.info("UPS {ups}: instcmd {name} ({command})", ups=self.config.name,
                      name=name, command=text.rstrip("\r"))
        return self._command(name, [text])

    def setvar(self, name: str, value: str) -> "Deferred[Result]":
        """SET of a delay: checked, rounded to what the UPS can count, published."""
        if self.state is None:
            return succeed(Result.FAILED)
        try:
            effective = self.state.set_delay(name.lower(), value)
        except KeyError:
            return succeed(Result.UNKNOWN)
        except CommandError as exc:
            self.log.error("UPS {ups}: SET {why}", ups=self.config.name, why=exc)
            return succeed(Result.INVALID_ARGUMENT)
        self.log.info("UPS {ups}: SET {name} = {value}", ups=self.config.name,
                      name=name.lower(), value=effective)
        self.ups.set(name.lower(), str(effective))
        self.ups.commit()
        return succeed(Result.SUCCESS)

    def killpower(self) -> "Deferred[Result]":
        """shutdown.stop, then shutdown.return (or .stayoff), as NUT's upsdrv_shutdown."""
        if self.state is None:
            return succeed(Result.FAILED)
        which = "shutdown.stayoff" if "stayoff" in self.flags else "shutdown.return"
        self._running = False  # the last act: no more polls (NUT's driver exits after it)
        self._cancel()
        texts = [self.state.command_text("shutdown.stop"), self.state.command_text(which)]
        self.log.warn("UPS {ups}: killpower: {which} ({command}): output off in {delay} s",
                      ups=self.config.name, which=which, command=texts[1].rstrip("\r"),
                      delay=self.state.offdelay)
        return self._command(which, texts, stop_first=True)

    # -- talking to the device --------------------------------------------------------

    def _command(self, name: str, texts: list[str], stop_first: bool = False) -> "Deferred[Result]":
        device = self.device
        assert device is not None

        def work() -> Outcome:
            if stop_first:  # NUT: cancel a pending shutdown first; failures do not matter
                for _ in range(3):
                    if device.run(texts[0]).ok:
                        break
                outcome = Outcome(False, "not sent")
                for _ in range(3):
                    outcome = device.run(texts[1])
                    if outcome.ok:
                        break
                return outcome
            return device.run(texts[0])

        def done(outcome: Outcome) -> Result:
            log = self.log.info if outcome.ok else self.log.error
            log("UPS {ups}: {name}: {why}", ups=self.config.name, name=name, why=outcome.why)
            return Result.SUCCESS if outcome.ok else Result.FAILED

        def failed(reason: Failure) -> Result:
            self.log.error("UPS {ups}: {name} failed: {why}", ups=self.config.name, name=name,
                           why=reason.getErrorMessage())
            if isinstance(reason.value, TransportError):
                self._lost(reason.getErrorMessage())
            return Result.FAILED

        deferred: Deferred[Outcome] = self._lock.run(self.blocking, work)
        return deferred.addCallbacks(done, failed)

    def _connect(self) -> None:
        """Open the device; probe it the first time, else read its status."""
        self._call = None
        if not self._running:
            return
        transport, device = self.transport, self.device
        assert transport is not None and device is not None
        probed = self.state is not None

        def work() -> tuple[dict[str, str], Identity | StatusReading | NoData]:
            values = transport.open()
            try:
                return values, (device.status() if probed else device.probe())
            except Exception:
                transport.close()
                raise

        deferred: Deferred[Any] = self._lock.run(self.blocking, work)
        deferred.addCallbacks(self._connected, self._connect_failed)

    def _connected(self, result: tuple[dict[str, str], Identity | StatusReading | NoData]) -> None:
        values, found = result
        if not self._running:
            return  # stopped meanwhile (stop() closes the device after this)
        self._open, self._attempt = True, 0
        self._transport_values = values
        assert self.transport is not None
        self.log.info("UPS {ups}: {how} {where}", ups=self.config.name,
                      how="reopened" if self.state else "found on", where=self.transport.description)
        if isinstance(found, Identity):
            self._probed(found)
            self._apply(found.first)
        elif isinstance(found, NoData):
            self._no_data(found)
        else:
            if self.state is not None:
                self.state.transport_values = dict(values)
            self._apply(found)
        self._schedule(self.pollinterval, self._poll)

    def _connect_failed(self, reason: Failure) -> None:
        if not self._running:
            return
        why = reason.getErrorMessage()
        if isinstance(reason.value, MissingExtra):
            self.log.error("UPS {ups}: {why}", ups=self.config.name, why=why)
            self.ups.disconnected(why)
            return
        if not isinstance(reason.value, (TransportError, ProbeFailed, OSError)):
            self.log.failure("UPS {ups}: unexpected error while opening the device", reason,
                             ups=self.config.name)
        elif why != self._logged:
            self.log.warn("UPS {ups}: {why}; trying again", ups=self.config.name, why=why)
        self._logged = why
        self.ups.data_stale(why)
        delay = RETRY_DELAYS[min(self._attempt, len(RETRY_DELAYS) - 1)]
        self._attempt += 1
        self._schedule(delay, self._connect)

    def _probed(self, identity: Identity) -> None:
        dialect = identity.dialect
        self.log.info("UPS {ups}: protocol {name}", ups=self.config.name, name=dialect.name)
        for note in identity.notes:
            self.log.info("UPS {ups}: {note}", ups=self.config.name, note=note)
        self.state = QxState(self.flavour, self.config.options, self.config.flags, identity,
                             self.reactor.seconds(), log=self._note,
                             transport_values=self._transport_values)
        if not self.flavour.blazer:
            self.ups.set("driver.version.data", dialect.name)
        for command in self.state.commands():
            self.ups.add_command(command)

    def _poll(self) -> None:
        self._call = None
        if not self._running:
            return
        if not self._open:
            self._connect()
            return
        assert self.device is not None
        deferred: Deferred[Any] = self._lock.run(self.blocking, self.device.status)
        deferred.addCallbacks(self._polled, self._poll_failed)

    def _polled(self, reading: StatusReading | NoData) -> None:
        if not self._running:
            return
        if isinstance(reading, NoData):
            self._no_data(reading)
        else:
            self._apply(reading)
        self._schedule(self.pollinterval, self._poll)

    def _poll_failed(self, reason: Failure) -> None:
        if not self._running:
            return
        if not isinstance(reason.value, (TransportError, OSError)):
            self.log.failure("UPS {ups}: unexpected error while polling", reason,
                             ups=self.config.name)
        self._lost(reason.getErrorMessage())
        self._schedule(self.pollinterval, self._connect)

    def _lost(self, why: str) -> None:
        """The device is gone: stale at once, reopen later."""
        if self._open:
            self.log.warn("UPS {ups}: lost the device: {why}; data is stale until it is back",
                          ups=self.config.name, why=why)
        self._open = False  # the transport closed itself, in the worker, when it failed
        self._logged = why
        self.ups.data_stale(f"device lost: {why}")

    def _no_data(self, missing: NoData) -> None:
        self._failures += 1
        self.log.debug("UPS {ups}: status query: {why}", ups=self.config.name,
                       why=missing.reason)
        if self._failures == STALE_AFTER:
            why = f"no valid status reply {STALE_AFTER} times in a row (last: {missing.reason})"
            self.log.warn("UPS {ups}: {why}; data is stale", ups=self.config.name, why=why)
            self.ups.data_stale(why)

    def _apply(self, reading: StatusReading) -> None:
        """Publish what ``reading`` says; variables it no longer gives go away."""
        assert self.state is not None
        if self._failures >= STALE_AFTER or self.ups.reason.startswith("device lost"):
            self.log.info("UPS {ups}: communication re-established", ups=self.config.name)
        self._failures = 0
        values = self.state.variables(reading, self.reactor.seconds())
        ups = self.ups
        for name in self._dynamic - set(values):
            ups.delete(name)
        writable = self.state.writable()
        for name, value in values.items():
            ups.set(name, value, writable=name in writable or None)
            if name in writable:
                ups.add_range(name, *writable[name])
        self._dynamic = set(values)
        ups.data_ok()
        if not self._fired:
            self._fired = True
            self._started.callback(None)

    # -- helpers ----------------------------------------------------------------------

    def _note(self, text: str) -> None:
        self.log.info("UPS {ups}: {text}", ups=self.config.name, text=text)

    def _schedule(self, delay: float, func: Callable[[], None]) -> None:
        self._cancel()
        if self._running:
            self._call = self.reactor.callLater(delay, func)

    def _cancel(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _publish_driver_info(self) -> None:
        ups = self.ups
        for var in ups.variables():
            if var.name.lower().startswith("driver."):
                ups.delete(var.name)
        self.publish_driver_info()
        ups.set("driver.version.internal", self.flavour.internal)
        ups.set("driver.parameter.port", self.config.port or self.config.options.get("port")
                or "auto")
        ups.set("driver.parameter.pollinterval", str(self.pollinterval))
        if not self.flavour.blazer:
            ups.set("driver.parameter.pollfreq", self.config.options.get("pollfreq", "30"))
        synchronous = self.config.options.get("synchronous", "auto")
        ups.set("driver.parameter.synchronous",
                synchronous if synchronous in ("yes", "auto") else "no")
