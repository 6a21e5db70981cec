# -*- test-case-name: tests.test_monitor -*-
"""The settings of one watched UPS, as both configuration front ends build them (a MONITOR
line of upsmon.conf, a ``[[slave.monitor]]`` table) and as the agent's monitor uses them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from upsagent.nut.target import split_name
from upsagent.transport.nutproto import TlsSettings

if TYPE_CHECKING:
    from upsagent.config.upsmonconf import Monitor, UpsmonConf

__all__ = ["MonitorSettings", "TlsSettings"]


@dataclass(frozen=True)
class MonitorSettings:
    """One watched UPS: a MONITOR line plus the timing upsmon.conf gives."""

    system: str
    user: str
    password: str = field(repr=False)
    primary: bool = False
    poll_freq: float = 5.0
    poll_freq_alert: float = 5.0
    watch: bool = True
    #: liveness reads while pushed to and on line (None: every ``poll_freq``)
    watch_interval: float | None = None
    read_battery: bool = False
    timeout: float = 10.0
    tls: TlsSettings = TlsSettings()

    def __post_init__(self) -> None:
        target = split_name(self.system)  # BadTarget (a ValueError) for a bad name
        if not target.ups:
            raise ValueError(f"{self.system!r} names no UPS")
        for name in ("poll_freq", "poll_freq_alert", "watch_interval", "timeout"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be above 0")

    @property
    def ups(self) -> str:
        """The UPS name on the server."""
        return split_name(self.system).ups or ""

    @property
    def host(self) -> str:
        """The server's host name or address."""
        return split_name(self.system).host

    @property
    def port(self) -> int:
        """The server's port."""
        return split_name(self.system).port

    @classmethod
    def from_upsmon(cls, conf: UpsmonConf, monitor: Monitor, **extra: Any) -> MonitorSettings:
        """Settings for one MONITOR line; ``extra`` sets the fields upsmon.conf has not."""
        rule = conf.tls.for_host(monitor.host)
        verify = rule.verify if rule else conf.tls.verify
        force = rule.force_ssl if rule else conf.tls.force_ssl
        tls = TlsSettings(required=force or verify, verify=verify, ca_path=conf.tls.cert_path,
                          hostname=rule.cert_name if rule else None)
        return cls(monitor.system, monitor.user, monitor.password, monitor.primary,
                   float(conf.poll_freq), float(conf.poll_freq_alert), tls=tls, **extra)
