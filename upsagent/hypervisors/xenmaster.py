# -*- test-case-name: tests.test_xenmaster -*-
"""The XenServer / XCP-ng pool master protected by its own agent (``backend =
"xenmaster"``): the agent runs in the master's dom0, and the master is the agent's own
machine.

The pool master is never scheduled with the other hosts (the ``xen`` backend refuses to
touch it; research (c), REQUIREMENTS §5); when it is the pool's last host, its own agent
stops the VMs left on it and then itself (rules R4/R6: a host kind whose shutdown includes
its VMs, and that goes last as the agent's own host).  One :class:`XenMasterBackend` per
``xenmaster`` host, built from a :class:`~upsagent.config.managers.XenMasterConfig`: the
``[[slave.xenpool]]`` it names (``url`` may be ``https://localhost`` or the master's
address; the same certificate options as the ``xen`` backend) and ``[slave]``'s own
shutdown settings.

* **Session**, threads, tasks, cancellation: the ``xen`` backend's
  (:class:`~upsagent.hypervisors.xen.XenPool`, :meth:`~upsagent.hypervisors.xen.
  XenBackend.run`): ``HOST_IS_SLAVE`` is followed, a cancelled operation cancels its xapi
  task, an operation that does not answer past its limit is ``timed-out``.
* **shutdown_vms**: ``host.disable`` of this host first (no VM is started on it any more,
  neither by an operator nor by HA, while its VMs stop; a refusal is logged, the VMs are
  stopped anyway), then its running VMs, group by group
  (:func:`~upsagent.hypervisors.xenvms.stop_vms`: clean shutdown, hard shutdown past the
  group's timeout); the Result lists the VMs ``stopped``.
* **shutdown_host**: xapi is told first (``host.disable``, if still enabled, at most
  :data:`DISABLE_LIMIT` seconds; a failure or no answer is logged and never stops what
  follows), then this OS's shutdown exactly as the ``local`` backend does it
  (:class:`~upsagent.hypervisors.local.LocalBackend`: the shutdown command, the
  POWERDOWNFLAG for ``killpower``).  Not ``host.shutdown``: the operator's shutdown command
  and the power-down flag are this OS's, and xapi's ``host.shutdown`` would only run its own
  ``shutdown -h`` seconds later.  A host that rebooted comes back enabled.
* **warn_users**: as ``local`` (``wall``).
* **Maintenance** does not apply: the master is the last host, there is nothing to move
  its VMs to.
* **check** (``check-config --connect``): log in, find this host by its name-label and
  report whether it is the pool master; if it is not, say so (members are ``xen`` hosts).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from upsagent.hypervisors.base import Backend, HostInfo
from upsagent.hypervisors.local import LocalBackend
from upsagent.hypervisors.xen import XenBackend, XenPool
from upsagent.hypervisors.xenvms import stop_vms, time_limit
from upsagent.system.runner import Outcome, Result, Runner
from upsagent.system.threads import Blocking

if TYPE_CHECKING:
    from upsagent.config.managers import ManagerConfig, XenMasterConfig
    from upsagent.policy.plan import VmGroup

__all__ = ["DISABLE_LIMIT", "XenMasterBackend"]

_log = Logger()

#: seconds xapi gets to disable this host before this OS's shutdown runs without it
DISABLE_LIMIT = 20.0


class _PoolSide(XenBackend):
    """The xen backend's machinery as the xenmaster backend uses it (its log lines say
    ``xenmaster``); never registered, never built from a configuration."""

    kind = "xenmaster"


class XenMasterBackend(Backend):
    """The pool master the agent runs on: its VMs through xapi, its shutdown as this OS."""

    kind = "xenmaster"

    def __init__(self, name: str, pool: XenPool, in_thread: Blocking, local: LocalBackend,
                 reactor: Any) -> None:
        self.name = name
        self.local = local
        self.reactor = reactor
        #: the pool's session, threads and watched operations (the xen backend's)
        self.xen: XenBackend = _PoolSide(pool, in_thread, reactor)

    @property
    def pool(self) -> XenPool:
        return self.xen.pool

    @classmethod
    def build(cls, config: ManagerConfig, reactor: Any, runner: Runner) -> XenMasterBackend:
        """The backend of one ``xenmaster`` host (:class:`XenMasterConfig`)."""
        if config.kind != cls.kind:
            raise TypeError(f"{cls.__name__} is built from a xenmaster configuration, not "
                            f"{type(config).__name__}")
        from upsagent.system.threads import in_thread
        master = cast("XenMasterConfig", config)
        local = LocalBackend.build(master.local, reactor, runner)
        return cls(master.name, XenPool(master.pool), in_thread(reactor), local, reactor)

    # -- the session -----------------------------------------------------------------

    def connect(self) -> Deferred[Result]:
        """Log in to the pool master (following ``HOST_IS_SLAVE``)."""
        return self.xen.connect()

    def close(self) -> Deferred[None]:
        """Log out of the session with the pool master, if open."""
        return self.xen.close()

    def check(self, hosts: Sequence[str]) -> Deferred[list[str]]:
        """Log in, find each of ``hosts`` (this host) by name-label and check that it is
        the pool master; one line per problem, ``[]`` when all is well.  Only reads."""
        name = self.pool.config.name
        found: list[str] = []

        def work(stop: threading.Event) -> Result:
            api = self.pool.api()
            records = api.host.get_all_records()
            labels = {ref: rec["name_label"] for ref, rec in records.items()}
            pools = api.pool.get_all()
            master = api.pool.get_master(pools[0]) if pools else None
            for host in hosts:
                ref = next((r for r, label in labels.items() if label == host), None)
                if ref is None:
                    found.append(f"host {host}: no host with that name-label in pool {name} "
                                 f"(it has: {', '.join(sorted(labels.values()))})")
                elif ref != master:
                    found.append(f"host {host}: not the pool master of pool {name} (the "
                                 f"master is {labels.get(str(master), master)}): a xenmaster "
                                 "host is the pool master the agent runs on; a pool member "
                                 "is a \"xen\" host, shut down by an agent that manages it")
                else:
                    _log.info("xen pool {pool}: {host} is the pool master", pool=name,
                              host=host)
            return Result(Outcome.OK, f"pool {name} checked")

        def lines(result: Result) -> list[str]:
            return found if result.ok else [f"pool {name}: {result.detail}"]
        return self.xen.run(f"check of pool {name}", work, 60.0).addCallback(lines)

    def hosts(self) -> Deferred[list[HostInfo]]:
        """This host as xapi sees it (live, disabled, pool master or not); fails when xapi
        does not answer (the inventory reports it unreachable)."""
        found: list[HostInfo] = []

        def work(stop: threading.Event) -> Result:
            ref, rec = self.pool.host(self.name)
            role = "pool master" if self.pool.is_master(ref) else "not the pool master"
            found.append(HostInfo(self.name, self.pool.liveness({ref: rec})[ref],
                                  not rec.get("enabled", True), role))
            return Result(Outcome.OK)

        def listed(result: Result) -> list[HostInfo]:
            if not result.ok or not found:
                raise ConnectionError(f"xapi: {result.detail or result.outcome.value}")
            return found
        return self.xen.run(f"state of {self.name}", work, 60.0).addCallback(listed)

    # -- the operations ----------------------------------------------------------------

    def _disable(self, host: str) -> str:
        """``host.disable`` of ``host`` if it is enabled (blocking): what was done."""
        ref, rec = self.pool.host(host)
        if not rec.get("enabled", True):
            return f"{host} already disabled in xapi"
        self.pool.api().host.disable(ref)
        return f"{host} disabled in xapi"

    def shutdown_vms(self, host: str, timeout: float,
                     groups: Sequence[VmGroup] = ()) -> Deferred[Result]:
        """``host.disable``, then the running VMs of this host, group by group."""
        import XenAPI

        def work(stop: threading.Event) -> Result:
            try:
                _log.info("{what}", what=self._disable(host))
            except XenAPI.Failure as exc:
                _log.warn("{host}: host.disable refused ({why}); stopping its VMs anyway",
                          host=host, why=" ".join(map(str, exc.details)))
            return stop_vms(self.pool, host, timeout, stop, groups)
        return self.xen.run(f"VMs of {host}", work, time_limit(timeout, groups))

    def evacuate(self, host: str, timeout: float) -> Deferred[Result]:
        """The pool master has nowhere to send its VMs: they are stopped."""
        return self.shutdown_vms(host, timeout)

    def enter_maintenance(self, host: str, timeout: float) -> Deferred[Result]:
        return succeed(Result(Outcome.NOT_APPLICABLE, f"{host} is the pool master: no "
                              "maintenance (its VMs are stopped at its shutdown)"))

    def exit_maintenance(self, host: str, timeout: float) -> Deferred[Result]:
        return succeed(Result(Outcome.NOT_APPLICABLE, f"{host} is the pool master: no "
                              "maintenance"))

    def shutdown_host(self, host: str, killpower: bool = False) -> Deferred[Result]:
        """Tell xapi (``host.disable``, at most :data:`DISABLE_LIMIT` s), then this OS's
        shutdown as the ``local`` backend runs it; xapi's failure is a note in the
        Result, never a reason not to shut down.  Cancelled while xapi is being told
        (the engine aborting the step): ``cancelled``, this OS's shutdown not run; once
        that runs, a cancel leaves it running."""
        cancelled: list[bool] = []
        started: list[bool] = []

        def cancel(_: Deferred[Result]) -> None:
            cancelled.append(True)
            if not started:        # once this OS's shutdown runs, it is not undone
                told.cancel()
        outer: Deferred[Result] = Deferred(cancel)
        told = self.xen.run(f"disable {host}",
                            lambda stop: Result(Outcome.OK, self._disable(host)))
        timer = self.reactor.callLater(DISABLE_LIMIT, told.cancel)

        def local(result: Result | Any) -> Deferred[Result] | Result:
            if timer.active():
                timer.cancel()
            if cancelled:
                return Result(Outcome.CANCELLED, f"shutdown of {host}: cancelled")
            started.append(True)
            if not isinstance(result, Result):
                result = Result(Outcome.FAILED, str(result))
            note = result.detail if result.ok else f"xapi not told: {result.detail}"
            if not result.ok:
                _log.warn("{host}: {note}; shutting down all the same", host=host, note=note)

            def noted(done: Result) -> Result:
                return replace(done, detail=f"{done.detail} ({note})" if done.detail
                               else note)
            return self.local.shutdown_host(host, killpower).addCallback(noted)

        def relay(result: Any) -> None:
            if not outer.called:
                outer.callback(result)
        told.addBoth(local).addBoth(relay)
        return outer

    def warn_users(self, host: str, message: str) -> Deferred[Result]:
        return self.local.warn_users(host, message)
