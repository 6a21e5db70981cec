# -*- test-case-name: tests.test_notify -*-
"""The shell that sends upsmon's notifications as :func:`upsagent.config.notify.plan` says.

upsmon forks and does not wait for ``wall`` or NOTIFYCMD; we run them through an injected
:class:`~upsagent.system.runner.Runner` with a time budget each, and a failure is logged,
never raised: a broken notifier must not get in the way of a shutdown.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, DeferredList
from twisted.logger import Logger
from twisted.python.failure import Failure

from upsagent.config.notify import LogNotice, NotifySettings, plan
from upsagent.system.runner import Runner

__all__ = ["Notifier"]


class Notifier:
    """Send notifications as :func:`plan` says, through ``runner``.

    ``budget`` is each command's time limit (upsmon has none: it forks and forgets).
    """

    log = Logger(namespace="upsagent.notify")

    def __init__(self, settings: NotifySettings, runner: Runner, *,
                 budget: float = 60.0) -> None:
        self.settings = settings
        self.runner = runner
        self.budget = budget

    def notify(self, ntype: str, system: str | None = None) -> Deferred[None]:
        """Send one notification; fires once every command has finished (never fails)."""
        waits: list[Deferred[Any]] = []
        for action in plan(self.settings, ntype, system):
            if isinstance(action, LogNotice):
                self.log.info("{message}", message=action.message, notify_type=action.ntype,
                              syslog_priority=5)
                continue
            try:
                started = self.runner.run(action.argv, self.budget, env=dict(action.env),
                                          name=f"{action.what.lower()} {ntype}")
            except Exception:
                self.log.failure("{what} for {notify_type} could not start",
                                 what=action.what, notify_type=ntype)
                continue
            started.addErrback(self._failed, action.what, ntype)
            waits.append(started)
        done: Deferred[Any] = DeferredList(waits, consumeErrors=True)
        return done.addCallback(lambda _: None)

    def _failed(self, failure: Failure, what: str, ntype: str) -> None:
        self.log.failure("{what} for {notify_type} failed", failure, what=what,
                         notify_type=ntype)
