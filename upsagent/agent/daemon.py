# -*- test-case-name: tests.test_slave_daemon -*-
"""The slave agent assembled: monitors -> executor (policy engine) -> backends.

A :class:`SlaveDaemon` runs the agent one :class:`~upsagent.config.slaveconf.SlaveConfig`
describes, on a reactor:

* one :class:`~upsagent.agent.monitor.UpsMonitor` per monitored UPS; every event goes to the
  :class:`~upsagent.engine.executor.Executor`, which drives the
  :class:`~upsagent.policy.policy.PolicyEngine`;
* the :class:`~upsagent.system.runprocess.ProcessRunner` runs every command (shutdown,
  notifications, a host's script); the :class:`~upsagent.agent.notify.Notifier` sends
  upsmon's notifications; a primary sets FSD and waits for the secondaries through its
  monitors (:class:`~upsagent.engine.executor.MonitorFsd`);
* one backend per manager (:meth:`~upsagent.config.slaveconf.SlaveConfig.managers`): the
  hosts naming one ``[[slave.vcenter]]`` or ``[[slave.xenpool]]`` share its backend, each
  ``ssh`` host has its own, and the local host's is this OS
  (:class:`~upsagent.hypervisors.local.LocalBackend`, from ``[slave]``'s shutdown
  settings).  Each is built by ``backend_factory(config, reactor, runner)`` -- default
  :func:`~upsagent.hypervisors.base.build_backend`, the registry's ``Backend.build``; a
  kind the agent cannot drive is refused first, with ``check-config``'s line
  (:func:`~upsagent.config.slavecheck.backend_problems`); a backend that cannot be built
  stops the start, unless in a dry run.

**Start and reload.**  Both first build and check everything a configuration needs
(:meth:`SlaveDaemon._prepare`: the plan and settings as ``check-config`` checks them, the
backends, the notifier, the monitors -- constructed, not started -- and the engine with its
state), then run it.  So a SIGHUP reload is all or nothing: when anything of the new
configuration is refused, the :class:`ConfigError` names the file, the key and the reason,
and the running configuration has not been touched.

**State.**  After every batch of decisions the engine's snapshot is written to
``state_file`` when it changed (its ``now`` aside): written to a temporary file in the same
directory with mode 0600, flushed, then renamed over the old one, so a crash leaves either
the old or the new state.  At start the snapshot is restored
(:meth:`PolicyEngine.restore`, wall-clock times), so an agent restarted mid-sequence keeps
its timers, issues the operations in flight again, and takes out of maintenance the hosts it
put there once the power is back.  A missing state file starts afresh; a damaged one is
logged, kept aside as ``<state_file>.bad`` and the agent starts afresh.

**Sessions.**  The monitors keep their sessions (NUMLOGINS counts them on the master) until
the agent's own host reaches its last stage, the shutdown order; then they are closed
without LOGOUT, as upsmon exits when it shuts the host down.  :meth:`SlaveDaemon.stop`
(SIGTERM) logs out cleanly, as ``upsmon -c stop`` does.

**UPS countdowns.**  A ``[[slave.monitor]]`` with ``warning_period`` but no
``shutdown_delay`` takes the delay from the UPS's ``ups.delay.shutdown``: after the
monitor's first good read of a session (again after a loss of contact) the daemon reads it
with :func:`read_variable` (a short connection of its own; the monitor is not involved),
and logs at warn level every line :func:`~upsagent.config.slavecheck.countdown_problems`
finds -- ``check-config``'s text, naming host, step and overrun.  Only the check uses it:
the engine does not plan by the countdown.

**Dry run**: everything but the actions (the executor logs what it would do and when);
the sessions are kept.

**Inventory and status.**  Every manager's hosts are read at start and every 30 s
(:mod:`upsagent.agent.inventory`; changes are logged, the detected placement of the
vCenter's and the agent's VM goes to the engine); ``status_socket`` answers
``upsagent status`` (:mod:`upsagent.agent.control`) with :func:`~upsagent.agent.status.
status_report`: the plans, phases, timers, each host's last operation (recorded by
:class:`~upsagent.agent.status.StatusBook` from the executor's observer), the UPSes' last
readings and the inventory.  The socket is opened before anything starts (a path that
cannot be used stops the start) and kept across reloads (moved when the path changes).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.logger import Logger

from upsagent.config.schema import ConfigError
from upsagent.config.validate import show
from upsagent.config.slavecheck import agent_backends, countdown_problems, plan_problems
from upsagent.config.slaveconf import DEFAULT_STATUS_SOCKET, DELAY_VARIABLE, SlaveConfig
from upsagent.config.managers import MANAGED_KINDS, ManagerConfig
from upsagent.hypervisors.base import Backend, build_backend
from upsagent.system.powerdown import clear_stale_flag
from upsagent.policy.actions import Action, Outcome, Result, ShutdownHost
from upsagent.policy.events import CommLost, Event, UpsState
from upsagent.engine.executor import Executor, MonitorFsd
from upsagent.agent.notify import Notifier
from upsagent.agent.inventory import Inventory, build_inventory
from upsagent.agent.status import StatusBook, status_report
from upsagent.policy.policy import PolicyEngine

__all__ = ["BackendFactory", "MonitorFactory", "SlaveDaemon", "VariableReader", "read_variable",
           "write_private"]

_log = Logger(namespace="upsagent.slave")

#: (settings, on_event) -> an object with start(), stop(logout), set_fsd(), numlogins()
MonitorFactory = Callable[[Any, Callable[[Event], None]], Any]
#: (manager config, reactor, runner) -> the backend of that manager (``Backend.build``'s
#: signature, so a backend class's ``build`` is one)
BackendFactory = Callable[[ManagerConfig, Any, Any], Backend]
#: (monitor settings, variable) -> its value on the server, None when it has none
VariableReader = Callable[[Any, str], "Deferred[str | None]"]


def write_private(path: str, text: str) -> None:
    """Replace ``path`` atomically by ``text``, mode 0600 (parent made 0700 if missing)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".slave-", dir=directory)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


@dataclass
class _Parts:
    """What one configuration runs on, built and checked before anything is started."""

    config: SlaveConfig
    warnings: list[str]
    backends: dict[str, Backend]
    notifier: Notifier
    monitors: dict[str, Any]
    engine: PolicyEngine
    saved: str | None
    #: system -> monitor settings, for the UPSes whose delay comes from ``ups.delay.shutdown``
    delay_from_ups: dict[str, Any]


def read_variable(reactor: Any, settings: Any, name: str,
                  endpoint: Any = None) -> Deferred[str | None]:
    """``GET VAR <ups> <name>`` on a short connection of its own (GET VAR needs no login,
    so the master's NUMLOGINS is not changed): STARTTLS as the monitor's ``settings.tls``
    says, the request, LOGOUT.  Fires with the value, or None when the server answers
    ``ERR VAR-NOT-SUPPORTED``; fails with the :class:`ClientError` otherwise."""
    from twisted.internet.endpoints import HostnameEndpoint, connectProtocol

    from upsagent.nut.client import ClientError, NutError, OkReply, Request, VarReply
    from upsagent.transport.nutproto import NutClientProtocol

    if endpoint is None:
        endpoint = HostnameEndpoint(reactor, settings.host, settings.port,
                                    timeout=settings.timeout)
    proto = NutClientProtocol(reactor, settings.timeout, lambda _: None,
                              lambda *_: None, lambda *_: None)

    async def session() -> str | None:
        await connectProtocol(endpoint, proto)  # type: ignore[no-untyped-call]
        try:
            tls = settings.tls
            if tls.attempted:
                try:
                    reply = await proto.request(Request.of("STARTTLS"))
                except NutError:
                    reply = None
                if isinstance(reply, OkReply) and reply.text.startswith("OK STARTTLS"):
                    proto.start_tls(tls.options(settings.host))
                elif tls.required or tls.verify:     # as the monitor: verify implies it
                    raise ClientError("the server refused STARTTLS, and TLS is required")
            try:
                answer = await proto.request(Request.get("VAR", settings.ups, name))
            except NutError as error:
                if error.code == "VAR-NOT-SUPPORTED":
                    return None
                raise
            assert isinstance(answer, VarReply)
            proto.request(Request.of("LOGOUT")).addErrback(lambda _: None)
            return answer.value
        finally:
            proto.close()
    return Deferred.fromCoroutine(session())


def _manager_name(manager: ManagerConfig) -> str:
    """``(vcenter "vc1") `` for a manager section, nothing for a host's own manager."""
    key = getattr(manager, "host_key", None)
    return f"({key} {show(manager.name)}) " if key else ""


def _comparable(snapshot: Mapping[str, object]) -> str:
    return json.dumps({k: v for k, v in snapshot.items() if k != "now"}, sort_keys=True)


class SlaveDaemon:
    """One slave agent on ``reactor`` (the real reactor, or a ``MemoryReactorClock``).

    ``runner`` defaults to a :class:`ProcessRunner`; ``monitor_factory`` to
    :class:`UpsMonitor`; ``backend_factory(manager config, reactor, runner)`` to
    :func:`~upsagent.hypervisors.base.build_backend` (a given one builds every kind that has
    a manager, :data:`~upsagent.config.managers.MANAGED_KINDS`); tests pass fakes.
    """

    def __init__(self, config: SlaveConfig, reactor: Any, *, runner: Any = None,
                 monitor_factory: MonitorFactory | None = None,
                 backend_factory: BackendFactory | None = None,
                 variable_reader: VariableReader | None = None) -> None:
        self.config = config
        self.reactor = reactor
        if runner is None:
            from upsagent.system.runprocess import ProcessRunner
            runner = ProcessRunner(reactor)
        self.runner = runner
        self._monitor_factory = monitor_factory or self._default_monitor
        self._backend_factory: BackendFactory = backend_factory or build_backend
        #: a given factory builds every kind that has a manager (the tests' fakes); the
        #: registry's kinds are checked first
        self._custom_backends = backend_factory is not None
        self.monitors: dict[str, Any] = {}
        self.executor: Executor | None = None
        self.released = False
        self._reloading = False
        self._saved: str | None = None
        self._read_variable: VariableReader = variable_reader or (
            lambda settings, name: read_variable(self.reactor, settings, name))
        #: UPS countdowns completed from ``ups.delay.shutdown``: system -> settings, the
        #: systems read this session, the delays read (system -> seconds)
        self._delay_from_ups: dict[str, Any] = {}
        self._delay_read: set[str] = set()
        self.ups_delays: dict[str, float] = {}
        #: the status report's parts: history, inventory, the socket and its path
        self.status = StatusBook()
        self.inventory: Inventory | None = None
        self.started_at = float(reactor.seconds())
        self._control: Any = None
        self._control_path: str | None = None

    # -- start and stop ------------------------------------------------------------------

    def start(self) -> None:
        """Check the plan, restore the state, start the executor and the monitors.

        Raises :class:`ConfigError` when the plan has errors or a backend cannot be built.
        A power-down flag left from before this boot is removed first (upsmon removes its
        flag at every start; one written since boot is kept: a shutdown is under way).
        """
        prepared = self._prepare(self.config)
        self._listen(prepared.config)
        if self.config.powerdown_flag is not None:
            _, message = clear_stale_flag(self.config.powerdown_flag)
            if message:
                _log.warn("{message}", message=message)
        self._switch(prepared)

    def stop(self, logout: bool = True, *, keep_socket: bool = False) -> Deferred[Any]:
        """Stop timers and monitors; ``logout`` sends LOGOUT (not after the shutdown order).
        Every backend closes its session with its manager (:meth:`Backend.close`: a xen
        pool logs out).  The status socket is closed too, unless ``keep_socket`` (a
        reload)."""
        waits = []
        if self.inventory is not None:
            self.inventory.stop()
        if not keep_socket and self._control is not None:
            waits.append(maybeDeferred(self._control.stopListening))  # removes the file
            self._control = self._control_path = None
        if self.executor is not None:
            self._save(self.executor.engine)
            self.executor.stop()
            backends = {id(b): b for b in self.executor.backends.values()}
            waits += [backend.close() for backend in backends.values()]
        waits += [monitor.stop(logout=logout and not self.released)
                  for monitor in self.monitors.values()]
        self.monitors = {}
        return DeferredList(waits, consumeErrors=True) if waits else succeed(None)

    def reload(self, config: SlaveConfig) -> Deferred[Any]:
        """Take ``config``: the engine's state carries over (snapshot, then restore).

        All or nothing: everything ``config`` needs (plan, settings, backends, monitors,
        notifier, the running state restored into the new plan) is built and checked
        first, and only then is the running configuration stopped.  Refused
        (:class:`ConfigError`, the running configuration untouched) once the shutdown order
        was given, while another reload is under way, or when anything is refused; the
        message names the file, the key and the reason.
        """
        if self.released:
            raise ConfigError("the host is shutting down; reload refused")
        if self._reloading:
            raise ConfigError("a reload is already under way; reload refused")
        snapshot = self.executor.engine.snapshot() if self.executor is not None else None
        parts = self._prepare(config, snapshot)
        old = self.config
        self._reloading = True
        stopped = self.stop(logout=True, keep_socket=True)

        def switch(_: object) -> None:
            self._reloading = False
            try:
                self._listen(parts.config)
            except ConfigError as exc:
                _log.error("reload: the status socket stays at {old}: {exc}",
                           old=self._control_path, exc=exc)
            try:
                self._switch(parts)
            except Exception:
                _log.failure("reload: the new configuration failed to start; going back to "
                             "the previous one")
                self.stop(logout=True, keep_socket=True)  # what of the new one did start
                self._switch(self._prepare(old, snapshot))
        return stopped.addCallback(switch)

    def _prepare(self, config: SlaveConfig,
                 snapshot: dict[str, Any] | None = None) -> _Parts:
        """Everything ``config`` needs, built but not started; :class:`ConfigError` (every
        refused thing, one per ``;``) when something is refused.  Nothing running is
        touched.  ``snapshot``: the running engine's state, restored into the new plan (a
        reload); without it the state file is read (a start)."""
        available = MANAGED_KINDS if self._custom_backends else None
        errors, warnings = plan_problems(config, available)
        if errors:
            raise ConfigError("; ".join(errors))
        backends = self._backends(config)
        notifier = Notifier(config.notify, self.runner, budget=config.notify_budget)
        monitors: dict[str, Any] = {}
        from_ups = {m.system for m in config.monitors if m.delay_from_ups is not None}
        delay_from_ups: dict[str, Any] = {}
        for i, settings in enumerate(config.monitor_settings()):
            if settings.system in from_ups:
                delay_from_ups[settings.system] = settings
            try:
                monitors[settings.system] = self._monitor_factory(settings, self._event)
            except Exception as exc:
                key = config.key(f"slave.monitor[{i + 1}]", f"MONITOR {settings.system}")
                raise ConfigError(f"{config.source}: {key}: cannot watch {settings.system}: "
                                  f"{exc}") from None
        if snapshot is None:
            engine, saved = self._engine(config)
        else:
            now = float(self.reactor.seconds())
            try:
                engine = PolicyEngine.restore(config.plan, snapshot, now, reload=True)
            except (ValueError, KeyError, TypeError) as exc:
                raise ConfigError(f"{config.source}: the running state cannot be carried "
                                  f"over to the new plan: {exc}") from None
            saved = None
        return _Parts(config, [*config.warnings, *warnings], backends, notifier, monitors,
                      engine, saved, delay_from_ups)

    def _switch(self, parts: _Parts) -> None:
        """Run what :meth:`_prepare` built."""
        config = self.config = parts.config
        for warning in parts.warnings:
            _log.warn("{warning}", warning=warning)
        self._saved = parts.saved
        self._delay_from_ups, self._delay_read, self.ups_delays = parts.delay_from_ups, set(), {}
        self.monitors = parts.monitors
        self.released = False
        self.executor = Executor(
            parts.engine, self.reactor, parts.backends, runner=self.runner,
            notifier=parts.notifier, fsd=MonitorFsd(self.monitors, self.reactor),
            dry_run=config.dry_run, observer=self._observe, on_change=self._save)
        _log.info("slave {name}: {n} UPS monitored ({ups}), protecting {hosts}{dry}",
                  name=config.plan.name, n=len(self.monitors),
                  ups=", ".join(self.monitors) or "none",
                  hosts=", ".join(h.name for h in config.plan.hosts) or "no host",
                  dry=" (dry run: no action is taken)" if config.dry_run else "")
        for each in {id(b): b for b in parts.backends.values()}.values():
            self._connect(each)
        for name in parts.engine.ours():
            backend = parts.backends.get(name)
            if backend is not None:
                backend.remember_maintenance(name)
        self.executor.start()
        self.inventory = build_inventory(config, parts.backends, self.reactor,
                                         self.executor.handle)
        self.inventory.start()
        for monitor in self.monitors.values():
            monitor.start()

    def _listen(self, config: SlaveConfig) -> None:
        """Open (or move, or close) the status socket as ``config`` says."""
        path = config.status_socket
        if path == self._control_path:
            return
        from upsagent.agent.control import listen_status
        port = None
        if path is not None:
            try:
                port = listen_status(self.reactor, path, lambda: status_report(
                    self, float(self.reactor.seconds())))
            except ConfigError as exc:
                if path.removesuffix(".dry-run") != DEFAULT_STATUS_SOCKET:
                    raise
                # the default path, taken (another agent on this machine): no reason to
                # leave the hosts unprotected; the operator chose no path to insist on
                _log.error("{why}; this agent runs without a status socket (set "
                           "slave.status_socket to a path of its own)", why=exc)
        if self._control is not None:
            self._control.stopListening()
        self._control, self._control_path = port, path

    def _connect(self, backend: Backend) -> None:
        """Log the backend in now, so that what cannot work (a refused login, a free ESXi)
        is logged at the start rather than at the first power failure."""
        def logged(result: Result) -> None:
            if not result.ok:
                _log.error("{kind} backend: {detail}", kind=backend.kind or "a",
                           detail=result.detail)

        def failed(failure: Any) -> None:
            _log.error("{kind} backend: cannot connect: {error}", kind=backend.kind or "a",
                       error=failure.getErrorMessage())
        backend.connect().addCallbacks(logged, failed)

    # -- parts ---------------------------------------------------------------------------

    def _default_monitor(self, settings: Any, on_event: Callable[[Event], None]) -> Any:
        from upsagent.agent.monitor import UpsMonitor
        return UpsMonitor(settings, on_event, reactor=self.reactor)

    def _backends(self, config: SlaveConfig) -> dict[str, Backend]:
        """Host name -> its backend: one built per manager, shared by its hosts."""
        backends: dict[str, Backend] = {}
        usable = MANAGED_KINDS if self._custom_backends else agent_backends()
        for manager, names in config.managers():
            if manager.kind not in usable:   # a dry run (plan_problems warned), else refused
                continue
            try:
                backend = self._backend_factory(manager, self.reactor, self.runner)
            except Exception as exc:
                if isinstance(exc, ConfigError):
                    error = exc
                else:
                    error = ConfigError(f"{config.source}: backend {manager.kind} "
                                        f"{_manager_name(manager)}for {', '.join(names)}: "
                                        f"cannot be used by the agent: {exc}")
                if not config.dry_run:
                    raise error from None
                _log.warn("dry run: no {kind} backend for {hosts} ({error})",
                          kind=manager.kind, hosts=", ".join(names), error=error)
                continue
            backends.update(dict.fromkeys(names, backend))
        return backends

    def _engine(self, config: SlaveConfig) -> tuple[PolicyEngine, str | None]:
        """The engine restored from the state file (or afresh), and the state as saved."""
        now = float(self.reactor.seconds())
        path = config.state_file
        try:
            with open(path, encoding="utf-8") as handle:
                snapshot = json.load(handle)
        except FileNotFoundError:
            _log.info("no saved state in {path}: starting afresh", path=path)
            return PolicyEngine(config.plan, now), None
        except (OSError, ValueError) as exc:
            return self._fresh(config, now, f"cannot read it: {exc}"), None
        try:
            engine = PolicyEngine.restore(config.plan, snapshot, now)
        except (ValueError, KeyError, TypeError) as exc:
            return self._fresh(config, now, f"cannot restore it: {exc}"), None
        _log.info("state restored from {path} (saved {ago:.0f} s ago)", path=path,
                  ago=now - float(snapshot.get("now", now)))
        return engine, _comparable(snapshot)

    def _fresh(self, config: SlaveConfig, now: float, why: str) -> PolicyEngine:
        path = config.state_file
        _log.error("saved state {path}: {why}; kept as {path}.bad, starting afresh",
                   path=path, why=why)
        try:
            os.replace(path, path + ".bad")
        except OSError:
            pass
        return PolicyEngine(config.plan, now)

    # -- callbacks -----------------------------------------------------------------------

    def _event(self, event: Event) -> None:
        self.status.ups_event(event, float(self.reactor.seconds()))
        if self.executor is not None:
            self.executor.handle(event)
        system = event.ups
        if system not in self._delay_from_ups:
            return
        if isinstance(event, CommLost):          # the next session reads it again
            self._delay_read.discard(system)
        elif isinstance(event, UpsState) and system not in self._delay_read:
            self._delay_read.add(system)
            self._read_delay(system)

    def _read_delay(self, system: str) -> None:
        """Read ``ups.delay.shutdown`` (once per session, after the first good read) and
        check the plan against the UPS's countdown it completes; what does not fit is
        logged as a warning, with ``check-config``'s line."""
        config = self.config

        def got(value: str | None) -> None:
            if self.config is not config:
                return                            # reloaded meanwhile
            if value is None:
                _log.info("{ups} publishes no {var}: the plan is not checked against its "
                          "countdown (set shutdown_delay in its [[slave.monitor]])",
                          ups=system, var=DELAY_VARIABLE)
                return
            try:
                delay = float(value)
                if not delay >= 0:
                    raise ValueError(value)
            except ValueError:
                _log.warn("{ups}: {var} is {value!r}, not a number of seconds: the plan is "
                          "not checked against its countdown", ups=system,
                          var=DELAY_VARIABLE, value=value)
                return
            if self.ups_delays.get(system) == delay:
                return
            self.ups_delays[system] = delay
            problems = countdown_problems(config, self.ups_delays)
            warning = next(m.delay_from_ups for m in config.monitors if m.system == system)
            _log.info("{ups}: {var} {delay:g} s: the UPS cuts its output {warning:g} + "
                      "{delay:g} s after the power fails{fit}", ups=system,
                      var=DELAY_VARIABLE, delay=delay, warning=warning,
                      fit="" if problems else "; the plan fits")
            for line in problems:
                _log.warn("{line}", line=line)

        def failed(failure: Any) -> None:
            if self.config is config:
                self._delay_read.discard(system)  # try again at the next read
            _log.info("{ups}: cannot read {var} ({why}); trying again later", ups=system,
                      var=DELAY_VARIABLE, why=failure.getErrorMessage())
        try:
            reading = self._read_variable(self._delay_from_ups[system], DELAY_VARIABLE)
        except Exception:
            _log.failure("{ups}: cannot read {var}", ups=system, var=DELAY_VARIABLE)
            return
        reading.addCallbacks(got, failed)

    def _save(self, engine: PolicyEngine) -> None:
        snapshot = engine.snapshot()
        text = _comparable(snapshot)
        if text == self._saved:
            return
        try:
            write_private(self.config.state_file, json.dumps(snapshot, sort_keys=True))
        except OSError as exc:
            _log.error("cannot save the state to {path}: {exc}",
                       path=self.config.state_file, exc=exc)
            return
        self._saved = text

    def _observe(self, kind: str, action: Action, result: Result | None, now: float) -> None:
        self.status.observe(kind, action, result, now)
        agent = self.config.plan.agent_host
        if not isinstance(action, ShutdownHost) or agent is None or action.host != agent.name:
            return
        if kind == "done":
            # the engine issues it again after a while (rules R6), until it works
            if (self.released and result is not None and result.outcome is not Outcome.OK
                    and not self.config.dry_run):
                _log.error("the shutdown of this host failed ({detail}): it is still up; "
                           "it is tried again", detail=result.detail or result.outcome.value)
            return
        if kind != "start" or self.released:
            return
        if self.config.dry_run:
            _log.info("dry run: would close the sessions without LOGOUT now")
            return
        self.released = True
        _log.info("shutting down: closing the sessions without LOGOUT")
        for monitor in self.monitors.values():
            monitor.stop(logout=False)
