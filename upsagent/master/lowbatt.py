# -*- test-case-name: tests.test_lowbatt -*-
"""Low battery from the operator's thresholds: the master adds ``LB`` to ``ups.status``.

NUT's upsmon (and every NAS built on it) decides from ``ups.status`` alone and never reads
``battery.charge`` or ``battery.runtime``; so that stock clients shut down at the operator's
charge or runtime limit rather than at the UPS's own low-battery signal, the master publishes
the decision as ``LB`` (ecosystem note (e) #5).  Per UPS, ``lowbatt_charge`` (percent) and
``lowbatt_runtime`` (seconds) in upsagent.toml.

Rules (:func:`with_low_battery`, a pure function):

* only on battery: ``OB`` in the status; never during ``CAL`` (a calibration drains the
  battery on purpose, and upsmon ignores OB+LB then anyway);
* ``battery.charge`` < ``lowbatt_charge``, or ``battery.runtime`` < ``lowbatt_runtime``
  (strictly below, as NUT's ``battery.charge.low``); values that are missing or not numbers
  count as not below;
* ``LB`` is only ever added, never removed: it stays until the driver publishes a new
  ``ups.status`` (a driver that republishes its status gets it re-evaluated each time).
  Removing an ``LB`` could remove the UPS's own, and a runtime estimate that bounces back
  above the limit must not undo a shutdown already under way.

:class:`LowBattery` is the UPS observer that applies the rule after every commit that
touches the status, charge or runtime (or brings the data back).  It lives in the master,
not in a driver, so every driver gets it.  NUT's own ``ignorelb`` + ``battery.charge.low``
handling in the replay driver is separate and unchanged.
"""

from __future__ import annotations

from typing import Callable

from twisted.logger import Logger

from upsagent.model import UPS, Availability, Change

__all__ = ["LowBattery", "with_low_battery"]

_INPUTS = frozenset({"ups.status", "battery.charge", "battery.runtime"})


def with_low_battery(status: str, charge: str | None, runtime: str | None,
                     charge_limit: float | None, runtime_limit: float | None) -> str | None:
    """The status with ``LB`` appended when the thresholds say so, else None (unchanged)."""
    words = status.split()
    if "OB" not in words or "CAL" in words or "LB" in words:
        return None
    if _below(charge, charge_limit) or _below(runtime, runtime_limit):
        return " ".join([*words, "LB"])
    return None


def _below(value: str | None, limit: float | None) -> bool:
    if value is None or limit is None:
        return False
    try:
        number = float(value)
    except ValueError:
        return False
    return number < limit


class LowBattery:
    """Observer of one UPS adding ``LB`` by the thresholds ``limits()`` returns.

    ``limits`` is asked at each change, so a configuration reload takes effect at the next
    change (or at once with :meth:`check`).
    """

    log = Logger()

    def __init__(self, ups: UPS,
                 limits: Callable[[], tuple[float | None, int | None]]) -> None:
        self.ups = ups
        self.limits = limits

    def start(self) -> None:
        self.ups.add_observer(self.changed)

    def stop(self) -> None:
        self.ups.remove_observer(self.changed)

    def changed(self, change: Change) -> None:
        """The UPS observer."""
        if change.availability_changed or _INPUTS & {v.lower() for v in change.variables}:
            self.check()

    def check(self) -> None:
        """Apply the rule to the current data now."""
        ups = self.ups
        status = ups.value("ups.status")
        if ups.availability is not Availability.OK or status is None:
            return
        charge_limit, runtime_limit = self.limits()
        charge, runtime = ups.value("battery.charge"), ups.value("battery.runtime")
        new = with_low_battery(status, charge, runtime, charge_limit, runtime_limit)
        if new is None:
            return
        why = []
        if charge_limit is not None and _below(charge, charge_limit):
            why.append(f"battery.charge {charge} < lowbatt_charge {charge_limit:g}")
        if runtime_limit is not None and _below(runtime, runtime_limit):
            why.append(f"battery.runtime {runtime} < lowbatt_runtime {runtime_limit:g}")
        self.log.warn("UPS {ups}: on battery with {why}: LB added to ups.status",
                      ups=ups.name, why=" and ".join(why))
        ups.set("ups.status", new)
        ups.commit()

