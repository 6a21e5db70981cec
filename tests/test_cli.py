"""Tests for the command line: --help and --version everywhere, the demo, no secrets in logs."""

from __future__ import annotations

import io
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from upsagent import __version__
from upsagent.cli.logs import _journal_attached
from upsagent.cli.main import SUBCOMMANDS, main
from tests.ourmaster import OurMaster, wait_for


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "upsagent", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_version_and_usage(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the version; --help lists every subcommand; junk is a usage error."""
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"upsagent {__version__}\n"
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in SUBCOMMANDS)
    assert main(["frobnicate"]) == 2
    assert "unknown subcommand 'frobnicate'" in capsys.readouterr().err
    assert main([]) == 2


@pytest.mark.parametrize("name", sorted(set(SUBCOMMANDS) - {"query", "rw", "cmd"}))
def test_every_subcommand_has_help(name: str) -> None:
    """Every subcommand answers --help with a usage text and exit status 0."""
    result = run(name, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout.lower()


@pytest.mark.parametrize("name", ["query", "rw", "cmd"])
def test_query_tools_have_help(name: str) -> None:
    """The NUT-twin tools take -h as upsc/upsrw/upscmd do."""
    result = run(name, "-h")
    assert result.returncode == 0
    assert "usage" in (result.stdout + result.stderr).lower()


def test_master_reports_a_broken_config(tmp_path: Path) -> None:
    """A broken configuration stops the master with a message naming file and key."""
    (tmp_path / "ups.conf").write_text("[dummy]\n  driver = dummy-ups\n  port = x.dev\n")
    (tmp_path / "upsd.conf").write_text("MAXCONN lots\n")
    (tmp_path / "upsd.users").write_text("")
    (tmp_path / "upsd.users").chmod(0o600)
    result = run("master", "--nut-config", str(tmp_path), timeout=30)
    assert result.returncode == 1
    assert "MAXCONN" in result.stderr and "upsd.conf" in result.stderr


def test_passwords_never_logged() -> None:
    """Even with -D, neither right nor wrong passwords reach the log."""
    with OurMaster("[dummy]\n  driver = dummy-ups\n  port = ups.dev\n",
                   files={"ups.dev": "ups.status: OL\nups.load: 3\n"}, args=("-D",)) as m:
        wait_for(lambda: "has data" in m.log(), 15, "the driver")
        for password in ("adminpass", "Wr0ngSecret"):
            with socket.create_connection(("127.0.0.1", m.port), timeout=5) as sock:
                sock.sendall(f"USERNAME admin\nPASSWORD {password}\n"
                             "SET VAR dummy ups.load 7\nINSTCMD dummy load.off\n"
                             "LOGOUT\n".encode())
                while sock.recv(4096):
                    pass
        wait_for(lambda: "Set variable" in m.log(), 10, "the SET to be logged")
        log = m.log()
        assert "adminpass" not in log and "Wr0ngSecret" not in log


def test_journal_detection(tmp_path: object) -> None:
    """The <N> priority prefix is used only when JOURNAL_STREAM names our stderr."""
    assert not _journal_attached(io.StringIO())


def test_demo_runs() -> None:
    """`upsagent demo` shows the UPS, plays the power cut and stops everything."""
    result = run("demo", "--seconds", "25", timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "demo: Demo UPS (replayed)" in out
    assert "ups.status=OB DISCHRG LB" in out and "ups.status=OL CHRG" in out
    assert "NUMLOGINS demo 1" in out
    assert "host1  enter maintenance: UPS1 on battery for 60 s" in out


def test_slave_help_says_where_a_dry_run_keeps_its_state() -> None:
    """--help tells that a dry run writes its own state file, not the real agent's."""
    from upsagent.cli.slave import build_parser

    text = " ".join(build_parser().format_help().split())
    assert "in a dry run that path with .dry-run appended" in text
    assert "unless --state-file names one), never to the real agent's" in text
