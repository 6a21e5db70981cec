"""Tests for upsagent.master.shutdown: the pure decisions, then the shell in the master
(MemoryReactorClock, sessions in memory, a fake process runner)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import MemoryReactorClock

from tests.test_master_service import config
from upsagent.config import ConfigError, load_toml, loads_toml, to_toml
from upsagent.config.schema import ShutdownConfig
from upsagent.system.powerdown import MAGIC
from upsagent.master.service import Master
from upsagent.master.shutdown import (
    COMMAND_BUDGET, Client, Note, Phase, RunCommand, SetFsd, ShutdownCore, UpsView, WriteFlag)
from upsagent.nut.server import ServerSession

CMD = ("/sbin/shutdown", "-h", "+0")


def core(**settings: Any) -> ShutdownCore:
    return ShutdownCore(ShutdownConfig(enabled=True, **settings), "/run/killpower")


def kinds(actions: Sequence[object]) -> list[object]:
    """Actions without the log lines."""
    return [a for a in actions if not isinstance(a, Note)]


def notes(actions: Sequence[object]) -> list[str]:
    return [a.text for a in actions if isinstance(a, Note)]


# -- the core ------------------------------------------------------------------------------

def test_ob_lb_fsd_wait_for_logout_flag_then_command() -> None:
    """OB+LB: FSD at once; the flag when the last session is gone; the command FINALDELAY
    later; nothing more afterwards."""
    c = core(hostsync=15, finaldelay=5)
    slaves = [Client("10.0.0.5", "rack", "mon"), Client("10.0.0.6", "rack", "mon")]
    assert c.update(0, [UpsView("rack", "OL")], slaves) == []
    assert c.deadline() is None
    acts = c.update(100, [UpsView("rack", "OB DISCHRG LB")], slaves)
    assert kinds(acts) == [SetFsd("rack", "on battery with low battery (OB DISCHRG LB)")]
    assert "Host shutdown begins: 0 of 1 UPS powering this host not critical" in notes(acts)[1]
    assert c.phase is Phase.SYNCING and c.deadline() == 115
    assert kinds(c.update(101, [UpsView("rack", "OB DISCHRG LB", fsd=True)], slaves)) == []
    acts = c.update(103, [UpsView("rack", "OB DISCHRG LB", fsd=True)], slaves[1:])
    assert kinds(acts) == []
    acts = c.update(104, [UpsView("rack", "OB DISCHRG LB", fsd=True)], [])
    assert kinds(acts) == [WriteFlag("/run/killpower")]
    assert notes(acts) == ["No session is logged into rack (waited 4.00 s)"]
    assert c.phase is Phase.FINAL and c.deadline() == 109
    assert c.update(108.9, [UpsView("rack", "OB DISCHRG LB", fsd=True)], []) == []
    assert c.update(109, [UpsView("rack", "OL", fsd=True)], []) == [RunCommand(CMD)]
    assert c.phase is Phase.DONE and c.deadline() is None
    assert kinds(c.update(500, [UpsView("rack", "OL", fsd=True)], [])) == []


def test_hostsync_runs_out_and_names_who_is_left() -> None:
    """A session that stays is named by address, UPS and user when HOSTSYNC runs out."""
    c = core(hostsync=15, finaldelay=0)
    stuck = [Client("192.0.2.7", "rack", "slave"), Client("192.0.2.9", "other", "x")]
    ups = [UpsView("rack", "OB LB"), UpsView("other", "OL", powers_host=False)]
    c.update(0, ups, stuck)
    assert kinds(c.update(14.99, ups, stuck)) == []
    acts = c.update(15, ups, stuck)
    assert notes(acts) == ["HOSTSYNC (15 s) ran out; still connected: 192.0.2.7 (UPS rack, "
                           "user slave)"]
    assert kinds(acts) == [WriteFlag("/run/killpower"), RunCommand(CMD)]


def test_fsd_latch_or_status_fsd_is_critical_cal_is_not() -> None:
    """FSD (latched or reported) is critical; OB LB during CAL is not."""
    for view, why in [(UpsView("u", "OL", fsd=True), "its FSD latch is set"),
                      (UpsView("u", "FSD OL"), "the UPS reports FSD"),
                      (UpsView("u", None, fsd=True), "its FSD latch is set")]:
        c = core()
        c.update(0, [view], [])
        assert c.critical == {"u": why} and c.phase is Phase.FINAL  # nobody to wait for
    c = core()
    assert c.update(0, [UpsView("u", "OB LB CAL")], []) == [] and c.critical == {}


def test_on_battery_for_counts_without_a_break() -> None:
    """on_battery_for: critical after that long on battery; power back resets the count;
    the deadline says when to look again."""
    c = core(on_battery_for=600)
    c.update(0, [UpsView("u", "OB DISCHRG")], [])
    assert c.deadline() == 600
    c.update(300, [UpsView("u", "OL")], [])
    assert c.deadline() is None
    c.update(400, [UpsView("u", "OB DISCHRG")], [])
    assert c.update(999, [UpsView("u", "OB DISCHRG")], []) == [] and c.deadline() == 1000
    acts = c.update(1000, [UpsView("u", "OB DISCHRG")], [])
    assert kinds(acts)[0] == SetFsd("u", "on battery for 600 s (on_battery_for 600 s)")


def test_deadtime_only_when_last_seen_on_battery() -> None:
    """No data for DEADTIME while last seen OB is critical; last seen OL, or never seen,
    is not."""
    c = core(deadtime=15)
    c.update(0, [UpsView("a", "OB"), UpsView("b", "OL"), UpsView("c", None)], [])
    c.update(10, [UpsView("a", None), UpsView("b", None), UpsView("c", None)], [])
    assert c.deadline() == 15
    assert c.update(14, [UpsView("a", None), UpsView("b", None), UpsView("c", None)], []) == []
    acts = c.update(15, [UpsView("a", None), UpsView("b", None), UpsView("c", None)], [])
    assert kinds(acts)[0] == SetFsd("a", "no data for 15 s (deadtime 15 s) and last seen "
                                         "on battery")
    assert c.critical.keys() == {"a"}


def test_minsupplies_and_ups_not_powering_this_host() -> None:
    """A critical UPS gets FSD at once; the host goes down only when fewer of its own UPSes
    than minsupplies are fed; then every one of them gets FSD."""
    c = core(minsupplies=1)
    ups = [UpsView("a", "OB LB"), UpsView("b", "OL"), UpsView("far", "OB LB", powers_host=False)]
    acts = c.update(0, ups, [Client("h", "far")])
    assert kinds(acts) == [SetFsd("a", "on battery with low battery (OB LB)"),
                           SetFsd("far", "on battery with low battery (OB LB)")]
    assert c.phase is Phase.WATCHING
    c2 = core(minsupplies=2)
    acts = c2.update(0, ups, [Client("h", "far"), Client("h2", "b")])
    assert kinds(acts) == [SetFsd("a", "on battery with low battery (OB LB)"),
                           SetFsd("far", "on battery with low battery (OB LB)"),
                           SetFsd("b", "this host is shutting down")]
    # only the sessions on this host's UPSes are waited for
    assert kinds(c2.update(0.25, ups, [Client("h", "far")])) == [WriteFlag("/run/killpower")]


def test_reconfigure_is_refused_once_begun() -> None:
    c = core()
    assert c.reconfigure(ShutdownConfig(enabled=True, hostsync=3), None)
    c.update(0, [UpsView("u", "OB LB")], [])
    assert not c.reconfigure(ShutdownConfig(enabled=True), "/x")
    assert c.config.hostsync == 3


# -- the shell in the master ----------------------------------------------------------------

@dataclass
class Done:
    ok: bool
    summary: str = "exit 0"


class FakeRunner:
    """Records (time, argv, budget); answers with ``result``."""

    def __init__(self, reactor: MemoryReactorClock, result: Done = Done(True)) -> None:
        self.reactor = reactor
        self.calls: list[tuple[float, list[str], float | None]] = []
        self.result = result

    def run(self, argv: Sequence[str], budget: float | None) -> Deferred[Any]:
        self.calls.append((self.reactor.seconds(), list(argv), budget))
        return succeed(self.result)


def start_master(tmp_path: Path, **settings: Any) -> tuple[Master, MemoryReactorClock,
                                                           FakeRunner, Path]:
    reactor = MemoryReactorClock()
    reactor.advance(1000)
    flag = tmp_path / "killpower"
    shutdown = ShutdownConfig(**{"enabled": True, "hostsync": 15, "finaldelay": 5,
                                 "shutdown_command": ("/bin/echo", "bye"), **settings})
    conf = replace(config(tmp_path, "rack"), powerdown_flag=str(flag), shutdown=shutdown)
    runner = FakeRunner(reactor)
    master = Master(conf, reactor, runner=runner)
    master.start()
    return master, reactor, runner, flag


def login(master: Master, user: str = "mon", addr: str = "10.0.0.5") -> ServerSession:
    s = ServerSession(master.state, addr)
    s.receive_data(f"USERNAME {user}\nPASSWORD pw\nLOGIN rack\nWATCH rack\n".encode())
    assert s.data_to_send() == b"OK\nOK\nOK\nOK WATCHING rack\n"
    return s


def power_fails(master: Master) -> None:
    admin = ServerSession(master.state, "127.0.0.1")
    admin.receive_data(b'USERNAME admin\nPASSWORD pw\nSET VAR rack ups.status "OB DISCHRG LB"\n')
    assert admin.data_to_send() == b"OK\nOK\nOK\n"
    admin.connection_lost()


def test_sequence_in_the_master(tmp_path: Path) -> None:
    """FSD at once (pushed to the slaves), the flag 0.25 s after the last slave left, the
    command FINALDELAY later, through the runner with its budget."""
    master, reactor, runner, flag = start_master(tmp_path)
    slave1, slave2 = login(master), login(master, addr="10.0.0.6")
    reactor.advance(10)
    power_fails(master)  # at 1010
    slot = master.state.find("rack")
    assert slot is not None and slot.fsd
    assert slave1.data_to_send().decode().splitlines()[-1] == (
        'NOTIFY rack VAR ups.status "FSD OB DISCHRG LB"')
    for _ in range(8):
        reactor.advance(0.25)
    slave1.connection_lost()  # at 1012
    for _ in range(8):
        reactor.advance(0.25)
    assert not flag.exists()
    slave2.connection_lost()  # at 1014
    reactor.advance(0.25)
    assert flag.read_text() == MAGIC + "\n"
    assert runner.calls == []
    for _ in range(19):
        reactor.advance(0.25)
    assert runner.calls == []
    reactor.advance(0.25)
    assert runner.calls == [(1019.25, ["/bin/echo", "bye"], COMMAND_BUDGET)]
    service = master.shutdown
    assert service is not None and service.result == Done(True)
    steps = [(t, a) for t, a in service.history if not isinstance(a, Note)]
    assert steps == [(1010, SetFsd("rack", "on battery with low battery (OB DISCHRG LB)")),
                     (1014.25, WriteFlag(str(flag))),
                     (1019.25, RunCommand(("/bin/echo", "bye")))]
    assert reactor.getDelayedCalls() == [] or all(
        getattr(c.func, "__self__", None) is not service for c in reactor.getDelayedCalls())


def test_hostsync_timeout_in_the_master(tmp_path: Path) -> None:
    """A slave that never leaves: the flag at HOSTSYNC, the command FINALDELAY later, and
    the log names the slave."""
    master, reactor, runner, flag = start_master(tmp_path, hostsync=3, finaldelay=1)
    login(master, addr="192.0.2.7")
    power_fails(master)
    reactor.pump([0.25] * 11)
    assert not flag.exists()
    reactor.advance(0.25)
    assert flag.exists()
    reactor.pump([0.25] * 4)
    assert [t for t, _, _ in runner.calls] == [1004.0]
    assert master.shutdown is not None
    assert any("still connected: 192.0.2.7 (UPS rack, user mon)" in a.text
               for _, a in master.shutdown.history if isinstance(a, Note))


def test_fsd_set_by_a_client_starts_the_host_shutdown(tmp_path: Path) -> None:
    """Another primary's FSD (or an admin's) makes the UPS critical within a second."""
    master, reactor, runner, flag = start_master(tmp_path, finaldelay=0)
    admin = ServerSession(master.state, "127.0.0.1")
    admin.receive_data(b"USERNAME admin\nPASSWORD pw\nFSD rack\n")
    assert master.shutdown is not None and master.shutdown.core.phase is Phase.WATCHING
    reactor.advance(1)
    assert flag.exists() and [t for t, _, _ in runner.calls] == [1001]


def test_dry_run_only_logs(tmp_path: Path) -> None:
    """Dry run: the same decisions at the same times, but no FSD, no flag, no command."""
    master, reactor, runner, flag = start_master(tmp_path, dry_run=True, hostsync=2,
                                                 finaldelay=1)
    login(master)  # without FSD the slave stays: the wait lasts HOSTSYNC
    power_fails(master)
    reactor.pump([0.25] * 12)
    slot = master.state.find("rack")
    assert slot is not None and not slot.fsd
    assert not flag.exists() and runner.calls == []
    assert master.shutdown is not None
    assert [(t, type(a).__name__) for t, a in master.shutdown.history
            if not isinstance(a, Note)] == [(1000, "SetFsd"), (1002, "WriteFlag"),
                                            (1003, "RunCommand")]


def test_failed_command_is_reported(tmp_path: Path) -> None:
    master, reactor, runner, flag = start_master(tmp_path, finaldelay=0)
    runner.result = Done(False, "exit 1")
    power_fails(master)
    reactor.advance(0.25)
    assert master.shutdown is not None and master.shutdown.result == Done(False, "exit 1")
    assert flag.exists()  # a manual shutdown still powers the UPS off


def test_disabled_by_default_and_by_reload(tmp_path: Path) -> None:
    """Without [master.shutdown] enabled nothing happens; enabling it by reload arms it."""
    reactor = MemoryReactorClock()
    conf = config(tmp_path, "rack")
    master = Master(conf, reactor, runner=FakeRunner(reactor))
    master.start()
    power_fails(master)
    slot = master.state.find("rack")
    assert master.shutdown is None and slot is not None and not slot.fsd
    master.reload(replace(conf, shutdown=ShutdownConfig(enabled=True)))
    assert master.shutdown is not None and slot.fsd


def test_stale_flag_removed_at_start_foreign_file_kept(tmp_path: Path) -> None:
    """A flag of ours from before this boot is removed when the master starts; a file
    without the magic line is left alone."""
    flag = tmp_path / "killpower"
    flag.write_text(MAGIC + "\n")
    os.utime(flag, (1000, 1000))  # long before this boot
    reactor = MemoryReactorClock()
    master = Master(replace(config(tmp_path, "rack"), powerdown_flag=str(flag)), reactor)
    master.start()
    assert not flag.exists()
    flag.write_text("something else\n")
    os.utime(flag, (1000, 1000))
    Master(replace(config(tmp_path, "rack"), powerdown_flag=str(flag)), reactor).start()
    assert flag.exists()


# -- configuration ------------------------------------------------------------------------------

BASE = '[[ups]]\nname = "rack"\ndriver = "replay"\naliases = ["ups"]\n'


def test_shutdown_config_is_read_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "upsagent.toml"
    path.write_text('[master]\npowerdown_flag = "/etc/killpower"\n[master.shutdown]\n'
                    'enabled = true\nups = ["UPS"]\nminsupplies = 1\non_battery_for = 600\n'
                    'deadtime = 20\nhostsync = 30\nfinaldelay = 0\ndry_run = true\n'
                    'shutdown_command = ["/usr/bin/systemctl", "poweroff"]\n' + BASE)
    shutdown = load_toml(path).master.shutdown
    assert shutdown == ShutdownConfig(True, ("UPS",), 1, 600, 20, 30, 0,
                                      ("/usr/bin/systemctl", "poweroff"), True)
    config_ = load_toml(path)
    assert loads_toml(to_toml(config_), source=config_.source) == config_
    assert "[master.shutdown]" not in to_toml(replace(config_, master=replace(
        config_.master, shutdown=ShutdownConfig())))


@pytest.mark.parametrize(("text", "expected"), [
    ("hostsync = 0", "master.shutdown.hostsync: 0 is below the minimum of 1"),
    ("finaldelay = -1", "master.shutdown.finaldelay: -1 is below the minimum of 0"),
    ("enabled = 1", "master.shutdown.enabled: must be true or false, not an integer"),
    ('ups = ["rak"]', 'master.shutdown.ups: "rak" is not a served UPS (did you mean "rack"?)'),
    ('ups = ["rack", "UPS"]', 'master.shutdown.ups: "UPS" is listed twice'),
    ("enabled = true\nminsupplies = 2",
     "master.shutdown.minsupplies: 2 is more than the 1 UPS powering this host"),
    ('shutdown_command = "/sbin/shutdown -h now"',
     'master.shutdown.shutdown_command: must be a list of arguments (no shell): write '
     '["/sbin/shutdown", "-h", "now"]'),
    ("shutdown_command = []", "master.shutdown.shutdown_command: must be a non-empty list"),
    ('shutdown_command = ["shutdown", "-h", "now"]',
     'master.shutdown.shutdown_command: "shutdown": give the program as an absolute path'),
    ("hostsyc = 3", 'master.shutdown.hostsyc: unknown key (did you mean "hostsync"?)'),
])
def test_shutdown_config_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "upsagent.toml"
    path.write_text(f"[master.shutdown]\n{text}\n{BASE}")
    with pytest.raises(ConfigError) as info:
        load_toml(path)
    assert str(info.value).removeprefix(f"{path}: ").startswith(expected)


def test_enabled_without_flag_is_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "upsagent.toml"
    path.write_text(f"[master.shutdown]\nenabled = true\n{BASE}")
    warnings = load_toml(path).warnings
    assert any("master.powerdown_flag: not set" in w for w in warnings)


def test_default_runner_is_the_agents_process_runner() -> None:
    from upsagent.master.shutdown import default_runner
    from upsagent.system.runprocess import ProcessRunner

    assert isinstance(default_runner(MemoryReactorClock()), ProcessRunner)
