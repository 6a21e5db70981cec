# -*- test-case-name: tests.test_status -*-
"""The running agent's status socket: a Unix socket that answers ``status`` and nothing else.

``upsagent status`` connects, sends the line ``status``, and reads one line back: the JSON
report (:func:`~upsagent.agent.status.status_report`), after which the agent closes the
connection.  It is read-only: there is no request that changes anything.  Anything else
is answered with ``{"error": "..."}`` and the connection is closed.

**Limits** (every listening socket has them): a request line of at most
:data:`MAX_REQUEST` bytes (more without a newline is refused and the connection closed,
so the buffer never grows past it), at most :data:`MAX_CONNECTIONS` connections at once
(one more is answered ``too many connections`` and closed), and a connection lasts at
most :data:`TIMEOUT` seconds, whatever it does (a client that neither asks nor reads is
cut off).

**The socket file** (``[slave] status_socket``) is created with mode 0600 (only the agent's
user, root, may connect: the report shows the plan), with the umask set so that it is
never more open, even for a moment; its directory is created (mode 0755) when missing.
:func:`listen_status` refuses (a :class:`ConfigError` naming the key and the reason) a
path that exists and is not a socket, a socket another process answers on (an agent
already running), and a path too long for a Unix socket; a socket nobody answers on is
left from an agent that died, and is replaced.  The agent removes it when it stops.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import stat
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IListeningPort
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from upsagent.config.schema import ConfigError

__all__ = ["MAX_CONNECTIONS", "MAX_REQUEST", "REQUEST", "TIMEOUT", "StatusFactory",
           "listen_status"]

#: the one request the socket answers
REQUEST = b"status"
#: bytes of a request line, newline excluded
MAX_REQUEST = 256
#: connections at once
MAX_CONNECTIONS = 8
#: seconds a connection may last
TIMEOUT = 10.0
#: the longest path a Unix socket address holds (sun_path, its final NUL excluded)
MAX_PATH = 107

_log = Logger(namespace="upsagent.status")


class StatusProtocol(Protocol):
    """One connection: one request line, one reply line, closed."""

    factory: StatusFactory

    def __init__(self) -> None:
        self._buffer = b""
        self._done = False
        self._counted = False
        self._timer: IDelayedCall | None = None

    def connectionMade(self) -> None:
        factory = self.factory
        if factory.active >= MAX_CONNECTIONS:
            self._reply({"error": f"too many connections (at most {MAX_CONNECTIONS})"})
            return
        factory.active += 1
        self._counted = True
        self._timer = factory.reactor.callLater(TIMEOUT, self._expired)

    def dataReceived(self, data: bytes) -> None:
        if self._done:
            return
        self._buffer += data
        line, newline, _ = self._buffer.partition(b"\n")
        if len(line) > MAX_REQUEST:
            self._reply({"error": f"request too long (at most {MAX_REQUEST} bytes)"})
            return
        if not newline:
            return
        request = line.strip()
        if request != REQUEST:
            shown = request[:40].decode("utf-8", "replace")
            self._reply({"error": f"unknown request {shown!r}: this socket answers "
                                  f"{REQUEST.decode()!r} only"})
            return
        try:
            report = self.factory.report()
        except Exception:
            _log.failure("status: the report failed")
            self._reply({"error": "the agent could not make its report (see its log)"})
            return
        self._reply(report)

    def _reply(self, value: dict[str, Any]) -> None:
        self._done = True
        self._buffer = b""
        assert self.transport is not None
        self.transport.write(json.dumps(value, sort_keys=True).encode() + b"\n")
        self.transport.loseConnection()

    def _expired(self) -> None:
        self._timer = None
        assert self.transport is not None
        if not self._done:
            self._done = True
            self.transport.write(json.dumps(
                {"error": f"no request within {TIMEOUT:g} s"}).encode() + b"\n")
        self.transport.abortConnection()    # type: ignore[attr-defined]

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._counted:
            self._counted = False
            self.factory.active -= 1


class StatusFactory(Factory):
    """Builds :class:`StatusProtocol`; ``report()`` makes the reply to ``status``."""

    protocol = StatusProtocol  # type: ignore[assignment]

    def __init__(self, reactor: Any, report: Callable[[], dict[str, Any]]) -> None:
        self.reactor = reactor
        self.report = report
        self.active = 0


def _refuse(key: str, path: str, reason: str) -> ConfigError:
    return ConfigError(f"{key}: {path}: {reason}")


def _clear(path: str, key: str) -> None:
    """Remove a socket left by an agent that died; refuse anything else at ``path``."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise _refuse(key, path, exc.strerror or str(exc)) from None
    if not stat.S_ISSOCK(mode):
        raise _refuse(key, path, "exists and is not a socket: refusing to replace it "
                      "(remove it, or choose another path)")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise _refuse(key, path, f"cannot tell whether an agent answers on it: "
                          f"{exc.strerror or exc}") from None
    else:
        raise _refuse(key, path, "another process answers on it: is another slave "
                      "agent running with this configuration?")
    finally:
        probe.close()
    os.unlink(path)


def listen_status(reactor: Any, path: str, report: Callable[[], dict[str, Any]],
                  key: str = "slave.status_socket") -> IListeningPort:
    """Listen on the Unix socket ``path`` (mode 0600) for ``status`` requests.

    :class:`ConfigError` (naming ``key``) when ``path`` cannot be used; see the module."""
    path = os.path.abspath(path)
    if len(os.fsencode(path)) > MAX_PATH:
        raise _refuse(key, path, f"too long for a Unix socket (at most {MAX_PATH} bytes)")
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
    except OSError as exc:
        raise _refuse(key, path, f"cannot create its directory: {exc.strerror or exc}") \
            from None
    _clear(path, key)
    old = os.umask(0o177)           # the socket is born 0600: no moment more open
    try:
        port: IListeningPort = reactor.listenUNIX(path, StatusFactory(reactor, report),
                                                  backlog=MAX_CONNECTIONS, mode=0o600)
    except Exception as exc:
        raise _refuse(key, path, f"cannot listen: {exc}") from None
    finally:
        os.umask(old)
    return port
