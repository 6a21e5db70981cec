# -*- test-case-name: tests.test_policy -*-
"""The checks of a plan (:func:`validate`): timers that do not fit a UPS's countdown,
hosts that would lose power before their steps are done, steps in the wrong order.

``check-config``, the agent at start and on SIGHUP, and ``upsagent simulate`` all call
:func:`validate` and print its :class:`Problem` lines; errors refuse the plan, warnings are
said and the plan runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from upsagent.policy.plan import (
    RUNTIME_MARGIN_RULE, HostPlan, Plan, seconds, shutdown_sequence)

__all__ = ["Problem", "validate"]


@dataclass(frozen=True)
class Problem:
    """One finding of :func:`validate`: which host, which step, what is wrong, by how much.

    ``severity`` is ``error`` (refuse to start) or ``warning`` (start, but say so).
    ``excess`` is by how many seconds a step overruns, when that is the problem.
    """

    host: str | None
    step: str
    message: str
    severity: Literal["error", "warning"] = "error"
    excess: float | None = None

    def __str__(self) -> str:
        return self.message


def _power_lost_at(host: HostPlan, plan: Plan) -> tuple[float, str] | None:
    """When the host loses power if all its UPSes fail at once, and which UPS cuts it."""
    cuts = sorted(
        (countdown.cuts_at, s.ups, s.power_value) for s in host.powered_by
        if (countdown := plan.ups_plan(s.ups).countdown) is not None)
    remaining = host.total_power
    for at, ups, value in cuts:
        remaining -= value
        if remaining < host.min_supplies:
            return at, ups
    return None


def _check_numbers(host: HostPlan) -> list[Problem]:
    problems = []
    for key in ("maintenance_after", "shutdown_after", "shutdown_delay", "shutdown_duration",
                "command_budget", "debounce", "maintenance_timeout", "vm_shutdown_timeout"):
        value = getattr(host, key)
        if value is not None and value < 0:
            problems.append(Problem(host.name, key,
                                    f"host {host.name}: {key} ({seconds(value)}) is negative"))
    if host.min_supplies < 0:
        problems.append(Problem(host.name, "min_supplies",
                                f"host {host.name}: min_supplies is negative"))
    return problems


def _check_supplies(host: HostPlan, plan: Plan) -> list[Problem]:
    name = host.name
    known = {ups.name for ups in plan.ups}
    if not host.powered_by:
        return [Problem(name, "powered_by", f"host {name}: no power supply (powered_by is "
                        "empty): nothing tells when it is in danger")]
    problems = [Problem(name, "powered_by", f"host {name}: powered by {s.ups}, which this "
                        "agent does not monitor") for s in host.powered_by if s.ups not in known]
    if host.total_power < host.min_supplies:
        problems.append(Problem(
            name, "min_supplies", f"host {name}: its supplies give a power value of "
            f"{host.total_power}, less than min_supplies {host.min_supplies}: it would shut "
            "down at once", excess=float(host.min_supplies - host.total_power)))
    if host.min_supplies == 0:
        problems.append(Problem(name, "min_supplies", f"host {name}: min_supplies is 0: its "
                                "power is never insufficient, no step ever runs", "warning"))
    return problems


def _check_steps(host: HostPlan) -> list[Problem]:
    name = host.name
    problems = []
    m, s = host.maintenance_after, host.shutdown_after
    if m is not None and s is not None and s <= m:
        problems.append(Problem(
            name, "shutdown_after", f"host {name}: shutdown_after ({seconds(s)}) must be greater "
            f"than maintenance_after ({seconds(m)})", excess=m - s))
    if m is not None and not host.traits.maintenance:
        problems.append(Problem(name, "maintenance_after", f"host {name}: maintenance_after "
                                f"is set, but a {host.backend} host has no maintenance mode"))
    if (m is not None and s is not None and host.maintenance_timeout is not None
            and m + host.maintenance_timeout > s):
        over = m + host.maintenance_timeout - s
        problems.append(Problem(
            name, "maintenance_timeout", f"host {name}: maintenance may run until "
            f"{seconds(m + host.maintenance_timeout)}, {seconds(over)} after the shutdown at {seconds(s)}",
            excess=over))
    if host.command and host.command_budget <= 0:
        problems.append(Problem(name, "command_budget", f"host {name}: the command needs a "
                                "command_budget (its run time) greater than 0"))
    if not host.command and host.command_budget > 0:
        problems.append(Problem(name, "command_budget", f"host {name}: command_budget is "
                                "set but there is no command", "warning"))
    if host.vm_groups:
        total = sum(g.timeout for g in host.vm_groups)
        if not host.traits.vms:
            problems.append(Problem(name, "vm_groups", f"host {name}: vm_groups is set, but "
                                    f"a {host.backend} host runs no VMs", "warning"))
        elif total > host.vm_shutdown_timeout:
            how = " + ".join(seconds(g.timeout) for g in host.vm_groups)
            problems.append(Problem(
                name, "vm_groups", f"host {name}: the VM groups' timeouts add up to "
                f"{seconds(total)} ({how}), more than the VM shutdown budget "
                f"vm_shutdown_timeout = {seconds(host.vm_shutdown_timeout)}",
                excess=total - host.vm_shutdown_timeout))
    if (host.runs_vcenter or host.runs_agent) and host.manager_key is None:
        problems.append(Problem(name, "runs_vcenter" if host.runs_vcenter else "runs_agent",
                                f"host {name}: runs_vcenter/runs_agent orders a host after "
                                "the other hosts of its vCenter, but it names none",
                                "warning"))
    if host.power_on_vms and not host.traits.vms:
        problems.append(Problem(name, "power_on_vms", f"host {name}: power_on_vms is set, "
                                f"but a {host.backend} host runs no VMs", "warning"))
    if host.left_alone and (m is not None or s is not None):
        problems.append(Problem(
            name, "is_pool_master", f"host {name}: the pool master is never scheduled with "
            "the others; its timers are ignored (protect it with its own local agent)",
            "warning"))
    return problems


def _check_countdown(host: HostPlan, plan: Plan) -> list[Problem]:
    """Every step of the host ends before the UPS output goes off."""
    lost = _power_lost_at(host, plan)
    if lost is None or host.left_alone:
        return []
    cut, ups = lost
    name = host.name
    problems = []
    if host.shutdown_after is not None and host.shuts_down:
        parts = shutdown_sequence(host, plan)
        end = host.shutdown_after + sum(d for _, d in parts)
        if end > cut:
            how = " + ".join(f"{label} {seconds(d)}" for label, d in parts)
            problems.append(Problem(
                name, "shutdown", f"host {name}: shutdown finishes at {seconds(end)}, "
                f"{seconds(end - cut)} after {ups} cuts its output at {seconds(cut)} (shutdown at "
                f"{seconds(host.shutdown_after)} + {how})", excess=end - cut))
    elif host.enters_maintenance:
        assert host.maintenance_after is not None
        end = host.maintenance_after + host.effective_maintenance_timeout()
        if end > cut:      # with the default time limit, only a warning
            problems.append(Problem(
                name, "maintenance", f"host {name}: maintenance may still run at {seconds(end)}, "
                f"{seconds(end - cut)} after {ups} cuts its output at {seconds(cut)}",
                "error" if host.maintenance_timeout is not None else "warning",
                excess=end - cut))
    elif host.shuts_down:
        problems.append(Problem(
            name, "shutdown", f"host {name}: no shutdown timer; {ups} cuts its output at "
            f"{seconds(cut)} whatever happens, and the host shuts down only on low battery, FSD "
            "or short runtime", "warning"))
    if not host.shuts_down:
        problems.append(Problem(
            name, "shutdown", f"host {name} is never shut down: it loses power when {ups} "
            f"cuts its output at {seconds(cut)}", "warning"))
    return problems


def validate(plan: Plan) -> list[Problem]:
    """Every problem of ``plan``, errors and warnings, hosts in plan order.

    Checks: duplicate names; negative times; supplies (none, unknown UPS, power value below
    min_supplies); shutdown_after > maintenance_after; maintenance on a backend without it;
    a command without a budget; VM groups beyond the VM shutdown budget; timers on a pool master; a runtime_margin outside 0 to 1;
    and that every host's steps with their durations end before the UPS countdown cuts its
    output (with redundant supplies: before the cut that leaves it below min_supplies, all
    UPSes failing together).
    """
    problems: list[Problem] = []
    seen: set[str] = set()
    for ups in plan.ups:
        if ups.name in seen:
            problems.append(Problem(None, "ups", f"UPS {ups.name} is listed twice"))
        seen.add(ups.name)
    seen = set()
    for host in plan.hosts:
        if host.name in seen:
            problems.append(Problem(host.name, "name", f"host {host.name} is listed twice"))
        seen.add(host.name)
        problems += _check_numbers(host)
        problems += _check_supplies(host, plan)
        problems += _check_steps(host)
        problems += _check_countdown(host, plan)
    agents = [h.name for h in plan.hosts if h.traits.agent]
    if len(agents) > 1:
        problems.append(Problem(None, "backend", "more than one host of the agent's own "
                                "machine (backend local or xenmaster): " + ", ".join(agents)
                                + " (the agent runs on one machine)"))
    agent = plan.agent_host
    for ups in plan.ups:
        if ups.role == "primary" and (
                agent is None or all(s.ups != ups.name for s in agent.powered_by)):
            problems.append(Problem(
                None, "role", f"primary for {ups.name}, but the agent's own host is not "
                f"powered by it: {ups.name} failing alone never makes this agent set FSD "
                "(it sets FSD only when its own host shuts down for another UPS)",
                "warning"))
    for key, value in (("deadtime", plan.deadtime), ("hostsync", plan.hostsync),
                       ("poll", plan.poll)):
        if value < 0:
            problems.append(Problem(None, key, f"{key} ({seconds(value)}) is negative"))
    if not 0 <= plan.runtime_margin <= 1:
        problems.append(Problem(None, "runtime_margin", f"runtime_margin "
                                f"({plan.runtime_margin:g}) {RUNTIME_MARGIN_RULE}"))
    return problems
