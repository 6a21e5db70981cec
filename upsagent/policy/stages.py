# -*- test-case-name: tests.test_policy -*-
"""The shutdown sequence (rules R6) and what operation results do, for the policy engine.

:class:`Stages` is the half of :class:`~upsagent.policy.policy.PolicyEngine` that walks a
host through :data:`~upsagent.policy.rules.SHUTDOWN_STAGES` once its shutdown is ordered,
and moves hosts on when their operations finish (:data:`~upsagent.policy.rules.AFTER_RESULT`).
It holds the engine's bookkeeping too (operation ids, operations in flight).  It is a base
class only so that each module stays readable; nothing uses it on its own.
"""

from __future__ import annotations

from upsagent.policy.actions import (
    Action, Cancel, EnterMaintenance, Notify, Outcome, Result, RunCommand, SetFsd,
    ShutdownHost, ShutdownVms, WarnUsers,
)
from upsagent.policy.plan import HostPlan, Plan, runtime_trigger
from upsagent.policy.rules import (
    AFTER_RESULT, EXIT_ATTEMPTS, EXIT_RETRY, GRACE, NEXT_STAGE, SHUTDOWN_STAGES,
    SHUTTING_DOWN, Phase, PowerView, UpsView, When, fmt, notify_text, shutdown_retry_delay,
)
from upsagent.policy.state import HostRecord, UpsRecord

#: outcomes of an operation whose effect is unknown: it may have happened
UNSEEN_END = frozenset({Outcome.FAILED, Outcome.UNREACHABLE, Outcome.TIMED_OUT})

__all__ = ["Stages"]


class Stages:
    """R6 and the results of operations; the engine's bookkeeping."""

    plan: Plan
    _seq: int
    _ups: dict[str, UpsRecord]
    _hosts: dict[str, HostRecord]
    #: operations in flight: id -> (action, guard deadline)
    _ops: dict[str, tuple[Action, float]]
    #: hosts whose own power is running out now: they stop waiting for hosts whose
    #: shutdown keeps failing (R6)
    _pressed: set[str]

    # -- the shutdown sequence: R6 ---------------------------------------------------

    def _order(self, rec: HostRecord, plan: HostPlan, reason: str,
               now: float) -> list[Action]:
        out: list[Action] = []
        if rec.announced and rec.phase is Phase.IDLE and plan.enters_maintenance:
            out.append(Cancel(self._next_id(rec.name), rec.name, f"shutdown first: {reason}",
                              target=self._step_id(rec, "enter maintenance"),
                              step="enter maintenance"))
        rec.order_reason, rec.before_order = reason, rec.phase
        rec.stop_failures, rec.stop_retry_at, rec.stop_note = 0, None, ""
        rec.vms_left = plan.traits.vms and rec.phase is not Phase.MAINTENANCE
        return out + self._next_stage(rec, plan, now)

    def _holds(self, rec: HostRecord, plan: HostPlan, when: When) -> bool:
        agent = plan.traits.agent
        return {
            When.ALWAYS: True,
            When.PRIMARY_AGENT_HOST: agent and any(u.role == "primary" for u in self.plan.ups),
            When.COMMAND: bool(plan.command),
            When.EVACUATE: (plan.traits.evacuate_on_shutdown and rec.vms_left
                            and rec.before_order is not Phase.NO_MAINTENANCE),
            When.VMS_LEFT: plan.traits.vms and rec.vms_left,
            When.AGENT_HOST: agent and len(self.plan.hosts) > 1,
            When.RUNS_INFRA: plan.last_rank > 0 and plan.manager_key is not None,
        }[when]

    def _next_stage(self, rec: HostRecord, plan: HostPlan, now: float) -> list[Action]:
        stages = [phase for phase, _ in SHUTDOWN_STAGES]
        start = stages.index(rec.phase) + 1 if rec.phase in SHUTTING_DOWN else 0
        out: list[Action] = []
        for phase, when in SHUTDOWN_STAGES[start:]:
            if not self._holds(rec, plan, when):
                continue
            rec.phase, rec.stage_at = phase, now
            out += self._enter_stage(rec, plan, phase, now)
            if rec.inflight or self._stage_waits(rec, plan, now):
                return out
        return out

    def _enter_stage(self, rec: HostRecord, plan: HostPlan, phase: Phase,
                     now: float) -> list[Action]:
        name, why = rec.name, rec.order_reason
        if phase is Phase.FSD:
            out: list[Action] = []
            for ups in self.plan.ups:
                if ups.role == "primary":
                    self._ups[ups.name].fsd_by_us = True
                    out.append(self._start(rec, SetFsd(
                        self._next_id(name), name, f"{why}: this agent is the primary",
                        ups=ups.name, wait=self.plan.hostsync), self.plan.hostsync, now))
            return out
        if phase is Phase.DELAY:
            out = []
            if plan.traits.agent:     # upsmon's SHUTDOWN is about the agent's own machine
                out.append(Notify(self._next_id(name), name, why, type="SHUTDOWN",
                                  message=notify_text(self.plan, "SHUTDOWN", "")))
            if plan.message:
                when = f"in {fmt(plan.shutdown_delay)}" if plan.shutdown_delay else "now"
                out.append(WarnUsers(self._next_id(name), name, f"shutdown {when}: {why}",
                                     message=plan.message))
            return out
        if phase is Phase.AFTER_OTHERS:
            first = self._manager_first(plan)
            if first:
                what = "the agent's VM" if plan.runs_agent else "the vCenter VM"
                rec.order_reason = f"{why}; runs {what}: after {', '.join(first)}"
            return []
        if phase is Phase.COMMAND:
            return [self._start(rec, RunCommand(self._next_id(name), name, why,
                                                argv=plan.command, budget=plan.command_budget),
                                plan.command_budget, now)]
        if phase is Phase.EVACUATING:
            timeout = plan.effective_maintenance_timeout()
            return [self._start(rec, EnterMaintenance(
                self._next_id(name), name, f"{why}; the shutdown moves the VMs away first",
                timeout=timeout), timeout, now)]
        if phase is Phase.VMS:
            if rec.before_order is Phase.NO_MAINTENANCE and rec.note:
                why = f"{why}; maintenance failed: {rec.note}"
            if rec.stop_failures:
                why = (f"{why}; again before attempt {rec.stop_failures + 1} of the host's "
                       f"shutdown, the last one failed: {rec.stop_note}")
            return [self._start(rec, ShutdownVms(self._next_id(name), name, why,
                                                 timeout=plan.vm_shutdown_timeout,
                                                 groups=plan.vm_groups),
                                plan.vm_shutdown_timeout, now)]
        if phase is Phase.STOPPING:
            if rec.stop_failures:
                why = (f"{why}; attempt {rec.stop_failures + 1}, the last one failed: "
                       f"{rec.stop_note}")
            return [self._shutdown_host(rec, plan, why, now)]
        return []

    def _shutdown_host(self, rec: HostRecord, plan: HostPlan, why: str,
                       now: float) -> Action:
        killpower = plan.traits.agent and any(
            self.plan.ups_plan(s.ups).role == "primary" for s in plan.powered_by)
        return self._start(rec, ShutdownHost(self._next_id(rec.name), rec.name, why,
                                             killpower=killpower),
                           plan.shutdown_duration, now)

    def _retry_stop(self, rec: HostRecord, plan: HostPlan, now: float) -> list[Action]:
        """R6: a host whose shutdown failed: issue it again once the wait has passed, while
        its power is still failing; with power back, the host is up and protected again."""
        if rec.stop_retry_at is None or rec.inflight:
            return []
        if rec.since is None:        # power is back: no reason to shut it down any more
            rec.stop_failures, rec.stop_retry_at, rec.stop_note = 0, None, ""
            rec.phase = Phase.MAINTENANCE if rec.ours else Phase.IDLE
            return []
        if now < rec.stop_retry_at:
            return []
        rec.stop_retry_at = None
        if plan.traits.vms and rec.vms_left:
            # the VMs' step failed too (vCenter unreachable): the VMs first, then the host
            rec.phase = Phase.VMS
            out = self._enter_stage(rec, plan, Phase.VMS, now)
            return out if rec.inflight else out + self._next_stage(rec, plan, now)
        return self._enter_stage(rec, plan, Phase.STOPPING, now)

    def _stage_waits(self, rec: HostRecord, plan: HostPlan, now: float) -> bool:
        """Whether a waiting stage (start delay, the agent going last) must still wait."""
        if rec.phase is Phase.DELAY:
            return now < (rec.stage_at or now) + plan.shutdown_delay
        if rec.phase is Phase.LAST:
            return self._others_until(rec, now) is not None
        if rec.phase is Phase.AFTER_OTHERS:
            return bool(self._manager_first(plan))
        return False

    def _manager_first(self, plan: HostPlan) -> list[str]:
        """R6: the hosts of ``plan``'s manager, of a lower :attr:`~HostPlan.last_rank`,
        whose shutdown is in progress (``plan`` waits for them)."""
        rec = self._hosts[plan.name]
        return [other.name for other in self.plan.hosts
                if other.name != plan.name and other.manager_key == plan.manager_key
                and other.last_rank < plan.last_rank and not other.left_alone
                and self._hosts[other.name].phase in SHUTTING_DOWN
                and not self._given_up(rec, self._hosts[other.name])]

    def _running_out(self, plan: HostPlan, views: dict[str, UpsView],
                     power: PowerView) -> bool:
        """Whether ``plan``'s power is running out: a UPS feeding it is on low battery, or
        its runtime is down to what its remaining steps need (R4b; an FSD, such as the
        one this agent sets as a primary, is not running out)."""
        if any("LB" in views[s.ups].status for s in plan.powered_by if s.ups in views):
            return True
        return power.runtime is not None and power.runtime <= runtime_trigger(
            plan, self.plan, in_maintenance=False).at

    def _given_up(self, rec: HostRecord, other: HostRecord) -> bool:
        """R6: ``rec``'s power is running out (:meth:`_running_out`) and ``other``'s
        shutdown has failed at least once: ``rec`` no longer waits for it (the retries go
        on while ``rec`` is up)."""
        return (rec.name in self._pressed and other.phase is Phase.STOPPING
                and other.stop_failures > 0)

    def _others_until(self, rec: HostRecord, now: float) -> float | None:
        """R6: until when the agent's own host must wait for the others (None: done).

        It waits for every other host whose shutdown has started, until that host's OS
        has had its ``shutdown_duration`` after the order was acknowledged.
        """
        until = None
        for other in self.plan.hosts:
            orec = self._hosts[other.name]
            if other.name == rec.name or other.left_alone or self._given_up(rec, orec):
                continue
            if orec.phase in SHUTTING_DOWN:
                return float("inf")
            if orec.phase is Phase.DOWN and orec.down_at is not None:
                end = orec.down_at + other.shutdown_duration
                if end > now:
                    until = end if until is None else max(until, end)
        return until

    def _continue(self, rec: HostRecord, plan: HostPlan, now: float) -> list[Action]:
        if rec.phase is Phase.STOPPING:
            return self._retry_stop(rec, plan, now)
        if (rec.phase in (Phase.DELAY, Phase.LAST, Phase.AFTER_OTHERS)
                and not self._stage_waits(rec, plan, now)):
            return self._next_stage(rec, plan, now)
        return []

    # -- results ---------------------------------------------------------------------

    def _after(self, rec: HostRecord, action: Action, result: Result,
               now: float) -> list[Action]:
        if rec.inflight:         # FSD on several UPSes: wait for all of them
            return []
        ok = result.ok
        phase = rec.phase
        if phase is Phase.ENTERING or phase is Phase.EVACUATING:
            rec.aborting = False
            # an enter whose end was not seen (vCenter gone mid-task, no answer) may have
            # put the host into maintenance: counted as ours, so that power back takes it
            # out (the backend does nothing to a host that is not in maintenance)
            rec.ours = rec.ours or ok or (phase is Phase.ENTERING
                                          and result.outcome in UNSEEN_END)
            rec.vms_left = self.plan.host(rec.name).traits.vms and not ok
            if not ok:
                rec.note = result.detail or result.outcome.value
        elif phase is Phase.VMS:
            rec.vms_left = not ok         # R6: a retry of the host's shutdown stops them first
            rec.vms_stopped = tuple(sorted(set(rec.vms_stopped) | set(result.stopped)))
            if result.outcome is Outcome.UNREACHABLE:
                # R6: the manager is gone; the host's shutdown would find it gone too, or,
                # back meanwhile, cut the VMs off: a failed attempt, the VMs first again
                rec.phase = Phase.STOPPING
                rec.stop_failures += 1
                rec.stop_retry_at = now + shutdown_retry_delay(rec.stop_failures)
                rec.stop_note = result.detail or result.outcome.value
                return []
        elif phase is Phase.STARTING_VMS:
            rec.aborting = False
            if result.outcome is not Outcome.CANCELLED:
                rec.vms_stopped = ()
        elif phase is Phase.EXITING:
            if ok:
                rec.ours, rec.exit_attempts, rec.exit_at = False, 0, None
            else:
                rec.exit_attempts += 1
                rec.exit_at = now + EXIT_RETRY
                if rec.exit_attempts >= EXIT_ATTEMPTS:
                    rec.ours = False
        elif phase is Phase.STOPPING:
            if ok:
                rec.down_at, rec.stop_failures, rec.stop_retry_at = now, 0, None
            else:                    # R6: issued again after a while
                rec.stop_failures += 1
                rec.stop_retry_at = now + shutdown_retry_delay(rec.stop_failures)
                rec.stop_note = result.detail or result.outcome.value
        follow = AFTER_RESULT.get((phase, ok))
        if follow is None:
            return []
        if follow == NEXT_STAGE:
            return self._next_stage(rec, self.plan.host(rec.name), now)
        assert isinstance(follow, Phase)
        rec.phase = follow
        if follow is Phase.MAINTENANCE and not rec.ours:
            rec.phase = Phase.IDLE
        return []

    # -- bookkeeping -----------------------------------------------------------------

    def _start(self, rec: HostRecord, action: Action, limit: float, now: float) -> Action:
        self._ops[action.id] = (action, now + limit + GRACE)
        rec.inflight.append(action.id)
        return action

    def _next_id(self, host: str) -> str:
        self._seq += 1
        return f"{host}/{self._seq}"

    @staticmethod
    def _step_id(rec: HostRecord, step: str) -> str:
        return f"{rec.name}/{step.replace(' ', '-')}/{rec.generation}"
