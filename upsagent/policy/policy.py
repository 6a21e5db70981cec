# -*- test-case-name: tests.test_policy -*-
"""The policy engine: UPS events and the time in, actions out.  Pure and deterministic.

::

    engine = PolicyEngine(plan, now)
    actions = engine.handle(UpsState("UPS1", frozenset({"OB"})), now)   # an observation
    actions = engine.tick(now)                   # call at (or after) engine.next_deadline()
    actions = engine.action_done(action.id, result, now)        # an operation finished
    actions = engine.handle(Placement("esx2", runs_vcenter=True), now)  # the inventory
    state = engine.snapshot()                    # a JSON-able dict, after every call
    engine = PolicyEngine.restore(plan, state, now)   # after a restart; then tick(now)

The engine never reads a clock, never sleeps and never touches a socket, a process or a
backend: the caller tells it the time (``now``, absolute seconds: the reactor's
``seconds()``, wall-clock time for a daemon so that a snapshot survives a reboot) and
carries out the actions it returns (:mod:`upsagent.engine.executor` does, on a reactor).
The same calls with the same times give the same actions, which is what the tests and
``upsagent simulate`` rely on.

The rules it applies are in :mod:`upsagent.policy.rules` (read its theory of operation);
this module keeps the state (one record per UPS and per host) and walks the rules after
every input until nothing more changes; the shutdown sequence itself (R6) and the results
of operations are in :mod:`upsagent.policy.stages`.

**Placement.**  R6 orders the hosts that run the vCenter's VM or the agent's own VM after
the others of their manager.  The operator marks them (``runs_vcenter`` / ``runs_agent``
of the plan, :attr:`PolicyEngine.configured`); the agent's inventory detects them and says
so with a :class:`~upsagent.policy.events.Placement`.  The rules read :attr:`PolicyEngine.plan`,
the configured plan with each host's flags OR-ed with what was last detected on it: a mark
always holds, a detection lasts until the next one says otherwise (DRS, or a maintenance,
moves the VMs).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from upsagent.policy.actions import (
    Action, Cancel, EnterMaintenance, ExitMaintenance, Notify, Outcome, Result, RunCommand,
    PowerOnVms, SetFsd, ShutdownVms, WarnUsers,
)
from upsagent.policy.events import CommLost, CommOk, Event, Placement, UpsState
from upsagent.policy.plan import HostPlan, Plan, runtime_trigger
from upsagent.policy.rules import (
    GRACE, NEW_BOOT, NOTIFY_ON_NEW_WORD, SHUTTING_DOWN, OnPowerBack, Phase, Power,
    PowerView, UpsView, Verdict, fmt, host_power, notify_text, on_power_back, sets_fsd_now,
    ups_verdict,
)
from upsagent.policy.stages import Stages
from upsagent.policy.state import HostRecord, UpsRecord, dump_state, load_state

__all__ = ["PendingStep", "PolicyEngine"]

#: the status words that say where the load's power comes from
LINE_WORDS = frozenset({"OL", "OB"})

#: the phases in which a host is busy with an operation
_OPERATION_PHASES = frozenset({Phase.ENTERING, Phase.EXITING, Phase.FSD, Phase.COMMAND,
                               Phase.EVACUATING, Phase.VMS, Phase.STOPPING})


@dataclass(frozen=True)
class PendingStep:
    """A timed step that will start at ``due`` unless power returns first (R3)."""

    id: str
    host: str
    step: str
    due: float
    reason: str


class PolicyEngine(Stages):
    """Decides, for every host of one :class:`~upsagent.policy.plan.Plan`, what to do when."""

    def __init__(self, plan: Plan, now: float) -> None:
        #: the plan as configured (the operator's marks); :attr:`plan` is what the rules
        #: read: this one with the detected placement OR-ed in (:meth:`_apply_placement`)
        self.configured = plan
        self.plan = plan
        self._now = now
        self._seq = 0
        names = [u.name for u in plan.ups] + [
            s.ups for h in plan.hosts for s in h.powered_by]
        self._ups = {name: UpsRecord(name) for name in dict.fromkeys(names)}
        self._hosts = {h.name: HostRecord(h.name) for h in plan.hosts}
        #: operations in flight: id -> (action, guard deadline)
        self._ops: dict[str, tuple[Action, float]] = {}
        self._restored_at: float | None = None
        #: restored after the own host's shutdown (R9: a new boot)
        self._booted = False
        self._resumed: list[Action] = []
        self._pressed: set[str] = set()

    # -- the API ---------------------------------------------------------------------

    def handle(self, event: Event | Placement, now: float) -> list[Action]:
        """An observation from a monitor (or the inventory's :class:`Placement`) at
        ``now``: the actions to take now.  A placement can release a host that waits for
        others (R6), so it is followed by the rule walk as any event."""
        self._now = now
        if isinstance(event, Placement):
            self._place(event)
            return self._run(now)
        out = self._observe(event, now)
        return out + self._run(now)

    def _place(self, placement: Placement) -> None:
        rec = self._hosts.get(placement.host)
        if rec is None:         # not in the plan
            return
        rec.seen_vcenter, rec.seen_agent = placement.runs_vcenter, placement.runs_agent
        self._apply_placement()

    def _apply_placement(self) -> None:
        """:attr:`plan` = :attr:`configured` with each host's detected flags OR-ed in."""
        hosts = []
        for host in self.configured.hosts:
            rec = self._hosts[host.name]
            hosts.append(replace(host, runs_vcenter=host.runs_vcenter or rec.seen_vcenter,
                                 runs_agent=host.runs_agent or rec.seen_agent))
        self.plan = replace(self.configured, hosts=tuple(hosts))

    def tick(self, now: float) -> list[Action]:
        """Time has passed (a deadline, or a restart): the actions that are due."""
        self._now = now
        out, self._resumed = self._resumed, []
        return out + self._run(now)

    def action_done(self, action_id: str, result: Result, now: float) -> list[Action]:
        """Operation ``action_id`` finished with ``result``; an unknown id is ignored."""
        self._now = now
        entry = self._ops.pop(action_id, None)
        if entry is None:
            return self._run(now)
        action = entry[0]
        host = self._hosts[action.host]
        host.inflight.remove(action_id)
        return self._after(host, action, result, now) + self._run(now)

    def next_deadline(self) -> float | None:
        """When :meth:`tick` must be called next (None: only events will change things)."""
        if self._resumed:
            return self._now
        times = [t for t in self._deadlines() if t > self._now]
        return min(times) if times else None

    def pending(self) -> list[PendingStep]:
        """The timed steps waiting for their time, soonest first (for logs and dry runs)."""
        steps = []
        for rec in self._hosts.values():
            plan = self.plan.host(rec.name)
            if rec.since is None or plan.left_alone:
                continue
            for step, due in self._timers(rec, plan):
                steps.append(PendingStep(self._step_id(rec, step), rec.name, step, due,
                                         f"{rec.power_reason} for {fmt(due - rec.since)}"))
        return sorted(steps, key=lambda s: (s.due, s.host))

    def phase(self, host: str) -> Phase:
        """Where ``host`` is in its sequence."""
        return self._hosts[host].phase

    def in_flight(self) -> list[Action]:
        """The operations started and not yet finished."""
        return [action for action, _ in self._ops.values()]

    def ours(self) -> list[str]:
        """The hosts this agent put into maintenance and has not taken out (remembered
        across a restart: the daemon tells their backends, :meth:`Backend.remember_maintenance
        <upsagent.hypervisors.base.Backend.remember_maintenance>`)."""
        return [name for name, rec in self._hosts.items() if rec.ours]

    def snapshot(self) -> dict[str, object]:
        """The whole state as a JSON-able dict (see :meth:`restore`).

        The detected placement is part of it (each host record's ``seen_vcenter`` /
        ``seen_agent``): an agent restarted mid-sequence must keep R6's order, and before
        its inventory's first round (a login to the vCenter, which may take long or fail
        during the outage) the last detection is the best knowledge there is; the next
        round replaces it."""
        return dump_state(self._now, self._seq, self._ups, self._hosts,
                          [(a, g) for a, g in self._ops.values()])

    @classmethod
    def restore(cls, plan: Plan, snapshot: dict[str, object], now: float, *,
                reload: bool = False) -> PolicyEngine:
        """An engine that continues from ``snapshot`` at ``now`` (R9).

        Call :meth:`tick` next: it returns the operations issued again.  Hosts or UPSes
        no longer in ``plan`` are dropped; new ones start afresh.  When the snapshot shows
        that the shutdown command of the agent's own host was started, the engine starts
        afresh as after a boot, remembering only the maintenance this agent entered.
        ``reload``: the same process takes a new plan (SIGHUP), so what it knows of each
        UPS's contact carries over as it is (no second COMMBAD, no wait for a reading),
        as upsmon keeps its UPS states across a reload.
        """
        engine = cls(plan, now)
        seq, ups, hosts, ops = load_state(snapshot)
        engine._seq = seq
        if reload:
            engine._ups.update((name, urec) for name, urec in ups.items()
                               if name in engine._ups)
            engine._adopt(hosts, ops, now)
            engine._apply_placement()
            return engine
        engine._restored_at = now
        agent = plan.agent_host
        own = hosts.get(agent.name) if agent is not None else None
        if own is not None and own.phase in NEW_BOOT:
            engine._new_boot(hosts, now)
            engine._apply_placement()
            return engine
        # our FSD (R2a) belongs to the own host's shutdown: remembered only while it runs
        latched = own is not None and own.phase in SHUTTING_DOWN
        for name, urec in ups.items():
            if name in engine._ups:
                # a fresh process, as upsmon after a restart: no ONLINE/COMMOK for the
                # first reading; DEADTIME counts from now
                urec.confirmed, urec.comm, urec.last_seen, urec.heard = False, -1, now, False
                urec.lost_at = urec.next_nocomm = None
                urec.fsd_by_us = urec.fsd_by_us and latched
                engine._ups[name] = urec
        engine._adopt(hosts, ops, now)
        engine._apply_placement()
        return engine

    def _adopt(self, hosts: dict[str, HostRecord], ops: list[tuple[Action, float]],
               now: float) -> None:
        """Take the saved hosts still in the plan; issue again what was in flight."""
        for name, hrec in hosts.items():
            if name in self._hosts:
                hrec.inflight = []
                self._hosts[name] = hrec
        for action, _ in ops:
            if action.host in self._hosts:
                self._resumed += self._resume(action, now)

    def _new_boot(self, hosts: dict[str, HostRecord], now: float) -> None:
        """R9: the own host's shutdown command was started: start afresh, as upsmon does
        at boot, remembering only the maintenance this agent entered (to take it out)."""
        self._booted = True
        for name in self._ups:
            # never heard from since the boot; DEADTIME counts from now
            self._ups[name] = UpsRecord(name, last_seen=now, confirmed=False)
        for name, old in hosts.items():
            if name not in self._hosts:
                continue
            rec = HostRecord(name, generation=old.generation, vms_stopped=old.vms_stopped,
                             seen_vcenter=old.seen_vcenter, seen_agent=old.seen_agent)
            if old.ours or old.phase in (Phase.ENTERING, Phase.EVACUATING):
                rec.phase, rec.ours = Phase.MAINTENANCE, True
            self._hosts[name] = rec

    # -- observations ----------------------------------------------------------------

    def _notify(self, kind: str, ups: str, reason: str) -> Notify:
        return Notify(self._next_id(self.plan.name), self.plan.name, reason, type=kind,
                      ups=ups, message=notify_text(self.plan, kind, ups))

    def _observe(self, event: Event, now: float) -> list[Action]:
        rec = self._ups.get(event.ups)
        if rec is None:          # not monitored by this agent
            return []
        out: list[Action] = []
        if isinstance(event, CommLost):
            if rec.comm != 0:
                out.append(self._notify("COMMBAD", rec.name, event.reason))
                rec.comm, rec.lost_at = 0, now
                base = rec.last_seen if rec.last_seen is not None else now - \
                    self.plan.nocommwarntime
                rec.next_nocomm = max(base + self.plan.nocommwarntime, now)
            return out
        if rec.comm == 0:
            out.append(self._notify("COMMOK", rec.name, "contact is back"))
        rec.comm, rec.lost_at, rec.next_nocomm = 1, None, None
        if isinstance(event, CommOk):
            return out
        return out + self._read(rec, event, now)

    def _read(self, rec: UpsRecord, event: UpsState, now: float) -> list[Action]:
        old, new = rec.status, event.status
        if not new & LINE_WORDS:
            # upsmon's parse_status: a status with neither OL nor OB (a driver's "WAIT"
            # while it starts or stops, a bare "ALARM") leaves the power state as it was
            new = new | (old & LINE_WORDS)
        out: list[Action] = []
        for word, kind in NOTIFY_ON_NEW_WORD:
            if word in new and word not in old:
                out.append(self._notify(kind, rec.name, " ".join(sorted(new))))
        if "OL" in new and "OL" not in old and rec.heard:
            out.append(self._notify("ONLINE", rec.name, " ".join(sorted(new))))
        if "RB" in new and (rec.last_rbwarn is None
                            or now - rec.last_rbwarn > self.plan.rbwarntime):
            out.append(self._notify("REPLBATT", rec.name, "RB"))
            rec.last_rbwarn = now
        rec.status, rec.heard, rec.confirmed, rec.last_seen = new, True, True, now
        rec.runtime, rec.charge = event.runtime, event.charge
        if not ("OB" in new and "LB" in new):
            rec.last_noncrit = now
        if "OB" not in new:
            rec.on_battery_since = None
        elif rec.on_battery_since is None:
            rec.on_battery_since = now
        return out

    # -- the rule walk ---------------------------------------------------------------

    def _verdicts(self, now: float) -> tuple[dict[str, UpsView], dict[str, Verdict]]:
        views = {}
        for name, rec in self._ups.items():
            ups = self.plan.ups_plan(name)
            views[name] = UpsView(name, ups.role, rec.status, rec.comm != 0, rec.last_seen,
                                  rec.last_noncrit, rec.runtime, rec.fsd_by_us,
                                  rec.on_battery_since, ups.on_battery_limit, ups.holds_latch)
        return views, {name: ups_verdict(view, now, self.plan.deadtime, self.plan.hostsync)
                       for name, view in views.items()}

    def _run(self, now: float) -> list[Action]:
        out: list[Action] = []
        for urec in self._ups.values():
            if urec.next_nocomm is not None and now >= urec.next_nocomm:
                out.append(self._notify("NOCOMM", urec.name, "no contact for "
                                        f"{fmt(now - (urec.lost_at or now))}"))
                urec.next_nocomm = now + self.plan.nocommwarntime
        views, verdicts = self._verdicts(now)
        latch = [name for name, view in views.items() if sets_fsd_now(view, verdicts[name])]
        out += [SetFsd(self._next_id(self.plan.name), self.plan.name, verdicts[name].reason,
                       ups=name, wait=0.0) for name in latch]    # R2e: not an operation
        for _ in range(8):   # a host's change can release another (R6: the agent goes last)
            before = [(r.phase, len(r.inflight), r.since) for r in self._hosts.values()]
            views, verdicts = self._verdicts(now)
            # R6: the vCenter's and the agent's VM's hosts after the others, so that
            # they see the shutdowns that start at the same moment
            for rec in sorted(self._hosts.values(),
                              key=lambda r: self.plan.host(r.name).last_rank):
                out += self._advance(rec, self.plan.host(rec.name), views, verdicts, now)
            out += self._expire(now)
            if before == [(r.phase, len(r.inflight), r.since) for r in self._hosts.values()]:
                break
        for name in latch:     # only now: the hosts have seen why the UPS is critical
            self._ups[name].fsd_by_us = True
        return out

    def _expire(self, now: float) -> list[Action]:
        """R8: operations past their guard count as timed out and are aborted."""
        out: list[Action] = []
        for op_id, (action, guard) in list(self._ops.items()):
            if now < guard:
                continue
            del self._ops[op_id]
            rec = self._hosts[action.host]
            rec.inflight.remove(op_id)
            out.append(Cancel(self._next_id(action.host), action.host,
                              f"no answer {fmt(GRACE)} after its time limit",
                              target=op_id, step=action.verb))
            out += self._after(rec, action, Result(
                Outcome.TIMED_OUT, f"no answer {fmt(GRACE)} after its time limit"), now)
        return out

    def _advance(self, rec: HostRecord, plan: HostPlan, views: dict[str, UpsView],
                 verdicts: dict[str, Verdict], now: float) -> list[Action]:
        if plan.left_alone:
            return []
        power = host_power(plan, views, verdicts)
        out = self._track_power(rec, plan, power, now)
        if rec.inflight:
            return out + self._maybe_abort(rec, plan, power, now)
        committed = (rec.phase in SHUTTING_DOWN
                     and on_power_back(rec.phase, plan) is OnPowerBack.COMMITTED)
        if not committed and self._waiting_after_restart(plan, now):
            return out      # R9; a committed shutdown needs no fresh reading to go on
        if rec.phase in SHUTTING_DOWN:
            pressed = rec.since is not None and self._running_out(plan, views, power)
            (self._pressed.add if pressed else self._pressed.discard)(rec.name)
            return out + self._continue(rec, plan, now)
        if power.state is not Power.OK:
            return out + self._on_short(rec, plan, power, now)
        if rec.phase is Phase.NO_MAINTENANCE or (rec.phase is Phase.MAINTENANCE
                                                 and not rec.ours):
            # a maintenance that ended after the power came back; one whose end was not
            # seen is taken out as the agent's own (R5)
            rec.phase = Phase.MAINTENANCE if rec.ours else Phase.IDLE
        if (rec.phase in (Phase.MAINTENANCE, Phase.DOWN) and rec.ours
                and (rec.exit_at is None or now >= rec.exit_at)):
            reason = rec.back_reason or "power is back"
            if rec.exit_when_done:
                reason += " during the migration, which has completed"
            elif rec.phase is Phase.DOWN:
                reason += (f"; {rec.name} was shut down after this agent's maintenance "
                           "and is taken out of it once it is up")
            elif self._booted and not rec.back_reason:
                reason += ("; this agent had put it into maintenance before its own host "
                           "was shut down")
            elif self._restored_at is not None and not rec.back_reason:
                reason += "; this agent had put it into maintenance before its restart"
            rec.exit_when_done, rec.phase = False, Phase.EXITING
            return out + [self._start(rec, ExitMaintenance(
                self._next_id(rec.name), rec.name, reason), 600.0, now)]
        if rec.phase is Phase.IDLE and plan.power_on_vms and rec.vms_stopped:
            reason = (rec.back_reason or "power is back") + (
                f"; starting again the VMs this agent shut down on {rec.name}")
            rec.phase = Phase.STARTING_VMS
            action = PowerOnVms(self._next_id(rec.name), rec.name, reason,
                                vms=rec.vms_stopped, groups=plan.vm_groups)
            return out + [self._start(rec, action, action.timeout, now)]
        return out

    def _track_power(self, rec: HostRecord, plan: HostPlan, power: PowerView,
                     now: float) -> list[Action]:
        """R3/R7: note when the power goes short and when it comes back."""
        if power.state is Power.OK:
            if rec.since is None:
                return []
            out = self._power_back(rec, plan, power, now)
            rec.since, rec.announced, rec.failing = None, False, ()
            return out
        if rec.since is None:
            rec.since, rec.generation, rec.announced = now, rec.generation + 1, False
            rec.exit_when_done, rec.back_reason, rec.power_reason = False, "", ""
        rec.failing = power.failing
        if power.state is Power.SHORT or not rec.power_reason:
            rec.power_reason = (power.reason if power.state is Power.SHORT
                                else f"{', '.join(power.failing)} failing")
        if rec.announced or (now < rec.since + plan.debounce and power.state is Power.SHORT):
            return []
        rec.announced = True
        if plan.message and plan.shutdown_after is not None and plan.shuts_down \
                and rec.phase not in SHUTTING_DOWN and power.state is Power.SHORT:
            due = rec.since + max(plan.shutdown_after, plan.debounce)
            return [WarnUsers(self._next_id(rec.name), rec.name,
                              f"{power.reason}; shutdown in {fmt(due - now)} unless power "
                              "returns", message=plan.message)]
        return []

    def _power_back(self, rec: HostRecord, plan: HostPlan, power: PowerView,
                    now: float) -> list[Action]:
        """R7: what power coming back does, by the host's phase.  The reason names the
        supplies that came back, not those still failing (``power.failing``)."""
        assert rec.since is not None
        back = ", ".join(u for u in rec.failing if u not in power.failing) or "power"
        rec.back_reason = f"{back} back on line after {fmt(now - rec.since)}"
        rule = on_power_back(rec.phase, plan)
        out: list[Action] = []
        if rec.announced and rule is not OnPowerBack.COMMITTED:
            for step, due in self._timers(rec, plan):
                out.append(Cancel(self._next_id(rec.name), rec.name,
                                  f"{rec.back_reason}, before the step due at "
                                  f"{fmt(due - rec.since)}", target=self._step_id(rec, step),
                                  step=step))
        if rule is OnPowerBack.EXIT_WHEN_DONE:
            rec.exit_when_done = True
        elif rule is OnPowerBack.CALL_OFF:
            out.append(Cancel(self._next_id(rec.name), rec.name,
                              f"{rec.back_reason}, during the start delay",
                              target=self._step_id(rec, "shut down"), step="shut down"))
            if plan.message:
                out.append(WarnUsers(self._next_id(rec.name), rec.name,
                                     f"{rec.back_reason}: shutdown cancelled",
                                     message=plan.message))
            rec.phase = rec.before_order
        if rec.phase is Phase.NO_MAINTENANCE:
            rec.phase = Phase.MAINTENANCE if rec.ours else Phase.IDLE
        elif rec.phase is Phase.DOWN and not rec.ours:
            rec.phase = Phase.IDLE
        return out

    def _waiting_after_restart(self, plan: HostPlan, now: float) -> bool:
        """R9: after a restart, act only on UPSes heard from again (or after DEADTIME)."""
        if self._restored_at is None or now >= self._restored_at + self.plan.deadtime:
            return False
        return any(not self._ups[s.ups].confirmed for s in plan.powered_by)

    # -- triggers: R3, R4, R5 --------------------------------------------------------

    def _timers(self, rec: HostRecord, plan: HostPlan) -> list[tuple[str, float]]:
        """The timed steps of the host not started yet, with their due times."""
        assert rec.since is not None
        steps = []
        if plan.enters_maintenance and rec.phase is Phase.IDLE:
            assert plan.maintenance_after is not None
            steps.append(("enter maintenance",
                          rec.since + max(plan.maintenance_after, plan.debounce)))
        if (plan.shutdown_after is not None and plan.shuts_down
                and rec.phase not in SHUTTING_DOWN and rec.phase is not Phase.DOWN):
            steps.append(("shut down", rec.since + max(plan.shutdown_after, plan.debounce)))
        return steps

    def _urgent(self, rec: HostRecord, plan: HostPlan, power: PowerView,
                now: float) -> str | None:
        """R4: the reason to act now, ignoring the timers, if there is one."""
        if power.state is Power.CRITICAL:
            return power.reason
        assert rec.since is not None
        if now < rec.since + plan.debounce or power.runtime is None:
            return None
        trigger = runtime_trigger(plan, self.plan,
                                  in_maintenance=rec.phase is Phase.MAINTENANCE)
        if power.runtime <= trigger.at:
            return (f"{power.runtime_ups} runtime {fmt(power.runtime)} <= {fmt(trigger.at)} "
                    f"({fmt(trigger.need)} the remaining steps need + {fmt(trigger.margin)} "
                    "margin)")
        return None

    def _on_short(self, rec: HostRecord, plan: HostPlan, power: PowerView,
                  now: float) -> list[Action]:
        assert rec.since is not None
        if rec.phase is Phase.DOWN or rec.phase is Phase.EXITING:
            return []
        urgent = self._urgent(rec, plan, power, now)
        if urgent is not None and plan.shuts_down:
            return self._order(rec, plan, urgent, now)
        timers = dict(self._timers(rec, plan))
        due = timers.get("shut down")
        if due is not None and now >= due:
            return self._order(rec, plan, f"{rec.power_reason} for {fmt(now - rec.since)}",
                               now)
        due = timers.get("enter maintenance")
        if urgent is not None and plan.enters_maintenance and rec.phase is Phase.IDLE:
            due, reason = now, urgent
        elif due is not None:
            reason = f"{rec.power_reason} for {fmt(now - rec.since)}"
        if due is None or now < due:
            return []
        busy = self._cluster_busy(plan)
        if busy is not None:
            rec.queued_behind = busy
            return []
        if rec.queued_behind:
            reason += f" (after {rec.queued_behind}'s maintenance)"
            rec.queued_behind = ""
        timeout = plan.effective_maintenance_timeout()
        if plan.shutdown_after is not None:
            timeout = min(timeout, max(rec.since + plan.shutdown_after - now, 0.0))
        rec.phase = Phase.ENTERING
        return [self._start(rec, EnterMaintenance(self._next_id(rec.name), rec.name, reason,
                                                  timeout=timeout), timeout, now)]

    def _cluster_busy(self, plan: HostPlan) -> str | None:
        """R5: the host of the same cluster whose VMs are moving, if any."""
        if plan.cluster is None:
            return None
        for other in self.plan.hosts:
            if (other.cluster == plan.cluster and other.name != plan.name
                    and self._hosts[other.name].phase in (Phase.ENTERING, Phase.EVACUATING)):
                return other.name
        return None

    def _maybe_abort(self, rec: HostRecord, plan: HostPlan, power: PowerView,
                     now: float) -> list[Action]:
        """R5: an urgent trigger during a migration aborts it (once).  R7: power failing
        again aborts the VMs' power-on (once), so that the timers run."""
        if (rec.phase is Phase.STARTING_VMS and not rec.aborting
                and power.state is not Power.OK):
            rec.aborting = True
            return [Cancel(self._next_id(rec.name), rec.name,
                           f"{rec.power_reason or 'power failing'} again",
                           target=rec.inflight[0], step="power on VMs")]
        if (rec.phase is not Phase.ENTERING or rec.aborting or rec.since is None
                or not plan.shuts_down):
            return []
        urgent = self._urgent(rec, plan, power, now)
        if urgent is None:
            return []
        rec.aborting = True
        return [Cancel(self._next_id(rec.name), rec.name, urgent, target=rec.inflight[0],
                       step="enter maintenance")]

    def _resume(self, action: Action, now: float) -> list[Action]:
        """R9: an operation in flight at the snapshot, after a restart."""
        rec = self._hosts[action.host]
        if isinstance(action, RunCommand):
            return self._after(rec, action, Result(
                Outcome.FAILED, "outcome unknown: the agent restarted while it ran"), now)
        limit = {EnterMaintenance: getattr(action, "timeout", 0.0),
                 ExitMaintenance: getattr(action, "timeout", 0.0),
                 ShutdownVms: getattr(action, "timeout", 0.0),
                 PowerOnVms: getattr(action, "timeout", 0.0),
                 SetFsd: getattr(action, "wait", 0.0)}.get(type(action), 60.0)
        again = replace(action, id=self._next_id(action.host),
                        reason=f"resumed after a restart: {action.reason}")
        return [self._start(rec, again, limit, now)]

    def _deadlines(self) -> list[float]:
        times: list[float] = [guard for _, guard in self._ops.values()]
        views, verdicts = self._verdicts(self._now)
        times += [v.at for v in verdicts.values() if v.at is not None]
        times += [r.next_nocomm for r in self._ups.values() if r.next_nocomm is not None]
        if self._restored_at is not None:
            times.append(self._restored_at + self.plan.deadtime)
        for rec in self._hosts.values():
            plan = self.plan.host(rec.name)
            if rec.exit_at is not None:
                times.append(rec.exit_at)
            if rec.phase is Phase.STOPPING and rec.stop_retry_at is not None:
                times.append(rec.stop_retry_at)
            if rec.phase is Phase.DELAY and rec.stage_at is not None:
                times.append(rec.stage_at + plan.shutdown_delay)
            if rec.phase is Phase.LAST:
                until = self._others_until(rec, self._now)
                if until is not None and until != float("inf"):
                    times.append(until)
            if rec.since is not None and not plan.left_alone:
                times.append(rec.since + plan.debounce)
                times += [due for _, due in self._timers(rec, plan)]
        return times
