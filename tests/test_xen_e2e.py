"""End to end: our master (a dummy-ups UPS replayed from its file), our slave (``upsagent
slave``, a real process) protecting a XenServer pool of tests/xapisim.py (over HTTPS, the
test CA) and an agentless machine over SSH (Debian's sshd, tests/sshd.py), and a power
cut -- scenario 4 (``upsagent simulate 4-xenserver-pool``) on short timers.

The pool: host1 (the pool master, declared ``pool_master = true`` on the same UPS: never
touched), host2 and host3 (two VMs each).  With ``debounce = 1``, ``maintenance_after = 2``
and ``shutdown_after = 8``: host2 is disabled and evacuated about 2 s after the cut, then
host3 (hosts of one pool enter maintenance one after the other), all their VMs end on
host1, and both are shut down about 8 s after the cut; the ssh host's command runs once at
its own time.  With power back while host2's evacuation still moves VMs, the agent lets
the evacuation finish, then enables host2 again, which is never shut down (the built-in
scenario with power back at 70 s).  Every step is checked from the simulator's own state
(where each VM runs, enabled, live, its event log) with bounded polling; nothing sleeps for
time to pass.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("XenAPI")

from tests.ourmaster import OurMaster, ask, wait_for  # noqa: E402
from tests.sshd import (  # noqa: E402,F401 (sshd is a fixture)
    SSHD, Sshd, free_port, recorder, sshd, start_sshd)
from tests.test_reliability import UPS_CONF, Slave, dev  # noqa: E402
from tests.xapisim import Pool, make_ca  # noqa: E402

GiB = 1 << 30
MAINTENANCE_AFTER, SHUTDOWN_AFTER, SSH_AFTER = 2.0, 8.0, 5.0
#: how late a step may be seen (polls of 1 s, the UPS's pollinterval, process start-up)
TOLERANCE = 3.0
OURS = {"host2": ("vm2", "vm3"), "host3": ("vm4", "vm5")}

needs_sshd = pytest.mark.skipif(not os.path.exists(SSHD) or shutil.which("ssh-keygen") is None,
                                reason="needs Debian's openssh-server (make sysdeps)")


def xen_pool(tmp: Path, migration: float) -> tuple[Pool, int, Path]:
    """host1 (the master, 127.0.0.2, room for every VM), host2 (127.0.0.1), host3
    (127.0.0.3); serving on a free port: (pool, port, CA file)."""
    ca, cert, key = make_ca(tmp, ["127.0.0.1", "127.0.0.2", "127.0.0.3"])
    sim = Pool({"host1": ("127.0.0.2", 32 * GiB), "host2": ("127.0.0.1", 16 * GiB),
                "host3": ("127.0.0.3", 16 * GiB)}, "host1",
               {"vm1": ("host1", 2 * GiB), "vm2": ("host2", 4 * GiB),
                "vm3": ("host2", 4 * GiB), "vm4": ("host3", 4 * GiB),
                "vm5": ("host3", 4 * GiB)}, migration_time=migration)
    port = free_port()
    sim.serve(port, cert, key)
    return sim, port, ca


class Rig:
    """Master + slave protecting host2 and host3 of ``sim`` (host1, the pool master, is
    declared and left alone), optionally an ssh host; the UPS's status set through the
    master."""

    def __init__(self, tmp: Path, sim: Pool, port: int, ca: Path, *,
                 shutdown_after: float = SHUTDOWN_AFTER, ssh: str = "") -> None:
        self.sim = sim
        self.master = OurMaster(UPS_CONF, files={"ups.dev": dev("OL CHRG")}).start()
        pw = tmp / "pool1.pw"
        pw.write_text(sim.password + "\n")
        pw.chmod(0o600)
        hosts = "".join(f"""
[[host]]
name = "{name}"
backend = "xen"
pool = "pool1"
powered_by = ["{{ups}}"]
debounce = 1
maintenance_after = {MAINTENANCE_AFTER:g}
shutdown_after = {shutdown_after:g}
""" for name in ("host2", "host3"))
        config = f"""
[[slave.xenpool]]
name = "pool1"
url = "https://127.0.0.1:{port}"
user = "{sim.user}"
password_file = "{pw}"
ca_file = "{ca}"

[[host]]
name = "vm"
backend = "local"

[[host]]
name = "host1"
backend = "xen"
pool = "pool1"
pool_master = true
powered_by = ["{{ups}}"]
{hosts}{ssh}"""
        self.slave = Slave(tmp, self.master.port, config)
        wait_for(lambda: "NUMLOGINS dummy 1" in ask(self.master.port, "GET NUMLOGINS dummy"),
                 20, f"the slave to log in\n{self.slave.log()}")

    def power(self, status: str) -> float:
        """The UPS reports ``status`` from now on: the time."""
        (self.master.dir / "ups.dev").write_text(dev(status))
        answer = ask(self.master.port, "USERNAME admin", "PASSWORD adminpass",
                     f'SET VAR dummy ups.status "{status}"')
        assert answer == "OK\nOK\nOK\n", answer
        return time.monotonic()

    def host(self, name: str) -> Any:
        return self.sim.hosts[self.sim.host_ref(name)]

    def until(self, check: Any, timeout: float, what: str) -> float:
        """Poll the simulator until ``check()``; the time it held."""
        def look() -> bool:
            assert self.slave.proc.poll() is None, self.slave.log()
            return bool(check())
        wait_for(look, timeout, f"{what}\n{self.slave.log()}")
        return time.monotonic()

    def close(self) -> None:
        self.slave.stop()
        self.master.stop()


def writes_to(sim: Pool, ref: str) -> list[str]:
    """The calls that changed host ``ref`` or were asked to (its disable, evacuate...)."""
    return [m for m, args in sim.calls if args and args[0] == ref
            and not m.split(".")[-1].startswith("get")]


def events_of(sim: Pool) -> list[dict[str, Any]]:
    """The simulator's event log (what ``event.from`` serves), in order."""
    with sim._lock:
        return list(sim._events)


def first(events: list[dict[str, Any]], match: Any) -> int:
    """The index of the first event that ``match``es."""
    return next(i for i, e in enumerate(events) if match(e))


@needs_sshd
def test_power_cut_evacuates_then_shuts_down_and_runs_the_ssh_command(
        tmp_path: Path, sshd: Sshd) -> None:
    script, out = recorder(tmp_path)
    ssh = f"""
[[host]]
name = "nas"
backend = "ssh"
powered_by = ["{{ups}}"]
debounce = 1
shutdown_after = {SSH_AFTER:g}
[host.ssh]
address = "127.0.0.1"
port = {sshd.port}
user = "{sshd.user}"
key_file = "{sshd.key_file}"
known_hosts = "{sshd.known_hosts}"
command = ["{script}", "poweroff"]
"""
    sim, port, ca = xen_pool(tmp_path, migration=0.2)
    rig = Rig(tmp_path, sim, port, ca, ssh=ssh)
    try:
        _power_cut(rig, out)
    finally:
        rig.close()
        sim.close()


def _power_cut(rig: Rig, out: Path) -> None:
    sim = rig.sim
    cut = rig.power("OB DISCHRG")
    disabled = rig.until(lambda: not rig.host("host2").enabled,
                         MAINTENANCE_AFTER + TOLERANCE + 2, "host2 disabled")
    assert disabled - cut >= MAINTENANCE_AFTER - 0.5
    # host2 evacuated, then host3: every one of their VMs runs on host1, the host left
    for name in ("host2", "host3"):
        rig.until(lambda: not rig.host(name).enabled and
                  all(sim.where(vm) == "host1" for vm in OURS[name]),
                  10, f"{name} disabled and evacuated")
    assert all(sim.vm_named(vm).power_state == "Running" for vm in ("vm2", "vm3", "vm4", "vm5"))
    # one after the other: host3 was disabled once host2's evacuation had ended
    events = events_of(sim)
    assert first(events, lambda e: e["class"] == "host" and e["ref"] == sim.host_ref("host3")
                 and not e["snapshot"]["enabled"]) > \
        first(events, lambda e: e["class"] == "task" and e["snapshot"].get("status") == "success"
              and e["snapshot"].get("name_label") == "host.evacuate")
    methods = [m for m, _ in sim.calls]
    assert methods.count("Async.host.evacuate") == 2, methods
    assert rig.host("host2").live and rig.host("host3").live  # not yet: shutdown_after
    # the ssh host's command, at its time, once
    rig.until(out.exists, SSH_AFTER + TOLERANCE + 2, "the ssh host's command")
    ran = time.monotonic()
    assert SSH_AFTER - 0.5 <= ran - cut, ran - cut
    # host2 and host3 shut down at their time, without a second evacuation
    for name in ("host2", "host3"):
        down = rig.until(lambda: not rig.host(name).live,
                         cut + SHUTDOWN_AFTER + TOLERANCE + 2 - time.monotonic(),
                         f"{name} shut down")
        assert SHUTDOWN_AFTER - 0.5 <= down - cut <= SHUTDOWN_AFTER + TOLERANCE + 1
    methods = [m for m, _ in sim.calls]
    assert methods.count("Async.host.evacuate") == 2 and methods.count("host.shutdown") == 2
    # the pool master was never touched, and every VM still runs there
    master = rig.host("host1")
    assert master.enabled and master.live
    assert writes_to(sim, sim.master) == []
    assert all(sim.where(vm) == "host1" and sim.vm_named(vm).power_state == "Running"
               for vm in ("vm1", "vm2", "vm3", "vm4", "vm5"))
    assert out.read_text() == "poweroff\n--\n"
    rig.slave.wait_log("nas: shut down: ok", 5)


def test_power_back_mid_evacuation(tmp_path: Path) -> None:
    # each VM takes 1.5 s to move: host2's evacuation lasts about 3 s; the enter's own
    # limit is the time until the shutdown step, 9 - 2 s
    sim, port, ca = xen_pool(tmp_path, migration=1.5)
    rig = Rig(tmp_path, sim, port, ca, shutdown_after=9)
    try:
        _mid_evacuation(rig)
    finally:
        rig.close()
        sim.close()


def _mid_evacuation(rig: Rig) -> None:
    sim = rig.sim
    host2 = sim.host_ref("host2")
    cut = rig.power("OB DISCHRG")
    rig.until(lambda: "Async.host.evacuate" in [m for m, _ in sim.calls],
              MAINTENANCE_AFTER + TOLERANCE + 2, "host2's evacuation")
    assert not rig.host("host2").enabled
    assert any(sim.where(vm) == "host2" for vm in OURS["host2"]), "the evacuation ended"
    rig.power("OL CHRG")
    # the evacuation finishes (no VM torn), then the agent enables host2 again
    rig.until(lambda: rig.host("host2").enabled, 15, "host2 enabled again")
    assert all(sim.where(vm) == "host1" for vm in OURS["host2"])
    events = events_of(sim)
    done = first(events, lambda e: e["class"] == "task" and e["snapshot"].get("status") ==
                 "success" and e["snapshot"].get("name_label") == "host.evacuate")
    enabled = first(events, lambda e: e["class"] == "host" and e["ref"] == host2
                    and e["snapshot"]["enabled"])
    assert done < enabled, "host2 enabled before its evacuation finished"
    assert "task.cancel" not in [m for m, _ in sim.calls]
    rig.slave.wait_log("during the migration, which has completed", 5)
    # host2 is never shut down; host3's maintenance, due after host2's, never started
    deadline = cut + 9 + TOLERANCE
    while time.monotonic() < deadline:
        assert rig.host("host2").live, rig.slave.log()
        time.sleep(0.2)
    assert "host.shutdown" not in [m for m, _ in sim.calls]
    assert rig.host("host3").enabled and \
        all(sim.where(vm) == "host3" for vm in OURS["host3"])
    assert writes_to(sim, sim.master) == []
