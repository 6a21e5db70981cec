# -*- test-case-name: tests.test_vsphere_esxi -*-
"""The direct ESXi session of a ``vsphere`` host (``[host.esxi]``): the blocking half.

Once the vCenter is gone (its VM stopped, or its service unreachable), the steps of a host
can still be carried out by the host itself: hostd answers the same API (``apiType``
``HostAgent``), with one host in its inventory, no DRS, and the host's own VMs.
:class:`EsxiClient` is that session; :class:`~upsagent.hypervisors.vsphere.VsphereBackend`
decides when to use it (its module says when) and runs it through the same seam and
deadlines as the vCenter's.

**The right host.**  An action through a direct session must never reach another machine
than the one the plan names.  The session's host is identified by its hardware UUID
(``hardware.systemInfo.uuid``, the same through vCenter and hostd): when the backend has
read the UUID vCenter gives the host (at connect, at every keep-alive), the session must
show that UUID; before vCenter ever answered, the host's own name must be the configured
one (equal ignoring case, or the same first label when one of them is a short name).
Anything else refuses the session for every step (:class:`WrongEndpoint`).

**The VMs' shutdown** is the vCenter's (:func:`~upsagent.hypervisors.vsphere_vms.
shutdown_vms`, with the vCenter's :class:`~upsagent.hypervisors.vsphere_vms.VmRules`): the
groups, the VMs of no group, then the vCenter's own VM (found as through vCenter:
``vcenter_vm``, else its guest addresses, which over the direct session may also be the
address the host is managed from, ``summary.managementServerIp``), then ``last_vms``.  The
agent's own VM is never stopped by it: the host's forced shutdown stops it, last.

**The host's shutdown** (:meth:`EsxiClient.shutdown_host`): plain when the host is already in
maintenance, forced otherwise (the host stops what still runs, such as the agent's own VM).
It does not enter maintenance first, though hostd would (without DRS, once the VMs are
off): a host shut down in maintenance boots in it, where its VMs, the vCenter's among
them, cannot start, and nothing but that host's own endpoint could take it out.  The
endpoint stops answering soon after: a connection lost after the shutdown was issued is
the expected end, reported as accepted.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from upsagent.hypervisors.vsphere_client import (
    TASK_GRACE, VsphereClient, _fault, vim)
from upsagent.hypervisors.vsphere_vms import VmRules
from upsagent.system.runner import Outcome, Result

if TYPE_CHECKING:
    from upsagent.config.managers import EsxiConfig

__all__ = ["EsxiClient", "HostIdentity", "WrongEndpoint", "lockdown_of", "unreachable",
           "vcenter_uuid"]

#: what pyVim says when an endpoint does not answer its version probe
_NOT_ANSWERING = "is down or is not a VIM server"


class WrongEndpoint(LookupError):
    """The direct session does not reach the host it is configured for (another host, or
    a vCenter); no step goes through it."""


@dataclass(frozen=True)
class HostIdentity:
    """What the direct session's host says it is."""

    name: str
    uuid: str


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` means the endpoint does not answer (rather than refused or failed):
    a network error, an HTTP-level failure (a 503 from a vCenter whose services are down,
    a dropped connection), or pyVim finding no VIM service at the address."""
    if isinstance(exc, (OSError, ConnectionError, socket.timeout, http.client.HTTPException)):
        return True
    return type(exc) is Exception and _NOT_ANSWERING in str(exc)


def vcenter_uuid(client: VsphereClient, name: str) -> str:
    """The hardware UUID the vCenter of ``client`` gives host ``name`` (blocking)."""
    return str(client.call(lambda: client._host(name).hardware.systemInfo.uuid))


def lockdown_of(client: VsphereClient, name: str) -> str | None:
    """Host ``name``'s lockdown mode as its vCenter shows it (``lockdownNormal``,
    ``lockdownStrict``), or None when it is off or unknown (blocking)."""
    def read() -> str | None:
        config = client._host(name).config
        mode = str(getattr(config, "lockdownMode", "") or "")
        return mode if mode and mode != "lockdownDisabled" else None
    return client.call(read)


def same_name(a: str, b: str) -> bool:
    """Host names that are the same host: equal ignoring case, or the same first label
    when one of them is a short name."""
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    if a == b:
        return True
    if "." in a and "." in b or _is_address(a) or _is_address(b):
        return False
    return a.split(".", 1)[0] == b.split(".", 1)[0]


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class EsxiClient(VsphereClient):
    """One direct session to the ESXi host ``config.name`` (blocking; see the module).

    ``expected_uuid``: the host's hardware UUID as vCenter gives it, once read; the
    session's host must show it.
    """

    def __init__(self, config: EsxiConfig, http_timeout: float = 30.0,
                 rules: VmRules | None = None) -> None:
        super().__init__(config, http_timeout, rules=rules)
        self.expected_uuid: str | None = None
        self.host_identity: HostIdentity | None = None

    def connect(self) -> str:
        """Log in (again), check that the endpoint is a host agent and the right host."""
        about = super().connect()
        api = str(self.si.content.about.apiType)
        if api != "HostAgent":
            self.disconnect()
            raise WrongEndpoint(f"{self.config.url} is a {api}, not an ESXi host (HostAgent)")
        self.host_identity = self._identify()
        self.verify()
        return about

    def check(self, hosts: list[str]) -> list[str]:
        """:meth:`VsphereClient.check` of the host's own endpoint; a session that is not
        that host's (:class:`WrongEndpoint`) is the one finding."""
        try:
            self.connect()
        except WrongEndpoint as exc:
            return [str(exc)]
        except Exception:  # noqa: BLE001 - the check's own login says why
            pass
        return super().check(hosts)

    def _identify(self) -> HostIdentity:
        found = self._view(vim.HostSystem, ["name", "hardware.systemInfo.uuid"])
        if len(found) != 1:
            raise WrongEndpoint(f"{self.config.url} shows {len(found)} hosts, not one")
        _, props = found[0]
        return HostIdentity(str(props.get("name", "")),
                            str(props.get("hardware.systemInfo.uuid", "")))

    def verify(self) -> None:
        """Raise :class:`WrongEndpoint` unless the session's host is ``config.name``."""
        ident, name = self.host_identity, self.config.name
        if ident is None:
            raise WrongEndpoint(f"{self.config.url}: not logged in")
        if self.expected_uuid is not None:
            if ident.uuid.lower() != self.expected_uuid.lower():
                raise WrongEndpoint(
                    f"{self.config.url} is host {ident.name!r} (uuid {ident.uuid}), not "
                    f"{name!r} (uuid {self.expected_uuid} in vCenter)")
        elif not same_name(ident.name, name):
            raise WrongEndpoint(
                f"{self.config.url} calls itself {ident.name!r}, not {name!r}, and vCenter "
                "has not answered to compare their hardware UUIDs")

    def expect(self, uuid: str) -> None:
        """vCenter gives the host ``uuid``: from now on the session must show it."""
        self.expected_uuid = uuid
        if self.host_identity is not None:
            self.verify()

    def _host(self, name: str) -> Any:
        if name != self.config.name:
            raise WrongEndpoint(f"the direct session of {self.config.name} is not for {name}")
        if self.host_identity is None:
            self.connect()
        self.verify()
        found = self._view(vim.HostSystem, ["name"])
        if len(found) != 1:
            raise WrongEndpoint(f"{self.config.url} shows {len(found)} hosts, not one")
        return found[0][0]

    # -- operations --------------------------------------------------------------------

    def shutdown_host(self, name: str, cancel: threading.Event) -> Result:
        """Plain in maintenance, forced otherwise (see the module); a lost connection once
        the shutdown was issued is the expected end."""
        return self.call(lambda: self._direct_shutdown(name, cancel))

    def _direct_shutdown(self, name: str, cancel: threading.Event) -> Result:
        host = self._host(name)
        if host.runtime.inMaintenanceMode:
            force, note = False, ""
        else:
            running = sorted(str(p["name"]) for _, p in self._running(host))
            force = True
            note = (f" (forced: {len(running)} VMs still running: {', '.join(running)})"
                    if running else " (forced: not in maintenance)")
        task = host.ShutdownHost_Task(force=force)
        try:
            fault = self._wait_task(task, time.monotonic() + TASK_GRACE * 4, cancel)
        except TimeoutError as exc:
            return Result(Outcome.TIMED_OUT, str(exc))
        except Exception as exc:  # noqa: BLE001 - the host went down under us
            if unreachable(exc):
                return Result(Outcome.OK, f"shutdown accepted{note}; the host stopped "
                              "answering (the expected end)")
            raise
        if fault is not None:
            return Result(Outcome.FAILED, _fault(fault))
        return Result(Outcome.OK, f"shutdown accepted{note}")
