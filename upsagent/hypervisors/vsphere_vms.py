# -*- test-case-name: tests.test_vsphere_vms -*-
"""The VMs of a vSphere host, for the ``vsphere`` backend: where the vCenter's own VM and
this agent's VM run, and how a host's VMs are stopped and started again (groups, vApps as
units, infrastructure VMs last).  Blocking, like :mod:`~upsagent.hypervisors.vsphere_client`
(whose session it uses); the planning (:func:`plan_batches`) is pure.

**Detection** (:func:`detect`, every inventory): the vCenter VM is the VM named
``vcenter_vm``, else the powered-on VM whose guest addresses (``guest.ipAddress``,
``guest.net[].ipAddress``) include an address of the vCenter URL's host (resolved, IPv4
and IPv6).  The agent's VM is the VM named ``agent_vm``, else the powered-on VM whose
``config.uuid`` is this machine's SMBIOS UUID (``/sys/class/dmi/id/product_uuid``; VMware
shows the VM's ``config.uuid`` there, with the first three fields byte-swapped on some
versions, so both forms are compared), else the one with a virtual NIC of this machine's
MAC addresses (``guest.net[].macAddress``, and the virtual NICs' ``macAddress`` read only
when this machine has a VMware MAC: 00:50:56, 00:0c:29, 00:05:69, 00:1c:14).  Not a VM,
several candidates, or no match: no VM, no host marked.  Properties are read in bulk
through the PropertyCollector (reading an unset one by accessor crashes vcsim 0.24.2).

**Shutdown of a host's VMs** (:func:`shutdown_vms`), in batches (:func:`plan_batches`):
the ``vm_groups`` in order, the VMs of no group, then the vCenter VM, then the
infrastructure VMs (``last_vms``).  Never stopped by this path: the agent's own VM (the
host's forced shutdown stops it, after the other hosts: stopping it here would stop the
agent), and the vCenter VM when the session goes through that vCenter (``apiType``
VirtualCenter): stopping it would cut the session the host's shutdown needs, so the
host's forced shutdown stops it too; over a direct ESXi session (``HostAgent``) it is
stopped after the others and before the infrastructure VMs it depends on.  Those VMs are
reported in ``left`` with an OK outcome.

**vApps**: a vApp whose powered-on members all run on this host is one unit, stopped with
``PowerOffVApp_Task(force=False)`` (the vApp's own stop order, its entityConfig), in the
group its name matches, else the earliest group one of its members matches; members still
on at the batch's end are powered off one by one.  A vApp with powered-on members on other
hosts (or holding the agent's or the vCenter VM) is not touched as a unit: its members on
this host are stopped one by one, and the reason is logged.  :func:`start_vms` starts a
vApp with ``PowerOnVApp_Task`` when the agent stopped it as one (remembered, or: all its
members are among the VMs to start and registered on this host).
"""

from __future__ import annotations

import importlib
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from twisted.logger import Logger

from upsagent.policy.plan import VmGroup
from upsagent.system.runner import Outcome, Result

if TYPE_CHECKING:
    from upsagent.hypervisors.vsphere_client import VsphereClient

__all__ = ["Batch", "LocalIdentity", "Placement", "Unit", "VmInfo", "VmRules", "addresses_of",
           "check_names", "detect", "plan_batches", "read_vms", "session_is_vcenter",
           "shutdown_vms", "start_vms", "swap_uuid"]

_log = Logger(namespace="upsagent.vsphere")
vim: Any = importlib.import_module("pyVmomi").vim
_fault: Any = importlib.import_module("pyVmomi").vmodl.MethodFault

#: the OUIs of VMware's virtual NICs (generated and static MACs)
VMWARE_OUIS = ("00:50:56", "00:0c:29", "00:05:69", "00:1c:14")
VM_PROPS = ("name", "runtime.powerState", "runtime.host", "guest.toolsRunningStatus",
            "config.template", "config.uuid", "guest.ipAddress", "guest.net", "parentVApp")
#: what the wait for VMs to stop reads, every POLL seconds
POWER_PROPS = ("name", "runtime.powerState", "runtime.host", "config.template")
_TOOLS_RUNNING = ("guestToolsRunning", "guestToolsExecutingScripts")
POLL = 0.25
TASK_GRACE = 15.0
Resolve = Callable[[str], Iterable[str]]


def _resolve(host: str) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, None)]


def _ip(text: str) -> str | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0]).compressed
    except ValueError:
        return None


def addresses_of(url: str, resolve: Resolve = _resolve) -> frozenset[str]:
    """The addresses of ``url``'s host (a literal, or resolved: IPv4 and IPv6), normalised;
    empty when it cannot be resolved (logged)."""
    host = urlsplit(url).hostname or ""
    literal = _ip(host)
    if literal is not None:
        return frozenset({literal})
    try:
        found = {_ip(a) for a in resolve(host)}
    except OSError as exc:
        _log.warn("cannot resolve {host} to find the vCenter VM by its address: {exc}",
                  host=host, exc=exc)
        return frozenset()
    return frozenset(a for a in found if a is not None)


def swap_uuid(uuid: str) -> str:
    """``uuid`` with its first three fields byte-swapped (SMBIOS before 2.6 / vSphere)."""
    raw = bytes.fromhex(uuid.replace("-", ""))
    swapped = (raw[3::-1] + raw[5:3:-1] + raw[7:5:-1] + raw[8:]).hex()
    return "-".join((swapped[:8], swapped[8:12], swapped[12:16], swapped[16:20],
                     swapped[20:]))


def _uuid(text: object) -> str | None:
    hexes = str(text or "").strip().lower().replace("-", "")
    if len(hexes) != 32 or any(c not in "0123456789abcdef" for c in hexes):
        return None
    return "-".join((hexes[:8], hexes[8:12], hexes[12:16], hexes[16:20], hexes[20:]))


def _mac(text: object) -> str:
    return str(text or "").strip().lower().replace("-", ":")


@dataclass(frozen=True)
class LocalIdentity:
    """This machine as a VM would show it: its SMBIOS UUID and its NICs' MACs (the paths
    are injectable for tests)."""

    uuid_path: Path = Path("/sys/class/dmi/id/product_uuid")
    net_dir: Path = Path("/sys/class/net")

    def uuids(self) -> frozenset[str]:
        """The SMBIOS UUID in both byte orders; empty when unreadable (not root, no DMI)."""
        try:
            uuid = _uuid(self.uuid_path.read_text())
        except OSError:
            return frozenset()
        return frozenset({uuid, swap_uuid(uuid)}) if uuid else frozenset()

    def macs(self) -> frozenset[str]:
        """The MAC addresses of this machine's NICs (loopback and zero left out)."""
        found = set()
        try:
            entries = list(self.net_dir.iterdir())
        except OSError:
            return frozenset()
        for entry in entries:
            try:
                mac = _mac((entry / "address").read_text())
            except OSError:
                continue
            if len(mac) == 17 and mac != "00:00:00:00:00:00":
                found.add(mac)
        return frozenset(found)


@dataclass(frozen=True)
class VmRules:
    """What finds and orders the special VMs of one ``[[slave.vcenter]]``: its
    ``vcenter_vm``, ``agent_vm`` and ``last_vms``, the vCenter's URL (its addresses find
    the vCenter VM), this machine's identity and a resolver (injectable for tests).  A
    host's direct ESXi session uses its vCenter's rules."""

    vcenter_vm: str | None = None
    agent_vm: str | None = None
    last_vms: tuple[str, ...] = ()
    vcenter_url: str = ""
    identity: LocalIdentity = field(default_factory=LocalIdentity)
    resolve: Resolve = _resolve

    @classmethod
    def of(cls, config: Any, identity: LocalIdentity | None = None,
           resolve: Resolve | None = None) -> VmRules:
        """The rules a manager's record gives (keys it lacks: their defaults)."""
        return cls(getattr(config, "vcenter_vm", None), getattr(config, "agent_vm", None),
                   tuple(getattr(config, "last_vms", ())), str(config.url),
                   identity if identity is not None else LocalIdentity(),
                   resolve if resolve is not None else _resolve)


@dataclass(frozen=True)
class VmInfo:
    """One VM as read in bulk."""

    ref: Any = field(compare=False)
    key: str
    name: str
    power: str
    host: str | None
    tools: str
    template: bool
    uuid: str | None
    ips: frozenset[str]
    macs: frozenset[str]
    vapp: str | None

    @property
    def running(self) -> bool:
        return self.power == "poweredOn" and not self.template


def _key(obj: Any) -> str | None:
    return None if obj is None else str(getattr(obj, "_moId", obj))


def read_vms(client: VsphereClient, props: Sequence[str] = VM_PROPS) -> list[VmInfo]:
    """Every VM the session sees, with ``props`` (default: what detection and shutdown
    need; the others are left empty)."""
    vms = []
    for obj, p in client._view(vim.VirtualMachine, list(props)):
        ips = {_ip(str(p.get("guest.ipAddress") or ""))}
        macs = set()
        for nic in p.get("guest.net") or []:
            ips.update(_ip(str(a)) for a in (getattr(nic, "ipAddress", None) or []))
            if getattr(nic, "macAddress", None):
                macs.add(_mac(nic.macAddress))
        vms.append(VmInfo(obj, str(_key(obj)), str(p.get("name", "")),
                          str(p.get("runtime.powerState")), _key(p.get("runtime.host")),
                          str(p.get("guest.toolsRunningStatus") or ""),
                          bool(p.get("config.template")), _uuid(p.get("config.uuid")),
                          frozenset(a for a in ips if a), frozenset(macs),
                          _key(p.get("parentVApp"))))
    return vms


@dataclass(frozen=True)
class Placement:
    """The vCenter VM and the agent's VM (None: not found), with how each was found."""

    vcenter_vm: VmInfo | None = None
    agent_vm: VmInfo | None = None
    how: tuple[str, ...] = ()


def _one(found: list[VmInfo]) -> VmInfo | None:
    return found[0] if len(found) == 1 else None


def detect(client: VsphereClient, vms: Sequence[VmInfo],
           also: frozenset[str] = frozenset()) -> Placement:
    """Where the vCenter VM and this agent's VM are (see the module's docstring); ``also``:
    more addresses of the vCenter (a direct session: the host's management server)."""
    config, how = client.rules, []
    running = [vm for vm in vms if vm.running]
    vcenter = None
    if config.vcenter_vm is not None:
        vcenter = _one([vm for vm in running if vm.name == config.vcenter_vm])
        how.append(f"vcenter_vm = {config.vcenter_vm!r}")
    else:
        addresses = addresses_of(config.vcenter_url, config.resolve) | also
        vcenter = _one([vm for vm in running if vm.ips & addresses])
        how.append(f"vCenter VM by address {', '.join(sorted(addresses)) or 'unresolved'}")
    agent = None
    if config.agent_vm is not None:
        agent = _one([vm for vm in running if vm.name == config.agent_vm])
        how.append(f"agent_vm = {config.agent_vm!r}")
    else:
        uuids, macs = config.identity.uuids(), config.identity.macs()
        by_uuid = [vm for vm in running if vm.uuid in uuids]
        by_mac = [vm for vm in running if vm.macs & macs]
        if not by_mac and any(m.startswith(VMWARE_OUIS) for m in macs):
            nics = _nic_macs(client)
            by_mac = [vm for vm in running if nics.get(vm.key, frozenset()) & macs]
        both = [vm for vm in by_uuid if vm in by_mac]
        agent = _one(by_uuid) or _one(both) or (_one(by_mac) if not by_uuid else None)
        if agent is not None:
            how.append("agent VM by " + ("SMBIOS UUID" if agent in by_uuid else "MAC"))
        elif by_uuid or by_mac:
            how.append("agent VM ambiguous: " + ", ".join(sorted(
                {vm.name for vm in by_uuid + by_mac})))
    return Placement(vcenter, agent, tuple(how))


def check_names(client: VsphereClient) -> list[str]:
    """``check-config --connect``: one line per ``vcenter_vm`` / ``agent_vm`` that names
    no VM of this vCenter."""
    names = {vm.name for vm in read_vms(client, ("name",))}
    wanted = [(key, getattr(client.rules, key)) for key in ("vcenter_vm", "agent_vm")]
    return [f"{key} = {value!r}: no VM of that name (the host that runs it cannot be found)"
            for key, value in wanted if value is not None and value not in names]


def _nic_macs(client: VsphereClient) -> dict[str, frozenset[str]]:
    """VM key -> the MACs of its virtual NICs (``config.hardware.device``, read in bulk;
    only when this machine has a VMware MAC that ``guest.net`` did not show)."""
    return {str(_key(obj)): frozenset(_mac(d.macAddress)
                                      for d in p.get("config.hardware.device") or []
                                      if getattr(d, "macAddress", None))
            for obj, p in client._view(vim.VirtualMachine, ["config.hardware.device"])}


# -- planning: pure -----------------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    """What is stopped in one go: a VM, or a vApp (``vapp`` its object) with its members
    ``vms`` on this host."""

    name: str
    vms: tuple[str, ...]
    vapp: Any = field(default=None, compare=False)


@dataclass(frozen=True)
class Batch:
    """Units stopped together, ``seconds`` before what still runs is powered off."""

    units: tuple[Unit, ...]
    seconds: float
    label: str

    @property
    def vms(self) -> tuple[str, ...]:
        return tuple(vm for unit in self.units for vm in unit.vms)


def _group_of(groups: Sequence[VmGroup], unit: Unit) -> int | None:
    for i, group in enumerate(groups):
        if group.matches(unit.name):
            return i
    indexes = [i for vm in unit.vms for i, g in enumerate(groups) if g.matches(vm)]
    return min(indexes) if indexes else None


#: the labels of the batches after the groups, in their order
_TAIL = ("the vCenter VM", "last_vms")


def plan_batches(groups: Sequence[VmGroup], units: Sequence[Unit], budget: float,
                 last: Sequence[str] = (), vcenter_vm: str | None = None) -> list[Batch]:
    """The order in which ``units`` are stopped within ``budget``: one batch per group
    (timeout the group's), the units of no group (what the groups leave of the budget),
    then the vCenter VM ``vcenter_vm`` and then the units ``last`` matches (a vApp by its
    name or a member's), each with the timeout of the group it matches, else the rest.
    Empty batches are left out; the caller caps every batch at the budget's end."""
    rest = max(budget - sum(g.timeout for g in groups), 0.0)
    infra = VmGroup(tuple(last), 0.0) if last else None
    ordinary: list[list[Unit]] = [[] for _ in range(len(groups) + 1)]
    tail: dict[str, list[Unit]] = {label: [] for label in _TAIL}
    for unit in sorted(units, key=lambda u: u.name):
        if vcenter_vm is not None and unit.vapp is None and unit.name == vcenter_vm:
            tail["the vCenter VM"].append(unit)
        elif infra is not None and any(infra.matches(n) for n in (unit.name, *unit.vms)):
            tail["last_vms"].append(unit)
        else:
            index = _group_of(groups, unit)
            ordinary[len(groups) if index is None else index].append(unit)
    batches = [Batch(tuple(mine), groups[i].timeout if i < len(groups) else rest,
                     f"group {i + 1}" if i < len(groups) else "no group")
               for i, mine in enumerate(ordinary) if mine]
    for label, mine in tail.items():
        if mine:
            times = [groups[i].timeout if i is not None else rest
                     for i in (_group_of(groups, u) for u in mine)]
            batches.append(Batch(tuple(mine), max(times), label))
    return batches


# -- the host's VMs ---------------------------------------------------------------------


def _vapps(client: VsphereClient) -> dict[str, tuple[Any, str, tuple[str, ...]]]:
    """vApp key -> (object, name, member VM keys)."""
    return {str(_key(obj)): (obj, str(p.get("name", "")),
                             tuple(str(_key(v)) for v in p.get("vm") or []))
            for obj, p in client._view(vim.VirtualApp, ["name", "vm"])}


def _units(client: VsphereClient, host: str, name: str, mine: Sequence[VmInfo],
           every: Sequence[VmInfo], kept: Sequence[str]) -> list[Unit]:
    """The VMs of ``mine`` as units: vApps stopped as one where it is safe."""
    by_key = {vm.key: vm for vm in every}
    vapps = _vapps(client) if any(vm.vapp for vm in mine) else {}
    units: list[Unit] = []
    done: set[str] = set()
    for vm in mine:
        if vm.key in done:
            continue
        found = vapps.get(vm.vapp or "")
        if found is None:
            units.append(Unit(vm.name, (vm.name,)))
            continue
        obj, app, keys = found
        members = [by_key[k] for k in keys if k in by_key and by_key[k].running]
        elsewhere = sorted(m.name for m in members if m.host != host)
        held = sorted(m.name for m in members if m.name in kept)
        here = [m for m in members if m.host == host]
        done.update(m.key for m in here)
        if elsewhere or held:
            why = (f"members also run on other hosts ({', '.join(elsewhere)})" if elsewhere
                   else f"it holds {', '.join(held)}, left running")
            _log.info("{host}: vApp {app} is not stopped as a unit: {why}; its members on "
                      "this host are stopped one by one", host=name, app=app, why=why)
            units += [Unit(m.name, (m.name,)) for m in here if m.name not in kept]
        else:
            units.append(Unit(app, tuple(sorted(m.name for m in here)), obj))
    return units


def session_is_vcenter(client: VsphereClient) -> bool:
    """The session goes through a vCenter (``VirtualCenter``), not a direct ESXi one
    (``HostAgent``)."""
    return str(client.si.content.about.apiType) != "HostAgent"


def shutdown_vms(client: VsphereClient, name: str, timeout: float, cancel: threading.Event,
                 groups: tuple[VmGroup, ...] = ()) -> Result:
    """Stop the VMs running on host ``name`` (see the module's docstring)."""
    obj = client._host(name)
    host = str(_key(obj))
    every = read_vms(client)
    mine = [vm for vm in every if vm.host == host and vm.running]
    if not mine:
        return Result(Outcome.OK, "no VMs running")
    through_vcenter = session_is_vcenter(client)
    management = "" if through_vcenter else str(
        getattr(obj.summary, "managementServerIp", "") or "")
    placement = detect(client, every, frozenset({management} - {""}))
    kept: dict[str, str] = {}
    if placement.agent_vm is not None and placement.agent_vm.host == host:
        kept[placement.agent_vm.name] = "the agent's own VM"
    vcenter = placement.vcenter_vm
    if vcenter is not None and vcenter.host == host and through_vcenter:
        kept[vcenter.name] = "the vCenter VM, which this session goes through"
    units = _units(client, host, name, [vm for vm in mine if vm.name not in kept], every,
                   list(kept))
    batches = plan_batches(groups, units, timeout, client.rules.last_vms,
                           vcenter.name if vcenter is not None and not through_vcenter
                           else None)
    end = time.monotonic() + timeout
    for i, batch in enumerate(batches):
        seconds = max(min(batch.seconds, end - time.monotonic()), 0.0)
        _log.info("{host}: VMs {n}/{of}, {label} ({vms}), {seconds:g} s", host=name,
                  n=i + 1, of=len(batches), label=batch.label,
                  vms=", ".join(u.name + (" (vApp)" if u.vapp is not None else "")
                                for u in batch.units), seconds=seconds)
        _stop_batch(client, name, host, batch, seconds, cancel)
    names = {vm.name for vm in mine}
    still = {vm.name for vm in read_vms(client, POWER_PROPS)
             if vm.host == host and vm.running}
    left = tuple(sorted(still - set(kept)))
    stopped = tuple(sorted(names - still))
    order = " in order " + " | ".join(
        ", ".join(u.name for u in b.units) + (f" ({b.label})" if b.label in _TAIL else "")
        for b in batches) if groups or len(batches) > 1 else ""
    spared = ("; left for the host's shutdown: "
              + ", ".join(f"{vm} ({why})" for vm, why in sorted(kept.items()))) if kept else ""
    if left:
        return Result(Outcome.FAILED, f"{len(left)} VMs still running{spared}",
                      stopped=stopped, left=left + tuple(sorted(kept)))
    return Result(Outcome.OK, f"{len(stopped)} VMs stopped{order}{spared}", stopped=stopped,
                  left=tuple(sorted(kept)))


def _stop_vm(vm: VmInfo, client: VsphereClient) -> Any:
    """Guest shutdown where tools run (None), else the power-off task."""
    try:
        if vm.tools in _TOOLS_RUNNING:
            vm.ref.ShutdownGuest()
            return None
    except vim.fault.ToolsUnavailable:
        pass
    except vim.fault.InvalidPowerState:
        return None
    try:
        return vm.ref.PowerOffVM_Task()
    except vim.fault.InvalidPowerState:
        return None


def _stop_batch(client: VsphereClient, name: str, host: str, batch: Batch, seconds: float,
                cancel: threading.Event) -> None:
    """Stop ``batch``: vApps with PowerOffVApp_Task, VMs by guest shutdown or power-off;
    power off one by one what still runs after ``seconds``, or a vApp's members at once
    when its task fails."""
    deadline = time.monotonic() + seconds
    wanted = set(batch.vms)
    vms = {vm.name: vm for vm in read_vms(client) if vm.host == host and vm.running}
    tasks, vapp_tasks = [], []
    for unit in batch.units:
        if unit.vapp is not None:
            try:
                vapp_tasks.append((unit, unit.vapp.PowerOffVApp_Task(force=False)))
                client.vapp_units.add(unit.name)
                continue
            except _fault as exc:
                _log.warn("{host}: vApp {app} did not stop as a unit ({why}): its members "
                          "are stopped one by one", host=name, app=unit.name,
                          why=type(exc).__name__)
            tasks += [_stop_vm(vms[vm], client) for vm in unit.vms if vm in vms]
            continue
        if unit.name in vms:
            tasks.append(_stop_vm(vms[unit.name], client))
    while True:
        running = [vm for vm in read_vms(client, POWER_PROPS)
                   if vm.host == host and vm.running and vm.name in wanted]
        if not running:
            break
        if cancel.is_set():
            from upsagent.hypervisors.vsphere_client import Cancelled  # no cycle at load
            raise Cancelled()
        for unit, task in list(vapp_tasks):
            if task.info.state == "error":
                vapp_tasks.remove((unit, task))
                _log.warn("{host}: vApp {app} did not stop as a unit ({why}): its members "
                          "are stopped one by one", host=name, app=unit.name,
                          why=type(task.info.error).__name__)
                tasks += [_stop_vm(vms[vm.name], client) for vm in running
                          if vm.name in unit.vms and vm.name in vms]
        if time.monotonic() >= deadline:
            for vm in running:
                try:
                    tasks.append(vm.ref.PowerOffVM_Task())
                except vim.fault.InvalidPowerState:
                    pass
            break
        time.sleep(POLL)
    end = time.monotonic() + TASK_GRACE
    for task in [t for t in tasks if t is not None] + [t for _, t in vapp_tasks]:
        try:
            client._wait_task(task, end, cancel)
        except TimeoutError:
            return


def start_vms(client: VsphereClient, name: str, vms: tuple[str, ...],
              groups: tuple[VmGroup, ...], deadline: float,
              cancel: threading.Event) -> list[str]:
    """Start ``vms`` on host ``name`` (up, out of maintenance) in reverse shutdown order:
    the infrastructure VMs and the vCenter VM first, the VMs of no group, the groups from
    the last; a vApp the agent stopped as one with PowerOnVApp_Task.  The VMs started (or
    already on)."""
    host = str(_key(client._host(name)))
    every = read_vms(client)
    wanted = set(vms)
    mine = [vm for vm in every if vm.host == host and vm.name in wanted and not vm.template]
    by_key = {vm.key: vm for vm in every}
    vapps = _vapps(client) if any(vm.vapp for vm in mine) else {}
    units: list[Unit] = []
    done: set[str] = set()
    for vm in mine:
        found = vapps.get(vm.vapp or "")
        if vm.key in done:
            continue
        if found is not None:
            obj, app, keys = found
            members = [by_key[k] for k in keys if k in by_key]
            if (all(m.host == host for m in members)
                    and (app in client.vapp_units or all(m.name in wanted for m in members))):
                done.update(m.key for m in members)
                units.append(Unit(app, tuple(sorted(m.name for m in members
                                                    if m.name in wanted)), obj))
                continue
        units.append(Unit(vm.name, (vm.name,)))
    placement = detect(client, every)
    vcenter = placement.vcenter_vm.name if placement.vcenter_vm is not None else None
    started: list[str] = []
    for batch in reversed(plan_batches(groups, units, 0.0, client.rules.last_vms, vcenter)):
        tasks = []
        state = {vm.name: vm for vm in read_vms(client, POWER_PROPS) if vm.host == host}
        for unit in batch.units:
            if all(state[v].power == "poweredOn" for v in unit.vms if v in state):
                continue
            try:
                if unit.vapp is not None:
                    tasks.append((unit, unit.vapp.PowerOnVApp_Task()))
                elif unit.name in state:
                    tasks.append((unit, state[unit.name].ref.PowerOnVM_Task()))
            except _fault as exc:
                _log.warn("{host}: {unit} did not start: {why}", host=name, unit=unit.name,
                          why=type(exc).__name__)
        for unit, task in tasks:
            try:
                fault = client._wait_task(task, deadline + TASK_GRACE, cancel)
            except TimeoutError:
                continue
            if fault is None:
                client.vapp_units.discard(unit.name)
            else:
                _log.warn("{host}: {what} {unit} did not start: {why}", host=name,
                          what="vApp" if unit.vapp is not None else "VM", unit=unit.name,
                          why=type(getattr(fault, "fault", fault)).__name__)
        on = {vm.name for vm in read_vms(client, POWER_PROPS)
              if vm.host == host and vm.running}
        started += [vm for vm in batch.vms if vm in on]
    return started
