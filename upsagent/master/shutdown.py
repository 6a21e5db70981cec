# -*- test-case-name: tests.test_shutdown -*-
"""The primary's end of the sequence: FSD, wait for the others, flag, shut this host down.

This is what NUT's primary upsmon does (``clients/upsmon.c`` in NUT's source: ``is_ups_critical``,
``forceshutdown``, ``doshutdown``), done inside
the master, which already holds every fact it needs: the data, the FSD latches and the
sessions.  :class:`ShutdownCore` decides (pure: time, UPS views and sessions in, actions
out); :class:`ShutdownService` is the thin Twisted shell that feeds it and carries the
actions out.  Settings: ``[master.shutdown]`` (:class:`~upsagent.config.schema.ShutdownConfig`)
and ``master.powerdown_flag``.

**Critical** (per served UPS, re-evaluated at every change and every second):

* its FSD latch is set (by a client or by us), or its own status says ``FSD``;
* ``OB`` and ``LB``, not during ``CAL`` (NUT's rule; ``LB`` may come from the master's own
  thresholds, master/lowbatt.py);
* with ``on_battery_for``: ``OB`` for that many seconds without a break (PowerAct Pro's
  "wait time"); power back before that resets the count;
* its data has been unavailable (stale, driver gone) for ``deadtime`` seconds while it was
  last seen ``OB`` (upsmon's DEADTIME); a UPS last seen on line, or never seen, is not.

**Sequence**:

1. A UPS that becomes critical gets its FSD latch set at once (its slaves, NUT's upsmon and
   ours, start shutting down; watchers hear it pushed).
2. When fewer of the UPSes that power this host (``ups``, default all) than ``minsupplies``
   are not critical, the host's shutdown begins: FSD on each of those UPSes, then wait until
   every session logged into them has gone, or ``hostsync`` seconds.  Our slaves keep their
   session until their own shutdown reached its last stage, so "gone" means "done"; NUT's
   upsmon drops its session when it runs SHUTDOWNCMD.  When the wait runs out, the log names
   every session still there by address, UPS and user.
3. The power-down flag is written (NUT's content, master/powerdown.py) so that
   ``upsagent killpower`` switches the UPS output off at the very end of the OS shutdown.
4. ``finaldelay`` seconds later the shutdown command runs (an argv list, never a shell
   string) through the process runner, with a budget of :data:`COMMAND_BUDGET` seconds.

Once the host's shutdown has begun nothing undoes it, as in NUT: the latch stays, and the
UPS's ``shutdown.return`` brings everything back when mains returns.  A failed shutdown
command is logged as critical; the flag stays, so a manual shutdown still powers off.
``dry_run`` runs the same decisions and logs "would set FSD", "would write", "would run"
instead of acting (no FSD means the slaves stay, so the wait lasts ``hostsync``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Sequence, Union

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from upsagent.config.schema import ShutdownConfig
from upsagent.model import Availability, Change
from upsagent.nut.state import ServerState, Slot
from upsagent.system.runner import Runner

__all__ = ["COMMAND_BUDGET", "Client", "Note", "Phase", "RunCommand", "Runner", "SetFsd",
           "ShutdownCore", "ShutdownService", "UpsView", "WriteFlag"]

#: seconds the shutdown command may run before the runner stops it
COMMAND_BUDGET = 120.0
#: how often the shell re-evaluates while watching (FSD latches set by clients) and while
#: waiting for sessions to go (upsmon polls NUMLOGINS every 0.25 s)
WATCH_INTERVAL = 1.0
SYNC_INTERVAL = 0.25


class Phase(enum.Enum):
    WATCHING = "watching"
    SYNCING = "waiting for the other sessions to go"
    FINAL = "final delay"
    DONE = "shutdown command started"


@dataclass(frozen=True)
class UpsView:
    """What the core needs of one served UPS."""

    name: str
    #: ``ups.status`` while the data is available, else None
    status: str | None
    #: the server's FSD latch
    fsd: bool = False
    #: one of the UPSes that power this host
    powers_host: bool = True


@dataclass(frozen=True)
class Client:
    """A session logged into a UPS (LOGIN)."""

    address: str
    ups: str
    user: str | None = None


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


Action = Union[SetFsd, WriteFlag, RunCommand, Note]


class ShutdownCore:
    """The decisions, without I/O: call :meth:`update` at every change and by
    :meth:`deadline` at the latest."""

    def __init__(self, config: ShutdownConfig, powerdown_flag: str | None) -> None:
        self.config = config
        self.powerdown_flag = powerdown_flag
        self.phase = Phase.WATCHING
        #: name -> why it is critical, as of the last update
        self.critical: dict[str, str] = {}
        self._fsd_asked: set[str] = set()
        self._ob_since: dict[str, float] = {}
        self._last_ok: dict[str, float] = {}
        self._last_ob: dict[str, bool] = {}
        self._unavailable: set[str] = set()
        self._host: set[str] = set()
        self._sync_start = 0.0
        self._sync_deadline = 0.0
        self._final_deadline = 0.0

    def reconfigure(self, config: ShutdownConfig, powerdown_flag: str | None) -> bool:
        """New settings; refused (False) once the host's shutdown has begun."""
        if self.phase is not Phase.WATCHING:
            return False
        self.config, self.powerdown_flag = config, powerdown_flag
        return True

    # -- decisions -------------------------------------------------------------------

    def update(self, now: float, upses: Sequence[UpsView],
               clients: Sequence[Client]) -> list[Action]:
        """Re-evaluate everything at time ``now``; returns what to do, in order."""
        actions: list[Action] = []
        critical = {}
        for view in upses:
            reason = self._evaluate(now, view)
            if reason is not None:
                critical[view.name] = reason
        for name in set(self._last_ok) - {view.name for view in upses}:  # UPS removed
            for table in (self._last_ok, self._last_ob, self._ob_since):
                table.pop(name, None)
        for view in upses:
            reason = critical.get(view.name)
            if reason is None:
                continue
            if view.name not in self.critical:
                actions.append(Note("warn", f"UPS {view.name} is critical: {reason}"))
            if not view.fsd and view.name not in self._fsd_asked:
                self._fsd_asked.add(view.name)
                actions.append(SetFsd(view.name, reason))
        self.critical = critical
        if self.phase is Phase.WATCHING:
            self._host_decision(now, upses, actions)
        if self.phase is Phase.SYNCING:
            self._sync(now, clients, actions)
        if self.phase is Phase.FINAL and now >= self._final_deadline:
            self.phase = Phase.DONE
            actions.append(RunCommand(self.config.shutdown_command))
        return actions

    def _evaluate(self, now: float, view: UpsView) -> str | None:
        """Why ``view`` is critical at ``now``, or None; keeps the per-UPS history."""
        name = view.name
        if view.status is None:
            self._unavailable.add(name)
            if view.fsd:
                return "its FSD latch is set"
            last_ok = self._last_ok.get(name)
            if (last_ok is not None and self._last_ob.get(name)
                    and now - last_ok >= self.config.deadtime):
                return (f"no data for {now - last_ok:.0f} s (deadtime "
                        f"{self.config.deadtime} s) and last seen on battery")
            return None
        self._unavailable.discard(name)
        words = view.status.split()
        on_battery = "OB" in words
        self._last_ok[name], self._last_ob[name] = now, on_battery
        if on_battery:
            since = self._ob_since.setdefault(name, now)
        else:
            self._ob_since.pop(name, None)
        if view.fsd:
            return "its FSD latch is set"
        if "FSD" in words:
            return "the UPS reports FSD"
        if on_battery and "LB" in words and "CAL" not in words:
            return f"on battery with low battery ({view.status})"
        limit = self.config.on_battery_for
        if on_battery and limit is not None and now - since >= limit:
            return f"on battery for {now - since:.0f} s (on_battery_for {limit} s)"
        return None

    def _host_decision(self, now: float, upses: Sequence[UpsView],
                       actions: list[Action]) -> None:
        host = [view for view in upses if view.powers_host]
        if not host:
            return
        fed = [view.name for view in host if view.name not in self.critical]
        if len(fed) >= self.config.minsupplies:
            return
        self.phase = Phase.SYNCING
        self._host = {view.name for view in host}
        self._sync_start, self._sync_deadline = now, now + self.config.hostsync
        why = "; ".join(f"{name}: {self.critical[name]}" for name in sorted(self.critical)
                        if name in self._host)
        actions.append(Note("critical", f"Host shutdown begins: {len(fed)} of {len(host)} "
                                        f"UPS powering this host not critical, "
                                        f"{self.config.minsupplies} needed ({why})"))
        for view in host:
            if not view.fsd and view.name not in self._fsd_asked:
                self._fsd_asked.add(view.name)
                actions.append(SetFsd(view.name, "this host is shutting down"))

    def _sync(self, now: float, clients: Sequence[Client], actions: list[Action]) -> None:
        waiting = [client for client in clients if client.ups in self._host]
        if not waiting:
            actions.append(Note("info", f"No session is logged into "
                                        f"{', '.join(sorted(self._host))} (waited "
                                        f"{now - self._sync_start:.2f} s)"))
        elif now >= self._sync_deadline:
            who = ", ".join(f"{c.address} (UPS {c.ups}, user {c.user})" for c in waiting)
            actions.append(Note("warn", f"HOSTSYNC ({self.config.hostsync} s) ran out; still "
                                        f"connected: {who}"))
        else:
            return
        self.phase = Phase.FINAL
        self._final_deadline = now + self.config.finaldelay
        if self.powerdown_flag is not None:
            actions.append(WriteFlag(self.powerdown_flag))
        else:
            actions.append(Note("warn", "No powerdown_flag is configured: the UPS output "
                                        "will not be switched off"))

    def deadline(self) -> float | None:
        """The latest time :meth:`update` must be called again (None: only on change)."""
        if self.phase is Phase.SYNCING:
            return self._sync_deadline
        if self.phase is Phase.FINAL:
            return self._final_deadline
        if self.phase is Phase.DONE:
            return None
        times = []
        limit = self.config.on_battery_for
        if limit is not None:
            times += [since + limit for name, since in self._ob_since.items()
                      if name not in self._unavailable and name not in self.critical]
        times += [self._last_ok[name] + self.config.deadtime for name in self._unavailable
                  if self._last_ob.get(name) and name in self._last_ok
                  and name not in self.critical]
        return min(times) if times else None


class ShutdownService:
    """The Twisted shell: feeds :class:`ShutdownCore` from the server state and acts."""

    log = Logger()

    def __init__(self, state: ServerState, config: ShutdownConfig,
                 powerdown_flag: str | None, reactor: Any, runner: Runner) -> None:
        self.state = state
        self.reactor = reactor
        self.runner = runner
        self.core = ShutdownCore(config, powerdown_flag)
        #: every action carried out (or, in a dry run, logged): (reactor time, action)
        self.history: list[tuple[float, Action]] = []
        #: the shutdown command's result once it ended
        self.result: Any = None
        self._observed: dict[Slot, Any] = {}
        self._call: IDelayedCall | None = None
        self._checking = False
        self._again = False

    @property
    def config(self) -> ShutdownConfig:
        return self.core.config

    def start(self) -> None:
        """Observe every served UPS and evaluate now."""
        self.slots_changed()
        mode = " (dry run: nothing will be done, only logged)" if self.config.dry_run else ""
        self.log.info("Shutdown sequence armed for {ups}{mode}", ups=", ".join(
            view.name for view in self._views() if view.powers_host), mode=mode)
        self.check()

    def stop(self) -> None:
        """Stop observing and evaluating (a command already started keeps running)."""
        for slot, observer in self._observed.items():
            slot.ups.remove_observer(observer)
        self._observed.clear()
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def reconfigure(self, config: ShutdownConfig, powerdown_flag: str | None) -> None:
        if not self.core.reconfigure(config, powerdown_flag):
            self.log.warn("Shutdown settings reloaded but not applied: the host's shutdown "
                          "has already begun")
        self.slots_changed()
        self.check()

    def slots_changed(self) -> None:
        """Follow the served UPSes (after a reload added or removed some)."""
        slots = set(self.state.slots)
        for slot in [s for s in self._observed if s not in slots]:
            slot.ups.remove_observer(self._observed.pop(slot))
        for slot in slots - set(self._observed):
            observer = self._changed
            slot.ups.add_observer(observer)
            self._observed[slot] = observer

    def _changed(self, change: Change) -> None:
        self.check()

    # -- evaluating --------------------------------------------------------------------

    def _views(self) -> list[UpsView]:
        wanted = self.config.ups
        host = {id(s) for s in (self.state.find(n) for n in wanted) if s is not None}
        views = []
        for slot in self.state.slots:
            ups = slot.ups
            status = ups.value("ups.status") if ups.availability is Availability.OK else None
            views.append(UpsView(slot.name, status, slot.fsd,
                                 not wanted or id(slot) in host))
        return views

    def _clients(self) -> list[Client]:
        return [Client(s.address, s.login_slot.name, s.username)
                for s in self.state.sessions if s.login_slot is not None]

    def check(self) -> None:
        """Evaluate now, act, and schedule the next evaluation."""
        if self._checking:
            self._again = True
            return
        self._checking = True
        try:
            self._again = True
            while self._again:
                self._again = False
                now = self.reactor.seconds()
                for action in self.core.update(now, self._views(), self._clients()):
                    self._act(now, action)
        finally:
            self._checking = False
        self._schedule()

    def _schedule(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        phase = self.core.phase
        if phase is Phase.DONE or not self._observed:
            return
        now = self.reactor.seconds()
        delay = SYNC_INTERVAL if phase is Phase.SYNCING else WATCH_INTERVAL
        deadline = self.core.deadline()
        if deadline is not None:
            delay = min(delay, max(0.0, deadline - now))
        self._call = self.reactor.callLater(delay, self._tick)

    def _tick(self) -> None:
        self._call = None
        self.check()

    # -- acting ------------------------------------------------------------------------

    def _act(self, now: float, action: Action) -> None:
        self.history.append((now, action))
        if isinstance(action, Note):
            {"info": self.log.info, "warn": self.log.warn}.get(
                action.level, self.log.critical)("{text}", text=action.text)
            return
        dry = self.config.dry_run
        if isinstance(action, SetFsd):
            slot = self.state.find(action.ups)
            if dry:
                self.log.warn("Dry run: would set FSD on UPS [{ups}] ({why})", ups=action.ups,
                              why=action.reason)
            elif slot is not None and slot.set_fsd():
                self.log.warn("Set FSD on UPS [{ups}]: {why}", ups=action.ups,
                              why=action.reason)
        elif isinstance(action, WriteFlag):
            if dry:
                self.log.warn("Dry run: would write the power-down flag {path}",
                              path=action.path)
                return
            from upsagent.system.powerdown import write_flag

            try:
                write_flag(action.path)
            except OSError as exc:
                self.log.critical("Cannot write the power-down flag {path}: {err}; the UPS "
                                  "output will not be switched off", path=action.path,
                                  err=exc.strerror or exc)
            else:
                self.log.warn("Power-down flag {path} written", path=action.path)
        elif isinstance(action, RunCommand):
            self._run(list(action.argv), dry)

    def _run(self, argv: list[str], dry: bool) -> None:
        if dry:
            self.log.warn("Dry run: would run the shutdown command {argv}", argv=argv)
            return
        self.log.critical("Running the shutdown command {argv}", argv=argv)
        try:
            running = self.runner.run(argv, COMMAND_BUDGET)
        except Exception as exc:  # a bad argv or a runner bug must be loud, not silent
            self.log.failure("The shutdown command {argv} could not be started", argv=argv)
            self.result = exc
            return

        def done(result: Any) -> None:
            self.result = result
            summary = getattr(result, "summary", result)
            if getattr(result, "ok", False):
                self.log.info("Shutdown command {argv} finished: {summary}", argv=argv,
                              summary=summary)
            else:
                self.log.critical("Shutdown command {argv} failed: {summary}; shut this "
                                  "host down by hand (the power-down flag stays)",
                                  argv=argv, summary=summary)

        def failed(reason: Failure) -> None:
            self.result = reason
            self.log.failure("Shutdown command {argv} failed", reason, argv=argv)

        running.addCallbacks(done, failed)



def default_runner(reactor: Any) -> Runner:
    """The agent's process runner (own session, budget, TERM then KILL, bounded output)."""
    from upsagent.system.runprocess import ProcessRunner

    runner: Runner = ProcessRunner(reactor)
    return runner
