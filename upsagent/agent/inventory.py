# -*- test-case-name: tests.test_status -*-
"""The agent's inventory: every configured host's connection and maintenance state, read
from its manager every :data:`INTERVAL` seconds.

An :class:`Inventory` asks each manager's backend for its hosts
(:meth:`~upsagent.hypervisors.base.Backend.hosts`) at start and then every 30 s, and keeps,
per host configured for that manager, the latest :class:`HostState`: found or not,
connected, in maintenance, the backend's detail, whether the vCenter's VM or the agent's
own VM was detected on it, and when the manager answered.  A host the manager does not
list is "not found"; hosts the manager lists but the configuration does not name are not
tracked (they only count to say where the vCenter's or the agent's VM is).

**Logs.**  The first state of every host is logged once at start (info; warn for a host
that is disconnected or not found); after that only changes are: a host disconnects
(warn) or connects again, enters or leaves maintenance, is no longer found (warn) or is
found again, a manager becomes unreachable (warn) or reachable again, the vCenter's or
the agent's VM is detected on another host.  Nothing is logged when nothing changed.

**One call at a time.**  A round skips a manager whose previous ``hosts()`` has not
answered yet (a vCenter may take long to answer during an outage), so a backend never
has two inventory calls at once.  A call that fails is "unreachable" with its reason;
the hosts keep their last known state (marked with the time it was read).

**Placement.**  After every answer, each configured host whose detected placement
differs from what was last passed on (every host at the first answer, so that a
placement restored from the saved state is corrected) is passed to ``on_placement`` as a
:class:`~upsagent.policy.events.Placement`; the daemon hands it to the engine (R6).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from upsagent.hypervisors.base import Backend, HostInfo
from upsagent.policy.events import Placement

if TYPE_CHECKING:
    from upsagent.config.managers import ManagerConfig
    from upsagent.config.slaveconf import SlaveConfig

__all__ = ["INTERVAL", "HostState", "Inventory", "ManagerState", "build_inventory",
           "manager_label"]

#: seconds between two rounds of the inventory
INTERVAL = 30.0

_log = Logger(namespace="upsagent.inventory")


@dataclass(frozen=True)
class HostState:
    """What the inventory last knew of one configured host (``read_at`` None: never
    read; then ``found``, ``connected`` and ``in_maintenance`` say nothing)."""

    host: str
    manager: str
    found: bool = False
    connected: bool | None = False
    in_maintenance: bool = False
    detail: str = ""
    runs_vcenter: bool = False
    runs_agent: bool = False
    read_at: float | None = None


@dataclass(frozen=True)
class ManagerState:
    """One manager: reachable at its last call (None: not answered yet), why not, when it
    last answered."""

    name: str
    hosts: tuple[str, ...]
    reachable: bool | None = None
    error: str = ""
    read_at: float | None = None


def manager_label(manager: ManagerConfig) -> str:
    """``vcenter vc1``, ``pool p1``, ``ssh nas``, ``local me``: the manager as the
    configuration names it."""
    key = getattr(manager, "host_key", "")
    return f"{key or manager.kind} {manager.name}"


def build_inventory(config: SlaveConfig, backends: Mapping[str, Backend], reactor: IReactorTime,
                    on_placement: Callable[[Placement], None] | None = None) -> Inventory:
    """The inventory of ``config``'s managers, on the agent's ``backends`` (host name ->
    backend; a manager without one, in a dry run, is left out)."""
    managers = []
    for manager, names in config.managers():
        backend = backends.get(names[0])
        if backend is not None:
            managers.append((manager_label(manager), backend, names))
    return Inventory(managers, reactor, on_placement)


_CONNECTED = {True: "connected", False: "disconnected",
              None: "connection not watched"}


def _words(state: HostState) -> str:
    if not state.found:
        return "not found"
    words = [_CONNECTED[state.connected]]
    if state.in_maintenance:
        words.append("in maintenance")
    if state.runs_vcenter:
        words.append("runs the vCenter's VM")
    if state.runs_agent:
        words.append("runs the agent's VM")
    return ", ".join(words) + (f" ({state.detail})" if state.detail else "")


class Inventory:
    """Reads ``managers`` (name, backend, configured host names) on ``reactor`` every
    ``interval`` seconds; ``on_placement`` receives the placement changes."""

    def __init__(self, managers: Sequence[tuple[str, Backend, Sequence[str]]],
                 reactor: IReactorTime,
                 on_placement: Callable[[Placement], None] | None = None,
                 interval: float = INTERVAL) -> None:
        self.reactor = reactor
        self.interval = interval
        self.on_placement = on_placement
        self._managers = [(name, backend, tuple(hosts)) for name, backend, hosts in managers]
        self.managers: dict[str, ManagerState] = {
            name: ManagerState(name, hosts) for name, _, hosts in self._managers}
        self.hosts: dict[str, HostState] = {
            host: HostState(host, name) for name, _, hosts in self._managers for host in hosts}
        #: where each flag was last seen, per manager (all its listed hosts)
        self._where: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        self._sent: dict[str, tuple[bool, bool]] = {}
        self._busy: set[str] = set()
        self._loop: LoopingCall | None = None
        self._stopped = False

    def start(self) -> None:
        """The first round now, then one every :attr:`interval` seconds."""
        self._loop = LoopingCall(self.round)
        self._loop.clock = self.reactor
        self._loop.start(self.interval, now=True)

    def stop(self) -> None:
        """No more rounds; answers still to come are ignored."""
        self._stopped = True
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def round(self) -> None:
        """Ask every manager not still busy with the previous round."""
        for name, backend, hosts in self._managers:
            if name in self._busy:
                _log.debug("inventory: {manager} has not answered the previous round yet",
                           manager=name)
                continue
            self._busy.add(name)
            d = maybeDeferred(backend.hosts)
            d.addCallbacks(self._answered, self._failed, callbackArgs=(name, hosts),
                           errbackArgs=(name,))
            d.addErrback(self._bug, name)

    def as_json(self) -> dict[str, Any]:
        """The inventory as JSON types (for ``upsagent status``)."""
        return {"interval": self.interval,
                "managers": [asdict(m) for m in self.managers.values()],
                "hosts": [asdict(h) for h in self.hosts.values()]}

    # -- answers -------------------------------------------------------------------------

    @staticmethod
    def _bug(failure: Failure, name: str) -> None:
        """What handling an answer raised (a bug): logged with the manager's name."""
        _log.failure("inventory: {manager}", failure, manager=name)

    def _failed(self, failure: Failure, name: str) -> None:
        self._busy.discard(name)
        if self._stopped:
            return
        old = self.managers[name]
        error = failure.getErrorMessage() or type(failure.value).__name__
        if old.reachable is not False:
            _log.warn("inventory: {manager} is unreachable: {error}", manager=name,
                      error=error)
        self.managers[name] = replace(old, reachable=False, error=error)

    def _answered(self, listed: list[HostInfo], name: str, hosts: tuple[str, ...]) -> None:
        self._busy.discard(name)
        if self._stopped:
            return
        now = self.reactor.seconds()
        old = self.managers[name]
        if old.reachable is False:
            _log.info("inventory: {manager} is reachable again", manager=name)
        self.managers[name] = replace(old, reachable=True, error="", read_at=now)
        by_name = {info.name: info for info in listed}
        for host in hosts:
            info = by_name.get(host)
            before = self.hosts[host]
            if info is None:
                after = replace(before, found=False, connected=False, in_maintenance=False,
                                detail="", runs_vcenter=False, runs_agent=False, read_at=now)
            else:
                after = HostState(host, name, True, info.connected, info.in_maintenance,
                                  info.detail, info.runs_vcenter, info.runs_agent, now)
            self._log_change(before, after)
            self.hosts[host] = after
            flags = (after.runs_vcenter, after.runs_agent)
            if self._sent.get(host) != flags:
                self._sent[host] = flags
                if self.on_placement is not None:
                    self.on_placement(Placement(host, *flags))
        self._log_placement(name, listed)

    def _log_change(self, before: HostState, after: HostState) -> None:
        host, manager = after.host, after.manager
        if before.read_at is None:
            level = _log.info if after.found and after.connected is not False else _log.warn
            level("inventory: {manager}: {host}: {state}", manager=manager, host=host,
                  state=_words(after))
            return
        if before.found != after.found:
            if after.found:
                _log.info("inventory: {manager}: {host} is listed again: {state}",
                          manager=manager, host=host, state=_words(after))
            else:
                _log.warn("inventory: {manager}: {host} is no longer listed: not found",
                          manager=manager, host=host)
            return
        if not after.found:
            return
        if before.connected != after.connected and after.connected is not None:
            if after.connected:
                _log.info("inventory: {manager}: {host} is connected again{detail}",
                          manager=manager, host=host,
                          detail=f" ({after.detail})" if after.detail else "")
            else:
                _log.warn("inventory: {manager}: {host} is disconnected{detail}",
                          manager=manager, host=host,
                          detail=f" ({after.detail})" if after.detail else "")
        if before.in_maintenance != after.in_maintenance:
            _log.info("inventory: {manager}: {host} {verb} maintenance", manager=manager,
                      host=host, verb="entered" if after.in_maintenance else "left")

    def _log_placement(self, name: str, listed: list[HostInfo]) -> None:
        """Log where the vCenter's and the agent's VM are when that changed (among all the
        hosts the manager lists, configured or not)."""
        where = (tuple(i.name for i in listed if i.runs_vcenter),
                 tuple(i.name for i in listed if i.runs_agent))
        before = self._where.get(name)
        self._where[name] = where
        for i, what in enumerate(("the vCenter's VM", "the agent's own VM")):
            old = before[i] if before is not None else ()
            if where[i] == old or (before is None and not where[i]):
                continue
            now_on = ", ".join(where[i]) or "no host it lists"
            was = f" (was on {', '.join(old)})" if old else ""
            _log.info("inventory: {manager}: {what} detected on {hosts}{was}",
                      manager=name, what=what, hosts=now_on, was=was)
