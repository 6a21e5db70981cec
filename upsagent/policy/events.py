# -*- test-case-name: tests.test_policy -*-
"""What the monitors tell the policy engine: one value type per observation.

The monitors (:mod:`upsagent.agent.monitor`, Twisted) watch UPSes on masters and turn what
they see into these events; the policy engine (:mod:`upsagent.policy.policy`, pure) decides
what to do about them.  Neither side knows the other's internals, so the engine is driven
the same way by live monitors, by ``upsagent simulate`` and by the tests.

Every event names the UPS as the monitor knows it: ``ups@host[:port]`` (the MONITOR system
name in upsmon.conf terms).  Times are not inside the events: the engine is told the time
separately (``handle(event, now)``), so one event type serves live and simulated runs.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CommLost", "CommOk", "Event", "Placement", "UpsState"]


@dataclass(frozen=True)
class UpsState:
    """A successful read of a UPS (a poll answer or a pushed change).

    ``status`` holds the words of ``ups.status`` as served, ``FSD`` included when the
    master's latch is set.  ``charge`` (percent) and ``runtime`` (seconds) are None when
    the UPS does not publish them or the monitor did not read them.
    """

    ups: str
    status: frozenset[str]
    charge: float | None = None
    runtime: float | None = None


@dataclass(frozen=True)
class CommLost:
    """The monitor could not read the UPS (connection lost, ERR DATA-STALE, ...)."""

    ups: str
    reason: str


@dataclass(frozen=True)
class CommOk:
    """The monitor can read the UPS again (its next ``UpsState`` follows)."""

    ups: str


Event = UpsState | CommLost | CommOk


@dataclass(frozen=True)
class Placement:
    """Where the agent's inventory (:mod:`upsagent.agent.inventory`) last found the
    vCenter's VM and the agent's own VM: on ``host`` or not.

    Not a UPS event: the engine ORs it with the operator's ``runs_vcenter`` /
    ``runs_agent`` marks of the plan for R6's order (a mark always holds; the detected
    flags follow the latest detection, since DRS or a maintenance moves the VMs).
    """

    host: str
    runs_vcenter: bool = False
    runs_agent: bool = False
