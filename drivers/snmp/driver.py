# -*- test-case-name: tests.test_snmp_driver -*-
"""The snmp-ups driver: polls a UPS network card and publishes it as NUT's snmp-ups does.

**Start.**  One GET asks for ``sysObjectID`` and every MIB's probe OIDs; the pure selection
(:func:`upsagent.drivers.snmp.mibs.select`) picks the table (``mibs`` option).  A first full
read (static rows, dynamic rows, the objects behind the commands, the alarm tables) follows;
then the UPS has data and ``start()`` fires.  A card that does not answer, or that no table
fits, leaves the UPS ``NOT_CONNECTED`` and is retried every ``pollfreq`` seconds (the log
says why, once).

**Polling.**  Every ``pollfreq`` seconds (default 30, as NUT) one GET of the dynamic rows
the card answered at the first read (static rows are read once) and a walk of each alarm
table that says it has rows.  Between polls the driver tells the master it is alive every
``pollinterval`` seconds (NUT's ``dstate_dataok`` in ``upsdrv_updateinfo``), so that MAXAGE
does not call a healthy card stale.  A poll the card does not answer (timeout after the
retries) makes the UPS stale at once; the next answered poll makes it current again.
Variables the card stops giving disappear; nothing is published from a guess.
:meth:`poll_now` (what a trap triggers) polls at once, unless a poll is running.

**Commands and writable variables.**  The table's commands whose objects answered at the
first read are listed; ``instcmd`` sends their SETs (a delayed command takes its argument,
else the ``offdelay`` / ``ondelay`` option).  ``setvar`` writes a writable row (enum values
mapped back, scale undone, seconds as TimeTicks where the MIB wants them) and publishes the
new value when the card accepted it.  ``killpower`` runs the table's shutdown command
(``shutdown.return``).  Results: SUCCESS, ``ERR UNKNOWN`` (not offered),
``ERR INVALID-ARGUMENT`` (a value that cannot be written), ``ERR FAILED`` (the card refused or
did not answer).

**What is published besides the table**: ``device.type`` ``ups``; ``device.mfr``,
``device.model``, ``device.serial`` copied from ``ups.*`` (NUT's driver core does this);
``driver.name``, ``driver.version*`` (``driver.version.data`` = ``<mib> MIB <version>``) and
``driver.parameter.*`` without the secrets (see :mod:`.settings`).
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from upsagent.config.schema import UpsConfig
from upsagent.drivers.base import Driver, Result
from upsagent.drivers.snmp import mibs, traps
from upsagent.drivers.snmp.client import SnmpError, Transport
from upsagent.drivers.snmp.mib import Command, Mib, Reading, Var, decode, publication
from upsagent.drivers.snmp.settings import SettingsError, SnmpSettings, is_secret, \
    settings_from
from upsagent.drivers.snmp.values import ObjectId, Oid, SnmpValue, TimeTicks, parse_oid
from upsagent.model import UPS

__all__ = ["SnmpDriver", "TransportFactory"]

SYSOID = (1, 3, 6, 1, 2, 1, 1, 2, 0)
#: whole seconds between "still alive" reports while polls are further apart
POLLINTERVAL = 2.0

TransportFactory = Callable[[SnmpSettings, Any], Transport]


def _default_transport(settings: SnmpSettings, reactor: Any) -> Transport:
    from upsagent.drivers.snmp.client import PysnmpTransport

    return PysnmpTransport(settings, reactor)


class SnmpDriver(Driver):
    """NUT's ``snmp-ups`` for one card."""

    name = "snmp"
    nut_names = ("snmp-ups",)
    version = "0.1"

    def __init__(self, config: UpsConfig, ups: UPS, reactor: IReactorTime,
                 transport_factory: TransportFactory | None = None) -> None:
        super().__init__(config, ups, reactor)
        self._factory = transport_factory or _default_transport
        self.settings: SnmpSettings | None = None
        self.transport: Transport | None = None
        self.mib: Mib | None = None
        self.reading: Reading | None = None
        self._static: dict[Oid, SnmpValue] = {}
        self._dynamic: list[Oid] = []
        self._started: Deferred[None] = Deferred()
        self._running = False
        self._connected = False
        self._ok = False
        self._polling = False
        self._poll_call: IDelayedCall | None = None
        self._alive_call: IDelayedCall | None = None
        self._last_error: str | None = None
        #: (reactor time, trigger) of every poll started, for tests and the bench
        self.polls: list[tuple[float, str]] = []

    # -- the Driver contract -------------------------------------------------------------

    def start(self) -> "Deferred[None]":
        """Read the options, reach the card; fires after the first full read."""
        self._publish_driver_info()
        try:
            self.settings = settings_from(self.config)
        except SettingsError as exc:
            return self._give_up(f"snmp-ups: {exc}")
        try:
            self.transport = self._factory(self.settings, self.reactor)
        except ImportError as exc:
            return self._give_up(str(exc))
        self._running = True
        traps.register(self)
        self._schedule(0, "start")
        self._alive()
        return self._started

    def stop(self) -> "Deferred[None]":
        """Stop polling and release the transport; the UPS is no longer connected."""
        self._running = False
        traps.unregister(self)
        for call in (self._poll_call, self._alive_call):
            if call is not None and call.active():
                call.cancel()
        self._poll_call = self._alive_call = None
        if self.transport is not None:
            self.transport.close()
        self.ups.disconnected("driver stopped")
        return succeed(None)

    def poll_now(self, why: str = "trap") -> None:
        """Poll at once (a trap came): unless a poll is running or the driver is stopped."""
        if self._running and not self._polling:
            self._schedule(0, why)

    def instcmd(self, name: str, value: str | None = None) -> "Deferred[Result]":
        """Run a command the card offers (see the module docstring)."""
        command = self._command(name)
        if command is None:
            return succeed(Result.UNKNOWN)
        try:
            items = self._command_sets(command, value)
        except ValueError as exc:
            self.log.warn("UPS {ups}: instcmd {name}: {why}", ups=self.config.name,
                          name=name, why=str(exc))
            return succeed(Result.INVALID_ARGUMENT)
        return self._send(f"instcmd {name}", items)

    def setvar(self, name: str, value: str) -> "Deferred[Result]":
        """Write a writable variable; publish the value the card accepted."""
        var = None if self.reading is None else self.reading.rows.get(name)
        if var is None or var.set_as is None or var.oid is None:
            return succeed(Result.UNKNOWN)
        try:
            raw = _raw_for(var, value)
        except ValueError as exc:
            self.log.warn("UPS {ups}: SET {name}: {why}", ups=self.config.name, name=name,
                          why=str(exc))
            return succeed(Result.INVALID_ARGUMENT)
        sent = self._send(f"SET {name}", [(parse_oid(var.oid), raw)])

        def published(result: Result) -> Result:
            if result is Result.SUCCESS:
                self.ups.set(name, value)
                self.ups.commit()
            return result

        return sent.addCallback(published)

    def killpower(self) -> "Deferred[Result]":
        """The table's shutdown command (``shutdown.return``), if the card offers it."""
        if self.mib is None or self.reading is None:
            return succeed(Result.FAILED)
        for name in self.mib.killpower:
            if name in self.reading.commands:
                self.log.warn("UPS {ups}: killpower: {name}", ups=self.config.name,
                              name=name)
                return self.instcmd(name)
        self.log.error("UPS {ups}: killpower: the card offers none of {names}",
                       ups=self.config.name, names=", ".join(self.mib.killpower))
        return succeed(Result.UNKNOWN)

    # -- polling --------------------------------------------------------------------------

    def _schedule(self, delay: float, why: str) -> None:
        if self._poll_call is not None and self._poll_call.active():
            self._poll_call.cancel()
        self._poll_call = self.reactor.callLater(delay, self._poll, why)

    def _alive(self) -> None:
        """Every pollinterval: tell the master the driver lives while the data is good."""
        self._alive_call = None
        if not self._running:
            return
        if self._ok:
            self.ups.data_ok()
        self._alive_call = self.reactor.callLater(POLLINTERVAL, self._alive)

    def _poll(self, why: str) -> None:
        self._poll_call = None
        if not self._running or self._polling:
            return
        self._polling = True
        self.polls.append((self.reactor.seconds(), why))
        work = self._read() if self._connected else self._connect()
        work.addCallbacks(self._polled, self._failed)

    def _next(self) -> None:
        self._polling = False
        if self._running:
            assert self.settings is not None
            self._schedule(self.settings.pollfreq, "timer")

    def _connect(self) -> "Deferred[None]":
        """Select the MIB, then make the first full read."""
        assert self.settings is not None
        settings = self.settings
        wanted = [SYSOID, *mibs.probe_oids()]

        def chosen(values: dict[Oid, SnmpValue]) -> "Deferred[None]":
            sysoid = mibs.sysoid_text(values.get(SYSOID))
            mib = mibs.select(sysoid, set(values),
                              settings.mibs)
            if mib is None:
                known = mibs.by_name(settings.mibs) if settings.mibs != "auto" else True
                if known is None:
                    raise _NoMib(f"mibs={settings.mibs!r} is neither auto nor one of "
                                 f"{', '.join(sorted(mibs.MIBS))}")
                raise _NoMib(f"no supported UPS MIB answers at {settings.host} "
                             f"(sysObjectID {sysoid or 'not given'}, mibs={settings.mibs})")
            self.mib = mib
            self.log.info("UPS {ups}: {host} speaks {mib} ({what}), sysObjectID {oid}",
                          ups=self.config.name, host=settings.host, mib=mib.name,
                          what=mib.description, oid=sysoid)
            return self._first_read(mib)

        assert self.transport is not None
        return self.transport.get(wanted).addCallback(chosen)

    def _first_read(self, mib: Mib) -> "Deferred[None]":
        oids = list(dict.fromkeys(mib.scalar_oids() + mib.command_oids()))

        def got(values: dict[Oid, SnmpValue]) -> "Deferred[None]":
            static = set(mib.scalar_oids(static=True))
            self._static = {oid: v for oid, v in values.items() if oid in static}
            dynamic = set(mib.scalar_oids(static=False))
            self._dynamic = [oid for oid in mib.scalar_oids(static=False) if oid in values
                             and oid in dynamic]
            self._connected = True
            return self._walk_alarms(mib, values)

        assert self.transport is not None
        return self.transport.get(oids).addCallback(got)

    def _read(self) -> "Deferred[None]":
        assert self.mib is not None
        mib = self.mib

        def got(values: dict[Oid, SnmpValue]) -> "Deferred[None]":
            return self._walk_alarms(mib, {**self._static, **values})

        assert self.transport is not None
        return self.transport.get(self._dynamic).addCallback(got)

    def _walk_alarms(self, mib: Mib, values: dict[Oid, SnmpValue]) -> "Deferred[None]":
        walked: dict[str, list[SnmpValue]] = {}
        tables = [t for t in mib.alarm_tables
                  if t.count is None or (_positive(values.get(parse_oid(t.count))))]
        done: Deferred[None] = succeed(None)
        transport = self.transport
        assert transport is not None
        for table in tables:
            def walk(_: object, table: Any = table) -> "Deferred[None]":
                def rows(found: list[tuple[Oid, SnmpValue]]) -> None:
                    walked[table.column] = [value for _, value in found]
                return transport.walk(parse_oid(table.column)).addCallback(rows)
            done.addCallback(walk)
        return done.addCallback(lambda _: self._publish(mib, values, walked))

    def _publish(self, mib: Mib, values: dict[Oid, SnmpValue],
                 walked: dict[str, list[SnmpValue]]) -> None:
        reading = decode(mib, values, walked)
        if self.reading is not None:  # commands are what the first read found
            reading.commands = self.reading.commands
        self.reading = reading
        published = publication(reading)
        keep = {name.lower() for name in published}
        for var in self.ups.variables():
            low = var.name.lower()
            if low not in keep and not low.startswith("driver."):
                self.ups.delete(var.name)
        for name, value in published.items():
            self.ups.set(name, value)
            row = reading.rows.get(name)
            if row is not None:
                _flags(self.ups, name, row)
        for command in self.ups.commands():
            if command not in reading.commands:
                self.ups.remove_command(command)
        for command in reading.commands:
            self.ups.add_command(command)
        self.ups.set("driver.version.data", f"{mib.name} MIB {mib.version}")

    def _polled(self, _: object) -> None:
        if self._last_error is not None:
            self.log.info("UPS {ups}: {host} answers again", ups=self.config.name,
                          host=self.settings.host if self.settings else "?")
            self._last_error = None
        self._ok = True
        self.ups.data_ok()
        if not self._started.called:
            self.log.info("UPS {ups}: first read done", ups=self.config.name)
            self._started.callback(None)
        self._next()

    def _failed(self, failure: Failure) -> None:
        if not isinstance(failure.value, (SnmpError, _NoMib)):
            self.log.failure("UPS {ups}: poll failed", failure, ups=self.config.name)
        why = failure.getErrorMessage()
        if why != self._last_error:
            self.log.warn("UPS {ups}: {why}; {state}", ups=self.config.name, why=why,
                          state="data is stale until the card answers" if self._connected
                          else "not connected, trying again")
            self._last_error = why
        self._ok = False
        if self._connected:
            self.ups.data_stale(why)
        else:
            self.ups.disconnected(why)
        self._next()

    # -- helpers --------------------------------------------------------------------------

    def _give_up(self, why: str) -> "Deferred[None]":
        self.log.error("UPS {ups}: not connected: {why}", ups=self.config.name, why=why)
        self.ups.disconnected(why)
        return self._started

    def _publish_driver_info(self) -> None:
        self.publish_driver_info()
        for key in list(self.config.options):
            if is_secret(key) or key.startswith("_"):
                self.ups.delete(f"driver.parameter.{key}")
        self.ups.set("driver.name", "snmp-ups")

    def _command(self, name: str) -> Command | None:
        if self.mib is None or self.reading is None or name not in self.reading.commands:
            return None
        return next((c for c in self.mib.commands if c.name == name), None)

    def _command_sets(self, command: Command, value: str | None
                      ) -> list[tuple[Oid, SnmpValue]]:
        assert self.settings is not None
        items: list[tuple[Oid, SnmpValue]] = []
        for step in command.sets:
            raw: SnmpValue
            if isinstance(step.value, str) and step.value.startswith("oid:"):
                raw = ObjectId(parse_oid(step.value[4:]))
            elif step.value is not None:
                raw = step.value
            elif value is not None and value.strip():
                if not value.strip().lstrip("-").isdigit():
                    raise ValueError(f"{value!r} is not a whole number of seconds")
                raw = int(value)
            elif step.delay is not None:
                raw = getattr(self.settings, step.delay)
            else:
                raise ValueError("this command needs a value")
            if step.set_as == "time" and isinstance(raw, int):
                raw = TimeTicks(raw * 100)
            items.append((parse_oid(step.oid), raw))
        return items

    def _send(self, what: str, items: list[tuple[Oid, SnmpValue]]) -> "Deferred[Result]":
        def ok(_: object) -> Result:
            self.log.info("UPS {ups}: {what}: done", ups=self.config.name, what=what)
            return Result.SUCCESS

        def failed(failure: Failure) -> Result:
            if not isinstance(failure.value, SnmpError):
                self.log.failure("UPS {ups}: {what} failed", failure, ups=self.config.name,
                                 what=what)
            else:
                self.log.warn("UPS {ups}: {what}: {why}", ups=self.config.name, what=what,
                              why=failure.getErrorMessage())
            return Result.FAILED

        assert self.transport is not None
        sent: Deferred[None] = self.transport.set(items)
        return sent.addCallbacks(ok, failed)


class _NoMib(Exception):
    """No table fits the card (or ``mibs=`` names none)."""


def _positive(value: SnmpValue) -> bool:
    return isinstance(value, int) and value > 0


def _flags(ups: UPS, name: str, row: Var) -> None:
    """GET TYPE as NUT shows the row: RW, ENUM values, STRING:n for text rows."""
    var = ups.get(name)
    if var is None:
        return
    var.writable = row.set_as is not None
    if row.text or row.lookup is not None:
        var.string_len = row.string_len or 128
    if row.set_as is not None and row.lookup is not None:
        var.enum = list(row.lookup.values())


def _raw_for(row: Var, value: str) -> SnmpValue:
    """The SNMP value a SET of ``value`` writes into ``row``'s object."""
    if row.lookup is not None:
        for raw, text in row.lookup.items():
            if text == value:
                return raw
        raise ValueError(f"{value!r} is not one of {', '.join(row.lookup.values())}")
    if row.set_as == "str":
        if row.string_len is not None and len(value) > row.string_len:
            raise ValueError(f"longer than {row.string_len} characters")
        return value.encode("utf-8")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a number") from None
    if row.set_as == "time":
        return TimeTicks(int(round(number)) * 100)
    return int(round(number / (1.0 if row.text else row.scale)))
