"""Where the vCenter VM and the agent's VM run, and how a host's VMs are stopped (the
vCenter VM and the agent's VM spared, ``last_vms`` last, vApps as units) and started again:
:mod:`upsagent.hypervisors.vsphere_vms`, pure parts alone and the rest against vcsim-ext
(tests/vcsim/vapp.go), checked from the simulator's ``/_ext/state``."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pyVmomi")

from upsagent.hypervisors.vsphere import VsphereBackend  # noqa: E402
from upsagent.hypervisors.vsphere_client import VsphereClient  # noqa: E402
from upsagent.hypervisors.vsphere_vms import (  # noqa: E402
    LocalIdentity, Unit, addresses_of, plan_batches, swap_uuid)
from upsagent.policy.plan import VmGroup  # noqa: E402
from upsagent.system.runner import Outcome  # noqa: E402
from tests.test_vsphere import (  # noqa: E402, F401 - fixtures
    H0, H1, H2, ThreadSeam, config, result_of, sim, simulator_binary, wait_until)
from tests.vcsimext import Vcsim  # noqa: E402
from twisted.internet.task import Clock  # noqa: E402

UUID = "42011234-5678-9abc-def0-123456789abc"


def identity(tmp_path: Path, uuid: str | None = None, macs: Iterable[str] = ()
             ) -> LocalIdentity:
    """This machine, made up: an SMBIOS UUID file and a /sys/class/net of its own."""
    net = tmp_path / "net"
    (net / "lo").mkdir(parents=True, exist_ok=True)
    (net / "lo" / "address").write_text("00:00:00:00:00:00\n")
    for i, mac in enumerate(macs):
        (net / f"eth{i}").mkdir(exist_ok=True)
        (net / f"eth{i}" / "address").write_text(mac + "\n")
    path = tmp_path / "product_uuid"
    if uuid is not None:
        path.write_text(uuid + "\n")
    return LocalIdentity(path, net)


def backend(sim: Vcsim, ident: LocalIdentity, resolve: Any = None, **kw: Any
            ) -> tuple[VsphereBackend, ThreadSeam]:
    cfg = config(sim, **kw)
    seam = ThreadSeam()
    client = VsphereClient(cfg, identity=ident, resolve=resolve)
    return VsphereBackend(cfg, Clock(), blocking=seam, client=client), seam


def marks(b: VsphereBackend, seam: ThreadSeam) -> dict[str, tuple[bool, bool]]:
    """host -> (runs_vcenter, runs_agent)."""
    return {h.name: (h.runs_vcenter, h.runs_agent) for h in result_of(b.hosts(), seam)}


def off_times(sim: Vcsim, names: Iterable[str], start: float, until: Any) -> dict[str, float]:
    """When each of ``names`` was first seen powered off, polling until ``until()``."""
    off: dict[str, float] = {}
    names = set(names)
    end = time.monotonic() + 30
    while time.monotonic() < end:
        done = until()
        for vm in sim.state()["vms"]:
            if vm["name"] in names and vm["power"] != "poweredOn":
                off.setdefault(vm["name"], time.monotonic() - start)
        if done:
            break
        time.sleep(0.05)
    return off


# -- pure -------------------------------------------------------------------------------


def test_swap_uuid_swaps_the_first_three_fields() -> None:
    assert swap_uuid(UUID) == "34120142-7856-bc9a-def0-123456789abc"
    assert swap_uuid(swap_uuid(UUID)) == UUID


def test_local_identity(tmp_path: Path) -> None:
    ident = identity(tmp_path, UUID.upper(), ["00:50:56:AA:BB:CC", "52-54-00-01-02-03"])
    assert ident.uuids() == {UUID, swap_uuid(UUID)}
    assert ident.macs() == {"00:50:56:aa:bb:cc", "52:54:00:01:02:03"}
    nothing = LocalIdentity(tmp_path / "none", tmp_path / "none")
    assert nothing.uuids() == frozenset() and nothing.macs() == frozenset()


def test_addresses_of_the_vcenter_url() -> None:
    assert addresses_of("https://192.0.2.5/sdk") == {"192.0.2.5"}
    assert addresses_of("https://[fd00:0::5]:8443/sdk") == {"fd00::5"}
    seen = []

    def resolve(host: str) -> list[str]:
        seen.append(host)
        return ["192.0.2.5", "fd00:0:0:0::5", "fe80::1%eth0"]
    assert addresses_of("https://vc1.example.com/sdk", resolve) == {
        "192.0.2.5", "fd00::5", "fe80::1"}
    assert seen == ["vc1.example.com"]

    def fails(host: str) -> list[str]:
        raise OSError("no such name")
    assert addresses_of("https://vc1.example.com/sdk", fails) == frozenset()


def test_plan_batches_groups_vapps_and_the_last_ones() -> None:
    groups = (VmGroup(("web*", "App2"), 10), VmGroup(("db*",), 20))
    units = [Unit("web1", ("web1",)), Unit("db1", ("db1",)), Unit("misc", ("misc",)),
             Unit("dns1", ("dns1",)), Unit("vcsa", ("vcsa",)),
             Unit("App1", ("db2", "web2"), object()),     # a member in group 1
             Unit("App2", ("x1",), object())]             # its name in group 1
    batches = plan_batches(groups, units, 60, last=("dns*",), vcenter_vm="vcsa")
    assert [(b.label, [u.name for u in b.units], b.seconds) for b in batches] == [
        ("group 1", ["App1", "App2", "web1"], 10), ("group 2", ["db1"], 20),
        ("no group", ["misc"], 30), ("the vCenter VM", ["vcsa"], 30),
        ("last_vms", ["dns1"], 30)]
    # without a vCenter VM to stop (a session through it), it is an ordinary VM
    batches = plan_batches(groups, units[:5], 30, last=("dns*", "db*"))
    assert [(b.label, b.vms, b.seconds) for b in batches] == [
        ("group 1", ("web1",), 10), ("no group", ("misc", "vcsa"), 0),
        ("last_vms", ("db1", "dns1"), 20)]


# -- detection against the simulator ------------------------------------------------------


def test_vcenter_vm_found_by_its_address(sim: Vcsim, tmp_path: Path) -> None:
    b, seam = backend(sim, identity(tmp_path))
    assert marks(b, seam) == {H0: (False, False), H1: (False, False), H2: (False, False)}
    sim.control("guest", name=f"{H1}_VM0", ip="10.0.0.9,127.0.0.1")
    assert marks(b, seam)[H1] == (True, False)
    assert sum(v for m in marks(b, seam).values() for v in m) == 1
    # powered off: it runs nowhere
    sim.control("host", name=H1, power="off")
    assert marks(b, seam)[H1] == (False, False)


def test_vcenter_vm_found_by_a_resolved_ipv6_address(sim: Vcsim, tmp_path: Path) -> None:
    def resolve(host: str) -> list[str]:
        assert host == "localhost"
        return ["fd00::5", "192.0.2.7"]
    b, seam = backend(sim, identity(tmp_path), resolve,
                      url=sim.url.replace("127.0.0.1", "localhost"))
    sim.control("guest", name=f"{H2}_VM1", ip="192.0.2.99,fd00:0:0:0::5")
    assert marks(b, seam)[H2] == (True, False)


def test_vcenter_vm_and_agent_vm_by_name(sim: Vcsim, tmp_path: Path) -> None:
    sim.control("guest", name=f"{H1}_VM0", ip="127.0.0.1")     # the name wins
    b, seam = backend(sim, identity(tmp_path, UUID), vcenter_vm=f"{H2}_VM0",
                      agent_vm=f"{H0}_VM1")
    assert marks(b, seam) == {H0: (False, True), H1: (False, False), H2: (True, False)}


def test_agent_vm_by_smbios_uuid_in_either_byte_order(sim: Vcsim, tmp_path: Path) -> None:
    sim.control("guest", name=f"{H0}_VM1", uuid=UUID)
    b, seam = backend(sim, identity(tmp_path, swap_uuid(UUID).upper()))
    assert marks(b, seam) == {H0: (False, True), H1: (False, False), H2: (False, False)}
    b, seam = backend(sim, identity(tmp_path / "2", UUID))
    assert marks(b, seam)[H0] == (False, True)


def test_agent_vm_by_mac_and_not_a_vm(sim: Vcsim, tmp_path: Path) -> None:
    sim.control("guest", name=f"{H2}_VM0", mac="00:50:56:01:02:03")
    b, seam = backend(sim, identity(tmp_path, "4c4c4544-0000-1111-2222-333344445555",
                                    ["52:54:00:aa:bb:cc", "00:50:56:01:02:03"]))
    assert marks(b, seam)[H2] == (False, True)
    # a physical machine: another UUID, no VMware MAC: no host marked
    b, seam = backend(sim, identity(tmp_path / "p", "4c4c4544-0000-1111-2222-333344445555",
                                    ["52:54:00:aa:bb:cc"]))
    assert not any(agent for _, agent in marks(b, seam).values())


# -- shutdown and start ------------------------------------------------------------------


@pytest.mark.vcsim("-vm", "4", "-guest-delay", "400ms")
def test_shutdown_spares_the_agent_and_vcenter_vms_and_stops_last_vms_last(
        sim: Vcsim, tmp_path: Path) -> None:
    """Through the vCenter: the agent's VM (VM0) and the vCenter VM (VM1) are left for the
    host's shutdown; the infrastructure VM (VM2, last_vms) stops after the others (VM3)."""
    vm = [f"{H0}_VM{i}" for i in range(4)]
    sim.control("guest", name=vm[0], uuid=UUID)
    sim.control("guest", name=vm[1], ip="127.0.0.1")
    b, seam = backend(sim, identity(tmp_path, UUID), last_vms=("*_VM2",))
    assert marks(b, seam)[H0] == (True, True)
    start = time.monotonic()
    d = b.shutdown_vms(H0, 20)
    off = off_times(sim, vm, start, lambda: sim.vm(vm[2])["power"] != "poweredOn")
    result = result_of(d, seam)
    assert result.outcome is Outcome.OK, result
    assert result.stopped == (vm[2], vm[3]) and result.left == (vm[0], vm[1])
    assert "the agent's own VM" in result.detail and "the vCenter VM" in result.detail
    assert off[vm[3]] < off[vm[2]], off
    assert [sim.vm(n)["power"] for n in vm] == ["poweredOn", "poweredOn", "poweredOff",
                                                "poweredOff"]


@pytest.mark.vcsim("-vm", "3", "-guest-delay", "1s")
def test_vapp_stopped_as_a_unit_in_its_own_order_and_started_again(
        sim: Vcsim, tmp_path: Path) -> None:
    """The vApp (VM0: order 1, guest shutdown; VM1: order 2, power-off) is stopped with
    PowerOffVApp_Task in the group its name matches: VM1 first (the highest order), VM0 a
    guest delay later, then VM2 (no group).  Power back: PowerOnVApp_Task, whose start
    order leaves VM1 (startAction none) off."""
    vm = [f"{H0}_VM{i}" for i in range(3)]
    sim.control("vapp", name="App1", vms=f"{vm[0]},{vm[1]}", order="1,2",
                stop="guestShutdown,powerOff", delay="5,0", start="powerOn,none")
    b, seam = backend(sim, identity(tmp_path))
    groups = (VmGroup(("App*",), 8),)
    start = time.monotonic()
    d = b.shutdown_vms(H0, 12, groups)
    off = off_times(sim, vm, start, lambda: sim.vm(vm[2])["power"] != "poweredOn")
    result = result_of(d, seam)
    assert result.outcome is Outcome.OK, result
    assert result.stopped == tuple(vm)
    assert off[vm[1]] + 0.5 < off[vm[0]] < off[vm[2]], off
    assert sim.state()["vapps"] == [{"name": "App1", "state": "stopped",
                                     "vms": [vm[0], vm[1]]}]
    result = result_of(b.power_on_vms(H0, result.stopped, groups, 30), seam)
    assert result.outcome is Outcome.FAILED and result.left == (vm[1],), result
    assert [sim.vm(n)["power"] for n in vm] == ["poweredOn", "poweredOff", "poweredOn"]


@pytest.mark.vcsim("-vm", "2", "-hang", "DC0_C0_H0_VM0")
def test_vapp_member_still_on_after_its_group_is_powered_off(
        sim: Vcsim, tmp_path: Path) -> None:
    vm = [f"{H0}_VM{i}" for i in range(2)]
    sim.control("vapp", name="App1", vms=",".join(vm), stop="guestShutdown,guestShutdown",
                delay="1,1")
    b, seam = backend(sim, identity(tmp_path))
    start = time.monotonic()
    result = result_of(b.shutdown_vms(H0, 3, (VmGroup(("App1",), 3),)), seam)
    assert result.outcome is Outcome.OK and result.stopped == tuple(vm), result
    assert time.monotonic() - start >= 3
    assert all(sim.vm(n)["power"] == "poweredOff" for n in vm)


def test_vapp_across_hosts_is_not_stopped_as_a_unit(sim: Vcsim, tmp_path: Path) -> None:
    """A vApp with a member on another host: only this host's member is stopped, the other
    host's VM is left alone."""
    sim.control("vapp", name="App1", vms=f"{H0}_VM0,{H1}_VM0", stop="powerOff,powerOff")
    b, seam = backend(sim, identity(tmp_path))
    result = result_of(b.shutdown_vms(H0, 5), seam)
    assert result.outcome is Outcome.OK and result.stopped == (f"{H0}_VM0", f"{H0}_VM1")
    assert sim.vm(f"{H1}_VM0")["power"] == "poweredOn"
    assert sim.state()["vapps"][0]["state"] == "started"


@pytest.mark.vcsim("-vm", "4", "-guest-delay", "400ms")
def test_over_a_direct_esxi_session_the_vcenter_vm_stops_before_last_vms(
        sim: Vcsim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A session that does not go through the vCenter (HostAgent; vcsim-ext here answers
    as a vCenter, so the session kind is what is replaced): the vCenter VM (VM1, by name)
    stops after the ordinary VM (VM3) and before the infrastructure VM (VM2); the agent's
    VM (VM0, by name) is still left running."""
    from upsagent.hypervisors import vsphere_vms
    monkeypatch.setattr(vsphere_vms, "session_is_vcenter", lambda client: False)
    vm = [f"{H0}_VM{i}" for i in range(4)]
    b, seam = backend(sim, identity(tmp_path), vcenter_vm=vm[1], agent_vm=vm[0],
                      last_vms=("*_VM2",))
    start = time.monotonic()
    d = b.shutdown_vms(H0, 20)
    off = off_times(sim, vm, start, lambda: sim.vm(vm[2])["power"] != "poweredOn")
    result = result_of(d, seam)
    assert result.outcome is Outcome.OK and result.left == (vm[0],), result
    assert result.stopped == (vm[1], vm[2], vm[3])
    assert off[vm[3]] < off[vm[1]] < off[vm[2]], off
    assert sim.vm(vm[0])["power"] == "poweredOn"


def test_vapp_across_hosts_is_started_member_by_member(sim: Vcsim, tmp_path: Path) -> None:
    """Power back: a vApp with a member registered on another host is not started as a
    unit, even one remembered as stopped as a unit; only this host's member is started,
    the other host's VM is left as it is."""
    sim.control("vapp", name="App1", vms=f"{H0}_VM0,{H1}_VM0")
    b, seam = backend(sim, identity(tmp_path))
    assert result_of(b.shutdown_vms(H0, 5), seam).ok
    assert result_of(b.shutdown_vms(H1, 5), seam).ok
    b.client.vapp_units.add("App1")
    result = result_of(b.power_on_vms(H0, (f"{H0}_VM0",), (), 10), seam)
    assert result.outcome is Outcome.OK and result.stopped == (f"{H0}_VM0",), result
    assert sim.vm(f"{H1}_VM0")["power"] == "poweredOff"
