# -*- test-case-name: tests.test_policy -*-
"""This OS as a backend: the shutdown command, the POWERDOWNFLAG, a wall message.

Maintenance and VMs do not apply (the defaults of :class:`~upsagent.hypervisors.base.Backend`
say so).  Commands are argument lists, never shell strings, and run through a *runner*
passed in: any object with ``run(argv, budget) -> Deferred[result]`` -- the real one is
:class:`upsagent.system.runprocess.ProcessRunner`, tests pass a fake.  The runner's result
is read by duck typing (``ok``, ``timed_out``, ``summary``), so a
:class:`~upsagent.policy.actions.Result` may be returned directly as well.

``killpower``: a primary's own host writes upsmon's POWERDOWNFLAG (content
``upsmon-shutdown-file``, written atomically by
:func:`upsagent.system.powerdown.write_flag`) before running the shutdown command; the
system's shutdown hook then has the UPS switch its output off at the very end (``upsagent
killpower``, or NUT's ``upsdrvctl shutdown``), as NUT's ``docs/man/upsmon.txt`` (POWERDOWNFLAG)
describes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from upsagent.hypervisors.base import Backend, HostInfo
from upsagent.system.powerdown import MAGIC, write_flag
from upsagent.system.runner import Outcome, Result, Runner, result_of
from upsagent.policy.plan import DEFAULT_SHUTDOWN_COMMAND

if TYPE_CHECKING:
    from upsagent.policy.plan import VmGroup
    from upsagent.config.managers import LocalConfig, ManagerConfig

__all__ = ["LocalBackend", "POWERDOWN_MAGIC"]

_log = Logger()

#: what upsmon writes into POWERDOWNFLAG, and checks with ``upsmon -K``
POWERDOWN_MAGIC = MAGIC + "\n"


class LocalBackend(Backend):
    """The machine the agent runs on."""

    kind = "local"

    def __init__(self, runner: Runner, name: str = "localhost",
                 shutdown_command: Sequence[str] = DEFAULT_SHUTDOWN_COMMAND,
                 budget: float = 30.0, powerdown_flag: str | None = None,
                 wall_command: Sequence[str] = ("wall",)) -> None:
        for argv in (shutdown_command, wall_command):
            if isinstance(argv, (str, bytes)):
                raise TypeError(f"a command is a list of arguments, not a string: {argv!r}")
        self.runner = runner
        self.name = name
        self.shutdown_command = tuple(shutdown_command)
        self.budget = budget
        self.powerdown_flag = powerdown_flag
        self.wall_command = tuple(wall_command)

    @classmethod
    def build(cls, config: ManagerConfig, reactor: Any, runner: Runner) -> LocalBackend:
        """This OS as ``[slave]`` describes it (:class:`~upsagent.config.managers.LocalConfig`:
        the agent's host, the shutdown command, its budget and the POWERDOWNFLAG)."""
        if config.kind != cls.kind:
            raise TypeError(f"{cls.__name__} is built from a local configuration, not "
                            f"{type(config).__name__}")
        local = cast("LocalConfig", config)
        return cls(runner, local.name, local.shutdown_command, local.shutdown_budget,
                   local.powerdown_flag)

    def hosts(self) -> Deferred[list[HostInfo]]:
        return succeed([HostInfo(self.name, True)])

    def shutdown_vms(self, host: str, timeout: float,
                     groups: Sequence[VmGroup] = ()) -> Deferred[Result]:
        return succeed(Result(Outcome.NOT_APPLICABLE, "no VMs on this OS"))

    def shutdown_host(self, host: str, killpower: bool = False) -> Deferred[Result]:
        if killpower:
            if self.powerdown_flag is None:
                _log.warn("killpower requested but no powerdown_flag is configured: the UPS "
                          "will not be switched off")
            else:
                try:
                    write_flag(self.powerdown_flag)
                except OSError as exc:
                    _log.error("cannot write POWERDOWNFLAG {path}: {exc}",
                               path=self.powerdown_flag, exc=exc)
        return self.runner.run(self.shutdown_command, self.budget).addCallback(result_of)

    def warn_users(self, host: str, message: str) -> Deferred[Result]:
        """``wall upsagent: <message>``: two arguments, so that wall never takes the text
        for the name of a file to broadcast (it does that with a single argument)."""
        return self.runner.run((*self.wall_command, "upsagent:", message),
                               10.0).addCallback(result_of)
