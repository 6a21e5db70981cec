# -*- test-case-name: tests.test_client -*-
"""The client side of the NUT network protocol, sans-IO: request lines out, typed replies in.

Nothing here touches a socket.  A :class:`ClientConnection` turns :class:`Request` objects
into bytes and the bytes that come back into reply objects (frozen dataclasses) or
exceptions, in request order, so several requests may be in flight at once (upsd answers
pipelined requests in order).  :mod:`upsagent.transport.blocking` drives it over a blocking
socket for the command-line tools; the slave agent drives it from Twisted.

The rules follow NUT 2.8.0's libupsclient (``clients/upsclient.c``), because the query tools
must behave exactly like upsc, upsrw and upscmd:

* A reply line ends at LF.  With ``max_line=511`` a longer line is cut after 511 bytes and
  the rest is the next line (libupsclient's 512-byte buffer); a NUL ends the line's text.
* Any line starting ``ERR`` is an error; :class:`NutError` maps its code to libupsclient's
  message by prefix, in libupsclient's table order (codes it does not know, such as
  ``INVALID-ARGUMENT``, read "Unknown error").
* Lines are split into words with NUT's own tokenizer (:mod:`upsagent.nut.tokenizer`), at
  most 32 words kept.  Like ``pconf_line``, an unescaped ``#`` inside quotes is not an error
  for a client: the words read so far (the open quoted word included) are the reply.
* ``GET`` replies must echo the request words (case-insensitively) and carry a value;
  ``LIST`` replies must start ``BEGIN LIST`` + the request words, every item must echo the
  query words, and the list ends at a line whose first two words are exactly ``END LIST``.
  A list cut short (ERR line, mismatched item, lost connection) raises
  :class:`IncompleteList`, which carries the items received so far.
* Other commands answer one line: ``OK…`` is success, ``ERR…`` raises, anything else is a
  :class:`ProtocolError`.  ``GET TRACKING <id>`` results (``PENDING``, ``SUCCESS``,
  ``ERR UNKNOWN``…) are answers, never exceptions.

Arguments are escaped like reply values (``\\`` before ``\\``, ``"`` and ``#``) and quoted
when they are empty or hold whitespace, ``=`` or any of those characters; ``SET VAR`` always
quotes its value.
"""

from __future__ import annotations

import os
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Iterator, Union

from upsagent.nut.tokenizer import ParseError, quote, tokenize_text

__all__ = [
    "LIBUPSCLIENT_LINE", "ClientConnection", "ClientError",
    "CmdDescReply", "DescReply", "IncompleteList", "InsufficientData", "ListReply",
    "NumLoginsReply", "NutError", "OkReply", "ProtocolError", "Reply", "Request",
    "TextReply", "TrackingReply", "TransportError", "TypeReply", "UpsDescReply", "VarReply",
    "c_strtol", "encode_word", "error_message", "split_reply",
]

#: libupsclient reads a reply line into a 512-byte buffer: 511 bytes and a NUL.
LIBUPSCLIENT_LINE = 511
MAX_REPLY_WORDS = 32

Words = tuple[str, ...]

# --------------------------------------------------------------------------------------
# errors

#: libupsclient's upsd_errlist: an ERR code maps to the first entry that prefixes it.
SERVER_ERRORS: tuple[tuple[str, str], ...] = (
    ("VAR-NOT-SUPPORTED", "Variable not supported by UPS"),
    ("UNKNOWN-UPS", "Unknown UPS"),
    ("ACCESS-DENIED", "Access denied"),
    ("PASSWORD-REQUIRED", "Password required"),
    ("PASSWORD-INCORRECT", "Password incorrect"),
    ("MISSING-ARGUMENT", "Missing argument"),
    ("DATA-STALE", "Data stale"),
    ("VAR-UNKNOWN", "Variable unknown"),
    ("ALREADY-LOGGED-IN", "Already logged in"),
    ("ALREADY-SET-PASSWORD", "Already set password"),
    ("UNKNOWN-TYPE", "Unknown variable type"),
    ("UNKNOWN-VAR", "Unknown variable"),
    ("READONLY", "Read-only variable"),
    ("TOO-LONG", "New value is too long"),
    ("INVALID-VALUE", "Invalid value for variable"),
    ("SET-FAILED", "Set command failed"),
    ("UNKNOWN-INSTCMD", "Unknown instant command"),
    ("INSTCMD-FAILED", "Instant command failed"),
    ("CMD-NOT-SUPPORTED", "Instant command not supported"),
    ("INVALID-USERNAME", "Invalid username"),
    ("ALREADY-SET-USERNAME", "Already set username"),
    ("UNKNOWN-COMMAND", "Unknown command"),
    ("INVALID-PASSWORD", "Invalid password"),
    ("USERNAME-REQUIRED", "Username required"),
    ("DRIVER-NOT-CONNECTED", "Driver not connected"),
)
UNKNOWN_ERROR = "Unknown error"


class ClientError(Exception):
    """Anything that makes a request fail; ``message`` is libupsclient's text for it.

    ``line`` is the raw reply line when a reply caused the error (upsrw and upscmd print it).
    """

    def __init__(self, message: str, line: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


class NutError(ClientError):
    """An ``ERR <code>`` reply.  ``code`` is the word after ERR, ``message`` its text."""

    def __init__(self, code: str, line: str | None = None) -> None:
        self.code = code
        super().__init__(error_message(code), line if line is not None else f"ERR {code}")

    @classmethod
    def from_line(cls, line: str) -> NutError:
        """Build from a reply line starting with ``ERR`` (libupsclient reads from byte 4)."""
        code = re.match(r"\S*", line[4:])
        return cls(code.group() if code else "", line)


def error_message(code: str) -> str:
    """libupsclient's message for an upsd error code ("Unknown error" when not in its table)."""
    for prefix, message in SERVER_ERRORS:
        if code.startswith(prefix):
            return message
    return UNKNOWN_ERROR


class ProtocolError(ClientError):
    """A reply that does not fit the request (libupsclient: "Protocol error")."""

    def __init__(self, detail: str, line: str | None = None) -> None:
        super().__init__("Protocol error", line)
        self.detail = detail


class InsufficientData(ProtocolError):
    """A list item with fewer words than its kind needs (the tools print got/need)."""

    def __init__(self, got: int, need: int) -> None:
        super().__init__(f"insufficient data (got {got} args, need at least {need})")
        self.got = got
        self.need = need


class TransportError(ClientError):
    """A connection-level failure, worded as libupsclient words it."""

    @classmethod
    def disconnected(cls) -> TransportError:
        """EOF, or no reply within the read timeout (libupsclient cannot tell them apart)."""
        return cls("Server disconnected")

    @classmethod
    def not_connected(cls) -> TransportError:
        """A request on a connection already closed; libupsclient's (odd) wording."""
        return cls("Driver not connected")

    @classmethod
    def no_such_host(cls) -> TransportError:
        """The host name does not resolve."""
        return cls("No such host")

    @classmethod
    def unknown(cls) -> TransportError:
        """A failure libupsclient has no better word for."""
        return cls(UNKNOWN_ERROR)

    @classmethod
    def os_error(cls, what: str, errno: int | None) -> TransportError:
        """``"<what>: <strerror>"``, e.g. ``Connection failure: Connection refused``."""
        return cls(f"{what}: {os.strerror(errno) if errno else 'Unknown error'}")


class IncompleteList(ClientError):
    """A LIST that stopped before ``END LIST``; ``partial`` holds what arrived first."""

    def __init__(self, partial: ListReply, cause: ClientError) -> None:
        super().__init__(cause.message, cause.line)
        self.partial = partial
        self.cause = cause


# --------------------------------------------------------------------------------------
# requests

_NEEDS_QUOTES = re.compile(r'[\s"#\\=]')


def encode_word(word: str, force_quotes: bool = False) -> str:
    """One request argument as upsd's tokenizer will read it back unchanged."""
    if force_quotes or not word or _NEEDS_QUOTES.search(word):
        return quote(word)
    return word


_GET_REPLIES = {"VAR": 3, "TYPE": 3, "DESC": 3, "CMDDESC": 3, "UPSDESC": 2, "NUMLOGINS": 2}
_TEXT_COMMANDS = frozenset({"VER", "NETVER", "PROTVER", "HELP"})


@dataclass(frozen=True)
class Request:
    """One request: its words as upsd should parse them.  Build with the class methods."""

    words: Words
    quote_last: bool = False

    def line(self) -> bytes:
        """The request as it goes on the wire (command word raw, arguments encoded)."""
        parts = [self.words[0]]
        last = len(self.words) - 1
        for index, word in enumerate(self.words[1:], start=1):
            parts.append(encode_word(word, self.quote_last and index == last))
        return (" ".join(parts) + "\n").encode("utf-8", "surrogateescape")

    @property
    def kind(self) -> str:
        """How the reply is read: ``get``, ``list``, ``tracking``, ``text`` or ``simple``."""
        command = self.words[0].upper()
        sub = self.words[1].upper() if len(self.words) > 1 else ""
        if command == "GET" and sub == "TRACKING":
            return "tracking"
        if command == "GET" and sub in _GET_REPLIES:
            return "get"
        if command == "LIST" and sub:
            return "list"
        if command in _TEXT_COMMANDS:
            return "text"
        return "simple"

    # -- builders ------------------------------------------------------------------------

    @classmethod
    def of(cls, *words: str) -> Request:
        """Any request from its words."""
        return cls(tuple(words))

    @classmethod
    def get(cls, what: str, *args: str) -> Request:
        """``GET VAR|TYPE|DESC|CMDDESC|UPSDESC|NUMLOGINS …``."""
        return cls(("GET", what) + args)

    @classmethod
    def list(cls, what: str, *args: str) -> Request:
        """``LIST UPS|VAR|RW|CMD|ENUM|RANGE|CLIENT …``."""
        return cls(("LIST", what) + args)

    @classmethod
    def set_var(cls, ups: str, name: str, value: str) -> Request:
        """``SET VAR ups name "value"`` (the value always quoted, as upsrw sends it)."""
        return cls(("SET", "VAR", ups, name, value), quote_last=True)

    @classmethod
    def instcmd(cls, ups: str, command: str, param: str | None = None) -> Request:
        """``INSTCMD ups command [param]``."""
        return cls(("INSTCMD", ups, command) + ((param,) if param is not None else ()))

    @classmethod
    def get_tracking(cls, tracking_id: str | None = None) -> Request:
        """``GET TRACKING [id]``: the session switch, or one result."""
        return cls(("GET", "TRACKING") + ((tracking_id,) if tracking_id is not None else ()))


# --------------------------------------------------------------------------------------
# replies


@dataclass(frozen=True)
class OkReply:
    """A line starting with ``OK``: ``OK``, ``OK Goodbye``, ``OK TRACKING <id>``…"""

    text: str

    @property
    def tracking_id(self) -> str | None:
        """The id of ``OK TRACKING <id>``, else None."""
        return self.text[12:] if self.text.startswith("OK TRACKING ") else None


@dataclass(frozen=True)
class TextReply:
    """The free-text answer of VER, NETVER, PROTVER or HELP."""

    text: str


@dataclass(frozen=True)
class TrackingReply:
    """``GET TRACKING``: ``ON``/``OFF``, or a result: ``PENDING``, ``SUCCESS``, ``ERR …``."""

    text: str

    @property
    def pending(self) -> bool:
        """Still waiting for the driver (libupsclient's test: starts with PENDING)."""
        return self.text.startswith("PENDING")


@dataclass(frozen=True)
class VarReply:
    """``VAR <ups> <name> "<value>"`` (also a LIST VAR/RW item)."""

    ups: str
    name: str
    value: str


@dataclass(frozen=True)
class TypeReply:
    """``TYPE <ups> <name> [RW] [ENUM] [RANGE] STRING:<n>|NUMBER``."""

    ups: str
    name: str
    flags: Words

    @property
    def writable(self) -> bool:
        """The RW flag."""
        return any(f.upper() == "RW" for f in self.flags)

    @property
    def string_length(self) -> int | None:
        """n of ``STRING:n``, or None for a non-string."""
        for flag in self.flags:
            if flag.upper().startswith("STRING:"):
                return c_strtol(flag[7:])
        return None


@dataclass(frozen=True)
class DescReply:
    """``DESC <ups> <name> "<text>"``."""

    ups: str
    name: str
    text: str


@dataclass(frozen=True)
class CmdDescReply:
    """``CMDDESC <ups> <command> "<text>"``."""

    ups: str
    command: str
    text: str


@dataclass(frozen=True)
class UpsDescReply:
    """``UPSDESC <ups> "<text>"``."""

    ups: str
    text: str


@dataclass(frozen=True)
class NumLoginsReply:
    """``NUMLOGINS <ups> <n>``."""

    ups: str
    count: int


#: Words a LIST item needs, by list kind (what upsc/upsrw/upscmd check).
ITEM_WORDS = {"UPS": 3, "VAR": 4, "RW": 4, "CMD": 3, "ENUM": 4, "RANGE": 5, "CLIENT": 3}


@dataclass(frozen=True)
class ListReply:
    """A ``BEGIN LIST … END LIST`` block.  ``query`` is the request after LIST."""

    query: Words
    items: tuple[Words, ...] = field(default_factory=tuple)

    @property
    def kind(self) -> str:
        """UPS, VAR, RW, CMD, ENUM, RANGE or CLIENT (upper case)."""
        return self.query[0].upper()

    def checked_items(self) -> Iterator[Words]:
        """The items in order; raises :class:`InsufficientData` at the first short one."""
        need = ITEM_WORDS.get(self.kind, 1)
        for item in self.items:
            if len(item) < need:
                raise InsufficientData(len(item), need)
            yield item

    def values(self) -> dict[str, str]:
        """LIST VAR/RW as ``{name: value}``; LIST UPS as ``{name: description}``."""
        if self.kind == "UPS":
            return {item[1]: item[2] for item in self.checked_items()}
        return {item[2]: item[3] for item in self.checked_items()}

    def names(self) -> list[str]:
        """Third word of each item: command names, variable names, client addresses…"""
        if self.kind == "UPS":
            return [item[1] for item in self.checked_items()]
        return [item[2] for item in self.checked_items()]


Reply = Union[OkReply, TextReply, TrackingReply, VarReply, TypeReply, DescReply, CmdDescReply,
              UpsDescReply, NumLoginsReply, ListReply]


# --------------------------------------------------------------------------------------
# reply lines


def c_strtol(text: str) -> int:
    """C ``strtol(text, NULL, 10)`` on a 64-bit system (0 when nothing parses)."""
    match = re.match(r"[ \t\n\v\f\r]*([+-]?)([0-9]+)", text)
    if not match:
        return 0
    value = int(match.group(2))
    value = -value if match.group(1) == "-" else value
    return max(-(1 << 63), min((1 << 63) - 1, value))


def _tokenize(data: bytes) -> list[str] | ParseError:
    """All words of ``data`` (no LF inside), or the tokenizer's ParseError."""
    words: list[str] = []
    for _, item in tokenize_text(data):
        if isinstance(item, ParseError):
            return item
        words.extend(item)
    return words


def split_reply(line: bytes) -> Words:
    """Split one reply line (no LF) into words the way libupsclient's ``pconf_line`` does."""
    line = line.split(b"\0", 1)[0]
    words = _tokenize(line)
    if isinstance(words, ParseError):
        # pconf_line keeps the words read before the offending '#', the open one included.
        for match in re.finditer(rb"#", line):
            if isinstance(_tokenize(line[: match.start() + 1]), ParseError):
                probe = _tokenize(line[: match.start()] + b"x")
                assert not isinstance(probe, ParseError)
                if probe and probe[-1].endswith("x"):
                    probe[-1] = probe[-1][:-1]
                words = probe
                break
        else:  # pragma: no cover - a parse error always has its '#'
            words = []
    return tuple(words[:MAX_REPLY_WORDS])


def _echoes(query: Words, answer: Words) -> bool:
    """libupsclient's ``verify_resp``: the answer repeats the query, ignoring case."""
    return len(answer) >= len(query) and all(
        q.lower() == a.lower() for q, a in zip(query, answer))


def _typed_get(query: Words, words: Words, line: str) -> Reply:
    """The typed reply for an echo-checked GET answer; ProtocolError if its value is missing."""
    what = query[0].upper()
    need = _GET_REPLIES[what] + 1
    if len(words) < need:
        raise ProtocolError(f"{what} reply without a value", line)
    if what == "VAR":
        return VarReply(words[1], words[2], words[3])
    if what == "TYPE":
        return TypeReply(words[1], words[2], words[3:])
    if what == "DESC":
        return DescReply(words[1], words[2], words[3])
    if what == "CMDDESC":
        return CmdDescReply(words[1], words[2], words[3])
    if what == "UPSDESC":
        return UpsDescReply(words[1], words[2])
    try:
        return NumLoginsReply(words[1], int(words[2]))
    except ValueError:
        raise ProtocolError("NUMLOGINS is not a number", line) from None


@dataclass
class _Pending:
    """A request waiting for its reply; a LIST collects its items here."""

    request: Request
    begun: bool = False
    items: list[Words] = field(default_factory=list)

    def fail(self, error: ClientError) -> ClientError:
        """The error this request ends with: a list already begun keeps its items."""
        if self.request.kind == "list" and self.begun:
            return IncompleteList(ListReply(self.request.words[1:], tuple(self.items)), error)
        return error


Outcome = Union[Reply, ClientError]


class ClientConnection:
    """The protocol state of one client connection; feed it bytes, read replies.

    ``send(request)`` returns the bytes to write and queues the request; ``receive_data``
    takes whatever the transport read; ``next_reply()`` returns the oldest request's reply,
    None while it is incomplete, or raises its :class:`ClientError`.  After
    ``connection_lost`` every queued request fails with the given error and ``send``
    raises :meth:`TransportError.not_connected`.
    """

    def __init__(self, max_line: int | None = None) -> None:
        self.max_line = max_line
        self._buffer = bytearray()
        self._pending: deque[_Pending] = deque()
        self._outcomes: deque[Outcome] = deque()
        self._lost: ClientError | None = None

    @property
    def pending(self) -> int:
        """Requests sent whose reply has not been returned by :meth:`next_reply` yet."""
        return len(self._pending) + len(self._outcomes)

    @property
    def closed(self) -> bool:
        """True once :meth:`connection_lost` was called."""
        return self._lost is not None

    def send(self, request: Request) -> bytes:
        """Queue ``request``; return its bytes for the transport to write."""
        if self._lost is not None:
            raise TransportError.not_connected()
        self._pending.append(_Pending(request))
        self._process()
        return request.line()

    def receive_data(self, data: bytes) -> None:
        """Take bytes read from the server."""
        self._buffer += data
        self._process()

    def connection_lost(self, error: ClientError | None = None) -> None:
        """The transport closed: fail every queued request with ``error``."""
        error = error or TransportError.disconnected()
        self._lost = error
        while self._pending:
            self._outcomes.append(self._pending.popleft().fail(error))

    def next_reply(self) -> Reply | None:
        """The oldest request's reply; None if not complete yet; raises its error."""
        if not self._outcomes:
            return None
        outcome = self._outcomes.popleft()
        if isinstance(outcome, ClientError):
            raise outcome
        return outcome

    # -- internals -------------------------------------------------------------------------

    def _next_line(self) -> bytes | None:
        """Take the next reply line (without LF), cut at ``max_line`` bytes like libupsclient."""
        limit = self.max_line
        end = self._buffer.find(b"\n", 0, limit)
        if end >= 0:
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            return line
        if limit is not None and len(self._buffer) >= limit:
            line = bytes(self._buffer[:limit])
            del self._buffer[:limit]
            return line
        return None

    def _process(self) -> None:
        """Hand complete lines to the oldest pending request; lines wait while none is."""
        while self._pending:
            raw = self._next_line()
            if raw is None:
                return
            head = self._pending[0]
            outcome = self._on_line(head, raw)
            if outcome is not None:
                self._pending.popleft()
                self._outcomes.append(outcome)

    def _on_line(self, head: _Pending, raw: bytes) -> Outcome | None:
        """One line for ``head``: its outcome, or None when it needs more lines (a LIST)."""
        line = raw.split(b"\0", 1)[0].decode("ascii", "surrogateescape")
        kind = head.request.kind
        if kind == "tracking" and len(head.request.words) > 2:
            return TrackingReply(line)
        if line.startswith("ERR"):
            return head.fail(NutError.from_line(line))
        if kind == "simple":
            if line.startswith("OK"):
                return OkReply(line)
            return ProtocolError("unexpected reply", line)
        if kind == "text":
            return TextReply(line)
        if kind == "tracking":
            return TrackingReply(line)
        words = split_reply(raw)
        query = head.request.words[1:]
        if kind == "get":
            if not _echoes(query, words):
                return ProtocolError("reply does not match the request", line)
            try:
                return _typed_get(query, words, line)
            except ProtocolError as error:
                return error
        return self._on_list_line(head, query, words, line)

    def _on_list_line(self, head: _Pending, query: Words, words: Words,
                      line: str) -> Outcome | None:
        """A LIST line: BEGIN check, an item (echo-checked), or the exact END LIST."""
        if not head.begun:
            if (len(words) < 2 or words[0].upper() != "BEGIN" or words[1].upper() != "LIST"
                    or not _echoes(query, words[2:])):
                return ProtocolError("list does not start with BEGIN LIST <request>", line)
            head.begun = True
            return None
        if len(words) >= 2 and words[0] == "END" and words[1] == "LIST":
            return ListReply(query, tuple(head.items))
        if not words or not _echoes(query, words):
            return head.fail(ProtocolError("list item does not match the request", line))
        head.items.append(words)
        return None
