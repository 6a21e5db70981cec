# -*- test-case-name: tests.test_qx_serial -*-
"""The blocking engine: find the dialect, read ratings and vendor, poll, run commands.

Everything here runs in one worker thread (or, in tests and ``decode``, directly) over one
:class:`~upsagent.drivers.qx.transport.Transport`; nothing touches the UPS model.

**Probing** (NUT's ``subdriver_matcher``): the dialects are tried in NUT's order
(``protocol =`` picks one), each up to three times.  A dialect claims the UPS when its
status reply is valid with a numeric ``input.voltage`` (and, for voltronic-qs, the ``M``
query answered ``V`` or ``H``); the megatec-family dialects (megatec, mustek, megatec/old,
zinto) also want a vendor reply, unless ``novendor``.  Difference from NUT: a rating reply
will do instead of the vendor reply, so a unit that answers F but not I is served as
megatec with its ratings (NUT falls back to its "Q1" subdriver, which never asks F and so
cannot estimate the battery charge).  blazer_ser / blazer_usb claim by the status alone,
as NUT's ``blazer.c``.

**Static data**: the rating (F) and vendor (I / FW?) replies, each asked once more on a
timeout (not after an echo or a refusal: the UPS does not know the query); ``norating``
and ``novendor`` skip them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from upsagent.drivers.qx.codec import (
    BLAZER_DIALECTS, DIALECTS, Dialect, NoData, Outcome, StatusReading, command_outcome,
    dialect_by_name, parse_protocol, parse_rating, parse_status, parse_vendor, reply_text)
from upsagent.drivers.qx.transport import Transport

__all__ = ["Device", "Identity", "ProbeFailed", "Settings"]

TRIES = 3


class ProbeFailed(Exception):
    """No dialect answered; the message says what each one got."""


@dataclass(frozen=True)
class Settings:
    """What the engine needs from the configuration."""

    blazer: bool = False
    protocol: str | None = None
    novendor: bool = False
    norating: bool = False
    ignoresab: bool = False


@dataclass
class Identity:
    """What the probe found: the dialect, its static values and the first status."""

    dialect: Dialect
    first: StatusReading
    #: ratings, vendor strings, ups.firmware.aux
    static: dict[str, str] = field(default_factory=dict)
    #: why a static query gave nothing (for the log)
    notes: list[str] = field(default_factory=list)


class Device:
    """One Q1 UPS over one transport (blocking)."""

    def __init__(self, transport: Transport, settings: Settings,
                 log: Callable[[str], None] | None = None) -> None:
        self.transport = transport
        self.settings = settings
        self.log = log or (lambda text: None)
        self.dialect: Dialect | None = None

    def ask(self, command: str) -> str | NoData:
        """One query: the reply's text or why there is none."""
        return reply_text(command, self.transport.exchange(command))

    # -- probing ----------------------------------------------------------------------

    def candidates(self) -> tuple[Dialect, ...]:
        table = BLAZER_DIALECTS if self.settings.blazer else DIALECTS
        if self.settings.protocol:
            chosen = dialect_by_name(self.settings.protocol, table)
            if chosen is None:
                names = ", ".join(d.key for d in table)
                raise ProbeFailed(f"protocol {self.settings.protocol!r} is not one of {names}")
            return (chosen,)
        return table

    def probe(self) -> Identity:
        """Find the dialect and read the static data (raises ProbeFailed)."""
        tried = []
        for dialect in self.candidates():
            why = ""
            for _ in range(TRIES):
                found = self._claim(dialect)
                if isinstance(found, Identity):
                    self.dialect = dialect
                    self._read_static(found)
                    return found
                why = found
            tried.append(f"{dialect.key}: {why}")
        raise ProbeFailed("no supported UPS answered (" + "; ".join(tried) + ")")

    def _claim(self, dialect: Dialect) -> Identity | str:
        static: dict[str, str] = {}
        if dialect.protocol is not None:
            text = self.ask(dialect.protocol)
            aux = text if isinstance(text, NoData) else parse_protocol(text)
            if isinstance(aux, NoData):
                return aux.reason
            static["ups.firmware.aux"] = aux
        reading = self.status(dialect)
        if isinstance(reading, NoData):
            return reading.reason
        if "input.voltage" not in reading.values:
            return "no numeric input voltage in the status reply"
        identity = Identity(dialect, reading, static)
        if not dialect.needs_identity or self.settings.novendor:
            return identity
        vendor = self._vendor(dialect)
        if not isinstance(vendor, NoData):
            identity.static.update(vendor)
            return identity
        rating = self._rating(dialect) if not self.settings.norating else NoData("norating")
        if not isinstance(rating, NoData):
            identity.static.update(rating)
            identity.notes.append(f"vendor query {dialect.vendor!r}: {vendor.reason}")
            return identity
        return f"vendor: {vendor.reason}; rating: {rating.reason}"

    def _vendor(self, dialect: Dialect) -> dict[str, str] | NoData:
        if dialect.vendor is None:
            return NoData("the dialect has no vendor query")
        text = self._ask_static(dialect.vendor)
        return text if isinstance(text, NoData) else parse_vendor(text, self.settings.blazer)

    def _rating(self, dialect: Dialect) -> dict[str, str] | NoData:
        if dialect.rating is None:
            return NoData("the dialect has no rating query")
        text = self._ask_static(dialect.rating)
        return text if isinstance(text, NoData) else parse_rating(text, dialect)

    def _ask_static(self, command: str) -> str | NoData:
        """A static query, asked once more when nothing came back."""
        text = self.ask(command)
        if isinstance(text, NoData) and text.reason == "no reply":
            text = self.ask(command)
        return text

    def _read_static(self, identity: Identity) -> None:
        dialect, static = identity.dialect, identity.static
        have_rating = any(f.name in static for f in dialect.rating_fields)
        if dialect.rating and not self.settings.norating and not have_rating:
            rating = self._rating(dialect)
            if isinstance(rating, NoData):
                identity.notes.append(f"rating query {dialect.rating!r}: {rating.reason}")
            else:
                static.update(rating)
        if dialect.vendor and not self.settings.novendor and "ups.firmware" not in static:
            vendor = self._vendor(dialect)
            if isinstance(vendor, NoData):
                if not any(note.startswith("vendor") for note in identity.notes):
                    identity.notes.append(f"vendor query {dialect.vendor!r}: {vendor.reason}")
            else:
                static.update(vendor)

    # -- polling and commands ---------------------------------------------------------

    def status(self, dialect: Dialect | None = None) -> StatusReading | NoData:
        """One status query, checked and read."""
        dialect = dialect or self.dialect
        assert dialect is not None, "probe first"
        text = self.ask(dialect.status)
        if isinstance(text, NoData):
            return text
        return parse_status(text, dialect, self.settings.ignoresab)

    def run(self, command: str) -> Outcome:
        """Send an instant command; whether the UPS took it."""
        return command_outcome(command, self.transport.exchange(command))
