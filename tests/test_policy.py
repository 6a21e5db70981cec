"""Tests for the policy engine (upsagent.policy.policy, rules.py's R1-R10), plans and their
validation, the executor (dry run) and the local and simulated backends.

The engine is pure: these tests give it events and times and compare the actions it
returns.  No reactor, no sleeping; where a reactor is needed, ``task.Clock``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher

from upsagent.hypervisors.base import Backend, backend_class
from upsagent.hypervisors.local import POWERDOWN_MAGIC, LocalBackend
from upsagent.simulator.simulated import SimCluster, SimulatedBackend
from upsagent.policy.actions import (
    Action, Cancel, EnterMaintenance, ExitMaintenance, Notify, Outcome, Result, RunCommand,
    PowerOnVms, SetFsd, ShutdownHost, ShutdownVms, WarnUsers,
)
from upsagent.policy.events import CommLost, CommOk, Event, Placement, UpsState
from upsagent.engine.executor import Executor, MonitorFsd
from upsagent.policy.checks import validate
from upsagent.policy.plan import (
    HostPlan, Plan, Supply, UpsCountdown, UpsPlan, VmGroup, VmGroupError, read_vm_groups,
    upsmon_plan, vm_batches,
)
from upsagent.policy.policy import PolicyEngine
from upsagent.policy.rules import Phase
from upsagent.policy.state import StateError

OK = Outcome.OK


def state(ups: str, status: str, runtime: float | None = None) -> UpsState:
    return UpsState(ups, frozenset(status.split()), runtime=runtime)


class Drive:
    """Feeds an engine events and results at given times, ticking at its deadlines."""

    def __init__(self, plan: Plan, now: float = 0.0,
                 engine: PolicyEngine | None = None) -> None:
        self.engine = engine or PolicyEngine(plan, now)
        self.now = now
        self.log: list[tuple[float, Action]] = []

    def _take(self, t: float, actions: Iterable[Action]) -> list[Action]:
        actions = list(actions)
        self.log += [(t, a) for a in actions]
        return actions

    def until(self, t: float) -> None:
        while (deadline := self.engine.next_deadline()) is not None and deadline <= t:
            self.now = deadline
            self._take(deadline, self.engine.tick(deadline))
        self.now = t

    def event(self, t: float, event: Event) -> list[Action]:
        self.until(t)
        return self._take(t, self.engine.handle(event, t))

    def done(self, t: float, action: Action, outcome: Outcome = OK,
             detail: str = "", **more: Any) -> list[Action]:
        self.until(t)
        return self._take(t, self.engine.action_done(
            action.id, Result(outcome, detail, **more), t))

    def of(self, cls: type[Action] = Action, host: str | None = None,
           since: float = -1.0) -> list[tuple[float, Any]]:
        return [(t, a) for t, a in self.log if isinstance(a, cls)
                and (host is None or a.host == host) and t >= since]

    def last(self, cls: type[Action], host: str | None = None) -> Any:
        found = self.of(cls, host)
        assert found, f"no {cls.__name__} for {host}"
        return found[-1][1]

    def steps(self, since: float = -1.0) -> list[tuple[float, str, str]]:
        """(time, host, verb) of everything but notifications."""
        return [(t, a.host, a.verb) for t, a in self.log
                if not isinstance(a, Notify) and t >= since]


COUNTDOWN = UpsCountdown(180, 120)


def vsphere(name: str, *ups: str, **kw: Any) -> HostPlan:
    kw.setdefault("maintenance_after", 60)
    kw.setdefault("shutdown_after", 120)
    return HostPlan(name, "vsphere", tuple(Supply(u) for u in ups), cluster="c", **kw)


def two_hosts(**kw: Any) -> Plan:
    return Plan(ups=(UpsPlan("UPS1", countdown=COUNTDOWN), UpsPlan("UPS2", countdown=COUNTDOWN)),
                hosts=(vsphere("host1", "UPS1", **kw), vsphere("host2", "UPS2", **kw)),
                name="mgmt")


def started(drive: Drive, at: float = 0.0, *ups: str) -> None:
    for name in ups or ("UPS1", "UPS2"):
        drive.event(at, state(name, "OL"))


# -- validation -----------------------------------------------------------------------


def test_validate_shutdown_must_follow_maintenance() -> None:
    """shutdown_after not greater than maintenance_after is refused, with both values."""
    plan = Plan(ups=(UpsPlan("UPS1"),), hosts=(
        vsphere("esxi1", "UPS1", maintenance_after=90, shutdown_after=60),))
    [problem] = validate(plan)
    assert str(problem) == ("host esxi1: shutdown_after (60 s) must be greater than "
                            "maintenance_after (90 s)")
    assert (problem.host, problem.step, problem.severity, problem.excess) == (
        "esxi1", "shutdown_after", "error", 30)


def test_validate_steps_must_end_before_the_ups_cuts_its_output() -> None:
    """The shutdown with its delay, command, VMs and OS time must end before the NMC's
    warning period + shutdown delay; the message gives the end, the cut and the overrun."""
    plan = Plan(ups=(UpsPlan("UPS1", countdown=COUNTDOWN),), hosts=(vsphere(
        "esxi1", "UPS1", shutdown_delay=30, command=("/bin/true",), command_budget=30,
        vm_shutdown_timeout=60, shutdown_duration=90),))
    [problem] = validate(plan)
    assert str(problem) == (
        "host esxi1: shutdown finishes at 330 s, 30 s after UPS1 cuts its output at 300 s "
        "(shutdown at 120 s + delay 30 s + command 30 s + VMs 60 s + OS 90 s)")
    assert (problem.step, problem.excess) == ("shutdown", 30)
    fits = Plan(ups=plan.ups, hosts=(vsphere("esxi1", "UPS1"),))
    assert validate(fits) == []     # 120 + 60 VMs + 60 OS = 240 <= 300


def test_validate_redundant_supplies_use_the_cut_that_leaves_too_few() -> None:
    """With two supplies and min_supplies 1, the host lives until the later UPS cuts."""
    ups = (UpsPlan("UPS1", countdown=UpsCountdown(60, 60)),
           UpsPlan("UPS2", countdown=UpsCountdown(600, 120)))
    host = HostPlan("h", "local", (Supply("UPS1"), Supply("UPS2")), shutdown_after=300)
    assert validate(Plan(ups=ups, hosts=(host,))) == []
    strict = Plan(ups=ups, hosts=(HostPlan("h", "local", host.powered_by, min_supplies=2,
                                           shutdown_after=300),))
    [problem] = validate(strict)
    assert str(problem).startswith("host h: shutdown finishes at 360 s, 240 s after UPS1 "
                                   "cuts its output at 120 s")


def test_validate_warns_of_hosts_that_are_never_shut_down() -> None:
    """A hypervisor host with maintenance only keeps running until its UPS cuts it
    (a hypervisor host kept up on purpose): allowed, but said."""
    plan = Plan(ups=(UpsPlan("UPS1", countdown=COUNTDOWN),), hosts=(
        vsphere("esxi1", "UPS1", shutdown_after=None, maintenance_timeout=200),))
    [problem] = validate(plan)
    assert (problem.severity, str(problem)) == (
        "warning", "host esxi1 is never shut down: it loses power when UPS1 cuts its output "
        "at 300 s")
    late = Plan(ups=plan.ups, hosts=(vsphere("esxi1", "UPS1", shutdown_after=None),))
    assert [(p.severity, str(p)) for p in validate(late)][0] == (
        "warning", "host esxi1: maintenance may still run at 360 s, 60 s after UPS1 cuts its "
        "output at 300 s")


def test_validate_supplies() -> None:
    """No supply, an unmonitored UPS, power values below min_supplies: each is an error."""
    plan = Plan(ups=(UpsPlan("UPS1"),), hosts=(
        HostPlan("a", "local", ()),
        HostPlan("b", "ssh", (Supply("UPS9"),)),
        HostPlan("c", "ssh", (Supply("UPS1"),), min_supplies=2)))
    assert [str(p) for p in validate(plan)] == [
        "host a: no power supply (powered_by is empty): nothing tells when it is in danger",
        "host b: powered by UPS9, which this agent does not monitor",
        "host c: its supplies give a power value of 1, less than min_supplies 2: it would "
        "shut down at once"]


def test_validate_other_rules() -> None:
    """Maintenance on a plain OS, a command without budget, timers on a pool master,
    a primary whose own host it does not feed, two local hosts."""
    plan = Plan(ups=(UpsPlan("UPS1", "primary"), UpsPlan("UPS2")), hosts=(
        HostPlan("a", "local", (Supply("UPS2"),), maintenance_after=10,
                 command=("/bin/x",)),
        HostPlan("m", "xen", (Supply("UPS1"),), is_pool_master=True, shutdown_after=100),
        HostPlan("b", "local", (Supply("UPS2"),))))
    found = [(p.host, p.step, p.severity) for p in validate(plan)]
    assert found == [
        ("a", "maintenance_after", "error"), ("a", "command_budget", "error"),
        ("m", "is_pool_master", "warning"), (None, "backend", "error"),
        (None, "role", "warning")]


# -- R3: timers, debounce, cancellation --------------------------------------------------


def test_timers_run_from_the_moment_power_became_short() -> None:
    """Maintenance at 60 s and shutdown at 120 s after the UPS went on battery, with the
    reason saying so; no step before its time."""
    d = Drive(two_hosts())
    started(d)
    d.event(10, state("UPS1", "OB DISCHRG"))
    d.until(69.9)
    assert d.steps() == []
    d.until(70)
    enter = d.last(EnterMaintenance, "host1")
    assert (enter.reason, enter.timeout) == ("UPS1 on battery for 60 s", 60)
    d.done(80, enter, detail="VMs vm1, vm2 moved to host2")
    d.until(130)
    assert d.steps(since=80) == [(130, "host1", "shut down")]
    assert d.last(ShutdownHost).reason == "UPS1 on battery for 120 s"


def test_a_blip_shorter_than_the_debounce_starts_nothing() -> None:
    """A 3 s failure (debounce 5 s) gives upsmon's ONBATT/ONLINE and nothing else, not
    even a cancel, though maintenance_after is 0."""
    d = Drive(two_hosts(maintenance_after=0))
    started(d)
    d.event(100, state("UPS1", "OB"))
    d.event(103, state("UPS1", "OL"))
    d.until(1000)
    assert d.steps() == []
    assert [a.type for _, a in d.of(Notify)] == ["ONBATT", "ONLINE"]


def test_a_step_due_before_the_debounce_waits_for_it() -> None:
    """maintenance_after 0 starts maintenance when the debounce has passed."""
    d = Drive(two_hosts(maintenance_after=0))
    started(d)
    d.event(100, state("UPS1", "OB"))
    d.until(200)
    assert d.of(EnterMaintenance)[0][0] == 105


def test_power_back_before_a_step_cancels_it() -> None:
    """Steps not started are cancelled when power returns, each named with its due time."""
    d = Drive(two_hosts())
    started(d)
    d.event(0, state("UPS1", "OB"))
    d.event(30, state("UPS1", "OL"))
    d.until(1000)
    cancels = [(t, a.step, a.target, a.reason) for t, a in d.of(Cancel)]
    assert cancels == [
        (30, "enter maintenance", "host1/enter-maintenance/1",
         "UPS1 back on line after 30 s, before the step due at 60 s"),
        (30, "shut down", "host1/shut-down/1",
         "UPS1 back on line after 30 s, before the step due at 120 s")]
    assert d.steps(since=31) == []


def test_pending_lists_the_steps_waiting() -> None:
    """engine.pending(): what will happen when, for dry runs and status pages."""
    d = Drive(two_hosts())
    started(d)
    d.event(0, state("UPS2", "OB"))
    assert [(s.host, s.step, s.due, s.reason) for s in d.engine.pending()] == [
        ("host2", "enter maintenance", 60, "UPS2 on battery for 60 s"),
        ("host2", "shut down", 120, "UPS2 on battery for 120 s")]


# -- R5/R7: maintenance ------------------------------------------------------------------


def test_migration_completes_after_power_returns_then_exit_at_once() -> None:
    """Scenario 2: power back during the migration; it completes, then exit maintenance at
    once; the shutdown is cancelled."""
    d = Drive(two_hosts())
    started(d)
    d.event(0, state("UPS1", "OB"))
    d.until(60)
    enter = d.last(EnterMaintenance)
    d.event(70, state("UPS1", "OL"))
    assert d.steps(since=70) == [(70, "host1", "cancel shut down")]
    d.done(100, enter)
    exit_ = d.last(ExitMaintenance)
    assert exit_.reason == ("UPS1 back on line after 70 s during the migration, which has "
                            "completed")
    d.done(101, exit_)
    d.until(1000)
    assert d.of(ShutdownHost) == [] and d.engine.phase("host1") is Phase.IDLE


def test_failed_maintenance_means_vms_then_host() -> None:
    """Scenario 3: no host can take the VMs; at the shutdown timer the VMs are shut down
    first (the reason says why), then the host."""
    d = Drive(two_hosts())
    started(d)
    d.event(0, state("UPS2", "OB"))
    d.until(60)
    d.done(60, d.last(EnterMaintenance), Outcome.NO_TARGET, "no host can take vm3, vm4")
    d.until(120)
    vms = d.last(ShutdownVms)
    assert vms.reason == ("UPS2 on battery for 120 s; maintenance failed: no host can take "
                          "vm3, vm4")
    assert d.of(ShutdownHost) == []
    d.done(130, vms)
    assert d.steps(since=121) == [(130, "host2", "shut down")]


def test_one_host_of_a_cluster_enters_maintenance_at_a_time() -> None:
    """Both hosts are due at 60 s: host2 starts when host1 has finished, and says so."""
    d = Drive(two_hosts())
    started(d)
    d.event(0, state("UPS1", "OB"))
    d.event(0, state("UPS2", "OB"))
    d.until(60)
    assert [a.host for _, a in d.of(EnterMaintenance)] == ["host1"]
    d.done(80, d.last(EnterMaintenance))
    second = d.last(EnterMaintenance, "host2")
    assert (second.reason, second.timeout) == (
        "UPS2 on battery for 80 s (after host1's maintenance)", 40)


def test_an_urgent_trigger_aborts_the_migration() -> None:
    """LB during a migration (primary-less secondary after HOSTSYNC): the migration is
    cancelled, then VMs and host are shut down."""
    d = Drive(two_hosts())
    started(d)
    d.event(0, state("UPS1", "OB"))
    d.until(60)
    enter = d.last(EnterMaintenance)
    d.event(65, state("UPS1", "OB FSD"))
    cancel = d.last(Cancel)
    assert (cancel.target, cancel.reason) == (enter.id, "UPS1: FSD set by the primary")
    d.done(66, enter, Outcome.CANCELLED)
    assert d.steps(since=66) == [(66, "host1", "shut down VMs")]


def test_a_maintenance_only_host_is_never_shut_down() -> None:
    """Maintenance on, shutdown off: VMs migrate, the host keeps running
    even when the UPS is critical; critical power starts maintenance early."""
    plan = Plan(ups=(UpsPlan("UPS1"),), hosts=(vsphere("h", "UPS1", shutdown_after=None),))
    d = Drive(plan)
    started(d, 0, "UPS1")
    d.event(0, state("UPS1", "OB"))
    d.event(20, state("UPS1", "OB FSD"))
    assert d.steps() == [(20, "h", "enter maintenance")]
    d.done(30, d.last(EnterMaintenance))
    d.until(10000)
    assert d.of(ShutdownHost) == [] and d.of(ShutdownVms) == []


def test_pool_master_is_never_touched() -> None:
    """A XenServer pool master on a failing UPS gets no action at all."""
    plan = Plan(ups=(UpsPlan("UPS1"),), hosts=(
        HostPlan("master", "xen", (Supply("UPS1"),), is_pool_master=True,
                 maintenance_after=60, shutdown_after=120),))
    d = Drive(plan)
    started(d, 0, "UPS1")
    d.event(0, state("UPS1", "OB LB"))
    d.until(10000)
    assert d.steps() == []


def test_pool_master_under_its_own_agent_stops_its_vms_then_itself() -> None:
    """Kind xenmaster (the pool master's own agent): the agent's own machine, scheduled by
    its timer; its shutdown stops the VMs left on it first, then the host, with killpower
    as any agent host of a primary."""
    plan = Plan(ups=(UpsPlan("UPS1"),), hosts=(
        HostPlan("master", "xenmaster", (Supply("UPS1"),), is_pool_master=True,
                 shutdown_after=200, vm_shutdown_timeout=60),))
    assert plan.agent_host is plan.hosts[0] and plan.hosts[0].shuts_down
    assert [p for p in validate(plan) if p.host == "master"] == []
    d = Drive(plan)
    started(d, 0, "UPS1")
    d.event(0, state("UPS1", "OB"))
    d.until(199)
    assert d.steps() == []
    d.until(200)
    vms = d.last(ShutdownVms, "master")
    assert vms.timeout == 60 and d.of(ShutdownHost) == []
    d.done(210, vms)
    host = d.last(ShutdownHost, "master")
    assert [v for _, _, v in d.steps()] == [vms.verb, host.verb]


def test_xenserver_shutdown_evacuates_first() -> None:
    """Shutdown alone on XenServer: the VMs are evacuated (EnterMaintenance) first; if that
    works no VM is shut down."""
    plan = Plan(ups=(UpsPlan("UPS1"),), hosts=(
        HostPlan("x", "xen", (Supply("UPS1"),), shutdown_after=120),))
    d = Drive(plan)
    started(d, 0, "UPS1")
    d.event(0, state("UPS1", "OB"))
    d.until(120)
    evacuate = d.last(EnterMaintenance)
    assert evacuate.reason == "UPS1 on battery for 120 s; the shutdown moves the VMs away first"
    d.done(150, evacuate)
    assert d.steps(since=121) == [(150, "x", "shut down")]


# -- R1: redundant supplies --------------------------------------------------------------


def test_redundant_supplies_are_short_only_when_both_fail() -> None:
    """A host on UPS1 and UPS2 with min_supplies 1: timers start when the second fails and
    stop when one returns."""
    plan = Plan(ups=(UpsPlan("UPS1"), UpsPlan("UPS2")), hosts=(HostPlan(
        "h", "vsphere", (Supply("UPS1"), Supply("UPS2")), maintenance_after=60,
        shutdown_after=120),))
    d = Drive(plan)
    started(d)
    d.event(0, state("UPS1", "OB"))
    d.until(500)
    assert d.steps() == []
    d.event(500, state("UPS2", "OB"))
    d.until(560)
    assert d.last(EnterMaintenance).reason == "UPS1 and UPS2 on battery for 60 s"
    d.event(570, state("UPS1", "OL"))
    assert d.steps(since=570) == [(570, "h", "cancel shut down")]


def test_power_back_names_the_supplies_that_came_back() -> None:
    """Both supplies failed; UPS1 returns and the steps are cancelled: the reason names
    UPS1, not UPS2, which is still on battery; the later exit from maintenance too."""
    plan = Plan(ups=(UpsPlan("UPS1"), UpsPlan("UPS2")), hosts=(HostPlan(
        "h", "vsphere", (Supply("UPS1"), Supply("UPS2")), maintenance_after=60,
        shutdown_after=120),))
    d = Drive(plan)
    started(d)
    d.event(0, state("UPS1", "OB"))
    d.event(10, state("UPS2", "OB"))
    d.until(70)
    enter = d.last(EnterMaintenance)
    d.done(75, enter)
    d.event(90, state("UPS1", "OL"))
    assert [(t, a.step, a.reason) for t, a in d.of(Cancel)] == [
        (90, "shut down", "UPS1 back on line after 80 s, before the step due at 120 s")]
    assert d.last(ExitMaintenance).reason == "UPS1 back on line after 80 s"
    d.event(95, state("UPS2", "OL"))
    assert d.steps(since=91) == []


def test_power_values_and_min_supplies() -> None:
    """min_supplies 2 on two supplies: one UPS on battery is enough to be short."""
    plan = Plan(ups=(UpsPlan("UPS1"), UpsPlan("UPS2")), hosts=(HostPlan(
        "h", "ssh", (Supply("UPS1"), Supply("UPS2")), min_supplies=2, shutdown_after=30),))
    d = Drive(plan)
    started(d)
    d.event(0, state("UPS2", "OB"))
    d.until(30)
    assert d.last(ShutdownHost).reason == "UPS2 on battery for 30 s"


# -- R4: early triggers ------------------------------------------------------------------


def test_runtime_below_what_the_steps_need_acts_early() -> None:
    """Runtime 80 s with 90 s of steps left (command 30 s + OS 60 s): shut down now rather
    than be cut off at the timer (600 s); not before the debounce."""
    plan = Plan(ups=(UpsPlan("UPS1"),), hosts=(HostPlan(
        "h", "ssh", (Supply("UPS1"),), shutdown_after=600, command=("/bin/x",),
        command_budget=30),))
    d = Drive(plan)
    started(d, 0, "UPS1")
    d.event(0, state("UPS1", "OB", runtime=900))
    d.event(2, state("UPS1", "OB", runtime=80))
    assert d.steps() == []
    d.until(5)
    run = d.last(RunCommand)
    assert (run.reason, run.argv, run.budget) == (
        "UPS1 runtime 80 s <= 122.5 s (90 s the remaining steps need + 32.5 s margin)",
        ("/bin/x",), 30)


def test_runtime_trigger_leaves_a_margin_for_the_polls_and_the_estimate() -> None:
    """R4b: act when the runtime is at most need + margin, the margin two polls (the age of
    the reading, the wait for the next) plus runtime_margin of the need (the estimate's
    error).  Need 120 s (OS), default poll 5 s and share 0.25: 120 + 10 + 30 = 160 s."""
    host = HostPlan("h", "ssh", (Supply("UPS1"),), shutdown_after=600, shutdown_duration=120)
    d = Drive(Plan(ups=(UpsPlan("UPS1"),), hosts=(host,)))
    started(d, 0, "UPS1")
    d.event(0, state("UPS1", "OB", runtime=900))
    d.event(10, state("UPS1", "OB", runtime=161))
    assert d.of(ShutdownHost) == []
    d.event(15, state("UPS1", "OB", runtime=160))
    assert d.steps() == [(15, "h", "shut down")]
    assert d.last(ShutdownHost).reason == (
        "UPS1 runtime 160 s <= 160 s (120 s the remaining steps need + 40 s margin)")
    # slower polls and a larger share: 120 + 2 x 15 + 0.5 x 120 = 210 s
    d = Drive(Plan(ups=(UpsPlan("UPS1"),), hosts=(host,), poll=15, runtime_margin=0.5))
    started(d, 0, "UPS1")
    d.event(0, state("UPS1", "OB", runtime=900))
    d.event(15, state("UPS1", "OB", runtime=211))
    assert d.of(ShutdownHost) == []
    d.event(30, state("UPS1", "OB", runtime=210))
    assert d.last(ShutdownHost).reason == (
        "UPS1 runtime 210 s <= 210 s (120 s the remaining steps need + 90 s margin)")


def test_runtime_margin_outside_zero_to_one_is_a_plan_error() -> None:
    """runtime_margin is a share of the need: 25 (meant as 25 %) is refused, not taken as
    25 times the need."""
    host = HostPlan("h", "ssh", (Supply("UPS1"),), shutdown_after=600)
    [problem] = validate(Plan(ups=(UpsPlan("UPS1"),), hosts=(host,), runtime_margin=25))
    assert (problem.step, str(problem)) == (
        "runtime_margin", "runtime_margin (25) must be a share of the need from 0 to 1 "
                          "(0.25 adds 25 %)")


def test_low_battery_on_a_primary_is_critical_at_once() -> None:
    """upsmon primary (no timers, one local host): OB+LB -> FSD, wait for the secondaries,
    SHUTDOWN notification, FINALDELAY, shutdown with killpower."""
    d = Drive(upsmon_plan([("ups@nas", 1, "primary")], final_delay=5))
    d.event(0, state("ups@nas", "OL"))
    d.event(10, state("ups@nas", "OB LB"))
    fsd = d.last(SetFsd)
    assert (fsd.ups, fsd.wait, fsd.reason) == (
        "ups@nas", 15, "ups@nas on battery and low battery: this agent is the primary")
    assert d.of(ShutdownHost) == []
    d.done(12, fsd)
    assert [a.type for t, a in d.of(Notify) if t == 12] == ["SHUTDOWN"]
    d.until(17)
    assert d.steps(since=12) == [(17, "localhost", "shut down")]
    assert d.last(ShutdownHost).killpower is True


def test_low_battery_on_a_secondary_waits_hostsync() -> None:
    """A secondary gives the primary HOSTSYNC s (from its last reading that was not
    OB+LB) to set FSD, then shuts down by itself."""
    d = Drive(upsmon_plan([("ups@m", 1, "secondary")], final_delay=5))
    d.event(0, state("ups@m", "OB"))
    d.event(5, state("ups@m", "OB"))
    d.event(10, state("ups@m", "OB LB"))
    d.until(19.9)
    assert d.steps() == []
    d.until(30)
    assert d.steps() == [(25, "localhost", "shut down")]
    assert [(t, a.type) for t, a in d.of(Notify)][-1] == (20, "SHUTDOWN")
    assert d.last(ShutdownHost).reason == (
        "ups@m on battery and low battery and no FSD from the primary within HOSTSYNC 15")
    assert d.last(ShutdownHost).killpower is False


def test_fsd_is_critical_at_once_even_on_line() -> None:
    """FSD from the primary: the secondary shuts down now, whatever else the status says."""
    d = Drive(upsmon_plan([("ups@m", 1, "secondary")], final_delay=0))
    d.event(0, state("ups@m", "OL"))
    d.event(7, state("ups@m", "FSD OL"))
    assert d.last(ShutdownHost).reason == "ups@m: FSD set by the primary"
    assert [a.type for _, a in d.of(Notify)] == ["FSD", "SHUTDOWN"]


def test_calibration_suppresses_low_battery() -> None:
    """OB+LB during CAL is not critical (upsmon)."""
    d = Drive(upsmon_plan([("u", 1, "primary")]))
    d.event(0, state("u", "OB LB CAL"))
    d.until(1000)
    assert d.of(SetFsd) == [] and d.of(ShutdownHost) == []


def test_contact_lost_while_on_battery_is_critical_after_deadtime() -> None:
    """DEADTIME: last seen OB, no reading for 15 s -> treated as OB+LB."""
    d = Drive(upsmon_plan([("u", 1, "secondary")], final_delay=0))
    d.event(0, state("u", "OB"))
    d.event(3, CommLost("u", "connection refused"))
    d.until(14.9)
    assert d.of(ShutdownHost) == []
    d.until(16)
    assert d.of(ShutdownHost) == [(15, d.last(ShutdownHost))]
    assert d.last(ShutdownHost).reason == ("no contact with u for 15 s while on battery "
                                           "(DEADTIME 15)")
    assert [a.type for _, a in d.of(Notify)] == ["ONBATT", "COMMBAD", "SHUTDOWN"]


def test_a_status_without_ol_or_ob_keeps_the_power_state() -> None:
    """upsmon's parse_status: a driver going away reports ``WAIT`` before upsd loses it;
    that is not power back, so the DEADTIME countdown still ends in a shutdown."""
    d = Drive(upsmon_plan([("u", 1, "secondary")], final_delay=0))
    d.event(0, state("u", "OB DISCHRG"))
    d.event(2, state("u", "WAIT"))
    d.event(3, CommLost("u", "ERR DRIVER-NOT-CONNECTED"))
    d.until(20)
    assert [t for t, _ in d.of(ShutdownHost)] == [17]
    assert "ONLINE" not in [a.type for _, a in d.of(Notify)]


def test_a_status_without_ol_or_ob_is_not_power_lost() -> None:
    d = Drive(upsmon_plan([("u", 1, "secondary")], final_delay=0))
    d.event(0, state("u", "OL"))
    d.event(2, state("u", "ALARM"))
    d.event(3, CommLost("u", "ERR DRIVER-NOT-CONNECTED"))
    d.until(1000)
    assert d.steps() == []
    assert "ONBATT" not in [a.type for _, a in d.of(Notify)]


def test_contact_lost_while_on_line_is_never_critical() -> None:
    """Last seen OL: unreachable for hours is not a reason to shut down; NOCOMM repeats
    every NOCOMMWARNTIME; COMMOK when it is back."""
    d = Drive(upsmon_plan([("u", 1, "secondary")]))
    d.event(0, state("u", "OL"))
    d.event(1, CommLost("u", "timeout"))
    d.until(1000)
    assert d.steps() == []
    assert [(t, a.type) for t, a in d.of(Notify)] == [
        (1, "COMMBAD"), (300, "NOCOMM"), (600, "NOCOMM"), (900, "NOCOMM")]
    d.event(1001, CommOk("u"))
    d.event(1001, state("u", "OL"))
    assert [a.type for t, a in d.of(Notify) if t == 1001] == ["COMMOK"]


def test_on_battery_limit_counts_without_a_break() -> None:
    """R2d: OB for ``on_battery_limit`` s without a break is critical (PowerAct Pro's wait
    time, the master's on_battery_for); power back resets the count; the engine's deadline
    says when to look again."""
    plan = upsmon_plan([("u", 1, "primary")], final_delay=0)
    d = Drive(replace(plan, ups=(replace(plan.ups[0], on_battery_limit=600),)))
    d.event(0, state("u", "OB DISCHRG"))
    assert d.engine.next_deadline() == 600
    d.event(300, state("u", "OL"))
    assert d.engine.next_deadline() is None
    d.event(400, state("u", "OB DISCHRG"))
    d.until(999.9)
    assert d.of(SetFsd) == []
    d.until(1000)
    assert d.of(SetFsd) == [(1000, d.last(SetFsd))]
    assert d.last(SetFsd).reason == ("u on battery for 600 s (on_battery_for 600 s): this "
                                     "agent is the primary")


def test_on_battery_limit_is_not_counted_while_contact_is_lost() -> None:
    """R2d: without contact the limit does not fire (DEADTIME is for that); contact back
    while still on battery, the count never stopped."""
    plan = upsmon_plan([("u", 1, "primary")], final_delay=0, deadtime=5000)
    d = Drive(replace(plan, ups=(replace(plan.ups[0], on_battery_limit=600),)))
    d.event(0, state("u", "OB"))
    d.event(100, CommLost("u", "timeout"))
    d.until(900)
    assert d.of(SetFsd) == []
    d.event(901, CommOk("u"))
    d.event(901, state("u", "OB"))
    assert d.last(SetFsd).reason.startswith("u on battery for 901 s")


def test_a_ups_whose_latch_this_agent_holds_gets_fsd_when_critical() -> None:
    """R2e (the master's own UPSes): a critical UPS gets FSD at once, without a wait and
    once, whether its host shuts down or not; OB+LB is critical at once even where this
    agent's host's shutdown does not set FSD (role secondary); the host's own shutdown
    then sets FSD and waits on its primaries only."""
    plan = upsmon_plan([("a", 1, "primary"), ("b", 1, "primary")], final_delay=0)
    d = Drive(replace(plan, ups=tuple(replace(u, holds_latch=True) for u in plan.ups)
                      + (UpsPlan("far", holds_latch=True),)))
    for name in ("a", "b", "far"):
        d.event(0, state(name, "OL"))
    d.event(10, state("far", "OB LB"))
    fsd = d.last(SetFsd)
    assert (fsd.ups, fsd.wait, fsd.host, fsd.reason) == (
        "far", 0, "localhost", "far on battery and low battery")
    d.event(11, state("a", "OB LB"))
    d.event(12, state("far", "FSD OB LB"))     # our FSD, served back
    assert [(t, a.ups, a.wait) for t, a in d.of(SetFsd)] == [(10, "far", 0), (11, "a", 0)]
    assert d.engine.phase("localhost") is Phase.IDLE     # b still feeds the host
    d.event(20, state("b", "OB LB"))
    assert [(a.ups, a.wait) for _, a in d.of(SetFsd, since=20)] == [
        ("b", 0), ("a", 15), ("b", 15)]
    assert d.engine.phase("localhost") is Phase.FSD


def test_upsmon_notifications_and_their_texts() -> None:
    """upsmon's types and NOTIFYMSG texts: no ONLINE for the first reading, REPLBATT at
    most every RBWARNTIME, overrides from the plan."""
    plan = Plan(ups=(UpsPlan("u@h"),), hosts=(), notify_messages={"ONBATT": "%s lost mains"})
    d = Drive(plan)
    d.event(0, state("u@h", "OL"))
    d.event(1, state("u@h", "OB"))
    d.event(2, state("u@h", "OB LB RB"))
    d.event(3, state("u@h", "OL RB"))
    d.event(4, state("u@h", "OL CAL"))
    assert [(a.type, a.ups, a.message) for _, a in d.of(Notify)] == [
        ("ONBATT", "u@h", "u@h lost mains"),
        ("LOWBATT", "u@h", "UPS u@h battery is low"),
        ("REPLBATT", "u@h", "UPS u@h battery needs to be replaced"),
        ("ONLINE", "u@h", "UPS u@h on line power"),
        ("CAL", "u@h", "UPS u@h: calibration in progress")]


def test_a_ups_never_heard_from_counts_as_on_line() -> None:
    """No reading at all: nothing happens (upsmon)."""
    d = Drive(upsmon_plan([("u", 1, "primary")]))
    d.until(10000)
    assert d.log == []


# -- R6/R7: the shutdown sequence ---------------------------------------------------------


def test_shutdown_stages_delay_command_host() -> None:
    """Start delay, then the command, then the host; the message warns the users at the
    failure (after the debounce) and at the order."""
    plan = Plan(ups=(UpsPlan("UPS1"),), hosts=(HostPlan(
        "h", "ssh", (Supply("UPS1"),), shutdown_after=60, shutdown_delay=30,
        command=("/usr/local/bin/stop-db", "--fast"), command_budget=20,
        message="power failure"),))
    d = Drive(plan)
    started(d, 0, "UPS1")
    d.event(0, state("UPS1", "OB"))
    d.until(60)
    warnings = [(t, a.message, a.reason) for t, a in d.of(WarnUsers)]
    assert warnings == [
        (5, "power failure", "UPS1 on battery; shutdown in 55 s unless power returns"),
        (60, "power failure", "shutdown in 30 s: UPS1 on battery for 60 s")]
    d.until(90)
    run = d.last(RunCommand)
    assert run.argv == ("/usr/local/bin/stop-db", "--fast")
    d.done(100, run, Outcome.FAILED, "exit 1")
    assert d.steps(since=61) == [(90, "h", "run command"), (100, "h", "shut down")]


def test_power_back_during_the_start_delay_calls_the_shutdown_off() -> None:
    """Nothing irreversible has happened yet: the shutdown is called off."""
    plan = Plan(ups=(UpsPlan("UPS1"),), hosts=(HostPlan(
        "h", "ssh", (Supply("UPS1"),), shutdown_after=60, shutdown_delay=30),))
    d = Drive(plan)
    started(d, 0, "UPS1")
    d.event(0, state("UPS1", "OB"))
    d.event(70, state("UPS1", "OL"))
    d.until(1000)
    assert d.steps() == [(70, "h", "cancel shut down")]
    assert d.last(Cancel).reason == "UPS1 back on line after 70 s, during the start delay"


def test_once_the_command_runs_the_shutdown_completes() -> None:
    """Power back while the command runs: the shutdown goes on (it cannot be undone)."""
    plan = Plan(ups=(UpsPlan("UPS1"),), hosts=(HostPlan(
        "h", "ssh", (Supply("UPS1"),), shutdown_after=60, command=("/bin/x",),
        command_budget=30),))
    d = Drive(plan)
    started(d, 0, "UPS1")
    d.event(0, state("UPS1", "OB"))
    d.until(60)
    d.event(61, state("UPS1", "OL"))
    d.done(70, d.last(RunCommand))
    assert d.steps(since=61) == [(70, "h", "shut down")]


def test_the_agents_own_host_goes_last() -> None:
    """A primary's own host waits for the secondaries (FSD), then for its other hosts to
    be down (their shutdown_duration after the order was accepted)."""
    plan = Plan(ups=(UpsPlan("UPS", "primary"),), hosts=(
        HostPlan("master", "local", (Supply("UPS"),), shutdown_after=600),
        HostPlan("linux1", "ssh", (Supply("UPS"),), shutdown_duration=30)), hostsync=300)
    d = Drive(plan)
    started(d, 0, "UPS")
    d.event(0, state("UPS", "OB"))
    d.until(600)
    assert d.steps() == [(600, "master", "set FSD"), (600, "linux1", "shut down")]
    d.done(601, d.last(ShutdownHost, "linux1"))
    d.done(610, d.last(SetFsd))
    d.until(700)
    assert d.steps(since=602) == [(631, "master", "shut down")]


def test_an_operation_that_never_answers_is_given_up() -> None:
    """R8: a backend that never answers: after its limit + 30 s the engine cancels it and
    goes on as if it had timed out."""
    d = Drive(two_hosts())
    started(d)
    d.event(0, state("UPS1", "OB"))
    d.until(120)
    d.until(1000)
    shutdown = d.last(ShutdownHost)
    cancel = d.last(Cancel)
    assert (cancel.target, cancel.reason) == (shutdown.id, "no answer 30 s after its time "
                                                           "limit")
    enter_cancel = d.of(Cancel)[0][1]
    assert enter_cancel.step == "enter maintenance"
    # R6: a host shutdown given up on has failed: issued again (10, 20, 40, 60 s after
    # each failure) while the power is still failing, the VMs first (their step was given
    # up on too); the host is not counted as down
    assert [t for t, _ in d.of(ShutdownVms)] == [150, 340, 540, 760, 1000]
    assert [t for t, _ in d.of(ShutdownHost)] == [240, 430, 630, 850]
    assert d.engine.phase("host1") is Phase.VMS


# -- R6: a failed host shutdown is issued again -----------------------------------------


def ssh_plan(**kw: Any) -> Plan:
    return Plan(ups=(UpsPlan("UPS1"),), hosts=(
        HostPlan("h", "ssh", (Supply("UPS1"),), shutdown_after=60, **kw),), name="mgmt")


def test_a_failed_host_shutdown_is_issued_again_until_it_works() -> None:
    """The host's shutdown fails (its manager unreachable): issued again 10 s later, then
    after 20, 40 and 60 s (the cap), one attempt at a time, until it works; the reason
    says which attempt and why the last one failed."""
    d = Drive(ssh_plan())
    started(d, 0, "UPS1")
    d.event(0, state("UPS1", "OB"))
    d.until(60)
    d.done(61, d.last(ShutdownHost), Outcome.UNREACHABLE, "vCenter unreachable")
    assert d.engine.phase("h") is Phase.STOPPING
    d.until(70.9)
    assert len(d.of(ShutdownHost)) == 1
    d.until(71)
    second = d.last(ShutdownHost)
    assert second.reason == ("UPS1 on battery for 60 s; attempt 2, the last one failed: "
                             "vCenter unreachable")
    d.until(160)                     # one attempt at a time: none while it runs
    assert d.last(ShutdownHost) is second
    d.done(160, second, Outcome.FAILED, "InvalidState")
    for at in (180, 220, 280, 340):
        d.until(at - 0.1)
        assert d.of(ShutdownHost)[-1][0] < at - 1
        d.until(at)
        assert d.of(ShutdownHost)[-1][0] == at
        d.done(at, d.last(ShutdownHost), Outcome.UNREACHABLE, "down")
    d.until(400)
    d.done(401, d.last(ShutdownHost))
    assert d.engine.phase("h") is Phase.DOWN
    d.until(2000)
    assert [t for t, _ in d.of(ShutdownHost)] == [60, 71, 180, 220, 280, 340, 400]


def test_a_retry_stops_the_vms_first_when_their_step_failed_too() -> None:
    """vCenter unreachable at the VMs' step: that is a failed attempt of the host's
    shutdown (not issued: it would find vCenter gone, or cut the VMs off were it back);
    the next attempt stops the VMs again first, then the host; a host shutdown that fails
    once the VMs are stopped is retried alone."""
    d = Drive(three_esx())
    started(d, 0, "UPS1")
    d.event(0, state("UPS1", "OB"))
    d.until(60)
    d.done(60, d.last(ShutdownVms, "esx1"), Outcome.UNREACHABLE, "vCenter unreachable")
    assert d.of(ShutdownHost, "esx1") == []
    assert d.engine.phase("esx1") is Phase.STOPPING
    d.until(70)
    again = d.last(ShutdownVms, "esx1")
    assert again.reason == ("UPS1 on battery for 60 s; again before attempt 2 of the "
                            "host's shutdown, the last one failed: vCenter unreachable")
    assert d.of(ShutdownHost, "esx1") == []
    d.done(75, again, stopped=("vm1",))
    assert d.last(ShutdownHost, "esx1").reason == (
        "UPS1 on battery for 60 s; attempt 2, the last one failed: vCenter unreachable")
    d.done(75, d.last(ShutdownHost, "esx1"), Outcome.FAILED, "InvalidState")
    d.until(95)
    assert [t for t, _ in d.of(ShutdownVms, "esx1")] == [60, 70]
    assert [t for t, _ in d.of(ShutdownHost, "esx1")] == [75, 95]


def test_the_own_host_stops_waiting_for_a_failing_host_once_its_power_is_critical(
        ) -> None:
    """The own host goes last (R6) and waits for a host whose shutdown keeps failing;
    once its own power is critical (LB) it no longer waits for that host and shuts down,
    rather than be cut off with everything; the other host's retries go on meanwhile."""
    plan = Plan(ups=(UpsPlan("UPS", "primary"),), hosts=(
        HostPlan("master", "local", (Supply("UPS"),), shutdown_after=600),
        HostPlan("nas", "ssh", (Supply("UPS"),), shutdown_after=60, shutdown_duration=30)),
        hostsync=10)
    d = Drive(plan)
    started(d, 0, "UPS")
    d.event(0, state("UPS", "OB"))
    d.until(60)
    d.done(61, d.last(ShutdownHost, "nas"), Outcome.UNREACHABLE, "connection refused")
    d.until(600)
    d.done(600, d.last(SetFsd))
    d.until(900)
    # the FSD this primary set is not its power running out: it still waits for nas,
    # whose attempts go on (each given up on after its limit, R8, then retried)
    assert d.of(ShutdownHost, "master") == []
    assert len(d.of(ShutdownHost, "nas")) > 5
    d.event(901, state("UPS", "OB LB"))
    d.until(905)
    assert [t for t, _ in d.of(ShutdownHost, "master")] == [901]
    assert d.engine.phase("nas") is Phase.STOPPING


def one_esx_with_maintenance() -> Plan:
    return Plan(ups=(UpsPlan("UPS1"),), hosts=(HostPlan(
        "esx1", "vsphere", (Supply("UPS1"),), maintenance_after=30, shutdown_after=300,
        manager="vc1"),), name="mgmt")


@pytest.mark.parametrize("outcome", [Outcome.UNREACHABLE, Outcome.FAILED, Outcome.TIMED_OUT])
def test_an_enter_whose_end_was_not_seen_is_exited_on_power_back(outcome: Outcome) -> None:
    """vCenter went away while the host entered maintenance: the enter's end is unknown,
    the host may be in maintenance: power back takes it out as the agent's own (the
    backend leaves a host that is not in maintenance as it is).  A definite NO_TARGET
    leaves nothing to undo."""
    d = Drive(one_esx_with_maintenance())
    started(d, 0, "UPS1")
    d.event(0, state("UPS1", "OB"))
    d.until(30)
    enter = d.last(EnterMaintenance, "esx1")
    d.done(31, enter, outcome, "HTTPException: 503 Service Unavailable")
    assert d.engine.phase("esx1") is Phase.NO_MAINTENANCE
    d.event(40, state("UPS1", "OL"))
    d.until(41)
    exits = d.of(ExitMaintenance, "esx1")
    assert [t for t, _ in exits] == [40], d.steps()


def test_an_enter_refused_for_want_of_a_target_leaves_nothing_to_undo() -> None:
    d = Drive(one_esx_with_maintenance())
    started(d, 0, "UPS1")
    d.event(0, state("UPS1", "OB"))
    d.until(30)
    d.done(31, d.last(EnterMaintenance, "esx1"), Outcome.NO_TARGET, "Timedout")
    d.event(40, state("UPS1", "OL"))
    d.until(41)
    assert d.of(ExitMaintenance, "esx1") == []
    assert d.engine.phase("esx1") is Phase.IDLE


def test_a_restart_after_the_own_hosts_failed_shutdown_is_a_new_boot() -> None:
    """R9 holds with the retries: the own host's shutdown was started (and failed): a
    restored engine starts afresh, as after a boot, and does not run it again by itself."""
    plan = Plan(ups=(UpsPlan("UPS1"),), hosts=(
        HostPlan("me", "local", (Supply("UPS1"),), shutdown_after=60),), name="me")
    d = Drive(plan)
    started(d, 0, "UPS1")
    d.event(0, state("UPS1", "OB"))
    d.until(60)
    d.done(61, d.last(ShutdownHost), Outcome.FAILED, "exit 1")
    snapshot = json.loads(json.dumps(d.engine.snapshot()))
    again = Drive(plan, 65, PolicyEngine.restore(plan, snapshot, 65))
    assert again.engine.phase("me") is Phase.IDLE
    again.until(100)
    assert again.of(ShutdownHost) == []
    again.event(100, state("UPS1", "OB"))           # on battery since the boot: timers anew
    again.until(159)
    assert again.of(ShutdownHost) == []
    again.until(160)
    assert [t for t, _ in again.of(ShutdownHost)] == [160]


def test_power_back_ends_the_retries_and_undoes_the_maintenance() -> None:
    """Power back while a failed shutdown waits for its next attempt: the host is up and
    protected again; this agent's maintenance is exited, nothing is tried again; the next
    failure starts over."""
    d = Drive(two_hosts())
    started(d)
    d.event(0, state("UPS1", "OB"))
    d.until(60)
    d.done(70, d.last(EnterMaintenance))
    d.until(120)
    d.done(121, d.last(ShutdownHost, "host1"), Outcome.UNREACHABLE, "vCenter unreachable")
    d.event(125, state("UPS1", "OL"))
    assert d.last(ExitMaintenance, "host1").reason == "UPS1 back on line after 125 s"
    d.done(126, d.last(ExitMaintenance))
    d.until(1000)
    assert len(d.of(ShutdownHost)) == 1 and d.engine.phase("host1") is Phase.IDLE
    d.event(1000, state("UPS1", "OB"))
    d.until(1060)
    assert d.last(EnterMaintenance, "host1").reason == "UPS1 on battery for 60 s"


def test_hosts_going_last_wait_for_a_failed_shutdown() -> None:
    """R6: the agent's own host waits while another host's shutdown fails and is tried
    again (it is not down), and goes once that host is down and had its
    shutdown_duration."""
    plan = Plan(ups=(UpsPlan("UPS", "primary"),), hosts=(
        HostPlan("master", "local", (Supply("UPS"),), shutdown_after=600),
        HostPlan("linux1", "ssh", (Supply("UPS"),), shutdown_duration=30)), hostsync=300)
    d = Drive(plan)
    started(d, 0, "UPS")
    d.event(0, state("UPS", "OB"))
    d.until(600)
    d.done(601, d.last(ShutdownHost, "linux1"), Outcome.UNREACHABLE, "no route to host")
    d.done(610, d.last(SetFsd))
    d.until(611)
    d.done(611, d.last(ShutdownHost, "linux1"), Outcome.UNREACHABLE, "no route to host")
    d.until(650)
    assert d.of(ShutdownHost, "master") == [] and d.engine.phase("master") is Phase.LAST
    assert [t for t, _ in d.of(ShutdownHost, "linux1")] == [600, 611, 631]
    d.done(650, d.last(ShutdownHost, "linux1"))
    d.until(700)
    assert [t for t, _ in d.of(ShutdownHost, "master")] == [680]


def test_the_vcenter_host_waits_for_a_failed_shutdown() -> None:
    """R6: the vCenter's host keeps its VMs (the vCenter) while another host's shutdown
    fails: the retries need the vCenter."""
    d = Drive(three_esx(esx1={"runs_vcenter": True}))
    started(d, 0, "UPS1")
    d.event(0, state("UPS1", "OB"))
    d.until(60)
    d.done(62, d.last(ShutdownVms, "esx2"))
    d.done(62, d.last(ShutdownVms, "esx3"))
    d.done(63, d.last(ShutdownHost, "esx2"), Outcome.UNREACHABLE, "vCenter unreachable")
    d.done(63, d.last(ShutdownHost, "esx3"))
    d.until(100)
    assert d.of(ShutdownVms, "esx1") == []
    assert [t for t, _ in d.of(ShutdownHost, "esx2")] == [62, 73]
    d.done(100, d.last(ShutdownHost, "esx2"))
    assert d.last(ShutdownVms, "esx1").reason == (
        "UPS1 on battery for 60 s; runs the vCenter VM: after esx2, esx3")


def test_a_restart_keeps_the_retries_of_a_failed_shutdown() -> None:
    """R9: an agent restarted while a failed shutdown waits for its next attempt issues
    it at the time it was due."""
    d = Drive(ssh_plan())
    started(d, 0, "UPS1")
    d.event(0, state("UPS1", "OB"))
    d.until(60)
    d.done(61, d.last(ShutdownHost), Outcome.UNREACHABLE, "down")
    snapshot = json.loads(json.dumps(d.engine.snapshot()))
    again = Drive(ssh_plan(), 65, PolicyEngine.restore(ssh_plan(), snapshot, 65))
    again.until(70.9)
    assert again.of(ShutdownHost) == []
    again.until(71)
    assert [t for t, _ in again.of(ShutdownHost)] == [71]


def test_exit_maintenance_is_retried() -> None:
    """A host that does not come back in time: exit is tried again later."""
    d = Drive(two_hosts())
    started(d)
    d.event(0, state("UPS1", "OB"))
    d.until(60)
    d.done(70, d.last(EnterMaintenance))
    d.event(80, state("UPS1", "OL"))
    first = d.last(ExitMaintenance)
    d.done(90, first, Outcome.UNREACHABLE, "host1 is down")
    d.until(209.9)
    assert d.last(ExitMaintenance) is first
    d.until(210)
    assert d.last(ExitMaintenance) is not first


# -- R9: snapshot and restore ------------------------------------------------------------


def test_snapshot_restore_mid_sequence_keeps_the_timers() -> None:
    """An agent restarted at 100 s (host1 in maintenance) shuts host1 down at 120 s as
    planned, once the UPS has been read again; the snapshot is plain JSON."""
    plan = two_hosts()
    d = Drive(plan)
    started(d)
    d.event(0, state("UPS1", "OB"))
    d.until(60)
    d.done(80, d.last(EnterMaintenance))
    saved = json.loads(json.dumps(d.engine.snapshot()))
    again = Drive(plan, 100, PolicyEngine.restore(plan, saved, 100))
    again.until(100)
    again.event(101, state("UPS1", "OB"))
    again.event(101, state("UPS2", "OL"))
    again.until(120)
    assert again.steps() == [(120, "host1", "shut down")]
    assert again.of(Notify) == []    # no ONBATT again


def test_restore_reissues_operations_in_flight() -> None:
    """A migration in flight at the snapshot is asked for again (backends are idempotent)."""
    plan = two_hosts()
    d = Drive(plan)
    started(d)
    d.event(0, state("UPS1", "OB"))
    d.until(60)
    engine = PolicyEngine.restore(plan, d.engine.snapshot(), 65)
    [again] = engine.tick(65)
    assert isinstance(again, EnterMaintenance)
    assert again.reason == "resumed after a restart: UPS1 on battery for 60 s"
    assert again.id != d.last(EnterMaintenance).id


def test_restore_does_not_run_the_command_twice() -> None:
    """The command's outcome is unknown after a restart: it is not run again, the
    shutdown goes on."""
    plan = Plan(ups=(UpsPlan("UPS1"),), hosts=(HostPlan(
        "h", "ssh", (Supply("UPS1"),), shutdown_after=60, command=("/bin/x",),
        command_budget=30),))
    d = Drive(plan)
    started(d, 0, "UPS1")
    d.event(0, state("UPS1", "OB"))
    d.until(60)
    engine = PolicyEngine.restore(plan, d.engine.snapshot(), 70)
    assert [a.verb for a in engine.tick(70)] == ["shut down"]


def test_at_boot_hosts_left_in_maintenance_are_taken_out() -> None:
    """The agent's state says it shut host1 down in maintenance; after the restart, once
    the UPS reads OL, host1 is taken out of maintenance."""
    plan = two_hosts()
    d = Drive(plan)
    started(d)
    d.event(0, state("UPS1", "OB"))
    d.until(60)
    d.done(70, d.last(EnterMaintenance))
    d.until(120)
    d.done(121, d.last(ShutdownHost))
    engine = PolicyEngine.restore(plan, d.engine.snapshot(), 1000)
    again = Drive(plan, 1000, engine)
    again.until(1000)
    assert again.steps() == []
    again.event(1002, state("UPS1", "OL"))
    exit_ = again.last(ExitMaintenance)
    assert exit_.host == "host1" and "shut down after this agent's maintenance" in exit_.reason
    assert [a.type for _, a in again.of(Notify)] == []    # the first reading: no ONLINE


def test_restore_refuses_an_unknown_state() -> None:
    """A snapshot of another version is refused, not misread."""
    with pytest.raises(StateError):
        PolicyEngine.restore(two_hosts(), {"version": 99}, 0)


def test_the_engine_is_deterministic() -> None:
    """The same inputs at the same times give equal actions."""
    def run() -> list[tuple[float, Action]]:
        d = Drive(two_hosts())
        started(d)
        d.event(0, state("UPS1", "OB"))
        d.event(0, state("UPS2", "OB"))
        d.until(1000)
        return d.log
    assert run() == run()


# -- the executor and the backends -------------------------------------------------------


class Recorder(Backend):
    """A backend that records calls and answers success at once."""

    kind = "recorder"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def enter_maintenance(self, host: str, timeout: float) -> Deferred[Result]:
        self.calls.append(("enter", host))
        return succeed(Result(OK, "moved"))

    def shutdown_host(self, host: str, killpower: bool = False) -> Deferred[Result]:
        self.calls.append(("shutdown", host))
        return succeed(Result(OK, "bye"))


def test_dry_run_logs_what_would_happen_and_does_nothing() -> None:
    """dry_run: no backend call; the log says what would be done, when, and why."""
    messages: list[str] = []

    def observer(event: LogEvent) -> None:
        if event.get("log_namespace") == "upsagent.policy":
            messages.append(formatEvent(event))
    clock = Clock()
    backend = Recorder()
    executor = Executor(PolicyEngine(two_hosts(), 0), clock,
                        {"host1": backend, "host2": backend}, dry_run=True)
    globalLogPublisher.addObserver(cast(ILogObserver, observer))
    try:
        executor.start()
        executor.handle(state("UPS1", "OL"))
        executor.handle(state("UPS1", "OB"))
        clock.advance(60)
        clock.advance(60)
    finally:
        globalLogPublisher.removeObserver(cast(ILogObserver, observer))
    assert backend.calls == []
    assert "dry run: host1 would enter maintenance in 60 s (UPS1 on battery for 60 s)" \
        in messages
    assert "dry run: would enter maintenance on host1 now: UPS1 on battery for 60 s" \
        in messages
    assert "dry run: would shut down on host1 now: UPS1 on battery for 120 s" in messages


def test_executor_drives_the_simulated_cluster_on_a_clock() -> None:
    """Engine + executor + simulated vSphere cluster: maintenance moves the VMs, the host
    goes down, results flow back; 10 simulated minutes in no real time."""
    clock = Clock()
    cluster = SimCluster(clock, "c", "vsphere", migration_time=10)
    for host in ("host1", "host2"):
        cluster.add_host(host, stop_time=60)
    cluster.add_vm("vm1", "host1")
    backend = SimulatedBackend(cluster)
    seen: list[tuple[str, str, float]] = []
    executor = Executor(PolicyEngine(two_hosts(), 0), clock,
                        {"host1": backend, "host2": backend},
                        observer=lambda kind, action, result, now: seen.append(
                            (kind, action.verb, now)))
    executor.start()
    executor.handle(state("UPS1", "OL"))
    executor.handle(state("UPS2", "OL"))
    executor.handle(state("UPS1", "OB"))
    for _ in range(600):
        clock.advance(1)
    assert cluster.vms["vm1"].host == "host2"
    assert cluster.hosts["host1"].state == "down" and cluster.hosts["host1"].maintenance
    assert ("done", "enter maintenance", 70) in seen
    assert ("start", "shut down", 120) in seen


def test_monitor_fsd_waits_for_numlogins() -> None:
    """MonitorFsd: FSD, then NUMLOGINS every 0.25 s until only we are left."""
    clock = Clock()

    class Monitor:
        logins = 3
        fsd = False

        def set_fsd(self) -> Deferred[None]:
            self.fsd = True
            return succeed(None)

        def numlogins(self) -> Deferred[int]:
            return succeed(self.logins)
    monitor = Monitor()
    d = MonitorFsd({"u": monitor}, clock).set_fsd("u", 15)
    clock.advance(1)
    assert monitor.fsd and not d.called
    monitor.logins = 1
    clock.advance(0.25)
    assert d.result.outcome is OK  # type: ignore[attr-defined]


class FakeRunner:
    def __init__(self) -> None:
        self.runs: list[tuple[tuple[str, ...], float | None]] = []

    def run(self, argv: Any, budget: float | None) -> Deferred[Any]:
        self.runs.append((tuple(argv), budget))

        class Done:
            ok, timed_out, summary = True, False, "exit 0 in 0.1 s"
        return succeed(Done())


def test_local_backend_runs_argv_and_writes_the_powerdown_flag(tmp_path: Path) -> None:
    """The shutdown command is an argument list (a string is refused); killpower writes
    upsmon's POWERDOWNFLAG first; maintenance does not apply."""
    runner = FakeRunner()
    flag = tmp_path / "killpower"
    local = LocalBackend(runner, powerdown_flag=str(flag))
    result: Any = local.shutdown_host("localhost", killpower=True)
    assert result.result == Result(OK, "exit 0 in 0.1 s")
    assert runner.runs == [(("/sbin/shutdown", "-h", "+0"), 30.0)]
    assert flag.read_text() == POWERDOWN_MAGIC
    maintenance: Any = local.enter_maintenance("localhost", 10)
    assert maintenance.result.outcome is Outcome.NOT_APPLICABLE
    local.warn_users("localhost", "power failure")
    assert runner.runs[-1] == (("wall", "upsagent:", "power failure"), 10.0)
    with pytest.raises(TypeError):
        LocalBackend(runner, shutdown_command="/sbin/shutdown -h now")  # type: ignore[arg-type]


def test_backend_registry() -> None:
    """Kinds map to classes, imported on first use; an unknown kind names the known ones.
    The simulator's backend is not among them: only ``upsagent simulate`` builds it."""
    assert backend_class("local") is LocalBackend
    with pytest.raises(KeyError, match=r"known: local(, \w+)*\)"):
        backend_class("hyper-v")
    with pytest.raises(KeyError, match="unknown backend 'simulated'"):
        backend_class("simulated")


def test_a_reload_keeps_what_is_known_of_each_ups() -> None:
    """SIGHUP: contact lost before the reload stays lost (no second COMMBAD when the new
    session fails too; COMMOK when it is back); a restart starts unknown (R9)."""
    d = Drive(upsmon_plan([("u", 1, "secondary")]))
    d.event(0, state("u", "OL"))
    d.event(1, CommLost("u", "timeout"))
    snap = d.engine.snapshot()
    reloaded = Drive(d.engine.plan, 2, PolicyEngine.restore(d.engine.plan, snap, 2,
                                                            reload=True))
    reloaded.event(3, CommLost("u", "connection refused"))
    reloaded.event(4, CommOk("u"))
    assert [a.type for _, a in reloaded.of(Notify)] == ["COMMOK"]
    restarted = Drive(d.engine.plan, 2, PolicyEngine.restore(d.engine.plan, snap, 2))
    restarted.event(3, CommLost("u", "connection refused"))
    assert [a.type for _, a in restarted.of(Notify)] == ["COMMBAD"]


# -- VM groups ------------------------------------------------------------------------


def test_vm_groups_are_carried_to_the_vm_shutdown() -> None:
    """A host's vm_groups go with its ShutdownVms, in order, within its VM budget."""
    groups = (VmGroup(("db*",), 20), VmGroup(("app*", "web?"), 30))
    d = Drive(two_hosts(vm_groups=groups, vm_shutdown_timeout=60))
    started(d)
    d.event(0, state("UPS2", "OB"))
    d.until(60)
    d.done(60, d.last(EnterMaintenance), Outcome.NO_TARGET, "no host can take vm3")
    d.until(120)
    vms = d.last(ShutdownVms)
    assert (vms.groups, vms.timeout) == (groups, 60)


def test_vm_groups_must_fit_the_vm_shutdown_budget() -> None:
    """The groups' timeouts add up to at most vm_shutdown_timeout: an error otherwise,
    with the sum and the overrun."""
    groups = (VmGroup(("db*",), 40), VmGroup(("*",), 30))
    plan = Plan(ups=(UpsPlan("UPS1"),), hosts=(
        vsphere("esxi1", "UPS1", vm_groups=groups, vm_shutdown_timeout=60),))
    [problem] = validate(plan)
    assert str(problem) == ("host esxi1: the VM groups' timeouts add up to 70 s (40 s + "
                            "30 s), more than the VM shutdown budget vm_shutdown_timeout = "
                            "60 s")
    assert (problem.step, problem.severity, problem.excess) == ("vm_groups", "error", 10)
    fits = Plan(ups=plan.ups, hosts=(vsphere("esxi1", "UPS1", vm_groups=groups,
                                             vm_shutdown_timeout=70),))
    assert validate(fits) == []


def test_vm_batches_first_matching_group_then_the_rest() -> None:
    """A VM is in the first group it matches; the VMs of no group come last with what the
    groups leave of the budget; empty groups are skipped."""
    groups = (VmGroup(("db*",), 20), VmGroup(("nothing*",), 5), VmGroup(("db2", "web*"), 10))
    vms = ["web1", "db2", "db1", "mail", "app"]
    assert vm_batches(groups, vms, 60) == [
        (("db1", "db2"), 20), (("web1",), 10), (("app", "mail"), 25)]
    assert vm_batches((), vms, 60) == [(("app", "db1", "db2", "mail", "web1"), 60)]
    assert vm_batches(groups, vms, 30)[-1] == (("app", "mail"), 0)


@pytest.mark.parametrize("value, message", [
    ({"patterns": ["a"]}, "vm_groups[1].timeout: is required"),
    ([{"patterns": ["a"], "timeout": 1}, {"patterns": [], "timeout": 1}],
     "vm_groups[2].patterns: must be a non-empty list"),
    ([{"patterns": "a", "timeout": -1}], "vm_groups[1].timeout: must not be negative"),
    ([{"patterns": "a", "timeout": "1m"}], "vm_groups[1].timeout: must be a number"),
    ([{"patterns": "a", "timeout": 1, "prio": 2}], "vm_groups[1].prio: unknown key"),
    (["db*"], "vm_groups[1]: must be a table"),
])
def test_read_vm_groups_names_the_bad_key(value: Any, message: str) -> None:
    if isinstance(value, dict):
        value = [value]
    with pytest.raises(VmGroupError) as info:
        read_vm_groups(value)
    assert str(info.value).startswith(message)
    assert read_vm_groups([{"patterns": "db*", "timeout": 5}]) == (VmGroup(("db*",), 5.0),)


def test_a_vm_shutdown_with_groups_survives_a_restart() -> None:
    """The groups of a ShutdownVms in flight are saved as plain JSON and issued again."""
    groups = (VmGroup(("db*", "sql?"), 20), VmGroup(("*",), 30))
    plan = two_hosts(vm_groups=groups)
    d = Drive(plan)
    started(d)
    d.event(0, state("UPS2", "OB"))
    d.until(60)
    d.done(60, d.last(EnterMaintenance), Outcome.NO_TARGET, "no host can take vm3")
    d.until(120)
    assert d.last(ShutdownVms).groups == groups
    saved = json.loads(json.dumps(d.engine.snapshot()))
    engine = PolicyEngine.restore(plan, saved, 125)
    [again] = [a for a in engine.tick(125) if isinstance(a, ShutdownVms)]
    assert (again.groups, again.timeout) == (groups, 60)


# -- power_on_vms ---------------------------------------------------------------------


def vms_stopped_then_down(plan: Plan) -> Drive:
    """host2's maintenance fails, its VMs vm3 and vm4 are shut down, then host2."""
    d = Drive(plan)
    started(d)
    d.event(0, state("UPS2", "OB"))
    d.until(60)
    d.done(60, d.last(EnterMaintenance, "host2"), Outcome.NO_TARGET, "no host can take vm3")
    d.until(120)
    d.done(130, d.last(ShutdownVms, "host2"), stopped=("vm3", "vm4"))
    d.done(131, d.last(ShutdownHost, "host2"))
    return d


def test_power_on_vms_starts_again_what_the_agent_shut_down() -> None:
    """R7: power back, host2 (shut down without maintenance) is idle again: PowerOnVms
    names the VMs its VM shutdown stopped, with the groups; once, not again."""
    groups = (VmGroup(("vm3",), 20),)
    d = vms_stopped_then_down(two_hosts(power_on_vms=True, vm_groups=groups))
    d.event(400, state("UPS2", "OL"))
    start = d.last(PowerOnVms, "host2")
    assert (start.vms, start.groups) == (("vm3", "vm4"), groups)
    assert start.reason == ("UPS2 back on line after 400 s; starting again the VMs this "
                            "agent shut down on host2")
    assert d.engine.phase("host2") is Phase.STARTING_VMS
    d.done(470, start, stopped=("vm4", "vm3"))
    assert d.engine.phase("host2") is Phase.IDLE
    d.until(2000)
    assert len(d.of(PowerOnVms)) == 1


def test_without_power_on_vms_nothing_is_started() -> None:
    d = vms_stopped_then_down(two_hosts())
    d.event(400, state("UPS2", "OL"))
    d.until(2000)
    assert d.of(PowerOnVms) == [] and d.engine.phase("host2") is Phase.IDLE


def test_power_failing_again_aborts_the_power_on_and_keeps_the_vms() -> None:
    """Power fails again while the VMs start: the power-on is cancelled so that the
    timers run; the VMs not started are started at the next return."""
    d = vms_stopped_then_down(two_hosts(power_on_vms=True))
    d.event(400, state("UPS2", "OL"))
    start = d.last(PowerOnVms, "host2")
    [cancel] = [a for a in d.event(410, state("UPS2", "OB")) if isinstance(a, Cancel)]
    assert (cancel.target, cancel.step) == (start.id, "power on VMs")
    d.done(411, start, Outcome.CANCELLED)
    assert d.engine.phase("host2") is Phase.IDLE
    d.until(470)
    assert d.last(EnterMaintenance, "host2") is not None     # the timers ran again
    d.event(480, state("UPS2", "OL"))
    d.until(600)
    assert d.last(PowerOnVms, "host2").vms == ("vm3", "vm4")


def test_vms_to_start_survive_the_agents_own_reboot() -> None:
    """The VMs to start again are kept across a restart of the agent (R9)."""
    plan = two_hosts(power_on_vms=True)
    d = vms_stopped_then_down(plan)
    saved = json.loads(json.dumps(d.engine.snapshot()))
    engine = PolicyEngine.restore(plan, saved, 140)
    again = Drive(plan, 140, engine)
    again.until(140)
    again.event(400, state("UPS1", "OL"))
    again.event(400, state("UPS2", "OL"))
    again.until(500)
    assert again.last(PowerOnVms, "host2").vms == ("vm3", "vm4")


# -- R6: the vCenter's host and the agent's VM's host last ------------------------------


def three_esx(**flags: dict[str, bool]) -> Plan:
    hosts = tuple(HostPlan(name, "vsphere", (Supply("UPS1"),), shutdown_after=60,
                           manager="vc1", **flags.get(name, {}))
                  for name in ("esx1", "esx2", "esx3"))
    return Plan(ups=(UpsPlan("UPS1"),), hosts=hosts, name="mgmt")


def test_the_vcenter_host_and_the_agent_vm_host_go_last() -> None:
    """Shutdowns due together: the other host first, then the vCenter's host (once the
    other is down), then the agent's VM's host; the reason says why."""
    d = Drive(three_esx(esx1={"runs_vcenter": True}, esx2={"runs_agent": True}))
    started(d, 0, "UPS1")
    d.event(0, state("UPS1", "OB"))
    d.until(60)
    assert [a.host for _, a in d.of(ShutdownVms)] == ["esx3"]
    assert d.engine.phase("esx1") is Phase.AFTER_OTHERS
    d.done(70, d.last(ShutdownVms, "esx3"))
    assert [a.host for _, a in d.of(ShutdownVms)] == ["esx3"]      # esx3 still stopping
    d.done(71, d.last(ShutdownHost, "esx3"))
    vms1 = d.last(ShutdownVms, "esx1")
    assert vms1.reason == "UPS1 on battery for 60 s; runs the vCenter VM: after esx3"
    assert d.of(ShutdownVms, "esx2") == []
    d.done(80, vms1)
    d.done(81, d.last(ShutdownHost, "esx1"))
    assert d.last(ShutdownVms, "esx2").reason == (
        "UPS1 on battery for 60 s; runs the agent's VM: after esx1, esx3")


def test_a_vcenter_host_alone_does_not_wait() -> None:
    """Only hosts whose shutdown has started are waited for; other managers not at all."""
    plan = three_esx(esx1={"runs_vcenter": True})
    plan = replace(plan, hosts=(plan.hosts[0], replace(plan.hosts[1], shutdown_after=300),
                                replace(plan.hosts[2], manager="vc2")))
    d = Drive(plan)
    started(d, 0, "UPS1")
    d.event(0, state("UPS1", "OB"))
    d.until(60)
    assert {a.host for _, a in d.of(ShutdownVms)} == {"esx1", "esx3"}
    assert d.last(ShutdownVms, "esx1").reason == "UPS1 on battery for 60 s"


def test_a_detected_placement_orders_the_hosts_as_a_mark_does() -> None:
    """No marks: the inventory's Placement makes esx1 the vCenter's host and esx2 the
    agent's VM's host, with the same order and reasons as the marks."""
    d = Drive(three_esx())
    d._take(0, d.engine.handle(Placement("esx1", runs_vcenter=True), 0))
    d._take(0, d.engine.handle(Placement("esx2", runs_agent=True), 0))
    assert d.engine.configured.host("esx1").runs_vcenter is False   # the plan as written
    started(d, 0, "UPS1")
    d.event(0, state("UPS1", "OB"))
    d.until(60)
    assert [a.host for _, a in d.of(ShutdownVms)] == ["esx3"]
    d.done(70, d.last(ShutdownVms, "esx3"))
    d.done(71, d.last(ShutdownHost, "esx3"))
    assert d.last(ShutdownVms, "esx1").reason == (
        "UPS1 on battery for 60 s; runs the vCenter VM: after esx3")
    d.done(80, d.last(ShutdownVms, "esx1"))
    d.done(81, d.last(ShutdownHost, "esx1"))
    assert d.last(ShutdownVms, "esx2").reason == (
        "UPS1 on battery for 60 s; runs the agent's VM: after esx1, esx3")


def test_placement_latest_detection_wins_but_marks_hold() -> None:
    """The vCenter VM moves from esx1 to esx3 (DRS): esx1 no longer waits, esx3 does;
    esx2's mark holds although nothing was detected there; unknown hosts are ignored."""
    d = Drive(three_esx(esx2={"runs_vcenter": True}))
    engine = d.engine
    engine.handle(Placement("esx1", runs_vcenter=True), 0)
    engine.handle(Placement("esx2"), 0)
    engine.handle(Placement("elsewhere", runs_vcenter=True), 0)
    assert [h.runs_vcenter for h in engine.plan.hosts] == [True, True, False]
    engine.handle(Placement("esx1"), 0)
    engine.handle(Placement("esx3", runs_vcenter=True), 0)
    assert [h.runs_vcenter for h in engine.plan.hosts] == [False, True, True]
    assert [h.last_rank for h in engine.configured.hosts] == [0, 1, 0]


def test_a_placement_releases_a_host_that_waits() -> None:
    """esx1, detected as the vCenter's host, waits in after-others for the others; the
    vCenter VM is then no longer found on it: it goes on at once."""
    d = Drive(three_esx())
    d.engine.handle(Placement("esx1", runs_vcenter=True), 0)
    started(d, 0, "UPS1")
    d.event(0, state("UPS1", "OB"))
    d.until(60)
    assert d.engine.phase("esx1") is Phase.AFTER_OTHERS
    assert d.of(ShutdownVms, "esx1") == []
    out = d._take(65, d.engine.handle(Placement("esx1"), 65))
    assert [(a.host, a.verb) for a in out if isinstance(a, ShutdownVms)] == [
        ("esx1", "shut down VMs")]


def test_detected_placement_survives_a_restart() -> None:
    """Saved in the snapshot: a host waiting for the others keeps waiting after a
    restart, before the inventory's first round; marks come from the new plan."""
    d = Drive(three_esx())
    d.engine.handle(Placement("esx1", runs_vcenter=True), 0)
    started(d, 0, "UPS1")
    d.event(0, state("UPS1", "OB"))
    d.until(60)
    assert d.engine.phase("esx1") is Phase.AFTER_OTHERS
    snap = json.loads(json.dumps(d.engine.snapshot()))
    again = PolicyEngine.restore(three_esx(), snap, 61)
    assert again.plan.host("esx1").runs_vcenter and not again.configured.host(
        "esx1").runs_vcenter
    restarted = Drive(three_esx(), 61, again)
    restarted.event(61, state("UPS1", "OB"))
    assert restarted.engine.phase("esx1") is Phase.AFTER_OTHERS
    assert restarted.of(ShutdownVms, "esx1") == []
