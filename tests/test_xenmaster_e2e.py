"""End to end: scenario 4b (``upsagent simulate 4b-xenserver-master-last``) on short
timers, with real processes: our master (a dummy-ups UPS replayed from its file), two of
our slaves (``upsagent slave``) and the xapi simulator of tests/xapisim.py over HTTPS.

* The management agent protects host2, a pool member (``backend = "xen"``): disabled and
  evacuated 2 s after the power cut (its VMs go to the pool master host1), shut down at
  6 s; host1 is declared ``pool_master = true`` there and never touched.
* The pool master's own agent (``backend = "xenmaster"``, its config naming the pool by
  master's own address, here 127.0.0.2, as ``https://localhost`` would) shuts host1 down at
  10 s: host1 is disabled in xapi, the VMs left on it (its own and those evacuated to it)
  are stopped group by group (``web*``, then ``app*`` whose guest ignores the clean
  shutdown and is hard shut down at the group's timeout, then the rest), and then this
  OS's shutdown command runs (a recording command in place of ``/sbin/shutdown``).

And the pool master's agent alone without timers: on low battery (critical, as upsmon)
its VMs stop, then its shutdown command runs.

Everything is checked from the simulator's state and event log and the recording; polling
with deadlines, nothing sleeps for time to pass.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("XenAPI")

from tests.ourmaster import OurMaster, ask, wait_for  # noqa: E402
from tests.sshd import free_port  # noqa: E402
from tests.test_reliability import UPS_CONF, Slave, dev  # noqa: E402
from tests.xapisim import Pool, make_ca  # noqa: E402

GiB = 1 << 30
MAINTENANCE_AFTER, MEMBER_SHUTDOWN, MASTER_SHUTDOWN = 2.0, 6.0, 10.0
GROUP = 2.0              # each VM group's timeout
#: how late a step may be seen (polls of 1 s, the UPS's pollinterval, process start-up)
TOLERANCE = 3.0


def pool_section(port: int, address: str, pw: Path, ca: Path) -> str:
    return f"""
[[slave.xenpool]]
name = "pool1"
url = "https://{address}:{port}"
user = "root"
password_file = "{pw}"
ca_file = "{ca}"
"""


def events_of(sim: Pool) -> list[dict[str, Any]]:
    with sim._lock:
        return list(sim._events)


def halts(sim: Pool) -> list[tuple[str, float]]:
    """(VM, when) of each halt in the event log, in order."""
    return [(e["snapshot"]["name_label"], float(e["timestamp"])) for e in events_of(sim)
            if e["class"] == "vm" and e["snapshot"].get("power_state") == "Halted"]


def test_power_cut_the_master_stops_its_vms_in_group_order_then_itself(
        tmp_path: Path) -> None:
    ca, cert, key = make_ca(tmp_path, ["127.0.0.1", "127.0.0.2"])
    sim = Pool({"host1": ("127.0.0.2", 32 * GiB), "host2": ("127.0.0.1", 16 * GiB)}, "host1",
               {"web1": ("host1", 2 * GiB), "app1": ("host1", 2 * GiB),
                "db1": ("host1", 2 * GiB), "vm2": ("host2", 4 * GiB),
                "vm3": ("host2", 4 * GiB)}, migration_time=0.2)
    sim.vm_named("app1").hangs = True           # its guest ignores the clean shutdown
    port = free_port()
    sim.serve(port, cert, key)
    pw = tmp_path / "pool1.pw"
    pw.write_text(sim.password + "\n")
    pw.chmod(0o600)
    master = OurMaster(UPS_CONF, files={"ups.dev": dev("OL CHRG")}).start()
    mgmt: Slave | None = None
    own: Slave | None = None
    try:
        (tmp_path / "mgmt").mkdir()
        mgmt = Slave(tmp_path / "mgmt", master.port, pool_section(port, "127.0.0.1", pw, ca) + f"""
[[host]]
name = "vm"
backend = "local"

[[host]]
name = "host1"
backend = "xen"
pool = "pool1"
pool_master = true
powered_by = ["{{ups}}"]

[[host]]
name = "host2"
backend = "xen"
pool = "pool1"
powered_by = ["{{ups}}"]
debounce = 1
maintenance_after = {MAINTENANCE_AFTER:g}
shutdown_after = {MEMBER_SHUTDOWN:g}
""")
        (tmp_path / "master").mkdir()
        own = Slave(tmp_path / "master", master.port, pool_section(port, "127.0.0.2", pw, ca)
                    + f"""
[[host]]
name = "host1"
backend = "xenmaster"
pool = "pool1"
powered_by = ["{{ups}}"]
debounce = 1
shutdown_after = {MASTER_SHUTDOWN:g}
vm_shutdown_timeout = {3 * GROUP:g}
vm_groups = [{{ patterns = ["web*"], timeout = {GROUP:g} }},
             {{ patterns = ["app*"], timeout = {GROUP:g} }}]
""")
        wait_for(lambda: "NUMLOGINS dummy 2" in ask(master.port, "GET NUMLOGINS dummy"),
                 20, f"the slaves to log in\n{mgmt.log()}\n{own.log()}")
        _power_cut(sim, master, mgmt, own)
    finally:
        for slave in (mgmt, own):
            if slave is not None:
                slave.proc.terminate()
                slave.proc.wait(10)
        master.stop()
        sim.close()


def _power_cut(sim: Pool, master: OurMaster, mgmt: Slave, own: Slave) -> None:
    host1, host2 = (sim.hosts[sim.host_ref(n)] for n in ("host1", "host2"))

    def until(check: Any, timeout: float, what: str) -> float:
        def look() -> bool:
            for slave in (mgmt, own):
                assert slave.proc.poll() is None, slave.log()
            return bool(check())
        wait_for(look, timeout, f"{what}\n--- mgmt\n{mgmt.log()}\n--- master\n{own.log()}")
        return time.monotonic()

    (master.dir / "ups.dev").write_text(dev("OB DISCHRG"))
    answer = ask(master.port, "USERNAME admin", "PASSWORD adminpass",
                 'SET VAR dummy ups.status "OB DISCHRG"')
    assert answer == "OK\nOK\nOK\n", answer
    cut, wall_cut = time.monotonic(), time.time()
    # the member: evacuated to the master, then shut down by the management agent
    until(lambda: not host2.enabled and sim.where("vm2") == sim.where("vm3") == "host1",
          MAINTENANCE_AFTER + TOLERANCE + 3, "host2 evacuated to host1")
    until(lambda: not host2.live, MEMBER_SHUTDOWN + TOLERANCE + 3 - (time.monotonic() - cut),
          "host2 shut down")
    assert host1.enabled and halts(sim) == [] and own.shut_down_at() is None
    # the master's own agent: disabled, its VMs in group order, then its own shutdown
    until(lambda: own.shut_down_at() is not None,
          MASTER_SHUTDOWN + 3 * GROUP + TOLERANCE + 5 - (time.monotonic() - cut),
          "the master's shutdown command")
    order = halts(sim)
    names = [vm for vm, _ in order]
    assert names[:2] == ["web1", "app1"] and set(names[2:]) == {"db1", "vm2", "vm3"}, order
    assert len(names) == 5
    assert all(sim.vm_named(vm).power_state == "Halted" for vm in names)
    assert order[0][1] - wall_cut >= MASTER_SHUTDOWN - 0.5, order[0][1] - wall_cut
    # app1's guest ignored its clean shutdown: hard shut down at its group's timeout
    assert order[1][1] - order[0][1] >= GROUP - 0.5
    calls = sim.calls
    hard = [sim.vms[args[0]].name_label for m, args in calls if m == "Async.VM.hard_shutdown"]
    assert hard == ["app1"], hard
    assert "task.cancel" in [m for m, _ in calls]
    # xapi was told (host1 disabled before its first VM stopped), never asked to shut it
    # down: this OS's shutdown command ran, after the last VM stopped
    events = events_of(sim)
    disabled = next(i for i, e in enumerate(events) if e["class"] == "host" and
                    e["ref"] == sim.master and not e["snapshot"]["enabled"])
    first_halt = next(i for i, e in enumerate(events) if e["class"] == "vm" and
                      e["snapshot"].get("power_state") == "Halted")
    assert disabled < first_halt
    assert [args for m, args in calls if m == "host.shutdown"] == [(sim.host_ref("host2"),)]
    assert not host1.enabled and host1.live
    down = own.shut_down_at()
    assert down is not None and down >= order[-1][1] - 0.05, (down, order[-1][1])
    own.wait_log("host1: shut down: ok", 5)
    assert mgmt.shut_down_at() is None        # the management VM itself was not shut down


def test_low_battery_without_timers_stops_the_vms_then_the_master(tmp_path: Path) -> None:
    """The pool master's agent alone, no timer: on OB LB (critical, as upsmon) its VMs
    are stopped, then this OS's shutdown runs."""
    ca, cert, key = make_ca(tmp_path, ["127.0.0.2"])
    sim = Pool({"host1": ("127.0.0.2", 32 * GiB)}, "host1",
               {"vm1": ("host1", 2 * GiB), "vm2": ("host1", 2 * GiB)}, migration_time=0.2)
    sim.vm_named("vm2").pv_drivers = False
    port = free_port()
    sim.serve(port, cert, key)
    pw = tmp_path / "pool1.pw"
    pw.write_text(sim.password + "\n")
    pw.chmod(0o600)
    master = OurMaster(UPS_CONF, files={"ups.dev": dev("OL CHRG")}).start()
    own: Slave | None = None
    try:
        own = Slave(tmp_path, master.port, pool_section(port, "127.0.0.2", pw, ca) + """
[[host]]
name = "host1"
backend = "xenmaster"
pool = "pool1"
""")
        wait_for(lambda: "NUMLOGINS dummy 1" in ask(master.port, "GET NUMLOGINS dummy"),
                 20, f"the slave to log in\n{own.log()}")
        (master.dir / "ups.dev").write_text(dev("OB DISCHRG LB"))
        answer = ask(master.port, "USERNAME admin", "PASSWORD adminpass",
                     'SET VAR dummy ups.status "OB DISCHRG LB"')
        assert answer == "OK\nOK\nOK\n", answer
        slave = own
        wait_for(lambda: slave.shut_down_at() is not None, 20,
                 f"the master's shutdown command\n{own.log()}")
        assert [vm for vm, _ in halts(sim)] and \
            {vm for vm, _ in halts(sim)} == {"vm1", "vm2"}
        assert all(when <= (own.shut_down_at() or 0) + 0.05 for _, when in halts(sim))
        assert not sim.hosts[sim.master].enabled and sim.hosts[sim.master].live
        assert "host.shutdown" not in [m for m, _ in sim.calls]
    finally:
        if own is not None:
            own.proc.terminate()
            own.proc.wait(10)
        master.stop()
        sim.close()
