"""The ``xenmaster`` backend (the pool master protected by its own agent) on the real
XenAPI SDK against tests/xapisim.py over HTTPS: its VMs stopped through xapi group by
group (clean shutdown, hard shutdown past the group's timeout, cancellation of the xapi
task), the host disabled in xapi and then shut down as the ``local`` backend does it (a
xapi failure or silence never stops that), the watchdog on a ``Clock``, check()."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from twisted.python.failure import Failure

pytest.importorskip("XenAPI")

from twisted.internet.defer import Deferred, maybeDeferred, succeed  # noqa: E402
from twisted.internet.task import Clock  # noqa: E402

from upsagent.config.managers import LocalConfig, XenMasterConfig, XenPoolConfig  # noqa: E402
from upsagent.hypervisors.base import build_backend  # noqa: E402
from upsagent.hypervisors.local import POWERDOWN_MAGIC, LocalBackend  # noqa: E402
from upsagent.hypervisors.xen import GRACE, XenPool  # noqa: E402
from upsagent.hypervisors.xenmaster import DISABLE_LIMIT, XenMasterBackend  # noqa: E402
from upsagent.hypervisors.xenvms import HARD_GRACE  # noqa: E402
from upsagent.policy.plan import VmGroup  # noqa: E402
from upsagent.system.runner import Outcome, Result  # noqa: E402
from tests.sshd import free_port  # noqa: E402
from tests.xapisim import Pool, SimVM, make_ca  # noqa: E402

GiB = 1 << 30
SHUTDOWN = ("/sbin/shutdown", "-h", "+0")


class Runner:
    """Records the commands; answers ok."""

    def __init__(self) -> None:
        self.ran: list[tuple[str, ...]] = []

    def run(self, argv: Any, budget: float | None, **_: Any) -> Deferred[Any]:
        self.ran.append(tuple(argv))
        return succeed(type("R", (), {"ok": True, "summary": "exit 0"})())


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[Pool, XenPoolConfig]]:
    """host1 (the pool master, 127.0.0.2) with db1, db2, web1, app1 (and a template and a
    snapshot of its own), host2 (127.0.0.1) with vm9; the pool's url names host2, a
    member: the session follows HOST_IS_SLAVE to the master."""
    ca, cert, key = make_ca(tmp_path, ["127.0.0.1", "127.0.0.2"])
    sim = Pool({"host1": ("127.0.0.2", 32 * GiB), "host2": ("127.0.0.1", 16 * GiB)}, "host1",
               {"db1": ("host1", 2 * GiB), "db2": ("host1", 2 * GiB),
                "web1": ("host1", 2 * GiB), "app1": ("host1", 2 * GiB),
                "vm9": ("host2", 2 * GiB)}, migration_time=0.2)
    master = sim.host_ref("host1")
    sim.vms["OpaqueRef:template-sim"] = SimVM("tpl", master, GiB, power_state="Halted",
                                              is_a_template=True)
    sim.vms["OpaqueRef:snapshot-sim"] = SimVM("db1 snap", master, GiB,
                                              power_state="Halted", is_a_snapshot=True)
    port = free_port()
    sim.serve(port, cert, key)
    yield sim, XenPoolConfig("pool1", f"https://127.0.0.1:{port}", "root", "secret",
                             ca_file=str(ca))
    sim.close()


def backend(config: XenPoolConfig, name: str = "host1", *, clock: Any = None,
            blocking: Any = None, runner: Runner | None = None,
            flag: str | None = None) -> XenMasterBackend:
    """The backend with the thread seam inline (unless ``blocking`` is given)."""
    local = LocalBackend(runner or Runner(), name, SHUTDOWN, 30.0, flag)
    return XenMasterBackend(name, XenPool(config, timeout=10.0),
                            blocking or (lambda f: maybeDeferred(f)), local,
                            clock if clock is not None else Clock())


def result(d: Deferred[Any]) -> Any:
    box: list[Any] = []
    d.addBoth(box.append)
    assert box, "no answer"
    return box[0]


def methods(sim: Pool) -> list[str]:
    return [m for m, _ in sim.calls]


def halted_order(sim: Pool) -> list[str]:
    """The VMs in the order their halt appeared in the event log."""
    with sim._lock:
        events = list(sim._events)
    return [e["snapshot"]["name_label"] for e in events
            if e["class"] == "vm" and e["snapshot"].get("power_state") == "Halted"]


def test_the_registry_builds_it_from_the_pool_and_this_os(rig: Any) -> None:
    _, pool = rig
    config = XenMasterConfig("host1", pool, LocalConfig("host1", ("/bin/true",), 12.0,
                                                        "/run/killpower"))
    built = build_backend(config, Clock(), Runner())  # type: ignore[arg-type]
    assert isinstance(built, XenMasterBackend) and built.pool.config == pool
    assert (built.local.shutdown_command, built.local.budget,
            built.local.powerdown_flag) == (("/bin/true",), 12.0, "/run/killpower")
    with pytest.raises(TypeError):
        XenMasterBackend.build(pool, Clock(), Runner())  # type: ignore[arg-type]


def test_shutdown_vms_disables_then_stops_only_this_hosts_running_guests(rig: Any) -> None:
    sim, config = rig
    done = result(backend(config).shutdown_vms("host1", 10.0))
    assert done.outcome is Outcome.OK, done
    assert done.stopped == ("app1", "db1", "db2", "web1") and not done.left
    assert all(sim.vm_named(vm).power_state == "Halted" for vm in done.stopped)
    assert sim.vm_named("vm9").power_state == "Running"  # another host's
    assert sim.vm_named("Control domain on host: host1").power_state == "Running"
    assert not sim.hosts[sim.master].enabled
    calls = methods(sim)
    assert calls.index("host.disable") < calls.index("Async.VM.clean_shutdown")
    targets = {args[0] for m, args in sim.calls if m.startswith("Async.VM.")}
    assert "OpaqueRef:template-sim" not in targets and "OpaqueRef:snapshot-sim" not in targets
    assert "event.from" in calls and calls.count("task.destroy") >= 4
    assert "host.shutdown" not in calls        # the host's own shutdown is this OS's


def test_vm_groups_are_stopped_in_order(rig: Any) -> None:
    sim, config = rig
    groups = (VmGroup(("web*",), 5.0), VmGroup(("app*",), 5.0))
    done = result(backend(config).shutdown_vms("host1", 20.0, groups))
    assert done.outcome is Outcome.OK and "in order web1 | app1 | db1, db2" in done.detail
    assert halted_order(sim)[:2] == ["web1", "app1"]
    assert set(halted_order(sim)[2:4]) == {"db1", "db2"}
    cleans = [sim.vms[args[0]].name_label for m, args in sim.calls
              if m == "Async.VM.clean_shutdown"]
    assert cleans[:2] == ["web1", "app1"] and set(cleans[2:]) == {"db1", "db2"}


def test_a_guest_that_ignores_the_clean_shutdown_is_hard_shut_down_at_its_timeout(
        rig: Any) -> None:
    sim, config = rig
    sim.vm_named("web1").hangs = True
    sim.vm_named("app1").pv_drivers = False  # no clean shutdown allowed: hard at once
    started = time.monotonic()
    done = result(backend(config).shutdown_vms(
        "host1", 10.0, (VmGroup(("web*", "app*"), 1.0),)))
    took = time.monotonic() - started
    assert done.outcome is Outcome.OK and set(done.stopped) == {"web1", "app1", "db1", "db2"}
    assert 1.0 <= took < 4.0, took
    hard = [sim.vms[args[0]].name_label for m, args in sim.calls
            if m == "Async.VM.hard_shutdown"]
    assert sorted(hard) == ["app1", "web1"]
    assert "task.cancel" in methods(sim)       # web1's clean shutdown, given up
    order = halted_order(sim)
    assert order.index("web1") < order.index("db1")     # group order
    with sim._lock:
        at = {e["snapshot"]["name_label"]: float(e["timestamp"]) for e in sim._events
              if e["class"] == "vm" and e["snapshot"].get("power_state") == "Halted"}
    assert at["web1"] - at["app1"] >= 0.7, at   # no clean shutdown: hard at once


def test_a_vm_left_running_is_reported(rig: Any) -> None:
    sim, config = rig
    sim.vm_named("db2").hangs = True          # and xapi refuses its hard shutdown
    original = sim.shutdown_vm

    def shutdown_vm(task: Any, vm: str, clean: bool) -> str:
        if sim.vms[vm].name_label == "db2" and not clean:
            from tests.xapisim import XapiError
            raise XapiError("OPERATION_NOT_ALLOWED", "refused by the test")
        return original(task, vm, clean)
    sim.shutdown_vm = shutdown_vm  # type: ignore[method-assign]
    done = result(backend(config).shutdown_vms("host1", 0.5))
    assert done.outcome is Outcome.FAILED and done.left == ("db2",)
    assert set(done.stopped) == {"app1", "db1", "web1"} and "db2" in done.detail


def test_a_hard_shutdown_refused_while_the_clean_one_ends_is_tried_again(rig: Any) -> None:
    """xapi answering OTHER_OPERATION_IN_PROGRESS (the cancelled clean shutdown still
    holds the VM): once it has ended, the hard shutdown is asked again."""
    from tests.xapisim import XapiError
    sim, config = rig
    sim.vm_named("app1").hangs = True
    original, refused = sim.shutdown_vm, []

    def shutdown_vm(task: Any, vm: str, clean: bool) -> str:
        if sim.vms[vm].name_label == "app1" and not clean and not refused:
            refused.append(vm)
            raise XapiError("OTHER_OPERATION_IN_PROGRESS", "VM", vm, "clean_shutdown", "x")
        return original(task, vm, clean)
    sim.shutdown_vm = shutdown_vm  # type: ignore[method-assign]
    done = result(backend(config).shutdown_vms("host1", 0.5))
    assert refused and done.outcome is Outcome.OK and "app1" in done.stopped, done
    hard = [sim.vms[args[0]].name_label for m, args in sim.calls
            if m == "Async.VM.hard_shutdown"]
    assert hard == ["app1", "app1"]


def test_without_event_from_the_tasks_are_looked_at_again(rig: Any) -> None:
    sim, config = rig
    sim.without_events = True
    sim.vm_named("web1").hangs = True
    started = time.monotonic()
    done = result(backend(config).shutdown_vms("host1", 1.0))
    assert done.outcome is Outcome.OK and len(done.stopped) == 4, done
    assert time.monotonic() - started < 4
    assert methods(sim).count("event.from") >= 1 and "Async.VM.hard_shutdown" in methods(sim)


def test_cancelling_stops_the_clean_shutdown_in_flight(rig: Any) -> None:
    """With the real thread seam: the Deferred is cancelled while a guest hangs."""
    from twisted.internet.selectreactor import SelectReactor
    from twisted.internet.threads import deferToThreadPool
    sim, config = rig
    for vm in ("db1", "db2", "web1", "app1"):
        sim.vm_named(vm).hangs = True
    reactor = SelectReactor()
    reactor.startRunning()
    try:
        real = backend(config, clock=reactor, blocking=lambda f: deferToThreadPool(
            reactor, reactor.getThreadPool(), f))
        d = real.shutdown_vms("host1", 60.0)
        deadline = time.monotonic() + 5
        while methods(sim).count("Async.VM.clean_shutdown") < 4:
            reactor.iterate(0.02)
            assert time.monotonic() < deadline
        d.cancel()
        assert result(d).outcome is Outcome.CANCELLED
        deadline = time.monotonic() + 8
        while methods(sim).count("task.cancel") < 4:
            reactor.iterate(0.05)
            assert time.monotonic() < deadline, "the xapi tasks were not cancelled"
        assert "Async.VM.hard_shutdown" not in methods(sim)
        assert sim.vm_named("db1").power_state == "Running"
    finally:
        reactor.stop()
        for _ in range(3):
            reactor.iterate(0.01)
        reactor.getThreadPool().stop()


def test_a_thread_that_never_answers_is_timed_out_on_the_clock(rig: Any) -> None:
    _, config = rig
    clock = Clock()
    silent = backend(config, clock=clock, blocking=lambda f: Deferred())
    d = silent.shutdown_vms("host1", 30.0, (VmGroup(("db*",), 10.0),))
    limit = 30.0 + 2 * HARD_GRACE + GRACE
    clock.advance(limit - 1)
    assert not d.called
    clock.advance(1)
    done = result(d)
    assert done.outcome is Outcome.TIMED_OUT and "no answer" in done.detail
    assert not clock.getDelayedCalls()


def test_shutdown_host_disables_then_runs_this_os_shutdown(rig: Any, tmp_path: Path) -> None:
    sim, config = rig
    runner, flag = Runner(), tmp_path / "killpower"
    done = result(backend(config, runner=runner, flag=str(flag)).shutdown_host(
        "host1", killpower=True))
    assert done.outcome is Outcome.OK and "host1 disabled in xapi" in done.detail, done
    assert runner.ran == [SHUTDOWN]
    assert flag.read_text() == POWERDOWN_MAGIC
    assert not sim.hosts[sim.master].enabled and sim.hosts[sim.master].live
    assert "host.shutdown" not in methods(sim)


def test_xapi_refusing_never_stops_the_local_shutdown(rig: Any) -> None:
    sim, config = rig
    runner = Runner()
    done = result(backend(replace(config, password="wrong"), runner=runner).shutdown_host(
        "host1"))
    assert done.outcome is Outcome.OK and "xapi not told" in done.detail
    assert "SESSION_AUTHENTICATION_FAILED" in done.detail and "wrong" not in done.detail
    assert runner.ran == [SHUTDOWN] and sim.hosts[sim.master].enabled


def test_xapi_silent_delays_the_local_shutdown_by_the_disable_limit_only(rig: Any) -> None:
    _, config = rig
    clock, runner = Clock(), Runner()
    d = backend(config, clock=clock, runner=runner,
                blocking=lambda f: Deferred()).shutdown_host("host1")
    clock.advance(DISABLE_LIMIT - 0.1)
    assert runner.ran == [] and not d.called
    clock.advance(0.1)
    done = result(d)
    assert runner.ran == [SHUTDOWN] and done.outcome is Outcome.OK
    assert "xapi not told" in done.detail and "cancelled" in done.detail


def test_cancelled_while_xapi_is_told_this_os_is_not_shut_down(rig: Any) -> None:
    _, config = rig
    clock, runner = Clock(), Runner()
    d = backend(config, clock=clock, runner=runner,
                blocking=lambda f: Deferred()).shutdown_host("host1")
    d.cancel()
    assert result(d).outcome is Outcome.CANCELLED and runner.ran == []
    clock.advance(DISABLE_LIMIT)
    assert runner.ran == [] and not clock.getDelayedCalls()


def test_warn_users_as_this_os(rig: Any) -> None:
    _, config = rig
    runner = Runner()
    result(backend(config, runner=runner).warn_users("host1", "power failure"))
    assert runner.ran == [("wall", "upsagent:", "power failure")]


def test_maintenance_does_not_apply(rig: Any) -> None:
    sim, config = rig
    b = backend(config)
    for d in (b.enter_maintenance("host1", 10.0), b.exit_maintenance("host1", 10.0)):
        assert result(d).outcome is Outcome.NOT_APPLICABLE
    assert sim.hosts[sim.master].enabled and sim.calls == []


def test_check_reports_the_pool_master_and_changes_nothing(rig: Any) -> None:
    sim, config = rig
    assert result(backend(config).check(["host1"])) == []
    writes = [m for m in methods(sim) if not m.split(".")[-1].startswith("get")
              and m not in ("event.from", "session.logout")]
    assert writes == [], writes
    member = result(backend(config, "host2").check(["host2"]))
    assert len(member) == 1 and member[0].startswith(
        "host host2: not the pool master of pool pool1 (the master is host1)")
    assert '"xen" host' in member[0]
    missing = result(backend(config, "xen9").check(["xen9"]))
    assert missing == ["host xen9: no host with that name-label in pool pool1 (it has: "
                       "host1, host2)"]
    bad = result(backend(replace(config, password="wrong")).check(["host1"]))
    assert len(bad) == 1 and bad[0].startswith("pool pool1: ") and "AUTHENTICATION" in bad[0]


def test_hosts_reports_this_host_as_xapi_sees_it(rig: Any) -> None:
    sim, config = rig
    [info] = result(backend(config).hosts())
    assert (info.name, info.connected, info.in_maintenance, info.detail) == \
        ("host1", True, False, "pool master")
    # xapi does not answer: the inventory is told (the call fails), nothing made up
    failed = result(backend(replace(config, password="wrong")).hosts())
    assert isinstance(failed, Failure) and failed.check(ConnectionError), failed
    assert str(failed.value).startswith("xapi: "), failed


def _check_config(tmp_path: Path, config: XenPoolConfig, host: str) -> Any:
    """``upsagent check-config --connect`` (a real process) on a xenmaster config."""
    import os
    import subprocess
    import sys
    root = Path(__file__).resolve().parent.parent
    path = tmp_path / "upsagent.toml"
    path.write_text(f"""
[slave]
name = "{host}"
state_file = "{tmp_path}/s.json"
[[slave.xenpool]]
name = "pool1"
url = "{config.url}"
user = "root"
password = "{config.password}"
ca_file = "{config.ca_file}"
[[slave.monitor]]
ups = "ups1@127.0.0.1:3493"
user = "mon"
password = "pw"
[[host]]
name = "{host}"
backend = "xenmaster"
pool = "pool1"
shutdown_after = 200
""")
    path.chmod(0o600)
    return subprocess.run([sys.executable, "-m", "upsagent", "check-config", "--config",
                           str(path), "--connect"], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(root)), timeout=120, cwd=root)


def test_check_config_connect(rig: Any, tmp_path: Path) -> None:
    sim, config = rig
    done = _check_config(tmp_path, config, "host1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'OK: connect: xenmaster "host1": 1 host checked' in done.stdout
    assert sim.hosts[sim.master].enabled
    member = _check_config(tmp_path, config, "host2")
    assert member.returncode == 1
    assert ('upsagent: connect: xenmaster "host2": host host2: not the pool master of pool '
            'pool1 (the master is host1)') in member.stderr
