# -*- test-case-name: tests.test_monitor -*-
"""Watch one UPS on a NUT server the way upsmon does, and tell the policy engine what is seen.

A :class:`UpsMonitor` keeps one connection to ``ups@host[:port]`` on Twisted's
``ClientService`` (reconnecting with ``backoffPolicy``; clock and endpoint are injected).

**Session** (upsmon 2.8.0's ``try_connect``/``do_upsd_auth``, in
NUT's ``clients/upsmon.c``, and as recorded through a proxy):

1. ``STARTTLS``.  ``OK STARTTLS``: TLS starts on the same socket, with the certificate
   verified against ``TlsSettings.ca_path`` and ``hostname`` when ``verify`` is set
   (Twisted's ``optionsForClientTLS``), unverified otherwise (NUT's default).  Any other
   answer: plain text goes on, unless TLS is ``required`` (FORCESSL, CERTVERIFY): then the
   connection is dropped and retried like a failed connect.
2. ``USERNAME`` (answer not examined), ``PASSWORD``, ``LOGIN <ups>``, and for a primary
   ``PRIMARY <ups>``, then ``MASTER <ups>`` on any non-OK answer.  As in upsmon, a refused
   login is logged and monitoring goes on without it (status reads are anonymous): being
   blind because of a rights problem would be worse.
3. ``WATCH <ups>`` (unless ``watch`` is off): our master answers ``OK WATCHING <ups>`` and
   from then on pushes ``NOTIFY`` lines (:mod:`upsagent.nut.push`); NUT's upsd answers
   ``ERR UNKNOWN-COMMAND`` and we poll.
4. The first read, then reads on a timer until stopped.  A read is ``GET VAR <ups>
   ups.status``, plus ``battery.charge`` and ``battery.runtime`` with ``read_battery``
   (pipelined; a UPS without them gives None).

**Timing.**  Polling: every ``poll_freq`` s (POLLFREQ), every ``poll_freq_alert`` s
(POLLFREQALERT) while the UPS was last seen on battery (``OB``).  upsmon switches to
POLLFREQALERT when *any* UPS goes on battery; we do it per UPS.  Pushing: changes arrive at
once, and a liveness read runs every POLLFREQ (``watch_interval`` if set) while the UPS is
on line, and every POLLFREQALERT while it is on battery or its data is unavailable, so the
engine's DEADTIME sees fresh reads exactly when it matters, and a connection that died
silently (a cable pulled, packets dropped) is noticed as soon as upsmon would notice it.  No
interval exceeds :data:`MAX_IDLE` (upsd cuts clients idle for 60 s).  A reply must come
within ``timeout`` s (upsmon's NET_TIMEOUT, 10), else the connection is dropped.  Reconnects
wait ``retry_policy(n)`` (default ``backoffPolicy()``), where ``n`` counts the failures in a
row: failed connects and connections that ended, until a session gets a read answered (so a
server that accepts and then refuses TLS backs off too); but never longer than one poll
interval, since upsmon retries at every poll.

**Events** go to ``on_event``, synchronously:

* :class:`UpsState` on every successful read: each poll answer and each pushed value.
  Emitting every read (not only changes) gives the engine the freshness DEADTIME needs.
* :class:`CommLost` when a connect fails, the connection drops, a read fails (``ERR
  DATA-STALE``, ``ERR DRIVER-NOT-CONNECTED``, any ERR, no reply, an empty ``ups.status``) or
  the master pushes ``NOTIFY <ups> ERR ...``.  A data error keeps the session; a connection
  problem reconnects.
* :class:`CommOk` before the first UpsState after a CommLost.

So CommLost and CommOk strictly alternate, CommLost only once per loss (the engine keeps
time; the first reason is the one reported, later ones are logged), and UpsState comes only
while communication is fine.  Nothing is emitted once :meth:`UpsMonitor.stop` was called.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IDelayedCall, IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from upsagent.nut.client import (
    ClientError, NumLoginsReply, NutError, OkReply, ProtocolError, Reply, Request,
    TransportError, VarReply)
from upsagent.policy.events import CommLost, CommOk, Event, UpsState
from upsagent.transport.nutproto import NutClientProtocol, TlsSettings, Words
from upsagent.config.monitoring import MonitorSettings

__all__ = ["MAX_IDLE", "MonitorSettings", "TlsSettings", "UpsMonitor"]

#: longest silence on a session: upsd drops a client idle for 60 s
MAX_IDLE = 50.0
BATTERY_VARS = ("battery.charge", "battery.runtime")


@implementer(IStreamClientEndpoint)
class _WatchedEndpoint:
    """An endpoint that tells the monitor when a connect attempt fails."""

    def __init__(self, endpoint: IStreamClientEndpoint,
                 failed: Callable[[Failure], None]) -> None:
        self._endpoint = endpoint
        self._failed = failed

    def connect(self, factory: Any) -> Deferred[Any]:
        def report(failure: Failure) -> Failure:
            self._failed(failure)
            return failure
        attempt: Deferred[Any] = self._endpoint.connect(factory)
        return attempt.addErrback(report)


class UpsMonitor:
    """Watch one UPS (see the module docstring).

    ``on_event`` receives :class:`UpsState`, :class:`CommLost` and :class:`CommOk`.
    ``reactor`` is used for the default endpoint (``HostnameEndpoint``) and as the clock
    unless ``clock`` is given; tests pass ``clock`` and ``endpoint``.
    """

    log = Logger()

    def __init__(self, settings: MonitorSettings, on_event: Callable[[Event], None], *,
                 reactor: Any = None, clock: IReactorTime | None = None,
                 endpoint: IStreamClientEndpoint | None = None,
                 retry_policy: Callable[[int], float] | None = None) -> None:
        if reactor is None and (clock is None or endpoint is None):
            from twisted.internet import reactor as global_reactor
            reactor = global_reactor
        self.settings = settings
        self.system = settings.system
        self._ups = settings.ups
        #: the variables read (and taken from pushes): battery ones only with read_battery
        self._names = ("ups.status",) + (BATTERY_VARS if settings.read_battery else ())
        self._on_event = on_event
        self._clock: IReactorTime = clock if clock is not None else reactor
        if endpoint is None:
            from twisted.internet.endpoints import HostnameEndpoint
            endpoint = HostnameEndpoint(reactor, settings.host, settings.port,
                                        timeout=settings.timeout)
        self._policy = retry_policy or backoffPolicy()
        self._service = ClientService(
            _WatchedEndpoint(endpoint, self._connect_failed),
            Factory.forProtocol(self._build_protocol), retryPolicy=self._retry_delay,
            clock=self._clock)
        self._proto: NutClientProtocol | None = None
        self._ready = False          # session set up (login tried, WATCH answered)
        self._failures = 0           # connects failed / connections lost since a good read
        self._comm: bool | None = None
        self._status: frozenset[str] | None = None
        self._charge: float | None = None
        self._runtime: float | None = None
        self._last_ob = False        # last status seen had OB (kept across reconnects)
        self._reading = False
        self._next_read: IDelayedCall | None = None
        self._stopping = False
        #: set by the session: what the server granted
        self.pushing = False
        self.logged_in = False
        self.primary_granted = False

    # -- public API --------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """A session is set up and usable (for :meth:`set_fsd` and :meth:`numlogins`)."""
        return self._proto is not None and self._ready

    @property
    def tls(self) -> bool:
        """The current connection runs over TLS."""
        return self._proto is not None and self._proto.tls

    def start(self) -> None:
        """Connect and keep watching until :meth:`stop`."""
        self._stopping = False
        self._failures = 0
        self._service.startService()

    def stop(self, logout: bool = True) -> Deferred[None]:
        """Stop watching; fires once the connection is closed.

        ``logout=True`` sends ``LOGOUT`` first (``upsmon -c stop``); ``logout=False`` just
        closes the socket, as upsmon does when it shuts the host down: the master's
        NUMLOGINS drops when the socket closes, which its HOSTSYNC wait watches for.
        """
        self._stopping = True
        self._cancel_read()
        proto = self._proto
        if logout and proto is not None and not proto.closed:
            proto.request(Request.of("LOGOUT")).addErrback(lambda _: None)
        return self._service.stopService()

    def set_fsd(self) -> Deferred[None]:
        """``FSD <ups>`` (a primary's right); fails with the ClientError when refused."""
        return self._ask(Request.of("FSD", self._ups)).addCallback(lambda _: None)

    def numlogins(self) -> Deferred[int]:
        """``GET NUMLOGINS <ups>``.  upsmon counts a failure (ERR ...) as 0 logins."""
        def count(reply: Reply) -> int:
            assert isinstance(reply, NumLoginsReply)
            return reply.count
        return self._ask(Request.get("NUMLOGINS", self._ups)).addCallback(count)

    def _ask(self, request: Request) -> Deferred[Reply]:
        if self._proto is None or not self._ready:
            return fail(TransportError.not_connected())
        return self._proto.request(request)

    # -- connection ----------------------------------------------------------------------------

    def _build_protocol(self) -> Protocol:
        return NutClientProtocol(self._clock, self.settings.timeout, self._connected,
                                 self._pushed, self._disconnected)

    def _retry_delay(self, attempt: int) -> float:
        return min(self._policy(max(self._failures, 1)), self._poll_interval())

    def _connect_failed(self, failure: Failure) -> None:
        self._failures += 1
        if not self._stopping:
            self._comm_lost(f"cannot connect to {self.settings.host} port "
                            f"{self.settings.port}: {failure.getErrorMessage()}")

    def _connected(self, proto: NutClientProtocol) -> None:
        self._proto, self._ready = proto, False
        self._status = self._charge = self._runtime = None
        self.pushing = self.logged_in = self.primary_granted = False
        Deferred.fromCoroutine(self._session(proto)).addErrback(
            lambda f: self.log.failure("{system}: session failed", f, system=self.system))

    def _disconnected(self, proto: NutClientProtocol, reason: str) -> None:
        if proto is not self._proto:
            return
        self._proto, self._ready, self._reading = None, False, False
        self._cancel_read()
        if self._stopping:
            return
        self._failures += 1
        self._comm_lost(f"connection to {self.settings.host} port {self.settings.port} "
                        f"lost: {reason}")

    # -- the session ---------------------------------------------------------------------------

    async def _session(self, proto: NutClientProtocol) -> None:
        try:
            if self.settings.tls.attempted and not await self._start_tls(proto):
                return
            await self._login(proto)
            if self.settings.watch:
                self.pushing = await self._watch(proto)
        except TransportError:
            return  # the connection is gone; _disconnected has reported it
        self._ready = True
        await self._read()

    async def _start_tls(self, proto: NutClientProtocol) -> bool:
        tls = self.settings.tls
        try:
            reply: Reply | None = await proto.request(Request.of("STARTTLS"))
            answer = reply.text if isinstance(reply, OkReply) else "?"
        except (NutError, ProtocolError) as error:
            reply, answer = None, error.line or error.message
        if isinstance(reply, OkReply) and reply.text.startswith("OK STARTTLS"):
            try:
                proto.start_tls(tls.options(self.settings.host))
            except Exception as error:
                self._comm_lost(f"cannot start TLS: {error}")
                proto.abort(f"cannot start TLS: {error}")
                return False
            return True
        if tls.required or tls.verify:
            self._comm_lost(f"TLS is required but {self.settings.host} answered "
                            f"{answer!r} to STARTTLS")
            proto.abort("TLS refused by the server")
            return False
        self.log.debug("{system}: no TLS ({answer}), plain text", system=self.system,
                       answer=answer)
        return True

    async def _ok(self, proto: NutClientProtocol, *words: str) -> str | None:
        """Send a request; None when answered OK…, else the answer (TransportError raises)."""
        try:
            reply = await proto.request(Request.of(*words))
        except (NutError, ProtocolError) as error:
            return error.line or error.message
        return None if isinstance(reply, OkReply) else repr(reply)

    async def _login(self, proto: NutClientProtocol) -> None:
        await self._ok(proto, "USERNAME", self.settings.user)
        for words in (("PASSWORD", self.settings.password), ("LOGIN", self._ups)):
            refused = await self._ok(proto, *words)
            if refused is not None:
                self.log.error("{system}: {command} refused ({answer}); monitoring without "
                               "login, so the master will not wait for this host",
                               system=self.system, command=words[0], answer=refused)
                return
        self.logged_in = True
        if not self.settings.primary:
            return
        for command in ("PRIMARY", "MASTER"):
            refused = await self._ok(proto, command, self._ups)
            if refused is None:
                self.primary_granted = True
                return
        self.log.error("{system}: primary managerial privileges unavailable ({answer})",
                       system=self.system, answer=refused)

    async def _watch(self, proto: NutClientProtocol) -> bool:
        refused = await self._ok(proto, "WATCH", self._ups)
        if refused is None:
            return True
        self.log.info("{system}: the server does not push ({answer}); polling",
                      system=self.system, answer=refused)
        return False

    # -- reads ---------------------------------------------------------------------------------

    async def _read(self) -> None:
        proto = self._proto
        if proto is None or not self._ready or self._reading or self._stopping:
            return
        self._reading = True
        names = self._names
        waits = [proto.request(Request.get("VAR", self._ups, name)).addCallbacks(
            self._read_value, self._read_error, callbackArgs=(name,), errbackArgs=(name,))
            for name in names]
        outcomes = [await wait for wait in waits]
        if proto is not self._proto:
            return
        self._reading = False
        status = outcomes[0]
        if isinstance(status, TransportError):
            return
        self._failures = 0
        if isinstance(status, ClientError):
            self._comm_lost(f"reading ups.status: {status.line or status.message}")
        elif not self._status:
            self._comm_lost("the server gave an empty ups.status")
        else:
            self._emit_state()
        self._schedule_read()

    def _read_value(self, reply: Reply, name: str) -> ClientError | None:
        """A GET VAR answer, applied as it arrives (so pushed lines in between keep order)."""
        assert isinstance(reply, VarReply)
        self._apply(name, reply.value)
        return None

    def _read_error(self, failure: Failure, name: str) -> ClientError:
        error = failure.value
        if not isinstance(error, ClientError):
            self.log.failure("{system}: reading {name}", failure, system=self.system,
                             name=name)
            return ClientError(f"unexpected failure: {failure.getErrorMessage()}")
        if name != "ups.status" and not isinstance(error, TransportError):
            self._apply(name, None)
        return error

    def _apply(self, name: str, value: str | None) -> None:
        if name == "ups.status":
            self._status = frozenset((value or "").upper().split())   # upsmon: strcasecmp
            if self._status & {"OB", "OL"}:      # neither: the power state is unchanged
                self._last_ob = "OB" in self._status
            return
        number: float | None = None
        if value is not None:
            try:
                number = float(value)
            except ValueError:
                self.log.warn("{system}: {name} is not a number: {value!r}",
                              system=self.system, name=name, value=value)
        if name == "battery.charge":
            self._charge = number
        else:
            self._runtime = number

    def _pushed(self, proto: NutClientProtocol, words: Words) -> None:
        if proto is not self._proto or self._stopping or not self.pushing:
            return
        if len(words) < 4 or words[1].lower() != self._ups.lower():
            return
        if words[2] == "ERR":
            self._comm_lost(f"the master reports ERR {words[3]}")
            self._schedule_read()
            return
        if words[2] != "VAR" or len(words) < 5 or words[3] not in self._names:
            return              # battery values only when asked for: upsmon reads no runtime
        self._apply(words[3], words[4])
        if words[3] == "ups.status":
            if not self._status:
                self._comm_lost("the master pushed an empty ups.status")
            else:
                self._emit_state()
            self._schedule_read()
        elif self._comm and self._status:
            self._emit_state()

    # -- timing --------------------------------------------------------------------------------

    def _poll_interval(self) -> float:
        settings = self.settings
        return min(settings.poll_freq_alert if self._last_ob else settings.poll_freq,
                   MAX_IDLE)

    def _read_interval(self) -> float:
        if self.pushing and self._comm is not False and not self._last_ob:
            return min(self.settings.watch_interval or self.settings.poll_freq, MAX_IDLE)
        if self.pushing:
            return min(self.settings.poll_freq_alert, MAX_IDLE)
        return self._poll_interval()

    def _schedule_read(self) -> None:
        """Read again after the current interval (sooner than already planned, never later)."""
        if self._stopping or self._proto is None or self._reading:
            return
        delay = self._read_interval()
        planned = self._next_read
        if planned is not None and planned.active():
            if planned.getTime() <= self._clock.seconds() + delay:
                return
            planned.cancel()
        self._next_read = self._clock.callLater(delay, self._timer)

    def _timer(self) -> None:
        self._next_read = None
        Deferred.fromCoroutine(self._read()).addErrback(
            lambda f: self.log.failure("{system}: read failed", f, system=self.system))

    def _cancel_read(self) -> None:
        if self._next_read is not None and self._next_read.active():
            self._next_read.cancel()
        self._next_read = None

    # -- events --------------------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        if self._stopping:
            return
        try:
            self._on_event(event)
        except Exception:
            self.log.failure("{system}: the event handler failed on {event!r}",
                             system=self.system, event=event)

    def _emit_state(self) -> None:
        if self._comm is False:
            self.log.info("{system}: communication restored", system=self.system)
            self._comm = True
            self._emit(CommOk(self.system))
        self._comm = True
        assert self._status is not None
        self._emit(UpsState(self.system, self._status, self._charge, self._runtime))

    def _comm_lost(self, reason: str) -> None:
        if self._comm is False:
            self.log.debug("{system}: still no data: {reason}", system=self.system,
                           reason=reason)
            return
        self._comm = False
        self.log.warn("{system}: communication lost: {reason}", system=self.system,
                      reason=reason)
        self._emit(CommLost(self.system, reason))
