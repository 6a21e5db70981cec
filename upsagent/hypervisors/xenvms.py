# -*- test-case-name: tests.test_xenmaster -*-
"""Stopping the VMs of one XenServer / XCP-ng host through XenAPI, group by group: the
``xen`` backend (a pool member's VMs) and the ``xenmaster`` backend (the pool master's own)
share it.  Blocking: it runs in a thread (:meth:`~upsagent.hypervisors.xen.XenBackend.run`).

The VMs are those resident on the host and running: not the control domain, not a
template or a snapshot.  They are stopped in the order of the host's ``vm_groups``
(:func:`~upsagent.policy.plan.vm_batches`: a batch per group with its timeout, the VMs of
no group last with what is left of the budget).  In a batch, every VM that allows it gets
``Async.VM.clean_shutdown`` (the guest's own shutdown; it needs the PV drivers / guest
agent, which ``allowed_operations`` reflects) and the others ``Async.VM.hard_shutdown`` at
once; past the batch's timeout, the clean shutdowns still running are cancelled
(``task.cancel``) and those VMs hard shut down, which is given :data:`HARD_GRACE` seconds.
Tasks are watched through ``event.from`` (:meth:`~upsagent.hypervisors.xen.XenPool.
wait_tasks`) and destroyed.  What was stopped is read back from xapi's VM records at the
end, never assumed from the calls made.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from upsagent.policy.plan import VmGroup, vm_batches
from upsagent.system.runner import Outcome, Result

if TYPE_CHECKING:
    from upsagent.hypervisors.xen import XenPool

__all__ = ["HARD_GRACE", "stop_vms", "time_limit"]

_log = Logger()

#: seconds a hard shutdown gets (it does not wait for the guest; xapi takes seconds)
HARD_GRACE = 30.0
#: seconds a VM's cancelled clean shutdown gets to end when xapi refuses its hard shutdown
#: with OTHER_OPERATION_IN_PROGRESS
BUSY_WAIT = 5.0


def time_limit(timeout: float, groups: Sequence[VmGroup]) -> float:
    """The longest :func:`stop_vms` may take: ``timeout`` and a :data:`HARD_GRACE` per
    batch (at most one per group and one for the VMs of no group)."""
    return timeout + HARD_GRACE * (len(groups) + 1)


def stop_vms(pool: XenPool, name: str, timeout: float, stop: threading.Event,
             groups: Sequence[VmGroup] = ()) -> Result:
    """Stop the running VMs of host ``name`` (its name-label) within ``timeout`` seconds
    (and :data:`HARD_GRACE` per batch for the hard shutdowns), group by group; the Result
    lists the VMs ``stopped`` and those ``left`` running.  ``stop`` set: the tasks in
    flight are cancelled and :class:`~upsagent.hypervisors.xen.Stopped` raised."""
    ref, _ = pool.host(name)
    guests = pool.guests(ref)
    if not guests:
        return Result(Outcome.OK, f"no VMs running on {name}")
    labels = {vm: rec["name_label"] for vm, rec in guests.items()}
    batches = vm_batches(groups, labels.values(), timeout)
    for i, (batch, seconds) in enumerate(batches):
        if groups:
            _log.info("{host}: VM group {n}/{of} ({vms}), {seconds:g} s", host=name,
                      n=i + 1, of=len(batches), vms=", ".join(batch), seconds=seconds)
        members = {vm: rec for vm, rec in guests.items() if rec["name_label"] in batch}
        _stop_batch(pool, members, seconds, stop)
    still = pool.guests(ref)
    left = tuple(sorted(labels[vm] for vm in guests if vm in still))
    stopped = tuple(sorted(labels[vm] for vm in guests if vm not in still))
    order = (" in order " + " | ".join(", ".join(b) for b, _ in batches)) if groups else ""
    if left:
        return Result(Outcome.FAILED, f"VMs of {name} still running: {', '.join(left)}",
                      stopped=stopped, left=left)
    return Result(Outcome.OK, f"{len(stopped)} VMs of {name} stopped{order}",
                  stopped=stopped)


def _stop_batch(pool: XenPool, vms: dict[str, dict[str, Any]], seconds: float,
                stop: threading.Event) -> None:
    """Clean shutdown of ``vms`` where allowed, hard shutdown of the others now and of
    those still running after ``seconds``."""
    import XenAPI
    api = pool.api()
    deadline = time.monotonic() + seconds
    clean: dict[str, str] = {}     # task -> VM
    hard: list[str] = []
    for vm, rec in vms.items():
        allowed = rec.get("allowed_operations")
        if allowed is not None and "clean_shutdown" not in allowed:
            hard.append(vm)
            continue
        try:
            clean[api.Async.VM.clean_shutdown(vm)] = vm
        except XenAPI.Failure as exc:
            _log.info("{vm}: clean shutdown refused ({why})", vm=rec["name_label"],
                      why=" ".join(map(str, exc.details)))
            hard.append(vm)
    forced, busy = _hard(api, vms, hard)          # no clean shutdown: hard at once
    tasks = [*clean, *forced]
    try:
        ended = pool.wait_tasks(tasks, deadline, stop) if tasks else {}
        hard = busy + [vm for task, vm in forced.items() if _busy(ended.get(task))]
        waiting = [task for task in forced if task not in ended]
        for task, vm in clean.items():
            record = ended.get(task)
            if record is not None and record["status"] == "success":
                continue
            if record is None:       # past the group's timeout: stop waiting for the guest
                try:
                    api.task.cancel(task)
                except XenAPI.Failure:
                    pass
                _log.info("{vm}: no clean shutdown within {s:g} s: hard shutdown",
                          vm=vms[vm]["name_label"], s=seconds)
            else:
                _log.info("{vm}: clean shutdown {status} ({why}): hard shutdown",
                          vm=vms[vm]["name_label"], status=record["status"],
                          why=" ".join(map(str, record.get("error_info", []))))
            hard.append(vm)
        until = max(deadline, time.monotonic()) + HARD_GRACE
        for attempt in (1, 2):
            forced, busy = _hard(api, vms, hard)
            tasks += forced
            waiting += forced
            ended = pool.wait_tasks(waiting, until, stop) if waiting else {}
            busy += [vm for task, vm in forced.items() if _busy(ended.get(task))]
            waiting = []
            if not busy or attempt == 2:
                break
            # a clean shutdown still being cancelled holds the VM: wait for it, once more
            holding = [task for task, vm in clean.items() if vm in busy]
            pool.wait_tasks(holding, min(time.monotonic() + BUSY_WAIT, until), stop)
            hard = busy
    finally:
        pool.destroy(tasks)


def _hard(api: Any, vms: dict[str, dict[str, Any]], which: list[str],
          ) -> tuple[dict[str, str], list[str]]:
    """``Async.VM.hard_shutdown`` of each of ``which``: the tasks (task -> VM), and the VMs
    xapi refused at once because another operation holds them."""
    import XenAPI
    tasks, busy = {}, []
    for vm in which:
        try:
            tasks[api.Async.VM.hard_shutdown(vm)] = vm
        except XenAPI.Failure as exc:   # halted meanwhile (VM_BAD_POWER_STATE), ...
            _log.info("{vm}: hard shutdown refused ({why})", vm=vms[vm]["name_label"],
                      why=" ".join(map(str, exc.details)))
            if _busy({"status": "failure", "error_info": exc.details}):
                busy.append(vm)
    return tasks, busy


def _busy(record: dict[str, Any] | None) -> bool:
    """Whether a task ended refused because another operation holds its VM."""
    return (record is not None and record["status"] == "failure"
            and list(record.get("error_info", []))[:1] == ["OTHER_OPERATION_IN_PROGRESS"])
