# -*- test-case-name: tests.test_model -*-
"""One UPS as data: the state tree a driver publishes and the server reads.

This is upsagent's in-process version of NUT's driver state (``dstate``): variables with
their flags (writable, string length, enum values, ranges), the instant commands the device
offers, and whether the data can be trusted right now.

Availability follows NUT's discipline (``docs/new-drivers.txt``):

* a UPS whose driver has never had data is ``NOT_CONNECTED`` (the server answers
  ``ERR DRIVER-NOT-CONNECTED``);
* a driver that had data and lost contact calls :meth:`UPS.data_stale`; the UPS is
  ``STALE`` (``ERR DATA-STALE``) until the driver calls :meth:`UPS.data_ok` after a fully
  successful read.  Values are never served while stale, so an old value can never be
  mistaken for a current one.

Names are matched case-insensitively (as upsd does) but kept in the spelling the driver
used.  Observers are told of changes once per :meth:`UPS.commit` (or ``data_ok``), never in
the middle of a driver update.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Callable, Iterable

__all__ = ["Availability", "Change", "UPS", "Variable"]


class Availability(enum.Enum):
    """Whether a UPS's data may be served."""

    NOT_CONNECTED = "DRIVER-NOT-CONNECTED"
    STALE = "DATA-STALE"
    OK = "OK"


@dataclass
class Variable:
    """One variable: its value and the flags ``GET TYPE`` reports."""

    name: str
    value: str
    writable: bool = False
    #: maximum length for a string variable (``STRING:n``); ``None`` means NUMBER.
    string_len: int | None = None
    enum: list[str] = field(default_factory=list)
    ranges: list[tuple[int, int]] = field(default_factory=list)

    def type_words(self) -> list[str]:
        """The words of a ``TYPE`` reply after the names, in NUT's order."""
        words = []
        if self.writable:
            words.append("RW")
        if self.enum:
            words.append("ENUM")
        if self.ranges:
            words.append("RANGE")
        words.append("NUMBER" if self.string_len is None else f"STRING:{self.string_len}")
        return words


@dataclass(frozen=True)
class Change:
    """What one commit changed, handed to observers."""

    ups: "UPS"
    variables: frozenset[str]
    availability_changed: bool


Observer = Callable[[Change], None]


class UPS:
    """The published state of one UPS."""

    def __init__(self, name: str, desc: str | None = None) -> None:
        self.name = name
        self.desc = desc
        self._vars: dict[str, Variable] = {}
        self._cmds: dict[str, str] = {}
        self._availability = Availability.NOT_CONNECTED
        self._dirty: set[str] = set()
        self._availability_dirty = False
        self._observers: list[Observer] = []
        #: why the UPS is not available, for logs and ``check`` output
        self.reason = "driver has not reported yet"
        #: how many successful reads the driver reported (the master's MAXAGE watchdog
        #: notices a driver that stopped reporting)
        self.updates = 0
        #: bumped whenever a variable appears, changes value or goes away (lets readers
        #: cache what they render from names and values, e.g. LIST VAR)
        self.version = 0

    # -- reading ---------------------------------------------------------------------

    @property
    def availability(self) -> Availability:
        return self._availability

    def get(self, name: str) -> Variable | None:
        """The variable called ``name`` (any case), or None."""
        return self._vars.get(name.lower())

    def value(self, name: str) -> str | None:
        var = self._vars.get(name.lower())
        return None if var is None else var.value

    def variables(self) -> list[Variable]:
        """All variables sorted by case-insensitive name, as upsd's tree keeps them."""
        return [self._vars[k] for k in sorted(self._vars)]

    def commands(self) -> list[str]:
        """Instant commands in the order the driver added them."""
        return list(self._cmds.values())

    def has_command(self, name: str) -> bool:
        return name.lower() in self._cmds

    @property
    def status(self) -> list[str]:
        """The words of ``ups.status`` (empty when unknown)."""
        return (self.value("ups.status") or "").split()

    # -- publishing (drivers) --------------------------------------------------------

    def set(self, name: str, value: str, *, writable: bool | None = None,
            string_len: int | None = None) -> None:
        """Set a variable, creating it if needed; flags given here replace the old ones."""
        key = name.lower()
        var = self._vars.get(key)
        if var is None:
            var = self._vars[key] = Variable(name, value)
            self._dirty.add(name)
            self.version += 1
        elif var.value != value:
            var.value = value
            self._dirty.add(var.name)
            self.version += 1
        if writable is not None:
            var.writable = writable
        if string_len is not None:
            var.string_len = string_len

    def delete(self, name: str) -> None:
        var = self._vars.pop(name.lower(), None)
        if var is not None:
            self._dirty.add(var.name)
            self.version += 1

    def set_status(self, words: Iterable[str]) -> None:
        """Replace ``ups.status`` with these words (NUT's status_init/set/commit)."""
        self.set("ups.status", " ".join(words))

    def add_enum(self, name: str, value: str) -> None:
        var = self._vars.get(name.lower())
        if var is not None and value not in var.enum:
            var.enum.append(value)

    def add_range(self, name: str, low: int, high: int) -> None:
        var = self._vars.get(name.lower())
        if var is not None and (low, high) not in var.ranges:
            var.ranges.append((low, high))

    def add_command(self, name: str) -> None:
        self._cmds.setdefault(name.lower(), name)

    def remove_command(self, name: str) -> None:
        self._cmds.pop(name.lower(), None)

    def clear(self) -> None:
        """Forget every variable and command (a driver starting over)."""
        self._dirty.update(v.name for v in self._vars.values())
        self._vars.clear()
        self.version += 1
        self._cmds.clear()

    def data_ok(self) -> None:
        """The last read succeeded completely: the data may be served; commit changes.

        Drivers call it after every fully successful poll, even when nothing changed: that
        is what tells the master's MAXAGE watchdog the driver is alive.
        """
        self.updates += 1
        self._set_availability(Availability.OK, "")
        self.commit()

    def data_stale(self, reason: str, *, connected: bool = False) -> None:
        """Contact with the device is lost: stop serving values until ``data_ok``.

        A UPS that is not connected stays so (its driver never had data), unless
        ``connected``: the driver is there and says itself that its data is stale (a NUT
        driver's ``DATASTALE`` in its dump), which upsd reports as ``DATA-STALE``.
        """
        if self._availability is Availability.NOT_CONNECTED and not connected:
            self.reason = reason
            return
        self._set_availability(Availability.STALE, reason)
        self.commit()

    def disconnected(self, reason: str) -> None:
        """The driver is gone (or never started): ``DRIVER-NOT-CONNECTED``."""
        self._set_availability(Availability.NOT_CONNECTED, reason)
        self.commit()

    def _set_availability(self, availability: Availability, reason: str) -> None:
        self.reason = reason
        if availability is not self._availability:
            self._availability = availability
            self._availability_dirty = True

    # -- observing -------------------------------------------------------------------

    def add_observer(self, observer: Observer) -> None:
        self._observers.append(observer)

    def remove_observer(self, observer: Observer) -> None:
        if observer in self._observers:
            self._observers.remove(observer)

    def commit(self) -> None:
        """Tell observers what changed since the last commit (if anything did)."""
        if not self._dirty and not self._availability_dirty:
            return
        change = Change(self, frozenset(self._dirty), self._availability_dirty)
        self._dirty = set()
        self._availability_dirty = False
        for observer in list(self._observers):
            observer(change)
