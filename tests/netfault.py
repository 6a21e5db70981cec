"""A TCP proxy that can be cut: the network between a slave and its master, for tests.

::

    with FaultyLink(("127.0.0.1", master_port)) as link:
        ...  # point the slave at link.port
        link.cut("reset")     # every connection reset, new ones refused at once
        link.cut("silent")    # packets vanish: nothing is forwarded, nothing is refused
        link.heal()           # forwarding again (what a silent cut held back arrives now)

``reset`` is a host that went away (its kernel answers with RST); ``silent`` is a pulled
cable or a firewall that drops: the slave's connect hangs and its open session simply stops
answering, which only a read timeout detects.  Bytes held during a silent cut are delivered
when the link heals, as TCP's retransmissions would deliver them.

Threads, not the test's reactor: the processes on both ends are real daemons.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from types import TracebackType

__all__ = ["FaultyLink"]


class FaultyLink:
    """Listens on a free loopback port and forwards to ``target`` until told otherwise."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self.mode = "open"
        #: connections made through the link so far (the slave's reconnects show here)
        self.accepted = 0
        self._lock = threading.Lock()
        self._pairs: dict[socket.socket, socket.socket] = {}
        self._held: dict[socket.socket, bytearray] = {}
        self._waiting: list[socket.socket] = []     # accepted during a silent cut
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="faulty-link", daemon=True)
        self._thread.start()

    # -- control (from the test's thread) ---------------------------------------------------

    def cut(self, mode: str = "reset") -> None:
        """Cut the link: ``reset`` (RST, refused) or ``silent`` (nothing gets through)."""
        if mode not in ("reset", "silent"):
            raise ValueError(f"unknown cut mode {mode!r}")
        self._control(mode)

    def heal(self) -> None:
        """Forward again."""
        self._control("open")

    def _control(self, mode: str) -> None:
        with self._lock:
            self.mode = mode
        self._wake_w.send(b"x")

    def close(self) -> None:
        self._stop = True
        self._wake_w.send(b"x")
        self._thread.join(5)
        for sock in [*self._pairs, *self._waiting, self._listener, self._wake_r, self._wake_w]:
            with contextlib.suppress(OSError):
                sock.close()
        self._selector.close()

    def __enter__(self) -> "FaultyLink":
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- the forwarding thread ---------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop:
            for key, _ in self._selector.select(0.5):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self._wake_r:
                    sock.recv(4096)
                    self._apply_mode()
                elif sock is self._listener:
                    self._accept()
                else:
                    self._forward(sock)

    def _apply_mode(self) -> None:
        with self._lock:
            mode = self.mode
        if mode == "reset":
            for sock in list(self._pairs) + self._waiting:
                self._drop(sock, reset=True)
            self._waiting.clear()
        elif mode == "open":
            for sock, data in list(self._held.items()):
                peer = self._pairs.get(sock)
                if peer is not None and data:
                    with contextlib.suppress(OSError):
                        peer.sendall(data)
                data.clear()
            for client in self._waiting:
                self._connect(client)
            self._waiting.clear()

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        self.accepted += 1
        with self._lock:
            mode = self.mode
        if mode == "reset":
            _reset(client)
        elif mode == "silent":
            self._waiting.append(client)      # the handshake "never completes" for it
        else:
            self._connect(client)

    def _connect(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.target, timeout=5)
        except OSError:
            _reset(client)                    # the master is down: refused, as it would be
            return
        for sock, peer in ((client, server), (server, client)):
            sock.setblocking(True)
            self._pairs[sock] = peer
            self._held[sock] = bytearray()
            self._selector.register(sock, selectors.EVENT_READ)

    def _forward(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._drop(sock, reset=False)
            return
        with self._lock:
            mode = self.mode
        if mode == "silent":
            self._held[sock] += data
            return
        try:
            self._pairs[sock].sendall(data)
        except OSError:
            self._drop(sock, reset=False)

    def _drop(self, sock: socket.socket, reset: bool) -> None:
        peer = self._pairs.pop(sock, None)
        for one in (sock, peer):
            if one is None:
                continue
            self._pairs.pop(one, None)
            self._held.pop(one, None)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(one)
            if reset:
                _reset(one)
            else:
                with contextlib.suppress(OSError):
                    one.close()


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a host that lost the connection's state answers."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
