# -*- test-case-name: tests.test_master_protocol -*-
"""The Twisted shell around :class:`upsagent.nut.server.ServerSession`.

The session does the protocol; this module only moves bytes and enforces the limits that
need a transport or a clock:

* **idle cut**: a client that completes no request for ``idle_timeout`` seconds (upsd: 60)
  is disconnected without a message.  One sweep over all connections every
  ``idle_timeout / 12`` seconds does it (upsd also checks in its main loop), so the cut
  comes at most that much late; one timer per connection, reset on every request, cost
  10,000 idle pollers more CPU than the requests themselves;
* **connection limit** (MAXCONN): when that many clients are connected the factory stops
  accepting, as upsd does; further clients wait in the listen backlog and are taken as soon
  as a slot frees.  Existing clients are never starved or dropped for it;
* **who gets a slot** (:mod:`upsagent.master.admission`): a source address over
  ``max_conn_per_address`` is refused, and the last ``reserved_monitor_slots`` slots keep
  only connections that log in as a monitor in time, so that one address holding
  connections cannot keep upsmon out;
* **flow control**: the protocol registers itself as a streaming producer on its transport.
  When a client does not read its replies and more than ``max_send_buffer`` bytes wait in
  the transport, we stop reading that client's requests until it drains, so a client that
  never reads cannot make the server buffer without bound;
* **pushed lines** (``WATCH``): the session calls ``wakeup`` when it queued some; they are
  written at once unless the protocol is handling input (they follow its replies) or the
  client is throttled (they wait in the session, which keeps only the newest per item, and
  are written when the transport drains);
* **line length**: a request line longer than ``max_line_length`` drops the connection;
* **STARTTLS**: after ``OK STARTTLS`` is written the transport switches to TLS (Twisted
  sends bytes written before ``startTLS`` in the clear);
* **half-close**: a client that sends its requests and then shuts its side down (``nc -N``)
  still gets every reply before the connection closes;
* **the TCP fast path**: on a plain TCP transport, and only on the Twisted versions it is
  tested on, :class:`~upsagent.master.fastpath.TcpFastPath` reads requests and sends
  replies past some of Twisted's layers (same results, order and flow control); TLS, other
  transports and other Twisted versions use the plain Twisted path.

Everything refused is said in the log, with the peer's address.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import (
    IAddress, IDelayedCall, IHalfCloseableProtocol, IReactorTime)
from twisted.internet.task import LoopingCall
from twisted.internet.protocol import Protocol, ServerFactory, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from upsagent.master.admission import LOGIN_WINDOW, PROBATION, Admission, source_key
from upsagent.master.fastpath import TcpFastPath
from upsagent.nut.server import ServerSession
from upsagent.nut.state import ServerState

__all__ = ["NutServerFactory", "NutServerProtocol"]

#: how much input one pass handles before the output is written and flow control checked
_PUMP_BYTES = 4096


@implementer(IHalfCloseableProtocol)
class NutServerProtocol(Protocol):
    """One client connection."""

    log = Logger()
    factory: "NutServerFactory"

    def __init__(self) -> None:
        self.session: ServerSession | None = None
        #: when the last complete request arrived (the idle sweep reads it)
        self.last_heard = 0.0
        self._inbuf = b""
        self._paused = False
        self._throttled = False
        self._pumping = False
        #: direct reads and writes on plain TCP (None: the plain Twisted path)
        self._fast: TcpFastPath | None = None
        #: what the per-address limit counts this client as (admission.source_key)
        self.source = ""
        #: in a slot kept for monitors, not logged in yet: when its time is up
        self.probation: IDelayedCall | None = None

    @property
    def _tx(self) -> Any:
        """The transport: TCP or TLS, with producer and ``startTLS`` support."""
        return self.transport

    # -- connection ------------------------------------------------------------------

    def connectionMade(self) -> None:
        factory = self.factory
        peer = self._tx.getPeer()
        self.peer = str(getattr(peer, "host", peer))
        self.session = ServerSession(factory.state, self.peer,
                                     max_line_length=factory.max_line_length)
        self.session.wakeup = self._flush
        if hasattr(self.transport, "bufferSize"):  # TCP: throttle past max_send_buffer
            self._tx.bufferSize = factory.max_send_buffer
        self._fast = TcpFastPath.attach(self.transport, self.dataReceived)
        self._tx.registerProducer(self, True)
        self.last_heard = factory.clock.seconds()
        factory.connection_made(self)

    @property
    def fast_path(self) -> TcpFastPath | None:
        """The TCP fast path serving this connection, or None (plain Twisted path)."""
        return self._fast

    def disconnect(self) -> None:
        """Close this connection once the replies already written are sent."""
        self._tx.loseConnection()

    def abort(self) -> None:
        """Close this connection at once; replies not sent yet are dropped."""
        self._tx.abortConnection()

    @property
    def logged_in(self) -> bool:
        """Whether the client is logged in to a UPS (``LOGIN``: a monitor)."""
        return self.session is not None and self.session.login_slot is not None

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._fast_off()
        if self.session is not None:
            self.session.connection_lost()
        self.factory.connection_lost(self)

    def readConnectionLost(self) -> None:
        """The client shut down its sending side: answer what it sent, then close."""
        self._tx.loseConnection()

    def writeConnectionLost(self) -> None:
        """Nothing to do: we never half-close ourselves."""

    def idle_timeout(self) -> None:
        """The idle sweep found this client silent for too long.

        The first time, close politely (queued replies are still delivered); if the client
        is still there at the next sweep it is not reading them either: abort.
        """
        if self._tx.disconnecting:
            self.log.info("Abort {peer}: silent and not reading its replies", peer=self.peer)
            self._tx.abortConnection()
            return
        self.log.info("Disconnect {peer} (no data available for {sec} s)",
                      peer=self.peer, sec=self.factory.idle_timeout)
        self._tx.loseConnection()

    # -- data ------------------------------------------------------------------------

    def _fast_off(self) -> None:
        """Leave the fast path (before TLS, and when closed)."""
        if self._fast is not None:
            self._fast.detach()
            self._fast = None

    def dataReceived(self, data: bytes) -> None:
        session = self.session
        if self._inbuf or self._paused or session is None or len(data) > _PUMP_BYTES:
            self._inbuf += data
            self._pump()
            return
        reply = session.answer_from_cache(data)
        if reply is not None:  # a poller's GET VAR, answered before and still valid
            self._write(reply)
            self.last_heard = self.factory.clock.seconds()
            return
        # The usual case: nothing held back, one chunk to handle.  The same steps as
        # _pump/_pump_input for a single pass, without copying the input around.
        self._pumping = True
        try:
            self._handle(session, data)
        finally:
            self._pumping = False
        if session.closing:
            self._close(session)
        elif session.pushes_pending:
            self._flush()  # lines pushed while the input was handled, or held for TLS

    def _pump(self) -> None:
        """Feed buffered input to the session while the client keeps reading replies."""
        session = self.session
        assert session is not None
        self._pumping = True
        try:
            self._pump_input(session)
        finally:
            self._pumping = False
        if session.closing:
            self._close(session)
            return
        self._flush()  # lines pushed while the input was handled, or held for TLS

    def _close(self, session: ServerSession) -> None:
        """The session ended (LOGOUT, or a limit): drop unread input and close."""
        if session.close_reason:
            self.log.warn("Disconnect {peer}: {why}", peer=self.peer,
                          why=session.close_reason)
        self._inbuf = b""
        self._tx.loseConnection()

    def _pump_input(self, session: ServerSession) -> None:
        while self._inbuf and not self._paused and not session.closing:
            chunk, self._inbuf = self._inbuf[:_PUMP_BYTES], self._inbuf[_PUMP_BYTES:]
            self._handle(session, chunk)

    def _handle(self, session: ServerSession, chunk: bytes) -> None:
        """One pass: feed ``chunk`` to the session and write its replies."""
        before = session.requests
        session.receive_data(chunk)
        if session.notices:
            for notice in session.notices:
                self.log.info("{notice}", notice=notice)
            session.notices.clear()
        out = session.data_to_send()
        if out:
            self._write(out)
        if session.requests != before:
            self.last_heard = self.factory.clock.seconds()
            if self.probation is not None and session.login_slot is not None:
                self.factory.logged_in(self)
        if session.start_tls:
            self._inbuf = b""  # plain text after STARTTLS is not honoured
            self._start_tls(session)

    def _flush(self) -> None:
        """Write pending output now, unless input is being handled or the client is
        throttled (the session's ``wakeup``)."""
        session = self.session
        if (self._pumping or self._paused or session is None or session.closing
                or session.start_tls or self._tx.disconnecting):
            return
        out = session.data_to_send()
        if out:
            self._write(out)

    def _write(self, data: bytes) -> None:
        """Write ``data`` after anything written before (directly when the fast path can)."""
        fast = self._fast
        if fast is not None:
            fast.write(data)
        else:
            self._tx.write(data)

    def _start_tls(self, session: ServerSession) -> None:
        context = self.factory.tls_context
        if context is None:  # cannot happen: the session only says OK when TLS is set up
            session.closing = True
            return
        self._fast_off()  # from now on everything goes through the TLS layer
        self._tx.startTLS(context)
        session.tls_started()
        self.log.info("{peer} switched to TLS", peer=self.peer)

    # -- IPushProducer: the transport tells us when the client stops reading ----------

    def pauseProducing(self) -> None:
        self._paused = True
        if not self._throttled:
            self._throttled = True
            self.log.info("Throttling {peer}: it does not read its replies; its requests "
                          "wait until it does", peer=self.peer)
        self._tx.pauseProducing()

    def resumeProducing(self) -> None:
        self._paused = False
        self._tx.resumeProducing()
        self._pump()

    def stopProducing(self) -> None:
        self._paused = True


class NutServerFactory(ServerFactory):
    """Shared by every listening port of one master: the state, limits and TLS context."""

    protocol = NutServerProtocol  # type: ignore[assignment]
    log = Logger()

    def __init__(self, state: ServerState, clock: IReactorTime, *, maxconn: int = 1024,
                 idle_timeout: float = 60, max_line_length: int = 0,
                 tls_context: Any = None, max_send_buffer: int = 64 * 1024,
                 max_conn_per_address: int | None = None,
                 reserved_monitor_slots: int = 0) -> None:
        self.state = state
        self.clock = clock
        #: the limits on who gets a slot (``maxconn`` and the two below live there)
        self.admission = Admission(clock, maxconn=maxconn,
                                   max_conn_per_address=max_conn_per_address,
                                   reserved_monitor_slots=reserved_monitor_slots)
        self.idle_timeout = idle_timeout
        self.max_line_length = max_line_length
        self.max_send_buffer = max_send_buffer
        self.tls_context = tls_context
        state.tls_available = tls_context is not None
        self.connections: set[NutServerProtocol] = set()
        self.ports: list[Any] = []
        self._accepting = True
        self._sweep = LoopingCall(self.sweep_idle)
        self._sweep.clock = clock

    @property
    def maxconn(self) -> int:
        """MAXCONN: the most clients connected at once."""
        return self.admission.maxconn

    @maxconn.setter
    def maxconn(self, value: int) -> None:
        self.admission.maxconn = value

    @property
    def max_conn_per_address(self) -> int | None:
        """The most connections from one source (None: no limit)."""
        return self.admission.max_conn_per_address

    @max_conn_per_address.setter
    def max_conn_per_address(self, value: int | None) -> None:
        self.admission.max_conn_per_address = value

    @property
    def reserved_monitor_slots(self) -> int:
        """How many of the ``maxconn`` slots keep only clients that log in."""
        return self.admission.reserved_monitor_slots

    @reserved_monitor_slots.setter
    def reserved_monitor_slots(self, value: int) -> None:
        self.admission.reserved_monitor_slots = value

    def buildProtocol(self, addr: IAddress) -> NutServerProtocol | None:  # type: ignore[override]
        """A protocol for a client just accepted, or None to refuse it (Twisted then
        closes the socket at once); see :mod:`upsagent.master.admission`."""
        host = str(getattr(addr, "host", addr))
        key = source_key(host)
        verdict = self.admission.decide(key, host, len(self.connections))
        if verdict is None:
            return None
        proto = NutServerProtocol()
        proto.factory = self
        proto.source = key
        if verdict == PROBATION:
            proto.probation = self.clock.callLater(LOGIN_WINDOW, self.login_window_over,
                                                   proto)
            self.admission.on_probation[key] = proto
            self.admission.limiter.warn(
                "connections in slots kept for monitors", host,
                f"{host} is in a slot kept for monitors (reserved_monitor_slots "
                f"{self.reserved_monitor_slots}): it must log in within "
                f"{LOGIN_WINDOW:g} s to stay while the master is that full")
        return proto

    def logged_in(self, proto: NutServerProtocol) -> None:
        """A client on probation logged in: it keeps its slot."""
        self._end_probation(proto)
        self.log.info("{peer} logged in: keeps its slot kept for monitors", peer=proto.peer)

    def login_window_over(self, proto: NutServerProtocol) -> None:
        """A client on probation did not log in in time: dropped if the master is still
        past its regular slots, else kept."""
        proto.probation = None
        self._end_probation(proto)
        if (proto not in self.connections or proto.logged_in
                or len(self.connections) <= self.admission.regular_slots):
            return
        self.admission.limiter.warn(
            "dropped from slots kept for monitors", proto.peer,
            f"Dropped {proto.peer}: it was in a slot kept for monitors and did not log in "
            f"within {LOGIN_WINDOW:g} s")
        proto.abort()

    def _end_probation(self, proto: NutServerProtocol) -> None:
        if proto.probation is not None:
            if proto.probation.active():
                proto.probation.cancel()
            proto.probation = None
        if self.admission.on_probation.get(proto.source) is proto:
            del self.admission.on_probation[proto.source]

    def sweep_idle(self) -> None:
        """Disconnect every client that completed no request for ``idle_timeout`` s."""
        limit = self.clock.seconds() - self.idle_timeout
        for proto in [p for p in self.connections if p.last_heard < limit]:
            proto.idle_timeout()

    def set_tls_context(self, context: Any) -> None:
        """Install (or remove, with None) the TLS context used by STARTTLS."""
        self.tls_context = context
        self.state.tls_available = context is not None

    def connection_made(self, proto: NutServerProtocol) -> None:
        """A client's connection was made (called by its protocol)."""
        self.connections.add(proto)
        self.admission.joined(proto.source)
        if not self._sweep.running:
            self._sweep.start(max(0.5, self.idle_timeout / 12), now=False)
        self.update_accepting()

    def connection_lost(self, proto: NutServerProtocol) -> None:
        """A client's connection is gone (called by its protocol)."""
        if proto in self.connections:
            self.connections.discard(proto)
            self.admission.left(proto.source)
        self._end_probation(proto)
        if not self.connections and self._sweep.running:
            self._sweep.stop()
        self.update_accepting()

    def update_accepting(self) -> None:
        """Stop or resume accepting so that at most ``maxconn`` clients are connected."""
        full = len(self.connections) >= self.maxconn
        if full and self._accepting:
            self._accepting = False
            self.log.warn("Connection limit reached ({n} clients, MAXCONN {max}): new "
                          "connections wait until one closes", n=len(self.connections),
                          max=self.maxconn)
            for port in self.ports:
                port.stopReading()
        elif not full and not self._accepting:
            self._accepting = True
            self.log.info("Below the connection limit again: accepting connections")
            for port in self.ports:
                port.startReading()
