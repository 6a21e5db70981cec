"""The agent's inventory, its status socket and ``upsagent status``.

(a) the inventory on a Clock with fake backends: rounds, change logging, one call at a
time, configured hosts only, the placement it passes on (and the daemon gives the engine);
(b) the status socket's protocol on a Clock and a StringTransport (limits, garbage,
oversized, timeout) and the socket file's checks on a real Unix socket; (c) the report of
a daemon on a Clock rendered as ``upsagent status`` prints it; (d) end to end: our master,
the agent as a real process, and ``upsagent status`` run as a subprocess before and during
an outage (timers counting down, then the shutdown as the last action).
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher
from zope.interface import provider

from upsagent.agent.control import (
    MAX_CONNECTIONS, MAX_REQUEST, TIMEOUT, StatusFactory, listen_status)
from upsagent.agent.daemon import SlaveDaemon
from upsagent.agent.inventory import INTERVAL, Inventory
from upsagent.agent.status import status_report
from upsagent.cli import status as status_cli
from upsagent.config import loads_toml
from upsagent.config.schema import ConfigError
from upsagent.hypervisors.base import Backend, HostInfo
from upsagent.policy.events import Placement, UpsState
from tests.ourmaster import OurMaster, ask, stop_process, wait_for
from tests.test_slave_daemon import FakeRunner, Rig, timed_config

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def logged() -> Iterator[list[tuple[str, str]]]:
    """The upsagent.inventory log lines emitted during the test, as (level, text)."""
    lines: list[tuple[str, str]] = []

    @provider(ILogObserver)
    def observe(event: LogEvent) -> None:
        if str(event.get("log_namespace", "")).startswith("upsagent.inventory"):
            lines.append((event["log_level"].name, formatEvent(event)))
    globalLogPublisher.addObserver(observe)
    yield lines
    globalLogPublisher.removeObserver(observe)


class FakeBackend(Backend):
    """``hosts()`` answers what ``listing`` holds (an exception: fails with it; None: a
    Deferred left pending, kept in ``waiting``)."""

    kind = "vsphere"

    def __init__(self, listing: Any = ()) -> None:
        self.listing = listing
        self.calls = 0
        self.waiting: list[Deferred[list[HostInfo]]] = []

    def hosts(self) -> Deferred[list[HostInfo]]:
        self.calls += 1
        if isinstance(self.listing, Exception):
            return fail(self.listing)
        if self.listing is None:
            self.waiting.append(Deferred())
            return self.waiting[-1]
        return succeed(list(self.listing))

    def shutdown_host(self, host: str, killpower: bool = False) -> Deferred[Any]:
        raise NotImplementedError


def up(name: str, **kw: Any) -> HostInfo:
    return HostInfo(name, True, **kw)


# -- (a) the inventory -----------------------------------------------------------------


def test_first_round_at_start_then_every_30_s_logging_only_changes(
        logged: list[tuple[str, str]]) -> None:
    clock = Clock()
    backend = FakeBackend([up("esx1", detail="connected, poweredOn"), up("esx9")])
    placed: list[Placement] = []
    inventory = Inventory([("vcenter vc1", backend, ["esx1", "esx2"])], clock, placed.append)
    inventory.start()
    assert backend.calls == 1
    assert logged == [
        ("info", "inventory: vcenter vc1: esx1: connected (connected, poweredOn)"),
        ("warn", "inventory: vcenter vc1: esx2: not found")]
    assert set(inventory.hosts) == {"esx1", "esx2"}          # esx9 is not configured
    assert inventory.hosts["esx1"].read_at == 0 and not inventory.hosts["esx2"].found
    assert placed == [Placement("esx1"), Placement("esx2")]  # all at the first answer
    clock.advance(INTERVAL)
    clock.advance(INTERVAL)
    assert backend.calls == 3
    assert len(logged) == 2 and len(placed) == 2             # nothing changed
    assert inventory.hosts["esx1"].read_at == 2 * INTERVAL
    inventory.stop()
    clock.advance(INTERVAL)
    assert backend.calls == 3


def test_every_change_is_logged_once(logged: list[tuple[str, str]]) -> None:
    clock = Clock()
    backend = FakeBackend([up("esx1"), up("esx2", runs_vcenter=True)])
    placed: list[Placement] = []
    inventory = Inventory([("vcenter vc1", backend, ["esx1", "esx2"])], clock, placed.append)
    inventory.start()
    del logged[:]
    del placed[:]

    def then(listing: Any) -> list[str]:
        backend.listing = listing
        clock.advance(INTERVAL)
        out = [f"{level} {text}" for level, text in logged]
        del logged[:]
        return out

    assert then([HostInfo("esx1", False, detail="notResponding"),
                 up("esx2", runs_vcenter=True)]) == [
        "warn inventory: vcenter vc1: esx1 is disconnected (notResponding)"]
    assert then([up("esx1", in_maintenance=True), up("esx2", runs_vcenter=True)]) == [
        "info inventory: vcenter vc1: esx1 is connected again",
        "info inventory: vcenter vc1: esx1 entered maintenance"]
    assert placed == []
    assert then([up("esx1", runs_vcenter=True), up("esx2")]) == [     # DRS moved it
        "info inventory: vcenter vc1: esx1 left maintenance",
        "info inventory: vcenter vc1: the vCenter's VM detected on esx1 (was on esx2)"]
    assert placed == [Placement("esx1", runs_vcenter=True), Placement("esx2")]
    assert then(RuntimeError("connection refused")) == [
        "warn inventory: vcenter vc1 is unreachable: connection refused"]
    assert then(RuntimeError("connection refused")) == []
    assert inventory.hosts["esx1"].runs_vcenter          # the last known state stays
    assert inventory.managers["vcenter vc1"].error == "connection refused"
    assert then([up("esx1", runs_vcenter=True)]) == [
        "info inventory: vcenter vc1 is reachable again",
        "warn inventory: vcenter vc1: esx2 is no longer listed: not found"]
    assert then([up("esx1", runs_vcenter=True), up("esx2")]) == [
        "info inventory: vcenter vc1: esx2 is listed again: connected"]


def test_a_manager_still_answering_is_not_asked_again() -> None:
    """Never two inventory calls at once on one backend: a round skips it."""
    clock = Clock()
    slow, quick = FakeBackend(None), FakeBackend([up("h")])
    inventory = Inventory([("vcenter slow", slow, ["esx1"]), ("ssh h", quick, ["h"])], clock)
    inventory.start()
    clock.advance(INTERVAL)
    clock.advance(INTERVAL)
    assert (slow.calls, quick.calls) == (1, 3)
    assert inventory.managers["vcenter slow"].reachable is None
    slow.waiting[0].callback([up("esx1")])
    assert inventory.hosts["esx1"].connected
    clock.advance(INTERVAL)
    assert slow.calls == 2


def test_the_daemon_hands_the_detected_placement_to_the_engine(tmp_path: Path) -> None:
    """The vCenter's VM found on esx2: the engine's plan orders esx2 last (R6); the
    operator's plan is unchanged; the status report says detected, not marked."""
    config = loads_toml(f"""
[slave]
name = "agent"
state_file = "{tmp_path}/s.json"
status_socket = ""
[[slave.monitor]]
ups = "UPS1@nas"
user = "m"
password = "p"
[[slave.vcenter]]
name = "vc1"
url = "https://vc1.example/sdk"
user = "u"
password = "p"
[[host]]
name = "esx1"
backend = "vsphere"
vcenter = "vc1"
shutdown_after = 60
[[host]]
name = "esx2"
backend = "vsphere"
vcenter = "vc1"
shutdown_after = 60
""", source="u.toml").slave
    assert config is not None
    backend = FakeBackend([up("esx1"), up("esx2", runs_vcenter=True)])
    clock = Clock()
    daemon = SlaveDaemon(config, clock, runner=FakeRunner(),
                         monitor_factory=lambda s, e: type("M", (), {
                             "start": lambda self: None,
                             "stop": lambda self, logout=True: succeed(None)})(),
                         backend_factory=lambda manager, reactor, runner: backend)
    daemon.start()
    assert daemon.executor is not None
    engine = daemon.executor.engine
    assert [h.runs_vcenter for h in engine.plan.hosts] == [False, True]
    assert not config.plan.host("esx2").runs_vcenter
    report = status_report(daemon, clock.seconds())
    esx2 = report["hosts"][1]
    assert esx2["plan"]["runs_vcenter"] == {"marked": False, "in_effect": True}
    assert esx2["inventory"]["runs_vcenter"] and esx2["manager"] == "vcenter vc1"
    assert "runs the vCenter's VM (detected)" in status_cli.render(report)
    backend.listing = [up("esx1"), up("esx2")]
    clock.advance(INTERVAL)
    assert [h.runs_vcenter for h in engine.plan.hosts] == [False, False]
    daemon.stop()


# -- (b) the status socket ---------------------------------------------------------------


def connect(factory: StatusFactory) -> tuple[Any, StringTransport]:
    proto = factory.buildProtocol(None)
    transport = StringTransport()
    proto.makeConnection(transport)
    return proto, transport


def reply(transport: StringTransport) -> dict[str, Any]:
    lines = transport.value().splitlines()
    assert len(lines) == 1, lines
    value: dict[str, Any] = json.loads(lines[0])
    return value


def test_status_request_gets_the_report_and_the_connection_closes() -> None:
    clock = Clock()
    factory = StatusFactory(clock, lambda: {"agent": "me"})
    proto, transport = connect(factory)
    proto.dataReceived(b"sta")
    assert transport.value() == b"" and factory.active == 1
    proto.dataReceived(b"tus\r\n")
    assert reply(transport) == {"agent": "me"} and transport.disconnecting
    proto.connectionLost()
    assert factory.active == 0 and not clock.getDelayedCalls()


@pytest.mark.parametrize("data, error", [
    (b"shutdown now\n", "unknown request 'shutdown now': this socket answers 'status' only"),
    (b"\x00\xff\n", "unknown request '\\x00\ufffd': this socket answers 'status' only"),
    (b"x" * (MAX_REQUEST + 1), f"request too long (at most {MAX_REQUEST} bytes)"),
    (b"status" + b" " * MAX_REQUEST + b"\n", f"request too long (at most {MAX_REQUEST} bytes)"),
])
def test_anything_but_status_is_refused(data: bytes, error: str) -> None:
    asked: list[int] = []
    factory = StatusFactory(Clock(), lambda: asked.append(1) or {})   # type: ignore[func-returns-value]
    proto, transport = connect(factory)
    proto.dataReceived(data)
    assert reply(transport) == {"error": error} and transport.disconnecting
    proto.dataReceived(b"status\n" * 100)         # nothing more is read or answered
    assert len(transport.value().splitlines()) == 1 and asked == []


def test_a_silent_connection_is_cut_off_at_the_timeout() -> None:
    clock = Clock()
    factory = StatusFactory(clock, dict)
    proto, transport = connect(factory)
    clock.advance(TIMEOUT - 0.1)
    assert not transport.disconnecting
    clock.advance(0.1)
    assert reply(transport) == {"error": f"no request within {TIMEOUT:g} s"}
    assert transport.disconnected          # aborted, not waiting for the peer


def test_connections_beyond_the_limit_are_refused() -> None:
    factory = StatusFactory(Clock(), lambda: {"ok": True})
    held = [connect(factory) for _ in range(MAX_CONNECTIONS)]
    proto, transport = connect(factory)
    assert reply(transport) == {"error": f"too many connections (at most {MAX_CONNECTIONS})"}
    proto.connectionLost()
    assert factory.active == MAX_CONNECTIONS     # the refused one was never counted
    held[0][0].connectionLost()
    proto, transport = connect(factory)
    proto.dataReceived(b"status\n")
    assert reply(transport) == {"ok": True}


def test_a_failing_report_is_an_error_reply() -> None:
    def broken() -> dict[str, Any]:
        raise KeyError("x")
    proto, transport = connect(StatusFactory(Clock(), broken))
    proto.dataReceived(b"status\n")
    assert reply(transport) == {"error": "the agent could not make its report (see its log)"}


@pytest.fixture
def reactor() -> Any:
    from twisted.internet import reactor
    return reactor


def test_the_socket_is_0600_in_a_directory_made_for_it(tmp_path: Path,
                                                       reactor: Any) -> None:
    """(Its removal at stop needs the reactor running: the end-to-end test checks it.)"""
    path = tmp_path / "run" / "slave.sock"
    port = listen_status(reactor, str(path), dict)
    mode = path.stat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    port.stopListening()


def test_a_path_that_is_not_a_socket_is_refused(tmp_path: Path, reactor: Any) -> None:
    path = tmp_path / "slave.sock"
    path.write_text("precious")
    with pytest.raises(ConfigError) as info:
        listen_status(reactor, str(path), dict)
    assert str(info.value) == (f"slave.status_socket: {path}: exists and is not a socket: "
                               "refusing to replace it (remove it, or choose another path)")
    assert path.read_text() == "precious"


def test_a_live_socket_is_refused_and_a_stale_one_replaced(tmp_path: Path,
                                                           reactor: Any) -> None:
    path = str(tmp_path / "slave.sock")
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    other.bind(path)
    other.listen(1)
    with pytest.raises(ConfigError) as info:
        listen_status(reactor, path, dict)
    assert "another process answers on it: is another slave agent running" in str(info.value)
    other.close()                                # the file stays: an agent that died
    assert os.path.exists(path)
    port = listen_status(reactor, path, dict)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    port.stopListening()


def test_a_path_too_long_is_refused(tmp_path: Path, reactor: Any) -> None:
    with pytest.raises(ConfigError, match="too long for a Unix socket"):
        listen_status(reactor, str(tmp_path / ("x" * 120)), dict)


# -- (c) the report and its rendering ----------------------------------------------------


def test_the_report_of_a_running_sequence_renders_timers_and_the_last_action(
        tmp_path: Path) -> None:
    clock = Clock()
    clock.advance(1000)
    rig = Rig(timed_config(tmp_path), clock)
    rig.monitors[-1].on_event(UpsState("UPS1@nas", frozenset({"OL"}), 100.0, 1200.0))
    clock.advance(1)
    rig.status(1001, "OB DISCHRG")
    rig.until(1003)
    report = json.loads(json.dumps(status_report(rig.daemon, clock.seconds())))
    assert report["started"] == 1000 and report["now"] == 1003
    [host] = report["hosts"]
    assert host["phase"] == "idle" and host["last_action"] is None
    assert [(t["step"], t["left"]) for t in host["timers"]] == [("shut down", 58)]
    assert host["plan"]["shutdown_after"] == 60 and host["manager"] == "local me"
    assert host["inventory"]["connected"] and host["inventory"]["read_at"] == 1000
    [ups] = report["ups"]
    assert (ups["status"], ups["age"], ups["read_at"]) == ("OB DISCHRG", 2, 1001)
    text = status_cli.render(report)
    assert text.splitlines()[0] == (
        f"upsagent slave me (pid {os.getpid()}), up 3s, version {report['version']}")
    assert "  UPS1@nas (secondary): OB DISCHRG read 2s ago" in text
    assert "  me (local, local me): idle" in text
    assert "    shut down in 58s (UPS1@nas on battery for 60 s)" in text
    assert "    last action: none" in text
    assert "    inventory: connected, read 3s ago" in text
    assert ("    plan: powered by UPS1@nas; shutdown after 1m00s, start delay 0s, "
            "OS needs 1m00s") in text
    rig.until(1062)
    report = status_report(rig.daemon, 1300.0)
    last = report["hosts"][0]["last_action"]
    assert (last["action"], last["outcome"], last["started"]) == ("shut down", "ok", 1061)
    assert report["hosts"][0]["timers"] == []
    assert report["released"]
    text = status_cli.render(report)
    assert "    last action: shut down: ok (exit 0), 3m59s ago, took 0s" in text
    assert "this host is shutting down: the sessions are closed" in text
    assert status_cli.span(242) == "4m02s" and status_cli.span(7380) == "2h03m"


def test_status_cli_exit_codes_and_socket_from_the_config(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "none.sock"
    assert status_cli.main(["--socket", str(missing)]) == 1
    err = capsys.readouterr().err
    assert err == (f"upsagent status: cannot reach the agent at {missing}: No such file or "
                   "directory (is the slave running, and with this status_socket?)\n")
    assert status_cli.main(["--bogus"]) == 2
    config = tmp_path / "u.toml"
    config.write_text('[slave]\nstatus_socket = "run/s.sock"\n')
    assert status_cli.socket_path(str(config), True) == str(tmp_path / "run/s.sock")
    config.write_text('[slave]\nstatus_socket = ""\n')
    assert status_cli.main(["--config", str(config)]) == 1
    assert "the agent has no status socket" in capsys.readouterr().err
    config.write_text("[master]\n")
    assert status_cli.socket_path(str(config), True) == "/run/upsagent/slave.sock"
    assert status_cli.main(["--config", str(tmp_path / "nope.toml")]) == 1
    assert "nope.toml: no such file" in capsys.readouterr().err
    garbage = tmp_path / "g.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(garbage))
    server.listen(1)
    try:
        import threading

        def answer() -> None:
            conn, _ = server.accept()
            conn.recv(100)
            conn.sendall(b"OK Goodbye\n")
            conn.close()
        thread = threading.Thread(target=answer)
        thread.start()
        assert status_cli.main(["--socket", str(garbage)]) == 1
        thread.join()
    finally:
        server.close()
    assert "the reply is not JSON" in capsys.readouterr().err


# -- (d) end to end --------------------------------------------------------------------

DEV = "ups.status: OL CHRG\nbattery.charge: 100\nbattery.runtime: 2400\n"
UPS_CONF = "[dummy]\n  driver = dummy-ups\n  port = ups.dev\n"
SHUTDOWN_AFTER = 12


def status(config: Path, *more: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "upsagent", "status", "--config",
                           str(config), *more], capture_output=True, text=True, cwd=REPO,
                          timeout=60)


def timer_left(config: Path) -> int | None:
    """The seconds ``upsagent status --json`` says are left before the shutdown."""
    out = status(config, "--json")
    assert out.returncode == 0, out.stderr
    [host] = json.loads(out.stdout)["hosts"]
    timers = [t["left"] for t in host["timers"] if t["step"] == "shut down"]
    return round(timers[0]) if timers else None


def test_upsagent_status_against_a_running_agent(tmp_path: Path) -> None:
    """Before: idle, no timer.  During the outage: 'shut down in ...' counting down, seen
    by two runs of ``upsagent status``.  After: the shutdown as the last action, ok."""
    done = tmp_path / "shutdown-ran"
    with OurMaster(UPS_CONF, files={"ups.dev": DEV}) as master:
        wait_for(lambda: ask(master.port, "GET VAR dummy ups.status").startswith("VAR"), 15,
                 "the UPS to have data")
        config = tmp_path / "upsagent.toml"
        config.write_text(f"""
[slave]
name = "vm"
state_file = "state.json"
status_socket = "run/status.sock"
pollfreq = 1
pollfreq_alert = 1
shutdown_command = ["/bin/touch", "{done}"]
[[slave.monitor]]
ups = "dummy@127.0.0.1:{master.port}"
user = "slaveuser"
password = "slavepass"
[[host]]
name = "vm"
shutdown_after = {SHUTDOWN_AFTER}
debounce = 0
""")
        os.chmod(config, 0o600)
        assert status(config).returncode == 1                 # not running yet
        with open(tmp_path / "slave.log", "wb") as log:
            agent = subprocess.Popen([sys.executable, "-m", "upsagent", "slave", "-c",
                                      str(config)], stdout=log, stderr=subprocess.STDOUT,
                                     cwd=REPO, start_new_session=True)
        try:
            def answered() -> str | None:
                out = status(config)
                return out.stdout if out.returncode == 0 and "OL" in out.stdout else None
            before = wait_for(answered, 30, "the agent to answer with the UPS on line")
            assert "  vm (local, local vm): idle" in before
            assert "    last action: none" in before and "shut down in" not in before
            assert stat.S_IMODE(os.stat(tmp_path / "run/status.sock").st_mode) == 0o600
            answer = ask(master.port, "USERNAME admin", "PASSWORD adminpass",
                         'SET VAR dummy ups.status "OB DISCHRG"')
            assert answer == "OK\nOK\nOK\n", answer
            first = wait_for(lambda: timer_left(config), 15, "the shutdown timer")
            assert 0 < first <= SHUTDOWN_AFTER
            second = wait_for(lambda: (left := timer_left(config)) is not None
                              and left < first and left, 15, "the timer to count down")
            assert second < first
            text = status(config).stdout
            assert "    shut down in " in text and "(dummy@127.0.0.1" in text
            wait_for(done.exists, SHUTDOWN_AFTER + 15, "the shutdown command")
            after = wait_for(lambda: "last action: shut down: ok" in (
                out := status(config).stdout) and out, 15, "the last action")
            assert "this host is shutting down" in after
        finally:
            stop_process(agent)
        log_text = (tmp_path / "slave.log").read_text()
        assert "inventory: local vm: vm: connected" in log_text, log_text
        assert not (tmp_path / "run/status.sock").exists()    # removed at stop


def test_status_socket_key_is_read_and_written_back(tmp_path: Path) -> None:
    """Default, a path (relative to the file), "" for none; import-nut's writer keeps it."""
    from upsagent.config import load_toml, to_toml

    base = '[[slave.monitor]]\nups = "u@h"\nuser = "m"\npassword = "p"\n[slave]\n'
    source = tmp_path / "u.toml"
    for line, expected in (("", "/run/upsagent/slave.sock"),
                           ('status_socket = "run/s.sock"\n', str(tmp_path / "run/s.sock")),
                           ('status_socket = ""\n', None)):
        source.write_text(base + line)
        os.chmod(source, 0o600)
        config = load_toml(str(source))
        assert config.slave is not None and config.slave.status_socket == expected
        again = loads_toml(to_toml(config), source=str(source))
        assert again.slave is not None and again.slave.status_socket == expected
    with pytest.raises(ConfigError, match="slave.status_socket: must be a non-empty string"):
        loads_toml(base + "status_socket = 3\n", source=str(source))


class ListeningClock(Clock):
    """A Clock whose listenUNIX records the paths and hands out ports that record their
    stop (the daemon's socket handling, without a real reactor)."""

    def __init__(self) -> None:
        super().__init__()
        self.listening: list[str] = []

    def listenUNIX(self, path: str, factory: Any, backlog: int = 50,
                   mode: int = 0o666) -> Any:
        self.listening.append(path)
        clock = self

        class Port:
            def stopListening(self) -> None:
                clock.listening.remove(path)
        return Port()


def test_the_socket_is_kept_across_a_reload_and_moved_when_the_path_changes(
        tmp_path: Path) -> None:
    from dataclasses import replace

    clock = ListeningClock()
    config = replace(timed_config(tmp_path), status_socket=str(tmp_path / "a.sock"))
    rig = Rig(config, clock)
    assert clock.listening == [str(tmp_path / "a.sock")]
    rig.daemon.reload(config)
    assert clock.listening == [str(tmp_path / "a.sock")]      # not reopened
    rig.daemon.reload(replace(config, status_socket=str(tmp_path / "b.sock")))
    assert clock.listening == [str(tmp_path / "b.sock")]
    rig.daemon.stop()
    assert clock.listening == []


def test_a_socket_path_that_cannot_be_used_stops_the_start(tmp_path: Path) -> None:
    from dataclasses import replace

    (tmp_path / "a.sock").write_text("")
    clock = ListeningClock()
    with pytest.raises(ConfigError, match="a.sock: exists and is not a socket"):
        Rig(replace(timed_config(tmp_path), status_socket=str(tmp_path / "a.sock")), clock)
    assert clock.listening == [] and not clock.getDelayedCalls()


def test_the_default_socket_taken_leaves_the_agent_running_without_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two agents on one machine, neither naming a socket: the second cannot have the
    default one; it says so and protects its hosts without a status socket (a path the
    operator chose is refused, as above)."""
    from dataclasses import replace

    import upsagent.agent.daemon as daemon_module

    default = str(tmp_path / "slave.sock")
    monkeypatch.setattr(daemon_module, "DEFAULT_STATUS_SOCKET", default)
    (tmp_path / "slave.sock").write_text("")     # what listen_status refuses
    lines: list[str] = []

    @provider(ILogObserver)
    def observe(event: LogEvent) -> None:
        if event.get("log_namespace") == "upsagent.slave":
            lines.append(formatEvent(event))
    globalLogPublisher.addObserver(observe)
    try:
        rig = Rig(replace(timed_config(tmp_path), status_socket=default), Clock())
    finally:
        globalLogPublisher.removeObserver(observe)
    assert rig.daemon.executor is not None
    assert any("exists and is not a socket" in line and "this agent runs without a status "
               "socket" in line for line in lines), lines


def test_the_start_delay_counts_down_too(tmp_path: Path) -> None:
    """A host in its start delay (shutdown_delay) shows when the delay ends."""
    from dataclasses import replace

    clock = Clock()
    clock.advance(1000)
    config = timed_config(tmp_path)
    plan = replace(config.plan, hosts=(replace(config.plan.hosts[0], shutdown_delay=30),))
    rig = Rig(replace(config, plan=plan), clock)
    rig.status(1000, "OL")
    rig.status(1001, "OB DISCHRG")
    rig.until(1070)
    [host] = status_report(rig.daemon, clock.seconds())["hosts"]
    assert host["phase"] == "delay"
    assert [(t["step"], t["left"]) for t in host["timers"]] == [("start delay ends", 21)]
    text = status_cli.render(status_report(rig.daemon, clock.seconds()))
    assert "    start delay ends in 21s (UPS1@nas on battery for 60 s)" in text
