# -*- test-case-name: tests.test_usbhid_decode -*-
"""From a field's logical value to the text NUT publishes, and back; pure.

Two steps, as NUT's ``libhid.c`` and ``usbhid-ups.c`` do them:

1. **Physical value** (:func:`physical`): the logical value scaled into the physical range
   when the descriptor gives one (both ends, not both 0), then multiplied by
   ``10 ** (unit exponent - the unit's implied exponent)``.  HID units are CGS, so a volt
   (unit 0x00F0D121) or a watt/VA (0x0000D121) carries an implied 10^7; the others used by
   UPSes (ampere, second, kelvin, hertz, ampere-second, none) carry none.  An unknown unit
   applies the exponent alone.  The power of ten is computed by repeated multiplication,
   as NUT's ``exponent()`` does, so that rounding at the last digit is the same.
2. **Text** (a :class:`Conversion` named in the table, or a printf format such as
   ``%.1f``): lookup tables (``beeper``: 1 disabled, 2 enabled, 3 muted), dates packed the
   HID way or APC's way, kelvin to Celsius, string descriptor indexes, and the status words
   of the ``BOOL`` rows (``online``/``offline``, ``!chrg``...).  A conversion may return
   None: the value is then not published (and a later alternative may be tried).

Writing goes back through the same two steps (:func:`logical`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol

from upsagent.drivers.usbhid.hidparser import Field

__all__ = ["CONVERSIONS", "Context", "Conversion", "flag", "format_value", "logical",
           "lookup", "physical", "unit_exponent"]

#: HID unit code -> the power of ten it implies (NUT's HIDUnits table)
IMPLIED_EXPONENT = {0x00000000: 0, 0x00F0D121: 7, 0x00100001: 0, 0x0000D121: 7,
                    0x00001001: 0, 0x00010001: 0, 0x0000F001: 0, 0x00101001: 0}


class Context(Protocol):
    """What a conversion may look at: the decoder's state (see decoder.HidState)."""

    values: dict[str, str]
    status: set[str]
    state: dict[str, Any]
    options: Mapping[str, str]
    flags: set[str]
    vendor_id: int
    product_id: int

    def string(self, index: int) -> str | None: ...


Reader = Callable[[float, Context], "str | None"]
Writer = Callable[[str, Context], "float | None"]


@dataclass(frozen=True)
class Conversion:
    """How a value becomes text (``read``) and text a value (``write``, if writable)."""

    read: Reader
    write: Writer | None = None
    #: (value, text) pairs of a lookup table: what ENUM lists for a writable variable
    choices: tuple[tuple[int, str], ...] = ()


def unit_exponent(item: Field) -> int:
    """The field's exponent after taking out the unit's implied power of ten."""
    return item.unit_exponent - IMPLIED_EXPONENT.get(item.unit, 0)


def _power(exponent: int) -> float:
    """10 ** exponent by NUT's recursion (a * a ... or (1/a) * (1/a) ...)."""
    result = 1.0
    if exponent > 0:
        for _ in range(exponent):
            result = 10.0 * result
    else:
        for _ in range(-exponent):
            result = (1 / 10.0) * result
    return result


def _has_physical(item: Field) -> bool:
    return (item.physical_min is not None and item.physical_max is not None
            and not (item.physical_min == 0 and item.physical_max == 0))


def physical(item: Field, value: int) -> float:
    """NUT's logical_to_physical() then the unit exponent."""
    result = float(value)
    pmin, pmax = item.physical_min, item.physical_max
    if _has_physical(item) and pmin is not None and pmax is not None \
            and pmax > pmin and item.logical_max > item.logical_min:
        factor = (pmax - pmin) / (item.logical_max - item.logical_min)
        result = min(max((value - item.logical_min) * factor + pmin, pmin), pmax)
    return result * _power(unit_exponent(item))


def logical(item: Field, value: float) -> int:
    """NUT's physical_to_logical() after taking the unit exponent out (for writes)."""
    value = value / _power(unit_exponent(item))
    pmin, pmax = item.physical_min, item.physical_max
    if _has_physical(item) and pmin is not None and pmax is not None \
            and pmax > pmin and item.logical_max > item.logical_min:
        factor = (item.logical_max - item.logical_min) / (pmax - pmin)
        result = int((value - pmin) * factor) + item.logical_min
        return min(max(result, item.logical_min), item.logical_max)
    if math.isnan(value) or math.isinf(value):
        return 0
    return int(value)


def format_value(fmt: str, value: float) -> str:
    """A printf float format (``%.0f``, ``%.1f``, ``%.2f``) applied as C applies it."""
    try:
        return fmt % value
    except (TypeError, ValueError):
        return "%f" % value


# -- conversions -------------------------------------------------------------------------


def lookup(table: Mapping[int, str]) -> Conversion:
    """A lookup table: value (truncated to an integer) -> text, and back."""
    items = tuple(table.items())
    reverse = {text: value for value, text in reversed(items)}

    def read(value: float, ctx: Context) -> str | None:
        if math.isnan(value) or math.isinf(value):
            return None
        return table.get(int(value))

    def write(text: str, ctx: Context) -> float | None:
        found = reverse.get(text)
        return None if found is None else float(found)

    return Conversion(read, write, items)


def flag(word: str) -> Conversion:
    """A status bit: 1 -> ``word``, 0 -> ``!word`` (NUT's *_info tables)."""
    return lookup({1: word, 0: f"!{word}"})


def _date(value: float, ctx: Context) -> str | None:
    """HID packed date: (year - 1980) * 512 + month * 32 + day."""
    number = _long(value)
    if number == 0:
        return "not set"
    return f"{1980 + (number >> 9):04d}/{(number >> 5) & 0x0F:02d}/{number & 0x1F:02d}"


def _date_back(text: str, ctx: Context) -> float | None:
    try:
        year, month, day = (int(part) for part in text.split("/"))
    except ValueError:
        return None
    if year - 1980 > 127 or month > 12 or day > 31:
        return 0.0
    return float(((year - 1980) << 9) + (month << 5) + day)


def _long(value: float) -> int:
    return 0 if math.isnan(value) or math.isinf(value) else int(value)


def _kelvin(value: float, ctx: Context) -> str | None:
    """Kelvin to Celsius, unless the value already looks like Celsius (some HP units)."""
    return f"{value - 273.15:.1f}" if 273 <= value <= 373 else f"{value:.1f}"


def _stringid(value: float, ctx: Context) -> str | None:
    """A USB string descriptor index: the string (None if it cannot be read)."""
    return ctx.string(_long(value))


def _hex(value: float, ctx: Context) -> str | None:
    return f"{_long(value) & 0xFFFFFFFFFFFFFFFF:08x}"


def _scaled(factor: float) -> Reader:
    def read(value: float, ctx: Context) -> str | None:
        return f"{value * factor:.1f}"
    return read


STATUS_WORDS = ("dischrg", "chrg", "lowbatt", "overload", "replacebatt", "trim", "boost",
                "bypassauto", "bypassman", "cal", "fanfail", "shutdownimm", "overheat",
                "awaitingpower", "commfault", "timelimitexp", "battvoltlo", "battvolthi",
                "chargerfail", "depleted", "vrange", "frange")

#: the conversions every table may name (vendors add theirs)
CONVERSIONS: dict[str, Conversion] = {
    **{word: flag(word) for word in STATUS_WORDS},
    "online": lookup({1: "online", 0: "offline"}),
    "off": lookup({0: "off", 1: "!off"}),                  # Good / Present: inverted
    "nobattery": lookup({1: "!nobattery", 0: "nobattery"}),  # BatteryPresent: inverted
    "fullycharged": lookup({1: "fullycharged", 0: "notfullycharged"}),
    "ecomode": lookup({0: "normal", 1: "ecomode", 2: "essmode"}),
    "test_read": lookup({1: "Done and passed", 2: "Done and warning", 3: "Done and error",
                         4: "Aborted", 5: "In progress", 6: "No test initiated",
                         7: "Test scheduled"}),
    "test_write": lookup({0: "No test", 1: "Quick test", 2: "Deep test", 3: "Abort test"}),
    "beeper": lookup({1: "disabled", 2: "enabled", 3: "muted"}),
    "yes_no": lookup({0: "no", 1: "yes"}),
    "on_off": lookup({0: "off", 1: "on"}),
    "date": Conversion(_date, _date_back),
    "hex": Conversion(_hex),
    "stringid": Conversion(_stringid),
    "div10": Conversion(_scaled(0.1)),
    "div100": Conversion(_scaled(0.01)),
    "kelvin": Conversion(_kelvin),
}
