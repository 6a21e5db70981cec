# -*- test-case-name: tests.test_vsphere -*-
"""The ``vsphere`` backend: hosts of one vCenter (``[[slave.vcenter]]``), through pyvmomi.

The blocking work is :class:`~upsagent.hypervisors.vsphere_client.VsphereClient`'s; this
class runs it off the reactor through an injected seam, ``blocking(fn) -> Deferred``
(default: a thread pool of the backend's own, stopped with the reactor; tests pass one
that runs ``fn`` at once, or never answers, and drive time with a ``Clock``).

Every operation:

* is watched with a deadline on the reactor (the operation's own time limit plus
  :data:`GRACE`): past it, the result is ``timed-out`` and the worker is told to stop
  (it cancels the vCenter task it was waiting for);
* can be cancelled through its Deferred's canceller (the executor does it when the engine
  aborts a step): the worker is told to stop, cancels the running vCenter task, and the
  Deferred fails with ``CancelledError`` at once;
* reports what happened as a :class:`~upsagent.system.runner.Result`, never an exception:
  a network error is ``unreachable``, a fault ``failed``, DRS unable to place the VMs
  ``no-target``.

``exit_maintenance`` acts only on hosts this backend put into maintenance (or that the
agent's saved state says it did, :meth:`VsphereBackend.remember_maintenance`, after a
restart), and only after an enter operation still running on that host has ended (power
back mid-migration).
``connect`` logs in and starts the keep-alive (a cheap call every :data:`KEEPALIVE`
seconds, logging in again when the session expired).

**Without the vCenter** (:mod:`upsagent.hypervisors.esxi`).  A host with ``[host.esxi]``
has a direct ESXi session, logged in at ``connect`` and kept alive with the vCenter's:

* a host that runs the vCenter VM or the agent's own VM (its ``runs_vcenter`` /
  ``runs_agent`` mark, or the inventory's detection, :attr:`HostInfo.runs_vcenter` /
  :attr:`HostInfo.runs_agent`) has its VMs' shutdown (the vCenter VM last, the agent's
  own VM left to the host's shutdown) and its own shutdown done through the direct
  session (the engine has already waited for the other hosts of the vCenter, R6);
  should that session not answer, through vCenter;
* any other host whose VMs' or host shutdown finds the vCenter unreachable (a network
  error, a 503, a lost session whose new login fails) has it done through the direct
  session with the time left; maintenance is not (no vCenter, no DRS): its result says so.

Without a direct session, a VMs' or host shutdown that finds the vCenter unreachable is
tried again, after :data:`RETRY_FIRST` s, doubling up to :data:`RETRY_MAX` s, while the
step's time limit lasts (a vCenter back in time still shuts the host down); the result
then says how many attempts found it unreachable.  Every result says which path it took.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from upsagent.hypervisors.base import Backend, HostInfo
from upsagent.hypervisors.esxi import EsxiClient, unreachable
from upsagent.hypervisors.vsphere_client import FREE_ESXI_HINT, Cancelled, VsphereClient
from upsagent.hypervisors.vsphere_paths import StepPaths, no_drs
from upsagent.system.runner import Outcome, Result, Runner
from upsagent.system.threads import Blocking, own_pool

if TYPE_CHECKING:
    from upsagent.policy.plan import VmGroup
    from upsagent.config.managers import ManagerConfig, VcenterConfig

__all__ = ["GRACE", "KEEPALIVE", "VsphereBackend"]

_log = Logger(namespace="upsagent.vsphere")
_T = TypeVar("_T")

#: how long past an operation's own limit the backend still waits for its worker
GRACE = 60.0
#: seconds between keep-alive calls (vCenter expires idle sessions after ~30 min)
KEEPALIVE = 300.0
#: limit of a shutdown_host operation (the task is accepted within seconds), retries of
#: an unreachable vCenter and the direct session included: the default shutdown_duration,
#: so that the result comes before the engine's own guard (its limit + 30 s)
SHUTDOWN_LIMIT = 60.0

#: the seam: run a blocking callable somewhere, fire with its value
class VsphereBackend(StepPaths, Backend):
    """The hosts of one vCenter."""

    kind = "vsphere"

    def __init__(self, config: VcenterConfig, reactor: Any,
                 blocking: Blocking | None = None, client: VsphereClient | None = None,
                 keepalive: float = KEEPALIVE) -> None:
        self.config = config
        self.reactor = reactor
        self.client = client if client is not None else VsphereClient(config)
        self._blocking = blocking
        self.keepalive = keepalive
        self._loop: LoopingCall | None = None
        self._entering: dict[str, Deferred[Result]] = {}
        #: host -> its direct ESXi session ([host.esxi])
        self.direct: dict[str, EsxiClient] = {
            e.name: EsxiClient(e, rules=self.client.rules) for e in config.esxi}
        self._marked = {e.name for e in config.esxi if e.runs_vcenter}
        self._agent_marked = {e.name for e in config.esxi if e.runs_agent}
        self._detected: set[str] = set()
        self._detected_agent: set[str] = set()

    @classmethod
    def build(cls, config: ManagerConfig, reactor: Any, runner: Runner) -> VsphereBackend:
        """The backend of one ``[[slave.vcenter]]`` (:class:`VcenterConfig`)."""
        if config.kind != cls.kind:
            raise TypeError(f"{cls.__name__} is built from a vcenter configuration, not "
                            f"{type(config).__name__}")
        return cls(cast("VcenterConfig", config), reactor)

    def blocking(self, fn: Callable[[], Any]) -> Deferred[Any]:
        """The seam; the real one (:func:`~upsagent.system.threads.own_pool`) is started on first use."""
        if self._blocking is None:
            self._blocking = own_pool(self.reactor, "upsagent-vsphere")
        return self._blocking(fn)

    # -- the watched call --------------------------------------------------------------

    def _run(self, what: str, limit: float, work: Callable[[threading.Event], Result],
             label: str | None = None) -> Deferred[Result]:
        """``work(cancel)`` on the seam, watched: ``limit`` + GRACE at most, cancellable.
        ``label`` names the endpoint in an unreachable result (default: the vCenter)."""
        label = label or f"vcenter {self.config.name}"
        cancel = threading.Event()

        def canceller(_: Deferred[Result]) -> None:
            cancel.set()
            if timer.active():
                timer.cancel()
        outer: Deferred[Result] = Deferred(canceller)
        timer = self.reactor.callLater(limit + GRACE, self._late, outer, cancel, what, limit)

        def body() -> Result:
            try:
                return work(cancel)
            except Cancelled:
                return Result(Outcome.CANCELLED, "cancelled")
            except LookupError as exc:
                return Result(Outcome.FAILED, str(exc))
            except Exception as exc:  # noqa: BLE001 - a fault is a result, not a crash
                if unreachable(exc):
                    return Result(Outcome.UNREACHABLE, f"{label}: {exc}")
                if type(exc).__name__.endswith("RestrictedVersion"):
                    return Result(Outcome.FAILED, f"vcenter {self.config.name}: "
                                  f"{FREE_ESXI_HINT}")
                return Result(Outcome.FAILED, f"{type(exc).__name__}: {_msg(exc)}")

        def done(result: Result | Failure) -> None:
            if timer.active():
                timer.cancel()
            if outer.called:
                return
            if isinstance(result, Failure):
                outer.callback(Result(Outcome.FAILED, result.getErrorMessage()))
            else:
                outer.callback(result)
        self.blocking(body).addBoth(done)
        return outer

    def _late(self, outer: Deferred[Result], cancel: threading.Event, what: str,
              limit: float) -> None:
        cancel.set()
        if not outer.called:
            outer.callback(Result(Outcome.TIMED_OUT, f"{what}: no answer {GRACE:g} s after "
                                  f"its {limit:g} s limit"))

    # -- the contract ------------------------------------------------------------------

    def connect(self) -> Deferred[Result]:
        """Log in, and keep the session alive from now on.  A free ESXi (its licence says
        so) is ``failed``, naming the ssh backend: the API would refuse every step."""
        def work(_: threading.Event) -> Result:
            about = self.client.connect()
            free = self.client.free_esxi()
            if free is not None:
                return Result(Outcome.FAILED, f"vcenter {self.config.name} is {free}: "
                              f"{FREE_ESXI_HINT}")
            return Result(Outcome.OK, f"connected to {about}")
        d = self._run("connect", 60.0, work)

        def started(result: Result) -> Result:
            if result.ok and self._loop is None:
                self._loop = LoopingCall(self._keep_alive)
                self._loop.clock = self.reactor
                self._loop.start(self.keepalive, now=False)
            return result
        d.addCallback(started)
        if not self.direct:
            return d

        def direct(result: Result) -> Deferred[Result]:
            def joined(lines: list[Result]) -> Result:
                detail = "; ".join([result.detail, *(r.detail for r in lines)])
                if self._loop is None:     # the direct sessions are kept alive too
                    started(Result(Outcome.OK))
                return Result(result.outcome, detail)
            return gatherResults([self._connect_direct(h) for h in self.direct]
                                 ).addCallback(joined)
        return d.addCallback(direct)

    def remember_maintenance(self, host: str) -> None:
        """``host`` was put into maintenance by this agent before its restart: exit it on
        power return as one entered now."""
        self.client.owned.add(host)

    def check(self, hosts: Sequence[str]) -> Deferred[list[str]]:
        """Log in, look, change nothing (:meth:`VsphereClient.check`); logs out after."""
        found: list[list[str]] = []

        def work(_: threading.Event) -> Result:
            try:
                found.append(self.client.check(list(hosts)))
                for host in hosts:
                    if host in self.direct:
                        found[0].extend(self._check_direct(host))
            finally:
                self.client.disconnect()
                for session in self.direct.values():
                    session.disconnect()
            return Result(Outcome.OK)

        def lines(result: Result) -> list[str]:
            if found:
                return found[0]
            return [result.detail]
        return self._run("check", 60.0, work).addCallback(lines)

    def _keep_alive(self) -> None:
        def work(_: threading.Event) -> Result:
            self.client.keep_alive()
            return Result(Outcome.OK, "alive")

        def logged(result: Result) -> None:
            if not result.ok:
                _log.warn("vcenter {name}: keep-alive: {detail}", name=self.config.name,
                          detail=result.detail)
        self._run("keep-alive", 60.0, work).addCallback(logged)
        for host, session in self.direct.items():
            self._keep_direct(host, session)

    def stop(self) -> Deferred[None]:
        """Stop the keep-alive and log out."""
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

        def disconnect() -> None:
            self.client.disconnect()
            for session in self.direct.values():
                session.disconnect()
        return self.blocking(disconnect).addErrback(lambda _: None)

    def close(self) -> Deferred[None]:
        """The agent stops: :meth:`stop`."""
        return self.stop()

    def hosts(self) -> Deferred[list[HostInfo]]:
        """Every host of the vCenter with its connection and maintenance state, and whether
        it runs the vCenter VM or this agent's VM; fails (``ConnectionError`` with the
        reason; the inventory names the vCenter) when the vCenter cannot be asked, as
        :meth:`Backend.hosts` says."""
        holder: list[list[HostInfo]] = []

        def work(_: threading.Event) -> Result:
            holder.append([HostInfo(h.name, h.connection == "connected", h.in_maintenance,
                                    f"{h.connection}, {h.power}", h.runs_vcenter,
                                    h.runs_agent)
                           for h in self.client.hosts()])
            return Result(Outcome.OK)

        def listed(result: Result) -> list[HostInfo]:
            if not result.ok or not holder:
                raise ConnectionError(result.detail or result.outcome.value)
            # the placement detection, kept while vCenter is away
            self._detected = {h.name for h in holder[0] if h.runs_vcenter}
            self._detected_agent = {h.name for h in holder[0] if h.runs_agent}
            return holder[0]
        return self._run("hosts", 60.0, work).addCallback(listed)

    def enter_maintenance(self, host: str, timeout: float) -> Deferred[Result]:
        d = self._run(f"enter maintenance on {host}", timeout,
                      lambda cancel: self.client.enter_maintenance(host, timeout, cancel))
        if host in self.direct:
            d.addCallback(no_drs)
        self._entering[host] = d

        def forget(result: Result) -> Result:
            if self._entering.get(host) is d:
                del self._entering[host]
            return result
        d.addBoth(forget)
        return d

    def exit_maintenance(self, host: str, timeout: float) -> Deferred[Result]:
        running = self._entering.get(host)
        if running is None:
            return self._exit(host, timeout)
        _log.info("{host}: exit maintenance waits for the enter still running", host=host)
        after: Deferred[Result] = Deferred()

        def relay(outcome: Result | Failure) -> Result | Failure:
            if not after.called:
                self._exit(host, timeout).chainDeferred(after)
            return outcome
        running.addBoth(relay)
        return after

    def _exit(self, host: str, timeout: float) -> Deferred[Result]:
        return self._run(f"exit maintenance on {host}", timeout,
                         lambda cancel: self.client.exit_maintenance(host, timeout, cancel))

    def shutdown_vms(self, host: str, timeout: float,
                     groups: Sequence[VmGroup] = ()) -> Deferred[Result]:
        def vcenter(cancel: threading.Event, left: float) -> Result:
            return self.client.shutdown_vms(host, left, cancel, tuple(groups))

        def direct(cancel: threading.Event, left: float) -> Result:
            return self.direct[host].shutdown_vms(host, left, cancel, tuple(groups))
        return self._step(host, f"shut down the VMs of {host}", timeout, vcenter, direct)

    def power_on_vms(self, host: str, vms: Sequence[str], groups: Sequence[VmGroup] = (),
                     timeout: float = 600.0) -> Deferred[Result]:
        return self._run(f"start the VMs of {host} again", timeout,
                         lambda cancel: self.client.power_on_vms(
                             host, tuple(vms), tuple(groups), timeout, cancel))

    def shutdown_host(self, host: str, killpower: bool = False) -> Deferred[Result]:
        def vcenter(cancel: threading.Event, _: float) -> Result:
            return self.client.shutdown_host(host, cancel)

        def direct(cancel: threading.Event, _: float) -> Result:
            return self.direct[host].shutdown_host(host, cancel)
        return self._step(host, f"shut down {host}", SHUTDOWN_LIMIT, vcenter, direct)


def _msg(exc: BaseException) -> str:
    return str(getattr(exc, "msg", "") or exc)

