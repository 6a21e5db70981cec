# -*- test-case-name: tests.test_admission -*-
"""Who gets a connection slot: the per-address limit and the slots kept for monitors.

NUT's upsd stops accepting at MAXCONN, so clients from one address that hold connections
(and never read) keep everybody else out, upsmon included.  The master decides on each new
connection as it is accepted (:meth:`Admission.decide`, ``connected`` being the clients
already there):

1. **MAXCONN**: with ``maxconn`` clients connected the ports stop accepting (further
   clients wait in the listen backlog, as with upsd); one accepted in the same burst is
   refused.
2. **per address** (``max_conn_per_address``): a source that already holds that many
   connections is refused.  A source is an IPv4 address, or an IPv6 /64 network (one host
   commonly owns a whole /64); an IPv4-mapped IPv6 address counts as its IPv4 address.
3. **slots kept for monitors** (``reserved_monitor_slots``): once ``maxconn`` minus that
   many clients are connected, a new connection is still accepted, but *on probation*: it
   is served normally, and kept if it logs in (``LOGIN``, which only ``upsmon`` users may
   do) within :data:`LOGIN_WINDOW` seconds.  If it has not by then, it is dropped when the
   master is still that full, and kept otherwise.  Each source has at most one connection on
   probation at a time (a second one is refused), so one abusive address can hold one of
   those slots at most, and a monitor from another address gets in while fewer addresses
   than ``reserved_monitor_slots`` are abusing.

A refused connection is closed at once, before any byte is read or written (the client sees
the server close).  Refusals and drops are logged with the peer's address, at most one line
per kind every :data:`LOG_INTERVAL` seconds plus one line saying how many more there were
(:class:`LogLimiter`), so that a flood cannot flood the log.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

__all__ = ["Admission", "LOGIN_WINDOW", "LOG_INTERVAL", "LogLimiter", "PROBATION",
           "REGULAR", "source_key"]

#: seconds a connection in a slot kept for monitors has to log in
LOGIN_WINDOW = 10.0
#: seconds between two log lines of the same kind of refusal
LOG_INTERVAL = 10.0
#: :meth:`Admission.decide`'s verdicts (None: refused)
REGULAR, PROBATION = "regular", "probation"
#: distinct peers named in a summary line
_SAMPLE = 3


def source_key(host: str) -> str:
    """What the per-address limit counts ``host`` as: an IPv4 address as is, an IPv6
    address as its /64 network (``2001:db8:1:2::/64``), an IPv4-mapped one as its IPv4."""
    if ":" not in host:
        return host
    try:
        address = ipaddress.IPv6Address(host.split("%", 1)[0])
    except ValueError:
        return host
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))


class LogLimiter:
    """Warnings of several kinds, each at most once per ``interval`` seconds.

    The first event of a kind is logged at once and opens a window of ``interval``
    seconds; further events in the window are only counted (with up to three distinct
    peers) and summed up in one line when it closes, which opens the next window.
    """

    log = Logger()

    def __init__(self, clock: IReactorTime, interval: float = LOG_INTERVAL) -> None:
        self.clock = clock
        self.interval = interval
        #: kind -> [events held back, sample of peers, the window's timer]
        self._windows: dict[str, tuple[list[int], list[str], IDelayedCall]] = {}

    def warn(self, kind: str, peer: str, text: str) -> None:
        """Log ``text`` (about ``peer``) now, or count it if ``kind`` was logged lately."""
        window = self._windows.get(kind)
        if window is not None:
            held, peers, _ = window
            held[0] += 1
            if peer not in peers and len(peers) < _SAMPLE:
                peers.append(peer)
            return
        self.log.warn("{text}", text=text)
        self._open(kind)

    def _open(self, kind: str) -> None:
        timer = self.clock.callLater(self.interval, self._close, kind)
        self._windows[kind] = ([0], [], timer)

    def _close(self, kind: str) -> None:
        held, peers, _ = self._windows.pop(kind)
        if not held[0]:
            return
        self.log.warn("... and {n} more {kind} in the last {sec:g} s (from {peers})",
                      n=held[0], kind=kind, sec=self.interval, peers=", ".join(peers))
        self._open(kind)

    def stop(self) -> None:
        """Cancel the open windows' timers (the held-back counts are not logged)."""
        for _, _, timer in self._windows.values():
            if timer.active():
                timer.cancel()
        self._windows.clear()


class Admission:
    """The per-source connection counts, the connections on probation and the verdicts.

    ``max_conn_per_address`` None means no per-address limit.
    """

    def __init__(self, clock: IReactorTime, *, maxconn: int,
                 max_conn_per_address: int | None = None,
                 reserved_monitor_slots: int = 0) -> None:
        self.maxconn = maxconn
        self.max_conn_per_address = max_conn_per_address
        self.reserved_monitor_slots = reserved_monitor_slots
        #: source key -> connections from it
        self.per_source: dict[str, int] = {}
        #: source key -> its connection on probation
        self.on_probation: dict[str, Any] = {}
        self.limiter = LogLimiter(clock)

    @property
    def regular_slots(self) -> int:
        """How many clients may connect before new ones go on probation."""
        return max(0, self.maxconn - self.reserved_monitor_slots)

    def decide(self, key: str, peer: str, connected: int) -> str | None:
        """:data:`REGULAR`, :data:`PROBATION`, or None for a connection to refuse (the
        refusal is logged, rate-limited)."""
        if connected >= self.maxconn:
            self.limiter.warn("refused at MAXCONN", peer,
                              f"Refused {peer}: MAXCONN {self.maxconn} reached")
            return None
        limit = self.max_conn_per_address
        held = self.per_source.get(key, 0)
        if limit is not None and held >= limit:
            self.limiter.warn(
                "refused over max_conn_per_address", peer,
                f"Refused {peer}: already {held} connections from {key} "
                f"(max_conn_per_address {limit})")
            return None
        if connected < self.regular_slots:
            return REGULAR
        if key in self.on_probation:
            self.limiter.warn(
                "refused for a second slot kept for monitors", peer,
                f"Refused {peer}: only slots kept for monitors are free "
                f"(reserved_monitor_slots {self.reserved_monitor_slots}) and one of them "
                f"already holds a connection from {key} that has not logged in")
            return None
        return PROBATION

    def joined(self, key: str) -> None:
        """A connection from ``key`` was made."""
        self.per_source[key] = self.per_source.get(key, 0) + 1

    def left(self, key: str) -> None:
        """A connection from ``key`` is gone."""
        count = self.per_source.get(key, 0) - 1
        if count > 0:
            self.per_source[key] = count
        else:
            self.per_source.pop(key, None)
