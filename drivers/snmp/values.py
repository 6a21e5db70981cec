# -*- test-case-name: tests.test_snmp_mibs -*-
"""SNMP values as plain Python, OIDs, and snmpsim's ``.snmprec`` walk files.

The pure parts of the driver never see pysnmp objects: the I/O shell converts what a card
answers into these types, and a recorded walk parses into the same ones, so the decoding is
the same code for a live card and for ``upsagent decode snmp``.

* INTEGER, Counter32, Gauge32, Unsigned32, Counter64: ``int``;
* TimeTicks: :class:`TimeTicks` (an ``int`` in hundredths of a second);
* OCTET STRING, Opaque: ``bytes``; IpAddress: ``str`` (dotted quad);
* OBJECT IDENTIFIER: :class:`ObjectId`;
* NULL: ``None``.  An OID the card does not have (noSuchObject, noSuchInstance,
  endOfMibView, v1's noSuchName) is simply absent from the mapping.

``.snmprec`` lines are ``OID|TAG|VALUE`` with the tags of snmpsim's data files: 2 Integer32,
4 OCTET STRING (``4x`` hex), 5 NULL, 6 OBJECT IDENTIFIER, 64 IpAddress, 65 Counter32,
66 Gauge32, 67 TimeTicks, 68 Opaque, 70 Counter64 (an ``x`` suffix means the value is hex;
variation modules after a ``:`` are ignored).
"""

from __future__ import annotations

from typing import Iterable, Mapping, Union

__all__ = ["Oid", "ObjectId", "SnmpValue", "TimeTicks", "WalkError", "format_oid",
           "parse_oid", "parse_snmprec", "parse_snmpwalk", "parse_walk", "render_string"]

#: an OID as a tuple of sub-identifiers
Oid = tuple[int, ...]


class TimeTicks(int):
    """A TimeTicks value: hundredths of a second."""


class ObjectId(tuple[int, ...]):
    """An OBJECT IDENTIFIER value (as opposed to an OID used as a name)."""

    def __str__(self) -> str:
        return format_oid(self)


SnmpValue = Union[int, bytes, str, ObjectId, None]


class WalkError(ValueError):
    """A line of a walk file that cannot be read (names the line)."""


def parse_oid(text: str) -> Oid:
    """``"1.3.6.1.2.1.1.2.0"`` (a leading dot allowed) as a tuple of ints."""
    text = text.strip()
    if text.startswith("."):
        text = text[1:]
    if not text:
        raise ValueError("empty OID")
    parts = tuple(int(part) for part in text.split("."))
    if any(part < 0 for part in parts):
        raise ValueError(f"negative sub-identifier in {text!r}")
    return parts


def format_oid(oid: Iterable[int]) -> str:
    """The dotted form without a leading dot."""
    return ".".join(str(part) for part in oid)


def render_string(raw: bytes) -> str | None:
    """An OCTET STRING as NUT shows it: text, or ``XX XX ...`` hex if not printable.

    Trailing NUL bytes (padding some cards send) are dropped first; ``None`` for a string
    that is empty after that (NUT would publish an empty value; we leave it out).
    """
    raw = raw.rstrip(b"\x00")
    if not raw:
        return None
    if all(32 <= byte < 127 or byte in (9, 10, 13) for byte in raw):
        return raw.decode("ascii").strip() or None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return " ".join(f"{byte:02X}" for byte in raw)
    return text.strip() if text.isprintable() and text.strip() else " ".join(
        f"{byte:02X}" for byte in raw)


_INTEGER_TAGS = {"2", "65", "66", "70"}


def parse_snmprec(text: str, source: str = "walk") -> dict[Oid, SnmpValue]:
    """The OIDs and values of a ``.snmprec`` text (``#`` lines and blank lines skipped)."""
    out: dict[Oid, SnmpValue] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split("|", 2)
        if len(parts) != 3:
            raise WalkError(f"{source} line {number}: expected OID|TYPE|VALUE, got {line!r}")
        oid_text, tag, value = parts
        tag = tag.split(":", 1)[0].strip()
        hexed = tag.endswith("x")
        tag = tag.rstrip("x")
        try:
            oid = parse_oid(oid_text)
            out[oid] = _value(tag, value, hexed)
        except ValueError as exc:
            raise WalkError(f"{source} line {number}: {exc}") from None
    return out


def _value(tag: str, value: str, hexed: bool) -> SnmpValue:
    raw = bytes.fromhex(value) if hexed else value.encode("utf-8", "surrogateescape")
    if tag in _INTEGER_TAGS:
        return int.from_bytes(raw, "big", signed=tag == "2") if hexed else int(value)
    if tag == "67":
        return TimeTicks(int.from_bytes(raw, "big") if hexed else int(value))
    if tag in ("4", "68"):
        return raw
    if tag == "5":
        return None
    if tag == "6":
        return ObjectId(parse_oid(raw.decode()))
    if tag == "64":
        if hexed:
            return ".".join(str(byte) for byte in raw)
        return ".".join(str(int(part)) for part in value.split("."))
    raise ValueError(f"unknown snmprec type tag {tag!r}")


def lookup(values: Mapping[Oid, SnmpValue], oid: Oid) -> tuple[bool, SnmpValue]:
    """(present, value) for ``oid`` in ``values``."""
    if oid in values:
        return True, values[oid]
    return False, None


_WALK_TYPES = {"INTEGER": 2, "Gauge32": 2, "Counter32": 2, "Counter64": 2, "Unsigned32": 2,
               "UInteger32": 2}


def parse_snmpwalk(text: str, source: str = "walk") -> dict[Oid, SnmpValue]:
    """net-snmp's ``snmpwalk -On`` output (``.1.3.6... = TYPE: value``) as values.

    Handled: INTEGER (``name(3)`` forms too), Gauge32, Counter32/64, Timeticks
    (``(12345) ...``), STRING (quotes removed), Hex-STRING, OID, IpAddress, NULL and the
    "No Such ..." lines (left out).  A value over several lines (long strings) is joined.
    """
    out: dict[Oid, SnmpValue] = {}
    entries: list[tuple[int, str, str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        head, sep, rest = line.partition(" = ")
        if sep and head.strip().lstrip(".").replace(".", "").isdigit():
            entries.append((number, head.strip(), rest))
        elif entries:  # continuation of a multi-line value
            first, oid_text, value = entries[-1]
            entries[-1] = (first, oid_text, value + "\n" + line)
        else:
            raise WalkError(f"{source} line {number}: expected '.OID = TYPE: value' "
                            "(snmpwalk -On)")
    for number, oid_text, rest in entries:
        try:
            oid = parse_oid(oid_text)
            kind, _, value = rest.partition(": ")
            kind = kind.strip()
            if rest.startswith(("No Such", "No more variables")):
                continue
            if rest.strip() in ('""', "NULL"):
                out[oid] = b"" if rest.strip() == '""' else None
            elif kind in _WALK_TYPES:
                digits = value.strip()
                if digits.endswith(")") and "(" in digits:
                    digits = digits[digits.rindex("(") + 1:-1]
                out[oid] = int(digits.split()[0])
            elif kind == "Timeticks":
                out[oid] = TimeTicks(int(value[value.index("(") + 1:value.index(")")]))
            elif kind == "STRING":
                text_value = value.strip()
                if len(text_value) >= 2 and text_value[0] == text_value[-1] == '"':
                    text_value = text_value[1:-1]
                out[oid] = text_value.encode("utf-8")
            elif kind == "Hex-STRING":
                out[oid] = bytes.fromhex(value)
            elif kind == "OID":
                out[oid] = ObjectId(parse_oid(value.strip()))
            elif kind == "IpAddress":
                out[oid] = value.strip()
            else:
                raise ValueError(f"unknown type {kind!r}")
        except ValueError as exc:
            raise WalkError(f"{source} line {number}: {exc}") from None
    return out


def parse_walk(text: str, source: str = "walk") -> dict[Oid, SnmpValue]:
    """A walk in snmprec (``OID|TYPE|VALUE``) or ``snmpwalk -On`` form, told by its lines."""
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            if " = " in line and "|" not in line.split(" = ", 1)[0]:
                return parse_snmpwalk(text, source)
            break
    return parse_snmprec(text, source)
