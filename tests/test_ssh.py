"""The ``ssh`` backend against a real OpenSSH server (Debian's sshd) on 127.0.0.1: the
command run as an argv, the host key checked against known_hosts (never trusted on first
use), a wrong key, a wrong password, a command past its budget, a host that is down --
each a clear result, one connection, no retries."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.selectreactor import SelectReactor

from upsagent.config.managers import SshTargetConfig
from upsagent.hypervisors.base import build_backend
from upsagent.hypervisors.ssh import SshBackend
from upsagent.system.runner import Outcome, Result
from tests.sshd import SSHD, Sshd, free_port, recorder, sshd, start_sshd  # noqa: F401 (fixture)

pytestmark = pytest.mark.skipif(not os.path.exists(SSHD) or shutil.which("ssh-keygen") is None,
                                reason="needs Debian's openssh-server (make sysdeps)")


@pytest.fixture
def reactor() -> Iterator[Any]:
    r = SelectReactor()
    r.startRunning()
    yield r
    for call in r.getDelayedCalls():
        call.cancel()
    r.stop()
    for _ in range(3):
        r.iterate(0.01)


def wait(reactor: Any, d: Deferred[Result], bound: float = 20.0) -> Result:
    box: list[Any] = []
    d.addBoth(box.append)
    deadline = time.monotonic() + bound
    while not box and time.monotonic() < deadline:
        reactor.iterate(0.01)
    assert box, "no result in time"
    assert isinstance(box[0], Result), box[0]
    return box[0]


def target(sshd: Sshd, **changes: Any) -> SshTargetConfig:
    base = SshTargetConfig("nas", "127.0.0.1", sshd.user, str(sshd.known_hosts),
                           key_file=str(sshd.key_file), port=sshd.port)
    return replace(base, **changes)


def test_shutdown_runs_the_argv_on_the_remote_side(sshd: Sshd, reactor: Any,
                                                   tmp_path: Path) -> None:
    script, out = recorder(tmp_path)
    argv = (str(script), "a b", "it's", "$HOME", "; touch /tmp/x")
    backend = build_backend(target(sshd, command=argv), reactor, runner=None)  # type: ignore[arg-type]
    assert isinstance(backend, SshBackend)
    result = wait(reactor, backend.shutdown_host("nas"))
    assert result.outcome is Outcome.OK, result
    assert out.read_text().splitlines() == ["a b", "it's", "$HOME", "; touch /tmp/x", "--"]
    assert "stdout: recorded" in result.detail and "stderr: to-stderr" in result.detail


def test_exit_status_is_reported(sshd: Sshd, reactor: Any) -> None:
    backend = SshBackend(reactor, target(sshd, command=("sh", "-c", "exit 3")))
    result = wait(reactor, backend.shutdown_host("nas"))
    assert result.outcome is Outcome.FAILED and "exit status 3" in result.detail


def test_connect_checks_login_and_the_command(sshd: Sshd, reactor: Any, tmp_path: Path) -> None:
    script, out = recorder(tmp_path)
    ok = wait(reactor, SshBackend(reactor, target(sshd, command=(str(script),))).connect())
    assert ok.outcome is Outcome.OK and "found" in ok.detail, ok
    assert not out.exists()  # nothing was run
    missing = wait(reactor, SshBackend(reactor, target(
        sshd, command=("/nonexistent/poweroff",))).connect())
    assert missing.outcome is Outcome.FAILED and "not found" in missing.detail, missing


def test_unknown_host_key_is_refused_and_known_hosts_untouched(sshd: Sshd, reactor: Any,
                                                               tmp_path: Path) -> None:
    other = tmp_path / "known_hosts"
    other.write_text("[127.0.0.1]:1 " + sshd.host_pub + "\n")
    script, out = recorder(tmp_path)
    before = other.read_text()
    result = wait(reactor, SshBackend(reactor, target(
        sshd, known_hosts=str(other), command=(str(script),))).shutdown_host("nas"))
    assert result.outcome is Outcome.FAILED and "never trusted on first use" in result.detail
    assert other.read_text() == before and not out.exists()


def test_changed_host_key_is_refused(sshd: Sshd, reactor: Any, tmp_path: Path) -> None:
    wrong = tmp_path / "known_hosts"
    # another ed25519 key under the server's name
    fake = tmp_path / "k"
    import subprocess
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(fake)], check=True)
    kind, blob = fake.with_suffix(".pub").read_text().split()[:2]
    wrong.write_text(f"[127.0.0.1]:{sshd.port} {kind} {blob}\n")
    script, out = recorder(tmp_path)
    result = wait(reactor, SshBackend(reactor, target(
        sshd, known_hosts=str(wrong), command=(str(script),))).shutdown_host("nas"))
    assert result.outcome is Outcome.FAILED and "differs" in result.detail, result
    assert not out.exists()


def test_wrong_password_is_refused(sshd: Sshd, reactor: Any, tmp_path: Path) -> None:
    script, out = recorder(tmp_path)
    result = wait(reactor, SshBackend(reactor, target(
        sshd, key_file=None, password="not-the-password",
        command=(str(script),))).shutdown_host("nas"))
    assert result.outcome is Outcome.FAILED and "refused" in result.detail, result
    assert not out.exists()


def test_command_past_its_budget_times_out(sshd: Sshd, reactor: Any) -> None:
    backend = SshBackend(reactor, target(sshd, command=("sleep", "30")), budget=1.5)
    started = time.monotonic()
    result = wait(reactor, backend.shutdown_host("nas"))
    assert result.outcome is Outcome.TIMED_OUT and "1.5 s" in result.detail, result
    assert time.monotonic() - started < 5


def test_the_records_budget_bounds_the_command(sshd: Sshd, reactor: Any) -> None:
    """Built from its record, the backend cuts the command at the record's budget (the
    host's shutdown_duration, set by SlaveConfig.managers())."""
    backend = build_backend(target(sshd, command=("sleep", "30"), budget=1.5), reactor,
                            runner=None)  # type: ignore[arg-type]
    result = wait(reactor, backend.shutdown_host("nas"))
    assert result.outcome is Outcome.TIMED_OUT and "after 1.5 s" in result.detail, result


def test_host_down_is_unreachable_once(reactor: Any, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    port = free_port()  # nothing listens there
    backend = SshBackend(reactor, SshTargetConfig("nas", "127.0.0.1", "u", str(known),
                                                  password="x", port=port))
    result = wait(reactor, backend.shutdown_host("nas"))
    assert result.outcome is Outcome.UNREACHABLE and "refused" in result.detail.lower()
    assert reactor.getDelayedCalls() == []  # no retry scheduled


def test_connect_timeout_against_a_silent_host(reactor: Any, tmp_path: Path) -> None:
    import socket
    known = tmp_path / "known_hosts"
    known.write_text("")
    with socket.socket() as silent:  # accepts (backlog) but never speaks SSH
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        backend = SshBackend(reactor, SshTargetConfig(
            "nas", "127.0.0.1", "u", str(known), password="x",
            port=silent.getsockname()[1]), connect_timeout=1.0)
        result = wait(reactor, backend.shutdown_host("nas"))
    assert result.outcome is Outcome.TIMED_OUT and "no login within 1 s" in result.detail


def test_cancel_cuts_the_command(sshd: Sshd, reactor: Any) -> None:
    d = SshBackend(reactor, target(sshd, command=("sleep", "30"))).shutdown_host("nas")
    reactor.callLater(1.0, d.cancel)
    result = wait(reactor, d)
    assert result.outcome is Outcome.CANCELLED


def test_a_string_command_is_refused(sshd: Sshd, reactor: Any) -> None:
    backend = SshBackend(reactor, target(sshd))
    with pytest.raises(TypeError):
        backend.run("poweroff")  # type: ignore[arg-type]


# -- upsagent test-ssh and check() ---------------------------------------------------------

def _config(tmp_path: Path, sshd: Sshd, command: str, *, known: Path | None = None,
            auth: str | None = None) -> Path:
    """An upsagent.toml with one ssh host "nas" pointing at ``sshd``."""
    auth = auth or f'key_file = "{sshd.key_file}"'
    path = tmp_path / "upsagent.toml"
    path.write_text(
        '[[slave.monitor]]\nups = "ups1@localhost"\nuser = "mon"\npassword = "pw"\n'
        '[[host]]\nname = "nas"\nbackend = "ssh"\nshutdown_after = 60\n'
        f'[host.ssh]\naddress = "127.0.0.1"\nport = {sshd.port}\nuser = "{sshd.user}"\n'
        f'{auth}\nknown_hosts = "{known or sshd.known_hosts}"\ncommand = [{command}]\n')
    path.chmod(0o600)
    return path


def run_test_ssh(*args: str) -> "subprocess.CompletedProcess[str]":
    """``upsagent test-ssh ARGS`` as a user runs it (not itself a test: no ``test_`` name)."""
    return subprocess.run([sys.executable, "-m", "upsagent", "test-ssh", *args],
                          capture_output=True, text=True, timeout=60)




def test_test_ssh_passes_and_runs_nothing(sshd: Sshd, tmp_path: Path) -> None:
    script, out = recorder(tmp_path)
    config = _config(tmp_path, sshd, f'"{script}", "now"')
    result = run_test_ssh("--config", str(config), "nas")
    assert result.returncode == 0, result.stderr
    assert "found there" in result.stdout and "nothing was shut down" in result.stdout
    assert not out.exists()


def test_test_ssh_errors_have_their_exit_status(sshd: Sshd, tmp_path: Path) -> None:
    script, out = recorder(tmp_path)
    missing = run_test_ssh("--config", str(_config(tmp_path, sshd, '"/nonexistent/poweroff"')),
                       "nas")
    assert missing.returncode == 6 and "not found there" in missing.stderr, missing
    other = tmp_path / "other_known_hosts"
    other.write_text("[127.0.0.1]:1 " + sshd.host_pub + "\n")
    key = run_test_ssh("--config", str(_config(tmp_path, sshd, f'"{script}"', known=other)),
                   "nas")
    assert key.returncode == 4 and "never trusted on first use" in key.stderr, key
    pw = tmp_path / "pw"
    pw.write_text("wrong-password\n")
    pw.chmod(0o600)
    login = run_test_ssh("--config", str(_config(tmp_path, sshd, f'"{script}"',
                                             auth=f'password_file = "{pw}"')), "nas")
    assert login.returncode == 5 and "refused" in login.stderr, login
    assert "wrong-password" not in login.stderr + login.stdout
    assert not out.exists()


def test_test_ssh_unreachable_and_unknown_host(tmp_path: Path) -> None:
    fake = Sshd(free_port(), "nobody", tmp_path / "none", tmp_path / "kh", "", None,  # type: ignore[arg-type]
                tmp_path / "log")
    (tmp_path / "kh").write_text("")
    config = _config(tmp_path, fake, '"/sbin/poweroff"', auth='password = "x"')
    down = run_test_ssh("--config", str(config), "nas")
    assert down.returncode == 3 and "refused" in down.stderr.lower(), down
    unknown = run_test_ssh("--config", str(config), "nope")
    assert unknown.returncode == 1 and "ssh hosts: nas" in unknown.stderr, unknown


def test_check_reports_problems_as_lines(sshd: Sshd, reactor: Any, tmp_path: Path) -> None:
    script, out = recorder(tmp_path)
    good = SshBackend(reactor, target(sshd, command=(str(script),)))
    bad = SshBackend(reactor, target(sshd, command=("/nonexistent/poweroff",)))
    box: dict[str, Any] = {}
    good.check(["nas"]).addBoth(lambda v: box.setdefault("good", v))
    bad.check(["nas"]).addBoth(lambda v: box.setdefault("bad", v))
    deadline = time.monotonic() + 20
    while len(box) < 2 and time.monotonic() < deadline:
        reactor.iterate(0.01)
    assert box["good"] == [] and len(box["bad"]) == 1, box
    assert box["bad"][0].startswith("host nas: ") and "not found" in box["bad"][0]
    assert not out.exists()
