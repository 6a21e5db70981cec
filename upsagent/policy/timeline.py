# -*- test-case-name: tests.test_scenarios -*-
"""What ``upsagent simulate`` prints: timeline entries and their two formats.

An :class:`Entry` is one thing that happened: when (seconds since the first power failure),
to what (a UPS, a host, a VM, an agent), what, and the detail (usually the reason).  The
engine's actions and their results are turned into entries by :func:`action_entry` and
:func:`result_entry`; the simulated world adds its own (power, countdowns, VMs moving,
hosts going down and booting).

Text: ``  60 s  host1  enter maintenance: UPS1 on battery for 60 s`` (columns aligned).
JSON: one object per line, keys ``t``, ``subject``, ``event``, ``detail``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from upsagent.policy.actions import (
    Action, Cancel, EnterMaintenance, ExitMaintenance, Notify, Outcome, Result, RunCommand,
    PowerOnVms, SetFsd, ShutdownHost, ShutdownVms, WarnUsers,
)

__all__ = ["Entry", "action_entry", "format_json", "format_text", "result_entry"]


@dataclass(frozen=True)
class Entry:
    t: float
    subject: str
    event: str
    detail: str = ""

    def as_dict(self) -> dict[str, object]:
        t: float | int = round(self.t, 3)
        if t == int(t):
            t = int(t)
        return {"t": t, "subject": self.subject, "event": self.event, "detail": self.detail}


def action_entry(t: float, action: Action) -> Entry:
    """The entry for an action the engine started."""
    if isinstance(action, Notify):
        return Entry(t, action.host, action.verb, action.message)
    if isinstance(action, WarnUsers):
        return Entry(t, action.host, action.verb, f'"{action.message}" ({action.reason})')
    if isinstance(action, Cancel):
        return Entry(t, action.host, action.verb, action.reason)
    if isinstance(action, SetFsd):
        return Entry(t, action.host, f"set FSD on {action.ups}", action.reason)
    if isinstance(action, RunCommand):
        return Entry(t, action.host, action.verb,
                     f"{' '.join(action.argv)} (budget {action.budget:g} s): {action.reason}")
    return Entry(t, action.host, action.verb, action.reason)


#: (operation, succeeded) -> what the timeline says when it ends; failures name the outcome
_DONE = {
    EnterMaintenance: ("in maintenance", "maintenance failed"),
    ExitMaintenance: ("out of maintenance", "exit maintenance failed"),
    ShutdownVms: ("VMs stopped", "VM shutdown failed"),
    ShutdownHost: ("shutting down", "shutdown failed"),
    RunCommand: ("command done", "command failed"),
    SetFsd: ("secondaries gone", "FSD wait over"),
    PowerOnVms: ("VMs started", "VM start failed"),
}


def result_entry(t: float, action: Action, result: Result) -> Entry:
    """The entry for an operation's result."""
    good, bad = _DONE.get(type(action), ("done", "failed"))
    event = good if result.ok else bad
    if not result.ok and result.outcome is Outcome.TIMED_OUT and isinstance(action, RunCommand):
        event = "command timed out"
    return Entry(t, action.host, event, result.detail or result.outcome.value)


def _t(t: float) -> str:
    return f"{round(t, 1):g}"


def format_text(entries: Iterable[Entry]) -> list[str]:
    """Aligned text lines."""
    entries = list(entries)
    if not entries:
        return []
    tw = max(len(_t(e.t)) for e in entries)
    sw = max(len(e.subject) for e in entries)
    lines = []
    for e in entries:
        what = f"{e.event}: {e.detail}" if e.detail else e.event
        lines.append(f"{_t(e.t):>{tw}} s  {e.subject:<{sw}}  {what}".rstrip())
    return lines


def format_json(entries: Iterable[Entry]) -> list[str]:
    """One JSON object per entry."""
    return [json.dumps(e.as_dict(), ensure_ascii=False) for e in entries]
