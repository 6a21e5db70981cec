# -*- test-case-name: tests.test_reliability -*-
"""Reliability with the real daemons: zero spurious and zero missed shutdowns.

Each test runs our master (``upsagent master --nut-config``, a replayed ``dummy-ups``) and
our slave (``upsagent slave``, a real process whose shutdown command touches a file), with a
:class:`~tests.netfault.FaultyLink` between them, and does something bad to them: the master
or the agent restarts, the network is cut (with resets, or silently), the UPS flickers, the
UPS's data goes stale, a command hangs past its budget.  Every test then checks both halves
of the promise: no shutdown where none is due (for longer than DEADTIME, so a false alarm
would have fired), and, after the trouble, a real emergency still shuts the host down on
time (the slave recovered rather than sat deaf).

The slave's settings: POLLFREQ 1, POLLFREQALERT 1, DEADTIME 6, HOSTSYNC 3, FINALDELAY 0.
Times are wall-clock (the daemons are real processes); nothing sleeps for time to pass:
each wait polls for a state and has a bound.  Shutdown times are printed (``pytest -s``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.netfault import FaultyLink
from tests.ourmaster import OurMaster, ask, wait_for

DEADTIME, HOSTSYNC = 6.0, 3.0
#: how far a measured time may be from the one the rules give (polls, process start-up)
TOLERANCE = 2.5
UPS_CONF = "[dummy]\n  driver = dummy-ups\n  port = ups.dev\n  pollinterval = 1\n"


def dev(status: str) -> str:
    return f"ups.status: {status}\nbattery.charge: 100\nbattery.runtime: 2400\n"


class Slave:
    """``upsagent slave`` watching ``dummy`` through ``port``; its shutdown touches a file."""

    def __init__(self, tmp: Path, port: int, host: str = "",
                 deadtime: float = DEADTIME) -> None:
        self.dir = tmp / "slave"
        self.dir.mkdir()
        self.down = self.dir / "shutdown-ran"
        self.system = f"dummy@127.0.0.1:{port}"
        config = self.dir / "upsagent.toml"
        config.write_text(f"""
[slave]
name = "vm"
state_file = "{self.dir}/state.json"
status_socket = "{self.dir}/status.sock"
deadtime = {deadtime}
hostsync = {HOSTSYNC}
pollfreq = 1
pollfreq_alert = 1
finaldelay = 0
shutdown_command = ["/bin/touch", "{self.down}"]

[[slave.monitor]]
ups = "{self.system}"
user = "slaveuser"
password = "slavepass"
role = "secondary"
""" + host.replace("{ups}", self.system))
        os.chmod(config, 0o600)
        self.config = config
        self.log_path = self.dir / "log"
        self.proc = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        with open(self.log_path, "ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "upsagent", "slave", "--config", str(self.config)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def restart(self) -> None:
        """SIGTERM (the agent saves its state and logs out), then a new process."""
        self.proc.terminate()
        assert self.proc.wait(10) == 0, self.log()
        self.proc = self._spawn()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def saw(self, text: str, after: int = 0) -> bool:
        """Whether ``text`` is in the log past its first ``after`` characters."""
        if self.proc.poll() is not None:
            raise AssertionError(f"the slave exited with {self.proc.returncode}:\n{self.log()}")
        return text in self.log()[after:]

    def wait_log(self, text: str, timeout: float = 15.0, after: int = 0) -> None:
        wait_for(lambda: self.saw(text, after), timeout, f"{text!r} in the slave's log\n"
                 f"{self.log()}")

    def shut_down_at(self) -> float | None:
        """When the shutdown command ran (epoch seconds), None if it has not."""
        return self.down.stat().st_mtime if self.down.exists() else None

    def assert_no_shutdown_until(self, deadline: float, why: str) -> None:
        """Poll until ``deadline`` (epoch): the shutdown must not run before it."""
        while time.time() < deadline:
            assert self.shut_down_at() is None, f"spurious shutdown: {why}\n{self.log()}"
            assert self.proc.poll() is None, f"the slave exited:\n{self.log()}"
            time.sleep(0.1)

    def wait_shutdown(self, timeout: float, why: str) -> float:
        """The shutdown must run within ``timeout`` s: its time (epoch seconds)."""
        wait_for(self.shut_down_at, timeout, f"the shutdown ({why}): missed\n{self.log()}")
        at = self.shut_down_at()
        assert at is not None
        return at

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


class Rig:
    """Our master, the link and our slave; the UPS's status set through the master."""

    def __init__(self, tmp: Path, host: str = "", deadtime: float = DEADTIME) -> None:
        self.master = OurMaster(UPS_CONF, files={"ups.dev": dev("OL CHRG")}).start()
        self.link = FaultyLink(("127.0.0.1", self.master.port))
        self.slave = Slave(tmp, self.link.port, host, deadtime)
        wait_for(lambda: self.logins() == 1, 20, f"the slave to log in\n{self.slave.log()}")

    def logins(self) -> int:
        answer = ask(self.master.port, "GET NUMLOGINS dummy")
        return int(answer.split()[-1]) if answer.startswith("NUMLOGINS") else -1

    def power(self, status: str) -> float:
        """The UPS reports ``status`` from now on, across master restarts: the time."""
        (self.master.dir / "ups.dev").write_text(dev(status))
        answer = ask(self.master.port, "USERNAME admin", "PASSWORD adminpass",
                     f'SET VAR dummy ups.status "{status}"')
        assert answer == "OK\nOK\nOK\n", answer
        return time.time()

    def seen(self, status: str) -> None:
        """Wait until the slave has read ``status`` (its log says so)."""
        text = {"OB": "on battery", "OL": "on line power"}[status]
        self.slave.wait_log(f"UPS {self.slave.system} {text}", 10)

    def emergency_still_works(self) -> None:
        """The slave recovered: low battery now shuts it down within HOSTSYNC."""
        t0 = self.power("OB DISCHRG LB")
        at = self.slave.wait_shutdown(HOSTSYNC + 10, "low battery after the trouble")
        print(f"  low battery -> shutdown after {at - t0:.1f} s (nominal {HOSTSYNC})")
        assert at - t0 <= HOSTSYNC + TOLERANCE, self.slave.log()

    def close(self) -> None:
        self.slave.stop()
        self.link.close()
        self.master.__exit__(None, None, None)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    rig = Rig(tmp_path)
    try:
        yield rig
    finally:
        rig.close()


# -- master restarts ---------------------------------------------------------------------


def test_master_restart_on_line(rig: Rig) -> None:
    rig.master.stop()
    stopped = time.time()
    rig.slave.wait_log("Communications with UPS", 10)
    rig.master.start()
    wait_for(lambda: rig.logins() == 1, 15, f"the slave back\n{rig.slave.log()}")
    rig.slave.assert_no_shutdown_until(stopped + DEADTIME + 3, "master restarted on line")
    rig.emergency_still_works()


def test_master_restart_on_battery_within_deadtime(tmp_path: Path) -> None:
    """Back within DEADTIME (12 s here, so that a slow start of the master on a busy
    machine still fits): on battery alone is not critical; power back, nothing."""
    deadtime = 12.0
    rig = Rig(tmp_path, deadtime=deadtime)
    try:
        rig.power("OB DISCHRG")
        rig.seen("OB")
        rig.master.stop()
        stopped = time.time()
        rig.master.start()
        wait_for(lambda: rig.logins() == 1, deadtime - 2, f"the slave back\n{rig.slave.log()}")
        rig.slave.assert_no_shutdown_until(stopped + deadtime + 3, "master restarted, still OB")
        rig.power("OL CHRG")
        rig.seen("OL")
        rig.emergency_still_works()
    finally:
        rig.close()


def test_master_gone_on_battery_is_critical_after_deadtime(rig: Rig) -> None:
    """NUT's DEADTIME rule: last seen on battery and no contact for DEADTIME: shut down."""
    rig.power("OB DISCHRG")
    rig.seen("OB")
    rig.master.stop()
    stopped = time.time()
    at = rig.slave.wait_shutdown(DEADTIME + 10, "master gone while on battery")
    print(f"  master gone on battery -> shutdown after {at - stopped:.1f} s "
          f"(nominal <= {DEADTIME})")
    assert DEADTIME - 1 - TOLERANCE <= at - stopped <= DEADTIME + TOLERANCE, rig.slave.log()


def restart_master(rig: Rig) -> None:
    rig.master.stop()
    rig.master.start()


def restart_agent(rig: Rig) -> None:
    rig.slave.restart()
    rig.slave.wait_log("state restored", 10)


def reload_agent(rig: Rig) -> None:
    mark = len(rig.slave.log())
    rig.slave.proc.send_signal(signal.SIGHUP)
    rig.slave.wait_log("SIGHUP: reloading the configuration", 10, after=mark)


@pytest.mark.parametrize("trouble", [restart_master, restart_agent, reload_agent],
                         ids=["master-restart", "agent-restart", "agent-reload"])
def test_mid_sequence_trouble_keeps_the_timer(tmp_path: Path,
                                              trouble: Callable[[Rig], None]) -> None:
    """A timed plan (shutdown 10 s after the power failed), and 3 s into it the master
    restarts, the agent restarts (its saved state) or the agent reloads (SIGHUP): the
    shutdown comes at 10 s, neither 13 s (a countdown started again) nor never."""
    rig = Rig(tmp_path, host=TIMED_HOST.format(after=10, extra=""))
    try:
        t0 = rig.power("OB DISCHRG")
        rig.seen("OB")
        wait_for(lambda: time.time() > t0 + 3, 5, "3 s")
        mark = len(rig.slave.log())
        trouble(rig)
        at = rig.slave.wait_shutdown(20, f"the timed shutdown after {trouble.__name__}")
        print(f"  timed shutdown across {trouble.__name__} after {at - t0:.1f} s "
              "(nominal 10)")
        assert abs(at - t0 - 10) <= TOLERANCE, rig.slave.log()
        assert "refused" not in rig.slave.log()[mark:], rig.slave.log()
    finally:
        rig.close()


# -- network partitions ------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["reset", "silent"])
def test_partition_on_line(rig: Rig, mode: str) -> None:
    """Cut for DEADTIME + 4 s while on line: no shutdown; healed, the slave is back."""
    rig.link.cut(mode)
    cut = time.time()
    rig.slave.assert_no_shutdown_until(cut + DEADTIME + 4, f"{mode} partition on line")
    rig.slave.wait_log("Communications with UPS", 12)      # it did notice
    mark = len(rig.slave.log())
    rig.link.heal()
    rig.slave.wait_log("established", 15, after=mark)
    rig.emergency_still_works()


@pytest.mark.parametrize("mode", ["reset", "silent"])
def test_partition_on_battery(rig: Rig, mode: str) -> None:
    """Cut while on battery: DEADTIME after the last reading (a silent cut is noticed when
    the read times out, NET_TIMEOUT 10 s, as upsmon notices it)."""
    rig.power("OB DISCHRG")
    rig.seen("OB")
    rig.link.cut(mode)
    cut = time.time()
    latest = DEADTIME if mode == "reset" else 10 + 1
    at = rig.slave.wait_shutdown(latest + 10, f"{mode} partition on battery")
    print(f"  {mode} partition on battery -> shutdown after {at - cut:.1f} s "
          f"(nominal <= {latest})")
    assert DEADTIME - 1 - TOLERANCE <= at - cut <= latest + TOLERANCE, rig.slave.log()


def test_partition_heals_before_deadtime_on_battery(tmp_path: Path) -> None:
    """Cut (reset) for 4 s while on battery, DEADTIME 12 s, then healed: no shutdown."""
    deadtime = 12.0
    rig = Rig(tmp_path, deadtime=deadtime)
    try:
        rig.power("OB DISCHRG")
        rig.seen("OB")
        rig.link.cut("reset")
        cut = time.time()
        wait_for(lambda: time.time() > cut + 4, 6, "4 s")
        rig.link.heal()
        rig.slave.assert_no_shutdown_until(cut + deadtime + 3, "short partition on battery")
        rig.power("OL CHRG")
        rig.seen("OL")
        rig.emergency_still_works()
    finally:
        rig.close()


# -- the UPS -----------------------------------------------------------------------------

#: a local host shut down ``after`` seconds after its power failed, debounce 2 s
TIMED_HOST = """
[[host]]
name = "vm"
backend = "local"
powered_by = ["{{ups}}"]
shutdown_after = {after}
shutdown_duration = 5
debounce = 2
{extra}
"""


def test_flicker_starts_nothing_then_an_outage_is_timed_from_its_start(
        tmp_path: Path) -> None:
    """OB 1.5 s / OL 1.5 s, six times (9 s of battery in all, past the 6 s timer): no
    shutdown; then a real outage shuts down 6 s after it began, not earlier."""
    rig = Rig(tmp_path, host=TIMED_HOST.format(after=6, extra=""))
    try:
        start = time.time()
        for _ in range(6):
            t = rig.power("OB DISCHRG")
            wait_for(lambda: time.time() > t + 1.5, 3, "the flicker")
            t = rig.power("OL CHRG")
            wait_for(lambda: time.time() > t + 1.5, 3, "the flicker")
        rig.slave.assert_no_shutdown_until(time.time() + 3, "flicker")
        assert rig.slave.saw("on battery"), rig.slave.log()    # it did see the flicker
        assert time.time() - start >= 18
        t0 = rig.power("OB DISCHRG")
        at = rig.slave.wait_shutdown(15, "the outage after the flicker")
        print(f"  outage after flicker -> shutdown after {at - t0:.1f} s (nominal 6)")
        assert abs(at - t0 - 6) <= TOLERANCE, rig.slave.log()
    finally:
        rig.close()


def test_stale_on_line_then_back(rig: Rig) -> None:
    """The driver loses the UPS while on line (its file vanishes; the master says
    DATA-STALE): no shutdown; the data comes back and the slave follows it again."""
    data = rig.master.dir / "ups.dev"
    hidden = data.rename(rig.master.dir / "ups.dev.away")
    lost = time.time()
    rig.slave.wait_log("DATA-STALE", 10)
    rig.slave.assert_no_shutdown_until(lost + DEADTIME + 3, "stale on line")
    mark = len(rig.slave.log())
    hidden.rename(data)
    rig.slave.wait_log("established", 10, after=mark)
    rig.emergency_still_works()


def test_stale_on_battery_is_critical_after_deadtime(rig: Rig) -> None:
    rig.power("OB DISCHRG")
    rig.seen("OB")
    (rig.master.dir / "ups.dev").rename(rig.master.dir / "ups.dev.away")
    lost = time.time()
    at = rig.slave.wait_shutdown(DEADTIME + 10, "stale while on battery")
    assert rig.slave.saw("DATA-STALE")
    print(f"  stale on battery -> shutdown after {at - lost:.1f} s (nominal <= "
          f"{DEADTIME} + the driver's poll)")
    assert DEADTIME - 1 - TOLERANCE <= at - lost <= DEADTIME + 1 + TOLERANCE, rig.slave.log()


# -- commands ----------------------------------------------------------------------------

HANGER = ("import os, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
          "open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(300)")


def test_a_command_hanging_past_its_budget_does_not_hold_the_shutdown(
        tmp_path: Path) -> None:
    """The host's command ignores SIGTERM and never ends: at the end of its budget it is
    signalled, the shutdown goes ahead, and SIGKILL (10 s grace) leaves no process."""
    pidfile = tmp_path / "hanger.pid"
    extra = (f'command = ["{sys.executable}", "-c", "{HANGER}", "{pidfile}"]\n'
             "command_budget = 2\n")
    rig = Rig(tmp_path, host=TIMED_HOST.format(after=3, extra=extra))
    try:
        t0 = rig.power("OB DISCHRG")
        pid = int(wait_for(lambda: pidfile.exists() and pidfile.read_text(), 10,
                           f"the command to start\n{rig.slave.log()}"))
        at = rig.slave.wait_shutdown(15, "the shutdown after the hanging command")
        print(f"  hanging command -> shutdown after {at - t0:.1f} s (nominal 3 + 2)")
        assert abs(at - t0 - 5) <= TOLERANCE, rig.slave.log()

        def gone() -> bool:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            return False
        wait_for(gone, 15, f"the hanging command to be killed\n{rig.slave.log()}")
        assert "SIGKILL" in rig.slave.log()
    finally:
        rig.close()
