# -*- test-case-name: tests.test_master_service -*-
"""The master daemon: drivers, the shared server state and the listening sockets.

:class:`Master` is built from a validated :class:`~upsagent.config.schema.MasterConfig` and a
reactor.  ``start()`` starts every driver (never waiting for them: a UPS whose driver has not
reported yet answers ``ERR DRIVER-NOT-CONNECTED``, as upsd does) and listens on every
configured address.  ``reload(new_config)`` applies a new configuration without dropping
clients: users and descriptions are replaced, UPSes that appeared are started, UPSes that
left are stopped, UPSes whose driver settings changed get a fresh driver (their FSD latch and
logins are kept), limits and the TLS certificate are re-read.  Listen addresses need a
restart, as with upsd; a reload that changes them says so in the log.

Beyond upsd, the master also does what NUT leaves to other programs:

* **low battery from thresholds** (master/lowbatt.py): one observer per UPS adds ``LB`` to
  ``ups.status`` by the UPS's ``lowbatt_charge`` / ``lowbatt_runtime``;
* **the primary's end of the sequence** (master/shutdown.py) when ``[master.shutdown]`` is
  enabled: FSD, waiting for the slaves, the power-down flag, the shutdown command;
* **the stale power-down flag**: at start, a flag of ours written before the system booted
  is removed (master/powerdown.py), so that it cannot turn a later reboot into a power-off.
"""

from __future__ import annotations

import resource
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, gatherResults
from twisted.internet.interfaces import IReactorTCP, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from upsagent.config.schema import MasterConfig, UpsConfig
from upsagent.drivers.base import Driver
from upsagent.master.lowbatt import LowBattery
from upsagent.master.protocol import NutServerFactory
from upsagent.master.shutdown import ShutdownService, default_runner
from upsagent.system.runner import Runner
from upsagent.model import UPS, Availability
from upsagent.master.driverport import DriverAdapter, bundled_descriptions, new_tracking_id
from upsagent.nut.state import ServerState, Slot, Users

__all__ = ["Master"]


class Master:
    """One running master: owns the drivers, the state and the ports."""

    log = Logger()

    def __init__(self, config: MasterConfig, reactor: Any,
                 runner: Runner | None = None) -> None:
        self.config = config
        self.reactor = reactor
        #: runs the shutdown command (default: the agent's process runner)
        self.runner = runner
        #: the shutdown sequence, while ``[master.shutdown]`` is enabled
        self.shutdown: ShutdownService | None = None
        self._lowbatt: dict[str, LowBattery] = {}
        clock: IReactorTime = reactor
        self.state = ServerState.from_config(
            (), config.users, now=clock.seconds, new_id=new_tracking_id,
            descriptions=bundled_descriptions(), tracking_delay=config.tracking_delay)
        self.factory = NutServerFactory(
            self.state, clock, maxconn=config.maxconn, idle_timeout=config.idle_timeout,
            max_line_length=config.max_line_length, tls_context=_tls_context(config),
            max_send_buffer=config.max_send_buffer,
            max_conn_per_address=config.conn_per_address,
            reserved_monitor_slots=config.monitor_slots)
        self.drivers: dict[str, Driver] = {}
        self._ups_config: dict[str, UpsConfig] = {}
        self.ports: list[Any] = []
        self._ages: dict[int, tuple[int, float]] = {}
        #: the SNMP trap receiver's port (``[master] snmp_traps``), and the receiver
        self.trap_port: Any = None
        self.traps: Any = None
        self._watchdog = LoopingCall(self.check_ages)
        self._watchdog.clock = reactor

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> list[Any]:
        """Start the drivers and listen; returns the ports (at least one, or raises)."""
        _raise_fd_limit(self.config.maxconn)
        self._clear_stale_flag()
        for conf in self.config.ups:
            self._add_ups(conf)
        self._watchdog.start(max(1.0, self.config.maxage / 3), now=False)
        self._apply_shutdown()
        self._start_traps()
        tcp: IReactorTCP = self.reactor
        errors = []
        for address in self.config.listen:
            try:
                port: Any = tcp.listenTCP(address.port, self.factory,  # type: ignore[arg-type]
                                     backlog=128,
                                     interface=address.host)
            except Exception as exc:  # CannotListenError and friends
                errors.append(f"{address.host} port {address.port}: {exc}")
                self.log.warn("Not listening on {host} port {port}: {err}",
                              host=address.host, port=address.port, err=exc)
                continue
            self.log.info("Listening on {host} port {port}", host=address.host,
                          port=port.getHost().port)
            self.ports.append(port)
        if not self.ports:
            raise RuntimeError("no listening socket could be opened: " + "; ".join(errors))
        self.factory.ports = self.ports
        return self.ports

    def stop(self) -> "Deferred[Any]":
        """Close the ports, stop the drivers, drop the clients."""
        waits: list[Deferred[Any]] = []
        if self._watchdog.running:
            self._watchdog.stop()
        if self.shutdown is not None:
            self.shutdown.stop()
        if self.trap_port is not None:
            waits.append(_maybe(self.trap_port.stopListening()))
            self.trap_port = None
        for port in self.ports:
            result = port.stopListening()
            if isinstance(result, Deferred):
                waits.append(result)
        self.ports = []
        for name in list(self.drivers):
            waits.append(self._stop_driver(name))
        for proto in list(self.factory.connections):
            proto.disconnect()
        self.factory.admission.limiter.stop()
        return DeferredList(waits)

    def check_ages(self) -> None:
        """MAXAGE: a driver that reported nothing for ``maxage`` seconds is stale.

        upsd does the same with its drivers, and pings a driver it has not heard from for a
        third of MAXAGE (server/sstate.c): so does this watchdog, through
        :meth:`Driver.poke <upsagent.drivers.base.Driver.poke>` (NUT's driver socket sends
        ``PING``; in-process drivers ignore it, a quiet one is a hung one).  The driver's
        next successful read (``data_ok``) makes the data current again.
        """
        now = self.reactor.seconds()
        for slot in self.state.slots:
            ups = slot.ups
            seen = self._ages.get(id(ups))
            if seen is None or seen[0] != ups.updates:
                self._ages[id(ups)] = (ups.updates, now)
                continue
            driver = self.drivers.get(slot.name.lower())
            if driver is not None and now - seen[1] >= self.config.maxage / 3:
                try:
                    driver.poke()
                except Exception:
                    self.log.failure("UPS {ups}: driver failed to take a ping", ups=slot.name)
            if ups.availability is Availability.OK and now - seen[1] > self.config.maxage:
                reason = (f"no data from driver {slot.name} for {now - seen[1]:.0f} s "
                          f"(MAXAGE {self.config.maxage} s)")
                self.log.warn("UPS {ups}: data is stale: {why}", ups=slot.name, why=reason)
                ups.data_stale(reason)

    def _start_traps(self) -> None:
        """The SNMP trap receiver, when configured (see drivers/snmp/traps.py)."""
        if not self.config.snmp_traps:
            return
        try:
            from upsagent.drivers.snmp.traps import listen

            self.traps, self.trap_port = listen(self.reactor, self.config.snmp_traps)
        except Exception as exc:  # no pysnmp, address in use, no privilege for 162
            self.log.error("SNMP trap receiver not started on {address}: {err}; SNMP UPSes "
                           "are still polled", address=self.config.snmp_traps, err=exc)

    # -- UPSes -------------------------------------------------------------------------

    def _add_ups(self, conf: UpsConfig) -> None:
        slot = self.state.find(conf.name)
        if slot is None:
            slot = Slot(conf.name, conf.desc, UPS(conf.name, conf.desc),
                        names=(conf.name, *conf.aliases))
            self.state.add_slot(slot)
        key = conf.name.lower()
        if key not in self._lowbatt:
            lowbatt = LowBattery(slot.ups, lambda: self._lowbatt_limits(key))
            lowbatt.start()
            self._lowbatt[key] = lowbatt
        self._start_driver(conf, slot)

    def _lowbatt_limits(self, key: str) -> tuple[float | None, int | None]:
        conf = self._ups_config.get(key)
        return (None, None) if conf is None else (conf.lowbatt_charge, conf.lowbatt_runtime)

    # -- the end of the sequence ------------------------------------------------------

    def _apply_shutdown(self) -> None:
        """Start, reconfigure or stop the shutdown sequence as the configuration says."""
        settings = self.config.shutdown
        if self.shutdown is None:
            if settings.enabled:
                runner = self.runner or default_runner(self.reactor)
                self.shutdown = ShutdownService(self.state, settings,
                                                self.config.powerdown_flag, self.reactor,
                                                runner)
                self.shutdown.start()
        elif not settings.enabled and not self.shutdown.begun:
            self.shutdown.stop()
            self.shutdown = None
            self.log.info("Shutdown sequence disarmed")
        else:
            self.shutdown.reconfigure(settings if settings.enabled else self.shutdown.config,
                                      self.config.powerdown_flag)

    def _clear_stale_flag(self) -> None:
        """Remove a power-down flag of ours left from before this boot (NUT #2935)."""
        from upsagent.system.powerdown import clear_stale_flag

        if self.config.powerdown_flag is not None:
            _, message = clear_stale_flag(self.config.powerdown_flag)
            if message:
                self.log.warn("{message}", message=message)

    def _start_driver(self, conf: UpsConfig, slot: Slot) -> None:
        from upsagent.drivers.registry import create_driver

        driver = create_driver(conf, slot.ups, self.reactor)
        self.drivers[conf.name.lower()] = driver
        self._ups_config[conf.name.lower()] = conf
        slot.driver = DriverAdapter(driver, self.state.tracking)
        try:
            started = driver.start()
        except Exception as exc:
            self.log.failure("UPS {ups}: driver {driver} failed to start", ups=conf.name,
                             driver=conf.driver)
            slot.ups.disconnected(f"driver failed to start: {exc}")
            return
        started.addCallback(lambda _: self.log.info(
            "UPS {ups}: driver {driver} has data", ups=conf.name, driver=conf.driver))
        started.addErrback(lambda f: self.log.failure(
            "UPS {ups}: driver {driver} failed", f, ups=conf.name, driver=conf.driver))

    def _stop_driver(self, key: str) -> "Deferred[Any]":
        driver = self.drivers.pop(key)
        self._ups_config.pop(key, None)
        try:
            return driver.stop()
        except Exception:
            self.log.failure("driver for {ups} failed to stop", ups=key)
            return _succeed()

    # -- reload ------------------------------------------------------------------------

    def reload(self, config: MasterConfig) -> "Deferred[Any]":
        """Apply a new configuration without dropping any client (SIGHUP)."""
        old = self.config
        self.config = config
        if set(config.listen) != set(old.listen):
            self.log.warn("Listen addresses changed: restart upsagent master to apply them")
        self.state.users = Users(config.users)
        self.state.tracking.delay = config.tracking_delay
        self.factory.maxconn = config.maxconn
        self.factory.idle_timeout = config.idle_timeout
        self.factory.max_line_length = config.max_line_length
        self.factory.max_send_buffer = config.max_send_buffer
        self.factory.max_conn_per_address = config.conn_per_address
        self.factory.reserved_monitor_slots = config.monitor_slots
        self.factory.set_tls_context(_tls_context(config))
        self.factory.update_accepting()
        wanted = {conf.name.lower(): conf for conf in config.ups}
        waits: list[Deferred[Any]] = []
        for key in list(self.drivers):
            if key not in wanted:
                slot = self.state.find(key)
                waits.append(self._stop_driver(key))
                if slot is not None:
                    slot.ups.disconnected("UPS removed from the configuration")
                    self.state.remove_slot(slot)
                lowbatt = self._lowbatt.pop(key, None)
                if lowbatt is not None:
                    lowbatt.stop()
                self.log.info("UPS {ups} removed", ups=key)
        for key, conf in wanted.items():
            slot = self.state.find(key)
            if key not in self.drivers or slot is None:
                self._add_ups(conf)
                self.log.info("UPS {ups} added", ups=conf.name)
                continue
            slot.desc = conf.desc
            slot.ups.desc = conf.desc
            self._set_names(slot, (conf.name, *conf.aliases))
            if self._driver_settings(self._ups_config[key]) != self._driver_settings(conf):
                waits.append(self._stop_driver(key))
                slot.ups.clear()
                slot.ups.disconnected("driver restarted after a configuration change")
                self._start_driver(conf, slot)
                self.log.info("UPS {ups}: driver restarted with new settings", ups=conf.name)
        self.state.slots.sort(key=lambda s: list(wanted).index(s.name.lower())
                              if s.name.lower() in wanted else len(wanted))
        for key, conf in wanted.items():
            self._ups_config[key] = conf  # new thresholds apply at once
            if key in self._lowbatt:
                self._lowbatt[key].check()
        self._apply_shutdown()
        self.log.info("Configuration reloaded: {n} UPS, {m} users", n=len(config.ups),
                      m=len(config.users))
        return gatherResults(waits) if waits else _succeed()

    def _set_names(self, slot: Slot, names: tuple[str, ...]) -> None:
        if tuple(n.lower() for n in names) != tuple(n.lower() for n in slot.names):
            self.state.remove_slot(slot)
            slot.names = names
            self.state.add_slot(slot)

    @staticmethod
    def _driver_settings(conf: UpsConfig) -> tuple[Any, ...]:
        return (conf.driver, conf.port, tuple(conf.options.items()), conf.flags, conf.serve,
                conf.statepath)


def _maybe(result: Any) -> "Deferred[Any]":
    return result if isinstance(result, Deferred) else _succeed()


def _succeed() -> "Deferred[Any]":
    from twisted.internet.defer import succeed

    return succeed(None)


def _tls_context(config: MasterConfig) -> Any:
    """Build the STARTTLS context from CERTFILE (and KEYFILE), or None without one."""
    if not config.certfile:
        return None
    from upsagent.master.tls import server_context

    return server_context(config.certfile, config.keyfile)


def _raise_fd_limit(maxconn: int) -> None:
    """Make room for ``maxconn`` clients: raise the soft descriptor limit (never above hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = maxconn + 64
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
