# -*- test-case-name: tests.test_policy -*-
"""What master, agent and backends share about external actions: one :class:`Runner`
protocol for running a command within a time budget, and one :class:`Result` type saying
what an operation really did (its :class:`Outcome` and a sentence).

The real runner is :class:`upsagent.system.runprocess.ProcessRunner`; tests pass fakes that
keep the same signature.  A runner's own result (``ProcessResult``) is read by duck typing
(``ok``, ``timed_out``, ``summary``) and turned into a :class:`Result` by :func:`result_of`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Mapping, Protocol, Sequence

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

__all__ = ["Outcome", "Result", "Runner", "result_of"]


class Runner(Protocol):
    """Runs an argument list (never a shell string) within a time budget.

    ``run`` starts ``argv`` with ``env`` added to the caller's environment and returns a
    Deferred that fires once the command is done or was stopped after ``budget`` seconds
    (None: no limit), with a result that has ``ok`` and, ideally, ``timed_out`` and
    ``summary``.  ``name`` labels the command in the log.
    """

    def run(self, argv: Sequence[str], budget: float | None, *,
            env: Mapping[str, str] | None = None, name: str = "") -> "Deferred[Any]": ...


class Outcome(str, Enum):
    """What really happened to an operation."""

    OK = "ok"
    #: maintenance/evacuation: no other host can take the VMs
    NO_TARGET = "no-target"
    TIMED_OUT = "timed-out"
    FAILED = "failed"
    CANCELLED = "cancelled"
    #: the backend has no such thing (maintenance on a plain OS)
    NOT_APPLICABLE = "not-applicable"
    #: the host or its manager cannot be reached
    UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class Result:
    """The answer to an operation: the outcome and a sentence saying what happened.

    ``moved`` lists (VM, target host) pairs a maintenance moved; ``stopped`` the VMs shut
    down (or powered off); ``left`` the VMs still running on the host afterwards.
    """

    outcome: Outcome
    detail: str = ""
    moved: tuple[tuple[str, str], ...] = ()
    stopped: tuple[str, ...] = ()
    left: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.outcome in (Outcome.OK, Outcome.NOT_APPLICABLE)


def result_of(value: object) -> Result:
    """A runner's result (``ProcessResult`` or alike) as a :class:`Result`."""
    if isinstance(value, Result):
        return value
    summary = str(getattr(value, "summary", value))
    if getattr(value, "ok", False):
        return Result(Outcome.OK, summary)
    if getattr(value, "timed_out", False):
        return Result(Outcome.TIMED_OUT, summary)
    return Result(Outcome.FAILED, summary)
