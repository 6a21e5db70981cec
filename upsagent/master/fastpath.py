# -*- test-case-name: tests.test_fastpath -*-
"""Shortcuts past Twisted for a plain TCP client of the master, on tested Twisted versions.

:class:`TcpFastPath` does two things for one connection.  Measured with the benchmark's
loads (our master only, on and off in alternating pairs, 2026-12-06), they save about a third
of the CPU per request: idle-10k 6.3 / 6.9 % of a core against 9.7 / 10.0 % (two quiet
pairs of three; 32-35 against 49-50 us per GET), get-var-100 8.4-8.9 against 12.3-12.8 us
per request, list-var-100 10.5-12.2 against 13.8-15.6 us per list:

* **reads go straight in**: its :meth:`~TcpFastPath.read` stands in for the transport's
  ``doRead``: the same ``recv`` of up to ``bufferSize`` bytes and the same results
  (``None`` on would-block, ``CONNECTION_LOST`` on an error, ``CONNECTION_DONE`` at end of
  input) as Twisted's ``tcp.Connection.doRead``, one call layer less per request;
* **replies go straight out**: :meth:`~TcpFastPath.write` hands a reply to the socket at once
  when nothing is queued in the transport, instead of queueing it for the reactor's next
  turn (two epoll updates and a wake-up saved per request); what the socket does not take
  goes to ``transport.write``, so order and flow control are Twisted's.

Both depend on Twisted internals (``doRead`` as an instance attribute the reactor calls, the
transport's ``socket``, ``dataBuffer`` and ``_tempDataBuffer``), so they are used only on
the Twisted versions the test suite runs them on (:data:`TESTED_TWISTED`, the same range as
``install_requires`` in setup.cfg) and only on a transport whose ``doRead`` is Twisted's
own.  Anywhere else :meth:`TcpFastPath.attach` returns None and the protocol uses the plain
Twisted path (``transport.write``, Twisted's ``doRead``), which behaves the same, slower.
"""

from __future__ import annotations

import re
from errno import EWOULDBLOCK
from typing import Any, Callable

import twisted
from twisted.internet import main, tcp
from twisted.internet.error import ConnectionDone, ConnectionLost

__all__ = ["ENABLED", "TESTED_TWISTED", "TcpFastPath", "in_tested_range"]

#: the Twisted versions the fast path is tested on: at least the first, below the second
#: (keep in step with ``Twisted>=23.10,<27`` in setup.cfg; tests/test_master_protocol.py
#: checks that they agree)
TESTED_TWISTED: tuple[tuple[int, int], tuple[int, int]] = ((23, 10), (27, 0))


def in_tested_range(version: str) -> bool:
    """Whether the Twisted version string ``version`` lies in :data:`TESTED_TWISTED`."""
    match = re.match(r"(\d+)\.(\d+)", version)
    if match is None:
        return False
    low, high = TESTED_TWISTED
    return low <= (int(match.group(1)), int(match.group(2))) < high


#: the running Twisted is one the fast path was tested on
ENABLED = in_tested_range(twisted.__version__)


class TcpFastPath:
    """The direct read and write of one plain TCP connection (see the module docstring)."""

    __slots__ = ("_transport", "_sock", "_deliver")

    def __init__(self, transport: Any, sock: Any, deliver: Callable[[bytes], None]) -> None:
        self._transport = transport
        self._sock = sock
        self._deliver = deliver

    @classmethod
    def attach(cls, transport: object,
               deliver: Callable[[bytes], None]) -> "TcpFastPath | None":
        """Take over ``transport``'s reads (each chunk goes to ``deliver``, the protocol's
        ``dataReceived``) and offer direct writes; None when the running Twisted is not a
        tested one or ``transport`` is not a plain Twisted TCP connection."""
        if (not ENABLED or not isinstance(transport, tcp.Connection)
                or getattr(transport, "TLS", False)
                or type(transport).doRead is not tcp.Connection.doRead
                or not isinstance(getattr(transport, "_tempDataBuffer", None), list)):
            return None
        sock = getattr(transport, "socket", None)
        if sock is None:
            return None
        fast = cls(transport, sock, deliver)
        transport.doRead = fast.read  # type: ignore[method-assign]  # undone by detach
        return fast

    def detach(self) -> None:
        """Give ``doRead`` back to the transport (before TLS starts, and when closed)."""
        attrs = getattr(self._transport, "__dict__", None)
        if attrs is not None and attrs.get("doRead") == self.read:
            del attrs["doRead"]
        self._sock = None

    def read(self) -> ConnectionLost | ConnectionDone | None:
        """The transport's ``doRead``: Twisted's own, without its extra call layer."""
        try:
            data = self._sock.recv(self._transport.bufferSize)
        except OSError as exc:
            if exc.args[0] == EWOULDBLOCK:
                return None
            return main.CONNECTION_LOST
        if not data:
            return main.CONNECTION_DONE
        self._deliver(data)
        return None

    def write(self, data: bytes) -> None:
        """Send ``data`` now when nothing waits in the transport; queue the rest there."""
        tx = self._transport
        sock = self._sock
        if (sock is not None and not tx.dataBuffer and not tx._tempDataBuffer
                and not tx.disconnecting):
            try:
                sent = sock.send(data)
            except OSError:  # would block, or the peer is gone: Twisted will see to it
                sent = 0
            data = data[sent:]
        if data:
            tx.write(data)
