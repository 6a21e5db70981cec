# -*- test-case-name: tests.test_vsphere -*-
"""The blocking half of the ``vsphere`` backend: one vCenter (or ESXi) session in pyvmomi.

Every method here blocks and is meant to run in a worker thread
(:class:`upsagent.hypervisors.vsphere.VsphereBackend` does that through its injected
seam).  None waits without bound: the socket has a timeout (``http_timeout``), every task
and every wait has a deadline, and the long operations look at a ``threading.Event``
between calls so that the engine can cancel them (the running vCenter task is then
cancelled with ``CancelTask``).

Certificates (:func:`ssl_context`): ``ca_file`` verifies against that CA; ``thumbprint``
pins the certificate (its SHA-256 is compared with the configured one, then the TLS
session trusts that one certificate only, so the peer must hold its key); neither: the
system's CAs; ``insecure``: no check, logged loudly at every connection.  A context is
always passed: pyVim would otherwise skip verification for ``localhost``.

The call sequences and the faults follow vSphere's API reference (EnterMaintenanceMode_Task,
ShutdownHost_Task, ShutdownGuest, PowerOffVM_Task, CancelTask).
"""

from __future__ import annotations

import hashlib
import importlib
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from twisted.logger import Logger

from upsagent.hypervisors import vsphere_vms
from upsagent.hypervisors.vsphere_vms import LocalIdentity, Resolve, VmRules
from upsagent.policy.plan import VmGroup
from upsagent.system.runner import Outcome, Result

if TYPE_CHECKING:
    from upsagent.config.managers import ApiManagerConfig

try:
    # pyVmomi's types are generated at run time; to mypy they are Any
    _connect: Any = importlib.import_module("pyVim.connect")
    _pyvmomi: Any = importlib.import_module("pyVmomi")
except ImportError as exc:  # pragma: no cover - the registry turns it into the extra's name
    raise ImportError("pyvmomi is not installed: install upsagent[vsphere]") from exc

vim: Any = _pyvmomi.vim
vmodl: Any = _pyvmomi.vmodl

__all__ = ["HostState", "SessionLost", "VsphereClient", "ssl_context"]

_log = Logger(namespace="upsagent.vsphere")
_T = TypeVar("_T")

#: the privileges the agent's steps need on each host (man upsagent-slave(8), the role)
PRIVILEGES = ("System.View", "System.Read", "Host.Config.Maintenance",
              "VirtualMachine.Interact.PowerOff")
#: what free ESXi (the vSphere Hypervisor licence) is told apart by: its edition
FREE_EDITIONS = ("esxBasic",)
#: what every free-ESXi finding says to do instead
FREE_ESXI_HINT = ("free ESXi refuses every change through the API (RestrictedVersion): "
                  "protect this host with backend = \"ssh\" instead")

#: how often a running task or a VM's power state is looked at
POLL = 0.25
#: what a task is given beyond its own timeout before we stop waiting for it
TASK_GRACE = 15.0


class Cancelled(Exception):
    """The engine cancelled the operation."""


class SessionLost(ConnectionError):
    """The session expired and logging in again failed: as unreachable as a network
    error (the vsphere backend's fallback and retries treat it so)."""


@dataclass(frozen=True)
class HostState:
    """A host as vCenter shows it."""

    name: str
    connection: str
    power: str
    in_maintenance: bool
    #: it runs the vCenter's own VM / this agent's VM (:func:`vsphere_vms.detect`)
    runs_vcenter: bool = False
    runs_agent: bool = False


def ssl_context(config: ApiManagerConfig) -> ssl.SSLContext:
    """The TLS context the configuration asks for (see the module's docstring)."""
    if config.insecure:
        _log.warn("{what} {name} ({url}): certificate NOT verified (insecure = true): anyone "
                  "on the network path can pose as it and take its password",
                  what="ESXi host" if config.kind == "esxi" else "vcenter",
                  name=config.name, url=config.url)
        return ssl._create_unverified_context()  # noqa: S323 - the operator wrote insecure
    if config.ca_file is not None:
        return ssl.create_default_context(cafile=config.ca_file)
    if config.thumbprint is not None:
        parts = urlsplit(config.url)
        pem = ssl.get_server_certificate((parts.hostname or "", parts.port or 443),
                                         timeout=30)
        got = hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()
        want = config.thumbprint.split(":", 1)[1].replace(":", "").lower()
        if got != want:
            raise ssl.SSLError(f"certificate of {config.url} has SHA-256 {got}, not the "
                               f"configured thumbprint")
        ctx = ssl.create_default_context(cadata=pem)
        ctx.check_hostname = False
        return ctx
    return ssl.create_default_context()


class VsphereClient:
    """One session to ``config``'s vCenter; blocking; re-logs in when the session is gone.

    ``owned``: the hosts this agent put into maintenance (only they are taken out again).
    ``rules`` (:class:`~upsagent.hypervisors.vsphere_vms.VmRules`, from ``config``, with
    ``identity``, this machine's SMBIOS UUID and MACs, and ``resolve``, a host name to its
    addresses, both injectable for tests): how the agent's VM and the vCenter VM are found
    and the VMs ordered; ``vapp_units``: the vApps this agent stopped as units (started again as units).
    """

    def __init__(self, config: ApiManagerConfig, http_timeout: float = 30.0,
                 identity: LocalIdentity | None = None,
                 resolve: Resolve | None = None, rules: VmRules | None = None) -> None:
        self.config = config
        self.http_timeout = http_timeout
        self.si: Any = None
        self.owned: set[str] = set()
        self.rules = rules if rules is not None else VmRules.of(config, identity, resolve)
        self.vapp_units: set[str] = set()
        self._placement: tuple[str | None, str | None] | None = None
        self._lock = threading.Lock()

    # -- session -----------------------------------------------------------------------

    def connect(self) -> str:
        """Log in (again); returns what answered ("VirtualCenter 7.0 ..." / "HostAgent")."""
        parts = urlsplit(self.config.url)
        si = _connect.SmartConnect(
            host=parts.hostname, port=parts.port or 443, path=parts.path or "/sdk",
            user=self.config.user, pwd=self.config.password,
            sslContext=ssl_context(self.config),
            httpConnectionTimeout=self.http_timeout, connectionPoolTimeout=-1)
        with self._lock:
            old, self.si = self.si, si
        if old is not None:
            try:
                _connect.Disconnect(old)
            except Exception:  # noqa: BLE001 - the old session is gone anyway
                pass
        about = si.content.about
        return f"{about.apiType} {about.version} ({about.fullName})"

    def free_esxi(self) -> str | None:
        """The free-ESXi licence this endpoint runs under ("VMware vSphere 7 Hypervisor
        (esxBasic)"), or None: its writes would all be refused with RestrictedVersion."""
        def read() -> str | None:
            manager = self.si.content.licenseManager
            for info in (manager.licenses or []) if manager is not None else []:
                if any(str(info.editionKey or "").startswith(e) for e in FREE_EDITIONS):
                    return f"{info.name} ({info.editionKey})"
            return None
        return self.call(read)

    def check(self, hosts: list[str]) -> list[str]:
        """Log in, look, change nothing: one problem line per finding (free ESXi, a host
        vCenter does not know, a privilege of :data:`PRIVILEGES` the session lacks on a
        host, a ``vcenter_vm`` / ``agent_vm`` that names no VM)."""
        try:
            self.connect()
        except Exception as exc:  # noqa: BLE001 - a failed login is a finding
            return [f"cannot log in to {self.config.url} as {self.config.user}: "
                    f"{type(exc).__name__}: {_fault(exc)}"]
        problems: list[str] = []
        free = self.free_esxi()
        if free is not None:
            problems.append(f"{free}: {FREE_ESXI_HINT}")
        known = {name: obj for obj, p in self._view(vim.HostSystem, ["name"])
                 for name in [p.get("name")] if name}
        problems += vsphere_vms.check_names(self)
        session = self.si.content.sessionManager.currentSession.key
        authorization = self.si.content.authorizationManager
        for name in hosts:
            obj = known.get(name)
            if obj is None:
                problems.append(f"host {name}: not found (vCenter has: "
                                f"{', '.join(sorted(known)) or 'no hosts'})")
                continue
            granted = list(authorization.HasPrivilegeOnEntity(obj, session, list(PRIVILEGES)))
            if len(granted) != len(PRIVILEGES):
                problems.append(f"host {name}: cannot read the user's privileges (asked "
                                f"{len(PRIVILEGES)}, answered {len(granted)})")
                continue
            missing = [p for p, ok in zip(PRIVILEGES, granted) if not ok]
            if missing:
                problems.append(f"host {name}: the user {self.config.user} lacks "
                                f"{', '.join(missing)} (see the role in upsagent-slave(8))")
        return problems

    def disconnect(self) -> None:
        """Log out (vCenter limits concurrent sessions)."""
        with self._lock:
            si, self.si = self.si, None
        if si is not None:
            try:
                _connect.Disconnect(si)
            except Exception:  # noqa: BLE001
                pass

    def call(self, fn: Callable[[], _T]) -> _T:
        """``fn()``, logging in first if needed and again once if the session expired
        (:class:`SessionLost` when that new login fails: the endpoint is not usable)."""
        if self.si is None:
            self.connect()
        try:
            return fn()
        except vim.fault.NotAuthenticated:
            _log.info("vcenter {name}: session expired, logging in again",
                      name=self.config.name)
            try:
                self.connect()
            except Exception as exc:
                raise SessionLost(f"{self.config.url}: the session was lost and the new "
                                  f"login failed: {_fault(exc)}") from exc
            return fn()

    def keep_alive(self) -> None:
        """A cheap call that keeps the session from expiring (and re-logs in if it did)."""
        self.call(lambda: self.si.CurrentTime())

    # -- inventory ---------------------------------------------------------------------

    def _view(self, kind: Any, props: list[str]) -> list[tuple[Any, dict[str, Any]]]:
        content = self.si.content
        view = content.viewManager.CreateContainerView(content.rootFolder, [kind], True)
        try:
            pc = vmodl.query.PropertyCollector
            spec = pc.FilterSpec(
                objectSet=[pc.ObjectSpec(obj=view, skip=True, selectSet=[pc.TraversalSpec(
                    name="v", path="view", skip=False, type=vim.view.ContainerView)])],
                propSet=[pc.PropertySpec(type=kind, pathSet=props)])
            result = content.propertyCollector.RetrievePropertiesEx(
                [spec], pc.RetrieveOptions())
            objects = list(result.objects) if result is not None else []
            while result is not None and result.token:
                result = content.propertyCollector.ContinueRetrievePropertiesEx(result.token)
                objects.extend(result.objects)
            return [(o.obj, {p.name: p.val for p in o.propSet}) for o in objects]
        finally:
            view.Destroy()

    def hosts(self) -> list[HostState]:
        """Every host vCenter knows, with the ones that run the vCenter VM and this agent's
        VM marked (:func:`vsphere_vms.detect`; a change is logged)."""
        def read() -> list[HostState]:
            found = self._view(vim.HostSystem, ["name", "runtime.connectionState",
                                                "runtime.powerState",
                                                "runtime.inMaintenanceMode"])
            try:
                placement = vsphere_vms.detect(self, vsphere_vms.read_vms(self))
            except vim.fault.NotAuthenticated:
                raise
            except Exception as exc:  # noqa: BLE001 - the hosts are still worth listing
                _log.warn("vcenter {name}: cannot tell where the vCenter VM and the agent's "
                          "VM run: {exc}", name=self.config.name, exc=exc)
                placement = vsphere_vms.Placement()
            vc, agent = placement.vcenter_vm, placement.agent_vm
            names = {obj._moId: p.get("name", "") for obj, p in found}
            seen = (f"{vc.name} on {names.get(vc.host)}" if vc is not None else None,
                    f"{agent.name} on {names.get(agent.host)}" if agent is not None else None)
            if seen != self._placement:
                self._placement = seen
                _log.info("vcenter {name}: the vCenter VM: {vc}; the agent's VM: {agent} "
                          "({how})", name=self.config.name, vc=seen[0] or "not found",
                          agent=seen[1] or "not found", how="; ".join(placement.how))
            return [HostState(p.get("name", ""), str(p.get("runtime.connectionState")),
                              str(p.get("runtime.powerState")),
                              bool(p.get("runtime.inMaintenanceMode")),
                              vc is not None and vc.host == obj._moId,
                              agent is not None and agent.host == obj._moId)
                    for obj, p in found]
        return self.call(read)

    def _host(self, name: str) -> Any:
        for obj, props in self._view(vim.HostSystem, ["name"]):
            if props.get("name") == name:
                return obj
        raise LookupError(f"vcenter {self.config.name} has no host {name!r}")

    def _vms(self, host: Any) -> list[tuple[Any, dict[str, Any]]]:
        """The VMs on ``host``: name, power state, tools, template."""
        return [(vm, p) for vm, p in self._view(vim.VirtualMachine, [
            "name", "runtime.powerState", "runtime.host", "guest.toolsRunningStatus",
            "config.template"]) if p.get("runtime.host") == host]

    def _running(self, host: Any) -> list[tuple[Any, dict[str, Any]]]:
        return [(vm, p) for vm, p in self._vms(host)
                if p.get("runtime.powerState") == "poweredOn" and not p.get("config.template")]

    # -- tasks -------------------------------------------------------------------------

    def _wait_task(self, task: Any, deadline: float, cancel: threading.Event) -> Any:
        """Wait for ``task`` to end; ``None`` on success, else its fault.  Cancels it on
        ``cancel`` (raising :class:`Cancelled`) or at ``deadline`` (raising TimeoutError)."""
        while True:
            info = task.info
            if info.state == "success":
                return None
            if info.state == "error":
                return info.error
            if cancel.is_set() or time.monotonic() >= deadline:
                try:
                    task.CancelTask()
                except Exception as exc:  # noqa: BLE001 - not cancelable, or finished
                    _log.info("cancelling {task}: {exc}", task=info.key, exc=exc)
                if cancel.is_set():
                    raise Cancelled()
                raise TimeoutError(f"task {info.descriptionId} did not end in time")
            time.sleep(POLL)

    # -- operations --------------------------------------------------------------------

    def enter_maintenance(self, name: str, timeout: float, cancel: threading.Event) -> Result:
        """Maintenance mode, the VMs moved away by DRS within ``timeout`` seconds."""
        return self.call(lambda: self._enter(name, timeout, cancel))

    def _enter(self, name: str, timeout: float, cancel: threading.Event) -> Result:
        host = self._host(name)
        if host.runtime.inMaintenanceMode:
            return Result(Outcome.OK, "already in maintenance")
        if host.runtime.connectionState != "connected":
            return Result(Outcome.UNREACHABLE, f"host is {host.runtime.connectionState}")
        before = {p["name"] for _, p in self._running(host)}
        if before and not self._drs_can_place(host):
            return Result(Outcome.NO_TARGET, "no DRS in fully automated mode with another "
                          "usable host to take the VMs", left=tuple(sorted(before)))
        seconds = max(int(timeout), 1)
        task = host.EnterMaintenanceMode_Task(timeout=seconds, evacuatePoweredOffVms=False)
        self.owned.add(name)
        try:
            fault = self._wait_task(task, time.monotonic() + seconds + TASK_GRACE, cancel)
        except Cancelled:
            self._settle(task)
            if not host.runtime.inMaintenanceMode:
                self.owned.discard(name)
            raise
        except TimeoutError as exc:
            fault = exc
        moved = tuple(sorted((p["name"], self._name(p["runtime.host"]))
                             for _, p in self._view(vim.VirtualMachine,
                                                    ["name", "runtime.host"])
                             if p["name"] in before and p["runtime.host"] != host))
        if fault is None:
            return Result(Outcome.OK, f"in maintenance, {len(moved)} VMs moved", moved=moved)
        if not host.runtime.inMaintenanceMode:
            self.owned.discard(name)
        left = tuple(sorted(p["name"] for _, p in self._running(host)))
        if isinstance(getattr(fault, "fault", fault), (
                vim.fault.Timedout, vim.fault.InsufficientResourcesFault, TimeoutError)):
            return Result(Outcome.NO_TARGET, f"DRS could not move {len(left)} VMs within "
                          f"{seconds} s: {_fault(fault)}", moved=moved, left=left)
        return Result(Outcome.FAILED, _fault(fault), moved=moved, left=left)

    def _settle(self, task: Any) -> None:
        """Wait briefly for a cancelled task to end (the vMotion in flight completes)."""
        deadline = time.monotonic() + TASK_GRACE
        while time.monotonic() < deadline and task.info.state in ("queued", "running"):
            time.sleep(POLL)

    def _name(self, obj: Any) -> str:
        return str(obj.name) if obj is not None else "?"

    def _drs_can_place(self, host: Any) -> bool:
        cluster = host.parent
        if not isinstance(cluster, vim.ClusterComputeResource):
            return False
        drs = cluster.configurationEx.drsConfig
        if not drs.enabled or drs.defaultVmBehavior not in (None, "fullyAutomated"):
            return False
        return any(other != host and other.runtime.connectionState == "connected"
                   and other.runtime.powerState == "poweredOn"
                   and not other.runtime.inMaintenanceMode for other in cluster.host)

    def exit_maintenance(self, name: str, timeout: float, cancel: threading.Event) -> Result:
        """Out of maintenance, only if this agent put the host there; waits up to
        ``timeout`` for the host to be connected (it may be booting)."""
        return self.call(lambda: self._exit(name, timeout, cancel))

    def _exit(self, name: str, timeout: float, cancel: threading.Event) -> Result:
        if name not in self.owned:
            return Result(Outcome.NOT_APPLICABLE, "not put into maintenance by this agent: "
                          "left as it is")
        host = self._host(name)
        deadline = time.monotonic() + timeout
        while host.runtime.connectionState != "connected":
            if cancel.is_set():
                raise Cancelled()
            if time.monotonic() >= deadline:
                return Result(Outcome.UNREACHABLE, f"host still {host.runtime.connectionState} "
                              f"after {timeout:g} s")
            time.sleep(POLL)
        if not host.runtime.inMaintenanceMode:
            self.owned.discard(name)
            return Result(Outcome.OK, "not in maintenance")
        task = host.ExitMaintenanceMode_Task(timeout=max(int(deadline - time.monotonic()), 1))
        try:
            fault = self._wait_task(task, deadline + TASK_GRACE, cancel)
        except TimeoutError as exc:
            return Result(Outcome.TIMED_OUT, str(exc))
        if fault is not None:
            return Result(Outcome.FAILED, _fault(fault))
        self.owned.discard(name)
        return Result(Outcome.OK, "out of maintenance")

    def shutdown_vms(self, name: str, timeout: float, cancel: threading.Event,
                     groups: tuple[VmGroup, ...] = ()) -> Result:
        """Guest shutdown of the VMs whose tools run, power-off of the others; power-off of
        whatever is still on after ``timeout``.  With ``groups``, group after group, each
        powered off at its own timeout, the VMs matching no group last with what is left
        of ``timeout``; the vCenter VM, the agent's VM, vApps and ``last_vms`` as
        :func:`vsphere_vms.shutdown_vms` says."""
        return self.call(lambda: self._shutdown_vms(name, timeout, cancel, groups))

    def _shutdown_vms(self, name: str, timeout: float, cancel: threading.Event,
                      groups: tuple[VmGroup, ...] = ()) -> Result:
        return vsphere_vms.shutdown_vms(self, name, timeout, cancel, groups)

    def power_on_vms(self, name: str, vms: tuple[str, ...], groups: tuple[VmGroup, ...],
                     timeout: float, cancel: threading.Event) -> Result:
        """Start ``vms`` on host ``name`` again, in reverse group order (the VMs of no
        group first), once the host is connected and out of maintenance (waiting up to
        ``timeout``); each batch's power-on tasks end before the next batch starts."""
        return self.call(lambda: self._power_on_vms(name, vms, groups, timeout, cancel))

    def _power_on_vms(self, name: str, vms: tuple[str, ...], groups: tuple[VmGroup, ...],
                      timeout: float, cancel: threading.Event) -> Result:
        host = self._host(name)
        deadline = time.monotonic() + timeout
        while (host.runtime.connectionState != "connected"
               or host.runtime.inMaintenanceMode):
            if cancel.is_set():
                raise Cancelled()
            if time.monotonic() >= deadline:
                state = ("in maintenance" if host.runtime.connectionState == "connected"
                         else host.runtime.connectionState)
                return Result(Outcome.UNREACHABLE, f"host still {state} after {timeout:g} s",
                              left=tuple(sorted(vms)))
            time.sleep(POLL)
        started = vsphere_vms.start_vms(self, name, vms, groups, deadline, cancel)
        left = tuple(sorted(set(vms) - set(started)))
        if left:
            return Result(Outcome.FAILED, f"{len(left)} VMs not started", left=left,
                          stopped=tuple(started))
        return Result(Outcome.OK, f"{len(started)} VMs started: {', '.join(started)}",
                      stopped=tuple(started))

    def shutdown_host(self, name: str, cancel: threading.Event) -> Result:
        """Shut the host down: plain when in maintenance, forced otherwise."""
        return self.call(lambda: self._shutdown_host(name, cancel))

    def _shutdown_host(self, name: str, cancel: threading.Event) -> Result:
        host = self._host(name)
        if host.runtime.powerState == "poweredOff" or \
                host.runtime.connectionState == "notResponding":
            return Result(Outcome.OK, "already down")
        force = not host.runtime.inMaintenanceMode
        task = host.ShutdownHost_Task(force=force)
        try:
            fault = self._wait_task(task, time.monotonic() + TASK_GRACE * 4, cancel)
        except TimeoutError as exc:
            return Result(Outcome.TIMED_OUT, str(exc))
        if fault is not None:
            return Result(Outcome.FAILED, _fault(fault))
        return Result(Outcome.OK, "shutdown accepted" + (" (forced: not in maintenance)"
                                                         if force else ""))


def _fault(fault: Any) -> str:
    """A fault in words: its type and message."""
    inner = getattr(fault, "fault", None) or fault
    message = getattr(fault, "localizedMessage", None) or getattr(inner, "msg", None) or ""
    return f"{type(inner).__name__.rsplit('.', 1)[-1]}" + (f": {message}" if message else "")
