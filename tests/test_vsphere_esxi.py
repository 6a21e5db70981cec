"""The direct ESXi session of the ``vsphere`` backend (``[host.esxi]``,
upsagent/hypervisors/esxi.py), against two simulators: a vCenter (vcsim-ext, hosts
DC0_C0_H0..H2, the vCenter's own VM ``VCSA`` on H2) and an ``-esx`` process standing for
one of its hosts as that host's own endpoint.  Every check reads the simulators' state:
what was done through which endpoint, and that nothing was done on a host the session is
not for.  The retry tests drive the backend's time with a ``Clock``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock

pytest.importorskip("pyVmomi")

from upsagent.config.managers import EsxiConfig, VcenterConfig  # noqa: E402
from upsagent.hypervisors.esxi import same_name  # noqa: E402
from upsagent.hypervisors.vsphere import VsphereBackend  # noqa: E402
from upsagent.hypervisors.vsphere_client import VsphereClient  # noqa: E402
from upsagent.hypervisors.vsphere_vms import LocalIdentity, VmRules  # noqa: E402
from upsagent.system.runner import Outcome, Result  # noqa: E402
from upsagent.system.threads import inline  # noqa: E402
from tests.test_vsphere import (  # noqa: E402, F401 - fixtures
    H0, H1, H2, ThreadSeam, drive, result_of, simulator_binary, wait_until)
from tests.vcsimext import PASSWORD, USER, Vcsim  # noqa: E402

VCSA = "VCSA"


@pytest.fixture
def vc(tmp_path: Path, simulator_binary: Path) -> Iterator[Vcsim]:
    """The vCenter: its own VM runs on H2 (its address is the vCenter's, 127.0.0.1)."""
    (tmp_path / "vc").mkdir()
    s = Vcsim(tmp_path / "vc", "-extra-vm", f"{VCSA}=127.0.0.1")
    yield s
    s.stop()


def esx_sim(tmp_path: Path, name: str, *args: str) -> Vcsim:
    """An ``-esx`` endpoint for host ``name``, which runs its two VMs and VCSA."""
    where = tmp_path / f"esx-{name}-{len(list(tmp_path.iterdir()))}"
    where.mkdir()
    return Vcsim(where, "-esx", "-esx-name", name, "-extra-vm", f"{VCSA}=127.0.0.1", *args)


@pytest.fixture
def esx(tmp_path: Path, simulator_binary: Path, request: pytest.FixtureRequest
        ) -> Iterator[Vcsim]:
    marker = request.node.get_closest_marker("esx")
    name, *args = marker.args if marker else (H2,)
    s = esx_sim(tmp_path, name, *args)
    yield s
    s.stop()


def esxi(sim: Vcsim, host: str = H2, runs_vcenter: bool = True, **kw: Any) -> EsxiConfig:
    base: dict[str, Any] = {"ca_file": str(sim.cert)}
    base.update(kw)
    return EsxiConfig(host, sim.url, base.pop("user", USER),
                      base.pop("password", PASSWORD), runs_vcenter=runs_vcenter, **base)


class Identity(LocalIdentity):
    """This machine as the tests make it: no SMBIOS UUID, the MAC addresses given (none:
    the test machine is no VM of the simulators)."""

    def __init__(self, macs: frozenset[str] = frozenset()) -> None:
        super().__init__(Path("/nonexistent/product_uuid"), Path("/nonexistent/net"))
        object.__setattr__(self, "fixed_macs", macs)

    def macs(self) -> frozenset[str]:
        return frozenset(getattr(self, "fixed_macs"))


def backend(vc: Vcsim, *direct: EsxiConfig, identity: LocalIdentity | None = None
            ) -> tuple[VsphereBackend, ThreadSeam, Clock]:
    config = VcenterConfig("vc1", vc.url, USER, PASSWORD, ca_file=str(vc.cert),
                           esxi=direct)
    seam, clock = ThreadSeam(), Clock()
    client = VsphereClient(config, identity=identity or Identity())
    return VsphereBackend(config, clock, blocking=seam, client=client), seam, clock


def power(sim: Vcsim) -> dict[str, str]:
    return {v["name"]: v["power"] for v in sim.state()["vms"]}


# -- the vCenter's host last, through its own endpoint -----------------------------------


def test_the_vcenter_host_goes_last_through_its_direct_session(vc: Vcsim, esx: Vcsim) -> None:
    """H0 and H1 through vCenter; then H2, which runs the vCenter VM: its guests, then
    VCSA, then the host, through H2's own endpoint (the endpoint goes away with it);
    vCenter is never asked to act on H2."""
    b, seam, clock = backend(vc, esxi(esx))
    connected = result_of(b.connect(), seam)
    assert connected.ok and "direct ESXi session to DC0_C0_H2: HostAgent" in connected.detail
    for host in (H0, H1):
        vms = result_of(b.shutdown_vms(host, 30), seam)
        assert vms.ok and vms.detail.endswith("(through vcenter)"), vms
        assert result_of(b.shutdown_host(host), seam).ok
    wait_until(lambda: all(vc.host(h)["power"] == "poweredOff" for h in (H0, H1)))
    vms = result_of(b.shutdown_vms(H2, 30), seam)
    assert vms.outcome is Outcome.OK, vms
    assert vms.detail == ("3 VMs stopped in order DC0_C0_H2_VM0, DC0_C0_H2_VM1 | VCSA (the "
                          "vCenter VM) (through the direct ESXi session (runs the "
                          "vCenter VM))")
    assert vms.stopped == (f"{H2}_VM0", f"{H2}_VM1", VCSA)
    assert set(power(esx).values()) == {"poweredOff"}
    vc.control("down", on="1")            # the vCenter VM is off: vCenter is gone
    host = result_of(b.shutdown_host(H2), seam)
    assert host.outcome is Outcome.OK, host
    # not in maintenance: the host boots out of it, so the vCenter VM can start again
    assert host.detail.startswith("shutdown accepted (forced: not in maintenance)")
    assert host.detail.endswith("(through the direct ESXi session (runs the vCenter VM))")
    wait_until(esx.gone)
    vc.control("down", on="0")
    state = vc.state()
    h2 = next(h for h in state["hosts"] if h["name"] == H2)
    assert h2["power"] == "poweredOn" and not h2["maintenance"]      # not through vCenter
    assert all(v["power"] == "poweredOn" for v in state["vms"] if v["host"] == H2)


def test_the_vcenter_vm_is_stopped_last_even_when_a_guest_hangs(vc: Vcsim, tmp_path: Path
                                                                ) -> None:
    """A guest that ignores its shutdown is powered off at its share of the time; VCSA is
    stopped after it, with the rest of the time."""
    esx = esx_sim(tmp_path, H2, "-hang", f"{H2}_VM0")
    try:
        b, seam, _ = backend(vc, esxi(esx))
        assert result_of(b.connect(), seam).ok
        vms = result_of(b.shutdown_vms(H2, 4), seam)
        assert vms.ok and "VCSA (the vCenter VM)" in vms.detail, vms
        assert set(power(esx).values()) == {"poweredOff"}
    finally:
        esx.stop()


@pytest.mark.esx(H1)
def test_the_agents_host_keeps_the_agents_vm_for_the_host_shutdown(vc: Vcsim, esx: Vcsim
                                                                  ) -> None:
    """H1 runs the agent's own VM (here H1_VM1: its NIC has one of "this machine's" MAC
    addresses): through H1's own endpoint the other VMs are stopped, the agent's VM is left
    running, and the host's forced shutdown takes it down with the host."""
    agent_vm = f"{H1}_VM1"
    macs: set[str] = set()
    b, seam, _ = backend(vc, esxi(esx, H1, runs_vcenter=False, runs_agent=True),
                         identity=Identity(frozenset(macs)))
    assert result_of(b.connect(), seam).ok
    macs.add(mac_of(b, H1, agent_vm))
    b, seam, _ = backend(vc, esxi(esx, H1, runs_vcenter=False, runs_agent=True),
                         identity=Identity(frozenset(macs)))
    assert result_of(b.connect(), seam).ok
    vms = result_of(b.shutdown_vms(H1, 10), seam)
    assert vms.ok, vms
    assert vms.detail.endswith(f"; left for the host's shutdown: {agent_vm} (the agent's own "
                               "VM) (through the direct ESXi session (runs the agent's VM))"), \
        vms.detail
    assert agent_vm not in vms.stopped and power(esx) == {
        f"{H1}_VM0": "poweredOff", agent_vm: "poweredOn", VCSA: "poweredOff"}
    host = result_of(b.shutdown_host(H1), seam)
    assert host.ok and f"(forced: 1 VMs still running: {agent_vm})" in host.detail, host
    wait_until(esx.gone)
    assert vc.host(H1)["power"] == "poweredOn"       # nothing went through vCenter


def mac_of(b: VsphereBackend, host: str, vm: str) -> str:
    from upsagent.hypervisors.vsphere_client import vim
    session = b.direct[host]
    for _, props in session._view(vim.VirtualMachine, ["name", "config.hardware.device"]):
        if props["name"] == vm:
            return next(str(d.macAddress) for d in props["config.hardware.device"]
                        if isinstance(d, vim.vm.device.VirtualEthernetCard))
    raise LookupError(vm)


# -- vCenter unreachable mid-sequence ----------------------------------------------------


@pytest.mark.esx(H0)
def test_vcenter_unreachable_falls_back_to_the_direct_session(vc: Vcsim, esx: Vcsim) -> None:
    """H0 (not the vCenter's host) with [host.esxi]: vCenter answers 503 mid-sequence;
    maintenance cannot be done (no DRS without vCenter: said), the VMs and the host are
    shut down through H0's own endpoint."""
    b, seam, clock = backend(vc, esxi(esx, H0, runs_vcenter=False))
    assert result_of(b.connect(), seam).ok
    vc.control("down", on="1")
    enter = result_of(b.enter_maintenance(H0, 10), seam)
    assert enter.outcome is Outcome.UNREACHABLE
    assert "no maintenance without vCenter: no DRS to move the VMs" in enter.detail
    vms = drive(b.shutdown_vms(H0, 30), seam, clock)
    assert vms.ok, vms
    assert "(through the direct ESXi session (vcenter vc1 unreachable: vcenter vc1: 503 " \
        "Service Unavailable))" in vms.detail
    assert set(power(esx).values()) == {"poweredOff"}
    host = drive(b.shutdown_host(H0), seam, clock)
    assert host.ok and "through the direct ESXi session" in host.detail, host
    wait_until(esx.gone)
    vc.control("down", on="0")
    assert vc.host(H0)["power"] == "poweredOn"


# -- the right host, or nothing ----------------------------------------------------------


@pytest.mark.esx(H1)
def test_a_direct_session_to_another_host_is_never_used(vc: Vcsim, esx: Vcsim) -> None:
    """H2's [host.esxi] reaches H1's endpoint: vCenter's UUID for H2 is not that host's;
    the session is refused at connect and for every step, which go through vCenter; the
    wrong host is never touched."""
    before = esx.state()
    b, seam, _ = backend(vc, esxi(esx))
    connected = result_of(b.connect(), seam)
    assert f"is host '{H1}'" in connected.detail and f"not '{H2}'" in connected.detail
    vms = result_of(b.shutdown_vms(H2, 30), seam)
    assert vms.ok and vms.detail.endswith("(through vcenter)"), vms
    # through vCenter its own VM is left for the host's forced shutdown
    assert {v["name"]: v["power"] for v in vc.state()["vms"] if v["host"] == H2} == {
        f"{H2}_VM0": "poweredOff", f"{H2}_VM1": "poweredOff", VCSA: "poweredOn"}
    assert vms.left == (VCSA,)
    assert esx.state() == before


def test_without_vcenter_the_host_name_must_match(vc: Vcsim, tmp_path: Path) -> None:
    """vCenter never answered: a session is used only if its host calls itself by the
    configured name."""
    vc.control("down", on="1")
    right, wrong = esx_sim(tmp_path, H2), esx_sim(tmp_path, "esx9.example.com")
    try:
        b, seam, clock = backend(vc, esxi(right), esxi(wrong, H1, runs_vcenter=False))
        connected = result_of(b.connect(), seam)
        assert "direct ESXi session to DC0_C0_H2: HostAgent" in connected.detail
        assert ("calls itself 'esx9.example.com', not 'DC0_C0_H1', and vCenter has not "
                "answered") in connected.detail
        assert drive(b.shutdown_vms(H2, 10), seam, clock).ok
        refused = drive(b.shutdown_vms(H1, 10), seam, clock)
        assert refused.outcome is Outcome.UNREACHABLE, refused
        assert set(power(right).values()) == {"poweredOff"}
        assert set(power(wrong).values()) == {"poweredOn"}
    finally:
        right.stop()
        wrong.stop()


def test_host_names_match_by_short_name() -> None:
    assert same_name("ESX1.example.com", "esx1.example.com.")
    assert same_name("esx1", "esx1.example.com")
    assert not same_name("esx1.example.com", "esx1.example.org")
    assert not same_name("esx10", "esx1")
    assert not same_name("10.0.0.5", "10") and same_name("10.0.0.5", "10.0.0.5")


# -- check-config --connect --------------------------------------------------------------


def test_check_all_well(vc: Vcsim, esx: Vcsim) -> None:
    before = esx.state()
    b, seam, _ = backend(vc, esxi(esx))
    assert result_of(b.check([H0, H2]), seam) == []
    assert esx.state() == before


def test_check_names_each_problem_of_the_direct_session(vc: Vcsim, tmp_path: Path) -> None:
    (tmp_path / "locked").mkdir()
    locked = Vcsim(tmp_path / "locked", "-lockdown", H2)
    free = esx_sim(tmp_path, H0, "-free-esxi")
    denied = esx_sim(tmp_path, H1, "-deny-priv", "Host.Config.Maintenance")
    wrong = esx_sim(tmp_path, H0)
    try:
        b, seam, _ = backend(vc, esxi(free, H0, False), esxi(denied, H1, False),
                             esxi(wrong, H2, password="wrong"))
        lines = result_of(b.check([H0, H1, H2]), seam)
        assert len(lines) == 3, lines
        assert lines[0].startswith(f"host {H0}: direct ESXi session ({free.url}): "
                                   "VMware vSphere 7 Hypervisor (esxBasic): free ESXi")
        assert lines[1] == (f"host {H1}: direct ESXi session ({denied.url}): host {H1}: "
                            f"the user {USER} lacks Host.Config.Maintenance (see the role "
                            "in upsagent-slave(8))")
        assert lines[2].startswith(f"host {H2}: direct ESXi session ({wrong.url}): cannot "
                                   f"log in to {wrong.url} as {USER}")
        assert lines[2].endswith("in lockdown mode only the host's exception users may "
                                 "log in directly")
        b, seam, _ = backend(locked, esxi(wrong, H2, password="wrong"))
        lines = result_of(b.check([H2]), seam)
        assert len(lines) == 1 and lines[0].endswith(
            "; vCenter shows the host in lockdown mode (lockdownNormal): only its exception "
            f"users may log in directly, add {USER} to them"), lines
        vcenter_as_esxi = backend(vc, esxi(vc, H0, False))
        lines = result_of(vcenter_as_esxi[0].check([H0]), vcenter_as_esxi[1])
        assert lines == [f"host {H0}: direct ESXi session ({vc.url}): {vc.url} is a "
                         "VirtualCenter, not an ESXi host (HostAgent)"]
    finally:
        for s in (free, denied, wrong, locked):
            s.stop()


# -- retries on the Clock ----------------------------------------------------------------


class Endpoint:
    """A vCenter client or a direct session whose network is down until ``up``; counts
    the shutdowns asked of it."""

    def __init__(self, name: str) -> None:
        self.name, self.calls, self.up = name, 0, False
        self.rules = VmRules()

    def shutdown_host(self, host: str, cancel: threading.Event) -> Result:
        self.calls += 1
        if not self.up:
            raise ConnectionRefusedError(111, "Connection refused")
        return Result(Outcome.OK, f"accepted by {self.name}")


def fake_backend(*direct: str) -> tuple[VsphereBackend, Clock, Endpoint, Endpoint]:
    """A backend on a Clock and an inline seam, its vCenter and H0's direct session fake
    (``direct``: the hosts with a [host.esxi]; marked as running the vCenter VM)."""
    clock, vcenter, esx = Clock(), Endpoint("vcenter"), Endpoint("esx")
    config = VcenterConfig("vc1", "https://vc1/sdk", "u", "p", esxi=tuple(
        EsxiConfig(h, f"https://{h}/sdk", "root", "p", runs_vcenter=True) for h in direct))
    b = VsphereBackend(config, clock, blocking=inline, client=vcenter)  # type: ignore[arg-type]
    for host in direct:
        b.direct[host] = esx  # type: ignore[assignment]
    return b, clock, vcenter, esx


def test_retries_stop_when_the_step_is_cancelled() -> None:
    b, clock, vcenter, _ = fake_backend()
    d = b.shutdown_host(H0)
    assert vcenter.calls == 1 and not d.called
    clock.advance(2.0)
    assert vcenter.calls == 2
    d.cancel()
    failures: list[Any] = []
    d.addErrback(failures.append)
    assert failures and failures[0].check(CancelledError)
    clock.advance(600.0)
    assert vcenter.calls == 2 and not clock.getDelayedCalls()


def test_the_vcenter_host_with_its_session_down_goes_through_vcenter_again() -> None:
    """The vCenter's host: its direct session first; it does not answer, so vCenter, tried
    again until it answers; cancelling meanwhile stops it all."""
    b, clock, vcenter, esx = fake_backend(H0)
    d = b.shutdown_host(H0)
    assert (esx.calls, vcenter.calls) == (1, 1) and not d.called
    clock.advance(2.0)
    assert vcenter.calls == 2
    vcenter.up = True
    clock.advance(4.0)
    result = d.result
    assert result.ok and result.detail == ("accepted by vcenter (through vcenter answering "
                                           "again after 3 attempts)")
    vcenter.up = False
    d = b.shutdown_host(H0)
    assert not d.called     # the session down, vCenter too: a pause before the next try
    d.cancel()
    clock.advance(600.0)
    assert not clock.getDelayedCalls() and (esx.calls, vcenter.calls) == (2, 4)


def test_neither_vcenter_nor_the_direct_session_answers() -> None:
    """Another host with a direct session: vCenter unreachable, the session too; vCenter
    is tried again while the step lasts, and the result names both."""
    b, clock, vcenter, esx = fake_backend(H1)
    b._marked.clear()                      # H1 is not the vCenter's host
    d = b.shutdown_host(H1)
    while not d.called:
        clock.advance(1.0)
    assert d.result.outcome is Outcome.UNREACHABLE
    assert d.result.detail == ("unreachable: 7 attempts in 59 s found no vCenter (vcenter "
                               "vc1: [Errno 111] Connection refused); nor the direct ESXi "
                               "session")
    assert esx.calls == 1 and vcenter.calls == 7


def test_check_config_connect_with_host_esxi(tmp_path: Path, vc: Vcsim, esx: Vcsim) -> None:
    """upsagent.toml's [host.esxi] reaches the backend: check-config --connect logs in to
    the direct session too, and names the host when it is another one."""
    from tests.test_vsphere_check import _check_config, _config
    path = _config(tmp_path, vc, [H0, H2])
    text = path.read_text() + (f'runs_vcenter = true\n[host.esxi]\nurl = "{esx.url}"\n'
                               f'user = "{USER}"\npassword_file = "{tmp_path}/vc1.pw"\n'
                               f'ca_file = "{esx.cert}"\n')
    path.write_text(text)
    done = _check_config(path, "--connect")
    assert done.returncode == 0, done.stderr
    assert 'OK: connect: vcenter "vc1": 2 hosts checked' in done.stdout
    path.write_text(text.replace(f'name = "{H2}"', f'name = "{H1}"'))
    done = _check_config(path, "--connect")
    assert done.returncode == 1
    assert (f'upsagent: connect: vcenter "vc1": host {H1}: direct ESXi session ({esx.url}): '
            f"{esx.url} is host '{H2}'") in done.stderr


def test_a_lost_session_whose_new_login_fails_is_unreachable() -> None:
    """vCenter's session expired and the new login is refused (its SSO service down):
    that counts as unreachable (the fallback and the retries apply), not as a failure."""
    from upsagent.hypervisors.esxi import unreachable
    from upsagent.hypervisors.vsphere_client import SessionLost, VsphereClient, vim

    class Refusing(VsphereClient):
        def connect(self) -> str:
            raise vim.fault.InvalidLogin()

    client = Refusing(VcenterConfig("vc1", "https://vc1/sdk", "u", "p"))
    client.si = object()

    def expired() -> None:
        raise vim.fault.NotAuthenticated()
    with pytest.raises(SessionLost) as info:
        client.call(expired)
    assert unreachable(info.value)
    assert str(info.value) == ("https://vc1/sdk: the session was lost and the new login "
                               "failed: InvalidLogin")


def test_the_esx_simulator_has_no_drs_and_goes_away_with_its_host(esx: Vcsim) -> None:
    """vcsim-ext -esx as hostd behaves: maintenance waits while VMs run (no DRS) and
    completes once they are off; a plain shutdown outside maintenance is refused; the
    endpoint goes away once the host is down."""
    from upsagent.hypervisors.esxi import EsxiClient
    client = EsxiClient(esxi(esx))
    assert client.connect().startswith("HostAgent")
    host = client._host(H2)
    refused = client._wait_task(host.ShutdownHost_Task(force=False), 1e12, threading.Event())
    assert type(refused).__name__.endswith("InvalidState")
    entering = host.EnterMaintenanceMode_Task(timeout=60)
    wait_until(lambda: esx.host(H2)["entering"])
    assert not esx.host(H2)["maintenance"] and set(power(esx).values()) == {"poweredOn"}
    assert client.shutdown_vms(H2, 10, threading.Event()).ok
    assert client._wait_task(entering, 1e12, threading.Event()) is None
    assert esx.host(H2)["maintenance"]
    assert client._wait_task(host.ShutdownHost_Task(force=False), 1e12,
                             threading.Event()) is None
    wait_until(esx.gone)
