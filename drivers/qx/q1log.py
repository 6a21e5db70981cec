# -*- test-case-name: tests.test_qx_decode -*-
"""Recorded Q1 exchanges (``.q1log``) and their replay through the driver's own engine.

The format (tests/data/qx/SOURCES.md; written for upsagent, data only)::

    # device: Vultech V2000                  header and comment lines start with '#'
    # transport: USB "armac" bridge ...      names the bridge of the raw chunks, if any
    > Q1\\r                                   what the host sent (\\r for the CR)
      chunk 81 28 30 31 30 30                one raw interrupt chunk, as read (hex)
    < (233.0 000.0 233.0 014 ...\\r           the reply, reassembled
    (none)                                   the UPS answered nothing

Blank lines are ignored; anything else is an error naming the line.  For each exchange the
reassembled reply is used when there is one; otherwise the raw chunks are reassembled with
the bridge's rules (:mod:`.bridges`), the bridge being ``--bridge`` or the one the
``# transport:`` line names.

:func:`decode` replays a log as the driver would live: a :class:`ReplayTransport` answers
each command with the next reply recorded for it (nothing for a command never recorded),
the engine probes the dialect and reads the static data exactly as on a real UPS, then
every further status reply in the log is one poll; the result is what the driver would
publish after the last one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from upsagent.drivers.qx.bridges import (
    ASSEMBLERS, BRIDGES, KRAULER_INDEX, SNR_INDEX, Assembler, StringAssembler)
from upsagent.drivers.qx.codec import NoData
from upsagent.drivers.qx.device import Device, ProbeFailed, Settings
from upsagent.drivers.qx.publish import FLAVOURS, QxState
from upsagent.drivers.qx.transport import Transport

__all__ = ["Exchange", "LogError", "Q1Log", "ReplayTransport", "decode", "parse_log"]


class LogError(ValueError):
    """A line that is not in the format, or a log that cannot be decoded."""


@dataclass
class Exchange:
    """One command and what came back."""

    line: int
    command: str
    reply: bytes | None = None
    chunks: list[bytes] = field(default_factory=list)
    #: "(none)" was recorded
    silent: bool = False


@dataclass
class Q1Log:
    """A parsed log: its exchanges and the bridge its header names (if any)."""

    exchanges: list[Exchange]
    bridge: str | None = None
    serial: bool = False


_CHUNK = re.compile(r"chunk((?:\s+[0-9A-Fa-f]{2})+)\s*")
_BRIDGE_WORD = re.compile(r"[A-Za-z]+")


def _unescape(text: str) -> str:
    return text.replace("\\r", "\r")


def parse_log(text: str, source: str = "LOG") -> Q1Log:
    """Parse a .q1log (LogError names the first bad line)."""
    exchanges: list[Exchange] = []
    bridge = None
    serial = False
    for number, raw_line in enumerate(text.splitlines(), 1):
        line = raw_line.rstrip()
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            match = re.match(r"#\s*transport:(.*)", stripped, re.IGNORECASE)
            if match and bridge is None and not serial:
                words = [w.lower() for w in _BRIDGE_WORD.findall(match.group(1))]
                named = [w for w in words if w in BRIDGES]
                if named:
                    bridge = named[0]
                elif "rs" in words or "serial" in words:
                    serial = True
            continue
        where = f"{source} line {number}"
        if line.startswith("> "):
            command = _unescape(line[2:])
            if not command.endswith("\r") or not command.strip():
                raise LogError(f"{where}: a command must end with \\r: {line!r}")
            exchanges.append(Exchange(number, command))
            continue
        if not exchanges:
            raise LogError(f"{where}: a reply before any command: {line!r}")
        current = exchanges[-1]
        if line.startswith("< ") or line == "<":
            if current.reply is not None or current.silent:
                raise LogError(f"{where}: a second reply to {current.command.strip()!r}")
            reply = _unescape(line[2:])
            current.reply = (reply if reply.endswith("\r") else reply + "\r").encode("latin-1")
        elif stripped == "(none)":
            if current.reply is not None or current.chunks:
                raise LogError(f"{where}: (none) after a reply")
            current.silent = True
        elif (match := _CHUNK.fullmatch(stripped)) is not None:
            current.chunks.append(bytes.fromhex(match.group(1)))
        else:
            raise LogError(f"{where}: not a command, reply, chunk or comment: {line!r}")
    return Q1Log(exchanges, bridge, serial)


def reassemble(exchange: Exchange, bridge: str | None) -> bytes | None:
    """The reply of an exchange: recorded, or rebuilt from its chunks by the bridge's rules."""
    if exchange.reply is not None or exchange.silent:
        return exchange.reply
    if not exchange.chunks:
        return None
    if bridge is None:
        raise LogError(f"line {exchange.line}: raw chunks but no bridge to reassemble them "
                       "(name one with --bridge)")
    assembler: Assembler
    if bridge in ("krauler", "snr"):
        entry = (KRAULER_INDEX if bridge == "krauler" else SNR_INDEX).get(exchange.command)
        assembler = StringAssembler(entry[1] if entry else None)
    else:
        assembler = ASSEMBLERS[bridge]()
    for chunk in exchange.chunks:
        if assembler.feed(chunk):
            break
    return assembler.result()


class ReplayTransport(Transport):
    """Answers each command with a reply the log recorded for it.

    A UPS answers the same query again and again, so while ``advancing`` is False (the
    probe, which may ask a query several times) the current reply is repeated; each query
    asked while ``advancing`` moves on to the next recorded reply, and the last one is
    repeated once they are used up.  A command never recorded gets no reply.
    """

    description = "recorded log"

    def __init__(self, log: Q1Log, bridge: str | None = None) -> None:
        self.bridge = bridge or log.bridge
        self.replies: dict[str, list[bytes | None]] = {}
        for exchange in log.exchanges:
            self.replies.setdefault(exchange.command, []).append(
                reassemble(exchange, self.bridge))
        self.position: dict[str, int] = {}
        self.advancing = False
        self.asked: list[str] = []

    def open(self) -> dict[str, str]:
        return {}

    def close(self) -> None:
        pass

    def exchange(self, command: str) -> bytes | None:
        self.asked.append(command)
        replies = self.replies.get(command)
        if not replies:
            return None
        index = self.position.get(command, 0)
        if self.advancing:
            self.position[command] = index + 1
        return replies[min(index, len(replies) - 1)]

    def left(self, command: str) -> int:
        """How many recorded replies to ``command`` have not been used yet."""
        return max(0, len(self.replies.get(command, ())) - self.position.get(command, 0))


def decode(log: Q1Log, bridge: str | None = None,
           options: dict[str, str] | None = None) -> tuple[dict[str, str], list[str]]:
    """What nutdrv_qx would publish from ``log``, and notes (probe, skipped polls)."""
    transport = ReplayTransport(log, bridge)
    device = Device(transport, Settings())
    try:
        identity = device.probe()
    except ProbeFailed as exc:
        raise LogError(str(exc)) from None
    transport.advancing = True
    transport.position[identity.dialect.status] = 1  # the probe read the first one
    notes: list[str] = [f"protocol {identity.dialect.name}", *identity.notes]
    state = QxState(FLAVOURS["nutdrv_qx"], options or {}, (), identity, 0.0,
                    log=notes.append)
    readings = [identity.first]
    while transport.left(identity.dialect.status):
        later = device.status()
        if isinstance(later, NoData):
            notes.append(f"a later status reply: {later.reason} (no data, skipped)")
        else:
            readings.append(later)
    values: dict[str, str] = {}
    for poll, reading in enumerate(readings):  # one poll every 2 s, as the driver
        values = state.variables(reading, 2.0 * poll)
    values["driver.name"] = "nutdrv_qx"
    values["driver.version.data"] = identity.dialect.name
    return values, notes
