# -*- test-case-name: tests.test_server -*-
"""One client session of the NUT server, sans-IO.

Bytes in (:meth:`ServerSession.receive_data`), bytes out (:meth:`ServerSession.data_to_send`),
no sockets and no clock.  The Twisted protocol in :mod:`upsagent.master.protocol` is a thin
adapter that also owns the idle timer and TLS.

Session rules (upsd 2.8.0):

* requests are tokenized by :class:`~upsagent.nut.tokenizer.RequestReader`; a parse error
  gets no reply at all; an empty line gets ``ERR UNKNOWN-COMMAND``;
* the command word is looked up case-insensitively in one table
  (:data:`upsagent.nut.commands.COMMANDS`); commands flagged as needing a user first check
  that USERNAME and then PASSWORD were *sent* (not that they are right);
* all replies for one batch of input are joined and written at once, so a ``LIST VAR`` of
  fifty variables costs one ``write()`` (upsd writes each line separately and meets the
  client's delayed ACK);
* after ``OK STARTTLS`` the rest of that input is dropped and the adapter starts TLS; after
  ``OK Goodbye`` the session is closing;
* closing the connection logs the session out of its UPS (NUMLOGINS, LIST CLIENT) and ends
  its watches;
* lines of the push extension (:mod:`upsagent.nut.push`) wait in their own queue and come
  out of :meth:`ServerSession.data_to_send` after the replies, so always between whole
  replies; they are held back while a STARTTLS handshake is due.  When one is queued outside
  request handling the session calls ``wakeup`` (set by the adapter) so that it is written.
"""

from __future__ import annotations

from typing import Callable

from upsagent.model import Availability
from upsagent.nut.commands import COMMANDS
from upsagent.nut.push import unwatch_all
from upsagent.nut.errors import Err
from upsagent.nut.state import ServerState, Slot
from upsagent.nut.tokenizer import READ_SIZE, ParseError, RequestReader

__all__ = ["ServerSession"]


class ServerSession:
    """The state of one client connection and its protocol logic."""

    def __init__(self, state: ServerState, address: str, *, max_line_length: int = 0) -> None:
        self.state = state
        #: the peer address as text (``127.0.0.1``, ``::1``), shown by LIST CLIENT
        self.address = address
        self.max_line_length = max_line_length
        self.username: str | None = None
        self.password: str | None = None
        self.login_slot: Slot | None = None
        self.login_name: str | None = None
        self.tracking = False
        self.tls = False
        #: set when ``OK STARTTLS`` was sent: the adapter must start the TLS handshake
        self.start_tls = False
        self.closing = False
        #: why the session is closing, for the log (None for a plain LOGOUT)
        self.close_reason: str | None = None
        #: complete requests seen so far (the adapter restarts its idle timer on change)
        self.requests = 0
        #: things worth a log line (parse errors); the adapter drains it
        self.notices: list[str] = []
        #: the adapter's "output is pending" callback for pushed lines (None: nobody asks)
        self.wakeup: Callable[[], None] | None = None
        #: the UPSes this session watches (an ordered set)
        self.watching: dict[Slot, None] = {}
        self._reader = RequestReader()
        self._out: list[str] = []
        #: pushed lines not yet fetched, newest per (UPS, item); see push.py
        self._pushes: dict[tuple[Slot, str], str] = {}
        #: the last line queued per (UPS, item), so that an unchanged value is not repeated
        self._pushed: dict[tuple[Slot, str], str] = {}
        self._handling = False
        #: the request line being handled, while the input is exactly that one line
        self._line: bytes | None = None
        state.sessions.insert(0, self)

    # -- I/O side ----------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Process bytes from the client; replies accumulate for :meth:`data_to_send`."""
        if self.closing or self.start_tls:
            return
        reader = self._reader
        if not reader.line_bytes:
            hit = self.state.get_cache.get(data)
            if hit is not None:  # a GET VAR line answered before: still the same answer?
                slot, version, fsd, line, _ = hit
                ups = slot.ups
                if (ups.version == version and slot.fsd is fsd
                        and ups.availability is Availability.OK):
                    self.requests += 1
                    self._out.append(line)
                    return
            if len(data) <= READ_SIZE and data.find(b"\n") == len(data) - 1:
                self._line = data  # exactly one whole line: its answer may be remembered
        self._handling = True
        try:
            for item in self._reader.feed(data):
                if isinstance(item, ParseError):
                    self.notices.append(f"parse error from {self.address}: {item.message}")
                    continue
                self.requests += 1
                self.dispatch(item)
                if self.closing or self.start_tls:
                    return  # nothing after LOGOUT or STARTTLS is read as plain text
        finally:
            self._handling = False
            self._line = None
        if self.max_line_length and self._reader.line_bytes > self.max_line_length:
            self.closing = True
            self.close_reason = (f"request line longer than {self.max_line_length} bytes")

    def answer_from_cache(self, data: bytes) -> bytes | None:
        """The adapter's shortcut for a poller's request: if ``data`` is exactly a request
        line whose answer is remembered (see :meth:`remember_get`) and nothing else is
        pending, count the request and return its reply, ready to write; else None (then
        hand ``data`` to :meth:`receive_data` as usual).  The outcome is the same as
        ``receive_data(data)`` followed by ``data_to_send()``."""
        if (self.closing or self.start_tls or self._reader.line_bytes or self._out
                or self._pushes):
            return None
        hit = self.state.get_cache.get(data)
        if hit is None:
            return None
        slot, version, fsd, _, reply = hit
        ups = slot.ups
        if ups.version != version or slot.fsd is not fsd or ups.availability is not Availability.OK:
            return None
        self.requests += 1
        return reply

    def data_to_send(self) -> bytes:
        """Everything to write now (possibly empty): replies, then pushed lines."""
        if self._pushes and not self.start_tls:
            self._out.extend(f"{line}\n" for line in self._pushes.values())
            self._pushes.clear()
        if not self._out:
            return b""
        out = "".join(self._out).encode("ascii", "replace")
        self._out.clear()
        return out

    def tls_started(self) -> None:
        """The adapter finished setting up TLS on this connection."""
        self.start_tls = False
        self.tls = True

    def connection_lost(self) -> None:
        """The connection is gone: log out of the UPS, end watches, leave the session list."""
        if self.login_slot is not None:
            self.login_slot.numlogins -= 1
            self.login_slot = None
        unwatch_all(self)
        self._pushes.clear()
        if self in self.state.sessions:
            self.state.sessions.remove(self)

    # -- pushed lines (push.py calls these) ----------------------------------------------

    def push(self, slot: Slot, item: str, line: str) -> None:
        """Queue a pushed line about ``item`` of ``slot``, replacing an unfetched older one."""
        if self.closing:
            return
        key = (slot, item)
        if self._pushed.get(key) == line:
            return
        self._pushed[key] = line
        self._pushes.pop(key, None)
        self._pushes[key] = line

    def push_forget(self, slot: Slot, item: str) -> None:
        """Forget the last line of ``item`` of ``slot``: the same line is news again."""
        self._pushed.pop((slot, item), None)

    def push_cancel(self, slot: Slot, item: str) -> None:
        """Drop an unfetched line of ``item`` of ``slot`` (it is outdated) and forget it."""
        self._pushed.pop((slot, item), None)
        self._pushes.pop((slot, item), None)

    def push_done(self) -> None:
        """The lines of one change are queued: ask the adapter to write them."""
        if self._pushes and not self._handling and self.wakeup is not None:
            self.wakeup()

    @property
    def pushes_pending(self) -> int:
        """How many pushed lines wait to be fetched."""
        return len(self._pushes)

    # -- protocol side -----------------------------------------------------------------

    def dispatch(self, words: list[str]) -> None:
        """Run one tokenized request."""
        if not words:
            self.error(Err.UNKNOWN_COMMAND)
            return
        entry = COMMANDS.get(words[0].upper())
        if entry is None:
            self.error(Err.UNKNOWN_COMMAND)
            return
        handler, needs_user = entry
        if needs_user:
            if self.username is None:
                self.error(Err.USERNAME_REQUIRED)
                return
            if self.password is None:
                self.error(Err.PASSWORD_REQUIRED)
                return
        handler(self, words[1:])

    def reply(self, line: str) -> None:
        """Queue one reply line (LF added)."""
        self._out.append(line)
        self._out.append("\n")

    def reply_lines(self, lines: list[str]) -> None:
        """Queue several reply lines at once."""
        self._out.append("\n".join(lines))
        self._out.append("\n")

    def remember_get(self, slot: Slot, line: str) -> None:
        """``line`` answers the ``GET VAR`` being handled and depends only on ``slot``'s
        data: answer the same request line with it while that data is unchanged."""
        raw = self._line
        if raw is not None:
            cache = self.state.get_cache
            if len(cache) >= 256:  # bounded: a client could ask for anything
                cache.clear()
            cache[raw] = (slot, slot.ups.version, slot.fsd, line,
                          line.encode("ascii", "replace"))

    def error(self, err: Err) -> None:
        self.reply(err.line)

    def log_in(self, slot: Slot, name: str) -> None:
        self.login_slot = slot
        self.login_name = name
        slot.numlogins += 1

    def log_out(self) -> None:
        """``LOGOUT``: the adapter closes the connection once the reply is written."""
        self.closing = True
