# -*- test-case-name: tests.test_policy -*-
"""What the policy engine asks for, and what the backends answer: frozen values.

The engine (:mod:`upsagent.policy.policy`) returns lists of :class:`Action`; the executor
(:mod:`upsagent.engine.executor`) starts them on backends and hands back a :class:`Result`
through ``engine.action_done(action.id, result, now)``.  Every action names its host and
carries the **reason** in words an operator understands ("UPS1 on battery for 60 s"), so
the log, the timeline of ``upsagent simulate`` and the tests all read the same sentence.

Two kinds of action:

* **operations** (:data:`OPERATIONS`): :class:`EnterMaintenance`, :class:`ExitMaintenance`,
  :class:`ShutdownVms`, :class:`ShutdownHost`, :class:`RunCommand`, :class:`SetFsd`,
  :class:`PowerOnVms`.  The
  engine waits for their result before the host's next step; at most one per host is in
  flight.
* **messages**: :class:`Notify` (upsmon's notifications, with NOTIFYMSG texts),
  :class:`WarnUsers` (the operator's message to logged-in users) and :class:`Cancel` (a
  step that will not happen, or an operation to abort).  Nothing comes back for them.
"""

from __future__ import annotations

from dataclasses import dataclass

from upsagent.policy.plan import VmGroup
from upsagent.system.runner import Outcome, Result

__all__ = [
    "Action",
    "Cancel",
    "EnterMaintenance",
    "ExitMaintenance",
    "Notify",
    "OPERATIONS",
    "PowerOnVms",
    "Outcome",
    "Result",
    "RunCommand",
    "SetFsd",
    "ShutdownHost",
    "ShutdownVms",
    "WarnUsers",
]


@dataclass(frozen=True)
class Action:
    """Base of every action: a unique id, the host (or agent) concerned, and why."""

    id: str
    host: str
    reason: str

    #: the words the timeline and the log use for this action
    verb = "action"


@dataclass(frozen=True)
class EnterMaintenance(Action):
    """Put the host into maintenance mode so that its VMs move away; give up after
    ``timeout`` seconds (a VM that cannot move makes the step fail, not hang)."""

    timeout: float = 300.0
    verb = "enter maintenance"


@dataclass(frozen=True)
class ExitMaintenance(Action):
    """Take the host out of maintenance mode, waiting up to ``timeout`` seconds for it to
    be reachable (a host that was shut down must boot first)."""

    timeout: float = 600.0
    verb = "exit maintenance"


@dataclass(frozen=True)
class ShutdownVms(Action):
    """Stop the VMs still running on the host (guest shutdown, power-off after
    ``timeout``); with ``evacuate`` first try to move them away (XenServer).  ``groups``:
    the host's VM priority groups, stopped in order within ``timeout``
    (:func:`~upsagent.policy.plan.vm_batches`)."""

    timeout: float = 60.0
    evacuate: bool = False
    groups: tuple[VmGroup, ...] = ()

    @property
    def verb(self) -> str:  # type: ignore[override]
        return "evacuate" if self.evacuate else "shut down VMs"


@dataclass(frozen=True)
class PowerOnVms(Action):
    """Power is back (``power_on_vms``): start again ``vms``, the VMs the agent shut down
    on the host, in reverse order of ``groups`` (the VMs of no group first), waiting up to
    ``timeout`` seconds for the host to be up and out of maintenance."""

    vms: tuple[str, ...] = ()
    groups: tuple[VmGroup, ...] = ()
    timeout: float = 600.0
    verb = "power on VMs"


@dataclass(frozen=True)
class ShutdownHost(Action):
    """Shut the host down.  ``killpower``: this is a primary's own host; have the UPS
    switch its output off at the end of the shutdown (upsmon's POWERDOWNFLAG)."""

    killpower: bool = False
    verb = "shut down"


@dataclass(frozen=True)
class RunCommand(Action):
    """Run the operator's command (an argument list, never a shell string) within
    ``budget`` seconds."""

    argv: tuple[str, ...] = ()
    budget: float = 0.0
    verb = "run command"


@dataclass(frozen=True)
class SetFsd(Action):
    """Primary only: set FSD on ``ups`` at its master, then wait until the secondaries
    have logged out (NUMLOGINS <= 1) or ``wait`` seconds (HOSTSYNC) have passed.

    ``wait`` 0 (rules R2e: a UPS whose latch this agent holds became critical): set FSD
    and do not wait; the engine does not wait for its result either (its host is the
    agent's name, not a host of the plan)."""

    ups: str = ""
    wait: float = 15.0
    verb = "set FSD"


@dataclass(frozen=True)
class Notify(Action):
    """An upsmon notification: ``type`` is ONLINE, ONBATT, LOWBATT, FSD, COMMOK, COMMBAD,
    SHUTDOWN, REPLBATT, NOCOMM or CAL; ``ups`` is empty for SHUTDOWN, as upsmon's UPSNAME."""

    type: str = ""
    ups: str = ""
    message: str = ""

    @property
    def verb(self) -> str:  # type: ignore[override]
        return f"notify {self.type}"


@dataclass(frozen=True)
class WarnUsers(Action):
    """Broadcast the operator's ``message`` to the users logged in on the host."""

    message: str = ""
    verb = "warn users"


@dataclass(frozen=True)
class Cancel(Action):
    """``target`` will not happen: a scheduled step (its id from ``engine.pending()``) or an
    operation in flight, which the executor then aborts.  ``step`` names it in words."""

    target: str = ""
    step: str = ""

    @property
    def verb(self) -> str:  # type: ignore[override]
        return f"cancel {self.step}" if self.step else "cancel"


#: the actions whose result the engine waits for
OPERATIONS = (EnterMaintenance, ExitMaintenance, ShutdownVms, ShutdownHost, RunCommand, SetFsd,
              PowerOnVms)
