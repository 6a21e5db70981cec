"""End to end: our master (a dummy-ups UPS replayed from its file), our slave (``upsagent
slave``, a real process) protecting vSphere hosts of vcsim-ext, and a power cut.

Every step is checked from the simulator's own state (where each VM runs, power states,
maintenance flags) at its time: with ``debounce = 1``, ``maintenance_after = 2`` and
``shutdown_after = 6``, host H0 enters maintenance (its VMs moved by DRS to H1 and H2) about
2 s after the cut and is shut down about 6 s after it; with power back while the enter is
still moving VMs, the agent lets the enter finish, then takes H0 out of maintenance and it
is never shut down; restarted while H0 is in maintenance, the agent still takes it out
when power returns (its saved state says it put H0 there).  H1 and H2 are on other power
and never touched: no call on them or their VMs in the simulator's trace (:func:`untouched`).
Times are wall-clock (real processes); every wait polls the simulator with a bound, nothing
sleeps for time to pass.  ``tests/test_vsphere_matrix.py`` plays the rest of issue 12's
matrix with this :class:`Rig`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pyVmomi")

from tests.ourmaster import OurMaster, wait_for  # noqa: E402
from tests.test_reliability import UPS_CONF, Slave, dev  # noqa: E402
from tests.test_vsphere import H0, H1, H2, sim, simulator_binary  # noqa: E402, F401
from tests.vcsimext import PASSWORD, USER, Vcsim  # noqa: E402

MAINTENANCE_AFTER, SHUTDOWN_AFTER = 2.0, 6.0
#: how late a step may be seen (polls of 1 s, the UPS's pollinterval, process start-up)
TOLERANCE = 3.0


def vsphere_host(name: str, ups: str = "{ups}", **keys: float | str) -> str:
    """A ``[[host]]`` table as the issue writes it (``backend = "vsphere"``, ``vcenter =
    "vc1"``, ``powered_by``), with ``debounce = 1`` and ``keys`` (timers in seconds)."""
    more = "".join(f"{k} = {v:g}\n" if isinstance(v, (int, float)) else f'{k} = "{v}"\n'
                   for k, v in keys.items())
    return (f'\n[[host]]\nname = "{name}"\nbackend = "vsphere"\nvcenter = "vc1"\n'
            f'powered_by = ["{ups}"]\ndebounce = 1\n{more}')


class Rig:
    """Master + slave protecting ``H0`` of ``sim`` (and its own machine, which only a low
battery would shut down); the UPS's status set through the master.

    ``hosts``: other ``[[host]]`` tables for the vSphere hosts (:func:`vsphere_host`;
    ``{ups}`` is the UPS ``dummy``, ``{ups2}`` the second one, ``dummy2``, served and
    monitored when ``two_ups``)."""

    def __init__(self, tmp: Path, sim: Vcsim, shutdown_after: float = SHUTDOWN_AFTER,
                 hosts: str | None = None, two_ups: bool = False) -> None:
        self.sim = sim
        conf, files = UPS_CONF, {"ups.dev": dev("OL CHRG")}
        if two_ups:
            conf += "[dummy2]\n  driver = dummy-ups\n  port = ups2.dev\n  pollinterval = 1\n"
            files["ups2.dev"] = dev("OL CHRG")
        self.master = OurMaster(conf, files=files).start()
        pw = tmp / "vc1.pw"
        pw.write_text(PASSWORD + "\n")
        pw.chmod(0o600)
        if hosts is None:
            hosts = vsphere_host(H0, maintenance_after=MAINTENANCE_AFTER,
                                 shutdown_after=shutdown_after)
        second = f"dummy2@127.0.0.1:{self.master.port}"
        if two_ups:
            hosts += f"""
[[slave.monitor]]
ups = "{second}"
user = "slaveuser"
password = "slavepass"
role = "secondary"
"""
        host = f"""
[[slave.vcenter]]
name = "vc1"
url = "{sim.url}"
user = "{USER}"
password_file = "{pw}"
ca_file = "{sim.cert}"

[[host]]
name = "vm"
backend = "local"
""" + hosts.replace("{ups2}", second)
        self.slave = Slave(tmp, self.master.port, host)
        logins = "NUMLOGINS dummy 1"
        wait_for(lambda: logins in self._ask("GET NUMLOGINS dummy"), 20,
                 f"the slave to log in\n{self.slave.log()}")
        if two_ups:
            wait_for(lambda: "NUMLOGINS dummy2 1" in self._ask("GET NUMLOGINS dummy2"), 20,
                     f"the slave to log in to dummy2\n{self.slave.log()}")

    def _ask(self, *lines: str) -> str:
        from tests.ourmaster import ask
        return ask(self.master.port, *lines)

    def power(self, status: str, ups: str = "dummy") -> float:
        """The UPS (``dummy`` or ``dummy2``) reports ``status`` from now on: the time."""
        (self.master.dir / ("ups.dev" if ups == "dummy" else "ups2.dev")).write_text(
            dev(status))
        answer = self._ask("USERNAME admin", "PASSWORD adminpass",
                           f'SET VAR {ups} ups.status "{status}"')
        assert answer == "OK\nOK\nOK\n", answer
        return time.monotonic()

    def until(self, check: Any, timeout: float, what: str) -> float:
        """Poll the simulator until ``check(state)``; the time it held."""
        def look() -> bool:
            assert self.slave.proc.poll() is None, self.slave.log()
            return bool(check(self.sim.state()))
        wait_for(look, timeout, f"{what}\n{self.slave.log()}")
        return time.monotonic()

    def close(self) -> None:
        self.slave.stop()
        self.master.stop()


def host(state: dict[str, Any], name: str) -> dict[str, Any]:
    return next(h for h in state["hosts"] if h["name"] == name)


def vm(state: dict[str, Any], name: str) -> dict[str, Any]:
    return next(v for v in state["vms"] if v["name"] == name)


def untouched(sim: Vcsim, name: str, power: str = "poweredOn") -> None:
    """Host ``name``, which no configuration names, was never acted on: no call on it or
    on a VM it ran, still ``power``, never in maintenance, its own VMs still on it as they
    were (other hosts' VMs that DRS moved there do not count)."""
    assert name not in sim.calls(), sim.calls()
    state = sim.state()
    assert host(state, name)["power"] == power
    assert not host(state, name)["maintenance"] and not host(state, name)["entering"]
    for own in (f"{name}_VM0", f"{name}_VM1"):
        assert vm(state, own)["host"] == name and vm(state, own)["power"] == power


@pytest.fixture
def rig(tmp_path: Path, sim: Vcsim) -> Iterator[Rig]:
    r = Rig(tmp_path, sim)
    yield r
    r.close()


OURS = (f"{H0}_VM0", f"{H0}_VM1")


def test_power_cut_maintenance_then_shutdown(rig: Rig) -> None:
    cut = rig.power("OB DISCHRG")
    entered = rig.until(lambda s: host(s, H0)["entering"] or host(s, H0)["maintenance"],
                        MAINTENANCE_AFTER + TOLERANCE + 2, "H0 entering maintenance")
    assert entered - cut >= MAINTENANCE_AFTER - 0.5
    rig.until(lambda s: host(s, H0)["maintenance"], 10, "H0 in maintenance")
    state = rig.sim.state()
    # DRS moved H0's VMs to the hosts that still have power, running
    assert host(state, H0)["vms"] == []
    for name in OURS:
        assert vm(state, name)["host"] in (H1, H2) and vm(state, name)["power"] == "poweredOn"
    assert host(state, H0)["power"] == "poweredOn"        # not yet: shutdown_after
    down = rig.until(lambda s: host(s, H0)["power"] == "poweredOff",
                     SHUTDOWN_AFTER + TOLERANCE + 2, "H0 shut down")
    assert SHUTDOWN_AFTER - 0.5 <= down - cut <= SHUTDOWN_AFTER + TOLERANCE + 1
    state = rig.sim.state()
    # the others were never touched, and every VM still runs
    for other in (H1, H2):
        assert host(state, other)["power"] == "poweredOn"
        assert not host(state, other)["maintenance"]
    assert all(v["power"] == "poweredOn" for v in state["vms"])
    untouched(rig.sim, H1)
    untouched(rig.sim, H2)


@pytest.mark.vcsim("-migrate-delay", "1s")
def test_power_back_mid_migration(tmp_path: Path, sim: Vcsim) -> None:
    # the enter's own limit is the time until the shutdown step: 9 - 2 s, well above the
    # 2 s the two migrations take, even on a loaded machine
    rig = Rig(tmp_path, sim, shutdown_after=9)
    try:
        _mid_migration(rig)
    finally:
        rig.close()


def _mid_migration(rig: Rig) -> None:
    cut = rig.power("OB DISCHRG")
    rig.until(lambda s: host(s, H0)["entering"], MAINTENANCE_AFTER + TOLERANCE + 2,
              "H0 entering maintenance")
    assert not host(rig.sim.state(), H0)["maintenance"]
    rig.power("OL CHRG")
    # the enter finishes (the migration is not torn), then the agent exits maintenance
    rig.until(lambda s: host(s, H0)["maintenance"], 10, "the enter to finish")
    rig.until(lambda s: not host(s, H0)["maintenance"] and not host(s, H0)["entering"], 15,
              "H0 out of maintenance")
    assert "during the migration, which has completed" in rig.slave.log()
    # DRS brings the VMs back; H0 was never shut down
    rig.until(lambda s: set(OURS) <= set(host(s, H0)["vms"]), 15, "the VMs back on H0")
    deadline = cut + 9 + TOLERANCE
    while time.monotonic() < deadline:
        assert host(rig.sim.state(), H0)["power"] == "poweredOn", rig.slave.log()
        time.sleep(0.2)
    untouched(rig.sim, H1)
    untouched(rig.sim, H2)


def test_restart_remembers_the_maintenance_it_entered(tmp_path: Path, sim: Vcsim) -> None:
    rig = Rig(tmp_path, sim, shutdown_after=120)
    try:
        rig.power("OB DISCHRG")
        rig.until(lambda s: host(s, H0)["maintenance"], MAINTENANCE_AFTER + TOLERANCE + 5,
                  "H0 in maintenance")
        rig.slave.wait_log(f"{H0}: enter maintenance: ok", 10)
        rig.slave.restart()
        rig.slave.wait_log("state restored", 15)
        rig.power("OL CHRG")
        rig.until(lambda s: not host(s, H0)["maintenance"], 20,
                  "H0 out of maintenance after the restart")
        assert f"{H0}: exit maintenance: ok: out of maintenance" in rig.slave.log()
        rig.until(lambda s: set(OURS) <= set(host(s, H0)["vms"]), 15, "the VMs back on H0")
        assert host(rig.sim.state(), H0)["power"] == "poweredOn"
        untouched(rig.sim, H1)
        untouched(rig.sim, H2)
    finally:
        rig.close()


@pytest.mark.vcsim("-free-esxi")
def test_free_esxi_is_reported_when_the_agent_starts(rig: Rig) -> None:
    rig.slave.wait_log('protect this host with backend = "ssh" instead', 15)
    assert "vsphere backend: vcenter vc1 is VMware vSphere 7 Hypervisor (esxBasic)" in \
        rig.slave.log()
