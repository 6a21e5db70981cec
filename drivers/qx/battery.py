# -*- test-case-name: tests.test_qx_codec -*-
"""Battery charge and runtime estimates for Q1 units, which report neither; pure.

NUT's ``qx_initbattery``, ``qx_battery`` and the end of ``qx_ups_walk`` (``nutdrv_qx.c``),
with the time passed in:

* **Limits.**  ``battery.voltage.low`` / ``.high`` come from the user (``default.*`` or
  ``override.*``); when one is missing but the nominal voltage is known (F reply or user),
  both are guessed as 104/120 and 130/120 of the nominal (a 24 V pack: 20.80 .. 26.00 V)
  and published, as NUT does.
* **Packs.**  Online units report the voltage of one cell (2.25) or block; the multiplier is
  ``battery.packs`` if the user gives it, else the largest n of 120, 100, 80, 60, 48, 36, 30,
  24, 18, 12, 8, 6, 4, 3, 2, 1, 0.5 with n x reported <= 1.25 x nominal, if that is still
  >= 0.8 x nominal (NUT master's bound; 2.8.0 used 1.2), else 1.
* **Charge** (no ``runtimecal``): linear between the limits, clamped to 0..100, ``%.0f``.
* **Runtime** (``runtimecal = t_full,load_full,t_half,load_half``, seconds and percent):
  the load exponent k = ln(t_half/t_full) / ln(load_full/load_half), the nominal runtime
  at 100 % load t_nom = t_full x (load_full/100)^k.  The estimate (seconds at full load)
  starts at t_nom x charge; on line it grows by t_nom x dt / ``chargetime`` (default
  43200 s), on battery it shrinks by the effective load x dt, where the effective load is
  max((load/100)^k, ``idleload``/100) (default 10 %); a voltage-based charge lower than
  the estimate replaces it (old batteries).  Published: ``battery.charge`` = 100 x
  estimate / t_nom, ``battery.runtime`` = estimate / effective load.

These are guesses (voltage sags under load and floats high while charging).  They are
published as such and never set ``LB`` by themselves: the UPS's own low-battery bit is
the hard trigger, and the master's ``lowbatt_charge`` / ``lowbatt_runtime`` are the
explicit way to add one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

__all__ = ["Battery", "BatteryOptions", "detect_packs"]

PACKS = (120, 100, 80, 60, 48, 36, 30, 24, 18, 12, 8, 6, 4, 3, 2, 1, 0.5)


@dataclass(frozen=True)
class BatteryOptions:
    """The ups.conf options of the estimates (validated)."""

    #: (t_full, load_full, t_half, load_half) or None
    runtimecal: tuple[float, float, float, float] | None = None
    chargetime: float = 43200.0
    idleload: float = 0.1

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> "tuple[BatteryOptions, list[str]]":
        """The options and, for each one refused, why (NUT would refuse to start)."""
        errors: list[str] = []
        runtimecal = None
        text = options.get("runtimecal")
        if text is not None:
            try:
                rh, lh, rl, ll = (float(part) for part in text.split(",")[:4])
            except ValueError:
                errors.append(f"runtimecal {text!r}: four numbers expected "
                              "(runtime at full load, full load %, at half load, half load %)")
            else:
                if rl < rh or rh <= 0:
                    errors.append(f"runtimecal {text!r}: runtime out of range")
                elif lh > 100 or ll > lh or ll <= 0:
                    errors.append(f"runtimecal {text!r}: load out of range")
                else:
                    runtimecal = (rh, lh, rl, ll)
        chargetime = _positive(options, "chargetime", 43200.0, errors)
        idleload = _positive(options, "idleload", 10.0, errors) / 100
        if idleload > 1:
            errors.append("idleload: out of range 0..100")
            idleload = 0.1
        return cls(runtimecal, chargetime, idleload), errors


def _positive(options: Mapping[str, str], key: str, default: float, errors: list[str]) -> float:
    text = options.get(key)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1
    if value <= 0:
        errors.append(f"{key} {text!r}: a number above 0 expected")
        return default
    return value


def detect_packs(reported: float, nominal: float) -> float | None:
    """The pack multiplier for a reported battery voltage, or None if none fits."""
    for packs in PACKS:
        if packs * reported > 1.25 * nominal:
            continue
        if packs * reported < 0.8 * nominal:
            return None
        return packs
    return None


class Battery:
    """The estimator of one UPS (built after the first status and rating replies)."""

    def __init__(self, options: BatteryOptions, *, nominal: float | None, low: float | None,
                 high: float | None, packs: float | None, reported: float | None,
                 now: float) -> None:
        self.options = options
        #: limits that were guessed and are to be published ("%.2f")
        self.published: dict[str, str] = {}
        #: why runtime is not estimated, or what was assumed (for the log)
        self.notes: list[str] = []
        if nominal is not None and (low is None or high is None):
            low, high = 104 * nominal / 120, 130 * nominal / 120
            self.published = {"battery.voltage.low": f"{low:.2f}",
                              "battery.voltage.high": f"{high:.2f}"}
            self.notes.append(f"battery limits guessed from the nominal {nominal:g} V: "
                              f"{low:.2f} .. {high:.2f} V")
        self.low, self.high = low, high
        if packs is None and reported is not None and nominal is not None:
            packs = detect_packs(reported, nominal)
            if packs is None:
                self.notes.append(f"cannot tell the number of battery packs "
                                  f"[{nominal:.0f}/{reported:.2f}]")
            elif packs != 1:
                self.notes.append(f"battery voltage reported per pack: x {packs:g}")
        self.packs = packs or 1.0
        self.estimate: float | None = None
        self.exponent = self.nominal_runtime = 0.0
        self.last = now
        cal = options.runtimecal
        if cal is None:
            return
        rh, lh, rl, ll = cal
        self.exponent = math.log(rl / rh) / math.log(lh / ll)
        self.nominal_runtime = rh * (lh / 100) ** self.exponent
        charge = self._voltage_charge(reported)
        if charge is None and nominal is not None:
            self.low, self.high = nominal, 1.15 * nominal
            charge = self._voltage_charge(reported)
        if charge is None:
            self.notes.append("runtime not estimated: the initial battery charge is unknown "
                              "(no battery voltage or no nominal voltage)")
            return
        self.estimate = self.nominal_runtime * charge / 100

    def _voltage_charge(self, reported: float | None) -> float | None:
        """Percent from the voltage, clamped, or None without usable limits."""
        low, high = self.low, self.high
        if reported is None or low is None or high is None or low <= 0 or high <= low:
            return None
        charge = 100 * (self.packs * reported - low) / (high - low)
        return min(100.0, max(0.0, charge))

    def voltage(self, reported: float) -> float:
        """The whole battery's voltage from the reported one."""
        return self.packs * reported

    def update(self, now: float, online: bool, reported: float | None,
               load: float | None) -> dict[str, str]:
        """The estimates after one full reading (``battery.charge``, ``battery.runtime``)."""
        dt, self.last = max(0.0, now - self.last), now
        if self.estimate is None:
            charge = self._voltage_charge(reported)
            return {} if charge is None else {"battery.charge": f"{charge:.0f}"}
        nominal = self.nominal_runtime
        effective = max((max(load or 0.0, 0.0) / 100) ** self.exponent, self.options.idleload)
        if online:
            self.estimate = min(nominal, self.estimate + nominal * dt / self.options.chargetime)
        else:
            self.estimate = max(0.0, self.estimate - effective * dt)
        by_voltage = self._voltage_charge(reported)
        if by_voltage is not None and reported is not None and reported > 0 \
                and by_voltage / 100 < self.estimate / nominal:
            self.estimate = by_voltage / 100 * nominal
        return {"battery.charge": f"{100 * self.estimate / nominal:.0f}",
                "battery.runtime": f"{self.estimate / effective:.0f}"}
