"""Tests for upsagent.master.shutdown: the policy engine fed with the master's own UPSes.

First each rule through the shell on a ``task.Clock``, over a server state whose UPSes the
tests set as a driver would; then the shell in the master (MemoryReactorClock, sessions in
memory, a fake process runner)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock

from tests.test_master_service import config
from upsagent.config import ConfigError, load_toml, loads_toml, to_toml
from upsagent.config.schema import ShutdownConfig, UpsConfig
from upsagent.system.powerdown import MAGIC
from upsagent.master.service import Master
from upsagent.master.shutdown import (
    COMMAND_BUDGET, Note, RunCommand, SetFsd, ShutdownService, WriteFlag, master_plan)
from upsagent.nut.server import ServerSession
from upsagent.nut.state import Descriptions, ServerState, Slot
from upsagent.policy import policy
from upsagent.policy.plan import is_upsmon_host
from upsagent.policy.rules import Phase, Verdict

CMD = ("/sbin/shutdown", "-h", "+0")


@dataclass
class Done:
    ok: bool
    summary: str = "exit 0"


class FakeRunner:
    """Records (time, argv, budget); answers with ``result``."""

    def __init__(self, reactor: Clock, result: Done = Done(True)) -> None:
        self.reactor = reactor
        self.calls: list[tuple[float, list[str], float | None]] = []
        self.result = result

    def run(self, argv: Sequence[str], budget: float | None) -> Deferred[Any]:
        self.calls.append((self.reactor.seconds(), list(argv), budget))
        return succeed(self.result)


@dataclass(eq=False)
class Sess:
    """A session logged into a UPS, as the shell sees one."""

    address: str
    login_slot: Slot | None
    username: str | None = "mon"


class Shell:
    """The shell on a Clock over UPSes set as their drivers would set them."""

    def __init__(self, tmp_path: Path, *names: str, runner: type[FakeRunner] = FakeRunner,
                 **settings: Any) -> None:
        self.clock = Clock()
        self.state = ServerState.from_config(
            [UpsConfig(name, "replay") for name in names], [], now=self.clock.seconds,
            new_id=lambda: "1", descriptions=Descriptions())
        self.flag = tmp_path / "killpower"
        self.runner = runner(self.clock)
        self.service = ShutdownService(self.state, ShutdownConfig(enabled=True, **settings),
                                       str(self.flag), self.clock, self.runner)
        self.service.start()

    def slot(self, name: str) -> Slot:
        found = self.state.find(name)
        assert found is not None
        return found

    def at(self, t: float) -> None:
        """Let time pass until ``t``, each call at its own time."""
        while True:
            due = [c.getTime() for c in self.clock.getDelayedCalls()]
            if not due or min(due) > t:
                break
            self.clock.advance(min(due) - self.clock.seconds())
        self.clock.advance(t - self.clock.seconds())

    def status(self, t: float, name: str, status: str) -> None:
        self.at(t)
        ups = self.slot(name).ups
        ups.set("ups.status", status)
        ups.data_ok()

    def stale(self, t: float, name: str) -> None:
        self.at(t)
        self.slot(name).ups.data_stale("no answer from the UPS")

    def login(self, name: str, address: str, user: str = "mon") -> Sess:
        session = Sess(address, self.slot(name), user)
        self.state.sessions.append(session)  # type: ignore[arg-type]
        return session

    def logout(self, t: float, session: Sess) -> None:
        self.at(t)
        self.state.sessions.remove(session)  # type: ignore[arg-type]

    def done(self, since: float = -1.0) -> list[tuple[float, object]]:
        """What the shell did, without the log lines."""
        return [(t, d) for t, d in self.service.history
                if not isinstance(d, Note) and t >= since]

    def notes(self, since: float = -1.0) -> list[str]:
        return [d.text for t, d in self.service.history if isinstance(d, Note) and t >= since]


# -- each rule through the shell -------------------------------------------------------------

def test_ob_lb_fsd_wait_for_logout_flag_then_command(tmp_path: Path) -> None:
    """OB+LB: FSD at once; the flag when the last session is gone; the command FINALDELAY
    later, whatever the power does meanwhile; nothing more afterwards."""
    sh = Shell(tmp_path, "rack", hostsync=15, finaldelay=5)
    slaves = [sh.login("rack", "10.0.0.5"), sh.login("rack", "10.0.0.6")]
    sh.status(0, "rack", "OL")
    assert sh.done() == [] and sh.service.phase is Phase.IDLE
    sh.status(100, "rack", "OB DISCHRG LB")
    assert sh.done() == [(100, SetFsd("rack", "rack on battery and low battery"))]
    assert sh.notes() == [
        "UPS rack is critical: rack on battery and low battery",
        "Host shutdown begins: rack on battery and low battery: this agent is the primary"]
    assert sh.slot("rack").fsd and sh.service.phase is Phase.FSD
    sh.logout(103, slaves[0])
    sh.logout(104, slaves[1])
    assert sh.done(since=101) == [] and not sh.flag.exists()
    sh.at(104.25)
    assert sh.done(since=101) == [(104.25, WriteFlag(str(sh.flag)))]
    assert sh.flag.read_text() == MAGIC + "\n"
    assert sh.notes(since=101) == ["No session is logged into rack (waited 4.25 s)"]
    sh.status(106, "rack", "OL")           # nothing undoes it once begun
    sh.at(109.24)
    assert sh.runner.calls == []
    sh.at(109.25)
    assert sh.runner.calls == [(109.25, list(CMD), COMMAND_BUDGET)]
    assert sh.done(since=105) == [(109.25, RunCommand(CMD))]
    assert sh.service.result == Done(True) and sh.service.phase is Phase.DOWN
    sh.status(500, "rack", "OB LB")
    assert sh.done(since=110) == []


def test_hostsync_runs_out_and_names_who_is_left(tmp_path: Path) -> None:
    """A session that stays is named by address, UPS and user when HOSTSYNC runs out; a
    session on a UPS that does not power this host is not waited for."""
    sh = Shell(tmp_path, "rack", "other", ups=("rack",), hostsync=15, finaldelay=0)
    sh.login("rack", "192.0.2.7", "slave")
    sh.login("other", "192.0.2.9", "x")
    sh.status(0, "other", "OL")
    sh.status(0, "rack", "OB LB")
    sh.at(14.99)
    assert [d for _, d in sh.done()] == [SetFsd("rack", "rack on battery and low battery")]
    sh.at(15)
    assert sh.notes(since=1) == ["HOSTSYNC (15 s) ran out; still connected: 192.0.2.7 "
                                 "(UPS rack, user slave)"]
    assert sh.done(since=1) == [(15, WriteFlag(str(sh.flag))), (15, RunCommand(CMD))]
    assert not sh.slot("other").fsd


def test_fsd_from_a_client_or_the_ups_is_critical_cal_is_not(tmp_path: Path) -> None:
    """FSD is critical: a latch set by a client (seen within a second, with or without
    data) or FSD in the UPS's own status (then we latch it too); OB LB during CAL is not."""
    sh = Shell(tmp_path, "u", finaldelay=0)
    sh.status(0, "u", "OL")
    sh.slot("u").set_fsd()                  # another primary's FSD, or an admin's
    sh.at(1)
    assert sh.notes()[0] == "UPS u is critical: u: FSD set by the primary"
    assert sh.done() == [(1, WriteFlag(str(sh.flag))), (1, RunCommand(CMD))]
    sh = Shell(tmp_path, "u", finaldelay=0)
    sh.slot("u").set_fsd()                  # no data from the driver yet
    sh.at(1)
    assert sh.service.phase is Phase.DOWN
    sh = Shell(tmp_path, "u", finaldelay=0)
    sh.status(0, "u", "FSD OL")
    assert sh.done()[0] == (0, SetFsd("u", "u: FSD set by the primary"))
    assert sh.slot("u").fsd and sh.service.phase is Phase.DOWN
    sh = Shell(tmp_path, "u", finaldelay=0)
    sh.status(0, "u", "OB LB CAL")
    sh.at(1000)
    assert sh.done() == [] and sh.notes() == [] and sh.service.phase is Phase.IDLE


def test_on_battery_for_counts_without_a_break(tmp_path: Path) -> None:
    """on_battery_for: critical after that long on battery; power back resets the count."""
    sh = Shell(tmp_path, "u", on_battery_for=600)
    sh.status(0, "u", "OB DISCHRG")
    sh.status(300, "u", "OL")
    sh.status(400, "u", "OB DISCHRG")
    sh.at(999.9)
    assert sh.done() == []
    sh.at(1000)
    assert sh.done()[0] == (1000, SetFsd("u", "u on battery for 600 s (on_battery_for 600 s)"))
    assert sh.service.phase is Phase.DELAY


def test_deadtime_only_when_last_seen_on_battery(tmp_path: Path) -> None:
    """No data for DEADTIME while last seen OB is critical; last seen OL, or never seen,
    is not."""
    sh = Shell(tmp_path, "a", "b", "c", deadtime=15)
    sh.status(0, "a", "OB")
    sh.status(0, "b", "OL")
    sh.stale(10, "a")
    sh.stale(10, "b")
    sh.at(24.9)
    assert sh.done() == []
    sh.at(25)
    assert sh.done() == [(25, SetFsd("a", "no contact with a for 15 s while on battery "
                                          "(DEADTIME 15)"))]
    sh.at(5000)
    assert len(sh.done()) == 1 and sh.service.phase is Phase.IDLE   # b and c still count


def test_minsupplies_and_ups_not_powering_this_host(tmp_path: Path) -> None:
    """A critical UPS gets FSD at once; the host goes down only when fewer of its own UPSes
    than minsupplies are not critical; then every one of them gets FSD, and only the
    sessions on them are waited for."""
    for need in (1, 2):
        sh = Shell(tmp_path, "a", "b", "far", ups=("a", "b"), minsupplies=need)
        sh.login("far", "h")
        h2 = sh.login("b", "h2")
        sh.status(0, "b", "OL")
        sh.status(0, "far", "OB LB")
        sh.status(0, "a", "OB LB")
        fsd = [SetFsd("far", "far on battery and low battery"),
               SetFsd("a", "a on battery and low battery")]
        if need == 1:
            assert [d for _, d in sh.done()] == fsd and sh.service.phase is Phase.IDLE
            continue
        assert [d for _, d in sh.done()] == fsd + [
            SetFsd("b", "a on battery and low battery: this agent is the primary")]
        sh.logout(0.1, h2)
        sh.at(0.25)
        assert sh.done(since=0.1) == [(0.25, WriteFlag(str(sh.flag)))]


def test_reconfigure_is_refused_once_begun(tmp_path: Path) -> None:
    sh = Shell(tmp_path, "u")
    sh.service.reconfigure(ShutdownConfig(enabled=True, hostsync=3), None)
    assert sh.service.config.hostsync == 3 and sh.service.plan.hostsync == 3
    sh.status(0, "u", "OB LB")
    sh.service.reconfigure(ShutdownConfig(enabled=True), "/x")
    assert sh.service.config.hostsync == 3 and sh.service.powerdown_flag is None


class SlowRunner(FakeRunner):
    """A command that ends when the test says so."""

    running: Deferred[Any]

    def run(self, argv: Sequence[str], budget: float | None) -> Deferred[Any]:
        self.calls.append((self.reactor.seconds(), list(argv), budget))
        self.running = Deferred()
        return self.running


def test_the_command_keeps_its_whole_budget(tmp_path: Path) -> None:
    """The engine stops waiting for the host's shutdown after its own guard (90 s) and,
    the host still up, retries it 10 s later (rules R6); the first command is not
    cancelled and no second one runs beside it: the retry waits until the runner's budget
    (120 s) ends the first, whose result is still kept and logged, then runs."""
    sh = Shell(tmp_path, "u", runner=SlowRunner, finaldelay=0)
    sh.status(0, "u", "OB LB")
    runner = sh.runner
    assert isinstance(runner, SlowRunner) and runner.calls == [(0, list(CMD), COMMAND_BUDGET)]
    first = runner.running
    sh.at(99)
    assert sh.service.phase is Phase.STOPPING and not first.called
    assert len(runner.calls) == 1
    sh.at(100)
    assert [t for t, _, _ in runner.calls] == [0]       # the retry waits for the first
    sh.at(120)
    first.callback(Done(False, "timed out after 120 s"))
    assert sh.service.result == Done(False, "timed out after 120 s")
    assert [t for t, _, _ in runner.calls] == [0, 120]
    runner.running.callback(Done(True, "exit 0"))
    assert sh.service.phase is Phase.DOWN


def test_a_retry_is_not_run_when_the_attempt_it_waited_for_succeeds(tmp_path: Path) -> None:
    """The first command ends well after the engine stopped waiting for it: the retry
    queued behind it is answered by its success, and no second command runs."""
    sh = Shell(tmp_path, "u", runner=SlowRunner, finaldelay=0)
    sh.status(0, "u", "OB LB")
    runner = sh.runner
    assert isinstance(runner, SlowRunner)
    first = runner.running
    sh.at(100)
    sh.at(110)
    first.callback(Done(True, "exit 0"))
    assert [t for t, _, _ in runner.calls] == [0]
    assert sh.service.phase is Phase.DOWN


def test_the_masters_critical_is_the_policys(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """One definition of critical: the master's decisions come from the policy's
    ``ups_verdict`` (rules R2); change that function and the master follows."""
    def verdict(ups: Any, now: float, deadtime: float, hostsync: float) -> Verdict:
        return Verdict(ups.name == "calm", f"{ups.name}: the policy says so")

    monkeypatch.setattr(policy, "ups_verdict", verdict)
    sh = Shell(tmp_path, "calm", "burning", ups=("burning",))
    sh.status(0, "calm", "OL")
    sh.status(0, "burning", "OB LB")
    assert sh.done() == [(0, SetFsd("calm", "calm: the policy says so"))]
    assert sh.service.phase is Phase.IDLE and not sh.slot("burning").fsd


def test_the_plan_is_upsmons_primary() -> None:
    """The plan is made by the policy's upsmon_plan: this host goes through FINALDELAY
    whatever the power does (R7), every served UPS is held by us, those powering this
    host as its primary."""
    plan = master_plan(ShutdownConfig(enabled=True, minsupplies=2, on_battery_for=60,
                                      deadtime=20, hostsync=30, finaldelay=7),
                       ["a", "b", "far"], ["a", "b"])
    host = plan.host("localhost")
    assert is_upsmon_host(host) and (host.min_supplies, host.shutdown_delay) == (2, 7)
    assert (plan.deadtime, plan.hostsync) == (20, 30)
    assert [(u.name, u.role, u.on_battery_limit, u.holds_latch) for u in plan.ups] == [
        ("a", "primary", 60, True), ("b", "primary", 60, True), ("far", "secondary", 60, True)]


# -- the shell in the master ----------------------------------------------------------------

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
    assert steps == [(1010, SetFsd("rack", "rack on battery and low battery")),
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
    assert master.shutdown is not None and not master.shutdown.begun
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
