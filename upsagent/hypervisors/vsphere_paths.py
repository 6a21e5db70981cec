# -*- test-case-name: tests.test_vsphere_esxi -*-
"""Which way a ``vsphere`` step goes: through vCenter, through a host's direct ESXi session
(``[host.esxi]``, :mod:`upsagent.hypervisors.esxi`), or through vCenter again after a pause.

:class:`StepPaths` is the part of :class:`~upsagent.hypervisors.vsphere.VsphereBackend`
that decides it (the backend's module says when each way is taken) and that logs in,
checks and keeps alive the direct sessions.  It is Twisted code: every blocking call goes
through the backend's watched ``_run``; the pauses between attempts are ``callLater`` on
the backend's reactor, so a ``Clock`` drives them in tests and cancelling the step's
Deferred stops them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from upsagent.hypervisors.esxi import (
    EsxiClient, WrongEndpoint, lockdown_of, vcenter_uuid)
from upsagent.hypervisors.vsphere_client import FREE_ESXI_HINT, VsphereClient, _fault
from upsagent.system.runner import Outcome, Result

if TYPE_CHECKING:
    from upsagent.config.managers import VcenterConfig

__all__ = ["RETRY_FIRST", "RETRY_MAX", "StepPaths", "Work", "no_drs"]

_log = Logger(namespace="upsagent.vsphere")

#: first wait before trying an unreachable vCenter again, and the longest one
RETRY_FIRST = 2.0
RETRY_MAX = 15.0

#: a step's blocking work: (cancel, seconds left of the step) -> its result
Work = Callable[[threading.Event, float], Result]


class StepPaths:
    """The direct sessions and the paths of the VMs' and host shutdowns (a mixin of
    :class:`~upsagent.hypervisors.vsphere.VsphereBackend`, which sets the attributes)."""

    reactor: Any
    client: VsphereClient
    config: VcenterConfig
    #: host -> its direct ESXi session
    direct: dict[str, EsxiClient]
    _marked: set[str]
    _agent_marked: set[str]
    _detected: set[str]
    _detected_agent: set[str]

    def _run(self, what: str, limit: float, work: Callable[[threading.Event], Result],
             label: str | None = None) -> Deferred[Result]:
        raise NotImplementedError   # the backend's

    def _connect_direct(self, host: str) -> Deferred[Result]:
        """Log in to ``host``'s direct session, its identity checked against the UUID
        vCenter gives it when vCenter answers (:mod:`~upsagent.hypervisors.esxi`)."""
        session = self.direct[host]

        def work(_: threading.Event) -> Result:
            self._expect(host)
            about = session.connect()
            free = session.free_esxi()
            if free is not None:
                return Result(Outcome.FAILED, f"direct ESXi session to {host} is {free}: "
                              f"{FREE_ESXI_HINT}")
            return Result(Outcome.OK, f"direct ESXi session to {host}: {about}")

        def logged(result: Result) -> Result:
            if result.ok:
                _log.info("vcenter {name}: {detail}", name=self.config.name,
                          detail=result.detail)
            else:
                _log.error("vcenter {name}: direct ESXi session to {host}: {detail}",
                           name=self.config.name, host=host, detail=result.detail)
            return result
        return self._run(f"log in to {host} directly", 60.0, work,
                         f"ESXi host {host}").addCallback(logged)

    def _expect(self, host: str) -> None:
        """(Blocking.)  Give ``host``'s direct session the UUID vCenter gives the host,
        when vCenter answers."""
        try:
            self.direct[host].expect(vcenter_uuid(self.client, host))
        except WrongEndpoint:
            raise
        except Exception as exc:  # noqa: BLE001 - vCenter away: the name is checked
            _log.info("vcenter {name}: the hardware UUID of {host} not read: {exc}",
                      name=self.config.name, host=host, exc=_fault(exc))

    def _check_direct(self, host: str) -> list[str]:
        """(Blocking.)  ``check`` of ``host``'s direct session: it logs in, is a host
        agent, is that host, and allows the steps (not free ESXi, the privileges)."""
        session = self.direct[host]
        where = f"host {host}: direct ESXi session ({session.config.url})"
        try:
            self._expect(host)
        except WrongEndpoint as exc:
            return [f"{where}: {exc}"]
        lines = session.check([host])
        if lines and lines[0].startswith("cannot log in"):
            try:
                mode = lockdown_of(self.client, host)
            except Exception:  # noqa: BLE001 - vCenter cannot tell
                mode = None
            hint = (f"; vCenter shows the host in lockdown mode ({mode}): only its "
                    f"exception users may log in directly, add {session.config.user} to them"
                    if mode else "; in lockdown mode only the host's exception users may "
                    "log in directly")
            lines[0] += hint
        return [f"{where}: {line}" for line in lines]

    def _keep_direct(self, host: str, session: EsxiClient) -> None:
        def work(_: threading.Event) -> Result:
            self._expect(host)
            session.keep_alive()
            return Result(Outcome.OK, "alive")

        def logged(result: Result) -> None:
            if not result.ok:
                _log.warn("vcenter {name}: direct ESXi session to {host}: keep-alive: "
                          "{detail}", name=self.config.name, host=host, detail=result.detail)
        self._run(f"keep {host}'s direct session alive", 60.0, work,
                  f"ESXi host {host}").addCallback(logged)

    def runs_vcenter(self, host: str) -> bool:
        """``host`` runs the vCenter VM: its mark, or the inventory's detection."""
        return host in self._marked or host in self._detected

    def runs_agent(self, host: str) -> bool:
        """``host`` runs the agent's own VM: its mark, or the inventory's detection."""
        return host in self._agent_marked or host in self._detected_agent

    def _step(self, host: str, what: str, limit: float, vcenter: Work,
              direct: Work) -> Deferred[Result]:
        """A VMs' or host shutdown: through the direct session first for the vCenter's
        host and the agent's VM's host, else through vCenter, falling back to the direct session (or retrying)
        when vCenter is unreachable; within ``limit`` seconds in all."""
        end = self.reactor.seconds() + limit
        if host in self.direct and (self.runs_vcenter(host) or self.runs_agent(host)):
            why = "runs the vCenter VM" if self.runs_vcenter(host) else "runs the agent's VM"
            return _chain(self._direct(host, what, end, direct, why),
                          lambda first: self._vcenter(host, what, end, vcenter, first))
        return self._vcenter(host, what, end, vcenter, None, direct)

    def _direct(self, host: str, what: str, end: float, work: Work,
                why: str) -> Deferred[Result | None]:
        """``work`` through ``host``'s direct session; None (with a log line) when the
        session does not answer or is not that host's: the caller goes on through vCenter."""
        refused: list[str] = []

        def run(cancel: threading.Event) -> Result:
            try:
                return work(cancel, max(end - self.reactor.seconds(), 1.0))
            except WrongEndpoint as exc:
                refused.append(str(exc))
                return Result(Outcome.FAILED, str(exc))

        def path(result: Result) -> Result | None:
            if result.outcome is Outcome.UNREACHABLE or refused:
                _log.warn("{what}: the direct ESXi session cannot be used ({detail}): "
                          "through vcenter {name}", what=what, detail=result.detail,
                          name=self.config.name)
                return None
            return _say(result, f"through the direct ESXi session ({why})")
        d: Deferred[Result | None] = self._run(
            what, max(end - self.reactor.seconds(), 1.0), run, f"ESXi host {host}"
        ).addCallback(path)
        return d

    def _vcenter(self, host: str, what: str, end: float, work: Work,
                 done: Result | None, direct: Work | None = None) -> Deferred[Result]:
        """``work`` through vCenter (unless ``done``); unreachable: the direct session
        when there is one, else tried again with a growing pause while time is left."""
        if done is not None:
            return succeed(done)
        start = self.reactor.seconds()
        outer: Deferred[Result] = Deferred(lambda _: current[0].cancel())
        current: list[Deferred[Any]] = []
        attempts = [0]
        tried: list[str] = []       # the direct session was tried (once)

        def attempt() -> None:
            attempts[0] += 1
            left = max(end - self.reactor.seconds(), 1.0)
            d = self._run(what, left, lambda cancel: work(cancel, left))
            current[:] = [d]      # before judge, which may replace it (an inline seam)
            d.addCallback(judge).addErrback(_cancelled)

        def judge(result: Result) -> None:
            if outer.called:
                return
            if result.outcome is not Outcome.UNREACHABLE:
                back = (f"vcenter answering again after {attempts[0]} attempts"
                        if attempts[0] > 1 else "")
                # the path is said where there is a choice of paths, or a retry
                path = "through " + (back or "vcenter") if self.direct else back
                outer.callback(_say(result, path) if path else result)
                return
            if direct is not None and host in self.direct and not tried:
                tried.append(result.detail)
                fallback = self._direct(host, what, end, direct,
                                        f"vcenter {self.config.name} unreachable: "
                                        f"{result.detail}")
                current[:] = [fallback]

                def landed(through: Result | None) -> None:
                    if outer.called:
                        return
                    if through is not None:
                        outer.callback(through)
                    else:                  # neither answers: vCenter may come back
                        again(result)
                fallback.addCallback(landed).addErrback(_cancelled)
                return
            again(result)

        def again(result: Result) -> None:
            pause = min(RETRY_FIRST * 2 ** (attempts[0] - 1), RETRY_MAX)
            now = self.reactor.seconds()
            if now + pause >= end:
                outer.callback(_unreachable(result, attempts[0], now - start, bool(tried)))
                return
            _log.warn("{what}: {detail}; trying again in {pause:g} s", what=what,
                      detail=result.detail, pause=pause)
            current[:] = [deferLater(self.reactor, pause, attempt).addErrback(_cancelled)]
        attempt()
        return outer


def _chain(d: Deferred[Result | None],
           then: Callable[[Result | None], Deferred[Result]]) -> Deferred[Result]:
    """``then(d's result)``, as one Deferred; cancelling it cancels the one running."""
    current: list[Deferred[Any]] = [d]
    out: Deferred[Result] = Deferred(lambda _: current[0].cancel())

    def relay(result: Result) -> None:
        if not out.called:
            out.callback(result)

    def next_(first: Result | None) -> None:
        if not out.called:
            second = then(first)
            current[0] = second
            second.addCallback(relay).addErrback(_cancelled)
    d.addCallback(next_).addErrback(_cancelled)
    return out


def _cancelled(failure: Failure) -> Failure | None:
    """The step was cancelled: its outer Deferred has failed with CancelledError."""
    return None if isinstance(failure.value, CancelledError) else failure


def _say(result: Result, path: str) -> Result:
    """``result`` with the path it took at the end of its detail."""
    return replace(result, detail=f"{result.detail} ({path})" if result.detail else path)


def _unreachable(last: Result, attempts: int, seconds: float, direct: bool) -> Result:
    either = "; nor the direct ESXi session" if direct else ""
    return Result(Outcome.UNREACHABLE,
                  f"unreachable: {attempts} attempt{'s' if attempts != 1 else ''} in "
                  f"{seconds:.0f} s found no vCenter ({last.detail}){either}")


def no_drs(result: Result) -> Result:
    """A maintenance step that found vCenter unreachable, on a host with a direct session:
    its result says why maintenance is not done through that session."""
    if result.outcome is not Outcome.UNREACHABLE:
        return result
    return _say(result, "no maintenance without vCenter: no DRS to move the VMs; the "
                        "shutdown step stops them through the direct ESXi session")
