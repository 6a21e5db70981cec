# -*- test-case-name: tests.test_replay -*-
"""Which driver serves a ``driver = ...`` name: one table, modules imported when used.

Names are those of ``ups.conf`` (NUT's program names, case-sensitive as NUT's are) and our
native ones.  A name in the table whose family is not implemented yet, and a name not in
the table at all, still give a driver: an :class:`~upsagent.drivers.base.UnavailableDriver`
that keeps the UPS ``NOT_CONNECTED`` and says why, so one bad section never stops the
daemon.  The config validator asks :func:`known_driver` and :func:`describe`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from upsagent.drivers.base import Driver, UnavailableDriver

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from upsagent.config.schema import UpsConfig
    from upsagent.model import UPS

__all__ = ["DRIVERS", "DriverEntry", "available", "create_driver", "describe",
           "driver_class", "known_driver"]


@dataclass(frozen=True)
class DriverEntry:
    """One row: where the class lives (``module:Class``; None = not yet) and what it is."""

    target: str | None
    #: the device family, for messages
    family: str


_REPLAY = "upsagent.drivers.replay:ReplayDriver"

#: driver name -> entry
DRIVERS: dict[str, DriverEntry] = {
    "replay": DriverEntry(_REPLAY, "NUT .dev/.seq dump player"),
    "dummy-ups": DriverEntry(_REPLAY, "NUT .dev/.seq dump player"),
    "usbhid-ups": DriverEntry("upsagent.drivers.usbhid.driver:UsbHidDriver",
                              "USB HID Power Device"),
    "nutdrv_qx": DriverEntry(None, "Megatec/Voltronic Q1"),
    "blazer_ser": DriverEntry(None, "Megatec Q1 over serial"),
    "blazer_usb": DriverEntry(None, "Megatec Q1 over USB"),
    "snmp-ups": DriverEntry(None, "SNMP"),
}


def known_driver(name: str) -> bool:
    """True if ``name`` is in the table (implemented or recognised but not yet available)."""
    return name in DRIVERS


def available(name: str) -> bool:
    """True if ``name`` has a driver in this version."""
    entry = DRIVERS.get(name)
    return entry is not None and entry.target is not None


def describe(name: str) -> str:
    """One sentence about ``name``: what serves it, or why nothing does."""
    entry = DRIVERS.get(name)
    if entry is None:
        return (f"unknown driver {name!r}; known drivers: {', '.join(sorted(DRIVERS))}; "
                "the UPS is reported as not connected")
    if entry.target is None:
        return (f"NUT driver {name!r} ({entry.family}) is not supported by this upsagent "
                "version yet; the UPS is reported as not connected")
    return f"driver {name!r}: {entry.family} ({entry.target.replace(':', '.')})"


def driver_class(name: str) -> type[Driver] | None:
    """The class serving ``name`` (its module imported now), or None if there is none."""
    entry = DRIVERS.get(name)
    if entry is None or entry.target is None:
        return None
    module, _, attr = entry.target.partition(":")
    cls: type[Driver] = getattr(importlib.import_module(module), attr)
    return cls


def create_driver(config: "UpsConfig", ups: "UPS", reactor: "IReactorTime") -> Driver:
    """The driver for ``config.driver``; an UnavailableDriver saying why if there is none."""
    try:
        cls = driver_class(config.driver)
    except ImportError as exc:
        return UnavailableDriver(config, ups, reactor, why=(
            f"driver {config.driver!r} cannot be loaded ({exc}); "
            "the UPS is reported as not connected"))
    if cls is None:
        return UnavailableDriver(config, ups, reactor, why=describe(config.driver))
    return cls(config, ups, reactor)
