"""The ``xen`` backend on the real XenAPI SDK against tests/xapisim.py, a xapi XML-RPC
server over HTTPS with a test CA: HOST_IS_SLAVE followed (scheme and port kept), the
certificate checked, maintenance = disable + evacuate (VM by VM when evacuate cannot
place everything), shutdown without a second evacuation, exit = enable, timeouts,
cancellation, the pool master left alone."""

from __future__ import annotations

import hashlib
import ssl
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("XenAPI")

from twisted.internet.defer import Deferred, maybeDeferred  # noqa: E402

from upsagent.config.managers import XenPoolConfig  # noqa: E402
from upsagent.hypervisors.base import build_backend  # noqa: E402
from upsagent.hypervisors.xen import XenBackend, XenPool, master_url  # noqa: E402
from upsagent.system.runner import Outcome, Result  # noqa: E402
from tests.sshd import free_port  # noqa: E402
from tests.xapisim import Pool, make_ca  # noqa: E402

GiB = 1 << 30


@pytest.fixture
def pki(tmp_path: Path) -> tuple[Path, Path, Path]:
    return make_ca(tmp_path, ["127.0.0.1", "127.0.0.2", "127.0.0.3"])


def pool(pki: tuple[Path, Path, Path], *, host1: int = 16, migration: float = 0.1,
         ) -> tuple[Pool, int]:
    """host1 (the master, 127.0.0.2), host2 (127.0.0.1) and host3 (127.0.0.3)."""
    sim = Pool({"host1": ("127.0.0.2", host1 * GiB), "host2": ("127.0.0.1", 16 * GiB),
                "host3": ("127.0.0.3", 16 * GiB)}, "host1",
               {"vm1": ("host1", 2 * GiB), "vm2": ("host2", 4 * GiB),
                "vm3": ("host2", 4 * GiB), "vm4": ("host3", 4 * GiB),
                "vm5": ("host3", 4 * GiB)}, migration_time=migration)
    port = free_port()
    sim.serve(port, pki[1], pki[2])
    return sim, port


@pytest.fixture
def rig(pki: tuple[Path, Path, Path]) -> Iterator[tuple[Pool, XenPoolConfig]]:
    sim, port = pool(pki)
    config = XenPoolConfig("pool1", f"https://127.0.0.1:{port}", "root", "secret",
                           ca_file=str(pki[0]))
    yield sim, config
    sim.close()


def now(in_thread: Any) -> Any:
    return in_thread


def sync_backend(config: XenPoolConfig) -> XenBackend:
    """The backend with the thread seam run inline (the blocking side is what is tested
    here; the reactor's thread pool is the production seam)."""
    return XenBackend(XenPool(config, timeout=10.0), lambda f: maybeDeferred(f))


def result(d: Deferred[Result]) -> Result:
    box: list[Any] = []
    d.addBoth(box.append)
    assert box and isinstance(box[0], Result), box
    return box[0]


def test_master_url_keeps_scheme_and_port() -> None:
    assert master_url("https://xen2.example.com:8443/x", "192.0.2.1") == \
        "https://192.0.2.1:8443/x"
    assert master_url("https://xen2", "fd00::1") == "https://[fd00::1]"


def test_login_follows_host_is_slave_keeping_the_port(rig: Any) -> None:
    sim, config = rig
    backend = sync_backend(config)
    assert result(backend.connect()).outcome is Outcome.OK
    assert sim.sessions  # logged in on the master, 127.0.0.2, same port


def test_registry_builds_it(rig: Any) -> None:
    from twisted.internet.task import Clock
    _, config = rig
    assert isinstance(build_backend(config, Clock(), None), XenBackend)  # type: ignore[arg-type]


def test_certificate_is_verified(rig: Any, tmp_path: Path) -> None:
    sim, config = rig
    other = make_ca(tmp_path / "..", ["127.0.0.9"])[0]  # another CA
    bad = result(sync_backend(replace(config, ca_file=str(other))).connect())
    assert bad.outcome is Outcome.UNREACHABLE and "CERTIFICATE_VERIFY_FAILED" in bad.detail
    assert not sim.sessions


def test_thumbprint_pins_the_certificate(rig: Any, pki: Any) -> None:
    sim, config = rig
    der = ssl.PEM_cert_to_DER_cert(pki[1].read_text())
    good = "SHA256:" + ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
    ok = result(sync_backend(replace(config, ca_file=None, thumbprint=good)).connect())
    assert ok.outcome is Outcome.OK, ok
    wrong = "SHA256:" + ":".join(["AB"] * 32)
    bad = result(sync_backend(replace(config, ca_file=None, thumbprint=wrong)).connect())
    assert bad.outcome is Outcome.UNREACHABLE and "thumbprint" in bad.detail


def test_wrong_password(rig: Any) -> None:
    _, config = rig
    bad = result(sync_backend(replace(config, password="nope")).connect())
    assert bad.outcome is Outcome.FAILED and "SESSION_AUTHENTICATION_FAILED" in bad.detail


def test_maintenance_disables_and_evacuates(rig: Any) -> None:
    sim, config = rig
    done = result(sync_backend(config).enter_maintenance("host2", 30.0))
    assert done.outcome is Outcome.OK, done
    assert {vm for vm, _ in done.moved} == {"vm2", "vm3"} and not done.left
    assert sim.where("vm2") != "host2" and sim.where("vm3") != "host2"
    methods = [m for m, _ in sim.calls]
    assert methods.index("host.disable") < methods.index("Async.host.evacuate")
    assert "event.from" in methods and "task.destroy" in methods
    assert not sim.hosts[sim.host_ref("host2")].enabled


def test_evacuate_that_cannot_place_all_moves_vm_by_vm(pki: Any) -> None:
    # host1 (master) is nearly full and host3 disabled: evacuate refuses up front,
    # one VM still fits somewhere when moved on its own
    sim, port = pool(pki, host1=7)
    try:
        config = XenPoolConfig("pool1", f"https://127.0.0.1:{port}", "root", "secret",
                               ca_file=str(pki[0]))
        sim.hosts[sim.host_ref("host3")].enabled = False
        done = result(sync_backend(config).enter_maintenance("host2", 30.0))
        assert done.outcome is Outcome.NO_TARGET, done
        assert len(done.moved) == 1 and len(done.left) == 1
        assert "HOST_NOT_ENOUGH_FREE_MEMORY" in done.detail
        assert "Async.VM.pool_migrate" in [m for m, _ in sim.calls]
    finally:
        sim.close()


def test_evacuation_timeout_cancels_the_task(pki: Any) -> None:
    sim, port = pool(pki, migration=5.0)
    try:
        config = XenPoolConfig("pool1", f"https://127.0.0.1:{port}", "root", "secret",
                               ca_file=str(pki[0]))
        started = time.monotonic()
        done = result(sync_backend(config).enter_maintenance("host2", 1.0))
        assert done.outcome is Outcome.TIMED_OUT, done
        assert time.monotonic() - started < 4
        assert "task.cancel" in [m for m, _ in sim.calls]
    finally:
        sim.close()


def test_shutdown_disables_then_shuts_down_without_a_second_evacuation(rig: Any) -> None:
    sim, config = rig
    backend = sync_backend(config)
    assert result(backend.evacuate("host3", 30.0)).outcome is Outcome.OK
    assert result(backend.shutdown_host("host3")).outcome is Outcome.OK
    methods = [m for m, _ in sim.calls]
    assert methods.count("Async.host.evacuate") == 1
    assert methods.index("host.shutdown") > methods.index("Async.host.evacuate")
    assert not sim.hosts[sim.host_ref("host3")].live


def test_shutdown_vms_clean_then_hard(rig: Any) -> None:
    sim, config = rig
    sim.vm_named("vm5").pv_drivers = False
    done = result(sync_backend(config).shutdown_vms("host3", 10.0))
    assert done.outcome is Outcome.OK and set(done.stopped) == {"vm4", "vm5"}
    methods = [m for m, _ in sim.calls]
    assert "Async.VM.clean_shutdown" in methods and "Async.VM.hard_shutdown" in methods


def test_exit_maintenance_enables_after_boot(rig: Any) -> None:
    sim, config = rig
    backend = sync_backend(config)
    result(backend.enter_maintenance("host2", 30.0))
    assert result(backend.exit_maintenance("host2", 5.0)).outcome is Outcome.OK
    assert sim.hosts[sim.host_ref("host2")].enabled
    assert sim.where("vm2") != "host2"  # the VMs stay where they went


def test_exit_maintenance_of_a_host_still_down_times_out(rig: Any) -> None:
    sim, config = rig
    backend = sync_backend(config)
    result(backend.evacuate("host2", 30.0))
    result(backend.shutdown_host("host2"))
    done = result(backend.exit_maintenance("host2", 0.5))
    assert done.outcome is Outcome.TIMED_OUT and "HOST_OFFLINE" in done.detail


def test_the_pool_master_is_never_touched(rig: Any) -> None:
    sim, config = rig
    backend = sync_backend(config)
    for d in (backend.enter_maintenance("host1", 5.0), backend.shutdown_host("host1")):
        assert result(d).outcome is Outcome.FAILED
    assert sim.hosts[sim.master].enabled and sim.hosts[sim.master].live


def test_cancel_stops_the_evacuation_in_flight(pki: Any) -> None:
    """With the real thread seam: the Deferred is cancelled while the task runs."""
    from twisted.internet.selectreactor import SelectReactor
    from twisted.internet.threads import deferToThreadPool
    sim, port = pool(pki, migration=3.0)
    reactor = SelectReactor()
    reactor.startRunning()
    try:
        config = XenPoolConfig("pool1", f"https://127.0.0.1:{port}", "root", "secret",
                               ca_file=str(pki[0]))
        backend = XenBackend(XenPool(config), lambda f: deferToThreadPool(
            reactor, reactor.getThreadPool(), f))
        d = backend.enter_maintenance("host2", 60.0)
        deadline = time.monotonic() + 5
        while "Async.host.evacuate" not in [m for m, _ in sim.calls]:
            reactor.iterate(0.02)
            assert time.monotonic() < deadline
        d.cancel()
        assert result(d).outcome is Outcome.CANCELLED
        deadline = time.monotonic() + 8
        while "task.cancel" not in [m for m, _ in sim.calls]:
            reactor.iterate(0.05)
            assert time.monotonic() < deadline, "the xapi task was not cancelled"
    finally:
        reactor.stop()
        for _ in range(3):
            reactor.iterate(0.01)
        reactor.getThreadPool().stop()
        sim.close()


def test_check_logs_in_and_finds_every_host_changing_nothing(rig: Any) -> None:
    sim, config = rig
    backend = sync_backend(config)
    box: list[Any] = []
    backend.check(["host2", "host3"]).addBoth(box.append)
    assert box == [[]]
    writes = [m for m, _ in sim.calls if not m.split(".")[-1].startswith("get")
              and m not in ("event.from", "session.logout")]
    assert writes == [], writes
    box.clear()
    sim.hosts[sim.host_ref("host3")].live = False
    backend.check(["host2", "xen9", "host3"]).addBoth(box.append)
    assert len(box[0]) == 2, box
    assert box[0][0].startswith("host xen9: no host with that name-label in pool pool1")
    assert "host1, host2, host3" in box[0][0] and box[0][1] == "host host3: not live in pool pool1"
    box.clear()
    sync_backend(replace(config, password="wrong")).check(["host2"]).addBoth(box.append)
    assert len(box[0]) == 1 and box[0][0].startswith("pool pool1: ") and \
        "AUTHENTICATION" in box[0][0], box
    assert "wrong" not in box[0][0].replace("AUTHENTICATION", "")


def test_close_logs_out_of_the_pool_master(rig: Any) -> None:
    """When the agent stops, the session with the pool master is ended (session.logout)."""
    sim, config = rig
    backend = sync_backend(config)
    assert result(backend.connect()).ok and len(sim.sessions) == 1
    box: list[Any] = []
    backend.close().addBoth(box.append)
    assert box == [None] and sim.sessions == set()
    assert [m for m, _ in sim.calls][-1] == "session.logout"
    backend.close().addBoth(box.append)  # nothing open: nothing sent, no error
    assert box == [None, None]


def test_two_threads_share_the_session(pki: Any) -> None:
    """Two hosts of a pool acted on at once (the thread pool runs both): each thread has
    its own HTTP connection under the one session, no call collides with another."""
    sim, port = pool(pki, host1=32)  # room for every VM
    config = XenPoolConfig("pool1", f"https://127.0.0.1:{port}", "root", "secret",
                           ca_file=str(pki[0]))
    try:
        _two_threads(sim, config)
    finally:
        sim.close()


def _two_threads(sim: Pool, config: XenPoolConfig) -> None:
    import threading
    backend = sync_backend(config)
    boxes: dict[str, Any] = {}

    def enter(name: str) -> None:
        boxes[name] = result(backend.enter_maintenance(name, 30.0))
    threads = [threading.Thread(target=enter, args=(n,)) for n in ("host2", "host3")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert {n: r.outcome for n, r in boxes.items()} == \
        {"host2": Outcome.OK, "host3": Outcome.OK}, boxes
    assert len(sim.sessions) == 1
    assert all(sim.where(vm) == "host1" for vm in ("vm2", "vm3", "vm4", "vm5"))


def test_hosts_reads_liveness_from_host_metrics(rig: Any) -> None:
    """xapi keeps a host's liveness in its host_metrics object, not in the host record:
    the inventory's view follows it (a dead host is disconnected, a disabled one is in
    maintenance)."""
    sim, config = rig
    backend = sync_backend(config)
    box: list[Any] = []
    backend.hosts().addBoth(box.append)
    assert {h.name: (h.connected, h.in_maintenance) for h in box[0]} == {
        "host1": (True, False), "host2": (True, False), "host3": (True, False)}
    sim.hosts[sim.host_ref("host3")].live = False
    sim.hosts[sim.host_ref("host2")].enabled = False
    box.clear()
    backend.hosts().addBoth(box.append)
    assert {h.name: (h.connected, h.in_maintenance) for h in box[0]} == {
        "host1": (True, False), "host2": (True, True), "host3": (False, False)}
