"""Tests for upsagent.master.protocol: the Twisted shell, with StringTransport and Clock."""

from __future__ import annotations

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from upsagent.master.protocol import NutServerFactory, NutServerProtocol
from tests.test_server import make_state


class FakePort:
    """A listening port that records whether it accepts connections."""

    def __init__(self) -> None:
        self.reading = True

    def stopReading(self) -> None:
        self.reading = False

    def startReading(self) -> None:
        self.reading = True


def connect(factory: NutServerFactory, host: str = "127.0.0.1",
            ) -> tuple[NutServerProtocol, StringTransport]:
    addr = IPv6Address("TCP", host, 40000) if ":" in host else IPv4Address("TCP", host, 40000)
    proto = factory.buildProtocol(addr)
    assert isinstance(proto, NutServerProtocol)
    transport = StringTransport(peerAddress=addr)
    proto.makeConnection(transport)
    return proto, transport


def make_factory(**kw: object) -> tuple[NutServerFactory, Clock]:
    clock = Clock()
    state, _ = make_state(clock)
    return NutServerFactory(state, clock, **kw), clock  # type: ignore[arg-type]


def test_replies_and_peer_address() -> None:
    """Requests are answered through the transport; LIST CLIENT shows the IPv6 peer."""
    factory, _ = make_factory()
    proto, tr = connect(factory, "::1")
    proto.dataReceived(b"USERNAME monuser\nPASSWORD monpass\nLOGIN dummy\n"
                       b"LIST CLIENT dummy\n")
    assert tr.value().decode().splitlines()[-2] == "CLIENT dummy ::1"


def test_idle_timeout_counts_complete_requests_only() -> None:
    """A client silent for 60 s is cut at the next sweep (every 5 s); partial lines do not
    count as activity; one that still does not go away is aborted at the sweep after."""
    factory, clock = make_factory()
    proto, tr = connect(factory)
    clock.advance(56)
    proto.dataReceived(b"NETVER\n")
    clock.advance(59)
    assert not tr.disconnecting
    proto.dataReceived(b"NET")  # not a complete request: no reset
    for _ in range(5):
        clock.advance(1)
    assert tr.disconnecting
    tr.disconnecting = True  # StringTransport keeps it "closing" forever, like a stuck peer
    aborted: list[bool] = []
    tr.abortConnection = lambda: aborted.append(True)  # type: ignore[method-assign]
    clock.advance(5)
    assert aborted == [True]


def test_logout_closes_after_reply() -> None:
    """LOGOUT writes its reply, then the connection closes; NUMLOGINS drops on close."""
    factory, _ = make_factory()
    proto, tr = connect(factory)
    proto.dataReceived(b"USERNAME monuser\nPASSWORD monpass\nLOGIN dummy\nLOGOUT\n")
    assert tr.value().endswith(b"OK Goodbye\n") and tr.disconnecting
    slot = factory.state.find("dummy")
    assert slot is not None and slot.numlogins == 1
    proto.connectionLost()
    assert slot.numlogins == 0


def test_connection_limit_pauses_accepting() -> None:
    """At MAXCONN the ports stop accepting; a closed connection lets the next one in."""
    factory, _ = make_factory(maxconn=2)
    port = FakePort()
    factory.ports = [port]
    first, _ = connect(factory)
    connect(factory)
    assert not port.reading
    first.connectionLost()
    assert port.reading


def test_client_that_never_reads_is_throttled() -> None:
    """While the transport is paused we stop answering; output resumes when it drains."""
    factory, _ = make_factory()
    proto, tr = connect(factory)
    proto.pauseProducing()  # the transport's buffer is full
    assert tr.producerState == "paused"
    proto.dataReceived(b"NETVER\n" * 10000)
    assert tr.value() == b""  # nothing processed, nothing buffered for the client
    proto.resumeProducing()
    assert tr.value() == b"1.3\n" * 10000


def test_overlong_line_is_refused_and_logged() -> None:
    """A line over the limit drops that client; others are unaffected."""
    factory, _ = make_factory(max_line_length=10_000)
    bad, bad_tr = connect(factory)
    good, good_tr = connect(factory)
    bad.dataReceived(b"GET VAR dummy " + b"x" * 20_000)
    assert bad_tr.disconnecting
    good.dataReceived(b"GET VAR dummy ups.load\n")
    assert good_tr.value() == b'VAR dummy ups.load "23"\n'


def test_one_megabyte_line_is_answered_without_limit() -> None:
    """Like upsd, a 1 MB request line gets its answer when no limit is configured."""
    factory, _ = make_factory(max_line_length=0)
    proto, tr = connect(factory)
    proto.dataReceived(b"GET VAR dummy " + b"y" * 1_000_000 + b"\nNETVER\n")
    assert tr.value() == b"ERR VAR-NOT-SUPPORTED\n1.3\n"
