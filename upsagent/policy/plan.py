# -*- test-case-name: tests.test_policy -*-
"""What one slave agent protects, as plain values, and the check that the timers fit.

A :class:`Plan` is everything the policy engine needs to know about one agent: the UPSes it
monitors (:class:`UpsPlan`: its role on each, the UPS's own cut-off countdown), the hosts it
protects (:class:`HostPlan`: which UPSes feed them, the timers and their durations), and
upsmon's global settings (DEADTIME, HOSTSYNC, NOTIFYMSG...).  Plans are frozen dataclasses:
the TOML loader, the upsmon.conf importer, ``upsagent simulate`` and the tests all build the
same values, and :func:`validate` checks them the same way for ``check-config``, at start-up
and in ``simulate``.

Where a setting lives, and why
------------------------------
* Per **UPS** (:class:`UpsPlan`): the role (NUT's ``primary``/``secondary``, which decides
  HOSTSYNC and who sets FSD), the UPS's own countdown, and two rules only the master's
  ``[master.shutdown]`` uses today: a time on battery after which the UPS is critical, and
  whether this agent holds the UPS's FSD latch itself.  In upsmon.conf the role is on the
  MONITOR line, i.e. per UPS and per agent, not per protected host.
* Per **agent** (:class:`Plan`): DEADTIME, HOSTSYNC, NOCOMMWARNTIME, RBWARNTIME and the
  notification texts.  They are global in upsmon.conf too, and they decide whether a *UPS*
  is critical, which must not depend on which host asks.
* Per **host** (:class:`HostPlan`): the supplies and MINSUPPLIES, the timers, the durations,
  the command, the message and the debounce.  FINALDELAY is a host's ``shutdown_delay``
  (the pause between the SHUTDOWN notification and the shutdown); :func:`upsmon_plan`
  builds the plan that behaves as upsmon does.

Times are seconds.  Timers are measured from the moment the host's power became
insufficient (see :mod:`upsagent.policy.rules`).

The runtime trigger (R4b) is per agent too: :attr:`Plan.poll` (the seconds between two
reads of a UPS on battery, POLLFREQALERT) and :attr:`Plan.runtime_margin` (a share of a
host's need) make its margin, and :func:`runtime_trigger` gives a host's trigger point with
its parts, for the engine and for ``check-config`` alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Literal

__all__ = [
    "BackendTraits",
    "DEFAULT_RUNTIME_MARGIN",
    "DEFAULT_SHUTDOWN_COMMAND",
    "HostPlan",
    "Plan",
    "RUNTIME_MARGIN_RULE",
    "RuntimeTrigger",
    "Supply",
    "TRAITS",
    "UpsCountdown",
    "UpsPlan",
    "VmGroup",
    "VmGroupError",
    "read_vm_groups",
    "vm_batches",
    "runtime_trigger",
    "seconds",
    "shutdown_sequence",
    "traits_of",
    "upsmon_plan",
    "is_upsmon_host",
]

Role = Literal["primary", "secondary"]

#: what upsmon users usually have as SHUTDOWNCMD, as an argument list (never a shell string)
DEFAULT_SHUTDOWN_COMMAND = ("/sbin/shutdown", "-h", "+0")

#: the share of a host's need that the runtime trigger adds to its margin by default, for
#: the error of a UPS's runtime estimate (R4b): a quarter, on top of two polls.  Acting
#: early costs a shutdown that was close anyway; acting late loses the host.
DEFAULT_RUNTIME_MARGIN = 0.25


@dataclass(frozen=True)
class BackendTraits:
    """What a kind of backend can do; the engine plans by these, never by the kind's name.

    ``vms``: the host runs VMs that may have to be stopped before it.  ``maintenance``: it
    has a maintenance mode that moves the VMs away.  ``evacuate_on_shutdown``: a shutdown
    first moves the VMs away (XenServer: "shutdown alone implies evacuation").  ``agent``:
    the host is the machine the agent runs on, so it goes last of the agent's hosts.
    """

    vms: bool = False
    maintenance: bool = False
    evacuate_on_shutdown: bool = False
    agent: bool = False
    #: with no timers at all, the host still shuts down when its power is critical
    #: (upsmon's behaviour); hypervisor hosts without timers are left alone (docs/config.md)
    shutdown_on_critical: bool = True


#: the backend registry's kinds, as the engine sees them
TRAITS: Mapping[str, BackendTraits] = {
    "local": BackendTraits(agent=True),
    "ssh": BackendTraits(),
    "vsphere": BackendTraits(vms=True, maintenance=True, shutdown_on_critical=False),
    "xen": BackendTraits(vms=True, maintenance=True, evacuate_on_shutdown=True,
                         shutdown_on_critical=False),
    #: a XenServer pool master protected by its own agent (R6): the agent's own machine,
    #: whose shutdown first stops the VMs that are left on it (the pool's last host)
    "xenmaster": BackendTraits(vms=True, agent=True),
    "simulated": BackendTraits(vms=True, maintenance=True, shutdown_on_critical=False),
}


def traits_of(kind: str) -> BackendTraits:
    """The traits of backend ``kind``; an unknown kind is treated as a plain remote host."""
    return TRAITS.get(kind, BackendTraits())


@dataclass(frozen=True)
class UpsCountdown:
    """A UPS's own cut-off, counted from the moment it went on battery.

    An NMC set to "Client & UPS shutdown" starts its countdown ``warning_period`` seconds
    after the mains failed and switches the output off ``shutdown_delay`` seconds later
    (seeds 000/001: 180 + 120 s in the tests, 900 + 120 s by default).  A UPS that only
    publishes ``ups.timer.shutdown`` can be described with ``warning_period=0``.
    """

    warning_period: float
    shutdown_delay: float

    @property
    def cuts_at(self) -> float:
        """Seconds after the power failure at which the output goes off."""
        return self.warning_period + self.shutdown_delay


@dataclass(frozen=True)
class UpsPlan:
    """One monitored UPS: its name as the monitor knows it (``ups@host[:port]``)."""

    name: str
    role: Role = "secondary"
    countdown: UpsCountdown | None = None
    #: R2d: critical once on battery this long without a break (PowerAct Pro's "wait
    #: time", the master's ``on_battery_for``); None: time on battery alone never is
    on_battery_limit: float | None = None
    #: R2e: this agent holds the UPS's FSD latch itself (the master, which serves it): OB+LB
    #: is critical at once, as for a primary, and FSD is set as soon as the UPS is critical,
    #: whether or not its hosts shut down.  The role still says whether this agent's own
    #: host's shutdown sets FSD on it and waits for its sessions (``primary``) or not.
    holds_latch: bool = False


@dataclass(frozen=True)
class Supply:
    """One power supply of a host: the UPS feeding it and its power value (upsmon's)."""

    ups: str
    power_value: int = 1


@dataclass(frozen=True)
class VmGroup:
    """One VM priority group of a host (``vm_groups``): the VMs whose names match one of
    ``patterns`` (shell-style, case-sensitive: ``db*``, ``web-?``) get a guest shutdown
    together and are powered off if still running after ``timeout`` seconds; then the next
    group starts.  A VM belongs to the first group it matches."""

    patterns: tuple[str, ...]
    timeout: float

    def matches(self, vm: str) -> bool:
        return any(fnmatchcase(vm, pattern) for pattern in self.patterns)


class VmGroupError(ValueError):
    """A ``vm_groups`` value that is not well formed: ``key`` names the part
    (``vm_groups[1].timeout``), ``reason`` says why."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key, self.reason = key, reason


def read_vm_groups(value: object, key: str = "vm_groups") -> tuple[VmGroup, ...]:
    """``vm_groups`` as written in TOML (a list of ``{patterns = [...], timeout = N}``
    tables; ``patterns`` may be one string) as :class:`VmGroup` values, or
    :class:`VmGroupError` naming the key (``key[2].timeout``)."""
    if not isinstance(value, list):
        raise VmGroupError(key, "must be a list of { patterns = [...], timeout = seconds } "
                           "tables")
    groups = []
    for i, entry in enumerate(value):
        at = f"{key}[{i + 1}]"
        if not isinstance(entry, dict):
            raise VmGroupError(at, "must be a table { patterns = [...], timeout = seconds }")
        for name in entry:
            if name not in ("patterns", "timeout"):
                raise VmGroupError(f"{at}.{name}", "unknown key (patterns or timeout)")
        patterns = entry.get("patterns")
        if isinstance(patterns, str):
            patterns = [patterns]
        if (not isinstance(patterns, list) or not patterns
                or not all(isinstance(p, str) and p for p in patterns)):
            raise VmGroupError(f"{at}.patterns", "must be a non-empty list of VM name "
                               "patterns (such as [\"db*\", \"vc*\"])")
        timeout = entry.get("timeout")
        if timeout is None:
            raise VmGroupError(f"{at}.timeout", "is required (the seconds the group's "
                               "guests get before they are powered off)")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise VmGroupError(f"{at}.timeout", "must be a number (seconds)")
        if timeout < 0:
            raise VmGroupError(f"{at}.timeout", f"must not be negative ({timeout:g})")
        groups.append(VmGroup(tuple(patterns), float(timeout)))
    return tuple(groups)


def vm_batches(groups: Sequence[VmGroup], vms: Iterable[str],
               budget: float) -> list[tuple[tuple[str, ...], float]]:
    """The order in which a backend stops ``vms`` within ``budget`` seconds: one batch per
    group (its VMs, sorted, and its timeout), then the VMs matching no group with what is
    left of the budget (0 when the groups use all of it: guest shutdown, then power-off
    at once).  Empty batches are left out; without groups, one batch of all the VMs."""
    left = sorted(set(vms))
    batches: list[tuple[tuple[str, ...], float]] = []
    for group in groups:
        mine = [vm for vm in left if group.matches(vm)]
        left = [vm for vm in left if vm not in mine]
        if mine:
            batches.append((tuple(mine), group.timeout))
    if left:
        rest = max(budget - sum(g.timeout for g in groups), 0.0)
        batches.append((tuple(left), rest))
    return batches


@dataclass(frozen=True)
class HostPlan:
    """One protected host: what happens to it and when.

    ``maintenance_after`` / ``shutdown_after``: seconds after the host's power became
    insufficient (None: the step is off).  ``shutdown_delay``: the wait between the order
    and the start (PowerAct Pro's "shutdown start delay", upsmon's FINALDELAY).
    ``shutdown_duration``: how long the OS needs to stop.  ``command`` runs before the
    shutdown, stopped after ``command_budget`` seconds.  ``vm_shutdown_timeout``: how long
    guests get to stop before they are powered off.  ``maintenance_timeout``: how long the
    VMs get to move away (default: until the shutdown timer, else 300 s).  ``cluster``:
    hosts of one cluster or pool enter maintenance one after the other, in plan order.
    ``debounce``: a power failure shorter than this starts no step.
    """

    name: str
    backend: str = "local"
    powered_by: tuple[Supply, ...] = ()
    min_supplies: int = 1
    maintenance_after: float | None = None
    shutdown_after: float | None = None
    shutdown_delay: float = 0.0
    shutdown_duration: float = 60.0
    command: tuple[str, ...] = ()
    command_budget: float = 0.0
    message: str | None = None
    debounce: float = 5.0
    maintenance_timeout: float | None = None
    vm_shutdown_timeout: float = 60.0
    cluster: str | None = None
    #: XenServer pool master: never scheduled with the others (:attr:`left_alone`) unless
    #: this is its own agent (kind ``xenmaster``), which stops its VMs and then itself
    is_pool_master: bool = False
    #: None: the backend's default (see :class:`BackendTraits`)
    shutdown_on_critical: bool | None = None
    #: VM priority groups, stopped in order within ``vm_shutdown_timeout`` (the VMs
    #: matching no group last, with what the groups leave of it): :func:`vm_batches`
    vm_groups: tuple[VmGroup, ...] = ()
    #: once power is back and the host is up (out of maintenance, booted), start again
    #: the VMs the agent shut down, in reverse group order (R7)
    power_on_vms: bool = False
    #: the manager (vCenter) the host belongs to (``vcenter`` of a ``[[host]]``); hosts
    #: without one are grouped by ``cluster``
    manager: str | None = None
    #: the host runs the vCenter VM / the agent's own VM: its shutdown waits, before its
    #: VMs are stopped, for the other hosts of its manager whose shutdown has started
    #: (R6; the agent's VM's host after the vCenter's)
    runs_vcenter: bool = False
    runs_agent: bool = False

    @property
    def manager_key(self) -> str | None:
        """What groups the hosts of one manager: ``manager``, else ``cluster``."""
        return self.manager or self.cluster

    @property
    def last_rank(self) -> int:
        """R6: 0 for most hosts, 1 for the vCenter's host, 2 for the agent's VM's host:
        a host waits for the hosts of its manager with a lower rank."""
        return 2 if self.runs_agent else 1 if self.runs_vcenter else 0

    @property
    def traits(self) -> BackendTraits:
        return traits_of(self.backend)

    @property
    def left_alone(self) -> bool:
        """A pool master in another agent's plan: never scheduled there.  Its own agent
        (where it is the agent's machine, kind ``xenmaster``) protects it."""
        return self.is_pool_master and not self.traits.agent

    @property
    def shuts_down(self) -> bool:
        """Whether this host is ever shut down (by its timer or when critical)."""
        if self.left_alone:
            return False
        if self.shutdown_on_critical is not None:
            return self.shutdown_on_critical or self.shutdown_after is not None
        return self.shutdown_after is not None or self.traits.shutdown_on_critical

    @property
    def enters_maintenance(self) -> bool:
        return (self.maintenance_after is not None and self.traits.maintenance
                and not self.left_alone)

    def effective_maintenance_timeout(self) -> float:
        """How long the VMs get to move away when the maintenance step starts on time."""
        if self.maintenance_timeout is not None:
            return self.maintenance_timeout
        if self.maintenance_after is not None and self.shutdown_after is not None:
            return max(self.shutdown_after - self.maintenance_after, 0.0)
        return 300.0

    @property
    def total_power(self) -> int:
        return sum(s.power_value for s in self.powered_by)


@dataclass(frozen=True)
class Plan:
    """Everything one slave agent protects, with upsmon's global settings.

    ``name`` names the agent in notifications and logs (its host name, usually).
    """

    ups: tuple[UpsPlan, ...] = ()
    hosts: tuple[HostPlan, ...] = ()
    #: a UPS unheard for this long while last seen on battery is treated as OB+LB
    deadtime: float = 15.0
    #: primary: longest wait for the secondaries to log out; secondary: longest wait for
    #: the primary to set FSD after OB+LB
    hostsync: float = 15.0
    nocommwarntime: float = 300.0
    rbwarntime: float = 43200.0
    #: NOTIFYMSG overrides, by notification type ("%s" is the UPS name)
    notify_messages: Mapping[str, str] = field(default_factory=dict)
    name: str = "agent"
    #: seconds between two reads of a UPS on battery (POLLFREQALERT); the runtime trigger's
    #: margin counts two: the age of the reading and the wait for the next one (R4b)
    poll: float = 5.0
    #: the share of a host's need the runtime trigger adds to its margin, for the error of
    #: the UPS's runtime estimate (0 to 1; R4b)
    runtime_margin: float = DEFAULT_RUNTIME_MARGIN

    def ups_plan(self, name: str) -> UpsPlan:
        """The plan of UPS ``name`` (a secondary without countdown if not listed)."""
        for ups in self.ups:
            if ups.name == name:
                return ups
        return UpsPlan(name)

    def host(self, name: str) -> HostPlan:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)

    @property
    def reads_battery(self) -> bool:
        """Whether the agent reads ``battery.charge`` and ``battery.runtime``: only a plan
        with timed steps (whose runtime trigger needs them); upsmon reads ``ups.status``
        alone, and so does a plan made like upsmon's."""
        return any(h.maintenance_after is not None or h.shutdown_after is not None
                   for h in self.hosts)

    @property
    def agent_host(self) -> HostPlan | None:
        """The host the agent itself runs on (a ``local`` host), if it protects it."""
        for host in self.hosts:
            if host.traits.agent:
                return host
        return None


def upsmon_plan(monitors: Iterable[tuple[str, int, Role]], *, min_supplies: int = 1,
                final_delay: float = 5.0, deadtime: float = 15.0, hostsync: float = 15.0,
                name: str = "localhost") -> Plan:
    """The plan that behaves as upsmon: one local host, no timers, no debounce.

    ``monitors`` are upsmon.conf's MONITOR lines as (system, power value, role).  The host
    shuts down when its power is critical (NUT's rules), after the SHUTDOWN notification
    and FINALDELAY; a primary first sets FSD and waits for the secondaries (HOSTSYNC).
    SHUTDOWNCMD is the local backend's business (:mod:`upsagent.hypervisors.local`).
    """
    monitors = list(monitors)
    return Plan(
        ups=tuple(UpsPlan(system, role) for system, _, role in monitors),
        hosts=(HostPlan(
            name=name, backend="local",
            powered_by=tuple(Supply(system, value) for system, value, _ in monitors),
            min_supplies=min_supplies, shutdown_delay=final_delay, debounce=0.0,
            shutdown_on_critical=True),),
        deadtime=deadtime, hostsync=hostsync, name=name)


def is_upsmon_host(host: HostPlan) -> bool:
    """Whether ``host`` is exactly the host :func:`upsmon_plan` makes of its own supplies
    (upsmon.conf, or ``[slave]`` without ``[[host]]``): no timers, no debounce, shut down on
    critical power only, its ``shutdown_delay`` upsmon's FINALDELAY."""
    again = upsmon_plan([(s.ups, s.power_value, "secondary") for s in host.powered_by],
                        min_supplies=host.min_supplies, final_delay=host.shutdown_delay,
                        name=host.name).hosts[0]
    return host == again


def seconds(value: float) -> str:
    """``60 s``, ``2.5 s``: how durations appear in findings and trigger texts."""
    return f"{value:g} s"


#: what :attr:`Plan.runtime_margin` must be, as the errors of every front end say it
RUNTIME_MARGIN_RULE = "must be a share of the need from 0 to 1 (0.25 adds 25 %)"


def shutdown_sequence(host: HostPlan, plan: Plan) -> list[tuple[str, float]]:
    """The parts of a host's shutdown and their worst-case durations, in order.

    What :func:`validate` adds up, and what the engine's runtime trigger compares with the
    UPS's remaining runtime.  VMs count only where the host runs VMs (a failed maintenance
    leaves them to be stopped); a primary's own host first waits up to HOSTSYNC for the
    secondaries.
    """
    parts: list[tuple[str, float]] = []
    if host.traits.agent and any(
            plan.ups_plan(s.ups).role == "primary" for s in host.powered_by):
        parts.append(("HOSTSYNC", plan.hostsync))
    if host.shutdown_delay:
        parts.append(("delay", host.shutdown_delay))
    if host.command:
        parts.append(("command", host.command_budget))
    if host.traits.evacuate_on_shutdown and not host.enters_maintenance:
        parts.append(("evacuation", host.effective_maintenance_timeout()))
    if host.traits.vms:
        parts.append(("VMs", host.vm_shutdown_timeout))
    parts.append(("OS", host.shutdown_duration))
    return parts


@dataclass(frozen=True)
class RuntimeTrigger:
    """R4b for one host: act at once when the UPS's runtime is at most :attr:`at`.

    ``parts``: what the rest of the host's steps need (:func:`shutdown_sequence`, or the
    maintenance time limit of a host that is never shut down).  The margin on top is two
    ``poll`` intervals (the reading may be one old, and the next comes one later) and
    ``share`` of the need (a UPS's runtime estimate is an estimate).
    """

    parts: tuple[tuple[str, float], ...]
    poll: float
    share: float

    @property
    def need(self) -> float:
        """Seconds the rest of the host's steps need."""
        return sum(d for _, d in self.parts)

    @property
    def margin(self) -> float:
        """Two polls plus ``share`` of the need."""
        return 2 * self.poll + self.share * self.need

    @property
    def at(self) -> float:
        """The runtime at (or below) which the trigger acts: need + margin."""
        return self.need + self.margin

    def explain(self, poll_key: str = "poll", share_key: str = "runtime_margin") -> str:
        """``at most 160 s = 120 s the steps need (VMs 60 s + OS 60 s) + 40 s margin (2
        polls of 5 s (poll) + 0.25 (runtime_margin) x 120 s)``, naming the settings as
        ``poll_key`` and ``share_key``."""
        how = " + ".join(f"{label} {seconds(d)}" for label, d in self.parts)
        return (f"at most {seconds(self.at)} = {seconds(self.need)} the steps need ({how}) + "
                f"{seconds(self.margin)} margin (2 polls of {seconds(self.poll)} ({poll_key}) + "
                f"{self.share:g} ({share_key}) x {seconds(self.need)})")


def runtime_trigger(host: HostPlan, plan: Plan, *,
                    in_maintenance: bool = False) -> RuntimeTrigger:
    """R4b: the runtime at which ``host`` is shut down at once (or, if it is never shut
    down, put into maintenance), with its parts.  ``in_maintenance``: its VMs have moved
    away, so their shutdown (or evacuation) is no longer needed."""
    if not host.shuts_down:
        parts: tuple[tuple[str, float], ...] = (
            ("maintenance", host.effective_maintenance_timeout()),)
    else:
        skip = {"VMs", "evacuation"} if in_maintenance else set()
        parts = tuple(p for p in shutdown_sequence(host, plan) if p[0] not in skip)
    return RuntimeTrigger(parts, plan.poll, plan.runtime_margin)
