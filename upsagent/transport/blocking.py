# -*- test-case-name: tests.test_query_tools -*-
"""A blocking socket transport for :class:`~upsagent.nut.client.ClientConnection`.

Used by the query tools, so it fails the way libupsclient (NUT 2.8.0) fails:

* ``connect`` resolves the host with ``getaddrinfo`` (IPv4 and IPv6, in the resolver's
  order) and tries each address until one accepts.  A name that does not resolve is
  "No such host"; when every address fails, the last failure counts ("Connection failure:
  Connection refused").  libupsclient's connect has no timeout; ours gives up after
  ``connect_timeout`` seconds ("Connection timed out").
* With ``try_tls`` it sends ``STARTTLS`` first, as upsc does, announcing "Init SSL without
  certificate database" through ``notice`` (suppressed when ``NUT_QUIET_INIT_SSL`` is
  ``true``/``TRUE``/``1…``, as NUT 2.8.1+ does).  Any reply but ``OK STARTTLS`` means plain
  text from then on.  On ``OK STARTTLS`` it shakes hands without verifying the certificate
  (libupsclient's default, ``CERTVERIFY 0``) and reports the steps through ``notice`` with
  libupsclient's messages.
* A reply that does not come within ``read_timeout`` seconds (5, DEFAULT_NETWORK_TIMEOUT)
  reads as "Server disconnected", like EOF.  A write needs the socket to be writable at once.
* After any transport failure the connection is dropped as ``upscli_disconnect`` does it: a
  last ``LOGOUT`` is attempted, and if that write fails its error is the one reported
  (this is why a refused TLS handshake reads "Write error: Broken pipe").  Requests on a
  dropped connection fail with libupsclient's "Driver not connected".
* ``close`` sends ``LOGOUT`` without waiting for the answer, then closes.
* :func:`split_name` / :func:`split_addr` read ``ups[@host[:port]]`` / ``host[:port]``
  exactly as libupsclient's strtok-based ``upscli_splitname``/``upscli_splitaddr`` do,
  quirks and diagnostics included (``@host`` makes ``host`` the UPS name; ``host:12abc`` is
  port 12; ``upscli_splitaddr: no port specified after ':' separator``).
* A C program dies of SIGPIPE when it writes to a connection the server has closed, unless
  something ignores the signal (NSS does, so upsc survives and says "Write error: Broken
  pipe"; upsrw and upscmd die silently).  ``on_broken_pipe`` is called on such a write so
  a tool can do the same; without it the write error is raised.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import ssl
from typing import Callable

from upsagent.nut.client import (
    LIBUPSCLIENT_LINE,
    ClientConnection,
    ClientError,
    NutError,
    OkReply,
    ProtocolError,
    Reply,
    Request,
    TransportError,

)
from upsagent.nut.target import DEFAULT_PORT, BadTarget, Target, split_addr, split_name

__all__ = ["DEFAULT_PORT", "BadTarget", "BlockingClient", "Target", "quiet_init_ssl",
           "split_addr", "split_name"]

DEFAULT_NETWORK_TIMEOUT = 5.0


def quiet_init_ssl() -> bool:
    """NUT 2.8.1's ``NUT_QUIET_INIT_SSL`` test: set and starting ``true``, ``TRUE`` or ``1``."""
    value = os.environ.get("NUT_QUIET_INIT_SSL")
    return bool(value) and value is not None and value.startswith(("true", "TRUE", "1"))


def _ignore(message: str) -> None:
    """Default notice sink."""


class BlockingClient:
    """One blocking connection to a NUT server, with libupsclient's failure semantics."""

    def __init__(self, *, read_timeout: float = DEFAULT_NETWORK_TIMEOUT,
                 connect_timeout: float | None = 60.0,
                 notice: Callable[[str], None] = _ignore,
                 max_line: int | None = LIBUPSCLIENT_LINE,
                 on_broken_pipe: Callable[[], None] | None = None) -> None:
        self.read_timeout = read_timeout
        self.connect_timeout = connect_timeout
        self.notice = notice
        self.max_line = max_line
        self.on_broken_pipe = on_broken_pipe
        self.host = ""
        self.tls = False
        #: True once a TLS library would have been initialised (NUT: NSS, which ignores SIGPIPE)
        self.tls_initialised = False
        self._sock: socket.socket | None = None
        self._conn = ClientConnection(max_line)

    @property
    def connected(self) -> bool:
        """Whether the socket is still open."""
        return self._sock is not None

    # -- connecting ------------------------------------------------------------------------

    def connect(self, host: str, port: int, *, try_tls: bool = False) -> None:
        """Open the connection (and try STARTTLS); raises :class:`ClientError`."""
        self.host = host
        self._sock = self._open(host, port)
        self._conn = ClientConnection(self.max_line)
        if try_tls:
            self._try_tls(host)

    def _resolve(self, host: str, port: int) -> list[tuple[int, int, int, tuple[object, ...]]]:
        """getaddrinfo as libupsclient calls it (AF_UNSPEC, TCP), mapped to its errors."""
        while True:
            try:
                infos = socket.getaddrinfo(host, str(port), socket.AF_UNSPEC,
                                           socket.SOCK_STREAM, socket.IPPROTO_TCP)
            except socket.gaierror as error:
                if error.errno == socket.EAI_AGAIN:
                    continue  # libupsclient retries a temporary failure
                if error.errno == socket.EAI_NONAME:
                    raise TransportError.no_such_host() from None
                raise TransportError.unknown() from None
            except UnicodeError:
                raise TransportError.no_such_host() from None
            return [(family, kind, proto, tuple(addr))
                    for family, kind, proto, _, addr in infos]

    def _open(self, host: str, port: int) -> socket.socket:
        """Try each address in turn; the last failure is the one reported."""
        failure: ClientError = TransportError.unknown()
        for family, kind, proto, addr in self._resolve(host, port):
            try:
                sock = socket.socket(family, kind, proto)
            except OSError as error:
                if error.errno not in (errno.EAFNOSUPPORT, errno.EINVAL):
                    failure = TransportError.os_error("socket failure", error.errno)
                continue
            sock.settimeout(self.connect_timeout)
            try:
                sock.connect(addr)
            except TimeoutError:
                failure = TransportError.os_error("Connection failure", errno.ETIMEDOUT)
            except OSError as error:
                if error.errno != errno.EAFNOSUPPORT:
                    failure = TransportError.os_error("Connection failure", error.errno)
            else:
                return sock
            sock.close()
        raise failure

    def _try_tls(self, host: str) -> None:
        """upscli_sslinit: STARTTLS, plain text unless the answer is ``OK STARTTLS``."""
        self.tls_initialised = True
        if not quiet_init_ssl():
            self.notice("Init SSL without certificate database")
        try:
            reply = self.request(Request.of("STARTTLS"))
        except (NutError, ProtocolError):
            return  # not supported: carry on in plain text
        except ClientError:
            self.notice(f"Error while connecting to NUT server {host}, disconnect")
            raise
        if not (isinstance(reply, OkReply) and reply.text.startswith("OK STARTTLS")):
            return
        self._handshake(host)

    def _handshake(self, host: str) -> None:
        """TLS without certificate checks, logging libupsclient's (NSS) progress lines."""
        assert self._sock is not None
        self.notice(f"Connecting in SSL to '{host}' (no certificate name specified)")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        plain = self._sock.dup()  # to send the farewell LOGOUT if the handshake fails
        try:
            wrapped = context.wrap_socket(self._sock, server_hostname=host,
                                          do_handshake_on_connect=False)
            self._sock = wrapped
            wrapped.settimeout(self.read_timeout)
            wrapped.do_handshake()
        except (OSError, ValueError):
            self.notice(f"Error while connecting to NUT server {host}, disconnect")
            if self._sock is not None:
                self._sock.close()
            self._sock = plain
            raise self._drop(TransportError.unknown()) from None
        plain.close()
        self.tls = True
        self.notice(f"Do not intend to authenticate server {host}")
        self.notice(f"SSL handshake done successfully with server {host}")
        self.notice(f"Connected to NUT server {host} in SSL")
        self.notice("Certificate verification is disabled")

    # -- requests --------------------------------------------------------------------------

    def send(self, request: Request) -> None:
        """Write one request; raises :class:`ClientError` (the connection is then dropped)."""
        if self._sock is None:
            raise TransportError.not_connected()
        data = self._conn.send(request)
        try:
            self._write(data)
        except ClientError as error:
            self._conn = ClientConnection(self.max_line)
            raise self._drop(error) from None

    def receive(self, timeout: float | None = None) -> Reply:
        """The reply to the oldest request sent; raises its :class:`ClientError`."""
        while True:
            reply = self._conn.next_reply()
            if reply is not None:
                return reply
            if self._sock is None:
                if self._conn.pending:
                    self._conn.connection_lost(TransportError.not_connected())
                    continue
                raise TransportError.not_connected()
            self._read(self.read_timeout if timeout is None else timeout)

    def request(self, request: Request, timeout: float | None = None) -> Reply:
        """:meth:`send` then :meth:`receive`."""
        self.send(request)
        return self.receive(timeout)

    def close(self) -> None:
        """``upscli_disconnect``: send LOGOUT (no wait for the answer) and close."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        try:
            self._write(b"LOGOUT\n", sock)
        except ClientError:
            pass
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    # -- transport -------------------------------------------------------------------------

    def _write(self, data: bytes, sock: socket.socket | None = None) -> None:
        """net_write: a plain socket must be writable at once (else "Server disconnected")."""
        sock = sock or self._sock
        assert sock is not None
        if not isinstance(sock, ssl.SSLSocket):
            _, ready, _ = select.select([], [sock], [], 0)
            if not ready:
                raise TransportError.disconnected()
        try:
            sock.settimeout(self.read_timeout)
            sock.sendall(data)
        except TimeoutError:
            raise TransportError.disconnected() from None
        except ssl.SSLError as error:
            raise ClientError(f"SSL error: {error.reason or error}") from None
        except OSError as error:
            if error.errno == errno.EPIPE and self.on_broken_pipe is not None:
                self.on_broken_pipe()
            raise TransportError.os_error("Write error", error.errno) from None

    def _read(self, timeout: float) -> None:
        """One read into the connection; EOF, timeout and errors lose the connection."""
        assert self._sock is not None
        try:
            self._sock.settimeout(timeout)
            data = self._sock.recv(4096)
        except TimeoutError:
            data = b""
        except ssl.SSLError as error:
            self._lose(ClientError(f"SSL error: {error.reason or error}"))
            return
        except OSError as error:
            self._lose(TransportError.os_error("Read error", error.errno))
            return
        if not data:
            self._lose(TransportError.disconnected())
            return
        self._conn.receive_data(data)

    def _lose(self, error: ClientError) -> None:
        """Drop the socket and fail every pending request."""
        self._conn.connection_lost(self._drop(error))

    def _drop(self, error: ClientError) -> ClientError:
        """Close after a failure; a failing farewell LOGOUT replaces the error, as in NUT."""
        sock, self._sock = self._sock, None
        if sock is None:
            return error
        try:
            self._write(b"LOGOUT\n", sock)
        except ClientError as farewell:
            error = farewell
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
        return error
