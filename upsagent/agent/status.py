# -*- test-case-name: tests.test_status -*-
"""What ``upsagent status`` is told: the running agent's plans, state and recent history.

:class:`StatusBook` records, as the agent runs, what only the running agent knows: the last
operation of every host (started, finished, outcome, detail; the executor's observer
calls :meth:`StatusBook.observe`) and every UPS's last reading (:meth:`StatusBook.ups_event`).
:func:`status_report` puts it together with the plan, the engine's phases and timers and
the inventory (:mod:`upsagent.agent.inventory`) as JSON types; the control socket
(:mod:`upsagent.agent.control`) sends it, and :mod:`upsagent.cli.status` renders it.

Nothing secret is in it: no password, no command line (only the command's program), no
manager credentials.  Times are the agent's clock (wall-clock seconds); each report has
its ``now`` so that ages and time left are computed against it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from upsagent import __version__
from upsagent.agent.inventory import manager_label
from upsagent.policy.actions import OPERATIONS, Action, Result
from upsagent.policy.events import CommLost, CommOk, Event, UpsState

if TYPE_CHECKING:
    from upsagent.agent.daemon import SlaveDaemon
    from upsagent.policy.plan import HostPlan

__all__ = ["LastAction", "StatusBook", "UpsReading", "status_report"]

#: the version of the report's layout (``upsagent status --json`` readers check it)
REPORT_VERSION = 1


@dataclass
class LastAction:
    """A host's last operation: ``finished`` and ``outcome`` None while it runs."""

    action: str
    reason: str
    started: float
    finished: float | None = None
    outcome: str | None = None
    detail: str = ""


@dataclass
class UpsReading:
    """A UPS's last reading: ``status`` words as served, ``read_at`` when; ``lost`` the
    reason contact was lost since (empty while in contact)."""

    status: str = ""
    charge: float | None = None
    runtime: float | None = None
    read_at: float | None = None
    lost: str = ""
    lost_at: float | None = None


class StatusBook:
    """The running agent's recent history, for the status report."""

    def __init__(self) -> None:
        self.actions: dict[str, LastAction] = {}
        self.ups: dict[str, UpsReading] = {}

    def observe(self, kind: str, action: Action, result: Result | None, now: float) -> None:
        """The executor's observer: an operation started (``kind`` ``"start"``) or ended
        (``"done"``).  Notifications, warnings and cancels are not operations."""
        if not isinstance(action, OPERATIONS):
            return
        if kind == "start":
            self.actions[action.host] = LastAction(action.verb, action.reason, now)
            return
        last = self.actions.get(action.host)
        if last is None or last.action != action.verb:
            last = self.actions[action.host] = LastAction(action.verb, action.reason, now)
        last.finished = now
        if result is not None:
            last.outcome, last.detail = result.outcome.value, result.detail

    def ups_event(self, event: Event, now: float) -> None:
        """A monitor's event about a UPS."""
        reading = self.ups.setdefault(event.ups, UpsReading())
        if isinstance(event, CommLost):
            if not reading.lost:
                reading.lost_at = now
            reading.lost = event.reason
        elif isinstance(event, CommOk):
            reading.lost, reading.lost_at = "", None
        elif isinstance(event, UpsState):
            reading.status = " ".join(sorted(event.status, key=_word_order))
            reading.charge, reading.runtime = event.charge, event.runtime
            reading.read_at, reading.lost, reading.lost_at = now, "", None


def _word_order(word: str) -> tuple[int, str]:
    """``ups.status`` words as NUT writes them: the power state first (``OB DISCHRG``)."""
    return (_LEADING.index(word) if word in _LEADING else len(_LEADING), word)


_LEADING = ("FSD", "OL", "OB", "LB", "HB", "RB")


def _plan(host: HostPlan, effective: HostPlan) -> dict[str, Any]:
    """A host's configured steps and times (what ``check-config`` checks)."""
    return {
        "powered_by": [s.ups for s in host.powered_by],
        "min_supplies": host.min_supplies,
        "maintenance_after": host.maintenance_after if host.enters_maintenance else None,
        "shutdown_after": host.shutdown_after,
        "shuts_down": host.shuts_down,
        "shutdown_delay": host.shutdown_delay,
        "shutdown_duration": host.shutdown_duration,
        "maintenance_timeout": host.effective_maintenance_timeout()
        if host.enters_maintenance else None,
        "vm_shutdown_timeout": host.vm_shutdown_timeout if host.traits.vms else None,
        "debounce": host.debounce,
        "command": host.command[0] if host.command else None,
        "command_budget": host.command_budget if host.command else None,
        "cluster": host.cluster,
        "power_on_vms": host.power_on_vms,
        "left_alone": host.left_alone,
        "runs_vcenter": {"marked": host.runs_vcenter, "in_effect": effective.runs_vcenter},
        "runs_agent": {"marked": host.runs_agent, "in_effect": effective.runs_agent},
    }


def _start_delay(record: dict[str, Any] | None, host: HostPlan,
                 now: float) -> list[dict[str, Any]]:
    """The start delay's timer of a host waiting in it (phase ``delay``; from the engine's
    snapshot: when the stage began, plus the host's ``shutdown_delay``)."""
    if record is None or record.get("phase") != "delay" or record.get("stage_at") is None:
        return []
    due = float(record["stage_at"]) + host.shutdown_delay
    return [{"step": "start delay ends", "due": due, "left": due - now,
             "reason": record.get("order_reason", "")}]


def status_report(daemon: SlaveDaemon, now: float) -> dict[str, Any]:
    """The agent's status as JSON types (:mod:`upsagent.cli.status` renders it)."""
    config = daemon.config
    executor = daemon.executor
    engine = executor.engine if executor is not None else None
    managers = {name: manager_label(manager)
                for manager, names in config.managers() for name in names}
    inventory = daemon.inventory
    seen = inventory.hosts if inventory is not None else {}
    pending = engine.pending() if engine is not None else []
    records = cast("dict[str, Any]", engine.snapshot()["hosts"]) if engine is not None else {}
    running = engine.in_flight() if engine is not None else []
    hosts = []
    for host in config.plan.hosts:
        effective = engine.plan.host(host.name) if engine is not None else host
        state = seen.get(host.name)
        last = daemon.status.actions.get(host.name)
        hosts.append({
            "name": host.name,
            "backend": host.backend,
            "manager": managers.get(host.name),
            "has_backend": executor is not None and host.name in executor.backends,
            "plan": _plan(host, effective),
            "phase": engine.phase(host.name).value if engine is not None else None,
            "timers": [{"step": s.step, "due": s.due, "left": s.due - now,
                        "reason": s.reason} for s in pending if s.host == host.name]
            + _start_delay(records.get(host.name), host, now),
            "in_flight": [a.verb for a in running if a.host == host.name],
            "last_action": vars(last).copy() if last is not None else None,
            "inventory": vars(state).copy() if state is not None else None,
        })
    ups = []
    for monitor in config.monitors:
        reading = daemon.status.ups.get(monitor.system, UpsReading())
        ups.append({"name": monitor.system, "role": "primary" if monitor.primary
                    else "secondary", **vars(reading),
                    "age": now - reading.read_at if reading.read_at is not None else None})
    return {
        "report": REPORT_VERSION,
        "version": __version__,
        "agent": config.plan.name,
        "pid": os.getpid(),
        "started": daemon.started_at,
        "now": now,
        "dry_run": config.dry_run,
        "config": config.source,
        "released": daemon.released,
        "ups": ups,
        "hosts": hosts,
        "managers": inventory.as_json()["managers"] if inventory is not None else [],
        "inventory_interval": inventory.interval if inventory is not None else None,
    }
