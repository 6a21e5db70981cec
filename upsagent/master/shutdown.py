# -*- test-case-name: tests.test_shutdown -*-
"""The primary's end of the sequence: the slave's policy engine, fed with the master's own UPSes.

This is what NUT's primary upsmon does (``clients/upsmon.c`` in NUT's source:
``is_ups_critical``, ``forceshutdown``, ``doshutdown``), done inside the master, which
already holds every fact it needs: the data, the FSD latches and the sessions.  It decides
nothing itself: the decisions are the policy engine's (:mod:`upsagent.policy`, rules R1-R10
in ``policy/rules.py``), the same engine and rules as the slave agent's, driven by the
agent's :class:`~upsagent.engine.executor.Executor`.  This module is the shell around it:

* :func:`master_plan` builds the engine's plan from ``[master.shutdown]``
  (:class:`~upsagent.config.schema.ShutdownConfig`) with the policy's own constructor,
  :func:`~upsagent.policy.plan.upsmon_plan`: this host (``localhost``, local backend),
  powered by the UPSes of ``ups`` (default all), each a ``primary`` supply of power value 1;
  ``minsupplies`` is its MINSUPPLIES, ``finaldelay`` its FINALDELAY, ``deadtime`` and
  ``hostsync`` upsmon's.  Every served UPS is marked as one whose FSD latch this agent
  holds (R2e), with ``on_battery_for`` as its time limit on battery (R2d).  A UPS that
  does not power this host is a ``secondary`` of the plan: this host's shutdown neither
  sets FSD on it nor waits for its sessions.
* :class:`ShutdownService` feeds the engine each UPS's status as served (``ups.status``,
  with ``FSD`` while its latch is set) whenever it changes and every second (a latch set by
  a client is seen within a second), ``CommLost`` when its data becomes unavailable (stale,
  driver gone), and nothing for a UPS never seen.
* :class:`SlotFsd` carries out the engine's ``SetFsd``: it sets the slot's latch (watchers
  hear it pushed) and, for this host's shutdown, waits until every session logged into
  that UPS (LOGIN) has gone, or ``hostsync`` seconds.  The master has no session of its own,
  so it waits for none to be left.  Our slaves keep their session until their own
  shutdown reached its last stage, so "gone" means "done"; NUT's upsmon drops its session
  when it runs SHUTDOWNCMD.  When the wait runs out, the log names every session still
  there by address, UPS and user.
* The power-down flag (``master.powerdown_flag``, NUT's content, system/powerdown.py) is
  written when the engine announces the host's shutdown (its SHUTDOWN notification, after
  the wait), so that ``upsagent killpower`` switches the UPS output off at the very end of
  the OS shutdown, and a shutdown started by anything else during FINALDELAY does too.
* The engine's ``ShutdownHost`` runs ``shutdown_command`` (an argv list, never a shell
  string) through a :class:`~upsagent.hypervisors.local.LocalBackend` whose runner is the
  master's process runner, with a budget of :data:`COMMAND_BUDGET` seconds.

What that gives, by the engine's rules: a UPS is critical when FSD is set (by a client, by
us, or in its own status), when it is OB+LB (not during CAL), with ``on_battery_for`` when
it has been on battery that long without a break, or when its data has been unavailable
for ``deadtime`` seconds while last seen on battery (R2).  A critical UPS gets its FSD latch
set at once (R2e).  When fewer of this host's UPSes than ``minsupplies`` are not critical
(R1, R4a), the host's shutdown begins (R6): FSD on each of its UPSes and the wait
(HOSTSYNC), SHUTDOWN (the flag), FINALDELAY, the shutdown command.  Nothing undoes it once
begun, as in NUT (R7: upsmon's plan goes through with FINALDELAY; the latch stays and the
UPS's ``shutdown.return`` brings everything back when mains returns); new settings are
refused from then on.  A failed shutdown command (or one the engine stops waiting for) is
logged as critical and run again, 10 s later, the wait doubling up to 60 s, until it works
(R6); the flag stays, so a manual shutdown still powers off.  ``dry_run`` makes the same decisions at the same times
and logs "would set FSD", "would write", "would run" instead of acting (no FSD means the
slaves stay, so the wait lasts ``hostsync``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Sequence, Union

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from upsagent.engine.executor import Executor
from upsagent.config.schema import ShutdownConfig
from upsagent.hypervisors.local import LocalBackend
from upsagent.model import Availability, Change
from upsagent.nut.state import ServerState, Slot
from upsagent.policy import actions
from upsagent.policy.events import CommLost, Event, UpsState
from upsagent.policy.plan import Plan, UpsPlan, upsmon_plan
from upsagent.policy.policy import PolicyEngine
from upsagent.policy.rules import Phase, fmt
from upsagent.system.runner import Outcome, Result, Runner

__all__ = ["COMMAND_BUDGET", "HOST", "Note", "RunCommand", "Runner", "SetFsd",
           "ShutdownService", "SlotFsd", "WriteFlag", "master_plan"]

#: seconds the shutdown command may run before the runner stops it
COMMAND_BUDGET = 120.0
#: how often the shell feeds the latches (a client's FSD is not observed otherwise), and
#: how often it counts the sessions while waiting for them to go (upsmon: every 0.25 s)
WATCH_INTERVAL = 1.0
SYNC_INTERVAL = 0.25
#: this host, in the plan and in the engine's log lines
HOST = "localhost"


# -- what the shell did (ShutdownService.history) ---------------------------------------

@dataclass(frozen=True)
class SetFsd:
    ups: str
    reason: str


@dataclass(frozen=True)
class WriteFlag:
    path: str


@dataclass(frozen=True)
class RunCommand:
    argv: tuple[str, ...]


@dataclass(frozen=True)
class Note:
    """A log line: ``level`` is ``info``, ``warn`` or ``critical``."""

    level: str
    text: str


Act = Union[SetFsd, WriteFlag, RunCommand, Note]


def master_plan(config: ShutdownConfig, served: Sequence[str], host: Sequence[str]) -> Plan:
    """The engine's plan for ``[master.shutdown]``: upsmon's primary on the UPSes in
    ``host`` (those powering this host), every UPS in ``served`` held by us (R2d, R2e)."""
    plan = upsmon_plan([(name, 1, "primary") for name in host],
                       min_supplies=config.minsupplies, final_delay=config.finaldelay,
                       deadtime=config.deadtime, hostsync=config.hostsync, name=HOST)
    limit = None if config.on_battery_for is None else float(config.on_battery_for)
    others = [UpsPlan(name, "secondary") for name in served if name not in host]
    return replace(plan, ups=tuple(replace(ups, on_battery_limit=limit, holds_latch=True)
                                   for ups in (*plan.ups, *others)))


class ShutdownService:
    """The Twisted shell: feeds the policy engine from the server state; sets latches,
    writes the flag, runs the command, logs."""

    log = Logger()

    def __init__(self, state: ServerState, config: ShutdownConfig,
                 powerdown_flag: str | None, reactor: Any, runner: Runner) -> None:
        self.state = state
        self.reactor = reactor
        self.runner = runner
        self.config = config
        self.powerdown_flag = powerdown_flag
        #: everything done (or, in a dry run, logged): (reactor time, what)
        self.history: list[tuple[float, Act]] = []
        #: the shutdown command's result once it ended
        self.result: Any = None
        #: the shutdown command running now, and the runs waiting for it to end
        self._command: Deferred[Any] | None = None
        self._waiting: list[Callable[[Any], None]] = []
        self.plan = self._plan()
        self.engine = PolicyEngine(self.plan, reactor.seconds())
        self.executor = self._executor()
        self._observed: dict[Slot, Callable[[Change], None]] = {}
        #: what the engine was last told of each UPS: its status (None: contact lost)
        self._fed: dict[str, frozenset[str] | None] = {}
        #: the engine's reason for each FSD about to be set
        self._why: dict[str, str] = {}
        self._dry_fsd: set[str] = set()
        self._announced = False
        self._poll = LoopingCall(self.check)
        self._poll.clock = reactor
        self._checking = self._again = False

    @property
    def phase(self) -> Phase:
        """Where this host is in the engine's sequence."""
        return self.engine.phase(HOST)

    @property
    def begun(self) -> bool:
        """Whether the host's shutdown has begun (nothing undoes it)."""
        return self.phase is not Phase.IDLE

    def start(self) -> None:
        """Observe every served UPS and evaluate now."""
        self.slots_changed()
        mode = " (dry run: nothing will be done, only logged)" if self.config.dry_run else ""
        self.log.info("Shutdown sequence armed for {ups}{mode}", mode=mode, ups=", ".join(
            s.ups for s in self.plan.host(HOST).powered_by))
        self.executor.start()
        self.check()
        self._poll.start(WATCH_INTERVAL, now=False)

    def stop(self) -> None:
        """Stop observing and evaluating (a command already started keeps running)."""
        for slot, observer in self._observed.items():
            slot.ups.remove_observer(observer)
        self._observed.clear()
        if self._poll.running:
            self._poll.stop()
        self.executor.stop()

    def reconfigure(self, config: ShutdownConfig, powerdown_flag: str | None) -> None:
        """New settings, or new served UPSes; refused once the host's shutdown has begun."""
        if self.begun:
            self.log.warn("Shutdown settings reloaded but not applied: the host's shutdown "
                          "has already begun")
        else:
            self.config, self.powerdown_flag = config, powerdown_flag
            plan = self._plan()
            if plan != self.plan:   # the same process, a new plan: what it knows carries over
                self.executor.stop()
                self.plan = plan
                self.engine = PolicyEngine.restore(plan, self.engine.snapshot(),
                                                   self.reactor.seconds(), reload=True)
                self.executor = self._executor()
                self.executor.start()
        self.slots_changed()
        self.check()

    def slots_changed(self) -> None:
        """Follow the served UPSes (after a reload added or removed some)."""
        slots = set(self.state.slots)
        for slot in [s for s in self._observed if s not in slots]:
            slot.ups.remove_observer(self._observed.pop(slot))
            self._fed.pop(slot.name, None)
        for slot in slots - set(self._observed):
            observer = self._changed
            slot.ups.add_observer(observer)
            self._observed[slot] = observer

    def _changed(self, change: Change) -> None:
        self.check()

    def _plan(self) -> Plan:
        wanted = [self.state.find(name) for name in self.config.ups]
        served = [slot.name for slot in self.state.slots]
        host = [slot.name for slot in self.state.slots if not wanted or slot in wanted]
        return master_plan(self.config, served, host)

    def _executor(self) -> Executor:
        backend = _ThisHost(_Command(self), HOST, self.config.shutdown_command,
                            COMMAND_BUDGET)
        return Executor(self.engine, self.reactor, {HOST: backend}, fsd=SlotFsd(self),
                        observer=self._observe, on_change=self._engine_changed)

    # -- feeding the engine --------------------------------------------------------------

    def check(self) -> None:
        """Tell the engine what changed in the served UPSes since it was last told."""
        if self._checking:
            self._again = True
            return
        self._checking = True
        try:
            self._again = True
            while self._again:
                self._again = False
                for slot in list(self.state.slots):
                    for event in self._events(slot):
                        self.executor.handle(event)
        finally:
            self._checking = False

    def _events(self, slot: Slot) -> list[Event]:
        name, ups = slot.name, slot.ups
        status: frozenset[str] | None = None
        if ups.availability is Availability.OK:
            status = frozenset(ups.status) | ({"FSD"} if slot.fsd else set())
        elif slot.fsd:
            status = frozenset({"FSD"})   # the latch is known whatever the data says
        last = self._fed.get(name)
        if status == last or (status is None and name not in self._fed):
            return []                     # nothing new; or never seen, so never critical
        self._fed[name] = status
        if status is not None:
            return [UpsState(name, status)]
        assert last is not None           # available until now: last seen now (DEADTIME)
        return [UpsState(name, last), CommLost(name, ups.reason or ups.availability.value)]

    def _observe(self, kind: str, action: actions.Action, result: Result | None,
                 now: float) -> None:
        if kind != "start":
            return
        if isinstance(action, actions.SetFsd):
            self._why[action.ups] = action.reason
            if not action.wait:                   # R2e
                self._note("warn", f"UPS {action.ups} is critical: {action.reason}")
            elif not self._announced:           # the first FSD of this host's shutdown
                self._announced = True
                self._note("critical", f"Host shutdown begins: {action.reason}")
        elif isinstance(action, actions.Notify) and action.type == "SHUTDOWN":
            self._write_flag()

    def _engine_changed(self, engine: PolicyEngine) -> None:
        if self.phase in (Phase.STOPPING, Phase.DOWN) and self._poll.running:
            self._poll.stop()             # the command has started: nothing more to feed

    # -- acting --------------------------------------------------------------------------

    def _note(self, level: str, text: str) -> None:
        self.history.append((self.reactor.seconds(), Note(level, text)))
        {"info": self.log.info, "warn": self.log.warn}.get(level, self.log.critical)(
            "{text}", text=text)

    def _did(self, what: Act) -> None:
        self.history.append((self.reactor.seconds(), what))

    def latch(self, slot: Slot) -> None:
        """Set FSD on ``slot`` for the engine (in a dry run, log it once)."""
        why = self._why.pop(slot.name, "")
        if self.config.dry_run:
            if slot.name not in self._dry_fsd:
                self._dry_fsd.add(slot.name)
                self._did(SetFsd(slot.name, why))
                self.log.warn("Dry run: would set FSD on UPS [{ups}] ({why})", ups=slot.name,
                              why=why)
        elif slot.set_fsd():
            self._did(SetFsd(slot.name, why))
            self.log.warn("Set FSD on UPS [{ups}]: {why}", ups=slot.name, why=why)

    def _write_flag(self) -> None:
        path = self.powerdown_flag
        if path is None:
            self._note("warn", "No powerdown_flag is configured: the UPS output will not be "
                               "switched off")
            return
        self._did(WriteFlag(path))
        if self.config.dry_run:
            self.log.warn("Dry run: would write the power-down flag {path}", path=path)
            return
        from upsagent.system.powerdown import write_flag

        try:
            write_flag(path)
        except OSError as exc:
            self.log.critical("Cannot write the power-down flag {path}: {err}; the UPS "
                              "output will not be switched off", path=path,
                              err=exc.strerror or exc)
        else:
            self.log.warn("Power-down flag {path} written", path=path)

    def run_command(self, argv: list[str], budget: float | None) -> Deferred[Any]:
        """Run the shutdown command; the Deferred fires with its result when it ends.
        Cancelling the Deferred (the engine giving up waiting) leaves the command its
        whole budget.  One at a time: asked again (the engine's retry, R6) while the
        last one still runs, it waits for it, and runs again only when that one failed."""
        if self._command is not None:
            self.log.warn("The shutdown command is still running: running it again waits "
                          "until it has ended")
            again: Deferred[Any] = Deferred()

            def after(result: Any) -> None:
                if again.called:
                    return
                if getattr(result, "ok", False):
                    again.callback(result)
                else:
                    self.run_command(argv, budget).chainDeferred(again)
            self._waiting.append(after)
            return again
        self._did(RunCommand(tuple(argv)))
        if self.config.dry_run:
            self.log.warn("Dry run: would run the shutdown command {argv}", argv=argv)
            return succeed(Result(Outcome.OK, "dry run: nothing done"))
        self.log.critical("Running the shutdown command {argv}", argv=argv)
        try:
            running = self.runner.run(argv, budget)
        except Exception as exc:  # a bad argv or a runner bug must be loud, not silent
            self.log.failure("The shutdown command {argv} could not be started", argv=argv)
            self.result = exc
            return succeed(Result(Outcome.FAILED, f"not started: {exc}"))
        ended: Deferred[Any] = Deferred()
        self._command = running

        def done(result: Any) -> None:
            self._ended(result)
            self.result = result
            summary = getattr(result, "summary", result)
            if getattr(result, "ok", False):
                self.log.info("Shutdown command {argv} finished: {summary}", argv=argv,
                              summary=summary)
            else:
                self.log.critical("Shutdown command {argv} failed: {summary}; it is run "
                                  "again (the power-down flag stays)",
                                  argv=argv, summary=summary)
            if not ended.called:
                ended.callback(result)

        def failed(reason: Failure) -> None:
            self._ended(Result(Outcome.FAILED, reason.getErrorMessage()))
            self.result = reason
            self.log.failure("Shutdown command {argv} failed", reason, argv=argv)
            if not ended.called:
                ended.callback(Result(Outcome.FAILED, reason.getErrorMessage()))

        running.addCallbacks(done, failed)
        return ended

    def _ended(self, result: Any) -> None:
        """The running command has ended: the runs waiting for it go on."""
        self._command = None
        waiting, self._waiting = self._waiting, []
        for after in waiting:
            after(result)


class SlotFsd:
    """The engine's FSD setter (:class:`~upsagent.engine.executor.FsdSetter`) over the
    master's own slots: set the latch, then, with a ``wait``, count the sessions logged into
    the UPS every :data:`SYNC_INTERVAL` s until none is left or ``wait`` s have passed (the
    slave's :class:`~upsagent.engine.executor.MonitorFsd` asks NUMLOGINS instead)."""

    def __init__(self, service: ShutdownService) -> None:
        self.service = service

    def set_fsd(self, ups: str, wait: float) -> Deferred[Result]:
        service, clock = self.service, self.service.reactor
        slot = service.state.find(ups)
        if slot is None:
            return succeed(Result(Outcome.FAILED, f"{ups} is not served"))
        service.latch(slot)
        fsd = "dry run: FSD not set" if service.config.dry_run else "FSD set"
        if not wait:
            return succeed(Result(Outcome.OK, fsd))
        start = clock.seconds()
        done: Deferred[Result] = Deferred()

        def count() -> None:
            now = clock.seconds()
            left = [s for s in service.state.sessions if s.login_slot is slot]
            if not left:
                service._note("info", f"No session is logged into {ups} (waited "
                                      f"{now - start:.2f} s)")
                done.callback(Result(Outcome.OK, f"{fsd}; no session left after "
                                                 f"{fmt(now - start)}"))
            elif now >= start + wait:
                who = ", ".join(f"{s.address} (UPS {ups}, user {s.username})" for s in left)
                service._note("warn", f"HOSTSYNC ({wait:g} s) ran out; still connected: "
                                      f"{who}")
                done.callback(Result(Outcome.TIMED_OUT, f"{fsd}; {len(left)} sessions "
                                                        f"still logged in"))
            else:
                clock.callLater(min(SYNC_INTERVAL, start + wait - now), count)

        count()
        return done


class _Command:
    """The runner the local backend is given: the master's, through
    :meth:`ShutdownService.run_command` (its log lines, its dry run)."""

    def __init__(self, service: ShutdownService) -> None:
        self.service = service

    def run(self, argv: Sequence[str], budget: float | None, *,
            env: Mapping[str, str] | None = None, name: str = "") -> Deferred[Any]:
        return self.service.run_command(list(argv), budget)


class _ThisHost(LocalBackend):
    """This host, as the engine's backend.  The power-down flag the engine asks for
    (``killpower``) was written when it announced the shutdown, FINALDELAY earlier."""

    def shutdown_host(self, host: str, killpower: bool = False) -> Deferred[Result]:
        return super().shutdown_host(host, killpower=False)


def default_runner(reactor: Any) -> Runner:
    """The agent's process runner (own session, budget, TERM then KILL, bounded output)."""
    from upsagent.system.runprocess import ProcessRunner

    runner: Runner = ProcessRunner(reactor)
    return runner
