# -*- test-case-name: tests.test_monitor -*-
"""A Twisted NUT client connection: requests as Deferreds, pushed ``NOTIFY`` lines apart.

The protocol work is :class:`~upsagent.nut.client.ClientConnection` (sans-IO: request bytes
out, typed replies or :class:`~upsagent.nut.client.ClientError` in, in request order).  This
adapter adds what a long-lived connection needs:

* **Framing and pushed lines.**  Input is split at LF.  A line starting ``NOTIFY `` is an
  unsolicited line of upsagent's push extension (:mod:`upsagent.nut.push`): it goes to
  ``on_push`` as words (NUT's tokenizer) and never into the reply stream.  Such lines come
  only between whole replies, so every other line belongs to the oldest request.  A line
  longer than :data:`MAX_LINE` bytes drops the connection (NUT replies stay under 512).
* **Requests** return a Deferred that fires with the reply or fails with the ClientError
  (``ERR`` lines as :class:`~upsagent.nut.client.NutError`).  Several may be in flight.
  Callbacks run as each reply is read, so they see replies and pushed lines in the order
  the server sent them.
* **A reply deadline**, as libupsclient's network timeout: while a request is waiting, a
  reply must come within ``timeout`` seconds of the request or of the previous reply, or the
  connection is aborted ("no reply within N s") and every waiting request fails.
* **Loss**: every waiting request fails with a TransportError; ``on_lost`` gets a short
  human reason (the server closed the connection, a TLS failure, the deadline...).
* **TLS** after ``OK STARTTLS`` (:meth:`NutClientProtocol.start_tls`) with the options
  :class:`TlsSettings` builds: unverified (NUT's default, CERTVERIFY 0), or verified against
  the PEM CA certificates of a file or directory and a host name (``optionsForClientTLS``).
"""

from __future__ import annotations

import os
import re
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IDelayedCall, IReactorTime, ITLSTransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure

from upsagent.nut.client import (
    ClientConnection, ClientError, Reply, Request, TransportError, split_reply)

__all__ = ["MAX_LINE", "NutClientProtocol", "TlsSettings"]

#: longest line accepted from a server (NUT's replies stay under 512 bytes)
MAX_LINE = 65536
NOTIFY_PREFIX = b"NOTIFY "

Words = tuple[str, ...]


@dataclass(frozen=True)
class TlsSettings:
    """How to use STARTTLS.  ``required`` drops a server that will not (FORCESSL)."""

    try_tls: bool = True
    required: bool = False
    verify: bool = False
    ca_path: str | None = None      # PEM file or directory of PEM CA certificates (CERTPATH)
    hostname: str | None = None     # name the certificate must carry (default: the host)

    @property
    def attempted(self) -> bool:
        """Whether to send STARTTLS: when wanted and possible.  Without pyOpenSSL (the
        ``tls`` extra) an optional attempt is skipped, as upsmon built without SSL never
        asks; required or verified TLS still asks, and then fails saying why."""
        return self.required or self.verify or (self.try_tls and tls_available())

    def options(self, host: str) -> object:
        """The Twisted TLS client options (pyOpenSSL is the ``tls`` extra)."""
        try:
            from twisted.internet import ssl
        except ImportError:  # pragma: no cover - depends on the extra
            raise ValueError("TLS needs pyOpenSSL: install upsagent[tls]") from None
        if not self.verify:
            return ssl.CertificateOptions()
        if self.ca_path is None:
            raise ValueError("certificate verification needs a CA file (CERTPATH)")
        return ssl.optionsForClientTLS(self.hostname or host,
                                       trustRoot=_trust_root(self.ca_path))


def tls_available() -> bool:
    """Whether pyOpenSSL (and so Twisted's TLS) can be imported here."""
    try:
        import OpenSSL  # noqa: F401
        from twisted.internet import ssl  # noqa: F401
    except ImportError:
        return False
    return True


def _trust_root(path: str) -> Any:
    """Every PEM certificate in ``path`` (a file, or the files of a directory)."""
    from twisted.internet import ssl

    files = ([os.path.join(path, n) for n in sorted(os.listdir(path))]
             if os.path.isdir(path) else [path])
    certificates = []
    for name in files:
        if not os.path.isfile(name):
            continue
        with open(name, "rb") as handle:
            text = handle.read()
        for block in re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----",
                                text, re.DOTALL):
            certificates.append(ssl.Certificate.loadPEM(block))
    if not certificates:
        raise ValueError(f"no PEM certificate found in {path}")
    return ssl.trustRootFromCertificates(certificates)  # type: ignore[no-untyped-call]


class NutClientProtocol(Protocol):
    """One connection to a NUT server (see the module docstring)."""

    def __init__(self, clock: IReactorTime, timeout: float,
                 on_connected: Callable[[NutClientProtocol], None],
                 on_push: Callable[[NutClientProtocol, Words], None],
                 on_lost: Callable[[NutClientProtocol, str], None]) -> None:
        self.clock = clock
        self.timeout = timeout
        self._on_connected = on_connected
        self._on_push = on_push
        self._on_lost = on_lost
        self._conn = ClientConnection()
        self._waiting: deque[Deferred[Reply]] = deque()
        self._buffer = b""
        self._deadline: IDelayedCall | None = None
        self._abort_reason: str | None = None
        self.tls = False
        self.closed = False

    # -- what the monitor calls ------------------------------------------------------------

    def request(self, request: Request) -> Deferred[Reply]:
        """Send ``request``; the Deferred fires with its reply or fails with its ClientError."""
        done: Deferred[Reply] = Deferred()
        if self.closed or self.transport is None:
            done.errback(TransportError.not_connected())
            return done
        data = self._conn.send(request)
        self._waiting.append(done)
        self.transport.write(data)
        if self._deadline is None:
            self._deadline = self.clock.callLater(self.timeout, self._expired)
        return done

    def start_tls(self, options: Any) -> None:
        """Switch this connection to TLS (after ``OK STARTTLS``); ValueError if it cannot."""
        if not ITLSTransport.providedBy(self.transport):
            raise ValueError("this transport cannot do TLS")
        self.transport.startTLS(options)  # type: ignore[union-attr]
        self.tls = True

    def abort(self, reason: str) -> None:
        """Drop the connection at once; ``reason`` is what ``on_lost`` will say."""
        if self._abort_reason is None:
            self._abort_reason = reason
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def close(self) -> None:
        """Close the connection after what was written (no LOGOUT: send one first if wanted)."""
        if self.transport is not None:
            self.transport.loseConnection()

    # -- Protocol ------------------------------------------------------------------------

    def connectionMade(self) -> None:
        self._on_connected(self)

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        while not self.closed:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_LINE:
                    self.abort(f"a line from the server is longer than {MAX_LINE} bytes")
                return
            line, self._buffer = self._buffer[:end], self._buffer[end + 1:]
            if line.startswith(NOTIFY_PREFIX):
                self._on_push(self, split_reply(line))
                continue
            self._conn.receive_data(line + b"\n")
            self._deliver()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.closed:
            return
        self.closed = True
        text = self._abort_reason or _describe(reason)
        self._conn.connection_lost(TransportError(f"Server disconnected ({text})"))
        self._deliver()
        self._on_lost(self, text)

    # -- internals -------------------------------------------------------------------------

    def _deliver(self) -> None:
        """Fire the Deferreds of every complete reply, oldest first; keep the deadline."""
        while self._waiting:
            try:
                reply = self._conn.next_reply()
            except ClientError as error:
                self._fire(self._waiting.popleft(), error)
                continue
            if reply is None:
                break
            self._fire(self._waiting.popleft(), reply)
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None
        if self._waiting and not self.closed:
            self._deadline = self.clock.callLater(self.timeout, self._expired)

    @staticmethod
    def _fire(done: Deferred[Reply], outcome: Reply | ClientError) -> None:
        if done.called:
            return
        if isinstance(outcome, ClientError):
            done.errback(outcome)
        else:
            done.callback(outcome)

    def _expired(self) -> None:
        self._deadline = None
        self.abort(f"no reply within {self.timeout:g} s")


def _describe(reason: Failure) -> str:
    """A short text for why a connection ended."""
    if isinstance(reason.value, ConnectionDone):
        return "the server closed the connection"
    message = reason.getErrorMessage()
    try:
        from OpenSSL.SSL import Error as TLSError
        from service_identity import VerificationError
    except ImportError:  # pragma: no cover - pyOpenSSL and service-identity are the tls extra
        pass
    else:
        if isinstance(reason.value, VerificationError):
            names = ", ".join(_mismatched(error) for error in reason.value.errors)
            return f"TLS failure: the server's certificate is not valid for {names}"
        if isinstance(reason.value, TLSError):
            return f"TLS failure: {message}"
    return message or type(reason.value).__name__


def _mismatched(error: object) -> str:
    """The name or address a service_identity mismatch is about."""
    ident = getattr(error, "mismatched_id", None)
    name = getattr(ident, "hostname", None) or getattr(ident, "ip", None)
    if isinstance(name, bytes):
        return name.decode("ascii", "replace")
    return str(name if name is not None else error)
