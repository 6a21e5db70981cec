# -*- test-case-name: tests.test_scenarios -*-
"""The simulated world of ``upsagent simulate``: UPSes, power, hosts, VMs and agents.

One :class:`Simulation` runs a :class:`~upsagent.simulator.scenario.Scenario` on a
``task.Clock``.  Every agent of the scenario is the real thing -- a
:class:`~upsagent.policy.policy.PolicyEngine` driven by an
:class:`~upsagent.engine.executor.Executor` -- whose backends are
:class:`~upsagent.simulator.simulated.SimulatedBackend` objects over the scenario's
clusters.  Only the outside world is simulated:

* **UPSes** follow the scripted events (status, runtime, charge, loss of contact, FSD).
  Without mains an NMC countdown starts after ``warning_period`` and switches the output off
  ``shutdown_delay`` later, even if the mains return meanwhile (the UPS then comes back on
  ``return_delay`` after the mains); before the countdown starts, returning mains cancel
  it.  A known runtime drains one second per second on battery (``LB`` at ``runtime_low``,
  output off at 0) and recharges at ``recharge_rate`` on line.  A primary's shutdown with
  killpower switches the output off ``killpower_delay`` after its host is down.  The FSD
  latch is cleared when the output comes back (the master restarted with the power).
* **Monitors**: every agent reads each of its UPSes every ``poll`` seconds and hears every
  change at once (our master's push); while contact is lost it hears nothing.  An agent is
  logged in to a UPS while it runs, until its own host's shutdown starts (what NUMLOGINS
  counts for a primary's FSD wait).
* **Hosts** lose power when their supplies' outputs no longer add up to ``min_supplies``
  (a running host crashes, and says how far its shutdown had got), and boot when power
  comes back (BIOS "AC power on").  An agent dies with its own (``local``) host and starts
  again when it boots, from its last saved state; a scripted restart does the same.  A
  host that is still down at the end of the run while its UPSes are on mains with their
  outputs on, and none will cycle them (no countdown, no killpower pending), "stays off":
  said once the run is over, since until then a primary's killpower or a countdown may
  still cycle the output and boot it.

:meth:`Simulation.run` returns the timeline: :class:`~upsagent.policy.timeline.Entry` values
with times in seconds since the first power failure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from dataclasses import dataclass, field

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import Clock

from upsagent.simulator.simulated import SimCluster, SimulatedBackend
from upsagent.policy.actions import Action, Outcome, Result, ShutdownHost
from upsagent.policy.events import CommLost, CommOk, UpsState
from upsagent.engine.executor import Executor
from upsagent.policy.checks import validate
from upsagent.policy.plan import Plan
from upsagent.policy.policy import PolicyEngine
from upsagent.policy.rules import fmt
from upsagent.simulator.scenario import AgentSpec, EventSpec, HostSpec, Scenario, UpsSpec
from upsagent.policy.timeline import Entry, action_entry, result_entry

__all__ = ["FAILURES", "LEFT_OFF", "Simulation", "simulate"]

#: the timeline events that mean the protection failed: a host or VM lost power while
#: running or before its shutdown finished
FAILURES = frozenset({"crashed"})
#: the timeline events of a host shut down safely but left off at the end of the run with
#: its power present: nothing switches it on again (not a failure of the policy)
LEFT_OFF = frozenset({"stays off"})

#: stop a run that keeps calling back without time moving (a bug, never a scenario)
_MAX_STEPS = 1_000_000


class _Ups:
    """One simulated UPS."""

    def __init__(self, spec: UpsSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.words = spec.status.split()
        self.mains = "OB" not in self.words
        self.output = True
        self.fsd = False
        self.comm = True
        self.charge = spec.charge
        self.lb_auto = False
        self.full = spec.runtime
        self._r0, self._t0 = spec.runtime, 0.0
        self.counting = False
        self.killpower_pending = False
        self.timers: list[IDelayedCall] = []
        self.countdown: IDelayedCall | None = None

    def runtime(self, now: float) -> float | None:
        if self._r0 is None:
            return None
        if not self.mains:
            return max(self._r0 - (now - self._t0), 0.0)
        return min(self._r0 + self.spec.recharge_rate * (now - self._t0),
                   self.full if self.full is not None else self._r0)

    def rebase(self, now: float, runtime: float | None = None) -> None:
        self._r0, self._t0 = (self.runtime(now) if runtime is None else runtime), now
        if runtime is not None:
            self.full = max(self.full or 0.0, runtime)

    def status(self) -> frozenset[str]:
        words = set(self.words)
        if self.lb_auto:
            words.add("LB")
        if self.fsd:
            words.add("FSD")
        if not self.output:
            words.add("OFF")
        return frozenset(words)

    def cancel_timers(self) -> None:
        for timer in self.timers:
            if timer.active():
                timer.cancel()
        self.timers = []


class _SimRunner:
    """Commands that take their scenario's ``command_time`` (the budget still applies)."""

    def __init__(self, clock: Clock, times: dict[tuple[str, ...], float]) -> None:
        self.clock = clock
        self.times = times

    def run(self, argv: Sequence[str], budget: float | None, *,
            env: Mapping[str, str] | None = None, name: str = "") -> Deferred[Any]:
        took = self.times.get(tuple(argv), 1.0)
        d: Deferred[Result] = Deferred()
        if budget is not None and took > budget:
            self.clock.callLater(budget, d.callback, Result(
                Outcome.TIMED_OUT, f"still running after its budget of {fmt(budget)}: "
                "stopped"))
        else:
            self.clock.callLater(took, d.callback, Result(Outcome.OK, f"exit 0 after "
                                                          f"{fmt(took)}"))
        return d


@dataclass
class _Agent:
    spec: AgentSpec
    plan: Plan
    hosts: list[HostSpec]
    local: str | None
    alive: bool = False
    logged_in: bool = False
    killpower: bool = False
    snapshot: dict[str, object] | None = None
    executor: Executor | None = None
    monitored: frozenset[str] = field(default_factory=frozenset)


class _SimFsd:
    """A primary's FSD: the latch on the simulated UPS, then the NUMLOGINS wait."""

    def __init__(self, world: Simulation, agent: _Agent) -> None:
        self.world = world
        self.agent = agent

    def set_fsd(self, ups: str, wait: float) -> Deferred[Result]:
        world, clock = self.world, self.world.clock
        start = clock.seconds()
        d: Deferred[Result] = Deferred()
        sim = world.ups[ups]
        if not sim.fsd:
            sim.fsd = True
            world.log(ups, "FSD set", f"by {self.agent.spec.name}")
            world.push(ups)

        def check() -> None:
            others = world.logins(ups) - 1
            waited = clock.seconds() - start
            if others <= 0:
                d.callback(Result(Outcome.OK, f"no secondary left after {fmt(waited)}"))
            elif waited >= wait:
                d.callback(Result(Outcome.TIMED_OUT, f"{others} still logged in after "
                                  f"HOSTSYNC {fmt(wait)}"))
            else:
                clock.callLater(0.25, check)
        clock.callLater(0, check)
        return d


class Simulation:
    """A scenario's world on a clock; :meth:`run` plays it and returns the timeline."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.clock = Clock()
        self._log: list[tuple[float, Entry]] = []
        self.origin: float | None = None
        self.ups = {spec.name: _Ups(spec) for spec in scenario.ups}
        self.clusters: dict[str, SimCluster] = {}
        self.cluster_of: dict[str, SimCluster] = {}
        self.hosts = {h.plan.name: h for h in scenario.hosts}
        #: when each host that is down went down (absolute clock time)
        self._down_at: dict[str, float] = {}
        self._build_clusters()
        self.agents = {a.name: self._agent(a) for a in scenario.agents}

    # -- building ----------------------------------------------------------------------

    def _build_clusters(self) -> None:
        for spec in self.scenario.clusters:
            self.clusters[spec.name] = SimCluster(
                self.clock, spec.name, spec.kind,  # type: ignore[arg-type]
                spec.migration_time, spec.vm_shutdown_time, self.log)
        for host in self.scenario.hosts:
            if host.cluster is None:
                cluster = SimCluster(self.clock, host.plan.name, "standalone", log=self.log)
            else:
                cluster = self.clusters[host.cluster]
            self.cluster_of[host.plan.name] = cluster
            cluster.add_host(
                host.plan.name, boot_time=host.boot_time,
                stop_time=host.stop_time if host.stop_time is not None
                else host.plan.shutdown_duration, power_on=host.power_on,
                autostop=host.autostop, capacity=host.capacity,
                pool_master=host.plan.is_pool_master)
            for vm in host.vms:
                cluster.add_vm(vm.name, host.plan.name, tools=vm.tools,
                               shutdown_time=vm.shutdown_time)
        for cluster in {id(c): c for c in self.cluster_of.values()}.values():
            cluster.watchers.append(self._host_changed)

    def _agent(self, spec: AgentSpec) -> _Agent:
        plan = self.scenario.plan_for(spec)
        hosts = [h for h in self.scenario.hosts if h.agent == spec.name]
        local = plan.agent_host.name if plan.agent_host is not None else None
        return _Agent(spec, plan, hosts, local, monitored=frozenset(u.name for u in plan.ups))

    # -- the timeline ------------------------------------------------------------------

    def log(self, subject: str, event: str, detail: str = "") -> None:
        now = self.clock.seconds()
        self._log.append((now, Entry(now, subject, event, detail)))

    def entries(self) -> list[Entry]:
        """The timeline so far, times relative to the first power failure."""
        origin = self.origin or 0.0
        return [Entry(t - origin, e.subject, e.event, e.detail) for t, e in self._log]

    def _observe(self, agent: _Agent, kind: str, action: Action, result: Result | None,
                 now: float) -> None:
        if kind == "start":
            self._log.append((now, action_entry(now, action)))
            if isinstance(action, ShutdownHost) and action.host == agent.local:
                agent.logged_in = False
                agent.killpower = agent.killpower or action.killpower
        else:
            assert result is not None
            self._log.append((now, result_entry(now, action, result)))

    # -- agents ------------------------------------------------------------------------

    def _start_agent(self, agent: _Agent, restored: bool) -> None:
        now = self.clock.seconds()
        if restored and agent.snapshot is not None:
            engine = PolicyEngine.restore(agent.plan, agent.snapshot, now)
        else:
            engine = PolicyEngine(agent.plan, now)
        backends = {h.plan.name: SimulatedBackend(self.cluster_of[h.plan.name])
                    for h in agent.hosts}
        times = {h.plan.command: h.command_time for h in agent.hosts if h.plan.command}

        def save(engine: PolicyEngine) -> None:
            agent.snapshot = engine.snapshot()

        def observe(kind: str, action: Action, result: Result | None, now: float) -> None:
            self._observe(agent, kind, action, result, now)

        agent.executor = Executor(engine, self.clock, backends,
                                  runner=_SimRunner(self.clock, times),
                                  fsd=_SimFsd(self, agent), observer=observe,
                                  on_change=save)
        agent.alive, agent.logged_in, agent.killpower = True, True, False
        agent.executor.start()
        for name in sorted(agent.monitored):
            ups = self.ups[name]
            if ups.comm:
                agent.executor.handle(self._state(ups, agent))
            else:
                agent.executor.handle(CommLost(name, "cannot read the UPS"))

    def _stop_agent(self, agent: _Agent) -> None:
        if agent.executor is not None:
            agent.executor.stop()
        agent.alive = agent.logged_in = False

    def logins(self, ups: str) -> int:
        return sum(1 for a in self.agents.values()
                   if a.alive and a.logged_in and ups in a.monitored)

    # -- UPS -----------------------------------------------------------------------------

    def _state(self, ups: _Ups, agent: _Agent) -> UpsState:
        """What ``agent`` reads of ``ups``: the battery values only when its plan reads
        them, as the real agent's monitors do (:attr:`Plan.reads_battery`)."""
        if not agent.plan.reads_battery:
            return UpsState(ups.name, ups.status())
        runtime = ups.runtime(self.clock.seconds())
        return UpsState(ups.name, ups.status(), ups.charge,
                        round(runtime) if runtime is not None else None)

    def push(self, name: str) -> None:
        """Every agent monitoring UPS ``name`` reads it now (if contact is up)."""
        ups = self.ups[name]
        if not ups.comm:
            return
        for agent in self.agents.values():
            if agent.alive and name in agent.monitored and agent.executor is not None:
                agent.executor.handle(self._state(ups, agent))

    def _poll(self) -> None:
        for name in self.ups:
            self.push(name)
        self.clock.callLater(self.scenario.poll, self._poll)

    def _mains_lost(self, ups: _Ups) -> None:
        now = self.clock.seconds()
        if self.origin is None:
            self.origin = now
        spec = ups.spec
        if spec.shutdown_delay is not None and ups.output and not ups.counting:
            ups.countdown = self.clock.callLater(spec.warning_period or 0.0,
                                                 self._countdown, ups)
        self._battery_timers(ups)

    def _battery_timers(self, ups: _Ups) -> None:
        ups.cancel_timers()
        now = self.clock.seconds()
        runtime = ups.runtime(now)
        if ups.mains or runtime is None or not ups.output:
            return
        low = ups.spec.runtime_low
        if low is not None and not ups.lb_auto and "LB" not in ups.words:
            ups.timers.append(self.clock.callLater(max(runtime - low, 0.0), self._low, ups))
        ups.timers.append(self.clock.callLater(runtime, self._output_off, ups,
                                               "battery exhausted"))

    def _low(self, ups: _Ups) -> None:
        ups.lb_auto = True
        self.log(ups.name, "low battery", f"runtime {fmt(ups.runtime(self.clock.seconds()) or 0)}")
        self.push(ups.name)

    def _mains_back(self, ups: _Ups) -> None:
        ups.cancel_timers()
        ups.lb_auto = False
        if ups.countdown is not None and ups.countdown.active() and not ups.counting:
            ups.countdown.cancel()
            ups.countdown = None
        if not ups.output and not ups.counting:
            self._schedule_on(ups)

    def _countdown(self, ups: _Ups) -> None:
        ups.counting = True
        delay = ups.spec.shutdown_delay or 0.0
        self.log(ups.name, "countdown started", f"output off in {fmt(delay)}")
        ups.countdown = self.clock.callLater(delay, self._output_off, ups, "countdown ended")

    def _output_off(self, ups: _Ups, reason: str) -> None:
        if not ups.output:
            return
        ups.output, ups.counting, ups.killpower_pending = False, False, False
        ups.cancel_timers()
        self.log(ups.name, "output off", reason)
        for host in self._fed_by(ups.name):
            if not self._powered(host):
                self.cluster_of[host].power_lost(host)
        if ups.mains:
            self._schedule_on(ups)
        self.push(ups.name)

    def _schedule_on(self, ups: _Ups) -> None:
        self.clock.callLater(ups.spec.return_delay, self._output_on, ups)

    def _output_on(self, ups: _Ups) -> None:
        if ups.output or not ups.mains:
            return
        ups.output, ups.fsd = True, False
        ups.rebase(self.clock.seconds())
        self.log(ups.name, "output on", "mains present")
        for host in self._fed_by(ups.name):
            if self._powered(host):
                self.cluster_of[host].power_restored(host)
        self.push(ups.name)

    def _fed_by(self, ups: str) -> list[str]:
        return [h.plan.name for h in self.scenario.hosts
                if any(s.ups == ups for s in h.plan.powered_by)]

    def _powered(self, host: str) -> bool:
        plan = self.hosts[host].plan
        fed = sum(s.power_value for s in plan.powered_by if self.ups[s.ups].output)
        return fed >= max(plan.min_supplies, 1)

    def _left_off(self) -> None:
        """At the end of the run: a host still down while its UPSes are on mains with their
        outputs on, and none will cycle them, stays off; say so (only what happened)."""
        origin = self.origin or 0.0
        for name, spec in self.hosts.items():
            sim = self.cluster_of[name].hosts[name]
            supplies = [self.ups[s.ups] for s in spec.plan.powered_by]
            if (sim.state != "down" or not spec.power_on
                    or not all(u.mains and u.output and not u.counting
                               and not u.killpower_pending for u in supplies)):
                continue
            since = self._down_at.get(name, self.clock.seconds()) - origin
            names = [u.name for u in supplies]
            which = (f"{names[0]} did not cycle its output" if len(names) == 1 else
                     f"{', '.join(names[:-1])} and {names[-1]} did not cycle their outputs")
            self.log(name, "stays off", f"down since {fmt(since)} with power present: "
                     f"{which}, and nothing switches {name} on again")

    # -- hosts -------------------------------------------------------------------------

    def _host_changed(self, host: str, state: str) -> None:
        if state == "down":
            self._down_at[host] = self.clock.seconds()
        else:
            self._down_at.pop(host, None)
        for agent in self.agents.values():
            if agent.local != host:
                continue
            if state == "down":
                self._stop_agent(agent)
                if agent.killpower:
                    self._killpower(agent)
            elif state == "up" and not agent.alive:
                self.log(agent.spec.name, "agent started", "after its host booted; state "
                         "restored from its last snapshot")
                self._start_agent(agent, restored=True)

    def _killpower(self, agent: _Agent) -> None:
        for name in agent.spec.primary:
            ups = self.ups[name]
            ups.killpower_pending = True
            delay = ups.spec.killpower_delay
            self.clock.callLater(delay, self._output_off, ups,
                                 f"killpower: {fmt(delay)} after {agent.local} stopped")

    # -- events ------------------------------------------------------------------------

    def _event(self, event: EventSpec) -> None:
        if event.agent is not None:
            self._restart(event.agent, event.restart or 0.0)
            return
        if event.cluster is not None:
            assert event.reachable is not None
            self.clusters[event.cluster].set_reachable(event.reachable)
            if event.ups is None:
                return
        assert event.ups is not None
        ups = self.ups[event.ups]
        now = self.clock.seconds()
        if event.comm == "lost":
            ups.comm = False
            self.log(ups.name, "contact lost", "the monitors cannot read it")
            for agent in self.agents.values():
                if agent.alive and ups.name in agent.monitored and agent.executor:
                    agent.executor.handle(CommLost(ups.name, "scripted loss of contact"))
        if event.fsd and not ups.fsd:
            ups.fsd = True
            self.log(ups.name, "FSD set", "scripted")
        if event.charge is not None:
            ups.charge = event.charge
        if event.status is not None:
            self._status(ups, event.status, event.runtime)
        elif event.runtime is not None:
            ups.rebase(now, event.runtime)
            self.log(ups.name, "runtime", fmt(event.runtime))
            self._battery_timers(ups)
        if event.comm == "ok":
            ups.comm = True
            self.log(ups.name, "contact back", "")
            for agent in self.agents.values():
                if agent.alive and ups.name in agent.monitored and agent.executor:
                    agent.executor.handle(CommOk(ups.name))
        self.push(ups.name)

    def _status(self, ups: _Ups, status: str, runtime: float | None) -> None:
        now = self.clock.seconds()
        ups.rebase(now, runtime)
        was = ups.mains
        ups.words = status.split()
        ups.mains = "OB" not in ups.words
        detail = f"status {status}" + (f", runtime {fmt(runtime)}" if runtime is not None
                                       else "")
        if was and not ups.mains:
            self.log(ups.name, "power failed", detail)
            self._mains_lost(ups)
        elif not was and ups.mains:
            self.log(ups.name, "power restored", detail)
            self._mains_back(ups)
        else:
            self.log(ups.name, "status", detail)
            self._battery_timers(ups)

    def _restart(self, name: str, down_for: float) -> None:
        agent = self.agents[name]
        if not agent.alive:
            return
        self._stop_agent(agent)
        self.log(name, "agent stopped", f"restarts in {fmt(down_for)}")

        def back() -> None:
            if agent.local is not None and \
                    self.cluster_of[agent.local].hosts[agent.local].state != "up":
                return
            self.log(name, "agent started", "state restored from its last snapshot")
            self._start_agent(agent, restored=True)
        self.clock.callLater(down_for, back)

    # -- running -----------------------------------------------------------------------

    def problems(self) -> list[Entry]:
        """The plan checks of every agent, as timeline entries at the start."""
        out = []
        for agent in self.agents.values():
            for problem in validate(agent.plan):
                out.append(Entry(0.0, agent.spec.name, f"check-config {problem.severity}",
                                 problem.message))
        return out

    def run(self) -> list[Entry]:
        """Play the scenario to its ``duration``; the timeline."""
        for entry in self.problems():
            self._log.append((0.0, entry))
        for ups in self.ups.values():
            if not ups.mains:
                self.log(ups.name, "power failed", f"status {' '.join(ups.words)}")
                self._mains_lost(ups)
        for agent in self.agents.values():
            self._start_agent(agent, restored=False)
        for event in self.scenario.events:
            self.clock.callLater(event.t, self._event, event)
        self.clock.callLater(self.scenario.poll, self._poll)
        steps = 0
        end = self.scenario.duration
        while True:
            calls = [c.getTime() for c in self.clock.getDelayedCalls()]
            upcoming = min(calls, default=None)
            if upcoming is None or upcoming > end:
                break
            self.clock.advance(max(upcoming - self.clock.seconds(), 0.0))
            steps += 1
            if steps > _MAX_STEPS:
                raise RuntimeError("the simulation does not advance")
        self.clock.advance(max(end - self.clock.seconds(), 0.0))
        self._left_off()
        return self.entries()


def simulate(scenario: Scenario) -> list[Entry]:
    """Run ``scenario``; its timeline."""
    return Simulation(scenario).run()

