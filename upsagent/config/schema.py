# -*- test-case-name: tests.test_config -*-
"""The validated configuration objects.

Both front ends end here: the native TOML file (:mod:`upsagent.config.native`) and NUT's own
``ups.conf`` / ``upsd.conf`` / ``upsd.users`` (:mod:`upsagent.config.nutconf`).  Everything
downstream (the master, the drivers, ``check-config``) only ever sees these objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from upsagent.config.slaveconf import SlaveConfig

__all__ = [
    "ConfigError",
    "Config",
    "DEFAULT_SHUTDOWN_COMMAND",
    "ListenAddress",
    "MasterConfig",
    "ShutdownConfig",
    "UpsConfig",
    "UserConfig",
    "DEFAULT_PORT",
    "SERVE_CHOICES",
]

DEFAULT_PORT = 3493

#: the values of ``UpsConfig.serve``
SERVE_CHOICES = ("auto", "upsagent", "nut-driver")

#: what the master runs to shut its own host down (upsmon.conf's usual SHUTDOWNCMD)
DEFAULT_SHUTDOWN_COMMAND = ("/sbin/shutdown", "-h", "+0")

#: ups.conf options the NUT driver core consumes without publishing them as driver.parameter.*
_NOT_PUBLISHED = frozenset({
    "user", "group", "sdorder", "sddelay", "debug_min", "pollinterval", "synchronous"})


class ConfigError(ValueError):
    """A configuration problem; the message names the file, the key and the reason."""


@dataclass(frozen=True)
class ListenAddress:
    """One address the master listens on."""

    host: str
    port: int = DEFAULT_PORT


@dataclass(frozen=True)
class UserConfig:
    """A network user, with NUT's rights model (upsd.users).

    ``actions`` holds lower-case action names (``set``, ``fsd``, ``login``, ``master``,
    ``primary``); ``instcmds`` lower-case command names or ``all``.  ``upsmon primary``
    expands to login + master + fsd, ``upsmon secondary`` to login, as upsd does.
    """

    name: str
    password: str | None
    actions: frozenset[str] = frozenset()
    instcmds: frozenset[str] = frozenset()


@dataclass(frozen=True)
class UpsConfig:
    """One UPS served by the master.

    ``driver`` is the name the user wrote (a NUT driver name such as ``dummy-ups`` or a
    native one such as ``replay``); ``options`` holds every driver option in file order,
    ``port`` included, as NUT publishes them under ``driver.parameter.*``.
    """

    name: str
    driver: str
    port: str | None = None
    desc: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    #: flags set without a value (``ignorelb``), published as ``driver.flag.*``
    flags: tuple[str, ...] = ()
    #: further names under which clients may reach the same UPS (NAS defaults)
    aliases: tuple[str, ...] = ()
    #: directory a relative ``port`` (a dummy-ups data file) is resolved against: the NUT
    #: configuration directory, or the directory of upsagent.toml
    confdir: str | None = None
    #: on battery with ``battery.charge`` below this percentage, the master adds ``LB``
    lowbatt_charge: float | None = None
    #: on battery with ``battery.runtime`` below this many seconds, the master adds ``LB``
    lowbatt_runtime: int | None = None
    #: who serves the UPS (one of :data:`SERVE_CHOICES`): ``auto`` (upsagent's own driver
    #: when it has one for ``driver`` and these settings, else NUT's driver through its
    #: socket), ``upsagent``
    #: (upsagent's own driver only), ``nut-driver`` (NUT's running driver, through its socket)
    serve: str = "auto"
    #: NUT's state directory, where NUT's drivers put their sockets (upsd.conf STATEPATH,
    #: ``[master] statepath``); None: ``$NUT_STATEPATH``, else NUT's default (/run/nut)
    statepath: str | None = None

    def driver_parameters(self) -> dict[str, str]:
        """The options NUT 2.8.0 publishes as ``driver.parameter.*`` (drivers/main.c).

        ``options`` keeps every ``key = value`` of the section, but the driver core handles
        some itself without publishing them (``user``, ``group``, ``sdorder``, ``sddelay``,
        ``debug_min``), publishes ``pollinterval`` and ``synchronous`` with their effective
        values on its own, and turns ``override.*`` / ``default.*`` into variables instead.
        A driver must still drop the options it treats as secret (NUT's ``VAR_SENSITIVE``,
        e.g. SNMP v3 passwords).
        """
        return {
            key: value for key, value in self.options.items()
            if key not in _NOT_PUBLISHED
            and not key.lower().startswith(("override.", "default."))
        }


@dataclass(frozen=True)
class ShutdownConfig:
    """The primary's end of the sequence (``[master.shutdown]``, see master/shutdown.py).

    A served UPS is critical when its FSD latch is set (or its status says FSD), when it is
    on battery with low battery (``OB`` + ``LB``, not during ``CAL``), with
    ``on_battery_for`` when it has been on battery that long, or when its data has been
    unavailable for ``deadtime`` seconds while it was last seen on battery: the slave's
    rules (R2 in upsagent/policy/rules.py), which the master's sequence runs.
    """

    enabled: bool = False
    #: the UPSes that power this host (empty: every served UPS); also the ones
    #: ``upsagent killpower`` switches off
    ups: tuple[str, ...] = ()
    #: the host shuts down when fewer of its UPSes than this are not critical
    minsupplies: int = 1
    #: seconds on battery after which a UPS counts as critical (None: only FSD / OB+LB)
    on_battery_for: int | None = None
    #: seconds without data, last seen on battery, after which a UPS counts as critical
    deadtime: int = 15
    #: most seconds to wait for the other sessions logged into the host's UPSes to go
    hostsync: int = 15
    #: seconds between writing the power-down flag and running the shutdown command
    finaldelay: int = 5
    #: argv of the command that shuts this host down (never through a shell)
    shutdown_command: tuple[str, ...] = DEFAULT_SHUTDOWN_COMMAND
    #: log every step instead of setting FSD, writing the flag and running the command
    dry_run: bool = False


@dataclass(frozen=True)
class MasterConfig:
    """The master daemon: listeners, limits, TLS, UPSes and users."""

    listen: tuple[ListenAddress, ...] = (
        ListenAddress("127.0.0.1"), ListenAddress("::1"))
    maxconn: int = 1024
    #: PEM with certificate (and key, unless ``keyfile`` is given); enables STARTTLS
    certfile: str | None = None
    keyfile: str | None = None
    #: seconds before a driver that sent nothing is treated as stale
    maxage: int = 15
    tracking_delay: int = 3600
    #: a client silent this long is disconnected (upsd: fixed 60 s)
    idle_timeout: int = 60
    #: a request line longer than this drops the connection (NUT has no limit; memory is
    #: bounded by the tokenizer anyway, this bounds CPU spent on one abusive line)
    max_line_length: int = 4 * 1024 * 1024
    #: bytes of unsent replies a client may leave unread before we stop reading its
    #: requests (flow control: it is throttled, not dropped; the idle cut ends it)
    max_send_buffer: int = 64 * 1024
    #: the most connections at once from one source address (an IPv6 address counts as its
    #: /64); None: the default, see :attr:`conn_per_address`
    max_conn_per_address: int | None = None
    #: how many of the ``maxconn`` slots keep only clients that log in (as upsmon does)
    #: within a few seconds; None: the default, see :attr:`monitor_slots`
    reserved_monitor_slots: int | None = None
    ups: tuple[UpsConfig, ...] = ()
    users: tuple[UserConfig, ...] = ()
    #: where ``upsagent killpower`` finds the request to cut the UPS output (written by the
    #: shutdown sequence, as upsmon's POWERDOWNFLAG)
    powerdown_flag: str | None = None
    #: where the SNMP trap receiver listens (``host:port``; None: no receiver)
    snmp_traps: str | None = None
    #: the primary's end of the sequence (disabled by default)
    shutdown: ShutdownConfig = field(default_factory=ShutdownConfig)
    #: start even when no UPS is configured (upsd.conf ALLOW_NO_DEVICE)
    allow_no_device: bool = False
    #: refuse TLS protocol versions below 1.2 and weak ciphers (upsd.conf DISABLE_WEAK_SSL)
    disable_weak_ssl: bool = False
    #: NUT's state directory, where NUT's drivers put their sockets (upsd.conf STATEPATH);
    #: every UpsConfig carries a copy, for its driver
    statepath: str | None = None

    @property
    def conn_per_address(self) -> int:
        """``max_conn_per_address``, by default a quarter of ``maxconn`` (at least 1)."""
        if self.max_conn_per_address is not None:
            return self.max_conn_per_address
        return max(1, self.maxconn // 4)

    @property
    def monitor_slots(self) -> int:
        """``reserved_monitor_slots``, by default 8, or a quarter of ``maxconn`` (rounded
        down) when that is fewer."""
        if self.reserved_monitor_slots is not None:
            return self.reserved_monitor_slots
        return min(8, self.maxconn // 4)


@dataclass(frozen=True)
class Config:
    """A whole upsagent configuration: the master's part and, when configured, the slave
    agent's (:class:`upsagent.config.slaveconf.SlaveConfig`)."""

    master: MasterConfig = field(default_factory=MasterConfig)
    slave: SlaveConfig | None = None
    #: the file(s) it came from, for messages
    source: str = ""
    #: what the loader noticed but accepted (ignored directives, NUT quirks kept); not part
    #: of the configuration's meaning, so equality ignores it
    warnings: tuple[str, ...] = field(default=(), compare=False)
