# -*- test-case-name: tests.test_nutsock -*-
"""NUT's own driver programs, read through their Unix socket exactly as upsd reads them.

A NUT driver (``usbhid-ups``, ``snmp-ups``, ``dummy-ups``...) started by NUT's own units or
``upsdrvctl`` listens on ``<statepath>/<driver>-<upsname>`` (drivers/dstate.c
``dstate_init``, drivers/main.c).  This driver connects there as upsd does
(server/sstate.c) and publishes what the NUT driver says into the UPS model, through the
sans-IO session of :mod:`upsagent.nut.sockproto` (the protocol itself is documented
there).  It is chosen by the registry when the UPS's ``serve`` is ``nut-driver``, or
``auto`` for a driver upsagent does not implement.

**The state path** (:func:`statepath`): the UPS's ``statepath`` (upsd.conf ``STATEPATH``,
``[master] statepath``), else ``$NUT_STATEPATH``, else NUT's compiled-in default
(:data:`DEFAULT_STATEPATH`, ``/run/nut`` as Debian and most Linux packages build NUT;
other builds use other places, e.g. ``/var/state/ups`` upstream or ``/var/db/nut`` on
FreeBSD: say ``STATEPATH`` there).  The socket is ``<statepath>/<driver>-<upsname>``.

**Availability**, as upsd (server/upsd.c ``ups_available``, server/sstate.c):

* not connected (``ERR DRIVER-NOT-CONNECTED``) until the socket answers *and* the driver's
  dump is done (``DUMPDONE``; upsd shows ``ups.status`` "WAIT" meanwhile, we never serve a
  half-received dump);
* stale (``ERR DATA-STALE``) while the driver says ``DATASTALE``, and when the driver has
  been silent past MAXAGE: the master's watchdog asks :meth:`NutSocketDriver.poke` after a
  third of MAXAGE without news, which sends ``PING`` (the driver answers ``PONG``), and
  marks the data stale after MAXAGE (master/service.py ``check_ages``);
* not connected again at once when the socket closes (the driver exited or was killed),
  everything the driver said forgotten, as upsd's ``sstate_disconnect`` does; a new
  connection starts from a fresh ``DUMPALL``.

**Reconnecting**: while the socket cannot be reached, or after it closed, a new attempt is
made after ``retry_policy(n)`` seconds, n counting the failed attempts
(``backoffPolicy(0.5, 2.0)``: 0.75 s, 1.1 s, 1.7 s, then every 2 s, each plus up to a
second of jitter; upsd retries at every turn of its 2-second loop).  An attempt costs a
``connect()`` on a local socket, so there is no reason to wait longer.
Failures are logged once, and again every five minutes or when the reason changes (upsd
rate-limits them too).  Twisted's ClientService is not used: it logs every retry.

**Requests**: a client's SET VAR or INSTCMD goes to the NUT driver with the client's
tracking id when the client asked for tracking (``TRACKING <id>``; the driver's ``TRACKING
<id> <status>`` answer becomes what ``GET TRACKING`` reports), and without one otherwise,
exactly as upsd sends it; a driver that never answers leaves the id ``PENDING``, as with
upsd.  :meth:`~NutSocketDriver.instcmd` and :meth:`~NutSocketDriver.setvar` called directly
use a tracking id of their own so that the answer is known.  (NUT drivers older than 2.8.0
do not know TRACKING: with them only untracked requests work, as with upsd 2.8.0.)

**Limits**: a driver that breaks :class:`~upsagent.nut.sockproto.Limits` (an endless line,
a flood of bytes or of lines that are not driver lines, absurd numbers of variables) is
cut off with an error in the log; the UPS is not connected and the next attempt waits
``fault_delay`` seconds (doubling on each repeated fault, at most ten minutes), so that one
runaway driver costs little while the other UPSes are served.

**killpower**: NUT's usual way, the driver's ``-k``: ``upsdrvctl shutdown <ups>`` (which
runs ``<driver> -a <ups> -k``) with ``NUT_CONFPATH`` set to the configuration directory
when it holds NUT's ``ups.conf``.  It does not need the running driver (at the end of a
shutdown NUT's driver units are usually stopped), hence
:attr:`~upsagent.drivers.base.Driver.killpower_needs_device` is False.  Success is
upsdrvctl's exit status 0.

**NUT 2.8.0 bug to know**: a 2.8.0 driver whose socket client went away aborts at its next
broadcast (``*** bit out of range 0 - FD_SETSIZE on fd_set ***``).  Every disconnect --
the master stopping, a reload that changes the UPS, a cut-off -- may therefore crash NUT's
driver, exactly as restarting upsd does; NUT's units restart it.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections import OrderedDict
from typing import Any, Callable

from twisted.application.internet import backoffPolicy
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.internet.interfaces import IDelayedCall, IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure

from upsagent.config.schema import UpsConfig
from upsagent.drivers.base import Driver, Result
from upsagent.model import UPS, Availability
from upsagent.nut.sockproto import DriverSession, Limits, Received, UpsSink

__all__ = ["DEFAULT_STATEPATH", "NutSocketDriver", "socket_path", "statepath"]

#: NUT's compiled-in STATEPATH as Debian (and most Linux packages) build it
DEFAULT_STATEPATH = "/run/nut"
#: sizeof(sockaddr_un.sun_path) on Linux, the NUL included
SUN_PATH_MAX = 108
#: how often a failure to connect is logged again when nothing changed (upsd: 300 s)
LOG_AGAIN = 300.0
#: tracking ids waiting for the driver's answer, at most (older ones stay PENDING)
MAX_PENDING = 1000
_UPSDRVCTL = ("/sbin/upsdrvctl", "/usr/sbin/upsdrvctl", "/lib/nut/upsdrvctl",
              "/usr/lib/nut/upsdrvctl", "/usr/libexec/nut/upsdrvctl", "/usr/local/ups/sbin/upsdrvctl")


def statepath(config: UpsConfig) -> str:
    """Where NUT's drivers put their sockets, for this UPS (see the module docstring)."""
    return config.statepath or os.environ.get("NUT_STATEPATH") or DEFAULT_STATEPATH


def socket_path(config: UpsConfig) -> str:
    """``<statepath>/<driver>-<upsname>``: where the UPS's NUT driver listens."""
    return os.path.join(statepath(config), f"{config.driver}-{config.name}")


def _new_id() -> str:
    return str(uuid.uuid4()).upper()


class _SocketProtocol(Protocol):
    """Moves bytes between one connection and the driver that owns it."""

    def __init__(self, owner: "NutSocketDriver") -> None:
        self.owner = owner

    def connectionMade(self) -> None:
        self.owner._connected(self)

    def dataReceived(self, data: bytes) -> None:
        self.owner._received(self, data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.owner._lost(self, reason)


class NutSocketDriver(Driver):
    """Serves a UPS from NUT's own running driver, through its socket."""

    name = "nut-driver"
    killpower_needs_device = False

    def __init__(self, config: UpsConfig, ups: UPS, reactor: IReactorTime, *,
                 endpoint: IStreamClientEndpoint | None = None,
                 retry_policy: Callable[[int], float] | None = None,
                 limits: Limits = Limits(), fault_delay: float = 30.0,
                 new_id: Callable[[], str] = _new_id, runner: Any = None) -> None:
        super().__init__(config, ups, reactor)
        self.path = socket_path(config)
        self._endpoint = endpoint if endpoint is not None else UNIXClientEndpoint(
            reactor, self.path, timeout=10)  # type: ignore[no-untyped-call]
        self._policy = retry_policy or backoffPolicy(initialDelay=0.5, maxDelay=2.0)
        self._limits = limits
        self._fault_delay = fault_delay
        self._new_id = new_id
        self._runner = runner
        self._running = False
        self._attempt: Deferred[Any] | None = None
        self._retry: IDelayedCall | None = None
        self._failures = 0
        self._faults = 0
        self._hold_off = 0.0
        self._last_complaint: tuple[str, float] | None = None
        self._proto: _SocketProtocol | None = None
        self._session: DriverSession | None = None
        self._shown = Availability.NOT_CONNECTED
        self._pending: OrderedDict[str, Deferred[Result]] = OrderedDict()
        self._started: Deferred[None] = Deferred()

    # -- the Driver contract ---------------------------------------------------------

    def start(self) -> "Deferred[None]":
        """Connect (and keep reconnecting); fires when the first dump is in."""
        if len(self.path.encode()) >= SUN_PATH_MAX:
            why = (f"the socket path {self.path} is longer than a Unix socket path may be "
                   f"({SUN_PATH_MAX - 1} bytes); choose a shorter STATEPATH")
            self.log.error("UPS {ups}: not connected: {why}", ups=self.config.name, why=why)
            self.ups.disconnected(why)
            return self._started
        self.log.info("UPS {ups}: served by NUT's driver {driver} through {path}",
                      ups=self.config.name, driver=self.config.driver, path=self.path)
        self._running = True
        self.ups.disconnected(f"not connected to NUT's driver at {self.path} yet")
        self._connect()
        return self._started

    def stop(self) -> "Deferred[None]":
        """Stop reconnecting and close the socket; the UPS is not connected."""
        self._running = False
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        if self._attempt is not None:
            attempt, self._attempt = self._attempt, None
            attempt.cancel()
        proto = self._proto
        if proto is not None and proto.transport is not None:
            proto.transport.loseConnection()
        self._forget("driver stopped")
        return succeed(None)

    def request(self, kind: str, name: str, value: str | None,
                tracking: str | None) -> "Deferred[Result]":
        """Send a client's SET or INSTCMD as upsd does, with the client's tracking id."""
        proto, session = self._proto, self._session
        if proto is None or session is None or proto.transport is None:
            raise ConnectionError(f"not connected to NUT's driver at {self.path}")
        if kind == "set":
            line = session.setvar(name, value or "", tracking)
        else:
            line = session.instcmd(name, value, tracking)
        proto.transport.write(line)
        if tracking is None:
            return succeed(Result.SUCCESS)  # handed over; nobody will ask for the answer
        answer: Deferred[Result] = Deferred()
        self._pending[tracking.upper()] = answer
        while len(self._pending) > MAX_PENDING:
            self._pending.popitem(last=False)  # stays PENDING, as upsd's would
        return answer

    def instcmd(self, name: str, value: str | None = None) -> "Deferred[Result]":
        """Run an instant command on NUT's driver and wait for its answer."""
        return self.request("instcmd", name, value, self._new_id())

    def setvar(self, name: str, value: str) -> "Deferred[Result]":
        """Set a variable through NUT's driver and wait for its answer."""
        return self.request("set", name, value, self._new_id())

    def poke(self) -> None:
        """Quiet for a third of MAXAGE: ``PING`` the driver, as upsd does."""
        proto = self._proto
        if proto is not None and proto.transport is not None and self._session is not None:
            proto.transport.write(DriverSession.ping())

    def killpower(self) -> "Deferred[Result]":
        """``upsdrvctl shutdown <ups>``: NUT's driver with ``-k`` tells the UPS."""
        program = next((p for p in (shutil.which("upsdrvctl"), *_UPSDRVCTL)
                        if p and os.access(p, os.X_OK)), None)
        if program is None:
            self.log.error("UPS {ups}: killpower: NUT's upsdrvctl not found (looked in $PATH "
                           "and {dirs})", ups=self.config.name, dirs=", ".join(_UPSDRVCTL))
            return succeed(Result.FAILED)
        env = {}
        confdir = self.config.confdir
        if confdir and os.path.exists(os.path.join(confdir, "ups.conf")):
            env["NUT_CONFPATH"] = confdir
        runner = self._runner
        if runner is None:
            from upsagent.system.runprocess import ProcessRunner

            runner = ProcessRunner(self.reactor)
        self.log.warn("UPS {ups}: killpower: running {program} shutdown {ups}",
                      ups=self.config.name, program=program)
        done: Deferred[Any] = runner.run([program, "shutdown", self.config.name], 120.0,
                                         env=env, name="upsdrvctl")
        return done.addCallback(lambda result: Result.SUCCESS if getattr(result, "ok", False)
                                else Result.FAILED)

    # -- connecting ------------------------------------------------------------------

    def _connect(self) -> None:
        self._retry = None
        if not self._running:
            return
        factory = Factory.forProtocol(lambda: _SocketProtocol(self))
        factory.noisy = False  # no "Starting factory" lines at every attempt
        attempt = self._endpoint.connect(factory)
        self._attempt = attempt
        attempt.addCallbacks(self._attempt_done, self._attempt_failed)

    def _attempt_done(self, _: object) -> None:
        self._attempt = None

    def _attempt_failed(self, reason: Failure) -> None:
        self._attempt = None
        if not self._running:
            return  # cancelled by stop()
        self._failures += 1
        self._complain(reason.getErrorMessage())
        self._schedule()

    def _complain(self, why: str) -> None:
        """Log a failure to connect: the first, a changed one, and every LOG_AGAIN s."""
        now = self.reactor.seconds()
        last = self._last_complaint
        if last is None or last[0] != why or now - last[1] >= LOG_AGAIN:
            self._last_complaint = (why, now)
            self.log.warn("UPS {ups}: cannot connect to NUT's driver at {path}: {why} (is "
                          "{driver} running for it?); retrying", ups=self.config.name,
                          path=self.path, why=why, driver=self.config.driver)
        self.ups.disconnected(f"cannot connect to NUT's driver at {self.path}: {why}")

    def _schedule(self) -> None:
        delay = max(self._policy(self._failures), self._hold_off)
        self._hold_off = 0.0
        self._retry = self.reactor.callLater(delay, self._connect)

    # -- one connection --------------------------------------------------------------

    def _connected(self, proto: _SocketProtocol) -> None:
        if not self._running:
            if proto.transport is not None:
                proto.transport.loseConnection()
            return
        self._proto = proto
        self._failures = 0
        self._last_complaint = None
        self._session = DriverSession(UpsSink(self.ups), self._limits)
        self._shown = Availability.NOT_CONNECTED
        self.ups.disconnected(f"waiting for the dump of NUT's driver at {self.path}")
        assert proto.transport is not None
        proto.transport.write(self._session.start())
        self.log.info("UPS {ups}: connected to NUT's driver at {path}", ups=self.config.name,
                      path=self.path)

    def _received(self, proto: _SocketProtocol, data: bytes) -> None:
        session = self._session
        if proto is not self._proto or session is None:
            return
        result = session.receive(data, self.reactor.seconds())
        for notice in result.notices:
            self.log.debug("UPS {ups}: from NUT's driver: {notice}", ups=self.config.name,
                           notice=notice)
        self._answer(result)
        if result.fault is not None:
            self._cut_off(proto, result.fault)
            return
        if result.heard:
            self._publish(session, result)

    def _answer(self, result: Received) -> None:
        for ident, outcome in result.tracking:
            if outcome is None:
                continue  # the driver says pending
            answer = self._pending.pop(ident.upper(), None)
            if answer is not None:
                answer.callback(Result(outcome))

    def _publish(self, session: DriverSession, result: Received) -> None:
        """Commit what the chunk changed, with the availability the session now has."""
        shown, now = self._shown, session.availability
        self._shown = now
        ups = self.ups
        if now is Availability.OK:
            was_stale = ups.availability is Availability.STALE
            ups.data_ok()  # also tells the MAXAGE watchdog the driver is alive
            if was_stale:  # the driver's DATAOK, or news after a silence (upsd logs it)
                self.log.info("UPS {ups}: data is no longer stale", ups=self.config.name)
        elif now is Availability.STALE:
            if shown is not Availability.STALE:
                self.log.warn("UPS {ups}: NUT's driver says its data is stale",
                              ups=self.config.name)
            ups.data_stale(f"NUT's driver at {self.path} says its data is stale",
                           connected=True)
        if result.dump_done:
            self.log.info("UPS {ups}: NUT's driver dump is in ({n} variables)",
                          ups=self.config.name, n=len(ups.variables()))
            if not self._started.called:
                self._started.callback(None)

    def _cut_off(self, proto: _SocketProtocol, why: str) -> None:
        self._faults += 1
        self._hold_off = min(600.0, self._fault_delay * 2 ** (self._faults - 1))
        self.log.error("UPS {ups}: NUT's driver at {path} {why}: cutting it off; next "
                       "attempt in {delay:.0f} s", ups=self.config.name, path=self.path,
                       why=why, delay=self._hold_off)
        self._forget(f"NUT's driver at {self.path} was cut off: it {why}")
        if proto.transport is not None:
            proto.transport.abortConnection()  # type: ignore[attr-defined]

    def _lost(self, proto: _SocketProtocol, reason: Failure) -> None:
        if proto is not self._proto:
            return
        was_clean = self._session is not None and self._session.fault is None
        if was_clean:
            if self._session is not None and self._session.dump_done:
                self._faults = 0
            self.log.warn("UPS {ups}: lost NUT's driver at {path}: {why}",
                          ups=self.config.name, path=self.path,
                          why=reason.getErrorMessage())
            self._forget(f"lost NUT's driver at {self.path}")
        self._proto = None
        if self._running:
            self._failures += 1  # the lost connection counts as the first failure
            self._schedule()

    def _forget(self, why: str) -> None:
        """The connection is gone: drop its state and requests (upsd's sstate_disconnect)."""
        self._session = None
        self._shown = Availability.NOT_CONNECTED
        self._pending.clear()  # their ids stay PENDING, as upsd's do
        self.ups.clear()
        self.ups.disconnected(why)
