"""The master's TCP fast path (upsagent.master.fastpath) over real TCP sockets.

Each test listens on a fresh, unshared epoll reactor (never the global one) and talks to it
from a plain non-blocking socket in the same thread, turning the reactor one iteration at a
time, so nothing waits for time to pass.  Both paths run the same exchanges: the fast path
(on the Twisted versions it is tested on) and the plain Twisted path, which must give
byte-identical results.
"""

from __future__ import annotations

import configparser
import re
import socket
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest
import twisted
from twisted.internet.epollreactor import EPollReactor

from upsagent.master import fastpath
from upsagent.master.fastpath import TESTED_TWISTED, in_tested_range
from upsagent.master.protocol import NutServerFactory, NutServerProtocol
from upsagent.system import runprocess
from tests.test_server import make_state

ROOT = Path(__file__).resolve().parent.parent


class Rig:
    """A factory listening on 127.0.0.1 on its own reactor, and one client socket."""

    def __init__(self, reactor: EPollReactor, factory: NutServerFactory, port: int) -> None:
        self.reactor = reactor
        self.factory = factory
        self.client = socket.socket()
        self.client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window
        self.client.settimeout(5)
        self.client.connect(("127.0.0.1", port))
        self.client.setblocking(False)
        self.proto = self.turn_until(lambda: next(iter(factory.connections), None),
                                     "the connection to be accepted")

    def turn_until(self, check: Callable[[], object], what: str) -> NutServerProtocol:
        """Turn the reactor until ``check()`` is truthy (at most 10 s of iterations)."""
        deadline = time.monotonic() + 10
        while not (value := check()):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            self.reactor.runUntilCurrent()  # type: ignore[no-untyped-call]
            self.reactor.doIteration(0.01)  # type: ignore[no-untyped-call]
        return value  # type: ignore[return-value]

    def recv_now(self) -> bytes:
        """What the client can read right now, without turning the reactor."""
        chunks = []
        while True:
            try:
                data = self.client.recv(65536)
            except BlockingIOError:
                return b"".join(chunks)
            if not data:
                return b"".join(chunks)
            chunks.append(data)

    def read_through(self, end: bytes) -> bytes:
        """Turn the reactor and read until the data ends with ``end`` or the server
        closes the connection; return what came."""
        got = bytearray()

        def more() -> bool:
            try:
                data = self.client.recv(65536)
            except BlockingIOError:
                return False
            got.extend(data)
            return not data or got.endswith(end)
        self.turn_until(more, f"replies up to {end!r}")
        return bytes(got)


@pytest.fixture(params=[True, False], ids=["fast", "plain"])
def rig(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    if request.param and not in_tested_range(twisted.__version__):
        pytest.skip(f"Twisted {twisted.__version__} is outside the tested range: "
                    "the fast path is off")
    monkeypatch.setattr(fastpath, "ENABLED", request.param)
    reactor = EPollReactor()  # type: ignore[no-untyped-call]
    state, _ = make_state()
    factory = NutServerFactory(state, reactor, max_send_buffer=4096)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    try:
        yield Rig(reactor, factory, port.getHost().port)
    finally:
        for proto in list(factory.connections):
            proto.disconnect()
        port.stopListening()
        for _ in range(5):
            reactor.runUntilCurrent()  # type: ignore[no-untyped-call]
            reactor.doIteration(0)  # type: ignore[no-untyped-call]
        reactor.removeAll()  # type: ignore[no-untyped-call]


def test_fast_path_is_used_exactly_when_enabled(rig: Rig) -> None:
    """On a plain TCP connection the fast path reads (it is the transport's doRead) and
    writes (a reply is in the client's socket before the reactor turns again)."""
    fast = rig.proto.fast_path
    assert (fast is not None) is fastpath.ENABLED
    if fast is not None:
        assert rig.proto.transport.doRead == fast.read  # type: ignore[union-attr]
    session = rig.proto.session
    assert session is not None
    rig.client.sendall(b"GET VAR dummy ups.load\n")
    rig.turn_until(lambda: session.requests == 1, "the request to be handled")
    now = rig.recv_now()
    if fast is not None:
        assert now == b'VAR dummy ups.load "23"\n'  # sent during the read, no extra turn
    else:
        assert now == b""  # queued in Twisted until its next write event
        assert rig.read_through(b"\n") == b'VAR dummy ups.load "23"\n'


def test_same_replies_in_order_through_flow_control(rig: Rig) -> None:
    """Pipelined requests whose replies overflow the send buffer (the client reads none
    of them for a while): every reply arrives once, in order, cached GETs included; the
    client is throttled meanwhile and served again as it reads."""
    rig.proto.transport.getHandle().setsockopt(  # type: ignore[union-attr]
        socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # so that the kernel soon takes no more
    one = b"LIST VAR dummy\nGET VAR dummy ups.load\nGET VAR dummy ups.load\nNETVER\n"
    rig.client.sendall(one)
    reply = rig.read_through(b"1.3\n")
    assert reply.startswith(b"BEGIN LIST VAR dummy\n") and reply.count(b"ups.load") == 3
    requests, sent, got = one * 400, 0, bytearray()
    transport = rig.proto.transport
    throttled = False
    deadline = time.monotonic() + 20
    while len(got) < len(reply) * 400 and time.monotonic() < deadline:
        if sent < len(requests):
            try:
                sent += rig.client.send(requests[sent:])
            except BlockingIOError:
                pass
        rig.reactor.runUntilCurrent()  # type: ignore[no-untyped-call]
        rig.reactor.doIteration(0.001)  # type: ignore[no-untyped-call]
        throttled = throttled or bool(transport.producerPaused)  # type: ignore[union-attr]
        if throttled or sent == len(requests):  # read only once the master held back
            got += rig.recv_now()
    assert throttled
    assert bytes(got) == reply * 400


def test_half_close_gets_every_reply_then_the_fast_path_is_gone(rig: Rig) -> None:
    """A client that sends and shuts its side (end of input through the fast path's read)
    gets every reply before the close; the transport has its own doRead back."""
    rig.client.sendall(b"NETVER\n" * 50 + b"GET VAR dummy ups.status\n")
    rig.client.shutdown(socket.SHUT_WR)
    data = rig.read_through(b"never")  # until the server closes
    assert data == b"1.3\n" * 50 + b'VAR dummy ups.status "OL CHRG"\n'
    transport = rig.proto.transport
    rig.turn_until(lambda: not rig.factory.connections, "the connection to be gone")
    assert "doRead" not in vars(transport)
    assert rig.proto.fast_path is None


def test_tested_range() -> None:
    """The fast path runs on the tested Twisted versions only: at least the lower bound
    of setup.cfg's install_requires, below its upper bound."""
    assert in_tested_range("23.10.0") and in_tested_range("26.10.0")
    assert in_tested_range("24.11.0rc1")
    assert not in_tested_range("23.8.0") and not in_tested_range("22.10.0")
    assert not in_tested_range("27.0.0") and not in_tested_range("trunk")
    assert fastpath.ENABLED is in_tested_range(twisted.__version__)


def test_tested_range_is_the_declared_one() -> None:
    """setup.cfg declares exactly the range the fast path (and the process runner's
    session spawn) is switched on for."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    requires = cfg["options"]["install_requires"]
    match = re.search(r"^\s*Twisted>=(\d+)\.(\d+),<(\d+)\s*$", requires, re.M)
    assert match is not None, requires
    low = (int(match.group(1)), int(match.group(2)))
    assert TESTED_TWISTED == runprocess.TESTED_TWISTED == (low, (int(match.group(3)), 0))
