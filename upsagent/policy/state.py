# -*- test-case-name: tests.test_policy -*-
"""The policy engine's memory: one record per UPS and per host, and its JSON form.

The records are plain mutable dataclasses owned by :class:`~upsagent.policy.policy.PolicyEngine`;
nothing else changes them.  :func:`dump_state` / :func:`load_state` turn them (and the
operations in flight) into a dict of JSON types and back, so that the daemon can write the
engine's state to a file after every change and an agent restarted mid-sequence continues
with the right timers (rules R9).  The format carries a version number; a snapshot of an
unknown version is refused rather than misread.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from upsagent.policy import actions
from upsagent.policy.actions import Action
from upsagent.policy.plan import VmGroup
from upsagent.policy.rules import Phase

__all__ = ["HostRecord", "StateError", "UpsRecord", "dump_state", "load_state"]

VERSION = 1


class StateError(ValueError):
    """A snapshot that cannot be restored (unknown version, damaged)."""


@dataclass
class UpsRecord:
    """What the engine remembers of one UPS."""

    name: str
    status: frozenset[str] = frozenset()
    #: read at least once (upsmon: a UPS never heard from counts as on line)
    heard: bool = False
    #: upsmon's commstate: -1 never connected, 1 in contact, 0 contact lost
    comm: int = -1
    last_seen: float | None = None
    last_noncrit: float | None = None
    runtime: float | None = None
    charge: float | None = None
    fsd_by_us: bool = False
    #: since when every read said OB (rules R2d)
    on_battery_since: float | None = None
    lost_at: float | None = None
    next_nocomm: float | None = None
    last_rbwarn: float | None = None
    #: heard from since the last restart
    confirmed: bool = True


@dataclass
class HostRecord:
    """What the engine remembers of one host."""

    name: str
    phase: Phase = Phase.IDLE
    #: when its power became short (None: power is fine)
    since: float | None = None
    #: counts power failures; part of the ids of timed steps
    generation: int = 0
    #: the debounce has passed for this failure
    announced: bool = False
    #: ids of its operations in flight
    inflight: list[str] = field(default_factory=list)
    aborting: bool = False
    #: when the current shutdown stage began
    stage_at: float | None = None
    order_reason: str = ""
    before_order: Phase = Phase.IDLE
    #: this agent put the host into maintenance (and must take it out)
    ours: bool = False
    exit_when_done: bool = False
    vms_left: bool = True
    down_at: float | None = None
    #: the VMs this agent shut down on the host, to start again (``power_on_vms``)
    vms_stopped: tuple[str, ...] = ()
    exit_at: float | None = None
    exit_attempts: int = 0
    power_reason: str = ""
    failing: tuple[str, ...] = ()
    back_reason: str = ""
    #: why maintenance failed
    note: str = ""
    #: the host of the same cluster this one's maintenance waited for
    queued_behind: str = ""
    #: the inventory last found the vCenter's VM / the agent's own VM on this host
    #: (:class:`~upsagent.policy.events.Placement`; OR-ed with the plan's marks)
    seen_vcenter: bool = False
    seen_agent: bool = False
    #: R6: failed attempts of the current host shutdown, when the next one is due, and
    #: why the last one failed
    stop_failures: int = 0
    stop_retry_at: float | None = None
    stop_note: str = ""


_ACTIONS: dict[str, type[Action]] = {
    cls.__name__: cls for cls in vars(actions).values()
    if isinstance(cls, type) and issubclass(cls, Action)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Phase):
        return value.value
    if isinstance(value, VmGroup):
        return {"patterns": list(value.patterns), "timeout": value.timeout}
    if isinstance(value, (frozenset, set)):
        return sorted(value)
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _record(obj: Any) -> dict[str, Any]:
    return {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def dump_state(now: float, seq: int, ups: dict[str, UpsRecord], hosts: dict[str, HostRecord],
               ops: list[tuple[Action, float]]) -> dict[str, object]:
    """The engine's state as a dict of JSON types."""
    return {
        "version": VERSION,
        "now": now,
        "seq": seq,
        "ups": {name: _record(rec) for name, rec in ups.items()},
        "hosts": {name: _record(rec) for name, rec in hosts.items()},
        "operations": [{"type": type(a).__name__, "guard": guard, **_record(a)}
                       for a, guard in ops],
    }


def _fields(cls: type[Any], data: dict[str, Any]) -> dict[str, Any]:
    known = {f.name: f for f in dataclasses.fields(cls)}
    out = {}
    for key, value in data.items():
        if key not in known:
            continue
        if isinstance(value, list):
            value = tuple(value)
        out[key] = value
    return out


def load_state(data: dict[str, Any]) -> tuple[
        int, dict[str, UpsRecord], dict[str, HostRecord], list[tuple[Action, float]]]:
    """The records and operations of a :func:`dump_state` dict."""
    if data.get("version") != VERSION:
        raise StateError(f"cannot restore policy state version {data.get('version')!r}")
    try:
        ups = {}
        for name, raw in data["ups"].items():
            fields = _fields(UpsRecord, raw)
            fields["status"] = frozenset(fields.get("status", ()))
            ups[name] = UpsRecord(**fields)
        hosts = {}
        for name, raw in data["hosts"].items():
            fields = _fields(HostRecord, raw)
            fields["phase"] = Phase(fields.get("phase", "idle"))
            fields["before_order"] = Phase(fields.get("before_order", "idle"))
            fields["inflight"] = list(fields.get("inflight", ()))
            hosts[name] = HostRecord(**fields)
        ops = []
        for raw in data["operations"]:
            cls = _ACTIONS[raw["type"]]
            fields = _fields(cls, raw)
            if "groups" in fields:      # ShutdownVms: its VM groups, as dicts
                fields["groups"] = tuple(VmGroup(tuple(g["patterns"]), float(g["timeout"]))
                                         for g in fields["groups"])
            ops.append((cls(**fields), float(raw["guard"])))
        return int(data["seq"]), ups, hosts, ops
    except (KeyError, TypeError, ValueError) as exc:
        raise StateError(f"damaged policy state: {exc!r}") from exc
