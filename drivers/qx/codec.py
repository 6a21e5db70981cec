# -*- test-case-name: tests.test_qx_codec -*-
"""The Megatec/Q1 protocol, pure: commands, reply checks, fields, status bits, dialects.

**Replies.**  A request is ASCII ending in CR; a reply starts with ``(`` (status) or ``#``
(ratings, vendor) and ends with CR.  :func:`reply_text` turns raw bytes into the text
before the CR, or into :class:`NoData` with the reason: no reply, no CR (truncated), the
command echoed back (a UPS that does not know a command echoes it), ``NAK``, ``(NAK``,
``UPS No Ack``.  The parsers then check the length and the leading character as NUT's
tables do (47 bytes with ``(`` for Q1/QS/D, 22 with ``#`` for F, 38 with ``#`` for I) and
never guess: a field that is not made of digits, spaces and dots (``@@@.@``, ``---.-``, a
stray NUL) is left out, a status bit that is neither ``0`` nor ``1`` makes the whole
reply no data (NUT: ``blazer_process_status_bits`` fails a quick-poll item).

**Status bits** (offsets 38..45, b7 first), as ``blazer_process_status_bits`` and
``ups_status_set`` / ``ups_alarm_set`` in NUT's ``nutdrv_qx.c`` map them: b7 utility fail
-> ``OB`` (else ``OL``); b6 -> ``LB``; b5 bypass/boost/buck -> ``TRIM`` / ``BYPASS`` /
``BOOST`` by the output/input voltage ratio (< 0.95, < 1.05, < 1.5; outside 0.5..1.5 no
word, as ``blazer.c`` does, where ``nutdrv_qx`` would fail the whole poll); b4 ->
``ups.alarm`` "UPS selftest failed!"; b3 -> ``ups.type`` ("offline / line interactive" or
"online"); b2 -> ``CAL``; b1 (shutdown active) -> ``FSD`` and the alarm "Shutdown
imminent!" (not with the ``ignoresab`` flag); b0 -> ``ups.beeper.status``.  Any alarm puts
``ALARM`` first in ``ups.status``, as NUT's ``status_commit`` does.

**Dialects** are NUT's subdriver tables (:data:`DIALECTS`, in NUT's probing order):
which status, rating and vendor queries they use, what the rating fields are called, which
instant commands they offer and the delay ranges.

**Delays** (``blazer_process_setvar`` / ``blazer_process_command``): the UPS counts the
shutdown delay in tenths of a minute below one minute (``.2`` .. ``.9``) and in whole
minutes above (``01`` .. ``10``), the restart delay in whole minutes (``R0001`` ..
``R9999``; ``R0000`` stays off).  :func:`effective_offdelay` and
:func:`effective_ondelay` give the value the UPS will really use; the driver publishes and
logs that value, never the one asked for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "ACCEPTED", "DIALECTS", "Dialect", "Field", "NoData", "Outcome", "StatusReading",
    "command_outcome", "dialect_by_name", "effective_offdelay", "effective_ondelay",
    "format_number", "number", "parse_protocol", "parse_rating", "parse_status",
    "parse_vendor", "reply_text", "shutdown_return", "shutdown_stayoff", "battery_test",
]

CR = "\r"
#: replies meaning "not understood" (bridges, newer firmwares); compared without the CR
REFUSALS = ("NAK", "(NAK", "UPS No Ack")
#: replies meaning "done" from the units that answer commands at all
ACCEPTED = ("ACK", "(ACK")

STATUS_LEN = 47   # "(" + 45 characters + CR
RATING_LEN = 22   # "#" + 20 characters + CR
#: NUT 2.8.0 asks 39; NUT master accepts 38 because the "Megatec IC" variant is one shorter
VENDOR_LEN = 38


@dataclass(frozen=True)
class NoData:
    """A reply that gives no values, and why (for the log)."""

    reason: str


def reply_text(command: str, raw: bytes | None) -> str | NoData:
    """The text of ``raw`` before its CR, or why it is no data (see the module docstring)."""
    if raw is None:
        return NoData("no reply")
    data = raw.decode("latin-1")
    end = data.find(CR)
    if end < 0:
        return NoData(f"truncated reply: no CR in {len(raw)} bytes")
    text = data[:end]
    if not text.strip("\x00 "):
        return NoData("empty reply")
    if text.upper() == command.rstrip(CR).upper():
        return NoData(f"the UPS echoed {text!r} back (command not supported)")
    if text.strip().upper() in (r.upper() for r in REFUSALS):
        return NoData(f"the UPS refused the command ({text.strip()})")
    return text


# -- numbers -----------------------------------------------------------------------------

_NUMERIC = frozenset("0123456789 .")
_STRTOD = re.compile(r"\s*([0-9]*\.?[0-9]*)")


def number(text: str) -> float | None:
    """NUT's test and conversion of a numeric field: digits, spaces, dots only, then strtod.

    None for anything else (``@@@.@``, ``---.-``, NUL bytes): such a field is not published.
    """
    if any(char not in _NUMERIC for char in text):
        return None
    match = _STRTOD.match(text)
    digits = match.group(1) if match else ""
    return float(digits) if digits not in ("", ".") else 0.0


def format_number(value: float, fmt: str) -> str:
    """printf's ``%.Nf`` (``fmt`` is ``.1f``, ``.0f``, ``.2f``)."""
    return format(value, fmt)


# -- dialects ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """A fixed-width field: NUT's ``from``/``to`` offsets (inclusive) and printf format."""

    name: str
    start: int
    end: int
    fmt: str

    def cut(self, text: str) -> str:
        return text[self.start:self.end + 1]


def _status_fields(frequency: str) -> tuple[Field, ...]:
    return (Field("input.voltage", 1, 5, ".1f"), Field("input.voltage.fault", 7, 11, ".1f"),
            Field("output.voltage", 13, 17, ".1f"), Field("ups.load", 19, 21, ".0f"),
            Field(frequency, 23, 26, ".1f"), Field("battery.voltage", 28, 31, ".2f"),
            Field("ups.temperature", 33, 36, ".1f"))


def _rating_fields(side: str) -> tuple[Field, ...]:
    return (Field(f"{side}.voltage.nominal", 1, 5, ".0f"),
            Field(f"{side}.current.nominal", 7, 9, ".1f"),
            Field("battery.voltage.nominal", 11, 15, ".1f"),
            Field(f"{side}.frequency.nominal", 17, 20, ".0f"))


#: the instant commands of NUT's megatec table, in its order
MEGATEC_COMMANDS = ("beeper.toggle", "load.off", "load.on", "shutdown.return",
                    "shutdown.stayoff", "shutdown.stop", "test.battery.start",
                    "test.battery.start.deep", "test.battery.start.quick", "test.battery.stop")
#: commands with a fixed text (the others are built from the delays or a value)
SIMPLE_COMMANDS = {
    "beeper.toggle": "Q\r", "load.off": "S00R0000\r", "load.on": "C\r",
    "shutdown.stop": "C\r", "test.battery.start.deep": "TL\r",
    "test.battery.start.quick": "T\r", "test.battery.stop": "CT\r",
}


@dataclass(frozen=True)
class Dialect:
    """One of NUT's Q1-family subdriver tables."""

    #: what ``protocol =`` names it (case-insensitive), NUT's name without the version
    key: str
    #: ``driver.version.data`` (NUT's subdriver name and version, as NUT 2.8.0 has it)
    name: str
    status: str
    rating: str | None
    vendor: str | None
    #: a query that must answer first (voltronic-qs: ``M`` -> ``V`` or ``H``)
    protocol: str | None = None
    #: the claim also needs a vendor (or, upsagent, a rating) reply unless ``novendor``
    needs_identity: bool = True
    status_fields: tuple[Field, ...] = _status_fields("input.frequency")
    rating_fields: tuple[Field, ...] = _rating_fields("input")
    commands: tuple[str, ...] = MEGATEC_COMMANDS
    offdelay_range: tuple[int, int] = (12, 600)
    ondelay_range: tuple[int, int] = (0, 599940)


DIALECTS: tuple[Dialect, ...] = (
    Dialect("voltronic-qs", "Voltronic-QS 0.07", "QS\r", "F\r", None, protocol="M\r",
            needs_identity=False, status_fields=_status_fields("output.frequency"),
            rating_fields=_rating_fields("output"),
            commands=("beeper.toggle", "load.off", "load.on", "shutdown.return",
                      "shutdown.stayoff", "shutdown.stop", "test.battery.start.quick"),
            offdelay_range=(12, 540), ondelay_range=(60, 599940)),
    Dialect("mustek", "Mustek 0.07", "QS\r", "F\r", "I\r"),
    Dialect("megatec/old", "Megatec/old 0.07", "D\r", "F\r", "I\r"),
    Dialect("megatec", "Megatec 0.06", "Q1\r", "F\r", "I\r"),
    Dialect("zinto", "Zinto 0.06", "Q1\r", "F\r", "FW?\r"),
    Dialect("q1", "Q1 0.07", "Q1\r", None, None, needs_identity=False),
)

#: blazer_ser / blazer_usb (NUT's blazer.c): four protocols, claimed by the status alone
BLAZER_DIALECTS: tuple[Dialect, ...] = tuple(
    Dialect(d.key, d.key, d.status, d.rating, d.vendor, needs_identity=False)
    for key in ("megatec", "mustek", "megatec/old", "zinto")
    for d in DIALECTS if d.key == key)


def dialect_by_name(name: str, table: tuple[Dialect, ...] = DIALECTS) -> Dialect | None:
    """The dialect ``protocol = name`` selects (case-insensitive), or None."""
    for dialect in table:
        if dialect.key.lower() == name.strip().lower():
            return dialect
    return None


# -- the status reply --------------------------------------------------------------------

UPS_FAILED = "UPS selftest failed!"
SHUTDOWN_IMMINENT = "Shutdown imminent!"
TYPE_STANDBY = "offline / line interactive"
TYPE_ONLINE = "online"


@dataclass(frozen=True)
class StatusReading:
    """What one status reply says."""

    #: published variables (formatted numbers, ups.type, ups.beeper.status)
    values: dict[str, str]
    #: ``ups.status`` words in NUT's order, ``ALARM`` first when there is an alarm
    words: tuple[str, ...]
    #: ``ups.alarm`` texts in NUT's order
    alarms: tuple[str, ...]
    online: bool
    #: the battery voltage field as reported (per cell on some units), if numeric
    battery: float | None = None
    #: the 8 status characters, b7 first
    bits: str = ""
    skipped: tuple[str, ...] = field(default=())


def parse_status(text: str, dialect: Dialect, ignore_sab: bool = False) -> StatusReading | NoData:
    """Check and read a Q1/QS/D reply (``text`` without its CR)."""
    if len(text) + 1 < STATUS_LEN:
        return NoData(f"short status reply ({len(text) + 1} bytes, {STATUS_LEN} expected)")
    if text[0] != "(":
        return NoData(f"status reply starts with {text[0]!r}, '(' expected")
    bits = text[38:46]
    mandatory = (0, 1, 2, 5) if ignore_sab else (0, 1, 2, 5, 6)
    for index in mandatory:
        if bits[index] not in "01":
            return NoData(f"status bit {7 - index} is {bits[index]!r} (offset {38 + index})")
    values: dict[str, str] = {}
    numbers: dict[str, float] = {}
    skipped = []
    for item in dialect.status_fields:
        value = number(item.cut(text))
        if value is None:
            skipped.append(item.name)
            continue
        numbers[item.name] = value
        values[item.name] = format_number(value, item.fmt)
    online = bits[0] == "0"
    words = ["OL" if online else "OB"]
    if bits[1] == "1":
        words.append("LB")
    if bits[2] == "1":
        word = _bypass_word(values, numbers)
        if word:
            words.append(word)
    if bits[5] == "1":
        words.append("CAL")
    alarms = []
    if bits[3] == "1":
        alarms.append(UPS_FAILED)
    if not ignore_sab and bits[6] == "1":
        words.append("FSD")
        alarms.append(SHUTDOWN_IMMINENT)
    if bits[4] in "01":
        values["ups.type"] = TYPE_STANDBY if bits[4] == "1" else TYPE_ONLINE
    if bits[7] in "01":
        values["ups.beeper.status"] = "enabled" if bits[7] == "1" else "disabled"
    if alarms:
        words.insert(0, "ALARM")
    return StatusReading(values, tuple(words), tuple(alarms), online,
                         numbers.get("battery.voltage"), bits, tuple(skipped))


def _bypass_word(values: dict[str, str], numbers: dict[str, float]) -> str | None:
    """TRIM, BYPASS or BOOST by the published voltages (NUT compares what it published)."""
    if "input.voltage" not in values or "output.voltage" not in values:
        return None
    vi, vo = float(values["input.voltage"]), float(values["output.voltage"])
    if vo < 0.5 * vi:
        return None
    if vo < 0.95 * vi:
        return "TRIM"
    if vo < 1.05 * vi:
        return "BYPASS"
    if vo < 1.5 * vi:
        return "BOOST"
    return None


def parse_rating(text: str, dialect: Dialect) -> dict[str, str] | NoData:
    """Check and read an F reply: the nominal values it gives (at least one)."""
    if len(text) + 1 < RATING_LEN:
        return NoData(f"short rating reply ({len(text) + 1} bytes, {RATING_LEN} expected)")
    if text[0] != "#":
        return NoData(f"rating reply starts with {text[0]!r}, '#' expected")
    values = {}
    for item in dialect.rating_fields:
        value = number(item.cut(text))
        if value is not None:
            values[item.name] = format_number(value, item.fmt)
    return values or NoData("no numeric field in the rating reply")


#: the I reply's fields (NUT 2.8.0's megatec table; blazer.c names them ups.*)
VENDOR_FIELDS = ((1, 15, "device.mfr", "ups.mfr"), (17, 26, "device.model", "ups.model"),
                 (28, 37, "ups.firmware", "ups.firmware"))


def parse_vendor(text: str, blazer_names: bool = False) -> dict[str, str] | NoData:
    """Check and read an I (or FW?) reply; fields trimmed of spaces and ``#`` (NUT's TRIM).

    NUT's claim needs ``ups.firmware``; without it the reply counts as no data.
    """
    if len(text) + 1 < VENDOR_LEN:
        return NoData(f"short vendor reply ({len(text) + 1} bytes, {VENDOR_LEN} expected)")
    if text[0] != "#":
        return NoData(f"vendor reply starts with {text[0]!r}, '#' expected")
    values = {}
    for start, end, name, blazer in VENDOR_FIELDS:
        value = text[start:end + 1].strip("# ")
        if value and value.isprintable():
            values[blazer if blazer_names else name] = value
    if "ups.firmware" not in values:
        return NoData("vendor reply without a firmware version")
    return values


def parse_protocol(text: str) -> str | NoData:
    """The M reply of Voltronic-QS units: ``V`` or ``H`` -> ``ups.firmware.aux`` ``PM-V``."""
    if text.strip().upper() in ("V", "H"):
        return f"PM-{text.strip()}"
    return NoData(f"protocol {text!r} is not V or H")


# -- commands ----------------------------------------------------------------------------


def effective_offdelay(seconds: int) -> int:
    """The shutdown delay the UPS really uses: multiples of 6 s below 60 s, else of 60 s."""
    return seconds - seconds % 6 if seconds < 60 else seconds - seconds % 60


def effective_ondelay(seconds: int) -> int:
    """The restart delay the UPS really uses: whole minutes."""
    return seconds - seconds % 60


def _offdelay_code(offdelay: int) -> str:
    return f".{offdelay // 6}" if offdelay < 60 else f"{offdelay // 60:02d}"


def shutdown_return(offdelay: int, ondelay: int) -> str:
    """``S<n>R<m>`` (``S<n>`` when the restart delay is under a minute: on with mains)."""
    minutes = ondelay // 60
    if minutes <= 0:
        return f"S{_offdelay_code(offdelay)}\r"
    return f"S{_offdelay_code(offdelay)}R{minutes:04d}\r"


def shutdown_stayoff(offdelay: int) -> str:
    """``S<n>R0000``: output off after the delay, and it stays off."""
    return f"S{_offdelay_code(offdelay)}R0000\r"


def battery_test(minutes: int) -> str:
    """``T<nn>``: a battery test of ``minutes`` (1..99)."""
    return f"T{minutes:02d}\r"


@dataclass(frozen=True)
class Outcome:
    """What the reply to an instant command says: taken or not, and why."""

    ok: bool
    why: str


def command_outcome(command: str, raw: bytes | None) -> Outcome:
    """Units that act answer nothing (classic) or ``(ACK`` (newer); anything else failed."""
    text = "" if raw is None else raw.decode("latin-1").split(CR)[0].strip("\x00 ")
    if not text:
        return Outcome(True, "no reply (the UPS acts without answering)")
    if text.upper() in ACCEPTED:
        return Outcome(True, f"acknowledged ({text})")
    if text.upper() == command.rstrip(CR).upper():
        return Outcome(False, "the UPS echoed the command back (not supported)")
    return Outcome(False, f"the UPS answered {text!r}")
