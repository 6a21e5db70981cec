# -*- test-case-name: tests.test_runprocess -*-
"""External commands with a time budget: operator scripts, the shutdown command, NOTIFYCMD.

One :class:`ProcessRunner` runs them all, with the discipline of buildbot-worker's
``runprocess.py``:

* **argv, never a shell string**: ``run()`` refuses a ``str`` with a ``TypeError``; whoever
  wants a shell says so (``["/bin/sh", "-c", ...]``).
* **own session, own process group**: the command leads a new session, so its process group
  id is its pid and what it starts (unless that leaves on purpose) is in the group.
  Signals go to the whole group, also after the command itself exited while something it
  started still holds its output (the group id is kept for that; a group with members
  keeps its number from being reused).
* **budget**: after ``budget`` seconds SIGTERM goes to the group, and SIGKILL ``grace``
  seconds later if the command has not ended.  A command that ends by itself before its
  budget is never signalled, nor is what it left in its group with its output closed.
  ``budget=None``: no limit.
* **one place for timers**: a command's timers live in one dict and ``_Command._finish`` is
  the only place that ends them, whatever ended the command (exit, signal, cancel, stop).
* **never hangs**: ``grace`` seconds after SIGKILL we close our ends of its pipes (something
  that left the group may hold them; the exit status then arrives), and a command whose
  process still has not exited (stuck in the kernel) is given up with an error.
* **never raises for the command's sake**: a command that cannot be started (ENOENT,
  EACCES, no more processes) fires its Deferred with a result that says why.
* **output**: stdout and stderr are kept apart.  Each is logged line by line with the
  command's name, up to ``max_output`` bytes per stream (a chatty child cannot flood the
  log); the result keeps the *last* ``max_output`` bytes of each (where scripts say what
  went wrong) and counts what it dropped, so memory is about twice ``max_output`` per
  stream.  stdin is closed at once.  The environment is never logged (it may hold
  secrets); ``env`` adds to the agent's own, as upsmon does for NOTIFYCMD's ``NOTIFYTYPE``.

How the child becomes a session leader
--------------------------------------
``reactor.spawnProcess`` has no pre-exec hook; on POSIX it just builds a
``twisted.internet.process.Process``, which since Twisted 23 starts the child with
``os.posix_spawnp()`` unless a working directory or uid is given, so overriding
``Process._setupChild`` (buildbot-worker's ``ProcGroupProcess``: ``os.setpgid(0, 0)``) is
silently skipped there.  :class:`_SessionProcess` overrides Twisted's posix_spawn step
instead and adds ``setsid=True`` (glibc's ``POSIX_SPAWN_SETSID``, glibc >= 2.26): the child
leads a new session before exec, no wrapper process sits in between (the pid we signal is
the command's own), nothing runs in a forked copy of our interpreter, and exec errors reach
us as ``OSError`` with the real errno.  Rejected: a ``setsid(1)`` or Python trampoline (exec
errors become exit codes), ``os.setpgid(pid, pid)`` from the parent (races with the exec).
A session, not just a group, also detaches the command from the agent's terminal: Ctrl-C
reaches the agent only, which stops its commands with the same discipline.  Right after
spawning we check ``os.getsid(pid) == pid`` and log an error should a Twisted upgrade ever
bypass the override; the tests check it too.

That override uses Twisted internals (``Process._trySpawnInsteadOfFork`` and the helpers
``_listOpenFDs`` and ``_getFileActions`` of ``twisted.internet.process``), so it is used only
on the Twisted versions the tests run it on (:data:`TESTED_TWISTED`, setup.cfg's
``install_requires``).  On any other version commands are started with the public
``reactor.spawnProcess`` through ``setsid(1)`` (util-linux), which makes itself a session
leader and execs the command in place (same pid), with these losses: exec errors other than
"not found" and "not executable" (checked before) come back as exit codes 126/127, the
command's ``argv[0]`` is its full path, a signal sent before ``setsid`` has run goes to the
command alone, and the group of a command reaped before ``spawnProcess`` returned is not
signalled.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import twisted
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IDelayedCall, IProcessTransport, IReactorTime
from twisted.internet.process import Process
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

__all__ = ["ProcessResult", "ProcessRunner"]

_log = Logger()

#: the Twisted versions :class:`_SessionProcess` is tested on: at least the first, below the
#: second (keep in step with ``install_requires`` in setup.cfg; tests/test_fastpath.py checks)
TESTED_TWISTED: tuple[tuple[int, int], tuple[int, int]] = ((23, 10), (27, 0))


def _tested(version: str) -> bool:
    match = re.match(r"(\d+)\.(\d+)", version)
    return match is not None and (
        TESTED_TWISTED[0] <= (int(match.group(1)), int(match.group(2))) < TESTED_TWISTED[1])


#: start commands with :class:`_SessionProcess` (else through setsid(1), see above)
SESSION_SPAWN = _tested(twisted.__version__) and hasattr(Process, "_trySpawnInsteadOfFork")


class _Child(Protocol):
    """What the runner needs from a started command (a real process or a test fake)."""

    @property
    def pid(self) -> int | None: ...

    def signal_group(self, signum: int) -> None: ...
    def closeStdin(self) -> None: ...
    def loseConnection(self) -> None: ...


#: starts ``argv`` with the environment given, for the protocol given
Spawner = Callable[[ProcessProtocol, Sequence[str], Mapping[str, str]], _Child]


class _SessionProcess(Process):
    """``reactor.spawnProcess(..., usePTY=False)``, with the child a new session's leader."""

    def __init__(self, reactor: Any, proto: ProcessProtocol, executable: str,
                 argv: Sequence[str], env: Mapping[str, str]) -> None:
        super().__init__(  # type: ignore[no-untyped-call]
            reactor, executable, list(argv), dict(env), None, proto)

    def _trySpawnInsteadOfFork(self, path: object, uid: object, gid: object,
                               executable: str, args: list[str],
                               environment: dict[str, str], kwargs: dict[str, Any]) -> bool:
        """Twisted's own posix_spawnp step (``Process._trySpawnInsteadOfFork``) + setsid."""
        from twisted.internet.process import _getFileActions, _listOpenFDs

        assert path is None and uid is None and gid is None
        fd_state = []
        for fd in _listOpenFDs():  # type: ignore[no-untyped-call]
            try:
                fd_state.append((fd, bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)))
            except OSError:
                pass
        ignored = [s for s in range(1, signal.NSIG) if signal.getsignal(s) == signal.SIG_IGN]
        self.pid = os.posix_spawnp(
            executable, args, environment, setsid=True, setsigdef=ignored,
            file_actions=_getFileActions(fd_state, kwargs["fdmap"],
                                         doClose=os.POSIX_SPAWN_CLOSE,
                                         doDup2=os.POSIX_SPAWN_DUP2))
        self.status = -1
        # Twisted forgets ``pid`` once the command is reaped, which can happen before
        # __init__ returns; its group may live on, and is signalled until it has ended.
        self.pgid: int = self.pid
        if os.getsid(self.pid) != self.pid:  # not reaped yet: a zombie at worst
            _log.error("{exe} (pid {pid}) is not a session leader: only it, not what it "
                       "starts, can be signalled", exe=executable, pid=self.pid)
        return True

    def signal_group(self, signum: int) -> None:
        """Send ``signum`` to the process group the command leads."""
        os.killpg(self.pgid, signum)


class _SetsidChild:
    """A command started with the public ``spawnProcess`` through ``setsid(1)``."""

    def __init__(self, transport: IProcessTransport) -> None:
        self._transport = transport
        #: the group the command leads (None: reaped before spawnProcess returned)
        self.pgid: int | None = transport.pid

    @property
    def pid(self) -> int | None:
        """The command's pid (None once reaped)."""
        pid: int | None = self._transport.pid
        return pid

    def signal_group(self, signum: int) -> None:
        """Send ``signum`` to the group the command leads (to the command alone while
        ``setsid`` has not made the group yet)."""
        if self.pgid is None:
            raise ProcessLookupError(errno.ESRCH, os.strerror(errno.ESRCH))
        try:
            os.killpg(self.pgid, signum)
        except ProcessLookupError:
            if self.pid is None:
                raise
            os.kill(self.pid, signum)

    def closeStdin(self) -> None:
        """Close the command's standard input."""
        self._transport.closeStdin()

    def loseConnection(self) -> None:
        """Close our ends of the command's pipes."""
        self._transport.loseConnection()


def _spawn_in_session(reactor: Any) -> Spawner:
    def spawn(proto: ProcessProtocol, argv: Sequence[str], env: Mapping[str, str]) -> _Child:
        # argv[0] is looked up on the child's PATH (posix_spawnp would use ours)
        executable = shutil.which(argv[0], path=env.get("PATH")) or argv[0]
        if "/" not in executable:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
        if SESSION_SPAWN:
            return _SessionProcess(reactor, proto, executable, argv, env)
        if not os.path.isfile(executable) or not os.access(executable, os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        setsid = shutil.which("setsid", path="/usr/bin:/bin") or "setsid"
        return _SetsidChild(reactor.spawnProcess(
            proto, setsid, [setsid, "--", executable, *argv[1:]], env=dict(env)))
    return spawn


@dataclass(frozen=True)
class ProcessResult:
    """How a command ended.  ``stdout``/``stderr`` are the last ``max_output`` bytes."""

    name: str
    argv: tuple[str, ...]
    exit_code: int | None = None
    #: the signal that ended it (its own doing, or our TERM/KILL)
    signal: int | None = None
    #: the budget ran out and we sent SIGTERM
    timed_out: bool = False
    #: SIGTERM was not enough: we sent SIGKILL
    killed: bool = False
    #: ended by ``stop_all()`` or by cancelling its Deferred
    stopped: bool = False
    duration: float = 0.0
    stdout: bytes = b""
    stderr: bytes = b""
    stdout_dropped: int = 0
    stderr_dropped: int = 0
    #: why it could not be started (or was abandoned); ``None`` when it ran and ended
    error: str | None = None
    errno: int | None = None

    @property
    def ok(self) -> bool:
        """It ran, exited with 0, and we did not have to stop it."""
        return (self.exit_code == 0 and self.error is None
                and not self.timed_out and not self.stopped)

    @property
    def summary(self) -> str:
        """One phrase for the log, e.g. ``killed by SIGKILL after exceeding its budget in
        7.002 s``."""
        if self.error is not None and self.exit_code is None and self.signal is None:
            return self.error
        if self.signal is not None:
            text = f"killed by {signal.Signals(self.signal).name}"
        else:
            text = f"exit {self.exit_code}"
        if self.timed_out:
            text += " after exceeding its budget"
        elif self.stopped:
            text += " (stopped)"
        return f"{text} in {self.duration:.3f} s"


class _Stream:
    """One output stream: logs the first ``limit`` bytes by line, keeps the last ``limit``."""

    def __init__(self, label: str, limit: int) -> None:
        self.label = label
        self.limit = limit
        self.total = 0
        self.tail = bytearray()
        self._unlogged = limit
        self._partial = b""

    def feed(self, data: bytes) -> list[bytes]:
        """Take ``data``; return the complete lines to log now."""
        self.total += len(data)
        self.tail += data
        if len(self.tail) > self.limit:
            del self.tail[:len(self.tail) - self.limit]
        if self._unlogged <= 0:
            return []
        head = data[:self._unlogged]
        self._unlogged -= len(head)
        *lines, self._partial = (self._partial + head).split(b"\n")
        return lines

    def flush(self) -> list[bytes]:
        """At the end: the unterminated last line, if any."""
        rest, self._partial = self._partial, b""
        return [rest] if rest else []

    @property
    def dropped(self) -> int:
        return self.total - len(self.tail)


class _Command(ProcessProtocol):
    """One running command: its output, its timers and its ending."""

    def __init__(self, runner: ProcessRunner, argv: tuple[str, ...], name: str) -> None:
        self.runner = runner
        self.argv = argv
        self.name = name
        limit = runner.max_output
        self.streams = {1: _Stream("stdout", limit), 2: _Stream("stderr", limit)}
        self.started = runner.reactor.seconds()
        self.timers: dict[str, IDelayedCall] = {}
        self.child: _Child | None = None
        self.timed_out = self.killed = self.stopped = False
        self.terminating = self.exited = self.finished = False
        self.result: Deferred[ProcessResult] = Deferred(canceller=lambda _: self.terminate())
        self._waiters: list[Deferred[None]] = []

    # -- from the process -----------------------------------------------------------

    def connectionMade(self) -> None:
        self.transport.closeStdin()  # type: ignore[union-attr]

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        stream = self.streams.get(childFD)
        if stream is None:
            return
        for line in stream.feed(data):
            self._log_line(stream, line)

    def processExited(self, reason: Failure) -> None:
        self.exited = True

    def processEnded(self, reason: Failure) -> None:
        status = reason.value
        for stream in self.streams.values():
            for line in stream.flush():
                self._log_line(stream, line)
            if stream.total > stream.limit:
                self.runner.log.warn(
                    "{name} {stream}: {total} bytes; logged the first {limit}, the result "
                    "keeps the last {limit}", name=self.name, stream=stream.label,
                    total=stream.total, limit=stream.limit)
        self._finish(exit_code=getattr(status, "exitCode", None),
                     signal=getattr(status, "signal", None))

    def _log_line(self, stream: _Stream, line: bytes) -> None:
        self.runner.log.info("{name} {stream}: {line}", name=self.name, stream=stream.label,
                             line=line.rstrip(b"\r").decode("utf-8", "replace"))

    # -- the discipline -------------------------------------------------------------

    def start(self, spawn: Spawner, env: Mapping[str, str], budget: float | None) -> None:
        """Spawn the command; arm the budget.  Failing to spawn finishes the command."""
        argv0 = self.argv[0]
        try:
            self.child = spawn(self, self.argv, {**os.environ, **env})
        except OSError as e:
            self.runner.log.error("{name}: cannot start {argv0}: {error}", name=self.name,
                                  argv0=argv0, error=e.strerror)
            self._finish(error=f"{argv0}: {e.strerror}", error_no=e.errno)
            return
        except BaseException:  # a bug, not the command's doing: say it loudly
            self.runner._running.discard(self)
            raise
        self.runner.log.info("{name} started (pid {pid}): {argv}", name=self.name,
                             pid=getattr(self.child, "pgid", self.child.pid),
                             argv=list(self.argv))
        if budget is not None and not self.finished:
            self.timers["term"] = self.runner.reactor.callLater(budget, self._out_of_time)

    def _out_of_time(self) -> None:
        del self.timers["term"]
        self.timed_out = True
        self.runner.log.warn("{name} exceeded its budget", name=self.name)
        self.terminate()

    def terminate(self) -> None:
        """SIGTERM to the group now, SIGKILL after the grace period.  Once only."""
        if self.finished or self.terminating:
            return
        self.terminating = True
        self.stopped = not self.timed_out
        if "term" in self.timers:
            self.timers.pop("term").cancel()
        self._signal(signal.SIGTERM)
        self.timers["kill"] = self.runner.reactor.callLater(self.runner.grace, self._kill)

    def _kill(self) -> None:
        del self.timers["kill"]
        self.killed = True
        self.runner.log.warn("{name} did not end {grace} s after SIGTERM: SIGKILL",
                             name=self.name, grace=self.runner.grace)
        self._signal(signal.SIGKILL)
        self.timers["abandon"] = self.runner.reactor.callLater(self.runner.grace,
                                                               self._abandon)

    def _abandon(self) -> None:
        del self.timers["abandon"]
        assert self.child is not None
        self.child.loseConnection()  # our ends of the pipes: processEnded can come
        if not self.exited:
            self.runner.log.error("{name} did not end {grace} s after SIGKILL; giving up on it",
                                  name=self.name, grace=self.runner.grace)
            self._finish(error="did not end after SIGKILL")

    def _signal(self, signum: int) -> None:
        assert self.child is not None
        try:
            self.child.signal_group(signum)
        except ProcessLookupError:  # the group is empty already; processEnded is coming
            pass

    def _finish(self, exit_code: int | None = None, signal: int | None = None,
                error: str | None = None, error_no: int | None = None) -> None:
        """The one way out: cancel every timer, build the result, tell everyone waiting."""
        if self.finished:
            return
        self.finished = True
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()
        self.runner._running.discard(self)
        out, err = self.streams[1], self.streams[2]
        result = ProcessResult(
            name=self.name, argv=self.argv, exit_code=exit_code, signal=signal,
            timed_out=self.timed_out, killed=self.killed, stopped=self.stopped,
            duration=self.runner.reactor.seconds() - self.started,
            stdout=bytes(out.tail), stderr=bytes(err.tail),
            stdout_dropped=out.dropped, stderr_dropped=err.dropped, error=error, errno=error_no)
        if error_no is None:  # a failed start was logged already
            level = self.runner.log.info if result.ok else self.runner.log.warn
            level("{name} ended: {summary}", name=self.name, summary=result.summary)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)
        if not self.result.called:  # else cancelled: CancelledError was its result
            self.result.callback(result)

    def when_finished(self) -> Deferred[None]:
        """A Deferred that fires (with ``None``) once the command has finished."""
        d: Deferred[None] = Deferred()
        if self.finished:
            d.callback(None)
        else:
            self._waiters.append(d)
        return d


class ProcessRunner:
    """Runs external commands, each with a budget, TERM then KILL, output bounded.

    :param reactor: for timers and the clock (and, with the default ``spawn``, a POSIX
        reactor to run the processes)
    :param grace: seconds between SIGTERM and SIGKILL (and after SIGKILL before giving up)
    :param max_output: bytes kept (and logged) per stream and command
    :param spawn: starts a child; tests pass a fake, the default spawns a real process
        in a new session
    """

    log = Logger()

    def __init__(self, reactor: IReactorTime, *, grace: float = 10.0,
                 max_output: int = 64 * 1024, spawn: Spawner | None = None) -> None:
        if grace < 0 or max_output < 1:
            raise ValueError(f"bad grace {grace!r} or max_output {max_output!r}")
        self.reactor = reactor
        self.grace = grace
        self.max_output = max_output
        self._spawn = spawn if spawn is not None else _spawn_in_session(reactor)
        self._running: set[_Command] = set()

    def run(self, argv: Sequence[str], budget: float | None, *,
            env: Mapping[str, str] | None = None, name: str = "",
            ) -> Deferred[ProcessResult]:
        """Start ``argv`` now; the Deferred fires with its :class:`ProcessResult`.

        It never fails, except with ``CancelledError`` when cancelled: then the command
        is stopped (SIGTERM, SIGKILL after the grace period) and its result is not
        reported.  ``name`` labels the log lines (default: ``argv[0]``).
        """
        if isinstance(argv, (str, bytes)):
            raise TypeError("argv must be a list of arguments, not a string (no shell): "
                            f"{argv!r}")
        argv = tuple(argv)
        if not all(isinstance(a, str) for a in argv):
            raise TypeError(f"argv must hold strings: {argv!r}")
        if not argv or any("\0" in a for a in argv):
            raise ValueError(f"argv must be non-empty, without NUL: {argv!r}")
        if budget is not None and not budget > 0:
            raise ValueError(f"budget must be positive or None, not {budget!r}")
        command = _Command(self, argv, name or os.path.basename(argv[0]))
        self._running.add(command)
        command.start(self._spawn, env or {}, budget)
        return command.result

    @property
    def running(self) -> int:
        """How many commands have not finished yet."""
        return len(self._running)

    def stop_all(self) -> Deferred[None]:
        """Stop every running command (SIGTERM, SIGKILL after the grace period).

        The commands' own Deferreds fire as usual, with ``stopped`` set; the returned
        Deferred fires once all have finished.  Commands started afterwards run normally.
        """
        waiting = []
        for command in list(self._running):
            waiting.append(command.when_finished())
            command.terminate()
        done: Deferred[None] = gatherResults(waiting).addCallback(lambda _: None)
        return done
