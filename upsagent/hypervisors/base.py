# -*- test-case-name: tests.test_policy -*-
"""The one small interface every backend implements (docs/design.md), and their registry.

A backend *does*; the policy engine *decides*.  A backend object speaks for one manager
(a vCenter, a XenServer pool, this OS, an SSH host, a simulated cluster) and acts on the
hosts it manages by name.  Every operation returns a Deferred that fires with a
:class:`~upsagent.policy.actions.Result` saying what really happened -- moved, failed
because no host could take the VMs, timed out, not applicable, unreachable -- and never
fails for the host's sake (an exception from a backend is a bug, reported as ``failed``
by the executor).  Operations are idempotent: entering maintenance on a host already in
it, or shutting down a host already down, reports success; the engine relies on that when
it issues operations again after a restart.

**Construction.**  A backend is built from its manager's configuration record
(:mod:`upsagent.config.managers`: :class:`~upsagent.config.managers.LocalConfig`,
``VcenterConfig``, ``XenPoolConfig``, ``SshTargetConfig``, ``XenMasterConfig``), the
reactor and the runner:
``Backend.build(config, reactor, runner)``, one per manager, never one per kind (two hosts
of one vCenter share its backend; each SSH host has its own).  :func:`build_backend` does it
through the registry; the agent calls it once per manager
(:meth:`~upsagent.config.slaveconf.SlaveConfig.managers`).

Backends are registered by kind, as ``"module:Class"`` strings imported on first use, so
that ``vsphere`` (pyvmomi) or ``xen`` (XenAPI) are only needed where they are configured,
and a slave that drives only its own machine never imports another kind's module;
:func:`backend_class` turns a missing extra into "install upsagent[vsphere]".
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from twisted.internet.defer import Deferred, succeed

from upsagent.system.runner import Outcome, Result, Runner

if TYPE_CHECKING:
    from upsagent.config.managers import ManagerConfig
    from upsagent.policy.plan import VmGroup

__all__ = ["BACKENDS", "Backend", "HostInfo", "Outcome", "Result", "backend_class",
           "build_backend"]


@dataclass(frozen=True)
class HostInfo:
    """One managed host as the backend sees it now."""

    name: str
    #: None: the backend does not watch the host's connection (ssh: reached only when
    #: it acts); never a guess
    connected: bool | None
    in_maintenance: bool = False
    detail: str = ""
    #: the backend found the vCenter's own VM / this agent's own VM running on this host
    #: (vsphere: detected at every inventory; the operator's ``runs_vcenter`` /
    #: ``runs_agent`` marks hold regardless)
    runs_vcenter: bool = False
    runs_agent: bool = False


class Backend:
    """The interface; the defaults answer "not applicable" (a plain OS has no maintenance
    mode and no VMs), so a backend overrides what it can do."""

    kind: ClassVar[str] = ""

    @classmethod
    def build(cls, config: ManagerConfig, reactor: Any, runner: Runner) -> Backend:
        """The backend of one manager: ``config`` is its record (of this class's
        :attr:`kind`), ``reactor`` the one the agent runs on, ``runner`` what runs its
        commands (:class:`~upsagent.system.runner.Runner`).  Every registered kind
        overrides it; a record of another kind is a ``TypeError``."""
        raise NotImplementedError(f"{cls.__name__} is not built from a configuration")

    def connect(self) -> Deferred[Result]:
        """Log in / check that the manager answers."""
        return succeed(Result(Outcome.OK, "connected"))

    def check(self, hosts: Sequence[str]) -> Deferred[list[str]]:
        """``upsagent check-config --connect``: log in, look, change nothing; return one
        problem line per finding (the manager cannot be reached, a host of ``hosts`` does
        not exist, a privilege the plan needs is missing...), ``[]`` when all is well.
        A line names the host it is about (``host esx1: not found``); the caller prefixes
        the manager.  Never fails: a problem is a line.  The default (this OS) has nothing
        to look at."""
        return succeed([])

    def remember_maintenance(self, host: str) -> None:
        """The agent's saved state says this agent put ``host`` into maintenance before a
        restart: a backend that takes out of maintenance only the hosts it put there
        (vsphere) counts ``host`` as one of them.  The default remembers nothing."""

    def hosts(self) -> Deferred[list[HostInfo]]:
        """The managed hosts and their connection state, as the manager says now (the
        agent's inventory, :mod:`upsagent.agent.inventory`, asks every 30 s, one call at a
        time).  Fails when the manager cannot be asked (the inventory reports it
        unreachable, with the failure's message); an empty list says the manager lists no
        host, so every configured host is "not found"."""
        return succeed([])

    def enter_maintenance(self, host: str, timeout: float) -> Deferred[Result]:
        """Put ``host`` into maintenance so its VMs move away; give up after ``timeout``."""
        return succeed(Result(Outcome.NOT_APPLICABLE, f"{self.kind}: no maintenance mode"))

    def exit_maintenance(self, host: str, timeout: float) -> Deferred[Result]:
        """Take ``host`` out of maintenance, waiting up to ``timeout`` for it to answer."""
        return succeed(Result(Outcome.NOT_APPLICABLE, f"{self.kind}: no maintenance mode"))

    def shutdown_vms(self, host: str, timeout: float,
                     groups: Sequence[VmGroup] = ()) -> Deferred[Result]:
        """Stop the VMs running on ``host``: guest shutdown, power-off after ``timeout``.
        ``groups`` (a host's ``vm_groups``): stop them group by group, each powered off
        at its own timeout, the VMs matching no group last, all within ``timeout``
        (:func:`~upsagent.policy.plan.vm_batches`); a backend that cannot tell its VMs
        apart may stop them all at once within ``timeout``."""
        return succeed(Result(Outcome.NOT_APPLICABLE, f"{self.kind}: no VMs"))

    def power_on_vms(self, host: str, vms: Sequence[str], groups: Sequence[VmGroup] = (),
                     timeout: float = 600.0) -> Deferred[Result]:
        """Power is back (``power_on_vms``): start ``vms`` (the VMs the agent shut down on
        ``host``) again in reverse order of ``groups``, the VMs of no group first, once
        ``host`` is up and out of maintenance (waiting up to ``timeout`` for it).  A VM
        already running counts as started."""
        return succeed(Result(Outcome.NOT_APPLICABLE, f"{self.kind}: cannot start VMs"))

    def evacuate(self, host: str, timeout: float) -> Deferred[Result]:
        """The shutdown's evacuation step (a :class:`~upsagent.policy.actions.ShutdownVms`
        with ``evacuate``, XenServer): move the VMs away within ``timeout``.  A backend
        without one stops the VMs instead (:meth:`shutdown_vms`)."""
        return self.shutdown_vms(host, timeout)

    def shutdown_host(self, host: str, killpower: bool = False) -> Deferred[Result]:
        """Shut ``host`` down; fires once the shutdown has been accepted.  ``killpower``:
        the UPS is to switch its output off at the end (only this OS can arrange it)."""
        raise NotImplementedError

    def warn_users(self, host: str, message: str) -> Deferred[Result]:
        """Tell the users logged in on ``host``."""
        return succeed(Result(Outcome.NOT_APPLICABLE, f"{self.kind}: cannot reach users"))

    def close(self) -> Deferred[None]:
        """The agent stops: end the session with the manager, if any (never fails)."""
        return succeed(None)


#: kind -> "module:Class", imported on first use
BACKENDS: Mapping[str, str] = {
    "local": "upsagent.hypervisors.local:LocalBackend",
    "ssh": "upsagent.hypervisors.ssh:SshBackend",
    "xen": "upsagent.hypervisors.xen:XenBackend",
    "xenmaster": "upsagent.hypervisors.xenmaster:XenMasterBackend",
    "vsphere": "upsagent.hypervisors.vsphere:VsphereBackend",
}

#: the extra that provides each kind's dependencies
_EXTRAS = {"vsphere": "vsphere", "xen": "xen", "xenmaster": "xen", "ssh": "ssh"}


def backend_class(kind: str) -> type[Backend]:
    """The backend class registered for ``kind``."""
    try:
        target = BACKENDS[kind]
    except KeyError:
        raise KeyError(f"unknown backend {kind!r} (known: {', '.join(sorted(BACKENDS))})") \
            from None
    module, _, name = target.partition(":")
    try:
        cls: type[Backend] = getattr(importlib.import_module(module), name)
    except ImportError as exc:
        extra = _EXTRAS.get(kind)
        hint = f": install upsagent[{extra}]" if extra else ""
        raise ImportError(f"backend {kind!r} is not available{hint} ({exc})") from exc
    return cls


def build_backend(config: ManagerConfig, reactor: Any, runner: Runner) -> Backend:
    """The backend of the manager ``config`` describes, from the registry's class for its
    kind (:func:`backend_class`: ``KeyError`` for a kind without one, ``ImportError`` with
    the extra to install)."""
    return backend_class(config.kind).build(config, reactor, runner)
