# -*- test-case-name: tests.test_replay -*-
"""Who serves a UPS: upsagent's own driver for its ``driver = ...`` name, or NUT's driver.

Names are those of ``ups.conf`` (NUT's program names, case-sensitive as NUT's are) and our
native ones.  :func:`create_driver` chooses by the UPS's ``serve`` setting
(:data:`upsagent.config.schema.SERVE_CHOICES`):

* ``nut-driver``: NUT's own driver program, running on its own (NUT's driver units,
  ``upsdrvctl``), read through its socket ``<statepath>/<driver>-<ups>``
  (:class:`~upsagent.drivers.nutsock.NutSocketDriver`), exactly as upsd reads it;
* ``upsagent``: our driver for that name; a name in the table whose family is not
  implemented yet, or one not in the table at all, gets an
  :class:`~upsagent.drivers.base.UnavailableDriver` that keeps the UPS ``NOT_CONNECTED``
  and says why, so one bad section never stops the daemon;
* ``auto`` (the default): ours when we have one, NUT's driver socket otherwise.

The config validator asks :func:`known_driver` and :func:`describe`; check-config asks
:func:`serving`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from twisted.logger import Logger

from upsagent.drivers.base import Driver, UnavailableDriver

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from upsagent.config.schema import UpsConfig
    from upsagent.model import UPS

_log = Logger(namespace="upsagent.drivers")

__all__ = ["DRIVERS", "NUT_SOCKET", "DriverEntry", "available", "create_driver", "describe",
           "driver_class", "known_driver", "served_by_nut", "serving"]


@dataclass(frozen=True)
class DriverEntry:
    """One row: where the class lives (``module:Class``; None = not yet) and what it is."""

    target: str | None
    #: the device family, for messages
    family: str


_REPLAY = "upsagent.drivers.replay:ReplayDriver"
#: the driver that reads a NUT driver's socket
NUT_SOCKET = "upsagent.drivers.nutsock:NutSocketDriver"
_QX = "upsagent.drivers.qx.driver:QxDriver"

#: driver name -> entry
DRIVERS: dict[str, DriverEntry] = {
    "replay": DriverEntry(_REPLAY, "NUT .dev/.seq dump player"),
    "dummy-ups": DriverEntry(_REPLAY, "NUT .dev/.seq dump player"),
    "usbhid-ups": DriverEntry("upsagent.drivers.usbhid.driver:UsbHidDriver",
                              "USB HID Power Device"),
    "nutdrv_qx": DriverEntry(_QX, "Megatec/Voltronic Q1 over serial or USB"),
    "blazer_ser": DriverEntry(_QX, "Megatec Q1 over serial"),
    "blazer_usb": DriverEntry(_QX, "Megatec Q1 over USB"),
    "snmp-ups": DriverEntry("upsagent.drivers.snmp.driver:SnmpDriver", "SNMP"),
    "snmp": DriverEntry("upsagent.drivers.snmp.driver:SnmpDriver", "SNMP"),
}


def known_driver(name: str) -> bool:
    """True if ``name`` is in the table (implemented or recognised but not yet available)."""
    return name in DRIVERS


def available(name: str) -> bool:
    """True if ``name`` has a driver in this version."""
    entry = DRIVERS.get(name)
    return entry is not None and entry.target is not None


def describe(name: str) -> str:
    """One sentence about ``name``: what serves it, or why upsagent itself cannot."""
    entry = DRIVERS.get(name)
    if entry is None:
        return f"unknown driver {name!r}; known drivers: {', '.join(sorted(DRIVERS))}"
    if entry.target is None:
        return (f"NUT driver {name!r} ({entry.family}) is not supported by this upsagent "
                "version yet")
    return f"driver {name!r}: {entry.family} ({entry.target.replace(':', '.')})"


def served_by_nut(config: "UpsConfig") -> bool:
    """Whether NUT's own driver serves this UPS (through its socket), by ``serve``: with
    ``auto`` when upsagent has no driver for the name, or its driver lacks what the UPS
    asks for (dummy-ups' repeater mode)."""
    if config.serve == "nut-driver":
        return True
    if config.serve == "upsagent":
        return False
    try:
        cls = driver_class(config.driver)
    except ImportError:
        return True
    return cls is None or not cls.implements(config)


def serving(config: "UpsConfig") -> str:
    """Who will serve the UPS and how, in one sentence (for check-config)."""
    if served_by_nut(config):
        from upsagent.drivers.nutsock import socket_path

        why = "" if config.serve == "nut-driver" else (
            f"; upsagent has no driver of its own for {config.driver!r}"
            if not available(config.driver) else f"; {_unfit(config)}")
        return (f"NUT's driver {config.driver} through its socket {socket_path(config)} "
                f"(NUT's driver must be running){why}")
    if available(config.driver):
        entry = DRIVERS[config.driver]
        return f"upsagent's driver for {config.driver} ({entry.family})"
    return f"nobody: {describe(config.driver)}; the UPS will be reported as not connected"


def _unfit(config: "UpsConfig") -> str:
    """Why upsagent's own driver for ``config`` is not used (``auto``)."""
    try:
        cls = driver_class(config.driver)
    except ImportError as exc:
        return f"upsagent's driver for {config.driver!r} cannot be loaded ({exc})"
    why = cls.unfit(config) if cls is not None else None
    return why or f"upsagent's driver for {config.driver!r} cannot serve this UPS's settings"


def driver_class(name: str) -> type[Driver] | None:
    """The class serving ``name`` (its module imported now), or None if there is none."""
    entry = DRIVERS.get(name)
    if entry is None or entry.target is None:
        return None
    return _load(entry.target)


def create_driver(config: "UpsConfig", ups: "UPS", reactor: "IReactorTime") -> Driver:
    """The driver serving ``config`` (see the module docstring); never fails: an
    UnavailableDriver saying why if there is none."""
    name = config.driver
    try:
        nut = served_by_nut(config)
        if nut and config.serve == "auto" and available(name):
            _log.warn("UPS {ups}: served by NUT's own {driver} through its socket: {why}",
                      ups=config.name, driver=name, why=_unfit(config))
        cls = _load(NUT_SOCKET) if nut else driver_class(name)
    except ImportError as exc:
        return UnavailableDriver(config, ups, reactor, why=(
            f"driver {name!r} cannot be loaded ({exc}); the UPS is reported as not connected"))
    if cls is None:
        return UnavailableDriver(config, ups, reactor, why=(
            f"{describe(name)}; the UPS is reported as not connected"))
    return cls(config, ups, reactor)


def _load(target: str) -> type[Driver]:
    module, _, attr = target.partition(":")
    cls: type[Driver] = getattr(importlib.import_module(module), attr)
    return cls
