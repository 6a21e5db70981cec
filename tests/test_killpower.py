"""Tests for the power-down flag (upsagent.system.powerdown) and ``upsagent killpower``
(upsagent.cli.killpower), ending with the whole end of the sequence against real processes:
the master writes the flag and runs its shutdown command, then a separate killpower process
tells the replayed UPS ``shutdown.return``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import succeed
from twisted.internet.testing import MemoryReactorClock

from tests.ourmaster import OurMaster, wait_for
from upsagent.cli import killpower
from upsagent.config.schema import MasterConfig, ShutdownConfig, UpsConfig
from upsagent.drivers.base import Driver, Result
from upsagent.system.powerdown import (
    MAGIC, FlagState, boot_time, check_flag, remove_flag, write_flag)

# -- the flag ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("content", "state"), [
    (b"upsmon-shutdown-file\n", FlagState.OURS),
    (b"upsmon-shutdown-file", FlagState.OURS),            # upsmon -K accepts both
    (b"upsmon-shutdown-file\nmore\n", FlagState.OURS),
    (b"upsmon-shutdown-file \n", FlagState.FOREIGN),
    (b"", FlagState.FOREIGN),
    (b"#!/bin/sh\n", FlagState.FOREIGN),
])
def test_check_flag_content(tmp_path: Path, content: bytes, state: FlagState) -> None:
    """The first line must be upsmon's magic line, as upsmon -K requires."""
    flag = tmp_path / "killpower"
    flag.write_bytes(content)
    assert check_flag(str(flag)) is state


def test_check_flag_absent_and_stale(tmp_path: Path) -> None:
    """No file is ABSENT; one written before the boot time is STALE."""
    flag = tmp_path / "killpower"
    assert check_flag(str(flag)) is FlagState.ABSENT
    write_flag(str(flag))
    now = time.time()
    assert check_flag(str(flag), booted=now - 60) is FlagState.OURS
    os.utime(flag, (now - 3600, now - 3600))
    assert check_flag(str(flag), booted=now - 60) is FlagState.STALE
    assert check_flag(str(flag), booted=None) is FlagState.OURS


def test_write_and_remove_flag(tmp_path: Path) -> None:
    """Written atomically with NUT's content, mode 0644; removed only when ours."""
    flag = tmp_path / "killpower"
    write_flag(str(flag))
    assert flag.read_text() == MAGIC + "\n"
    assert flag.stat().st_mode & 0o777 == 0o644
    assert os.listdir(tmp_path) == ["killpower"]
    assert remove_flag(str(flag)) and not flag.exists()
    assert not remove_flag(str(flag))
    flag.write_text("not ours\n")
    assert not remove_flag(str(flag)) and flag.exists()


def test_boot_time(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text("cpu  1 2 3\nbtime 1700000000\nprocesses 5\n")
    assert boot_time(str(stat)) == 1700000000.0
    stat.write_text("cpu 1\n")
    assert boot_time(str(stat)) is None
    assert boot_time(str(tmp_path / "none")) is None
    assert boot_time() is None or boot_time() <= time.time()  # type: ignore[operator]


# -- driving the drivers (in memory) ------------------------------------------------------------

class Refusing(Driver):
    """A driver that reaches its UPS but cannot switch it off (the base killpower)."""

    name = "refusing"

    def start(self) -> Any:
        return succeed(None)


def test_kill_all_reports_each_ups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Acknowledged, unreachable (timeout), unavailable driver, refused: one line each,
    all at once; every driver is stopped afterwards."""
    from upsagent.drivers import registry

    dev = tmp_path / "ok.dev"
    dev.write_text("ups.status: OB LB\n")
    real = registry.create_driver
    made: list[Driver] = []

    def create(conf: UpsConfig, ups: Any, reactor: Any) -> Driver:
        driver = Refusing(conf, ups, reactor) if conf.driver == "refusing" else \
            real(conf, ups, reactor)
        made.append(driver)
        return driver

    monkeypatch.setattr(registry, "create_driver", create)
    reactor = MemoryReactorClock()
    upses = [UpsConfig("ok", "replay", str(dev), options={"port": str(dev)}),
             UpsConfig("gone", "replay", str(tmp_path / "missing.dev"),
                       options={"port": str(tmp_path / "missing.dev")}),
             UpsConfig("usb", "bcmxcp_usb", "auto", serve="upsagent"),
             UpsConfig("old", "refusing")]
    results: list[list[tuple[str, bool, str]]] = []
    killpower.kill_all(reactor, upses, timeout=2).addCallback(results.append)
    assert results == []
    reactor.advance(2)
    assert results[0][0] == ("ok", True, "shutdown.return acknowledged")
    assert results[0][1] == ("gone", False, "the UPS was not reached within 2 s")
    assert results[0][2][:2] == ("usb", False) and "bcmxcp_usb" in results[0][2][2]
    assert results[0][3] == ("old", False,
                             "the UPS did not acknowledge shutdown.return (ERR UNKNOWN)")
    assert [t for t, _ in made[0].shutdown_log] == [0]  # type: ignore[attr-defined]


def test_targets_are_the_host_ups() -> None:
    """[master.shutdown] ups (names or aliases) selects; empty means every UPS."""
    upses = (UpsConfig("a", "replay"), UpsConfig("b", "replay", aliases=("nas",)))
    master = MasterConfig(ups=upses)
    assert killpower.targets(master) == list(upses)
    assert killpower.targets(replace(master, shutdown=ShutdownConfig(ups=("NAS",)))) == [
        upses[1]]


# -- the command line: refusals (no reactor needed) ------------------------------------------------

def toml(tmp_path: Path, flag: Path | None, extra: str = "") -> Path:
    dev = tmp_path / "ups.dev"
    dev.write_text("ups.status: OL\n")
    path = tmp_path / "upsagent.toml"
    lines = ["[master]"]
    if flag is not None:
        lines.append(f'powerdown_flag = "{flag}"')
    lines += ["[[ups]]", 'name = "rack"', 'driver = "replay"', 'port = "ups.dev"', extra]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(("prepare", "message", "kept"), [
    (None, "no power-down flag; nothing done", False),
    ("foreign", "does not hold the upsmon magic line; not ours, left alone; nothing done",
     True),
    ("stale", "written before the system booted (stale); removed; nothing done", False),
])
def test_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str], prepare: str | None,
                  message: str, kept: bool) -> None:
    """No flag, a foreign file, a stale flag: exit 3, nothing done; stale is removed."""
    flag = tmp_path / "killpower"
    if prepare == "foreign":
        flag.write_text("hello\n")
    elif prepare == "stale":
        write_flag(str(flag))
        os.utime(flag, (1000, 1000))
    assert killpower.main(["--config", str(toml(tmp_path, flag))]) == 3
    assert message in capsys.readouterr().out
    assert flag.exists() is kept


def test_no_flag_configured_and_bad_config(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert killpower.main(["--config", str(toml(tmp_path, None))]) == 3
    assert "no powerdown_flag is configured; nothing done" in capsys.readouterr().out
    assert killpower.main(["--config", str(tmp_path / "none.toml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_registered_subcommand() -> None:
    from upsagent.cli.main import SUBCOMMANDS
    assert SUBCOMMANDS["killpower"][0] == "upsagent.cli.killpower:main"


# -- the command line as a process ---------------------------------------------------------------

def run_killpower(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "upsagent", "killpower", *args],
                          capture_output=True, text=True, timeout=60)


def test_force_without_flag_and_unreachable_ups(tmp_path: Path) -> None:
    """--force orders shutdown.return without a flag (exit 0); a UPS that cannot be reached
    within --timeout fails the run (exit 1)."""
    log = tmp_path / "order.log"
    config = toml(tmp_path, tmp_path / "killpower", f'[ups.options]\nkillpower_log = "{log}"')
    done = run_killpower("--config", str(config), "--force")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "rack: shutdown.return acknowledged"
    assert log.read_text().split()[1:] == ["shutdown.return"]
    (tmp_path / "ups.dev").unlink()
    failed = run_killpower("--config", str(config), "--force", "--timeout", "1")
    assert failed.returncode == 1
    assert failed.stdout.splitlines()[-1] == "rack: FAILED: the UPS was not reached within 1 s"


SEQUENCE_TOML = """\
[master]
listen = ["127.0.0.1:{port}"]
powerdown_flag = "{dir}/killpower"

[master.shutdown]
enabled = true
hostsync = 10
finaldelay = 1
shutdown_command = ["%(python)s", "-c", "import sys; open(sys.argv[1], 'w').write('down')",
                    "{dir}/shutdown-ran"]

[[ups]]
name = "rack"
driver = "replay"
port = "ups.dev"
[ups.options]
killpower_log = "{dir}/order.log"

[[user]]
name = "slave"
password = "slavepass"
upsmon = "secondary"

[[user]]
name = "admin"
password = "adminpass"
actions = ["set"]
"""


def test_end_of_sequence_with_real_processes() -> None:
    """The master as a daemon: OB+LB -> FSD pushed to a logged-in slave; the flag only after
    the slave has gone; the shutdown command FINALDELAY later; then ``upsagent killpower``
    (its own process) finds the flag, orders shutdown.return (after the flag was written)
    and removes the flag; a second run finds nothing to do."""
    text = SEQUENCE_TOML % {"python": sys.executable}
    with OurMaster("", toml=text, files={"ups.dev": "ups.status: OL\nbattery.charge: 90\n"}) \
            as master:
        flag, ran, order = (master.dir / "killpower", master.dir / "shutdown-ran",
                            master.dir / "order.log")

        def ask(*lines: str) -> bytes:
            with socket.create_connection(("127.0.0.1", master.port), timeout=5) as sock:
                sock.sendall("".join(f"{line}\n" for line in lines).encode() + b"LOGOUT\n")
                return b"".join(iter(lambda: sock.recv(65536), b""))

        wait_for(lambda: ask("GET VAR rack ups.status").startswith(b"VAR"), 15, "data")
        slave = socket.create_connection(("127.0.0.1", master.port), timeout=10)
        received = b""

        def read_until(marker: bytes) -> bytes:
            nonlocal received
            while marker not in received:
                data = slave.recv(4096)
                assert data, f"closed; got {received!r}\n{master.log()}"
                received += data
            return received

        try:
            slave.sendall(b"USERNAME slave\nPASSWORD slavepass\nLOGIN rack\nWATCH rack\n")
            read_until(b"OK WATCHING rack\n")
            assert ask("USERNAME admin", "PASSWORD adminpass",
                       'SET VAR rack ups.status "OB DISCHRG LB"') == b"OK\nOK\nOK\nOK Goodbye\n"
            read_until(b'NOTIFY rack VAR ups.status "FSD OB DISCHRG LB"\n')
            assert not flag.exists(), "the flag must wait for the slave to go"
        finally:
            slave.close()
        left = time.time()
        wait_for(flag.exists, 10, "the power-down flag")
        wait_for(ran.exists, 10, "the shutdown command")
        flag_written = flag.stat().st_mtime
        assert flag_written >= left - 1
        assert ran.stat().st_mtime - flag_written >= 0.9  # FINALDELAY 1 s
        assert flag.read_text() == MAGIC + "\n"
        log = master.log()
        assert "HOSTSYNC" not in log and "Power-down flag" in log
        done = run_killpower("--config", str(master.toml))
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.splitlines() == [
            f"upsagent killpower: {flag}: power-down flag set",
            "rack: shutdown.return acknowledged"]
        when, what = order.read_text().split()
        assert what == "shutdown.return" and float(when) >= flag_written
        assert not flag.exists()
        again = run_killpower("--config", str(master.toml))
        assert again.returncode == 3 and "no power-down flag; nothing done" in again.stdout
        assert order.read_text().count("shutdown.return") == 1


# -- the shutdown hook --------------------------------------------------------------------------

HOOK = Path(__file__).parent.parent / "contrib" / "systemd" / "upsagent-killpower"


@pytest.mark.parametrize("status", [0, 1, 3])
def test_shutdown_hook_runs_killpower(tmp_path: Path, status: int) -> None:
    """The hook calls ``upsagent killpower --config FILE`` and always exits 0 (a failed
    power-off must not stop the halt); without POWEROFF_WAIT it never reboots."""
    fake = tmp_path / "upsagent"
    calls = tmp_path / "calls"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexit {status}\n')
    fake.chmod(0o755)
    config = tmp_path / "upsagent.toml"
    config.write_text("")
    env = {"PATH": "/usr/bin:/bin", "UPSAGENT": str(fake), "UPSAGENT_CONFIG": str(config),
           "UPSAGENT_DEFAULTS": str(tmp_path / "none")}
    done = subprocess.run(["/bin/sh", str(HOOK), "poweroff"], env=env, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0
    assert calls.read_text() == f"killpower --config {config}\n"
    assert "rebooting" not in done.stdout


def test_nut_config_takes_upsmon_powerdownflag(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """With --nut-config the flag is upsmon.conf's POWERDOWNFLAG (the last one), so that a
    NUT upsmon primary's flag is honoured; refusals work the same."""
    (tmp_path / "ups.conf").write_text("[rack]\n driver = dummy-ups\n port = ups.dev\n")
    (tmp_path / "upsd.conf").write_text("")
    (tmp_path / "upsd.users").write_text("")
    os.chmod(tmp_path / "upsd.users", 0o600)
    flag = tmp_path / "killpower"
    (tmp_path / "upsmon.conf").write_text(
        f'POWERDOWNFLAG /nowhere\nPOWERDOWNFLAG "{flag}"\nMONITOR x 1 u p primary\n')
    assert killpower.upsmon_flag(str(tmp_path)) == str(flag)
    assert killpower.upsmon_flag(str(tmp_path / "none")) is None
    flag.write_text("hello\n")
    assert killpower.main(["--nut-config", str(tmp_path)]) == 3
    assert f"{flag}: the file does not hold the upsmon magic line" in capsys.readouterr().out
