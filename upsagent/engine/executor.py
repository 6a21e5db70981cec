# -*- test-case-name: tests.test_policy -*-
"""The thin Twisted shell around the policy engine: timers, backends, results.

An :class:`Executor` owns one :class:`~upsagent.policy.policy.PolicyEngine` and a reactor
(anything with ``IReactorTime``: the real reactor, or ``task.Clock`` in tests and in
``upsagent simulate``).  It

* feeds the monitors' events to the engine (:meth:`Executor.handle`);
* keeps one ``callLater`` at ``engine.next_deadline()`` and calls ``engine.tick`` there;
* starts every action the engine returns: operations on the host's backend (or the
  command runner, or the FSD setter), notifications on the notifier, warnings through the
  backend, cancels on the operation in flight;
* hands each operation's result back with ``engine.action_done``; a backend that raises
  or fails its Deferred is reported as ``failed``, a cancelled one as ``cancelled``;
* calls ``on_change(engine)`` after every batch, where the daemon saves
  ``engine.snapshot()``.

Actions that complete synchronously (the simulated backend, a dry run) are queued, not
recursed into, so the order of the log is the order of the decisions.

**Dry run** (``dry_run=True``): nothing is done.  Each action is logged as what would be
done and why, the timed steps waiting are logged with their times whenever they change,
and every operation is answered at once with success ("dry run: nothing done"), so the
log shows the whole sequence the real run would follow.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from upsagent.hypervisors.base import Backend
from upsagent.system.runner import Runner, result_of
from upsagent.policy.actions import (
    OPERATIONS, Action, Cancel, EnterMaintenance, ExitMaintenance, Notify, Outcome, Result,
    PowerOnVms, RunCommand, SetFsd, ShutdownHost, ShutdownVms, WarnUsers,
)
from upsagent.policy.events import Event, Placement
from upsagent.policy.policy import PolicyEngine
from upsagent.policy.rules import fmt

__all__ = ["Executor", "FsdSetter", "MonitorFsd", "Notifier", "Observer"]

_log = Logger(namespace="upsagent.policy")


class Notifier(Protocol):
    """Sends upsmon notifications (:class:`upsagent.agent.notify.Notifier` is one)."""

    def notify(self, ntype: str, system: str | None = None) -> Any: ...


class FsdSetter(Protocol):
    """Sets FSD on a UPS and waits for the secondaries (see :class:`MonitorFsd`)."""

    def set_fsd(self, ups: str, wait: float) -> Deferred[Result]: ...


#: observer(kind, action, result, now): kind is "start" or "done"
Observer = Callable[[str, Action, "Result | None", float], None]


class Executor:
    """Drives ``engine`` on ``reactor`` with ``backends`` (by host name)."""

    def __init__(self, engine: PolicyEngine, reactor: IReactorTime,
                 backends: Mapping[str, Backend], *, runner: Runner | None = None,
                 notifier: Notifier | None = None, fsd: FsdSetter | None = None,
                 dry_run: bool = False, observer: Observer | None = None,
                 on_change: Callable[[PolicyEngine], None] | None = None) -> None:
        self.engine = engine
        self.reactor = reactor
        self.backends = backends
        self.runner = runner
        self.notifier = notifier
        self.fsd = fsd
        self.dry_run = dry_run
        self.observer = observer
        self.on_change = on_change
        self._queue: deque[Action] = deque()
        self._busy = False
        self._timer: IDelayedCall | None = None
        self._inflight: dict[str, Deferred[Result]] = {}
        self._pending_logged: list[tuple[str, float]] = []
        self._stopped = False

    # -- inputs ----------------------------------------------------------------------

    def start(self) -> None:
        """Begin: the engine's due actions (after a restore, the resumed operations)."""
        self._feed(self.engine.tick(self.reactor.seconds()))

    def handle(self, event: Event | Placement) -> None:
        """A monitor's event, or the inventory's placement of the vCenter's and the
        agent's VMs."""
        if not self._stopped:
            self._feed(self.engine.handle(event, self.reactor.seconds()))

    def stop(self) -> None:
        """Stop timers; operations in flight are left to finish (their results ignored)."""
        self._stopped = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    # -- the loop --------------------------------------------------------------------

    def _feed(self, actions: list[Action]) -> None:
        self._queue.extend(actions)
        if self._busy:
            return
        self._busy = True
        try:
            while self._queue and not self._stopped:
                self._launch(self._queue.popleft())
        finally:
            self._busy = False
        if self._stopped:
            return
        self._reschedule()
        if self.dry_run:
            self._log_pending()
        if self.on_change is not None:
            self.on_change(self.engine)

    def _reschedule(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        deadline = self.engine.next_deadline()
        if deadline is not None:
            delay = max(deadline - self.reactor.seconds(), 0.0)
            self._timer = self.reactor.callLater(delay, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._feed(self.engine.tick(self.reactor.seconds()))

    def _launch(self, action: Action) -> None:
        now = self.reactor.seconds()
        if self.observer is not None:
            self.observer("start", action, None, now)
        if self.dry_run:
            _log.info("dry run: would {verb} on {host} now: {reason}", verb=action.verb,
                      host=action.host, reason=action.reason)
            if isinstance(action, OPERATIONS):
                self._finished(Result(Outcome.OK, "dry run: nothing done"), action)
            return
        _log.info("{host}: {verb}: {reason}", host=action.host, verb=action.verb,
                  reason=action.reason)
        if isinstance(action, Cancel):
            running = self._inflight.get(action.target)
            if running is not None:
                running.cancel()
            return
        if isinstance(action, Notify):
            self._notify(action)
            return
        if isinstance(action, WarnUsers):
            self._warn(action)
            return
        try:
            d = self._operation(action)
        except Exception as exc:
            _log.failure("{host}: {verb} raised", host=action.host, verb=action.verb)
            d = succeed(Result(Outcome.FAILED, f"{type(exc).__name__}: {exc}"))
        self._inflight[action.id] = d
        d.addBoth(self._finished, action)

    def _operation(self, action: Action) -> Deferred[Result]:
        if isinstance(action, RunCommand):
            if self.runner is None:
                return succeed(Result(Outcome.FAILED, "no command runner"))
            return self._command(action)
        if isinstance(action, SetFsd):
            if self.fsd is None:
                return succeed(Result(Outcome.FAILED, "no connection that can set FSD"))
            return self.fsd.set_fsd(action.ups, action.wait)
        backend = self.backends.get(action.host)
        if backend is None:
            return succeed(Result(Outcome.FAILED, f"no backend for host {action.host}"))
        if isinstance(action, EnterMaintenance):
            return backend.enter_maintenance(action.host, action.timeout)
        if isinstance(action, ExitMaintenance):
            return backend.exit_maintenance(action.host, action.timeout)
        if isinstance(action, ShutdownVms):
            if action.evacuate:
                return backend.evacuate(action.host, action.timeout)
            return backend.shutdown_vms(action.host, action.timeout, action.groups)
        if isinstance(action, ShutdownHost):
            return backend.shutdown_host(action.host, action.killpower)
        if isinstance(action, PowerOnVms):
            return backend.power_on_vms(action.host, action.vms, action.groups, action.timeout)
        raise TypeError(f"not an operation: {action!r}")

    def _command(self, action: RunCommand) -> Deferred[Result]:
        """The host's command: its result, or TIMED_OUT at the end of its budget, when the
        runner sends it SIGTERM.  The step lasts at most its budget, as the plan counts it:
        a command that ignores SIGTERM does not hold the sequence up, and the runner still
        kills it (SIGKILL after its grace period) and logs how it ended."""
        assert self.runner is not None
        running = self.runner.run(action.argv, action.budget)

        def going_on(_: object, timeout: float) -> Result:
            return Result(Outcome.TIMED_OUT, f"still running at the end of its "
                          f"{fmt(action.budget)} budget: SIGTERM sent, going on without it")
        running.addTimeout(action.budget, self.reactor, onTimeoutCancel=going_on)
        return running.addCallback(result_of)

    def _finished(self, outcome: Result | Failure, action: Action) -> None:
        self._inflight.pop(action.id, None)
        if isinstance(outcome, Failure):
            if isinstance(outcome.value, CancelledError):
                result = Result(Outcome.CANCELLED, "cancelled")
            else:
                _log.failure("{host}: {verb} failed", outcome, host=action.host,
                             verb=action.verb)
                result = Result(Outcome.FAILED, outcome.getErrorMessage())
        else:
            result = outcome
        if self._stopped:
            return
        now = self.reactor.seconds()
        if self.observer is not None:
            self.observer("done", action, result, now)
        if not self.dry_run:
            _log.info("{host}: {verb}: {outcome}: {detail}", host=action.host,
                      verb=action.verb, outcome=result.outcome.value, detail=result.detail)
        self._feed(self.engine.action_done(action.id, result, now))

    # -- messages --------------------------------------------------------------------

    def _notify(self, action: Notify) -> None:
        if self.notifier is None:
            _log.info("{type}: {message}", type=action.type, message=action.message)
            return
        try:
            d = self.notifier.notify(action.type, action.ups or None)
        except Exception:
            _log.failure("notification {type} failed", type=action.type)
            return
        if isinstance(d, Deferred):
            d.addErrback(lambda f: _log.failure("notification failed", f))

    def _warn(self, action: WarnUsers) -> None:
        backend = self.backends.get(action.host)
        if backend is None:
            return
        text = f"{action.message} ({action.reason})"
        backend.warn_users(action.host, text).addErrback(
            lambda f: _log.failure("{host}: warning the users failed", f, host=action.host))

    def _log_pending(self) -> None:
        pending = [(s.id, s.due) for s in self.engine.pending()]
        if pending == self._pending_logged:
            return
        self._pending_logged = pending
        now = self.reactor.seconds()
        for step in self.engine.pending():
            _log.info("dry run: {host} would {step} in {delay} ({reason})", host=step.host,
                      step=step.step, delay=fmt(step.due - now), reason=step.reason)


class MonitorFsd:
    """A :class:`FsdSetter` over the slave's monitors, as upsmon's primary does it.

    ``monitors`` maps a UPS (MONITOR system name) to an object with ``set_fsd()`` and
    ``numlogins()`` (:class:`upsagent.agent.monitor.UpsMonitor`).  After ``FSD <ups>`` it
    asks ``GET NUMLOGINS`` every 0.25 s until it is at most 1 (ourselves) or ``wait``
    seconds have passed; a failed NUMLOGINS counts as 0 logins, as in upsmon.
    """

    interval = 0.25

    def __init__(self, monitors: Mapping[str, Any], clock: IReactorTime) -> None:
        self.monitors = monitors
        self.clock = clock

    def set_fsd(self, ups: str, wait: float) -> Deferred[Result]:
        monitor = self.monitors.get(ups)
        if monitor is None:
            return succeed(Result(Outcome.FAILED, f"{ups} is not monitored"))
        start = self.clock.seconds()
        done: Deferred[Result] = Deferred()

        def poll(_: object = None) -> None:
            monitor.numlogins().addCallbacks(counted, lambda _: counted(0))

        def counted(logins: int) -> None:
            waited = self.clock.seconds() - start
            if logins <= 1:
                done.callback(Result(Outcome.OK, f"FSD set; secondaries gone after "
                                     f"{fmt(waited)}"))
            elif waited >= wait:
                done.callback(Result(Outcome.TIMED_OUT, f"FSD set; {logins - 1} secondaries "
                                     f"still logged in after HOSTSYNC {fmt(wait)}"))
            else:
                self.clock.callLater(self.interval, poll)

        def refused(failure: Failure) -> None:
            done.callback(Result(Outcome.FAILED, f"FSD refused: {failure.getErrorMessage()}"))

        monitor.set_fsd().addCallbacks(poll, refused)
        return done
