# -*- test-case-name: tests.test_qx_decode -*-
"""What a Q1 UPS publishes, from its replies and its ups.conf section; pure.

:class:`QxState` is built once the dialect is known (:class:`~.device.Identity`) and turns
each status reading into the full set of variables: the reading's values, ``ups.status``
and ``ups.alarm``, the static ratings and vendor strings, the battery estimates
(:mod:`.battery`), the two delays, ``device.type``, and the user's ``default.*`` (used when
the UPS does not give the variable) and ``override.*`` (always win).  It also formats the
instant commands and checks a SET of a delay.  The driver and ``upsagent decode q1`` both
use it, so they publish the same thing.

**Flavours.**  One implementation serves three NUT drivers; the differences are NUT's:

============================  ===========================  ==============================
                              ``nutdrv_qx``                ``blazer_ser`` / ``blazer_usb``
============================  ===========================  ==============================
dialects                      all (:data:`.codec.DIALECTS`)  megatec, mustek, megatec/old,
                                                           zinto
I reply                       device.mfr, device.model     ups.mfr, ups.model
``ups.delay.*``               writable, with ranges        read-only
``ondelay`` option            seconds (default 180)        minutes (default 3)
``test.battery.start``        seconds, 60..5940 (600)      minutes, 1..99 (10)
battery.voltage               as reported (x packs with    x packs
                              ``battery_voltage_reports_
                              one_pack``)
``driver.version.data``       the dialect's name           not published
============================  ===========================  ==============================
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Mapping

from upsagent.drivers.qx.battery import Battery, BatteryOptions
from upsagent.drivers.qx.codec import (
    SIMPLE_COMMANDS, StatusReading, battery_test, effective_offdelay, effective_ondelay,
    number, shutdown_return, shutdown_stayoff)
from upsagent.drivers.qx.device import Identity

__all__ = ["FLAVOURS", "CommandError", "Flavour", "QxState"]


@dataclass(frozen=True)
class Flavour:
    """Which NUT driver we stand in for."""

    driver: str
    #: NUT 2.8.0's driver.version.internal for that program
    internal: str
    blazer: bool
    #: True: USB only; False: serial only; None: by the port (``auto`` means USB)
    usb: bool | None


FLAVOURS = {
    "nutdrv_qx": Flavour("nutdrv_qx", "0.32", False, None),
    "blazer_ser": Flavour("blazer_ser", "1.58", True, False),
    "blazer_usb": Flavour("blazer_usb", "0.14", True, True),
}


class CommandError(ValueError):
    """An instant command or SET refused before anything was sent (the message says why)."""


def _prefixed(options: Mapping[str, str], prefix: str) -> dict[str, str]:
    return {key[len(prefix):]: value for key, value in options.items()
            if key.lower().startswith(prefix) and len(key) > len(prefix)}


_LEADING_INT = re.compile(r"\s*([+-]?[0-9]+)")


def _strtol(text: str) -> int:
    """C's strtol(text, NULL, 10): the leading integer, 0 without one."""
    match = _LEADING_INT.match(text)
    return int(match.group(1)) if match else 0


class QxState:
    """The published state of one Q1 UPS (see the module docstring)."""

    def __init__(self, flavour: Flavour, options: Mapping[str, str], flags: tuple[str, ...],
                 identity: Identity, now: float, log: Callable[[str], None] | None = None,
                 transport_values: Mapping[str, str] | None = None) -> None:
        self.flavour = flavour
        self.identity = identity
        self.dialect = identity.dialect
        self.log = log or (lambda text: None)
        self.flags = {flag.lower() for flag in flags}
        self.defaults = _prefixed(options, "default.")
        self.overrides = _prefixed(options, "override.")
        self.transport_values = dict(transport_values or {})
        self.offdelay, self.ondelay = self._initial_delays(options)
        battery_options, errors = BatteryOptions.parse(options)
        for error in errors:
            self.log(f"option {error}; ignored")
        known = {**self.defaults, **identity.static, **self.overrides}
        self.battery = Battery(
            battery_options, nominal=self._float(known.get("battery.voltage.nominal")),
            low=self._float({**self.defaults, **self.overrides}.get("battery.voltage.low")),
            high=self._float({**self.defaults, **self.overrides}.get("battery.voltage.high")),
            packs=self._float({**self.defaults, **self.overrides}.get("battery.packs")),
            reported=identity.first.battery, now=now)
        for note in self.battery.notes:
            self.log(note)
        self.multiply = flavour.blazer or "battery_voltage_reports_one_pack" in self.flags

    @staticmethod
    def _float(text: str | None) -> float | None:
        return None if text is None else number(text)

    # -- delays -----------------------------------------------------------------------

    @property
    def offdelay_range(self) -> tuple[int, int]:
        return (12, 600) if self.flavour.blazer else self.dialect.offdelay_range

    @property
    def ondelay_range(self) -> tuple[int, int]:
        return (0, 9999 * 60) if self.flavour.blazer else self.dialect.ondelay_range

    def _initial_delays(self, options: Mapping[str, str]) -> tuple[int, int]:
        """offdelay and ondelay from the options, checked and rounded, each change logged."""
        offdelay = ondelay = 0
        for name, key, default in (("ups.delay.shutdown", "offdelay", 30),
                                   ("ups.delay.start", "ondelay", 180)):
            text = options.get(key)
            value = default
            if text is not None:
                if self.flavour.blazer and key == "ondelay":
                    text = str(_strtol(text) * 60)  # blazer's ondelay is in minutes
                try:
                    value = self.check_delay(name, text)
                except CommandError as exc:
                    self.log(f"option {key} = {options[key]!r}: {exc}; using {default}")
            if name == "ups.delay.shutdown":
                offdelay = value
            else:
                ondelay = value
        return offdelay, ondelay

    def check_delay(self, name: str, text: str) -> int:
        """The value a delay really takes for ``text`` (logged when rounded), or CommandError."""
        low, high = self.offdelay_range if name == "ups.delay.shutdown" else self.ondelay_range
        if not text.strip() or number(text) is None:
            raise CommandError(f"{name}: {text!r} is not a number of seconds")
        asked = _strtol(text)
        if not low <= asked <= high:
            raise CommandError(f"{name}: {asked} is out of range {low}..{high}")
        value = effective_offdelay(asked) if name == "ups.delay.shutdown" \
            else effective_ondelay(asked)
        if value != asked:
            unit = ("6 s below one minute, whole minutes above" if name == "ups.delay.shutdown"
                    else "whole minutes")
            self.log(f"{name}: {asked} s asked, {value} s set (the UPS counts in {unit})")
        return value

    def set_delay(self, name: str, text: str) -> int:
        """SET ups.delay.shutdown / ups.delay.start (nutdrv_qx only): the value now in force."""
        if self.flavour.blazer or name not in ("ups.delay.shutdown", "ups.delay.start"):
            raise KeyError(name)
        value = self.check_delay(name, text)
        if name == "ups.delay.shutdown":
            self.offdelay = value
        else:
            self.ondelay = value
        return value

    def writable(self) -> dict[str, tuple[int, int]]:
        """Writable variables and their range."""
        if self.flavour.blazer:
            return {}
        return {"ups.delay.shutdown": self.offdelay_range,
                "ups.delay.start": self.ondelay_range}

    # -- commands ---------------------------------------------------------------------

    def commands(self) -> tuple[str, ...]:
        """The instant commands this UPS offers."""
        return self.dialect.commands

    def command_text(self, name: str, value: str | None = None) -> str:
        """The text to send for an instant command (KeyError: not offered)."""
        key = name.lower()
        if key not in self.commands():
            raise KeyError(name)
        if key in SIMPLE_COMMANDS:
            return SIMPLE_COMMANDS[key]
        if key == "shutdown.return":
            return shutdown_return(self.offdelay, self.ondelay)
        if key == "shutdown.stayoff":
            return shutdown_stayoff(self.offdelay)
        return battery_test(self._test_minutes(value))

    def _test_minutes(self, value: str | None) -> int:
        if self.flavour.blazer:
            minutes = _strtol(value) if value else 10
            if not 1 <= minutes <= 99:
                raise CommandError(f"test.battery.start: {value!r} minutes is out of range 1..99")
            return minutes
        seconds = _strtol(value) if value else 600
        if not 60 <= seconds <= 5940:
            raise CommandError(f"test.battery.start: {value!r} seconds is out of range 60..5940")
        if seconds % 60:
            self.log(f"test.battery.start: {seconds} s asked, {seconds - seconds % 60} s run "
                     "(the UPS counts whole minutes)")
        return seconds // 60

    # -- variables --------------------------------------------------------------------

    def variables(self, reading: StatusReading, now: float) -> dict[str, str]:
        """Everything the UPS publishes after ``reading`` (advances the estimates to now)."""
        out = dict(self.defaults)
        out.update(self.identity.static)
        out.update(self.transport_values)
        out.update(reading.values)
        if self.multiply and reading.battery is not None and self.battery.packs != 1:
            out["battery.voltage"] = f"{self.battery.voltage(reading.battery):.2f}"
        out["ups.status"] = " ".join(reading.words)
        if reading.alarms:
            out["ups.alarm"] = " ".join(reading.alarms)
        out.update(self.battery.published)
        load = number(reading.values.get("ups.load", "")) if "ups.load" in reading.values \
            else None
        out.update(self.battery.update(now, reading.online, reading.battery, load))
        out["ups.delay.shutdown"] = str(self.offdelay)
        out["ups.delay.start"] = str(self.ondelay)
        out["device.type"] = "ups"
        out.update(self.overrides)
        return out
