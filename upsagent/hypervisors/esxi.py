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

**The vCenter's VM** is recognised on the host by its guest IP addresses (VMware Tools'
``guest.ipAddress`` and ``guest.net``): one of them is the address the host is managed
from (``summary.managementServerIp``) or an address the vCenter's URL resolves to.  Its
guest shutdown comes after every other VM's (:meth:`EsxiClient.shutdown_vms`).

**The agent's own VM** (a VM whose NIC has one of this machine's MAC addresses,
:func:`local_macs`) is never stopped by the VMs' shutdown: the host's forced shutdown stops
it, last.

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
import os
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from upsagent.hypervisors.vsphere_client import (
    TASK_GRACE, VsphereClient, _fault, vim)
from upsagent.policy.plan import VmGroup, vm_batches
from upsagent.system.runner import Outcome, Result

if TYPE_CHECKING:
    from upsagent.config.managers import EsxiConfig

__all__ = ["EsxiClient", "HostIdentity", "WrongEndpoint", "lockdown_of", "unreachable",
           "vcenter_addresses", "vcenter_uuid"]

#: the share of a VM shutdown's time kept for the vCenter's VM, which goes last
VCENTER_VM_SHARE = 0.5
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


def vcenter_addresses(url: str) -> frozenset[str]:
    """The addresses the vCenter's URL names (resolved; empty when it cannot be)."""
    host = urlsplit(url).hostname or ""
    try:
        return frozenset(str(info[4][0]) for info in socket.getaddrinfo(host, None))
    except (OSError, UnicodeError):
        return frozenset()


def local_macs(root: str = "/sys/class/net") -> frozenset[str]:
    """The MAC addresses of this machine's network interfaces (Linux), lower case, the
    all-zero one (loopback) left out: a VM whose NIC has one of them is the agent's own."""
    try:
        names = os.listdir(root)
    except OSError:
        return frozenset()
    found = set()
    for name in names:
        try:
            with open(os.path.join(root, name, "address"), encoding="ascii") as handle:
                mac = handle.read().strip().lower()
        except (OSError, UnicodeError):
            continue
        if mac and mac.strip("0:"):
            found.add(mac)
    return frozenset(found)


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

    def __init__(self, config: EsxiConfig, http_timeout: float = 30.0) -> None:
        super().__init__(config, http_timeout)
        self.expected_uuid: str | None = None
        self.identity: HostIdentity | None = None
        #: the MAC addresses of the agent's own machine (None: read them at first use)
        self.own_macs: frozenset[str] | None = None

    def connect(self) -> str:
        """Log in (again), check that the endpoint is a host agent and the right host."""
        about = super().connect()
        api = str(self.si.content.about.apiType)
        if api != "HostAgent":
            self.disconnect()
            raise WrongEndpoint(f"{self.config.url} is a {api}, not an ESXi host (HostAgent)")
        self.identity = self._identify()
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
        ident, name = self.identity, self.config.name
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
        if self.identity is not None:
            self.verify()

    def _host(self, name: str) -> Any:
        if name != self.config.name:
            raise WrongEndpoint(f"the direct session of {self.config.name} is not for {name}")
        if self.identity is None:
            self.connect()
        self.verify()
        found = self._view(vim.HostSystem, ["name"])
        if len(found) != 1:
            raise WrongEndpoint(f"{self.config.url} shows {len(found)} hosts, not one")
        return found[0][0]

    # -- operations --------------------------------------------------------------------

    def _running_details(self, host: Any) -> list[dict[str, Any]]:
        """The running VMs of ``host`` with their guest addresses and devices, in one
        read (a property a VM does not have, such as the guest's of a VM without Tools,
        is simply absent)."""
        return [p for _, p in self._view(vim.VirtualMachine, [
            "name", "runtime.powerState", "runtime.host", "config.template",
            "guest.ipAddress", "guest.net", "config.hardware.device"])
            if p.get("runtime.host") == host and not p.get("config.template")
            and p.get("runtime.powerState") == "poweredOn"]

    def vcenter_vms(self, host: Any, addresses: Iterable[str]) -> frozenset[str]:
        """The running VMs of ``host`` whose guest addresses include the management
        server's address or one of ``addresses`` (the vCenter's)."""
        wanted = set(addresses)
        management = str(getattr(host.summary, "managementServerIp", "") or "")
        if management:
            wanted.add(management)
        if not wanted:
            return frozenset()
        found = set()
        for props in self._running_details(host):
            ips = {str(props.get("guest.ipAddress") or "")}
            for nic in props.get("guest.net") or []:
                ips.update(str(ip) for ip in getattr(nic, "ipAddress", None) or [])
            if ips & wanted:
                found.add(str(props["name"]))
        return frozenset(found)

    def own_vms(self, host: Any) -> frozenset[str]:
        """The running VMs of ``host`` that are the agent's own machine (a NIC with one of
        its MAC addresses, :func:`local_macs`)."""
        if self.own_macs is None:
            self.own_macs = local_macs()
        if not self.own_macs:
            return frozenset()
        found = set()
        for props in self._running_details(host):
            macs = {str(getattr(dev, "macAddress", "") or "").lower()
                    for dev in props.get("config.hardware.device") or []
                    if isinstance(dev, vim.vm.device.VirtualEthernetCard)}
            if macs & self.own_macs:
                found.add(str(props["name"]))
        return frozenset(found)

    def shutdown_vms(self, name: str, timeout: float, cancel: threading.Event,
                     groups: tuple[VmGroup, ...] = (),
                     vcenter: Iterable[str] = ()) -> Result:
        """The VMs' shutdown of :meth:`VsphereClient.shutdown_vms`, the vCenter's VM (see
        :meth:`vcenter_vms`; ``vcenter``: its addresses) last, with at least
        :data:`VCENTER_VM_SHARE` of ``timeout`` kept for it."""
        return self.call(lambda: self._direct_vms(name, timeout, cancel, groups,
                                                  frozenset(vcenter)))

    def _direct_vms(self, name: str, timeout: float, cancel: threading.Event,
                    groups: tuple[VmGroup, ...], vcenter: frozenset[str]) -> Result:
        host = self._host(name)
        mine = self.own_vms(host)
        names = {str(p["name"]) for _, p in self._running(host)} - mine
        spared = (f"; {', '.join(sorted(mine))} left running: the agent's own VM, which "
                  "the host's shutdown stops" if mine else "")
        if not names:
            return Result(Outcome.OK, f"no VMs running{spared}")
        start = time.monotonic()
        end = start + timeout
        last = self.vcenter_vms(host, vcenter) - mine
        budget = timeout * (1 - VCENTER_VM_SHARE) if last else timeout
        batches = vm_batches(groups, names - last, budget)
        for batch, seconds in batches:
            # the groups' own timeouts, but never into the vCenter VM's share
            seconds = min(seconds, max(start + budget - time.monotonic(), 0.0))
            self._stop_batch(host, set(batch), seconds, cancel)
        if last:
            self._stop_batch(host, set(last), max(end - time.monotonic(), 0.0), cancel)
            batches.append((tuple(sorted(last)), 0.0))
        left = tuple(sorted(p["name"] for _, p in self._running(host) if p["name"] in names))
        stopped = tuple(sorted(names - set(left)))
        order = " in order " + " | ".join(", ".join(b) for b, _ in batches)
        if last:
            order += f" (the vCenter VM {', '.join(sorted(last))} last)"
        order += spared
        if left:
            return Result(Outcome.FAILED, f"{len(left)} VMs still running{order}",
                          stopped=stopped, left=left)
        return Result(Outcome.OK, f"{len(stopped)} VMs stopped{order}", stopped=stopped)

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
