# -*- test-case-name: tests.test_drivers -*-
"""The driver contract.

A driver owns one UPS: it reads the device and publishes into a :class:`upsagent.model.UPS`
(variables, status words, commands, ``data_ok`` / ``data_stale``).  It is built from its
config section and a reactor, so tests drive it with a ``Clock``.

The rules, taken from NUT's ``docs/new-drivers.txt``:

* :meth:`Driver.start` returns a Deferred that fires after the first successful read; a
  driver that cannot reach its device keeps trying (with backoff) and leaves the UPS
  ``NOT_CONNECTED`` meanwhile.  ``start`` never fails the daemon.
* any failed contact marks the UPS stale; ``data_ok`` only after a *fully* successful update.
* :meth:`Driver.instcmd` and :meth:`Driver.setvar` return Deferreds firing with a
  :class:`Result`; these are what ``GET TRACKING`` reports.
* :meth:`Driver.killpower` is the last act of a shutdown: tell the UPS to cut its output after
  its delay and come back when mains returns.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, ClassVar

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

if TYPE_CHECKING:
    from upsagent.config.schema import UpsConfig
    from upsagent.model import UPS

__all__ = ["Driver", "Result", "UnavailableDriver"]


class Result(enum.Enum):
    """Outcome of an instant command or a SET, as NUT's tracking reports it."""

    SUCCESS = "SUCCESS"
    #: the driver does not handle this command/variable
    UNKNOWN = "ERR UNKNOWN"
    INVALID_ARGUMENT = "ERR INVALID-ARGUMENT"
    FAILED = "ERR FAILED"


class Driver:
    """Base class of every driver; subclasses override the hooks they support."""

    #: native name used in upsagent.toml (``driver = "replay"``)
    name: ClassVar[str] = ""
    #: NUT driver names in ups.conf that select this driver
    nut_names: ClassVar[tuple[str, ...]] = ()
    #: USB (vendor, product) ids the driver claims (udev rules and the scanner use them)
    usb_ids: ClassVar[tuple[tuple[int, int], ...]] = ()
    #: version string published as driver.version.internal
    version: ClassVar[str] = "0.1"
    #: :meth:`killpower` talks to the device through this driver, so ``upsagent
    #: killpower`` waits for :meth:`start` to reach it first; False for a driver that hands
    #: the order to another program (NUT's driver ``-k``)
    killpower_needs_device: ClassVar[bool] = True

    log = Logger()

    def __init__(self, config: "UpsConfig", ups: "UPS", reactor: IReactorTime) -> None:
        self.config = config
        self.ups = ups
        self.reactor = reactor

    @classmethod
    def unfit(cls, config: "UpsConfig") -> str | None:
        """Why this driver cannot serve ``config`` here (a mode it lacks, a library that
        is not installed), or None: with ``serve = "auto"`` the UPS is then served from
        NUT's own driver, and check-config says why."""
        return None

    @classmethod
    def implements(cls, config: "UpsConfig") -> bool:
        """Whether this driver can serve ``config`` (:meth:`unfit` has no objection)."""
        return cls.unfit(config) is None

    def start(self) -> "Deferred[None]":
        """Begin reading the device; fires after the first successful read."""
        raise NotImplementedError

    def stop(self) -> "Deferred[None]":
        """Stop reading and release the device."""
        return succeed(None)

    def instcmd(self, name: str, value: str | None = None) -> "Deferred[Result]":
        """Run an instant command the UPS listed."""
        return succeed(Result.UNKNOWN)

    def setvar(self, name: str, value: str) -> "Deferred[Result]":
        """Write a variable the UPS flagged writable."""
        return succeed(Result.UNKNOWN)

    def request(self, kind: str, name: str, value: str | None,
                tracking: str | None) -> "Deferred[Result]":
        """A client's SET VAR (``kind="set"``) or INSTCMD, as the master hands it over.

        ``tracking`` is the id the client was given when it asked for tracking (None
        otherwise); the Deferred's result is what ``GET TRACKING`` reports for it.  The
        default calls :meth:`setvar` or :meth:`instcmd`; a driver that forwards the id
        itself (NUT's driver socket) overrides this.
        """
        if kind == "set":
            return self.setvar(name, value or "")
        return self.instcmd(name, value)

    def poke(self) -> None:
        """The master has heard nothing from this driver for a third of MAXAGE.

        upsd then pings its driver (server/sstate.c); a driver whose device can answer
        such a question may do so here.  The default does nothing: in-process drivers
        report on their own schedule, and MAXAGE catches one that stopped.
        """

    def killpower(self) -> "Deferred[Result]":
        """Cut the UPS output after its delay, to return with mains (``shutdown.return``)."""
        return succeed(Result.UNKNOWN)

    def publish_driver_info(self) -> None:
        """Publish ``driver.name``, ``driver.version*`` and ``driver.parameter.*``."""
        ups = self.ups
        ups.set("driver.name", self.config.driver)
        ups.set("driver.version", _package_version())
        ups.set("driver.version.internal", self.version)
        for key, value in self.config.driver_parameters().items():
            ups.set(f"driver.parameter.{key}", value)
        for flag in self.config.flags:
            ups.set(f"driver.flag.{flag}", "enabled")


class UnavailableDriver(Driver):
    """Stands in for a driver family this build cannot serve; the UPS stays not connected."""

    name = "unavailable"

    def __init__(self, config: "UpsConfig", ups: "UPS", reactor: IReactorTime,
                 why: str = "") -> None:
        super().__init__(config, ups, reactor)
        self.why = why or f"driver {config.driver!r} is not available in this build"

    def start(self) -> "Deferred[None]":
        self.log.warn("UPS {ups}: not connected: {why}", ups=self.config.name, why=self.why)
        self.ups.disconnected(self.why)
        return Deferred()  # never fires: there will be no first read


def _package_version() -> str:
    from upsagent import __version__

    return __version__
