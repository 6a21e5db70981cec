"""End to end, the rest of issue 12's matrix: our master (dummy-ups UPSes replayed from
their files), our slave (``upsagent slave``, a real process) with the issue's
``[[slave.vcenter]]`` / ``[[host]]`` configuration (timers scaled down to seconds), and
vcsim-ext (tests/vcsim/main.go).

* Winpower's options: maintenance only (the host enters maintenance and stays up; power
  back takes it out and DRS brings the VMs back), shutdown only (the VMs stopped: guest
  shutdown, power-off for the one without VMware Tools; then the host), both (reference
  scenario 1 to the end: the host, shut down in maintenance, boots when the power returns
  and is taken out of maintenance).
* Reference scenario 3: two UPSes fail together; host 1's VMs move to host 2, whose
  maintenance then fails (no host can take its VMs): host 2 stops its VMs and is shut
  down forced.
* Faults: vCenter unreachable when the shutdown is due, from the VMs' step on, or from
  the middle of the migration (the engine issues the shutdown again once vCenter answers,
  rules R6; the VMs first when their step failed too), a VM that ignores its guest shutdown (powered off at the
  step's timeout, then the host), a migration that never ends (maintenance ends at its
  deadline with Timedout, the VM left is stopped, then the host).

Every step is checked from the simulator's own state (where each VM runs, power states,
maintenance flags) and its trace of calls per host (``/_ext/calls``): the host no
configuration names is never touched.  Times are wall-clock (real processes); every wait
polls with a bound, nothing sleeps for time to pass.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pyVmomi")

from tests.ourmaster import wait_for  # noqa: E402
from tests.test_vsphere import (  # noqa: E402, F401
    H0, H1, H2, backend, result_of, sim, simulator_binary,
)
from tests.test_vsphere_e2e import (  # noqa: E402
    MAINTENANCE_AFTER, OURS, TOLERANCE, Rig, host, untouched, vm, vsphere_host,
)
from tests.vcsimext import Vcsim  # noqa: E402
from upsagent.policy.actions import Outcome  # noqa: E402

VM0, VM1 = OURS


def own_vms(name: str) -> set[str]:
    """The names of the VMs the simulator starts on host ``name``."""
    return {f"{name}_VM0", f"{name}_VM1"}


def stays(rig: Rig, check: Callable[[dict[str, Any]], bool], seconds: float,
          what: str) -> None:
    """``check(state)`` holds at every poll for ``seconds`` (a step that must not come)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert check(rig.sim.state()), f"{what}\n{rig.slave.log()}"
        time.sleep(0.2)


def test_maintenance_only(tmp_path: Path, sim: Vcsim) -> None:
    """maintenance_after without shutdown_after: the host enters maintenance at its time,
    its VMs run on the other hosts, and it stays up however long the power is out; power
    back takes it out of maintenance and DRS brings its VMs back."""
    rig = Rig(tmp_path, sim, hosts=vsphere_host(H0, maintenance_after=MAINTENANCE_AFTER))
    try:
        cut = rig.power("OB DISCHRG")
        entered = rig.until(lambda s: host(s, H0)["maintenance"],
                            MAINTENANCE_AFTER + TOLERANCE + 2, "H0 in maintenance")
        assert entered - cut >= MAINTENANCE_AFTER - 0.5
        state = rig.sim.state()
        assert host(state, H0)["vms"] == []
        for name in OURS:
            assert vm(state, name)["host"] in (H1, H2)
            assert vm(state, name)["power"] == "poweredOn"
        stays(rig, lambda s: host(s, H0)["power"] == "poweredOn" and host(s, H0)["maintenance"],
              4, "H0 must stay up, in maintenance")
        rig.power("OL CHRG")
        rig.until(lambda s: not host(s, H0)["maintenance"], 10, "H0 out of maintenance")
        rig.until(lambda s: set(OURS) <= set(host(s, H0)["vms"]), 15, "the VMs back on H0")
        state = rig.sim.state()
        assert all(vm(state, name)["power"] == "poweredOn" for name in OURS)
        assert set(rig.sim.calls()[H0]) == {"EnterMaintenanceMode_Task",
                                           "ExitMaintenanceMode_Task"}
        untouched(rig.sim, H1)
        untouched(rig.sim, H2)
    finally:
        rig.close()


@pytest.mark.vcsim("-no-tools", VM1)
def test_shutdown_only(tmp_path: Path, sim: Vcsim) -> None:
    """shutdown_after without maintenance: at its time the VMs are stopped (guest shutdown
    where VMware Tools run, power-off for the one without), then the host, forced (it is
    not in maintenance); nothing enters maintenance."""
    rig = Rig(tmp_path, sim, hosts=vsphere_host(H0, shutdown_after=3, vm_shutdown_timeout=5))
    try:
        cut = rig.power("OB DISCHRG")
        down = rig.until(lambda s: host(s, H0)["power"] == "poweredOff",
                         3 + TOLERANCE + 5, "H0 shut down")
        assert down - cut >= 3 - 0.5
        state = rig.sim.state()
        assert not host(state, H0)["maintenance"]
        for name in OURS:
            assert vm(state, name)["host"] == H0 and vm(state, name)["power"] == "poweredOff"
        calls = rig.sim.calls()[H0]
        assert calls.index(f"ShutdownGuest {VM0}") < calls.index("ShutdownHost_Task")
        assert calls.index(f"PowerOffVM_Task {VM1}") < calls.index("ShutdownHost_Task")
        assert f"ShutdownGuest {VM1}" not in calls and "EnterMaintenanceMode_Task" not in calls
        assert "(forced: not in maintenance)" in rig.slave.log()
        untouched(rig.sim, H1)
        untouched(rig.sim, H2)
    finally:
        rig.close()


def test_maintenance_then_shutdown_and_power_back(tmp_path: Path, sim: Vcsim) -> None:
    """Reference scenario 1 to its end: maintenance, then the shutdown (plain: the host is
    in maintenance); when the power returns the host boots (AC power on) in maintenance,
    the agent takes it out, DRS brings its VMs back."""
    rig = Rig(tmp_path, sim, shutdown_after=5)
    try:
        cut = rig.power("OB DISCHRG")
        entered = rig.until(lambda s: host(s, H0)["maintenance"],
                            MAINTENANCE_AFTER + TOLERANCE + 2, "H0 in maintenance")
        assert entered - cut >= MAINTENANCE_AFTER - 0.5
        down = rig.until(lambda s: host(s, H0)["power"] == "poweredOff", 5 + TOLERANCE + 2,
                         "H0 shut down")
        assert down - cut >= 5 - 0.5
        assert f"{H0}: shut down: ok: shutdown accepted\n" in rig.slave.log()  # not forced
        assert all(v["power"] == "poweredOn" for v in rig.sim.state()["vms"]
                   if v["name"] in OURS)
        at = len(rig.slave.log())
        rig.power("OL CHRG")
        rig.slave.wait_log(f"{H0}: exit maintenance", 10, after=at)
        rig.sim.control("host", name=H0, power="on")          # the BIOS's AC power on
        rig.until(lambda s: host(s, H0)["power"] == "poweredOn"
                  and not host(s, H0)["maintenance"], 15, "H0 up, out of maintenance")
        rig.until(lambda s: set(OURS) <= set(host(s, H0)["vms"]), 15, "the VMs back on H0")
        untouched(rig.sim, H1)
        untouched(rig.sim, H2)
    finally:
        rig.close()


def test_both_ups_fail_and_the_second_maintenance_fails(tmp_path: Path, sim: Vcsim) -> None:
    """Reference scenario 3: H0 on UPS dummy, H1 on dummy2, one cluster (one host in
    maintenance at a time), the third host off.  Both UPSes fail: H0 enters maintenance
    (its VMs go to H1); H1's maintenance then fails (no host can take its VMs); at the
    shutdown time H0 is shut down in maintenance, H1 stops its four VMs and is shut down
    forced."""
    sim.control("host", name=H2, power="off")
    hosts = (vsphere_host(H0, maintenance_after=2, shutdown_after=7, cluster="DC0_C0")
             + vsphere_host(H1, "{ups2}", maintenance_after=2, shutdown_after=7,
                            cluster="DC0_C0", vm_shutdown_timeout=5))
    rig = Rig(tmp_path, sim, hosts=hosts, two_ups=True)
    try:
        cut = rig.power("OB DISCHRG")
        # "together", with H0 first as in the reference (hosts of one cluster enter
        # maintenance in the order their timers fall due)
        rig.slave.wait_log(f"UPS {rig.slave.system} on battery", 5)
        rig.power("OB DISCHRG", "dummy2")
        rig.until(lambda s: host(s, H0)["maintenance"], 2 + TOLERANCE + 2, "H0 in maintenance")
        assert set(host(rig.sim.state(), H1)["vms"]) == set(OURS) | own_vms(H1)
        rig.slave.wait_log(f"{H1}: enter maintenance: no-target", 10)
        assert not host(rig.sim.state(), H1)["maintenance"]
        assert time.monotonic() - cut < 7, "H1's maintenance failed only at the shutdown"
        down = rig.until(lambda s: host(s, H0)["power"] == "poweredOff"
                         and host(s, H1)["power"] == "poweredOff", 7 + TOLERANCE + 8,
                         "H0 and H1 shut down")
        assert down - cut >= 7 - 0.5
        state = rig.sim.state()
        assert host(state, H0)["maintenance"] and not host(state, H1)["maintenance"]
        moved_and_own = set(OURS) | own_vms(H1)
        assert {v["name"] for v in state["vms"] if v["host"] == H1} == moved_and_own
        calls = rig.sim.calls()
        stop = calls[H1].index("ShutdownHost_Task")
        assert {c.split()[1] for c in calls[H1][:stop] if c.startswith("ShutdownGuest")} \
            == moved_and_own                         # every VM asked to stop, then the host
        log = rig.slave.log()
        assert "(forced: not in maintenance)" in log
        assert re.search(rf"{H1}: shut down VMs: .*maintenance failed: ", log), log
        untouched(rig.sim, H2, power="poweredOff")
    finally:
        rig.close()


def test_vcenter_unreachable_when_the_shutdown_is_due(tmp_path: Path, sim: Vcsim) -> None:
    """vCenter stops answering after H0 entered maintenance: the shutdown finds it gone
    and tries it again within the step (2 s, doubling); once vCenter answers H0 goes down,
    not left running unprotected."""
    rig = Rig(tmp_path, sim, shutdown_after=4)
    try:
        rig.power("OB DISCHRG")
        rig.until(lambda s: host(s, H0)["maintenance"], MAINTENANCE_AFTER + TOLERANCE + 2,
                  "H0 in maintenance")
        rig.slave.wait_log(f"{H0}: enter maintenance: ok", 5)     # the agent saw it end
        rig.sim.control("down", on="1")
        rig.slave.wait_log(f"shut down {H0}: vcenter vc1: 503 Service Unavailable; trying "
                           "again in 4 s", 4 + TOLERANCE + 10)
        assert host(rig.sim.state(), H0)["power"] == "poweredOn"
        back = time.monotonic()
        rig.sim.control("down", on="0")
        rig.until(lambda s: host(s, H0)["power"] == "poweredOff", 15 + TOLERANCE,
                  "H0 shut down once vCenter answers")
        assert time.monotonic() - back <= 15 + TOLERANCE
        assert re.search(rf"{H0}: shut down: ok: .*vcenter answering again after \d+ "
                         "attempts", rig.slave.log()), rig.slave.log()
        assert f"{H0}: shut down VMs" not in rig.slave.log()      # it was in maintenance
        untouched(rig.sim, H1)
        untouched(rig.sim, H2)
    finally:
        rig.close()


def test_vcenter_unreachable_at_the_vms_and_the_shutdown(tmp_path: Path, sim: Vcsim) -> None:
    """shutdown only, vCenter not answering from the power cut: the VMs' step fails
    (tried again within its 5 s), which is a failed attempt of the host's shutdown: the
    host's shutdown is not issued; once vCenter answers, the next attempt (10 s later)
    stops the VMs (guest shutdown) first, then the host: its VMs are not cut off."""
    rig = Rig(tmp_path, sim, hosts=vsphere_host(H0, shutdown_after=3, vm_shutdown_timeout=5))
    try:
        rig.sim.control("down", on="1")
        rig.power("OB DISCHRG")
        rig.slave.wait_log(f"{H0}: shut down VMs: unreachable", 3 + TOLERANCE + 10)
        state = rig.sim.state()
        assert host(state, H0)["power"] == "poweredOn"
        assert all(vm(state, name)["power"] == "poweredOn" for name in OURS)
        assert f"{H0}: shut down: " not in rig.slave.log()
        rig.sim.control("down", on="0")
        rig.until(lambda s: host(s, H0)["power"] == "poweredOff", 10 + TOLERANCE + 10,
                  "H0 shut down once vCenter answers")
        calls = rig.sim.calls()[H0]
        stop = calls.index("ShutdownHost_Task")
        assert {f"ShutdownGuest {VM0}", f"ShutdownGuest {VM1}"} <= set(calls[:stop])
        assert "again before attempt 2 of the host's shutdown" in rig.slave.log()
        untouched(rig.sim, H1)
        untouched(rig.sim, H2)
    finally:
        rig.close()


@pytest.mark.vcsim("-migrate-delay", "1s")
def test_vcenter_unreachable_during_the_migration(tmp_path: Path, sim: Vcsim) -> None:
    """vCenter stops answering while H0's VMs migrate and comes back only once the
    shutdown's steps are under way: the enter's end is not seen, the VMs' step tries
    vCenter again within its time and shuts H0 down once it answers; none of its VMs dies
    with it (each was moved, or stopped before the host); power back takes H0 out of
    maintenance if the unseen enter put it there."""
    rig = Rig(tmp_path, sim, shutdown_after=5)
    try:
        rig.power("OB DISCHRG")
        rig.until(lambda s: host(s, H0)["entering"], MAINTENANCE_AFTER + TOLERANCE + 2,
                  "H0 entering maintenance")
        rig.sim.control("down", on="1")
        rig.slave.wait_log(f"{H0}: shut down VMs: ", 5 + TOLERANCE + 30)
        assert re.search(rf"{H0}: enter maintenance: (unreachable|failed|timed-out)",
                         rig.slave.log()), rig.slave.log()
        stays(rig, lambda s: host(s, H0)["power"] == "poweredOn", 3,
              "H0 up while vCenter is away")
        rig.sim.control("down", on="0")
        rig.until(lambda s: host(s, H0)["power"] == "poweredOff", 60 + TOLERANCE,
                  "H0 shut down once vCenter answers")
        state, calls = rig.sim.state(), rig.sim.calls()
        stop = calls[H0].index("ShutdownHost_Task")
        for name in OURS:
            moved = vm(state, name)["host"] != H0 and vm(state, name)["power"] == "poweredOn"
            assert moved or f"ShutdownGuest {name}" in calls[H0][:stop], (name, calls)
        # the enter's end was not seen: power back takes H0 out of maintenance once it is
        # up, if the enter got it there (here it had not: it is left as it is)
        at = len(rig.slave.log())
        rig.power("OL CHRG")
        rig.slave.wait_log(f"{H0}: exit maintenance", 10, after=at)
        rig.sim.control("host", name=H0, power="on")          # the BIOS's AC power on
        rig.until(lambda s: host(s, H0)["power"] == "poweredOn"
                  and not host(s, H0)["maintenance"], 15, "H0 up, out of maintenance")
        rig.slave.wait_log(f"{H0}: exit maintenance: ok", 20, after=at)
        untouched(rig.sim, H1)
        untouched(rig.sim, H2)
    finally:
        rig.close()


@pytest.mark.vcsim("-hang", VM0)
def test_a_vm_that_ignores_its_guest_shutdown(tmp_path: Path, sim: Vcsim) -> None:
    """VM0 ignores the guest shutdown: it is powered off at the step's timeout (3 s),
    then the host is shut down."""
    rig = Rig(tmp_path, sim, hosts=vsphere_host(H0, shutdown_after=2, vm_shutdown_timeout=3))
    try:
        rig.power("OB DISCHRG")
        rig.until(lambda s: vm(s, VM1)["power"] == "poweredOff", 2 + TOLERANCE + 3,
                  "VM1 stopped by its guest")
        asked = time.monotonic()
        assert vm(rig.sim.state(), VM0)["power"] == "poweredOn"
        off = rig.until(lambda s: vm(s, VM0)["power"] == "poweredOff", 3 + TOLERANCE + 3,
                        "VM0 powered off at the timeout")
        assert off - asked >= 3 - 1.5
        rig.until(lambda s: host(s, H0)["power"] == "poweredOff", 10, "H0 shut down")
        calls = rig.sim.calls()[H0]
        assert calls.index(f"ShutdownGuest {VM0}") < calls.index(f"PowerOffVM_Task {VM0}") \
            < calls.index("ShutdownHost_Task")
        untouched(rig.sim, H1)
        untouched(rig.sim, H2)
    finally:
        rig.close()


@pytest.mark.vcsim("-stuck", VM1)
def test_a_migration_that_never_ends(tmp_path: Path, sim: Vcsim) -> None:
    """VM1's migration never ends: maintenance (its time limit the time left until the
    shutdown, 4 s) ends at its deadline with Timedout, VM0 having moved; at the shutdown
    time VM1 is stopped on H0, then H0 is shut down, forced; VM0 runs on."""
    rig = Rig(tmp_path, sim, shutdown_after=6)
    try:
        cut = rig.power("OB DISCHRG")
        rig.until(lambda s: host(s, H0)["entering"], MAINTENANCE_AFTER + TOLERANCE + 2,
                  "H0 entering maintenance")
        rig.until(lambda s: vm(s, VM0)["host"] != H0, 5, "VM0 moved")
        rig.slave.wait_log(f"{H0}: enter maintenance: no-target", 6 + TOLERANCE + 5)
        assert time.monotonic() - cut >= 6 - 1.5     # not before its deadline
        assert "Timedout" in rig.slave.log()
        rig.until(lambda s: host(s, H0)["power"] == "poweredOff", TOLERANCE + 8,
                  "H0 shut down")
        state = rig.sim.state()
        assert not host(state, H0)["maintenance"] and not host(state, H0)["entering"]
        assert vm(state, VM1)["host"] == H0 and vm(state, VM1)["power"] == "poweredOff"
        assert vm(state, VM0)["host"] in (H1, H2) and vm(state, VM0)["power"] == "poweredOn"
        calls = rig.sim.calls()[H0]
        assert calls.index(f"ShutdownGuest {VM1}") < calls.index("ShutdownHost_Task")
        assert "(forced: not in maintenance)" in rig.slave.log()
        untouched(rig.sim, H1)
        untouched(rig.sim, H2)
    finally:
        rig.close()


# -- the stuck migration itself, through the backend ----------------------------------


@pytest.mark.vcsim("-stuck", VM1)
def test_a_stuck_migration_is_cancelable_and_times_out(sim: Vcsim) -> None:
    """vcsim-ext's stuck migration behaves as vCenter's task: the other VM moves, the task
    keeps running (the VM stays), cancelling it ends it with the host out of maintenance;
    with a timeout it ends with Timedout (the backend's "no target")."""
    b, seam, _ = backend(sim)
    d = b.enter_maintenance(H0, 60)
    wait_for(lambda: sim.vm(VM0)["host"] != H0, 10, "VM0 moved")
    assert sim.host(H0)["entering"] and sim.vm(VM1)["host"] == H0
    d.cancel()
    seam.settle()
    wait_for(lambda: not sim.host(H0)["entering"], 10, "the task to end")
    assert not sim.host(H0)["maintenance"] and sim.vm(VM1)["host"] == H0
    started = time.monotonic()
    result = result_of(b.enter_maintenance(H0, 2), seam)
    assert time.monotonic() - started >= 2 - 0.5
    assert result.outcome is Outcome.NO_TARGET and "Timedout" in result.detail, result
    assert result.left == (VM1,)
    assert not sim.host(H0)["maintenance"] and not sim.host(H0)["entering"]
