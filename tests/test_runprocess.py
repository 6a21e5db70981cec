"""Tests for upsagent.system.runprocess.

The timer discipline is tested with a fake child and ``Clock`` (no real time).  What only a
real kernel can show (process groups, signals, exec errors, pipes) is tested with real
children (``sys.executable -c ...``), each test on a fresh, unshared epoll reactor that runs
until the test's Deferred fires or a hard bound passes.  Budgets and grace periods there are
0.5 s, so a few of those tests take that long.
"""

from __future__ import annotations

import errno
import os
import signal
import stat
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
import twisted
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.epollreactor import EPollReactor
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, Logger
from twisted.python.failure import Failure

from upsagent.system import runprocess
from upsagent.system.runprocess import ProcessResult, ProcessRunner

T = TypeVar("T")
PY = sys.executable


# -- fakes for the timer logic ---------------------------------------------------------

class FakeChild:
    """A started command: records signals and whether our pipe ends were closed."""

    def __init__(self, proto: ProcessProtocol, argv: Sequence[str],
                 env: Mapping[str, str]) -> None:
        self.proto, self.argv, self.env = proto, argv, env
        self.pid: int | None = 4242
        self.signals: list[int] = []
        self.stdin_closed = self.lost = False
        proto.makeConnection(self)  # type: ignore[arg-type, no-untyped-call]

    def signal_group(self, signum: int) -> None:
        self.signals.append(signum)

    def closeStdin(self) -> None:
        self.stdin_closed = True

    def loseConnection(self) -> None:
        self.lost = True

    def exit(self, code: int | None = 0, sig: int | None = None) -> None:
        """The command ends: reaped, then its pipes close."""
        reason = ended(ProcessDone(0) if code == 0  # type: ignore[no-untyped-call]
                       else ProcessTerminated(code, sig))  # type: ignore[no-untyped-call]
        self.proto.processExited(reason)
        self.proto.processEnded(reason)


def ended(error: BaseException) -> Failure:
    return Failure(error)  # type: ignore[no-untyped-call]


def fake_runner(grace: float = 2.0, max_output: int = 100,
                ) -> tuple[ProcessRunner, Clock, list[FakeChild], list[dict[str, Any]]]:
    clock = Clock()
    children: list[FakeChild] = []
    events: list[dict[str, Any]] = []

    def spawn(proto: ProcessProtocol, argv: Sequence[str],
              env: Mapping[str, str]) -> FakeChild:
        children.append(FakeChild(proto, argv, env))
        return children[-1]

    runner = ProcessRunner(clock, grace=grace, max_output=max_output, spawn=spawn)
    runner.log = Logger(observer=cast(ILogObserver, events.append))
    return runner, clock, children, events


def fired(d: Deferred[T]) -> T:
    box: list[T | Failure] = []

    def keep(outcome: T | Failure) -> T | Failure:
        box.append(outcome)
        return outcome

    d.addBoth(keep)
    assert box, "the Deferred has not fired"
    assert not isinstance(box[0], Failure), box[0]
    return box[0]


def test_budget_term_then_kill_and_all_timers_cancelled() -> None:
    """TERM to the group exactly at the end of the budget, KILL after the grace period;
    when the process ends, no timer of it is left."""
    runner, clock, children, _ = fake_runner(grace=2.0)
    d = runner.run(["stubborn"], 5.0)
    [child] = children
    clock.advance(4.9)
    assert child.signals == []
    clock.advance(0.1)
    assert child.signals == [signal.SIGTERM]
    clock.advance(1.9)
    assert child.signals == [signal.SIGTERM]
    clock.advance(0.1)
    assert child.signals == [signal.SIGTERM, signal.SIGKILL]
    clock.advance(1.0)
    child.exit(None, signal.SIGKILL)
    result = fired(d)
    assert (result.timed_out, result.killed, result.stopped) == (True, True, False)
    assert (result.exit_code, result.signal, result.duration) == (None, 9, 8.0)
    assert not result.ok
    assert clock.getDelayedCalls() == []
    assert runner.running == 0


def test_ends_before_budget_never_signalled() -> None:
    """A command that exits by itself is never signalled and leaves no timer; stdin is
    closed at once."""
    runner, clock, children, _ = fake_runner()
    d = runner.run(["quick", "arg"], 5.0)
    [child] = children
    assert child.stdin_closed
    clock.advance(1.5)
    child.exit(0)
    clock.advance(10)
    assert child.signals == []
    result = fired(d)
    assert result.ok and result.exit_code == 0 and result.duration == 1.5
    assert result.argv == ("quick", "arg") and result.name == "quick"
    assert clock.getDelayedCalls() == []


def test_term_honoured_cancels_kill() -> None:
    """A command that ends on TERM gets no KILL; a non-zero exit is reported as such."""
    runner, clock, children, _ = fake_runner()
    d = runner.run(["polite"], 1.0)
    clock.advance(1.0)
    children[0].exit(None, signal.SIGTERM)
    clock.advance(10)
    result = fired(d)
    assert children[0].signals == [signal.SIGTERM]
    assert (result.signal, result.timed_out, result.killed) == (15, True, False)
    assert clock.getDelayedCalls() == []
    d2 = runner.run(["failing"], None)
    children[1].exit(3)
    assert fired(d2).exit_code == 3 and not fired(d2).ok


def test_abandon_when_kill_does_not_end_it() -> None:
    """``grace`` after KILL: our pipe ends are closed; a command whose process has exited
    then ends normally, one whose process survived KILL is given up with an error."""
    runner, clock, children, _ = fake_runner(grace=1.0)
    held = runner.run(["exited-but-pipe-held"], 1.0)
    stuck = runner.run(["unkillable"], 1.0)
    children[0].proto.processExited(ended(ProcessDone(0)))  # type: ignore[no-untyped-call]
    clock.pump([1.0, 1.0, 0.9])  # TERM, KILL, not yet abandoned
    assert not children[0].lost and not children[1].lost
    clock.advance(0.1)
    assert children[0].lost and children[1].lost
    assert not held.called
    children[0].proto.processEnded(ended(ProcessDone(0)))  # type: ignore[no-untyped-call]
    assert fired(held).exit_code == 0 and fired(held).timed_out
    result = fired(stuck)
    assert result.error == "did not end after SIGKILL" and result.killed
    children[1].exit(None, signal.SIGKILL)  # much later: ignored
    assert clock.getDelayedCalls() == [] and runner.running == 0


def test_cancel_stops_the_command() -> None:
    """Cancelling the Deferred sends TERM (KILL after grace) and fails it with
    CancelledError; the later end of the process is quietly absorbed."""
    runner, clock, children, _ = fake_runner()
    d = runner.run(["sleeper"], 60)
    d.cancel()
    assert children[0].signals == [signal.SIGTERM]
    failures: list[Failure] = []
    d.addErrback(failures.append)
    assert isinstance(failures[0].value, CancelledError)
    clock.advance(2.0)
    assert children[0].signals == [signal.SIGTERM, signal.SIGKILL]
    children[0].exit(None, signal.SIGKILL)
    assert clock.getDelayedCalls() == [] and runner.running == 0


def test_stop_all_fake() -> None:
    """stop_all TERMs every command, their results say ``stopped``, and its Deferred fires
    when the last one has ended."""
    runner, clock, children, _ = fake_runner()
    results = [runner.run(["a"], None), runner.run(["b"], 30)]
    done = runner.stop_all()
    assert [c.signals for c in children] == [[signal.SIGTERM]] * 2
    children[0].exit(None, signal.SIGTERM)
    assert not done.called
    children[1].exit(None, signal.SIGTERM)
    assert done.called
    assert all(fired(d).stopped and not fired(d).timed_out for d in results)
    assert clock.getDelayedCalls() == []


def test_spawn_failure_is_a_result() -> None:
    """A spawn that raises OSError fires the Deferred with the error, never raises."""
    clock = Clock()

    def spawn(*args: object) -> FakeChild:
        raise PermissionError(errno.EACCES, "Permission denied")

    result = fired(ProcessRunner(clock, spawn=spawn).run(["/secret/tool"], 5))
    assert (result.errno, result.error) == (errno.EACCES, "/secret/tool: Permission denied")
    assert not result.ok and result.exit_code is None and clock.getDelayedCalls() == []


def test_output_bounded_and_logged_by_line() -> None:
    """Each stream logs its first max_output bytes line by line and keeps the last
    max_output bytes; the bytes dropped are counted; the environment is never logged."""
    runner, _, children, events = fake_runner(max_output=10)
    d = runner.run(["chatty"], None, env={"API_TOKEN": "s3cret"}, name="notify")
    proto = children[0].proto
    proto.childDataReceived(1, b"one\ntw")
    proto.childDataReceived(1, b"o\r\nthree\nfour\n")
    proto.childDataReceived(2, b"oops")
    children[0].exit(0)
    result = fired(d)
    assert (result.stdout, result.stdout_dropped) == (b"hree\nfour\n", 10)
    assert (result.stderr, result.stderr_dropped) == (b"oops", 0)
    lines = [(e["stream"], e["line"]) for e in events if "line" in e]
    assert lines == [("stdout", "one"), ("stdout", "two"), ("stdout", "t"),
                     ("stderr", "oops")]
    assert all(e["name"] == "notify" for e in events)
    assert any(e.get("total") == 20 for e in events)
    assert "s3cret" not in repr(events)
    assert children[0].env["API_TOKEN"] == "s3cret"
    assert children[0].env["PATH"] == os.environ["PATH"]


def test_argv_checked() -> None:
    """argv must be a list of strings: a string (shell command) or a non-string item is
    refused with TypeError; empty argv, NUL bytes and a non-positive budget with
    ValueError."""
    runner, _, children, _ = fake_runner()
    with pytest.raises(TypeError, match="not a string"):
        runner.run("shutdown -h now", 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        runner.run(b"/sbin/poweroff", 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        runner.run(["/sbin/poweroff", 1], 5)  # type: ignore[list-item]
    for argv, budget in ([], 5), (["a\0b"], 5), (["ok"], 0):
        with pytest.raises(ValueError):
            runner.run(argv, budget)
    assert children == []


# -- real processes --------------------------------------------------------------------

def drive(start: Callable[[ProcessRunner], Deferred[T]], *, grace: float = 0.5,
          max_output: int = 64 * 1024, bound: float = 5.0) -> T:
    """Run ``start(runner)`` on a fresh reactor until its Deferred fires (at most ``bound``
    seconds); check that the runner left no timer behind."""
    reactor = EPollReactor()  # type: ignore[no-untyped-call]
    runner = ProcessRunner(reactor, grace=grace, max_output=max_output)
    box: list[object] = []
    limit = reactor.callLater(bound, reactor.stop)

    def finish(outcome: object) -> None:
        box.append(outcome)
        box.append([c for c in reactor.getDelayedCalls() if c is not limit])
        reactor.stop()

    reactor.callWhenRunning(lambda: start(runner).addBoth(finish))
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        reactor.run()  # installs SIGCHLD handling, needed to reap the children
    finally:  # the reactor leaves its SIGINT/SIGTERM handlers behind: put pytest's back
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    assert box, f"did not finish within {bound} s"
    outcome, leftover = box
    if isinstance(outcome, Failure):
        outcome.raiseException()
    assert leftover == [] and runner.running == 0
    return cast(T, outcome)


def py(code: str) -> list[str]:
    return [PY, "-c", code]


def gone(pid: int, wait: float = 2.0) -> bool:
    """Whether ``pid`` has ended (a zombie nobody reaped yet counts as ended)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except (ProcessLookupError, FileNotFoundError):
            return True
        time.sleep(0.02)
    return False


SLEEP = "import time; time.sleep(10)"
#: how a real command becomes a session leader: Twisted's posix_spawn step overridden (on
#: the tested Twisted versions) or the public spawnProcess through setsid(1) (elsewhere)
SPAWN_MODES = pytest.mark.parametrize("session_spawn", [True, False],
                                      ids=["posix-spawn-setsid", "setsid-1"], indirect=True)


@pytest.fixture
def session_spawn(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Run the test with the spawn mode of its parameter."""
    mode: bool = request.param
    if mode and not runprocess._tested(twisted.__version__):
        pytest.skip(f"Twisted {twisted.__version__} is not a tested version")
    monkeypatch.setattr(runprocess, "SESSION_SPAWN", mode)
    return mode


TRAP_TERM = ("import signal, time\n"
             "signal.signal(signal.SIGTERM, lambda *a: print('TERM', flush=True))\n"
             "print('ready', flush=True)\n"
             "while True: time.sleep(1)\n")


@SPAWN_MODES
def test_real_exit_output_env_and_session(session_spawn: bool) -> None:
    """A real child: exit code, stdout and stderr apart, env passed, and the child leads
    its own session and process group (guards the posix_spawn setsid override, and the
    setsid(1) fallback)."""
    code = ("import os, sys; print(os.environ['UPSNAME']); "
            "print(os.getpid(), os.getpgid(0), os.getsid(0)); "
            "sys.stderr.write('warned'); sys.exit(0)")
    result = drive(lambda r: r.run(py(code), 5, env={"UPSNAME": "ups1"}))
    assert result.ok and result.exit_code == 0 and result.signal is None
    name, ids = result.stdout.decode().splitlines()
    pid, pgid, sid = ids.split()
    assert name == "ups1" and pid == pgid == sid and int(pid) != os.getpid()
    assert result.stderr == b"warned"
    assert 0 < result.duration < 5


def test_real_nonzero_exit() -> None:
    """A non-zero exit code is reported and is not ok."""
    result = drive(lambda r: r.run(py("raise SystemExit(3)"), 5))
    assert (result.exit_code, result.signal, result.ok) == (3, None, False)


def test_real_output_truncated() -> None:
    """200,002 bytes of output with max_output 1000: the last 1000 bytes are kept, the
    rest counted as dropped."""
    code = "import sys; sys.stdout.write('x' * 199999 + 'END')"
    result = drive(lambda r: r.run(py(code), 5), max_output=1000)
    assert len(result.stdout) == 1000 and result.stdout.endswith(b"xEND")
    assert result.stdout_dropped == 200_002 - 1000
    assert result.ok


@SPAWN_MODES
def test_real_budget_term_honoured(session_spawn: bool) -> None:
    """At the end of the budget the sleeper gets TERM and dies of it; no KILL."""
    result = drive(lambda r: r.run(py(SLEEP), 0.5))
    assert (result.signal, result.timed_out, result.killed) == (signal.SIGTERM, True, False)
    assert 0.5 <= result.duration < 1.0


def test_real_term_ignored_then_kill() -> None:
    """A child that traps TERM is killed with KILL after the grace period."""
    result = drive(lambda r: r.run(py(TRAP_TERM), 0.5))
    assert result.stdout == b"ready\nTERM\n"
    assert (result.signal, result.timed_out, result.killed) == (signal.SIGKILL, True, True)
    assert 1.0 <= result.duration < 1.5


@SPAWN_MODES
def test_real_grandchildren_killed_with_the_group(session_spawn: bool) -> None:
    """TERM goes to the whole group: the sleeper the command started dies too."""
    code = ("import subprocess, sys, time\n"
            f"p = subprocess.Popen([sys.executable, '-c', {SLEEP!r}])\n"
            "print(p.pid, flush=True)\n"
            "time.sleep(10)\n")
    result = drive(lambda r: r.run(py(code), 0.5))
    assert result.signal == signal.SIGTERM and result.timed_out
    assert gone(int(result.stdout))


def test_real_budget_covers_what_holds_the_output() -> None:
    """A command that exits at once but leaves a sleeper holding its stdout is not over:
    at the end of the budget the group (the sleeper) gets TERM, then the result comes."""
    code = ("import subprocess, sys\n"
            f"p = subprocess.Popen([sys.executable, '-c', {SLEEP!r}])\n"
            "print(p.pid, flush=True)\n")
    result = drive(lambda r: r.run(py(code), 0.5))
    assert (result.exit_code, result.timed_out, result.killed) == (0, True, False)
    assert gone(int(result.stdout)) and not result.ok


@SPAWN_MODES
def test_real_found_on_the_childs_path(tmp_path: Path, session_spawn: bool) -> None:
    """argv[0] is looked up on the PATH given to the child, not on ours."""
    tool = tmp_path / "upsagent-test-tool"
    tool.write_text('#!/bin/sh\necho "$0 $1"\n')
    tool.chmod(0o755)
    result = drive(lambda r: r.run([tool.name, "-x"], 5, env={"PATH": str(tmp_path)}))
    assert result.ok and result.stdout == f"{tool} -x\n".encode()


@SPAWN_MODES
def test_real_cannot_start(tmp_path: Path, session_spawn: bool) -> None:
    """Not found (ENOENT) and not executable (EACCES) are results, not exceptions."""
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(stat.S_IRUSR | stat.S_IWUSR)
    runner = ProcessRunner(EPollReactor())  # type: ignore[no-untyped-call]
    missing = fired(runner.run(["no-such-command-upsagent", "x"], 5))
    assert missing.errno == errno.ENOENT and "No such file" in (missing.error or "")
    for argv0 in str(script), str(tmp_path):
        denied = fired(runner.run([argv0], 5))
        assert denied.errno == errno.EACCES and not denied.ok
    assert runner.running == 0


def test_real_stop_all() -> None:
    """stop_all on agent shutdown: the sleeper dies of TERM, the TERM-trapper of KILL
    after the grace period; both results say ``stopped``."""
    results: list[ProcessResult] = []

    def start(runner: ProcessRunner) -> Deferred[None]:
        for argv in py(SLEEP), py(TRAP_TERM):
            runner.run(argv, None).addCallback(results.append)
        stopped: Deferred[None] = Deferred()
        clock: Any = runner.reactor
        clock.callLater(0.3, lambda: runner.stop_all().chainDeferred(stopped))
        return stopped

    drive(start)
    plain, trapper = sorted(results, key=lambda r: r.killed)
    assert (plain.signal, plain.stopped, plain.killed) == (signal.SIGTERM, True, False)
    assert (trapper.signal, trapper.stopped, trapper.killed) == (signal.SIGKILL, True, True)
    assert trapper.stdout == b"ready\nTERM\n" and not trapper.timed_out
