# -*- test-case-name: tests.test_sockproto -*-
"""The driver socket protocol, upsd's end of it, sans-IO: driver lines in, requests out.

NUT's drivers publish their state on a Unix socket (``<STATEPATH>/<driver>-<upsname>``) in
a line protocol of their own (NUT's ``docs/sock-protocol.txt``); upsd reads it in
``server/sstate.c``.  :class:`DriverSession` is that reader without the socket: feed it
the bytes the driver sent (:meth:`DriverSession.receive`) and it keeps upsd's picture of
the driver (variables with flags, aux value, enums and ranges; the command list; whether
the dump is done and whether the driver calls its data good), writes every change into a
:class:`Sink` (:class:`UpsSink` writes into a :class:`upsagent.model.UPS`, the model our
own drivers publish into), and returns what the shell must act on (tracking answers,
whether anything valid was heard, a limit the driver broke).  The requests upsd sends are
built by :meth:`~DriverSession.dumpall`, :meth:`~DriverSession.ping`,
:meth:`~DriverSession.instcmd` and :meth:`~DriverSession.setvar`.

What it takes from NUT 2.8.0 (the C file in brackets):

* **Lines** are split by NUT's own parseconf tokenizer (:mod:`upsagent.nut.tokenizer`): the
  same quoting, ``\\`` escapes, 32 words of at most 512 characters, and a parse error (an
  unescaped ``#`` in quotes) drops the rest of that 512-byte read, as upsd's
  ``sstate_readline`` does [server/sstate.c].
* **Driver lines** [server/sstate.c ``parse_args``], keywords in any case, extra words
  ignored: ``PONG``, ``DUMPDONE``, ``DATAOK``, ``DATASTALE`` (1 word); ``ADDCMD``,
  ``DELCMD``, ``DELINFO`` (2); ``SETINFO``, ``SETFLAGS`` (``RW``, ``STRING``, ``NUMBER``;
  replacing the old flags), ``ADDENUM``, ``DELENUM``, ``SETAUX`` (C ``strtol``),
  ``TRACKING <id> <status>`` (3); ``ADDRANGE``/``DELRANGE <var> <min> <max>`` (4, C
  ``atoi``).  A line with too few words or an unknown keyword is ignored and does not
  count as hearing from the driver; a valid one does (upsd's ``last_heard``).  Flags, aux,
  enums and ranges of a variable that does not exist are ignored.
* **The model** [common/state.c]: variables by case-insensitive name, keeping the first
  spelling; the command list kept sorted case-insensitively (``LIST CMD`` order); enum
  values appended, a duplicate (exact) ignored, ``DELENUM`` removing the first value equal
  but for case; a range whose minimum *or* maximum equals one already listed counts as a
  duplicate and ``DELRANGE`` removes the first such range (NUT's own rule, applied to the
  driver's list by the driver too, so both sides stay the same), and a range with
  min > max is refused.  ``GET TYPE``: ``RW`` from the flag, ``STRING:<aux>`` with the
  ``STRING`` flag, ``NUMBER`` otherwise [server/netget.c].
* **Availability** [server/sstate.c ``sstate_dead``, server/upsd.c ``ups_available``]:
  DATAOK/DATASTALE count only once the dump is done.  Before ``DUMPDONE`` this session says
  :attr:`~upsagent.model.Availability.NOT_CONNECTED` (upsd serves the half-received dump
  with ``ups.status`` "WAIT" for up to two seconds; we never serve data before the driver
  said it was all there).  After it, ``STALE`` while the driver says DATASTALE, ``OK``
  otherwise.  Silence past MAXAGE and a lost socket are the shell's business.
* **Requests** [server/sstate.c, server/netset.c, server/netinstcmd.c]: ``DUMPALL``,
  ``PING``, ``SET <var> "<value>"`` and ``INSTCMD <cmd> [<value>]``, each with
  ``TRACKING <id>`` when the client's request is tracked.  Values are escaped as
  ``pconf_encode`` does (``\\`` before ``\\``, ``"``, ``#``).  upsd writes an INSTCMD
  value unquoted, so that a value holding a space or ``=`` reaches the driver as several
  words (which the driver refuses as malformed); we quote such a value, the only case
  where the bytes differ.  An empty INSTCMD value is left out, as upsd's ``" %s"`` of an
  empty string makes it vanish.
* **Tracking answers** [server/upsd.c ``tracking_set``/``tracking_get``]: the driver's
  status is C ``atoi``'d: -1 pending, 0 ``SUCCESS``, 1 ``ERR UNKNOWN``, 2
  ``ERR INVALID-ARGUMENT``, 3 ``ERR FAILED``, anything else ``ERR UNKNOWN``
  (:func:`tracking_result`).

Beyond upsd, which trusts its drivers: :class:`Limits` bound what one driver may make us
hold or do (line length, bytes per second, bad lines per second, variables, enum values,
ranges, commands).  A driver that breaks one gets ``Received.fault`` (a sentence for the
log) and nothing more is read from it; the shell then cuts the connection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

from upsagent.model import UPS, Availability
from upsagent.nut.client import c_strtol, encode_word
from upsagent.nut.tokenizer import ParseError, RequestReader, quote

__all__ = ["DriverSession", "Limits", "Node", "Received", "Sink", "UpsSink",
           "c_atoi", "tracking_result"]

#: driver statuses (drivers/upshandler.h, server/upsd.h) -> what GET TRACKING says
_TRACKING = {0: "SUCCESS", 1: "ERR UNKNOWN", 2: "ERR INVALID-ARGUMENT", 3: "ERR FAILED"}
_PENDING = -1
_FLAGS = ("RW", "STRING", "NUMBER")
#: lines newer drivers may send that upsd 2.8.0 ignores; not counted as garbage
_HARMLESS = frozenset({"PID", "OK"})


def c_atoi(text: str) -> int:
    """C ``atoi``: ``strtol`` cut to a 32-bit int, as glibc does."""
    value = c_strtol(text) & 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def tracking_result(status: str) -> str | None:
    """What ``GET TRACKING`` says for a driver's ``TRACKING <id> <status>``; None: pending."""
    code = c_atoi(status)
    if code == _PENDING:
        return None
    return _TRACKING.get(code, "ERR UNKNOWN")


@dataclass
class Node:
    """One variable as upsd keeps it: value, flags, aux (string length), enums, ranges."""

    name: str
    value: str
    flags: frozenset[str] = frozenset()
    aux: int = 0
    enums: list[str] = field(default_factory=list)
    ranges: list[tuple[int, int]] = field(default_factory=list)

    @property
    def writable(self) -> bool:
        return "RW" in self.flags

    @property
    def string_len(self) -> int | None:
        """``STRING:<aux>`` for a STRING variable; None (``NUMBER``) otherwise."""
        return self.aux if "STRING" in self.flags else None


class Sink(Protocol):
    """Where a session writes the driver's state (:class:`UpsSink`: a model.UPS)."""

    def reset(self) -> None:
        """Forget everything (a new connection: the dump starts from nothing)."""

    def put(self, node: Node) -> None:
        """A variable appeared or changed (value, flags, aux, enums or ranges)."""

    def drop(self, name: str) -> None:
        """A variable went away."""

    def commands(self, names: Sequence[str]) -> None:
        """The instant commands are now exactly ``names``, in this order."""


class UpsSink:
    """Writes a driver session's state into a :class:`~upsagent.model.UPS`.

    Changes are not committed here: the shell commits once per chunk of input (through
    ``data_ok`` or ``commit``), so that observers never see half of a driver's update.
    """

    def __init__(self, ups: UPS) -> None:
        self.ups = ups

    def reset(self) -> None:
        self.ups.clear()

    def put(self, node: Node) -> None:
        ups = self.ups
        ups.set(node.name, node.value)
        var = ups.get(node.name)
        assert var is not None
        var.writable = node.writable
        var.string_len = node.string_len
        var.enum = list(node.enums)
        var.ranges = list(node.ranges)

    def drop(self, name: str) -> None:
        self.ups.delete(name)

    def commands(self, names: Sequence[str]) -> None:
        ups = self.ups
        if ups.commands() == list(names):
            return
        for name in ups.commands():
            ups.remove_command(name)
        for name in names:
            ups.add_command(name)


@dataclass(frozen=True)
class Limits:
    """What one driver connection may cost us before it is cut off."""

    #: bytes of one line (NUT's drivers write at most a few hundred)
    max_line: int = 16 * 1024
    #: bytes a driver may send at once, and per second after that (a token bucket)
    burst_bytes: int = 4 * 1024 * 1024
    bytes_per_second: int = 256 * 1024
    #: lines that are not driver lines (unknown keyword, too few words, parse errors) at
    #: once, and per second after that
    burst_bad_lines: int = 100
    bad_lines_per_second: float = 1.0
    max_variables: int = 10_000
    max_enums: int = 1_000
    max_ranges: int = 1_000
    max_commands: int = 1_000


@dataclass
class Received:
    """What one chunk of driver output means for the shell."""

    #: at least one valid driver line arrived (upsd's ``last_heard``)
    heard: bool = False
    #: ``(id, result)`` per TRACKING line; result None while the driver says pending
    tracking: list[tuple[str, str | None]] = field(default_factory=list)
    #: the dump became complete in this chunk
    dump_done: bool = False
    #: log-worthy but harmless (parse errors, lines that are not driver lines)
    notices: list[str] = field(default_factory=list)
    #: the driver broke a :class:`Limits` bound: cut it off (this says why)
    fault: str | None = None


class _Bucket:
    """A token bucket on the caller's clock."""

    def __init__(self, burst: float, rate: float) -> None:
        self.burst = burst
        self.rate = rate
        self.tokens = burst
        self.stamp: float | None = None

    def take(self, amount: float, now: float) -> bool:
        """Spend ``amount``; False when the bucket would go below zero."""
        if self.stamp is not None and now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= amount
        return self.tokens >= 0


class _Fault(Exception):
    """A limit was broken (the message says which)."""


class DriverSession:
    """One connection to a NUT driver, from upsd's side (see the module docstring).

    Build a new one for every connection: :meth:`start` empties the sink and returns the
    ``DUMPALL`` to send first.
    """

    def __init__(self, sink: Sink, limits: Limits = Limits()) -> None:
        self.sink = sink
        self.limits = limits
        self._reader = RequestReader()
        self._nodes: dict[str, Node] = {}
        self._commands: dict[str, str] = {}
        self.dump_done = False
        #: the driver's last DATAOK (True) / DATASTALE (False)
        self.data_ok = False
        #: set once a limit was broken; nothing more is read
        self.fault: str | None = None
        self._bytes = _Bucket(limits.burst_bytes, limits.bytes_per_second)
        self._bad = _Bucket(limits.burst_bad_lines, limits.bad_lines_per_second)

    # -- what the server sends ---------------------------------------------------------

    def start(self) -> bytes:
        """A new connection: forget everything, ask for the dump (sstate_connect)."""
        self.sink.reset()
        self.sink.commands([])
        return self.dumpall()

    @staticmethod
    def dumpall() -> bytes:
        return b"DUMPALL\n"

    @staticmethod
    def ping() -> bytes:
        return b"PING\n"

    @staticmethod
    def setvar(name: str, value: str, tracking: str | None = None) -> bytes:
        """``SET <var> "<value>" [TRACKING <id>]`` (server/netset.c)."""
        line = f"SET {encode_word(name)} {quote(value)}"
        return _finish(line, tracking)

    @staticmethod
    def instcmd(name: str, value: str | None = None, tracking: str | None = None) -> bytes:
        """``INSTCMD <cmd> [<value>] [TRACKING <id>]`` (server/netinstcmd.c)."""
        line = f"INSTCMD {encode_word(name)}"
        if value:
            line += f" {encode_word(value)}"
        return _finish(line, tracking)

    # -- what the driver sends ---------------------------------------------------------

    @property
    def availability(self) -> Availability:
        """Not connected before DUMPDONE; then what the driver last said of its data."""
        if not self.dump_done:
            return Availability.NOT_CONNECTED
        return Availability.OK if self.data_ok else Availability.STALE

    def receive(self, data: bytes, now: float) -> Received:
        """Take what the driver sent (any chunk); ``now`` is the shell's clock (seconds)."""
        result = Received()
        if self.fault is not None:
            result.fault = self.fault
            return result
        try:
            if not self._bytes.take(len(data), now):
                raise _Fault(f"sent more than {self.limits.burst_bytes} bytes at once or "
                             f"{self.limits.bytes_per_second} bytes per second")
            for item in self._reader.feed(data):
                if isinstance(item, ParseError):
                    self._bad_line(result, now, f"parse error: {item.message}")
                elif item:
                    self._line(item, result, now)
            if self._reader.line_bytes > self.limits.max_line:
                raise _Fault(f"sent a line longer than {self.limits.max_line} bytes")
        except _Fault as fault:
            self.fault = result.fault = str(fault)
        return result

    def _bad_line(self, result: Received, now: float, notice: str) -> None:
        result.notices.append(notice)
        if not self._bad.take(1, now):
            raise _Fault(f"sent more than {self.limits.burst_bad_lines} lines that are not "
                         f"driver lines at once, or more than "
                         f"{self.limits.bad_lines_per_second:g} per second")

    def _line(self, words: list[str], result: Received, now: float) -> None:
        keyword = words[0].upper()
        need = _ARGS.get(keyword)
        if need is None:
            if keyword not in _HARMLESS:
                self._bad_line(result, now, f"not a driver line: {_show(words)}")
            return
        if len(words) < need:
            self._bad_line(result, now, f"{keyword} needs {need - 1} "
                                        f"argument{'s' if need > 2 else ''}: {_show(words)}")
            return
        result.heard = True
        if keyword == "PONG":
            return
        if keyword == "DUMPDONE":
            if not self.dump_done:
                result.dump_done = True
            self.dump_done = True
        elif keyword == "DATAOK":
            self.data_ok = True
        elif keyword == "DATASTALE":
            self.data_ok = False
        elif keyword == "TRACKING":
            result.tracking.append((words[1], tracking_result(words[2])))
        elif keyword in ("ADDCMD", "DELCMD"):
            self._command(keyword, words[1])
        else:
            self._variable(keyword, words)

    def _command(self, keyword: str, name: str) -> None:
        key = name.lower()
        if keyword == "ADDCMD":
            if key in self._commands:
                return
            if len(self._commands) >= self.limits.max_commands:
                raise _Fault(f"listed more than {self.limits.max_commands} commands")
            self._commands[key] = name
        elif self._commands.pop(key, None) is None:
            return
        self.sink.commands([self._commands[k] for k in sorted(self._commands)])

    def _variable(self, keyword: str, words: list[str]) -> None:
        name = words[1]
        key = name.lower()
        node = self._nodes.get(key)
        if keyword == "SETINFO":
            if node is None:
                if len(self._nodes) >= self.limits.max_variables:
                    raise _Fault(f"set more than {self.limits.max_variables} variables")
                node = self._nodes[key] = Node(name, words[2])
            elif node.value == words[2]:
                return
            node.value = words[2]
        elif keyword == "DELINFO":
            if node is not None:
                del self._nodes[key]
                self.sink.drop(node.name)
            return
        elif node is None:
            return  # flags, aux, enums or ranges of a variable that does not exist
        elif keyword == "SETFLAGS":
            flags = frozenset(flag.upper() for flag in words[2:] if flag.upper() in _FLAGS)
            if flags == node.flags:
                return
            node.flags = flags
        elif keyword == "SETAUX":
            aux = c_strtol(words[2])
            if aux == node.aux:
                return
            node.aux = aux
        elif keyword in ("ADDENUM", "DELENUM"):
            if not self._enum(node, keyword, words[2]):
                return
        elif not self._range(node, keyword, c_atoi(words[2]), c_atoi(words[3])):
            return
        self.sink.put(node)

    def _enum(self, node: Node, keyword: str, value: str) -> bool:
        if keyword == "ADDENUM":
            if value in node.enums:
                return False
            if len(node.enums) >= self.limits.max_enums:
                raise _Fault(f"listed more than {self.limits.max_enums} enum values for "
                             f"{node.name}")
            node.enums.append(value)
            return True
        for index, old in enumerate(node.enums):
            if old.lower() == value.lower():
                del node.enums[index]
                return True
        return False

    def _range(self, node: Node, keyword: str, low: int, high: int) -> bool:
        match = next((i for i, (a, b) in enumerate(node.ranges) if a == low or b == high),
                     None)
        if keyword == "ADDRANGE":
            if low > high or match is not None:
                return False
            if len(node.ranges) >= self.limits.max_ranges:
                raise _Fault(f"listed more than {self.limits.max_ranges} ranges for "
                             f"{node.name}")
            node.ranges.append((low, high))
            return True
        if match is None:
            return False
        del node.ranges[match]
        return True


#: keyword -> the words it needs (keyword included), server/sstate.c parse_args
_ARGS = {
    **dict.fromkeys(("PONG", "DUMPDONE", "DATAOK", "DATASTALE"), 1),
    **dict.fromkeys(("ADDCMD", "DELCMD", "DELINFO"), 2),
    **dict.fromkeys(("SETINFO", "SETFLAGS", "ADDENUM", "DELENUM", "SETAUX", "TRACKING"), 3),
    **dict.fromkeys(("ADDRANGE", "DELRANGE"), 4),
}


def _finish(line: str, tracking: str | None) -> bytes:
    if tracking:
        line += f" TRACKING {encode_word(tracking)}"
    return (line + "\n").encode("ascii", "replace")


def _show(words: list[str]) -> str:
    text = " ".join(encode_word(word) for word in words)
    return text if len(text) <= 120 else text[:117] + "..."
