"""Who gets a connection slot (upsagent.master.admission), through the factory, with
StringTransport and Clock: the per-address limit, the slots kept for monitors, the
rate-limited log lines."""

from __future__ import annotations

from typing import Iterator

import pytest
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import LogEvent, formatEvent, globalLogPublisher

from upsagent.master.admission import LOG_INTERVAL, LOGIN_WINDOW, LogLimiter, source_key
from upsagent.master.protocol import NutServerFactory, NutServerProtocol
from tests.test_master_protocol import FakePort, make_factory

LOGIN = b"USERNAME monuser\nPASSWORD monpass\nLOGIN dummy\n"


def attempt(factory: NutServerFactory, host: str,
            ) -> tuple[NutServerProtocol, StringTransport] | None:
    """A client from ``host`` connects: its protocol and transport, or None if refused."""
    addr = IPv6Address("TCP", host, 40000) if ":" in host else IPv4Address("TCP", host, 40000)
    proto = factory.buildProtocol(addr)
    if proto is None:
        return None
    transport = StringTransport(peerAddress=addr)
    proto.makeConnection(transport)
    return proto, transport


def close(proto: NutServerProtocol) -> None:
    proto.connectionLost()


def timers(clock: Clock, factory: NutServerFactory) -> int:
    """How many login windows are still running."""
    return sum(1 for call in clock.getDelayedCalls() if call.func == factory.login_window_over)


@pytest.fixture
def logged() -> Iterator[list[str]]:
    """The text of every log event emitted during the test."""
    lines: list[str] = []

    def observe(event: LogEvent) -> None:
        lines.append(formatEvent(event))
    globalLogPublisher.addObserver(observe)
    yield lines
    globalLogPublisher.removeObserver(observe)


def test_source_key() -> None:
    """IPv4 as is; IPv6 by its /64; IPv4-mapped IPv6 as the IPv4 address."""
    assert source_key("192.0.2.7") == "192.0.2.7"
    assert source_key("2001:db8:1:2:a:b:c:d") == "2001:db8:1:2::/64"
    assert source_key("2001:db8:1:2::99") == "2001:db8:1:2::/64"
    assert source_key("2001:db8:1:3::1") == "2001:db8:1:3::/64"
    assert source_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert source_key("fe80::1%eth0") == "fe80::/64"


def test_per_address_limit_refuses_only_that_address(logged: list[str]) -> None:
    """The next connection from an address at its limit is refused (no protocol, so
    Twisted closes the socket at once); other addresses still get in; a slot freed by
    that address is its own again."""
    factory, _ = make_factory(maxconn=100, max_conn_per_address=3)
    held = [attempt(factory, "192.0.2.2") for _ in range(3)]
    assert all(held)
    assert attempt(factory, "192.0.2.2") is None
    assert attempt(factory, "192.0.2.3") is not None
    assert len(factory.connections) == 4
    assert any("Refused 192.0.2.2: already 3 connections from 192.0.2.2 "
               "(max_conn_per_address 3)" in line for line in logged)
    first = held[0]
    assert first is not None
    close(first[0])
    assert attempt(factory, "192.0.2.2") is not None


def test_per_address_limit_counts_an_ipv6_64_as_one() -> None:
    """Addresses of one IPv6 /64 share the limit."""
    factory, _ = make_factory(maxconn=100, max_conn_per_address=2)
    assert attempt(factory, "2001:db8::1") and attempt(factory, "2001:db8::2")
    assert attempt(factory, "2001:db8::3") is None
    assert attempt(factory, "2001:db8:0:1::1") is not None


def test_refusals_are_logged_at_most_once_per_interval(logged: list[str]) -> None:
    """A flood of refusals gives one line at once and one summary per interval with the
    count and a few of the peers, not one line each."""
    factory, clock = make_factory(maxconn=100, max_conn_per_address=1)
    attempt(factory, "192.0.2.2")
    attempt(factory, "192.0.2.3")
    for _ in range(500):
        assert attempt(factory, "192.0.2.2") is None
        assert attempt(factory, "192.0.2.3") is None
    refused = [line for line in logged if "max_conn_per_address" in line]
    assert len(refused) == 1
    clock.advance(LOG_INTERVAL)
    refused = [line for line in logged if "max_conn_per_address" in line]
    assert len(refused) == 2
    assert refused[1] == ("... and 999 more refused over max_conn_per_address in the last "
                          "10 s (from 192.0.2.3, 192.0.2.2)")
    clock.advance(LOG_INTERVAL)  # nothing held back: the window closes quietly
    assert len([line for line in logged if "max_conn_per_address" in line]) == 2
    assert attempt(factory, "192.0.2.2") is None  # a new window: logged at once
    assert len([line for line in logged if "max_conn_per_address" in line]) == 3


def test_log_limiter_counts_kinds_apart(logged: list[str]) -> None:
    """Each kind has its own window."""
    clock = Clock()
    limiter = LogLimiter(clock, interval=5)
    limiter.warn("a", "p1", "first a")
    limiter.warn("b", "p1", "first b")
    limiter.warn("a", "p2", "second a")
    assert logged == ["first a", "first b"]
    clock.advance(5)
    assert logged[2:] == ["... and 1 more a in the last 5 s (from p2)"]
    limiter.warn("a", "p3", "third a")
    limiter.stop()
    assert clock.getDelayedCalls() == []


def test_reserved_slots_keep_only_clients_that_log_in(logged: list[str]) -> None:
    """maxconn 6 with 2 kept for monitors: past 4 clients a new one is on probation, one
    per address; logging in keeps it; one that does not is dropped when its time is up."""
    factory, clock = make_factory(maxconn=6, max_conn_per_address=6,
                                  reserved_monitor_slots=2)
    port = FakePort()
    factory.ports = [port]
    for _ in range(4):
        got = attempt(factory, "192.0.2.2")
        assert got is not None and got[0].probation is None
    idler = attempt(factory, "192.0.2.2")
    assert idler is not None and idler[0].probation is not None
    assert attempt(factory, "192.0.2.2") is None  # that address already has one waiting
    assert any("already holds a connection from 192.0.2.2 that has not logged in" in line
               for line in logged)
    monitor = attempt(factory, "192.0.2.9")
    assert monitor is not None and monitor[0].probation is not None
    assert not port.reading  # MAXCONN: the rest wait in the backlog
    idler[0].dataReceived(b"GET VAR dummy ups.load\n")  # served meanwhile, as anyone
    assert idler[1].value() == b'VAR dummy ups.load "23"\n'
    monitor[0].dataReceived(LOGIN)
    assert monitor[1].value() == b"OK\nOK\nOK\n"
    assert monitor[0].probation is None and monitor[0].logged_in
    clock.advance(LOGIN_WINDOW - 0.1)
    assert not idler[1].disconnecting
    clock.advance(0.1)
    assert idler[1].disconnected  # aborted: a client that does not read cannot hold it
    assert any("Dropped 192.0.2.2: it was in a slot kept for monitors and did not log in "
               "within 10 s" in line for line in logged)
    close(idler[0])
    assert not monitor[1].disconnecting
    assert not timers(clock, factory)
    again = attempt(factory, "192.0.2.2")  # a slot kept for monitors is free again
    assert again is not None and again[0].probation is not None


def test_probation_kept_when_there_is_room_again() -> None:
    """A client on probation that did not log in stays if, by the end of its window, the
    master is back within its regular slots."""
    factory, clock = make_factory(maxconn=4, max_conn_per_address=4,
                                  reserved_monitor_slots=1)
    regular = [attempt(factory, "192.0.2.2") for _ in range(3)]
    late = attempt(factory, "192.0.2.3")
    assert late is not None and late[0].probation is not None
    first = regular[0]
    assert first is not None
    close(first[0])
    clock.advance(LOGIN_WINDOW)
    assert not late[1].disconnecting and late[0].probation is None
    assert "192.0.2.3" not in factory.admission.on_probation


def test_closing_on_probation_frees_the_address() -> None:
    """A client on probation that leaves takes its timer and its place with it."""
    factory, clock = make_factory(maxconn=2, max_conn_per_address=2,
                                  reserved_monitor_slots=1)
    attempt(factory, "192.0.2.2")
    waiting = attempt(factory, "192.0.2.3")
    assert waiting is not None and waiting[0].probation is not None
    close(waiting[0])
    assert not timers(clock, factory)
    assert factory.admission.on_probation == {}
    assert factory.admission.per_source == {"192.0.2.2": 1}
    assert attempt(factory, "192.0.2.3") is not None


def test_burst_past_maxconn_is_refused(logged: list[str]) -> None:
    """Twisted accepts a burst in one go: past MAXCONN the rest of it is refused (upsd's
    ports would have kept them in the backlog; ours can no longer)."""
    factory, _ = make_factory(maxconn=3)
    assert all(attempt(factory, f"192.0.2.{i}") for i in range(3))
    assert attempt(factory, "192.0.2.9") is None
    assert any("Refused 192.0.2.9: MAXCONN 3 reached" in line for line in logged)
