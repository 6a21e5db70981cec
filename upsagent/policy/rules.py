# -*- test-case-name: tests.test_policy -*-
"""The rules of the slave's shutdown policy, as data and small pure functions.

Everything that decides *what* happens to a protected host and *when* lives in this file;
:mod:`upsagent.policy.policy` only keeps the state and applies these rules (the shape of
h11's ``_state.py``).  Read this comment first; the tests in ``tests/test_policy.py`` follow
its numbering.

Theory of operation
-------------------
R1. **Power.**  A UPS *supplies* a host while it is neither on battery (``OB``) nor
    critical (R2).  A UPS never heard from counts as on line (upsmon does the same).  A
    host's power is *short* while the power values of its supplying UPSes add up to less
    than its ``min_supplies`` (upsmon's MINSUPPLIES), and *critical* while the power values
    of its non-critical UPSes do (upsmon's own shutdown test).  So a host on two UPSes with
    ``min_supplies = 1`` is short only when both are on battery.

R2. **Critical UPS** (upsmon 2.8.0, ``is_ups_critical`` in NUT's ``clients/upsmon.c``), in this order:
    a. ``FSD`` in its status, or FSD set by this agent: critical at once.
    b. ``OB`` and ``LB`` (not during ``CAL``): a primary treats it as critical at once; a
       secondary only once OB+LB has lasted HOSTSYNC seconds since its last reading that
       was not OB+LB (the primary gets that long to set FSD).
    c. contact lost (``CommLost``, nothing read since) for DEADTIME seconds while last seen
       ``OB``: treated as OB+LB, so (b) applies.  Last seen ``OL``: never critical, however
       long it stays unreachable.
    d. with an ``on_battery_limit`` (PowerAct Pro's "wait time", the master's
       ``on_battery_for``): read ``OB`` without a break for that long (power back resets
       the count; not counted while contact is lost, DEADTIME is for that).
    e. A UPS whose FSD latch this agent holds (``holds_latch``: the master's own UPSes) is
       judged as a primary judges it in (b), and gets FSD at once when it becomes
       critical, whatever its hosts do (:func:`sets_fsd_now`), so that its slaves start
       shutting down; NUT's upsmon sets FSD only in its own host's shutdown (R6).  This is
       how the master's ``[master.shutdown]`` uses this engine (``upsagent/master/shutdown.py``):
       one definition of critical for master and slave.

R3. **Timers** run from the moment the host's power became short.  A step is due at
    ``since + max(after, debounce)``: a failure shorter than ``debounce`` starts nothing,
    not even a warning.  Power back before a step started cancels it (a :class:`Cancel`
    says so, once the debounce had passed).

R4. **Early triggers**, taken before the timers, ignoring them:
    a. the host's power is critical (R1/R2): shut it down now (LB, FSD, DEADTIME);
    b. after the debounce, the UPS's runtime (for redundant supplies: the runtime until
       too few are left) is at most what the rest of the shutdown needs
       (:func:`~upsagent.policy.plan.shutdown_sequence`) plus a margin: shut down now,
       rather than be cut off.  The margin is two polls (``Plan.poll``, POLLFREQALERT: the
       reading may be one poll old and the next one comes a poll later) plus
       ``Plan.runtime_margin`` (default 0.25) of the need, for the error of the UPS's
       estimate (:func:`~upsagent.policy.plan.runtime_trigger`).  A host that is only put
       into maintenance starts it instead.
    A host that never shuts down (a hypervisor host with maintenance but no shutdown timer,
    ``docs/config.md``) is only put into maintenance early; a XenServer pool master is
    never touched by an agent that manages other hosts (``HostPlan.left_alone``).  Its
    own agent (kind ``xenmaster``: the agent's machine, with VMs) shuts it down last: its
    VMs, then itself.

R5. **Maintenance** moves the VMs away.  Hosts of one ``cluster`` enter it one after the
    other, in plan order (what Winpower does, and why scenario 3's host1 can still send its
    VMs to host2).  It succeeds (``MAINTENANCE``) or not (``NO_MAINTENANCE``: no target,
    timed out, failed); then the shutdown stops the VMs first.  An urgent trigger (R4)
    during a migration aborts it; a timer never does.  An enter whose end was not seen
    (failed, unreachable, no answer: vCenter gone mid-task) may have put the host there:
    it counts as this agent's maintenance, so power back asks to take the host out (the
    backend leaves a host that is not in maintenance as it is); a definite ``NO_TARGET``
    does not.

R6. **Shutdown** is the sequence :data:`SHUTDOWN_STAGES`, each stage skipped when its
    condition does not hold: set FSD and wait for the secondaries (a primary's own host, at
    most HOSTSYNC), announce and wait the start delay (the SHUTDOWN notification for the
    agent's own host, the message, FINALDELAY), the operator's command, evacuation
    (XenServer, when maintenance did not already empty the host), the VMs' shutdown (when
    VMs may be left), waiting for the agent's other hosts (the agent's own host goes last),
    the host's shutdown.  A host that runs the vCenter VM (``runs_vcenter``) or the agent's
    own VM (``runs_agent``) waits, after its command and before its evacuation and VMs,
    until the other hosts of its manager (``HostPlan.manager_key``) whose shutdown has
    started are down (their shutdown accepted): the vCenter is needed for their steps.
    The agent's VM's host also waits for the vCenter's host; neither waits for hosts
    whose shutdown has not started.  Which hosts these are: the operator's marks always,
    and the hosts where the agent's inventory last detected the vCenter's or the agent's
    VM (a :class:`~upsagent.policy.events.Placement`, every 30 s; a detection lasts until
    the next one says otherwise, as DRS or a maintenance moves the VMs).

    **A failed host shutdown is not the end** (vCenter unreachable, the SSH host not
    answering, a shutdown command that fails or never answers, R8): while the host's power
    is still failing, its shutdown is issued again, one attempt at a time,
    :data:`SHUTDOWN_RETRY` seconds after the first failure, the wait doubling after every
    further failure up to :data:`SHUTDOWN_RETRY_MAX` (:func:`shutdown_retry_delay`), until
    it succeeds; when the VMs' shutdown had failed too (vCenter unreachable), each attempt
    stops the VMs again first.  A VMs' shutdown that finds the manager unreachable counts
    as such a failed attempt itself: the host's shutdown is not issued after it (it would
    find the manager gone too, or, the manager back meanwhile, cut the VMs off).  Meanwhile the host counts as still shutting down: the hosts
    that wait for it (the agent's own host going last, the vCenter's host) go on waiting,
    until their own power runs out (a UPS feeding them on low battery, or their runtime
    down to what their remaining steps need; the FSD a primary sets is not that): then a
    host whose shutdown has failed no longer holds them, and its retries go on while the
    agent is up.  Power
    back before a retry ends the retries: the host is up and protected again (taken out
    of the maintenance this agent put it in, its VMs started again with ``power_on_vms``).
    The agent's own host, whose sessions are closed once its shutdown has started, is
    retried until it goes down.

R7. **Power back** is handled by the host's phase, :data:`ON_POWER_BACK`: steps not started
    are cancelled; a migration in progress completes, then maintenance is exited at once;
    a host in maintenance exits it; a shutdown still in its start delay is called off; once
    the command, the VMs' or the host's shutdown has started, the shutdown completes
    (it cannot be undone; a host shutdown that failed is issued again only while the power
    is still failing, R6); a host we shut down in maintenance is taken out of it, the
    backend waiting for it to boot.  With ``power_on_vms``, once power is back and the
    host is idle again (out of maintenance, or booted after a shutdown that did not use
    it), the VMs the agent shut down on it (the ``stopped`` of its VM shutdowns) are
    started again (:class:`PowerOnVms`: reverse group order, the backend waiting for the
    host to be up); power failing again meanwhile aborts it, and the VMs not started are
    remembered for the next return.  Except for upsmon's own plan
    (:func:`final_delay_commits`: the host :func:`~upsagent.policy.plan.upsmon_plan` makes,
    from upsmon.conf or ``[slave]`` without ``[[host]]``): its start delay is FINALDELAY,
    and upsmon, once it has decided to shut down, always goes through with it (upsmon.c
    ``forceshutdown``/``doshutdown``: SHUTDOWN, sleep FINALDELAY, SHUTDOWNCMD), so power
    back during FINALDELAY does not call it off (:func:`on_power_back`).  A start delay of
    any other plan (PowerAct Pro's "shutdown start delay") is called off.

R8. **Nothing waits forever.**  Every operation has a guard: its own time limit plus
    :data:`GRACE`.  Past it the engine counts it as timed out, aborts it and goes on; a host
    shutdown that timed out has failed and is issued again (R6).

R9. **Restart.**  The state is a plain dict (``snapshot``/``restore``); times are absolute.
    After a restart, a host waits until each of its UPSes has been heard from again (or
    DEADTIME has passed) before it starts anything new (a shutdown power back can no longer
    call off goes on at once); operations that were in flight are issued again (backends are
    idempotent), except the operator's command, whose outcome is unknown and which is not
    run twice; hosts this agent put into maintenance are taken out once power is back.  The
    FSD this agent set (R2a) is remembered only while its own host's shutdown is in
    progress.

    **A new boot.**  Once the agent's own host's shutdown command has been started (phase
    ``stopping`` or ``down`` in the saved state: the sequence reached its end), a restored
    engine starts as upsmon does at every boot, from nothing: no FSD set by this agent, no
    UPS status (a UPS not heard from yet counts as on line, R1), every host idle and
    protected again, nothing in flight issued again (the shutdown command is not run
    twice).  Only maintenance this agent entered (or was entering) is remembered: such a
    host stays in maintenance, still protected by its shutdown timer, and is taken out once
    power is back.  FSD still shown by the UPS after the boot (upsd keeps it until the
    driver restarts) is critical again (R2a), as for upsmon.  A restart before the own
    host's shutdown command started continues the sequence as above.

R10. **Notifications** are upsmon's (types and NOTIFYMSG texts): ONBATT when OB appears,
    ONLINE when OL appears (not for the first reading), LOWBATT, FSD and CAL when they
    appear, REPLBATT at most every RBWARNTIME, COMMBAD when contact is lost, COMMOK when
    it is back (not for the first contact), NOCOMM every NOCOMMWARNTIME while it stays
    lost, SHUTDOWN when the shutdown of the agent's own host is announced (upsmon's
    SHUTDOWN is about the machine it runs on; other hosts' shutdowns are actions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from upsagent.policy.plan import HostPlan, Plan, Role, is_upsmon_host

__all__ = [
    "GRACE",
    "NOTIFY_MESSAGES",
    "ON_POWER_BACK",
    "OnPowerBack",
    "Phase",
    "Power",
    "PowerView",
    "SHUTDOWN_RETRY",
    "SHUTDOWN_RETRY_MAX",
    "SHUTDOWN_STAGES",
    "UpsView",
    "Verdict",
    "When",
    "AFTER_RESULT",
    "NEW_BOOT",
    "NEXT_STAGE",
    "final_delay_commits",
    "fmt",
    "host_power",
    "notify_text",
    "on_power_back",
    "sets_fsd_now",
    "shutdown_retry_delay",
    "ups_verdict",
]

#: seconds an operation may overrun its own limit before the engine stops waiting (R8)
GRACE = 30.0


def fmt(seconds: float) -> str:
    """``60 s``, ``2.5 s``: how durations appear in reasons."""
    return f"{round(seconds, 1):g} s"


# -- R1/R2: UPS and host power ---------------------------------------------------------


@dataclass(frozen=True)
class UpsView:
    """What the engine knows of one UPS, as the rules need it."""

    name: str
    role: Role
    status: frozenset[str] = frozenset()
    comm_ok: bool = True
    #: last successful read (None: never heard from)
    last_seen: float | None = None
    #: last read that was not OB+LB (upsmon's ``lastnoncrit``)
    last_noncrit: float | None = None
    runtime: float | None = None
    fsd_by_us: bool = False
    #: R2d: since when every read said OB (None: not on battery)
    on_battery_since: float | None = None
    on_battery_limit: float | None = None
    #: R2e: this agent holds the UPS's FSD latch
    holds_latch: bool = False

    @property
    def on_battery(self) -> bool:
        return "OB" in self.status


@dataclass(frozen=True)
class Verdict:
    """Whether a UPS is critical now, why, and when it will be if nothing changes."""

    critical: bool
    reason: str = ""
    at: float | None = None


def ups_verdict(ups: UpsView, now: float, deadtime: float, hostsync: float) -> Verdict:
    """R2: is ``ups`` critical at ``now``?"""
    verdict = _nut_verdict(ups, now, deadtime, hostsync)
    limit, since = ups.on_battery_limit, ups.on_battery_since
    if (verdict.critical or limit is None or since is None or not ups.on_battery
            or not ups.comm_ok):
        return verdict
    at = since + limit
    if now >= at:                                    # R2d
        return Verdict(True, f"{ups.name} on battery for {fmt(now - since)} "
                       f"(on_battery_for {fmt(limit)})")
    return Verdict(False, at=at if verdict.at is None else min(at, verdict.at))


def sets_fsd_now(ups: UpsView, verdict: Verdict) -> bool:
    """R2e: whether this agent sets FSD on ``ups`` now: it holds the UPS's latch, the UPS
    is critical, and this agent has not set FSD on it yet."""
    return ups.holds_latch and verdict.critical and not ups.fsd_by_us


def _nut_verdict(ups: UpsView, now: float, deadtime: float, hostsync: float) -> Verdict:
    """R2a-c, upsmon's ``is_ups_critical``."""
    name = ups.name
    primary = ups.role == "primary" or ups.holds_latch     # R2e
    if "FSD" in ups.status:
        return Verdict(True, f"{name}: FSD set by the primary" if not ups.fsd_by_us
                       else f"{name}: FSD set by this agent")
    if ups.fsd_by_us:
        return Verdict(True, f"{name}: FSD set by this agent")
    if not ups.on_battery:
        return Verdict(False)
    lb, dead_at = "LB" in ups.status, None
    if not ups.comm_ok and ups.last_seen is not None:
        dead_at = ups.last_seen + deadtime
        lb = lb or now >= dead_at
    if not lb:
        return Verdict(False, at=dead_at)
    if "CAL" in ups.status:
        return Verdict(False)
    crit_at = dead_at if dead_at is not None and "LB" not in ups.status else None
    if not primary:
        since = ups.last_noncrit
        sync_at = since + hostsync if since is not None else None
        if sync_at is not None and (crit_at is None or sync_at > crit_at):
            crit_at = sync_at
    if crit_at is not None and now < crit_at:
        return Verdict(False, at=crit_at)
    if dead_at is not None and "LB" not in ups.status:
        assert ups.last_seen is not None
        return Verdict(True, f"no contact with {name} for {fmt(now - ups.last_seen)} while "
                       f"on battery (DEADTIME {deadtime:g})")
    if primary:
        return Verdict(True, f"{name} on battery and low battery")
    return Verdict(True, f"{name} on battery and low battery and no FSD from the primary "
                   f"within HOSTSYNC {hostsync:g}")


class Power(Enum):
    OK = "ok"
    SHORT = "short"
    CRITICAL = "critical"


@dataclass(frozen=True)
class PowerView:
    """A host's power now (R1): its state, which UPSes fail it, why, and its runtime.

    ``failing``: the UPSes on battery or critical; with ``OK`` power, those that still are
    while the others make up ``min_supplies`` (so that power back names the ones that came
    back, R7).
    """

    state: Power
    failing: tuple[str, ...] = ()
    reason: str = ""
    #: seconds until too few supplies are left (None: unknown)
    runtime: float | None = None
    runtime_ups: str = ""


def _names(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def host_power(host: HostPlan, ups: Mapping[str, UpsView],
               verdicts: Mapping[str, Verdict]) -> PowerView:
    """R1: the host's power from its UPSes' views and verdicts.

    A host without supplies is never in danger: nothing says it is (validation refuses
    such a plan; this only keeps a broken plan from shutting a host down at start).
    """
    if not host.powered_by:
        return PowerView(Power.OK)
    supplying = noncritical = 0
    failing: list[str] = []
    critical: list[str] = []
    on_battery: list[tuple[float | None, str, int]] = []
    for supply in host.powered_by:
        view = ups.get(supply.ups)
        verdict = verdicts.get(supply.ups, Verdict(False))
        if verdict.critical:
            critical.append(verdict.reason)
            failing.append(supply.ups)
            continue
        noncritical += supply.power_value
        if view is not None and view.on_battery:
            failing.append(supply.ups)
            on_battery.append((view.runtime, supply.ups, supply.power_value))
        else:
            supplying += supply.power_value
    if noncritical < host.min_supplies:
        return PowerView(Power.CRITICAL, tuple(failing), "; ".join(critical))
    if supplying >= host.min_supplies:
        return PowerView(Power.OK, tuple(failing))   # the UPSes still failing, if any
    # the host lives while the longest-lasting batteries still make up min_supplies
    runtime: float | None = None
    runtime_ups = ""
    if all(rt is not None for rt, _, _ in on_battery):
        have = supplying
        for rt, name, value in sorted(on_battery, key=lambda x: -(x[0] or 0.0)):
            have += value
            if have >= host.min_supplies:
                runtime, runtime_ups = rt, name
                break
    return PowerView(Power.SHORT, tuple(failing), f"{_names(failing)} on battery",
                     runtime, runtime_ups)


# -- R6: the host's phases and the shutdown sequence -----------------------------------


class Phase(str, Enum):
    """Where a host is in its sequence."""

    IDLE = "idle"
    ENTERING = "entering"              # EnterMaintenance in flight
    MAINTENANCE = "maintenance"        # in maintenance mode (we put it there)
    NO_MAINTENANCE = "no-maintenance"  # maintenance failed: VMs are still on the host
    EXITING = "exiting"                # ExitMaintenance in flight
    FSD = "fsd"                        # shutdown: SetFsd in flight (primary's own host)
    DELAY = "delay"                    # shutdown: announced, waiting the start delay
    COMMAND = "command"                # shutdown: RunCommand in flight
    AFTER_OTHERS = "after-others"      # shutdown: the vCenter's (agent VM's) host waiting
                                       # for the other hosts of its vCenter
    EVACUATING = "evacuating"          # shutdown: EnterMaintenance as an evacuation
    VMS = "vms"                        # shutdown: ShutdownVms in flight
    LAST = "last"                      # shutdown: waiting for the agent's other hosts
    STOPPING = "stopping"              # shutdown: ShutdownHost in flight
    DOWN = "down"                      # shut down
    STARTING_VMS = "starting-vms"      # power back: PowerOnVms in flight (power_on_vms)


class When(Enum):
    """Conditions under which a shutdown stage runs."""

    ALWAYS = "always"
    PRIMARY_AGENT_HOST = "the agent's own host, and the agent is a primary"
    COMMAND = "a command is configured"
    EVACUATE = "the backend evacuates before a shutdown and maintenance did not"
    VMS_LEFT = "VMs may still run on the host"
    AGENT_HOST = "the agent's own host"
    RUNS_INFRA = "the host runs the vCenter VM or the agent's VM"


#: R6, in order
SHUTDOWN_STAGES: tuple[tuple[Phase, When], ...] = (
    (Phase.FSD, When.PRIMARY_AGENT_HOST),
    (Phase.DELAY, When.ALWAYS),
    (Phase.COMMAND, When.COMMAND),
    (Phase.AFTER_OTHERS, When.RUNS_INFRA),
    (Phase.EVACUATING, When.EVACUATE),
    (Phase.VMS, When.VMS_LEFT),
    (Phase.LAST, When.AGENT_HOST),
    (Phase.STOPPING, When.ALWAYS),
)

#: the phases of a shutdown in progress
SHUTTING_DOWN = frozenset(phase for phase, _ in SHUTDOWN_STAGES)

#: a marker in :data:`AFTER_RESULT`: go on with the next shutdown stage
NEXT_STAGE = "next stage"

#: (phase, operation succeeded) -> the phase that follows
AFTER_RESULT: Mapping[tuple[Phase, bool], Phase | str] = {
    (Phase.ENTERING, True): Phase.MAINTENANCE,
    (Phase.ENTERING, False): Phase.NO_MAINTENANCE,
    (Phase.EXITING, True): Phase.IDLE,
    (Phase.EXITING, False): Phase.MAINTENANCE,   # retried later, see EXIT_RETRY
    (Phase.FSD, True): NEXT_STAGE,
    (Phase.FSD, False): NEXT_STAGE,
    (Phase.COMMAND, True): NEXT_STAGE,
    (Phase.COMMAND, False): NEXT_STAGE,          # a failed script does not stop the shutdown
    (Phase.EVACUATING, True): NEXT_STAGE,
    (Phase.EVACUATING, False): NEXT_STAGE,       # VMs are then shut down
    (Phase.VMS, True): NEXT_STAGE,
    (Phase.VMS, False): NEXT_STAGE,
    (Phase.STOPPING, True): Phase.DOWN,
    (Phase.STOPPING, False): Phase.STOPPING,     # issued again, see SHUTDOWN_RETRY
    (Phase.STARTING_VMS, True): Phase.IDLE,
    (Phase.STARTING_VMS, False): Phase.IDLE,     # one attempt; the result says what is off
}

#: seconds between attempts to take a host out of maintenance, and how many attempts
EXIT_RETRY = 120.0
EXIT_ATTEMPTS = 5

#: R6: seconds from a failed host shutdown to the next attempt; doubled after every
#: failure up to :data:`SHUTDOWN_RETRY_MAX`
SHUTDOWN_RETRY = 10.0
SHUTDOWN_RETRY_MAX = 60.0


def shutdown_retry_delay(failures: int) -> float:
    """R6: the wait after the ``failures``-th failed attempt to shut a host down (10, 20,
    40, 60, 60, ... seconds)."""
    return min(SHUTDOWN_RETRY * 2.0 ** max(failures - 1, 0), SHUTDOWN_RETRY_MAX)


# -- R7: power back ---------------------------------------------------------------------


class OnPowerBack(Enum):
    CANCEL_STEPS = "cancel the steps not started"
    EXIT_WHEN_DONE = "let the migration finish, then exit maintenance at once"
    EXIT_NOW = "exit maintenance now"
    FORGET = "nothing to undo"
    CALL_OFF = "call the shutdown off (still in its start delay)"
    COMMITTED = "the shutdown has started and completes"
    EXIT_AFTER_BOOT = "exit maintenance once the host is back"

#: R7: what power coming back does, by phase
ON_POWER_BACK: Mapping[Phase, OnPowerBack] = {
    Phase.IDLE: OnPowerBack.CANCEL_STEPS,
    Phase.ENTERING: OnPowerBack.EXIT_WHEN_DONE,
    Phase.MAINTENANCE: OnPowerBack.EXIT_NOW,
    Phase.NO_MAINTENANCE: OnPowerBack.FORGET,
    Phase.EXITING: OnPowerBack.FORGET,
    Phase.FSD: OnPowerBack.COMMITTED,      # FSD is latched: the UPS will be switched off
    Phase.DELAY: OnPowerBack.CALL_OFF,
    Phase.COMMAND: OnPowerBack.COMMITTED,
    Phase.AFTER_OTHERS: OnPowerBack.COMMITTED,
    Phase.EVACUATING: OnPowerBack.COMMITTED,
    Phase.VMS: OnPowerBack.COMMITTED,
    Phase.LAST: OnPowerBack.COMMITTED,
    Phase.STOPPING: OnPowerBack.COMMITTED,
    Phase.DOWN: OnPowerBack.EXIT_AFTER_BOOT,
    Phase.STARTING_VMS: OnPowerBack.FORGET,
}


def final_delay_commits(host: HostPlan) -> bool:
    """R7: whether ``host``'s start delay is upsmon's FINALDELAY, which nothing calls off.

    True for the host :func:`~upsagent.policy.plan.upsmon_plan` makes (upsmon.conf, or
    ``[slave]`` without ``[[host]]``): no timers, no debounce, shut down on critical power
    only.  Any other plan's ``shutdown_delay`` is a start delay that power back cancels.
    """
    return is_upsmon_host(host)


def on_power_back(phase: Phase, host: HostPlan) -> OnPowerBack:
    """R7: what power coming back does to ``host`` in ``phase``."""
    rule = ON_POWER_BACK[phase]
    if rule is OnPowerBack.CALL_OFF and final_delay_commits(host):
        return OnPowerBack.COMMITTED     # upsmon sleeps FINALDELAY, then SHUTDOWNCMD
    return rule


# -- R9: restart ------------------------------------------------------------------------

#: R9: the agent's own host in one of these phases in a saved state: its shutdown command
#: was started, and a restored engine starts afresh (a new boot)
NEW_BOOT = frozenset({Phase.STOPPING, Phase.DOWN})


# -- R10: notifications -----------------------------------------------------------------

#: upsmon 2.8.0's NOTIFYMSG defaults (clients/upsmon.h)
NOTIFY_MESSAGES: Mapping[str, str] = {
    "ONLINE": "UPS %s on line power",
    "ONBATT": "UPS %s on battery",
    "LOWBATT": "UPS %s battery is low",
    "FSD": "UPS %s: forced shutdown in progress",
    "COMMOK": "Communications with UPS %s established",
    "COMMBAD": "Communications with UPS %s lost",
    "SHUTDOWN": "Auto logout and shutdown proceeding",
    "REPLBATT": "UPS %s battery needs to be replaced",
    "NOCOMM": "UPS %s is unavailable",
    "NOPARENT": "upsmon parent process died - shutdown impossible",
    "CAL": "UPS %s: calibration in progress",
}

#: status words whose appearance is notified (upsmon's ups_on_batt, ups_low_batt, ...)
NOTIFY_ON_NEW_WORD: tuple[tuple[str, str], ...] = (
    ("OB", "ONBATT"), ("LB", "LOWBATT"), ("FSD", "FSD"), ("CAL", "CAL"))


def notify_text(plan: Plan, kind: str, ups: str) -> str:
    """The NOTIFYMSG text for ``kind``, with ``%s`` replaced by the UPS name."""
    template = plan.notify_messages.get(kind, NOTIFY_MESSAGES[kind])
    return template.replace("%s", ups, 1)
