# -*- test-case-name: tests.test_scenarios -*-
"""The scenario files of ``upsagent simulate``: UPSes, hosts, agents and scripted events.

A scenario is a small TOML file (upsagent-simulate(8) documents every key)::

    name = "1-maintenance"
    description = "UPS1 fails; host1 enters maintenance at 60 s, shuts down at 120 s"
    duration = 600            # simulated seconds to run (default: last event + 600)
    poll = 5                  # seconds between the monitors' reads

    [[ups]]
    name = "UPS1"
    warning_period = 180      # NMC: the countdown starts this long after the mains failed
    shutdown_delay = 120      # NMC: the output goes off this long after the countdown starts

    [[cluster]]
    name = "vcenter"
    kind = "vsphere"          # vsphere (DRS) | xen (pool) | standalone
    migration_time = 10

    [[host]]
    name = "host1"
    cluster = "vcenter"
    agent = "mgmt"
    powered_by = ["UPS1"]
    maintenance_after = 60
    shutdown_after = 120
    vms = ["vm1", "vm2"]

    [[event]]
    t = 0
    ups = "UPS1"
    status = "OB DISCHRG"

Host keys are :class:`~upsagent.policy.plan.HostPlan`'s, plus what only the simulated world
needs (``vms``, ``boot_time``, ``stop_time``, ``command_time``, ...).  :func:`load`
checks every key and value and raises :class:`ScenarioError` naming the table, the entry
and the key; unknown keys are errors, so a typo never silently changes a scenario.
:func:`builtin` / :func:`builtin_names` give the scenarios shipped with the package
(``upsagent/simulator/scenarios/*.toml``, package data of ``upsagent.simulator``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from upsagent.policy.plan import (
    DEFAULT_RUNTIME_MARGIN, RUNTIME_MARGIN_RULE, HostPlan, Plan, Supply, UpsCountdown,
    UpsPlan, VmGroup, VmGroupError, read_vm_groups)

__all__ = [
    "AgentSpec", "ClusterSpec", "EventSpec", "HostSpec", "Scenario", "ScenarioError",
    "UpsSpec", "VmSpec", "builtin", "builtin_names", "load", "loads",
]

_PACKAGE = "upsagent.simulator"
_FOLDER = "scenarios"


class ScenarioError(ValueError):
    """A scenario file that cannot be run; the message says where and why."""


@dataclass(frozen=True)
class UpsSpec:
    """A simulated UPS: its NMC countdown, battery and timers."""

    name: str
    warning_period: float | None = None
    shutdown_delay: float | None = None
    #: seconds from the end of a primary's shutdown to the output going off (offdelay)
    killpower_delay: float = 20.0
    #: seconds from mains back (or output off, if later) to the output coming back on
    return_delay: float = 0.0
    #: seconds of runtime at the start (None: the UPS publishes none); drains 1 s/s on battery
    runtime: float | None = None
    #: LB is added when the runtime falls to this
    runtime_low: float | None = None
    #: runtime regained per second on line
    recharge_rate: float = 0.1
    charge: float | None = None
    status: str = "OL"

    @property
    def countdown(self) -> UpsCountdown | None:
        if self.shutdown_delay is None:
            return None
        return UpsCountdown(self.warning_period or 0.0, self.shutdown_delay)


@dataclass(frozen=True)
class ClusterSpec:
    name: str
    kind: str = "vsphere"
    migration_time: float = 10.0
    vm_shutdown_time: float = 10.0


@dataclass(frozen=True)
class VmSpec:
    name: str
    tools: bool = True
    shutdown_time: float | None = None


@dataclass(frozen=True)
class HostSpec:
    """A host: its plan, the agent protecting it, and how the simulated machine behaves."""

    plan: HostPlan
    agent: str = "agent"
    cluster: str | None = None
    vms: tuple[VmSpec, ...] = ()
    boot_time: float = 60.0
    #: how long the OS really takes to stop (default: the plan's shutdown_duration)
    stop_time: float | None = None
    power_on: bool = True
    autostop: bool = False
    capacity: int | None = None
    #: how long the host's command really runs
    command_time: float = 1.0


@dataclass(frozen=True)
class AgentSpec:
    """An agent: the UPSes it is the primary for and its ``[slave]`` settings."""

    name: str
    primary: tuple[str, ...] = ()
    deadtime: float = 15.0
    hostsync: float = 15.0
    nocommwarntime: float = 300.0
    #: the runtime trigger's share of the need (``[slave]``'s runtime_margin)
    runtime_margin: float = DEFAULT_RUNTIME_MARGIN


@dataclass(frozen=True)
class EventSpec:
    """One scripted event at ``t`` seconds."""

    t: float
    ups: str | None = None
    status: str | None = None
    runtime: float | None = None
    charge: float | None = None
    comm: str | None = None
    fsd: bool = False
    agent: str | None = None
    restart: float | None = None
    #: the cluster whose manager (vCenter, pool master) stops or starts answering
    cluster: str | None = None
    reachable: bool | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str = ""
    duration: float = 600.0
    poll: float = 5.0
    ups: tuple[UpsSpec, ...] = ()
    clusters: tuple[ClusterSpec, ...] = ()
    hosts: tuple[HostSpec, ...] = ()
    agents: tuple[AgentSpec, ...] = ()
    events: tuple[EventSpec, ...] = field(default=())

    def plan_for(self, agent: AgentSpec) -> Plan:
        """The policy plan of one agent: its hosts and the UPSes they (or it) depend on;
        its monitors read every ``poll`` seconds (the runtime trigger's margin)."""
        hosts = tuple(h.plan for h in self.hosts if h.agent == agent.name)
        used = {s.ups for h in hosts for s in h.powered_by} | set(agent.primary)
        ups = tuple(UpsPlan(u.name, "primary" if u.name in agent.primary else "secondary",
                            u.countdown) for u in self.ups if u.name in used)
        return Plan(ups=ups, hosts=hosts, deadtime=agent.deadtime, hostsync=agent.hostsync,
                    nocommwarntime=agent.nocommwarntime, name=agent.name, poll=self.poll,
                    runtime_margin=agent.runtime_margin)


# -- parsing ---------------------------------------------------------------------------

_NUMBER = (int, float)


class _Table:
    """One TOML table being read: typed getters that name the place on error."""

    def __init__(self, where: str, data: Mapping[str, Any]) -> None:
        if not isinstance(data, Mapping):
            raise ScenarioError(f"{where}: must be a table")
        self.where = where
        self.data = data
        self.used: set[str] = set()

    def _get(self, key: str, types: tuple[type, ...], what: str, default: Any) -> Any:
        self.used.add(key)
        if key not in self.data:
            return default
        value = self.data[key]
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            raise ScenarioError(f"{self.where}: {key} must be {what}, not {value!r}")
        return value

    def number(self, key: str, default: float | None = None, minimum: float = 0.0) -> Any:
        value = self._get(key, _NUMBER, "a number", default)
        if value is not None and value < minimum:
            raise ScenarioError(f"{self.where}: {key} must be at least {minimum:g}")
        return float(value) if value is not None else None

    def whole(self, key: str, default: int | None = None) -> Any:
        value = self._get(key, (int,), "a whole number", default)
        if value is not None and value < 0:
            raise ScenarioError(f"{self.where}: {key} must not be negative")
        return value

    def text(self, key: str, default: str | None = None) -> Any:
        return self._get(key, (str,), "a string", default)

    def flag(self, key: str, default: bool = False) -> bool:
        value: bool = self._get(key, (bool,), "true or false", default)
        return value

    def texts(self, key: str, single: bool = True) -> tuple[str, ...]:
        """A list of strings; with ``single``, one string alone is a list of one."""
        types: tuple[type, ...] = (list, str) if single else (list,)
        value = self._get(key, types, "a list of strings", [])
        if isinstance(value, str):
            return (value,)
        if not all(isinstance(v, str) for v in value):
            raise ScenarioError(f"{self.where}: {key} must be a list of strings")
        return tuple(value)

    def items(self, key: str) -> list[Any]:
        """A list; one string alone is a list of one."""
        value = self._get(key, (list, str), "a list", [])
        return [value] if isinstance(value, str) else list(value)

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise ScenarioError(f"{self.where}: unknown key {unknown[0]!r}")


def _ups(table: _Table) -> UpsSpec:
    spec = UpsSpec(
        name=table.text("name") or "", warning_period=table.number("warning_period"),
        shutdown_delay=table.number("shutdown_delay"),
        killpower_delay=table.number("killpower_delay", 20.0),
        return_delay=table.number("return_delay", 0.0), runtime=table.number("runtime"),
        runtime_low=table.number("runtime_low"), recharge_rate=table.number("recharge_rate", 0.1),
        charge=table.number("charge"), status=table.text("status", "OL"))
    if spec.warning_period is not None and spec.shutdown_delay is None:
        raise ScenarioError(f"{table.where}: warning_period needs shutdown_delay")
    return spec


def _supplies(table: _Table) -> tuple[Supply, ...]:
    supplies = []
    for i, item in enumerate(table.items("powered_by")):
        if isinstance(item, str):
            supplies.append(Supply(item))
            continue
        sub = _Table(f"{table.where}: powered_by[{i}]", item)
        supplies.append(Supply(sub.text("ups") or "", sub.whole("power_value", 1)))
        sub.done()
    return tuple(supplies)


def _vms(table: _Table) -> tuple[VmSpec, ...]:
    vms = []
    for i, item in enumerate(table.items("vms")):
        if isinstance(item, str):
            vms.append(VmSpec(item))
            continue
        sub = _Table(f"{table.where}: vms[{i}]", item)
        vms.append(VmSpec(sub.text("name") or "", sub.flag("tools", True),
                          sub.number("shutdown_time")))
        sub.done()
    return tuple(vms)


def _vm_groups(table: _Table) -> tuple[VmGroup, ...]:
    value = table._get("vm_groups", (list,), "a list of { patterns, timeout } tables", None)
    if value is None:
        return ()
    try:
        return read_vm_groups(value)
    except VmGroupError as exc:
        raise ScenarioError(f"{table.where}: {exc.key}: {exc.reason}") from None


def _host(table: _Table, clusters: Mapping[str, ClusterSpec]) -> HostSpec:
    name = table.text("name") or ""
    cluster = table.text("cluster")
    if cluster is not None and cluster not in clusters:
        raise ScenarioError(f"{table.where}: cluster {cluster!r} is not defined")
    kind = clusters[cluster].kind if cluster is not None else "local"
    backend = table.text("backend", kind if kind in ("vsphere", "xen") else "local")
    shutdown_on_critical = table._get("shutdown_on_critical", (bool,), "true or false", None)
    plan = HostPlan(
        name=name, backend=backend, powered_by=_supplies(table),
        min_supplies=table.whole("min_supplies", 1),
        maintenance_after=table.number("maintenance_after"),
        shutdown_after=table.number("shutdown_after"),
        shutdown_delay=table.number("shutdown_delay", 0.0),
        shutdown_duration=table.number("shutdown_duration", 60.0),
        command=table.texts("command", single=False),
        command_budget=table.number("command_budget", 0.0),
        message=table.text("message"), debounce=table.number("debounce", 5.0),
        maintenance_timeout=table.number("maintenance_timeout"),
        vm_shutdown_timeout=table.number("vm_shutdown_timeout", 60.0), cluster=cluster,
        is_pool_master=table.flag("pool_master"), shutdown_on_critical=shutdown_on_critical,
        vm_groups=_vm_groups(table), power_on_vms=bool(table.flag("power_on_vms")),
        runs_vcenter=bool(table.flag("runs_vcenter")), runs_agent=bool(table.flag("runs_agent")))
    return HostSpec(
        plan=plan, agent=table.text("agent", "agent"), cluster=cluster, vms=_vms(table),
        boot_time=table.number("boot_time", 60.0), stop_time=table.number("stop_time"),
        power_on=table.flag("power_on", True), autostop=table.flag("autostop"),
        capacity=table.whole("capacity"), command_time=table.number("command_time", 1.0))


def _event(table: _Table) -> EventSpec:
    event = EventSpec(
        t=table.number("t", minimum=0.0) if "t" in table.data else _missing(table, "t"),
        ups=table.text("ups"), status=table.text("status"), runtime=table.number("runtime"),
        charge=table.number("charge"), comm=table.text("comm"), fsd=table.flag("fsd"),
        agent=table.text("agent"), restart=table.number("restart"),
        cluster=table.text("cluster"),
        reachable=table._get("reachable", (bool,), "true or false", None))
    if (event.cluster is None) != (event.reachable is None):
        raise ScenarioError(f"{table.where}: a cluster event needs reachable (true or "
                            "false), and reachable a cluster")
    if event.comm not in (None, "lost", "ok"):
        raise ScenarioError(f"{table.where}: comm must be \"lost\" or \"ok\"")
    if event.agent is not None and event.restart is None:
        raise ScenarioError(f"{table.where}: an agent event needs restart (seconds down)")
    if event.agent is None and event.ups is None and event.cluster is None:
        raise ScenarioError(f"{table.where}: an event names a ups, an agent or a cluster")
    if event.ups is not None and not (event.status or event.comm or event.fsd
                                      or event.runtime is not None
                                      or event.charge is not None):
        raise ScenarioError(f"{table.where}: nothing happens (status, runtime, charge, "
                            "comm or fsd)")
    return event


def _missing(table: _Table, key: str) -> Any:
    raise ScenarioError(f"{table.where}: {key} is required")


def _tables(data: Mapping[str, Any], key: str) -> list[_Table]:
    items = data.get(key, [])
    if not isinstance(items, list):
        raise ScenarioError(f"[[{key}]] must be an array of tables")
    return [_Table(f"{key}[{i}]", item) for i, item in enumerate(items)]


def _named(tables: list[Any], what: str) -> None:
    names = [t.name if hasattr(t, "name") else t.plan.name for t in tables]
    for name in names:
        if not name:
            raise ScenarioError(f"a {what} without a name")
        if names.count(name) > 1:
            raise ScenarioError(f"{what} {name!r} is defined twice")


def loads(text: str, source: str = "<scenario>") -> Scenario:
    """The scenario in TOML ``text``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{source}: {exc}") from None
    try:
        return _build(data, source)
    except ScenarioError as exc:
        raise ScenarioError(f"{source}: {exc}") from None


def _build(data: Mapping[str, Any], source: str) -> Scenario:
    top = _Table("top level", data)
    for key in ("ups", "cluster", "host", "agent", "event"):
        top.used.add(key)
    ups = []
    for table in _tables(data, "ups"):
        ups.append(_ups(table))
        table.done()
    clusters = []
    for table in _tables(data, "cluster"):
        clusters.append(ClusterSpec(table.text("name") or "", table.text("kind", "vsphere"),
                                    table.number("migration_time", 10.0),
                                    table.number("vm_shutdown_time", 10.0)))
        table.done()
        if clusters[-1].kind not in ("vsphere", "xen", "standalone"):
            raise ScenarioError(f"{table.where}: kind must be vsphere, xen or standalone")
    by_name = {c.name: c for c in clusters}
    hosts = []
    for table in _tables(data, "host"):
        hosts.append(_host(table, by_name))
        table.done()
    agents = []
    for table in _tables(data, "agent"):
        agents.append(AgentSpec(table.text("name") or "", table.texts("primary"),
                                table.number("deadtime", 15.0), table.number("hostsync", 15.0),
                                table.number("nocommwarntime", 300.0),
                                table.number("runtime_margin", DEFAULT_RUNTIME_MARGIN)))
        table.done()
        if agents[-1].runtime_margin > 1:
            raise ScenarioError(f"{table.where}: runtime_margin {RUNTIME_MARGIN_RULE}")
    events = []
    for table in _tables(data, "event"):
        events.append(_event(table))
        table.done()
    _named(ups, "ups")
    _named(clusters, "cluster")
    _named(hosts, "host")
    _named(agents, "agent")
    known_ups = {u.name for u in ups}
    declared = {a.name for a in agents}
    for host in hosts:
        for supply in host.plan.powered_by:
            if supply.ups not in known_ups:
                raise ScenarioError(f"host {host.plan.name}: UPS {supply.ups!r} is not defined")
        if host.agent not in declared:
            agents.append(AgentSpec(host.agent))
            declared.add(host.agent)
    for agent in agents:
        for name in agent.primary:
            if name not in known_ups:
                raise ScenarioError(f"agent {agent.name}: UPS {name!r} is not defined")
    for event in events:
        if event.ups is not None and event.ups not in known_ups:
            raise ScenarioError(f"event at {event.t:g} s: UPS {event.ups!r} is not defined")
        if event.cluster is not None and event.cluster not in by_name:
            raise ScenarioError(f"event at {event.t:g} s: cluster {event.cluster!r} is not "
                                "defined")
        if event.agent is not None and event.agent not in declared:
            raise ScenarioError(f"event at {event.t:g} s: agent {event.agent!r} is not "
                                "defined")
    last = max((e.t + (e.restart or 0.0) for e in events), default=0.0)
    name = top.text("name", Path(source).stem)
    scenario = Scenario(
        name=name, description=top.text("description", ""),
        duration=top.number("duration", last + 600.0), poll=top.number("poll", 5.0, minimum=0.1),
        ups=tuple(ups), clusters=tuple(clusters), hosts=tuple(hosts), agents=tuple(agents),
        events=tuple(sorted(events, key=lambda e: e.t)))
    top.done()
    return scenario


def load(path: str | Path) -> Scenario:
    """The scenario in file ``path``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: {exc.strerror}") from None
    return loads(text, str(path))


def builtin_names() -> list[str]:
    """The scenarios shipped with upsagent, by name."""
    files = resources.files(_PACKAGE).joinpath(_FOLDER)
    return sorted(f.name[:-5] for f in files.iterdir() if f.name.endswith(".toml"))


def builtin(name: str) -> Scenario:
    """A shipped scenario by name (``1-maintenance``); KeyError if there is none."""
    if name not in builtin_names():
        raise KeyError(name)
    text = resources.files(_PACKAGE).joinpath(_FOLDER).joinpath(f"{name}.toml").read_text(
        encoding="utf-8")
    return loads(text, f"{name}.toml")
