"""The ``vsphere`` backend, run for real (pyvmomi) against vcsim-ext (tests/vcsimext.py).

The backend's blocking seam is :class:`ThreadSeam` here: each call runs in a thread of its
own and its Deferred is fired on the test's thread by :meth:`ThreadSeam.settle`, so the
Twisted side stays deterministic on a ``Clock`` while pyvmomi talks to the simulator over
real HTTPS.  The deadline and cancellation tests need no simulator.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

pytest.importorskip("pyVmomi")

from upsagent.config.managers import VcenterConfig  # noqa: E402
from upsagent.hypervisors.base import HostInfo, backend_class  # noqa: E402
from upsagent.hypervisors.vsphere import GRACE, VsphereBackend  # noqa: E402
from upsagent.hypervisors.vsphere_client import VsphereClient  # noqa: E402
from upsagent.policy.plan import VmGroup  # noqa: E402
from upsagent.system.runner import Outcome, Result  # noqa: E402
from tests import vcsimext  # noqa: E402
from tests.vcsimext import PASSWORD, USER, Vcsim  # noqa: E402

H0, H1, H2 = "DC0_C0_H0", "DC0_C0_H1", "DC0_C0_H2"


class ThreadSeam:
    """``blocking(fn)``: ``fn`` in a thread; :meth:`settle` fires the Deferreds."""

    def __init__(self) -> None:
        self.pending: list[tuple[threading.Thread, Deferred[Any], list[Any]]] = []

    def __call__(self, fn: Callable[[], Any]) -> Deferred[Any]:
        box: list[Any] = []

        def run() -> None:
            try:
                box.append(fn())
            except BaseException as exc:  # noqa: BLE001
                box.append(Failure(exc))
        thread = threading.Thread(target=run, daemon=True)
        d: Deferred[Any] = Deferred()
        self.pending.append((thread, d, box))
        thread.start()
        return d

    def settle(self, timeout: float = 60.0) -> None:
        """Fire every finished call's Deferred until none is left running."""
        end = time.monotonic() + timeout
        while self.pending:
            assert time.monotonic() < end, "blocking calls still running"
            for item in list(self.pending):
                thread, d, box = item
                if not thread.is_alive():
                    self.pending.remove(item)
                    d.callback(box[0])
            time.sleep(0.02)


def result_of(d: Deferred[Any], seam: ThreadSeam | None = None) -> Any:
    if seam is not None:
        seam.settle()
    box: list[Any] = []
    d.addBoth(box.append)
    assert box, "no result"
    return box[0]


@pytest.fixture(scope="session")
def simulator_binary() -> Path:
    why = vcsimext.available()
    if why:
        pytest.skip(why)
    return vcsimext.binary()


@pytest.fixture
def sim(tmp_path: Path, simulator_binary: Path, request: pytest.FixtureRequest
        ) -> Iterator[Vcsim]:
    marker = request.node.get_closest_marker("vcsim")
    args = marker.args if marker else ()
    s = Vcsim(tmp_path, *args)
    yield s
    s.stop()


def config(sim: Vcsim, **kw: Any) -> VcenterConfig:
    base: dict[str, Any] = {"ca_file": str(sim.cert)}
    base.update(kw)
    return VcenterConfig(name="vc1", url=base.pop("url", sim.url), user=base.pop("user", USER),
                         password=base.pop("password", PASSWORD), **base)


def backend(sim: Vcsim, **kw: Any) -> tuple[VsphereBackend, ThreadSeam, Clock]:
    seam, clock = ThreadSeam(), Clock()
    return VsphereBackend(config(sim, **kw), clock, blocking=seam), seam, clock


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.05)


# -- registry and session -------------------------------------------------------------


def test_registry_builds_vsphere_backend(sim: Vcsim) -> None:
    cls = backend_class("vsphere")
    assert cls is VsphereBackend
    built = cls.build(config(sim), Clock(), runner=None)  # type: ignore[arg-type]
    assert isinstance(built, VsphereBackend) and built.config.name == "vc1"


def test_connect_verified_by_ca_file_and_hosts(sim: Vcsim) -> None:
    b, seam, clock = backend(sim)
    result = result_of(b.connect(), seam)
    assert result.outcome is Outcome.OK and "VirtualCenter" in result.detail
    hosts = result_of(b.hosts(), seam)
    assert [h.name for h in hosts] == [H0, H1, H2]
    assert all(isinstance(h, HostInfo) and h.connected and not h.in_maintenance
               for h in hosts)
    result_of(b.stop(), seam)


@pytest.mark.parametrize("kw, ok", [
    ({"password": "wrong"}, False),
    ({"ca_file": None}, False),                       # system CAs: self-signed refused
    ({"ca_file": None, "insecure": True}, True),
])
def test_login_and_certificates(sim: Vcsim, kw: dict[str, Any], ok: bool) -> None:
    b, seam, _ = backend(sim, **kw)
    result = result_of(b.connect(), seam)
    assert result.ok is ok, result


def test_thumbprint_pins_the_certificate(sim: Vcsim) -> None:
    b, seam, _ = backend(sim, ca_file=None, thumbprint=sim.sha256)
    assert result_of(b.connect(), seam).ok
    wrong = "SHA256:" + ":".join(["AB"] * 32)
    b, seam, _ = backend(sim, ca_file=None, thumbprint=wrong)
    result = result_of(b.connect(), seam)
    assert not result.ok and "thumbprint" in result.detail


@pytest.mark.vcsim("-session-idle", "1s")
def test_expired_session_logs_in_again(sim: Vcsim) -> None:
    b, seam, _ = backend(sim)
    assert result_of(b.connect(), seam).ok
    time.sleep(2.5)
    assert len(result_of(b.hosts(), seam)) == 3


def drive(d: Deferred[Any], seam: ThreadSeam, clock: Clock, step: float = 1.0,
          limit: float = 600.0) -> Any:
    """Settle the seam and advance the clock by ``step`` until ``d`` fires (within
    ``limit`` simulated seconds): the backend's retries and deadlines run on ``clock``."""
    box: list[Any] = []
    d.addBoth(box.append)
    start = clock.seconds()
    while True:
        seam.settle()
        if box:
            return box[0]
        assert clock.seconds() - start < limit, "no result"
        clock.advance(step)


def test_unreachable_vcenter_is_a_result(sim: Vcsim) -> None:
    """A vCenter that stays unreachable (503) is tried again with growing pauses (2, 4, 8,
    15, 15, 15 s) within the host shutdown's 60 s, then the result says so."""
    b, seam, clock = backend(sim)
    assert result_of(b.connect(), seam).ok
    sim.control("down", on="1")
    result = drive(b.shutdown_host(H0), seam, clock)
    assert result.outcome is Outcome.UNREACHABLE
    assert result.detail.startswith("unreachable: 7 attempts in 59 s found no vCenter "
                                    "(vcenter vc1: 503 Service Unavailable)"), result
    assert sim.host(H0)["power"] == "poweredOn"


def test_vcenter_back_within_the_step_shuts_the_host_down(sim: Vcsim) -> None:
    b, seam, clock = backend(sim)
    assert result_of(b.connect(), seam).ok
    sim.control("down", on="1")
    d = b.shutdown_host(H0)
    seam.settle()
    clock.advance(2.0)       # the second attempt, still unreachable
    seam.settle()
    sim.control("down", on="0")
    result = drive(d, seam, clock)
    assert result.outcome is Outcome.OK, result
    assert result.detail == ("shutdown accepted (forced: not in maintenance) (vcenter "
                             "answering again after 3 attempts)")
    wait_until(lambda: sim.host(H0)["power"] == "poweredOff")


# -- maintenance ------------------------------------------------------------------------


def test_enter_maintenance_moves_the_vms(sim: Vcsim) -> None:
    b, seam, _ = backend(sim)
    result = result_of(b.enter_maintenance(H0, 30), seam)
    assert result.outcome is Outcome.OK, result
    assert sorted(vm for vm, _ in result.moved) == [f"{H0}_VM0", f"{H0}_VM1"]
    host = sim.host(H0)
    assert host["maintenance"] and host["vms"] == []
    assert {sim.vm(f"{H0}_VM{i}")["host"] for i in (0, 1)} <= {H1, H2}
    # idempotent
    assert result_of(b.enter_maintenance(H0, 30), seam).ok


@pytest.mark.vcsim("-host", "1")
def test_enter_maintenance_without_target_is_no_target(sim: Vcsim) -> None:
    b, seam, _ = backend(sim)
    result = result_of(b.enter_maintenance(H0, 30), seam)
    assert result.outcome is Outcome.NO_TARGET, result
    assert not sim.host(H0)["maintenance"]


def test_enter_maintenance_that_drs_cannot_finish_times_out_as_no_target(sim: Vcsim) -> None:
    sim.control("drs", behavior="manual")
    b, seam, _ = backend(sim)
    start = time.monotonic()
    result = result_of(b.enter_maintenance(H0, 2), seam)
    assert result.outcome is Outcome.NO_TARGET, result
    assert time.monotonic() - start < 10
    assert set(result.left) == {f"{H0}_VM0", f"{H0}_VM1"}
    assert not sim.host(H0)["maintenance"]


@pytest.mark.vcsim("-migrate-delay", "1s")
def test_cancelled_enter_cancels_the_vcenter_task(sim: Vcsim) -> None:
    b, seam, _ = backend(sim)
    d = b.enter_maintenance(H0, 60)
    wait_until(lambda: sim.host(H0)["entering"])
    d.cancel()
    failure = result_of(d)
    assert isinstance(failure, Failure) and failure.check(CancelledError)
    seam.settle()
    wait_until(lambda: not sim.host(H0)["entering"])
    assert not sim.host(H0)["maintenance"]


def test_exit_maintenance_only_for_hosts_the_agent_put_there(sim: Vcsim) -> None:
    operator = VsphereClient(config(sim))
    operator.connect()
    operator.si.content.searchIndex  # noqa: B018 - the session works
    other = operator._host(H1)
    task = other.EnterMaintenanceMode_Task(timeout=30)
    wait_until(lambda: task.info.state == "success")
    b, seam, _ = backend(sim)
    assert result_of(b.enter_maintenance(H0, 30), seam).ok
    # the operator's maintenance of H1 is left alone
    result = result_of(b.exit_maintenance(H1, 30), seam)
    assert result.outcome is Outcome.NOT_APPLICABLE
    assert sim.host(H1)["maintenance"]
    # ours is exited, and DRS brings the VMs back
    assert result_of(b.exit_maintenance(H0, 30), seam).outcome is Outcome.OK
    assert not sim.host(H0)["maintenance"]
    wait_until(lambda: {f"{H0}_VM0", f"{H0}_VM1"} <= set(sim.host(H0)["vms"]))


@pytest.mark.vcsim("-migrate-delay", "500ms")
def test_power_back_mid_migration_exits_after_the_enter_finishes(sim: Vcsim) -> None:
    b, seam, _ = backend(sim)
    entering = b.enter_maintenance(H0, 30)
    wait_until(lambda: sim.host(H0)["entering"])
    leaving = b.exit_maintenance(H0, 30)
    seam.settle()
    assert result_of(entering).ok
    seam.settle()
    assert result_of(leaving, seam).outcome is Outcome.OK
    assert not sim.host(H0)["maintenance"]


# -- shutdown -------------------------------------------------------------------------


@pytest.mark.vcsim("-vm", "3", "-no-tools", "DC0_C0_H0_VM1", "-hang", "DC0_C0_H0_VM2")
def test_shutdown_vms_guest_then_power_off(sim: Vcsim) -> None:
    b, seam, _ = backend(sim)
    start = time.monotonic()
    result = result_of(b.shutdown_vms(H0, 3), seam)
    assert result.outcome is Outcome.OK, result
    assert result.stopped == (f"{H0}_VM0", f"{H0}_VM1", f"{H0}_VM2")
    assert time.monotonic() - start >= 3      # the hung guest waited for its timeout
    assert all(sim.vm(f"{H0}_VM{i}")["power"] == "poweredOff" for i in range(3))
    assert sim.vm(f"{H1}_VM0")["power"] == "poweredOn"


@pytest.mark.vcsim("-vm", "3", "-hang", "DC0_C0_H0_VM2")
def test_shutdown_vms_in_groups(sim: Vcsim) -> None:
    """vm_groups: group after group, each powered off at its own timeout (the hung VM2 at
    2 s), the VMs matching no group (VM0) last; the other hosts' VMs are left alone."""
    b, seam, _ = backend(sim)
    groups = (VmGroup(("*_VM2",), 2), VmGroup(("nothing",), 1), VmGroup(("*_VM1",), 2))
    names = [f"{H0}_VM{i}" for i in range(3)]
    start = time.monotonic()
    d = b.shutdown_vms(H0, 6, groups)
    off: dict[str, float] = {}
    while len(off) < 3 and time.monotonic() - start < 20:
        for vm in sim.state()["vms"]:
            if vm["name"] in names and vm["power"] == "poweredOff":
                off.setdefault(vm["name"], time.monotonic() - start)
        time.sleep(0.05)
    result = result_of(d, seam)
    assert result.outcome is Outcome.OK, result
    assert result.stopped == tuple(names)
    assert sorted(off, key=off.__getitem__) == [names[2], names[1], names[0]], off
    assert off[names[2]] >= 2          # the hung guest got its group's timeout
    assert off[names[1]] < 4           # the next group did not wait for the budget
    assert sim.vm(f"{H1}_VM0")["power"] == "poweredOn"


@pytest.mark.vcsim("-vm", "3")
def test_power_on_vms_after_the_host_is_back(sim: Vcsim) -> None:
    """power_on_vms: the VMs the agent stopped start again once the host is back (the
    backend waits for it to boot), in reverse group order; a VM already on counts."""
    b, seam, _ = backend(sim)
    groups = (VmGroup(("*_VM2",), 1), VmGroup(("*_VM1",), 1))
    names = tuple(f"{H0}_VM{i}" for i in range(3))
    assert result_of(b.shutdown_vms(H0, 3, groups), seam).ok
    assert result_of(b.shutdown_host(H0), seam).ok
    wait_until(lambda: sim.host(H0)["connection"] == "notResponding")
    starting = b.power_on_vms(H0, names, groups, 30)
    time.sleep(0.5)
    assert all(sim.vm(n)["power"] == "poweredOff" for n in names)   # waits for the host
    sim.control("host", name=H0, power="on")
    result = result_of(starting, seam)
    assert result.outcome is Outcome.OK, result
    assert result.stopped == (names[0], names[1], names[2])          # no group, 2, 1
    assert all(sim.vm(n)["power"] == "poweredOn" for n in names)
    again = result_of(b.power_on_vms(H0, names[:1], (), 5), seam)
    assert again.ok and again.stopped == names[:1]


def test_power_on_vms_gives_up_when_the_host_stays_down(sim: Vcsim) -> None:
    b, seam, _ = backend(sim)
    assert result_of(b.shutdown_host(H1), seam).ok
    wait_until(lambda: sim.host(H1)["connection"] == "notResponding")
    result = result_of(b.power_on_vms(H1, (f"{H1}_VM0",), (), 1), seam)
    assert result.outcome is Outcome.UNREACHABLE and result.left == (f"{H1}_VM0",)


def test_shutdown_host_in_maintenance_and_forced(sim: Vcsim) -> None:
    b, seam, _ = backend(sim)
    assert result_of(b.enter_maintenance(H0, 30), seam).ok
    result = result_of(b.shutdown_host(H0), seam)
    assert result.ok and "forced" not in result.detail
    wait_until(lambda: sim.host(H0)["power"] == "poweredOff")
    result = result_of(b.shutdown_host(H1), seam)
    assert result.ok and "forced" in result.detail
    wait_until(lambda: sim.host(H1)["connection"] == "notResponding")
    assert result_of(b.shutdown_host(H1), seam).detail == "already down"
    # a host shut down in maintenance comes back in it; exit waits for it to boot
    sim.control("host", name=H0, power="on")
    assert result_of(b.exit_maintenance(H0, 30), seam).ok
    assert not sim.host(H0)["maintenance"]


# -- deadlines and cancellation, on a Clock, without the simulator -----------------------


def _never(fn: Callable[[], Any]) -> Deferred[Any]:
    return Deferred()


def _offline() -> VsphereBackend:
    cfg = VcenterConfig("vc1", "https://vc1.example/sdk", "u", "p")
    return VsphereBackend(cfg, Clock(), blocking=_never)


def test_a_call_that_never_answers_times_out() -> None:
    b = _offline()
    d = b.shutdown_vms(H0, 30)
    b.reactor.advance(30 + GRACE - 0.1)
    assert not d.called
    b.reactor.advance(0.2)
    result = result_of(d)
    assert isinstance(result, Result) and result.outcome is Outcome.TIMED_OUT


def test_cancel_fails_the_deferred_at_once() -> None:
    b = _offline()
    d = b.enter_maintenance(H0, 300)
    d.cancel()
    failure = result_of(d)
    assert isinstance(failure, Failure) and failure.check(CancelledError)
    assert not b.reactor.getDelayedCalls()
