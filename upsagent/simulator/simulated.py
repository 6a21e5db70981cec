# -*- test-case-name: tests.test_scenarios -*-
"""Hosts and VMs in memory, on an injected clock: the backend of ``simulate`` and the tests.

A :class:`SimCluster` is one vCenter cluster (``kind="vsphere"``), one XenServer pool
(``kind="xen"``) or a set of standalone machines (``kind="standalone"``).  It behaves as
the vSphere (DRS) and XenServer (``host.evacuate``) documentation describes the real ones, in
simulated time:

* **Placement** (DRS, or xapi's evacuation plan): a VM can go to another host of the
  cluster that is up, not in or entering maintenance, enabled (XenServer) and below its
  ``capacity``; the least loaded one, ties in the order hosts were added.  A host whose VMs
  cannot all be placed fails its maintenance at once with ``no-target`` (DRS's precheck,
  xapi's up-front refusal).
* **Maintenance** moves the VMs one at a time, ``migration_time`` each.  At ``timeout``
  the step ends ``timed-out`` (the migration in flight still completes); cancelling stops
  after the migration in flight.  Entering while entering joins the running task.
* **Exit** waits for the host to be up (it may be booting), then ends maintenance; on
  vSphere DRS brings the VMs that live on this host back, one at a time; on XenServer the
  host is re-enabled and the VMs stay where they are.  A XenServer host that reboots comes
  back enabled, out of maintenance; an ESXi host boots *in* maintenance.
* **VM shutdown** asks every guest at once; a guest with tools stops after its
  ``shutdown_time``, one without tools is powered off at once, one that is not down by
  ``timeout`` is powered off then.  VMs migrating away are left to finish.
* **Host shutdown** is accepted at once; the OS stops after ``stop_time``.  VMs still
  running die with it (or stop cleanly if the host has ``autostop``).
* **Manager unreachable**: while :attr:`SimCluster.reachable` is false (vCenter or the
  pool master not answering), every operation on its hosts fails at once with
  ``unreachable``; the hosts and VMs go on as they were.
* **Power**: :meth:`SimCluster.power_lost` crashes a running host and its VMs;
  :meth:`SimCluster.power_restored` boots a host that was off (BIOS "AC power on") after
  ``boot_time``.  Every change is reported through ``log(subject, event, detail)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from upsagent.hypervisors.base import Backend, HostInfo
from upsagent.policy.actions import Outcome, Result
from upsagent.policy.plan import VmGroup, vm_batches
from upsagent.policy.rules import fmt

__all__ = ["SimCluster", "SimHost", "SimVm", "SimulatedBackend"]

Kind = Literal["vsphere", "xen", "standalone"]
Log = Callable[[str, str, str], None]


def _list(names: list[str]) -> str:
    return ", ".join(names)


@dataclass
class SimVm:
    """A VM: where it belongs (``home``), where it runs, whether it runs."""

    name: str
    home: str
    host: str
    state: Literal["running", "migrating", "off", "crashed"] = "running"
    tools: bool = True
    shutdown_time: float | None = None


@dataclass
class SimHost:
    """A hypervisor or plain host."""

    name: str
    state: Literal["up", "stopping", "down", "booting"] = "up"
    maintenance: bool = False
    entering: bool = False
    enabled: bool = True
    powered: bool = True
    boot_time: float = 60.0
    stop_time: float = 60.0
    power_on: bool = True
    autostop: bool = False
    capacity: int | None = None
    pool_master: bool = False
    _stopping: IDelayedCall | None = field(default=None, repr=False)


class _Task:
    """One host's maintenance (evacuation) in progress."""

    def __init__(self, host: str, result: Deferred[Result]) -> None:
        self.host = host
        self.result = result
        self.moved: list[tuple[str, str]] = []
        self.stop: Outcome | None = None
        self.busy = False
        self.timer: IDelayedCall | None = None
        self.joined: list[Deferred[Result]] = []


class SimCluster:
    """Hosts and VMs of one cluster or pool, on ``clock``."""

    def __init__(self, clock: IReactorTime, name: str = "cluster", kind: Kind = "vsphere",
                 migration_time: float = 10.0, vm_shutdown_time: float = 10.0,
                 log: Log | None = None) -> None:
        self.clock = clock
        self.name = name
        self.kind = kind
        self.migration_time = migration_time
        self.vm_shutdown_time = vm_shutdown_time
        self.log: Log = log or (lambda subject, event, detail: None)
        self.hosts: dict[str, SimHost] = {}
        self.vms: dict[str, SimVm] = {}
        self._tasks: dict[str, _Task] = {}
        self._waiters: dict[str, list[Callable[[], None]]] = {}
        self._incoming: dict[str, int] = {}
        #: called with (host, new state) when a host goes down or comes up
        self.watchers: list[Callable[[str, str], None]] = []
        #: the manager (vCenter, pool master) answers; operations fail while it does not
        self.reachable = True

    # -- building ----------------------------------------------------------------------

    def add_host(self, name: str, **options: object) -> SimHost:
        host = SimHost(name, **options)  # type: ignore[arg-type]
        self.hosts[name] = host
        return host

    def set_reachable(self, reachable: bool) -> None:
        """The cluster's manager stops (False) or starts again (True) answering."""
        if reachable != self.reachable:
            self.reachable = reachable
            self.log(self.name, "manager answers again" if reachable
                     else "manager unreachable", "")

    def add_vm(self, name: str, host: str, **options: object) -> SimVm:
        vm = SimVm(name, host, host, **options)  # type: ignore[arg-type]
        self.vms[name] = vm
        return vm

    def running_on(self, host: str) -> list[SimVm]:
        return [vm for vm in self.vms.values()
                if vm.host == host and vm.state in ("running", "migrating")]

    # -- placement ---------------------------------------------------------------------

    def _place(self, source: str) -> str | None:
        best: tuple[int, int, str] | None = None
        for index, (name, host) in enumerate(self.hosts.items()):
            if (name == source or host.state != "up" or host.maintenance or host.entering
                    or not host.enabled):
                continue
            load = len(self.running_on(name)) + self._incoming.get(name, 0)
            if host.capacity is not None and load >= host.capacity:
                continue
            if best is None or (load, index) < best[:2]:
                best = (load, index, name)
        return best[2] if best else None

    # -- maintenance -------------------------------------------------------------------

    def enter_maintenance(self, name: str, timeout: float) -> Deferred[Result]:
        host = self.hosts[name]
        if host.state != "up":
            return succeed(Result(Outcome.UNREACHABLE, f"{name} is {host.state}"))
        if host.maintenance:
            return succeed(Result(Outcome.OK, f"{name} is already in maintenance"))
        if name in self._tasks:
            joined: Deferred[Result] = Deferred()
            self._tasks[name].joined.append(joined)
            return joined
        d: Deferred[Result] = Deferred(canceller=lambda _: self._stop(name, Outcome.CANCELLED))
        task = _Task(name, d)
        self._tasks[name] = task
        host.entering = True
        if self.kind == "xen":
            host.enabled = False
        task.timer = self.clock.callLater(timeout, self._stop, name, Outcome.TIMED_OUT)
        self._next_migration(task)
        return d

    def _next_migration(self, task: _Task) -> None:
        left = sorted(self.running_on(task.host), key=lambda vm: vm.name)
        left = [vm for vm in left if vm.state == "running"]
        if not left:
            self._finish(task, Outcome.OK)
            return
        target = self._place(task.host)
        if target is None:
            self._finish(task, Outcome.NO_TARGET)
            return
        vm = left[0]
        vm.state = "migrating"
        task.busy = True
        self._incoming[target] = self._incoming.get(target, 0) + 1
        self.clock.callLater(self.migration_time, self._migrated, task, vm, target)

    def _migrated(self, task: _Task, vm: SimVm, target: str) -> None:
        task.busy = False
        self._incoming[target] -= 1
        if vm.state != "migrating":            # crashed with its host meanwhile
            return
        if self.hosts[target].state != "up":
            vm.state = "running"               # the target went away: it stays
        else:
            self.log(vm.name, "moved", f"{vm.host} → {target}")
            vm.host, vm.state = target, "running"
            task.moved.append((vm.name, target))
        if self._tasks.get(task.host) is task:
            if task.stop is None:
                self._next_migration(task)

    def _stop(self, name: str, outcome: Outcome) -> None:
        task = self._tasks.get(name)
        if task is not None and task.stop is None:
            task.stop = outcome
            self._finish(task, outcome)

    def _finish(self, task: _Task, outcome: Outcome) -> None:
        del self._tasks[task.host]
        if task.timer is not None and task.timer.active():
            task.timer.cancel()
        host = self.hosts[task.host]
        host.entering = False
        moved = sorted({t for _, t in task.moved})
        names = [vm for vm, _ in task.moved]
        done = f"VMs {_list(names)} moved to {_list(moved)}" if names else ""
        left = [vm.name for vm in sorted(self.running_on(task.host), key=lambda v: v.name)]
        if outcome is Outcome.OK:
            host.maintenance = True
            detail = done or "no VM to move"
        else:
            if self.kind == "xen":
                host.enabled = True
            why = {Outcome.NO_TARGET: f"no host can take {_list(left)}",
                   Outcome.TIMED_OUT: f"{_list(left)} still on {task.host} when time ran out",
                   Outcome.CANCELLED: "cancelled",
                   Outcome.UNREACHABLE: f"{task.host} went down"}[outcome]
            detail = f"{why}; {done}" if done else why
        result = Result(outcome, detail, moved=tuple(task.moved), left=tuple(left))
        if outcome is not Outcome.CANCELLED:
            task.result.callback(result)
        for joined in task.joined:
            joined.callback(result)

    def exit_maintenance(self, name: str, timeout: float) -> Deferred[Result]:
        host = self.hosts[name]
        if host.entering:
            return succeed(Result(Outcome.FAILED, f"{name} is still entering maintenance"))
        if host.state == "up":
            return succeed(self._exit(name))
        d: Deferred[Result] = Deferred()

        def up() -> None:
            if not d.called:
                timer.cancel()
                d.callback(self._exit(name))

        def late() -> None:
            self._waiters[name].remove(up)
            d.callback(Result(Outcome.UNREACHABLE, f"{name} did not come back within "
                              f"{fmt(timeout)}"))
        self._waiters.setdefault(name, []).append(up)
        timer = self.clock.callLater(timeout, late)
        return d

    def _exit(self, name: str) -> Result:
        host = self.hosts[name]
        if not host.maintenance and host.enabled:
            if self.kind == "xen":
                return Result(Outcome.OK, "already enabled (a XenServer host comes back "
                              "enabled after a reboot)")
            return Result(Outcome.OK, f"{name} was not in maintenance")
        host.maintenance, host.enabled = False, True
        back = [vm for vm in sorted(self.vms.values(), key=lambda v: v.name)
                if vm.home == name and vm.host != name and vm.state == "running"]
        if self.kind == "vsphere" and back:
            self._return(name, back)
            return Result(Outcome.OK, f"DRS brings back {_list([vm.name for vm in back])}")
        if self.kind == "xen":
            return Result(Outcome.OK, "enabled again; the VMs stay where they are")
        return Result(Outcome.OK, f"no running VM of {name} for DRS to bring back")

    def _return(self, name: str, vms: list[SimVm]) -> None:
        """DRS moving the VMs of ``name`` back, one at a time."""
        if not vms or self.hosts[name].state != "up" or self.hosts[name].maintenance:
            return
        vm = vms[0]
        if vm.state != "running" or self.hosts[vm.host].entering:
            self._return(name, vms[1:])
            return
        vm.state = "migrating"

        def arrived() -> None:
            if vm.state == "migrating" and self.hosts[name].state == "up":
                self.log(vm.name, "moved back", f"{vm.host} → {name} (DRS)")
                vm.host, vm.state = name, "running"
            elif vm.state == "migrating":
                vm.state = "running"
            self._return(name, vms[1:])
        self.clock.callLater(self.migration_time, arrived)

    # -- shutdown ----------------------------------------------------------------------

    def shutdown_vms(self, name: str, timeout: float,
                     groups: Sequence[VmGroup] = ()) -> Deferred[Result]:
        host = self.hosts[name]
        if host.state != "up":
            return succeed(Result(Outcome.UNREACHABLE, f"{name} is {host.state}"))
        vms = {vm.name: vm for vm in self.running_on(name) if vm.state == "running"}
        if not vms:
            return succeed(Result(Outcome.OK, "no VM running"))
        stopped: list[str] = []
        forced: list[str] = []
        start = 0.0
        batches = vm_batches(groups, vms, timeout)
        for i, (batch, limit) in enumerate(batches):
            which = ""
            if groups:
                grouped = any(g.matches(batch[0]) for g in groups)
                which = (f" (VM group {i + 1} of {len(batches)})" if grouped
                         else " (no VM group: last)")
            end = 0.0
            for vm in (vms[n] for n in batch):
                took = (vm.shutdown_time if vm.shutdown_time is not None
                        else self.vm_shutdown_time)
                if not vm.tools:
                    took, how = 0.0, "powered off (no guest tools)"
                    forced.append(vm.name)
                elif took > limit:
                    took, how = limit, f"powered off after {fmt(limit)} (guest still running)"
                    forced.append(vm.name)
                else:
                    how = "shut down"
                    stopped.append(vm.name)
                end = max(end, took)
                self.clock.callLater(start + took, self._vm_off, vm, how + which)
            start += end
        parts = [f"VMs {_list(stopped)} shut down"] if stopped else []
        if forced:
            parts.append(f"{_list(forced)} powered off")
        if groups:
            parts.append("in order " + " | ".join(", ".join(b) for b, _ in batches))
        d: Deferred[Result] = Deferred()
        self.clock.callLater(start, d.callback, Result(
            Outcome.OK, "; ".join(parts), stopped=tuple(stopped + forced)))
        return d

    def power_on_vms(self, name: str, vms: Sequence[str], groups: Sequence[VmGroup],
                     timeout: float) -> Deferred[Result]:
        """Start ``vms`` again once ``name`` is up and out of maintenance, in reverse group
        order, a batch every ``vm_shutdown_time`` (the time a guest takes to start)."""
        host = self.hosts[name]
        d: Deferred[Result] = Deferred()

        def start() -> None:
            if host.maintenance:
                d.callback(Result(Outcome.FAILED, f"{name} is in maintenance"))
                return
            batches = list(reversed(vm_batches(groups, vms, 0.0)))
            started: list[str] = []
            at = 0.0
            for i, (batch, _) in enumerate(batches):
                which = ""
                if groups:
                    which = (f" (VM group {len(batches) - i} of {len(batches)})"
                             if any(g.matches(batch[0]) for g in groups)
                             else " (no VM group: first)")
                for vm_name in batch:
                    vm = self.vms.get(vm_name)
                    if vm is None or vm.state in ("running", "migrating"):
                        continue
                    started.append(vm_name)
                    self.clock.callLater(at, self._vm_on, vm, name, "powered on" + which)
                at += self.vm_shutdown_time
            self.clock.callLater(at, d.callback, Result(
                Outcome.OK, f"VMs {_list(started)} started" if started else
                "no VM to start", stopped=tuple(started)))

        if host.state == "up":
            start()
            return d

        def up() -> None:
            if not d.called:
                timer.cancel()
                start()

        def late() -> None:
            self._waiters[name].remove(up)
            d.callback(Result(Outcome.UNREACHABLE, f"{name} did not come back within "
                              f"{fmt(timeout)}"))
        self._waiters.setdefault(name, []).append(up)
        timer = self.clock.callLater(timeout, late)
        return d

    def _vm_on(self, vm: SimVm, host: str, how: str) -> None:
        if vm.state not in ("running", "migrating") and self.hosts[host].state == "up":
            vm.host, vm.state = host, "running"
            self.log(vm.name, how, f"on {host}")

    def _vm_off(self, vm: SimVm, how: str) -> None:
        if vm.state == "running":
            vm.state = "off"
            self.log(vm.name, how, f"on {vm.host}")

    def shutdown_host(self, name: str) -> Deferred[Result]:
        host = self.hosts[name]
        if host.state in ("down", "stopping"):
            return succeed(Result(Outcome.OK, f"{name} is already {host.state}"))
        if host.state != "up":
            return succeed(Result(Outcome.UNREACHABLE, f"{name} is {host.state}"))
        for vm in sorted(self.running_on(name), key=lambda v: v.name):
            if host.autostop:
                vm.state = "off"
                self.log(vm.name, "shut down", f"by {name}'s autostop")
            else:
                vm.state = "crashed"
                self.log(vm.name, "crashed", f"powered off with {name}")
        host.state = "stopping"
        host._stopping = self.clock.callLater(host.stop_time, self._down, name)
        return succeed(Result(Outcome.OK, f"accepted; the OS needs {fmt(host.stop_time)}"))

    def _down(self, name: str) -> None:
        host = self.hosts[name]
        host.state, host._stopping = "down", None
        if self.kind == "xen":
            host.maintenance, host.enabled = False, True
        self.log(name, "down", "in maintenance" if host.maintenance else "")
        self._changed(name, "down")

    # -- power -------------------------------------------------------------------------

    def power_lost(self, name: str) -> None:
        """The host's supplies went dark."""
        host = self.hosts[name]
        host.powered = False
        if host.state == "down":
            return
        if host.state == "stopping":
            assert host._stopping is not None
            left = host._stopping.getTime() - self.clock.seconds()
            host._stopping.cancel()
            self.log(name, "crashed", f"lost power while shutting down, {fmt(left)} before "
                     "it was down")
        else:
            doing = "running" if host.state == "up" else host.state
            self.log(name, "crashed", f"lost power while {doing}")
        for vm in self.running_on(name):
            vm.state = "crashed"
            self.log(vm.name, "crashed", f"with {name}")
        if name in self._tasks:
            self._stop(name, Outcome.UNREACHABLE)
        host.state, host.entering, host._stopping = "down", False, None
        self._changed(name, "down")

    def power_restored(self, name: str) -> None:
        """The host's supplies have power again: it boots if it was off."""
        host = self.hosts[name]
        host.powered = True
        if host.state != "down" or not host.power_on:
            return
        host.state = "booting"
        self.clock.callLater(host.boot_time, self._booted, name)

    def _booted(self, name: str) -> None:
        host = self.hosts[name]
        if host.state != "booting" or not host.powered:
            return
        host.state = "up"
        if self.kind == "xen":
            host.maintenance, host.enabled = False, True
        self.log(name, "booted", "in maintenance" if host.maintenance else "")
        for up in self._waiters.pop(name, []):
            up()
        self._changed(name, "up")

    def _changed(self, name: str, state: str) -> None:
        for watcher in list(self.watchers):
            watcher(name, state)


class SimulatedBackend(Backend):
    """The :class:`~upsagent.hypervisors.base.Backend` of one :class:`SimCluster`."""

    kind = "simulated"

    def __init__(self, cluster: SimCluster) -> None:
        self.cluster = cluster

    def _unreachable(self) -> Deferred[Result] | None:
        """The failure of every operation while the manager does not answer, or None."""
        if self.cluster.reachable:
            return None
        return succeed(Result(Outcome.UNREACHABLE, f"{self.cluster.name} does not answer"))

    def hosts(self) -> Deferred[list[HostInfo]]:
        return succeed([HostInfo(name, host.state == "up", host.maintenance, host.state)
                        for name, host in self.cluster.hosts.items()])

    def enter_maintenance(self, host: str, timeout: float) -> Deferred[Result]:
        if (down := self._unreachable()) is not None:
            return down
        if self.cluster.kind == "standalone":
            return succeed(Result(Outcome.NO_TARGET, f"{host} is not in a cluster: no host "
                                  "can take its VMs"))
        return self.cluster.enter_maintenance(host, timeout)

    def exit_maintenance(self, host: str, timeout: float) -> Deferred[Result]:
        if (down := self._unreachable()) is not None:
            return down
        return self.cluster.exit_maintenance(host, timeout)

    def shutdown_vms(self, host: str, timeout: float,
                     groups: Sequence[VmGroup] = ()) -> Deferred[Result]:
        if (down := self._unreachable()) is not None:
            return down
        return self.cluster.shutdown_vms(host, timeout, groups)

    def shutdown_host(self, host: str, killpower: bool = False) -> Deferred[Result]:
        if (down := self._unreachable()) is not None:
            return down
        return self.cluster.shutdown_host(host)

    def power_on_vms(self, host: str, vms: Sequence[str], groups: Sequence[VmGroup] = (),
                     timeout: float = 600.0) -> Deferred[Result]:
        if (down := self._unreachable()) is not None:
            return down
        return self.cluster.power_on_vms(host, vms, groups, timeout)

    def warn_users(self, host: str, message: str) -> Deferred[Result]:
        return succeed(Result(Outcome.OK, "message shown"))

