# -*- test-case-name: tests.test_snmp_mibs -*-
"""MIB mapping tables as data, and the decoding core (values in, NUT variables out).

A :class:`Mib` is what NUT's ``mib2nut_info_t`` and its ``snmp_info_t`` table are
(``drivers/snmp-ups.h``), said as data we can test:

* :class:`Var`: one NUT variable from one OID: scale, text or number, value map, flags
  (static, invalid if negative or zero, only with 1 or 3 phases), and how a SET writes it;
* :class:`StatusRule`: an OID whose value maps to ``ups.status`` words (and ``ups.alarm``
  texts): output source, battery status, calibration, replace battery ...;
* :class:`AlarmTable`: a table whose rows name well-known alarm OIDs (RFC 1628's
  ``upsAlarmTable``, XUPS's ``xupsAlarmTable``), each alarm mapped to a status word and/or
  an alarm text;
* :class:`Command`: an instant command as one or more SETs.

:func:`decode` is pure: given the values a card answered (a mapping OID -> value, see
:mod:`.values`) it returns a :class:`Reading`.  The rules, taken from NUT's ``su_ups_get``
and ``su_setinfo`` (``drivers/snmp-ups.c``) unless said otherwise:

* Several :class:`Var` may name the same variable: the **first** one (in table order) that
  gives a valid value wins (NUT's ``SU_FLAG_UNIQUE`` intent, applied to every variable).
* Numbers are ``raw * scale`` (TimeTicks first turned into whole seconds), printed as NUT
  2.8.0 does: an integer when the product is whole, else two decimals (``25.60``).
* Left out, never published as numbers: OIDs the card does not have, NULL, empty strings,
  **-1** (what cards answer for "unsupported"; NUT 2.8.0 publishes ``-1`` where a table
  lacks ``SU_FLAG_NEGINVALID``), any negative value of a ``neg_invalid`` variable, zero for
  ``zero_invalid``, and integers a value map does not know.  ``signed`` variables
  (temperatures, timers) keep -1.
* ``text`` variables print an integer as it is (NUT's ``ST_FLAG_STRING`` rows) without scale.
* Phase-specific rows (``phases="input3"`` ...) are published only when the UPS has that
  many lines; the line count is the table's ``<kind>.phases`` variable, else 1.  Like NUT
  we publish the count we assumed as ``<kind>.phases``, but only when a row of that kind
  gave a value (NUT publishes it as soon as it looks at such a row).
* Status words are collected in table order, duplicates dropped; with any alarm text the
  status starts with ``ALARM`` and ``ups.alarm`` lists the texts (NUT's ``status_commit``,
  ``alarm_commit`` in ``drivers/dstate.c``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from upsagent.drivers.snmp.values import ObjectId, Oid, SnmpValue, TimeTicks, parse_oid, \
    render_string

__all__ = ["AlarmTable", "Command", "Mib", "Reading", "Set", "StatusRule", "Var", "decode",
           "format_number", "publication", "to_int"]

#: phase selectors: kind and line count
PHASE_KINDS = {"input": "input", "output": "output", "bypass": "input.bypass"}


@dataclass(frozen=True)
class Var:
    """One NUT variable read from one OID (or a constant, with ``oid=None``)."""

    name: str
    oid: str | None
    scale: float = 1.0
    #: published as text: integers as they are, no scale (NUT's ST_FLAG_STRING)
    text: bool = False
    #: raw integer -> published value; unknown integers leave the variable out
    lookup: Mapping[int, str] | None = None
    #: the value of a constant (``oid=None``)
    default: str | None = None
    #: read once, at the first poll (identity, ratings)
    static: bool = False
    neg_invalid: bool = False
    zero_invalid: bool = False
    #: -1 is a real value here (temperatures, countdown timers)
    signed: bool = False
    #: only with this many lines: "input1", "input3", "output1", "output3", "bypass1" ...
    phases: str | None = None
    #: how a SET writes it: "int", "time" (seconds sent as TimeTicks), "str"; None: read-only
    set_as: str | None = None
    #: STRING:n length for a writable text variable
    string_len: int | None = None

    @property
    def oid_tuple(self) -> Oid | None:
        return None if self.oid is None else parse_oid(self.oid)


@dataclass(frozen=True)
class StatusRule:
    """An OID whose integer value gives ``ups.status`` words and/or ``ups.alarm`` texts."""

    oid: str
    words: Mapping[int, str]
    alarms: Mapping[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AlarmTable:
    """A table whose ``column`` holds well-known alarm OIDs, one row per active alarm."""

    #: the OID of the column whose values are the alarm OIDs (walked with GETNEXT/GETBULK)
    column: str
    #: alarm OID -> (status word or None, alarm text or None)
    alarms: Mapping[str, tuple[str | None, str | None]]
    #: the number of active alarms (the walk is skipped when it answers 0)
    count: str | None = None


@dataclass(frozen=True)
class Set:
    """One SET of a command: ``value`` an int, ``"oid:1.3..."`` an OID, or None: the
    command's argument (or the delay option named by ``delay``)."""

    oid: str
    value: int | str | None
    set_as: str = "int"
    #: with value None and no argument: the ``ondelay``/``offdelay`` option's seconds
    delay: str | None = None


@dataclass(frozen=True)
class Command:
    """An instant command: its SETs in order; listed when every SET's OID exists."""

    name: str
    sets: tuple[Set, ...]


@dataclass(frozen=True)
class Mib:
    """A MIB mapping table (NUT's ``mib2nut_info_t``)."""

    #: the name ``mibs=`` selects (NUT's), and other names accepted for it
    name: str
    version: str
    #: sysObjectID values (exact) or prefixes ending in "." that select this MIB
    sysoids: tuple[str, ...]
    #: OIDs whose presence confirms the MIB (any one answering is enough)
    probes: tuple[str, ...]
    variables: tuple[Var, ...]
    status: tuple[StatusRule, ...] = ()
    alarm_tables: tuple[AlarmTable, ...] = ()
    commands: tuple[Command, ...] = ()
    aliases: tuple[str, ...] = ()
    #: what ``ups.mfr`` says when the table has no OID for it
    description: str = ""
    #: kind -> (column OID prefix): the line count is 3 when line 3 exists there, else 1
    infer_phases: Mapping[str, str] = field(default_factory=dict)
    #: instant commands ``killpower`` tries, in order
    killpower: tuple[str, ...] = ("shutdown.return",)

    def scalar_oids(self, static: bool | None = None) -> list[Oid]:
        """Every OID the table GETs (``static``: only static ones / only dynamic ones)."""
        oids: list[Oid] = []
        for var in self.variables:
            oid = var.oid_tuple
            if oid is not None and (static is None or var.static == static):
                oids.append(oid)
        if static is not True:
            oids += [parse_oid(rule.oid) for rule in self.status]
            oids += [parse_oid(t.count) for t in self.alarm_tables if t.count is not None]
            oids += [parse_oid(prefix) + (3,) for prefix in self.infer_phases.values()]
        return list(dict.fromkeys(oids))

    def command_oids(self) -> list[Oid]:
        """The OIDs whose presence lists a command."""
        return list(dict.fromkeys(parse_oid(step.oid) for cmd in self.commands
                                  for step in cmd.sets))

    def var(self, name: str) -> Var | None:
        """The first writable row for ``name`` (SET targets), else the first row."""
        rows = [var for var in self.variables if var.name == name]
        for var in rows:
            if var.set_as is not None:
                return var
        return rows[0] if rows else None


@dataclass
class Published:
    """A published variable: its value and the row it came from."""

    value: str
    var: Var | None = None


@dataclass
class Reading:
    """What a card's values mean: variables, status words, alarm texts, commands."""

    variables: dict[str, Published] = field(default_factory=dict)
    status: list[str] = field(default_factory=list)
    alarms: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    #: the variables' rows by name (for SET, enums and types)
    rows: dict[str, Var] = field(default_factory=dict)

    def items(self) -> list[tuple[str, str]]:
        """Every published (name, value), ``ups.status`` and ``ups.alarm`` included."""
        out = [(name, pub.value) for name, pub in self.variables.items()]
        status = self.status_text()
        if status:
            out.append(("ups.status", status))
        if self.alarms:
            out.append(("ups.alarm", " ".join(self.alarms)))
        return out

    def status_text(self) -> str:
        """``ups.status`` as NUT commits it (``ALARM`` first when an alarm is active)."""
        words = (["ALARM"] if self.alarms else []) + self.status
        return " ".join(words)


def to_int(value: SnmpValue) -> int | None:
    """An SNMP value as NUT's ``nut_snmp_get_int`` reads it, or None if it cannot."""
    if isinstance(value, TimeTicks):
        return int(value) // 100
    if isinstance(value, ObjectId):
        return value[-1] if value else None
    if isinstance(value, int):
        return value
    if isinstance(value, bytes):
        text = value.decode("ascii", "replace").strip()
        try:
            return int(float(text))
        except ValueError:
            return None
    return None


def format_number(value: float) -> str:
    """NUT 2.8.0's number format: whole numbers without decimals, else ``%.2f``."""
    if abs(value - round(value)) < 1e-9:
        return str(int(round(value)))
    return f"{value:.2f}"


def _text(value: SnmpValue, var: Var) -> str | None:
    """A value as text (strings, OIDs, IP addresses, integers as they are)."""
    if isinstance(value, bytes):
        return render_string(value)
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, str):
        return value or None
    number = to_int(value)
    if number is None or _invalid(number, var):
        return None
    return str(number)


def _invalid(number: float, var: Var) -> bool:
    return ((number == -1 and not var.signed) or (var.neg_invalid and number < 0)
            or (var.zero_invalid and number == 0))


def value_of(var: Var, values: Mapping[Oid, SnmpValue]) -> str | None:
    """What ``var`` publishes from ``values`` (None: nothing valid)."""
    if var.oid is None:
        return var.default
    oid = parse_oid(var.oid)
    if oid not in values:
        return None
    raw = values[oid]
    if raw is None:
        return None
    if var.lookup is not None:
        number = to_int(raw)
        if number is None or _invalid(number, var):
            return None
        return var.lookup.get(number) or None
    if var.text or isinstance(raw, (bytes, ObjectId, str)):
        if isinstance(raw, bytes) and not var.text:
            number = to_int(raw)
            return None if number is None or _invalid(number, var) else format_number(
                number * var.scale)
        return _text(raw, var)
    number = to_int(raw)
    if number is None or _invalid(number, var):
        return None
    return format_number(number * var.scale)


def phase_counts(mib: Mib, values: Mapping[Oid, SnmpValue]) -> dict[str, int]:
    """The line count of each kind (input, output, bypass): the table's, else 1."""
    counts: dict[str, int] = {}
    for kind, prefix in PHASE_KINDS.items():
        found: int | None = None
        for var in mib.variables:
            if var.name == f"{prefix}.phases" and var.oid is not None:
                number = to_int(values.get(parse_oid(var.oid)))
                if number is not None and number > 0:
                    found = number
                    break
        if found is None and kind in mib.infer_phases:
            found = 3 if parse_oid(mib.infer_phases[kind]) + (3,) in values else 1
        counts[kind] = found or 1
    return counts


def decode(mib: Mib, values: Mapping[Oid, SnmpValue],
           walked: Mapping[str, list[SnmpValue]] | None = None) -> Reading:
    """What the driver publishes from ``values`` (and the alarm columns in ``walked``).

    ``walked`` maps an :class:`AlarmTable`'s column OID to the values found under it.
    """
    reading = Reading()
    counts = phase_counts(mib, values)
    used_phases: set[str] = set()
    for var in mib.variables:
        if var.name in reading.variables:
            continue
        if var.phases is not None:
            kind, lines = var.phases[:-1], int(var.phases[-1])
            if counts[kind] != lines:
                continue
        value = value_of(var, values)
        if value is not None:
            reading.variables[var.name] = Published(value, var)
            reading.rows.setdefault(var.name, var)
            if var.phases is not None:
                used_phases.add(var.phases[:-1])
    for kind in sorted(used_phases):
        name = f"{PHASE_KINDS[kind]}.phases"
        reading.variables.setdefault(name, Published(str(counts[kind])))
    for var in mib.variables:  # SET targets known even when the card had no value
        if var.set_as is not None:
            reading.rows.setdefault(var.name, var)
    for rule in mib.status:
        number = to_int(values.get(parse_oid(rule.oid)))
        if number is None:
            continue
        for word in rule.words.get(number, "").split():
            if word not in reading.status:
                reading.status.append(word)
        text = rule.alarms.get(number)
        if text and text not in reading.alarms:
            reading.alarms.append(text)
    for table in mib.alarm_tables:
        for raw in (walked or {}).get(table.column, []):
            if not isinstance(raw, ObjectId):
                continue
            status_word, alarm = table.alarms.get(str(raw), (None, None))
            if status_word and status_word not in reading.status:
                reading.status.append(status_word)
            if alarm and alarm not in reading.alarms:
                reading.alarms.append(alarm)
    for command in mib.commands:
        if (all(parse_oid(step.oid) in values for step in command.sets)
                and command.name not in reading.commands):
            reading.commands.append(command.name)
    return reading


#: what NUT's driver core copies from ups.* (drivers/main.c)
DEVICE_COPIES = (("ups.mfr", "device.mfr"), ("ups.model", "device.model"),
                 ("ups.serial", "device.serial"))


def publication(reading: Reading) -> dict[str, str]:
    """Everything the driver publishes for a reading but ``driver.*``: the table's
    variables, ``ups.status``/``ups.alarm``, the ``device.*`` copies and ``device.type``."""
    published = dict(reading.items())
    for source, copy in DEVICE_COPIES:
        if source in published:
            published[copy] = published[source]
    published.setdefault("device.type", "ups")
    return published
