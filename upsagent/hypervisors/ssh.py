# -*- test-case-name: tests.test_ssh -*-
"""Agentless machines shut down over SSH (``backend = "ssh"``, ``[host.ssh]``).

One :class:`SshBackend` per host (its own manager).  It runs on Twisted Conch, on the
agent's reactor (no second event loop):

* **Host key**: checked against the configured ``known_hosts`` only (OpenSSH's format,
  hashed entries included; ``[address]:port`` entries for a port other than 22).  A host
  that is not listed, or whose key differs, is refused; the file is never written and
  nothing is trusted on first use (:class:`StrictKnownHosts`).
* **Login**: the private key of ``key_file``, or the password; never an SSH agent.
* **Command**: ``command`` is an argument list; it is sent to the remote side as one
  line quoted with :func:`shlex.join`, which the remote user's login shell (a POSIX
  shell) splits back into the same arguments.
* **Time**: the connection and login within ``connect_timeout``, the whole operation
  within ``budget``; past it the connection is cut and the result is ``timed-out``.  Each
  operation is one attempt: a host that is down gives ``unreachable`` once, no retries.
* **Output**: the command's stdout and stderr are captured and logged (at most 4 KiB
  each), its exit status reported.  A connection closed while the shutdown command runs,
  without an exit status, counts as the shutdown having started.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from twisted.conch.client.knownhosts import KnownHostsFile
from twisted.conch.endpoints import AuthenticationFailed, SSHCommandClientEndpoint
from twisted.conch.error import HostKeyChanged
from twisted.conch.ssh.keys import BadKeyError, Key
from twisted.internet import error as ierror
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath

from upsagent.hypervisors.base import Backend, HostInfo
from upsagent.system.runner import Outcome, Result, Runner

if TYPE_CHECKING:
    from upsagent.config.managers import ManagerConfig, SshTargetConfig

__all__ = ["HostKeyRefused", "SshBackend", "SshOutput", "StrictKnownHosts", "run_ssh"]

_log = Logger()
_KEEP = 4096


class HostKeyRefused(Exception):
    """The server's host key is not in ``known_hosts`` (or differs from it)."""


class StrictKnownHosts(KnownHostsFile):
    """A ``known_hosts`` file that only answers: never prompts, never adds, never saves.

    ``port``: the entry for a port other than 22 is ``[address]:port`` (OpenSSH's form);
    the plain address is accepted as well."""

    port = 22

    def verifyHostKey(self, ui: Any, hostname: bytes, ip: bytes,  # type: ignore[override]
                      key: Key) -> Deferred[bool]:
        names = [hostname, ip]
        if self.port != 22:
            names = [b"[%s]:%d" % (n, self.port) for n in names] + names
        try:
            for name in names:
                if self.hasHostKey(name, key):
                    return succeed(True)
        except HostKeyChanged as exc:
            return fail(HostKeyRefused(
                f"the host key of {hostname.decode(errors='replace')} differs from the one "
                f"known_hosts line {exc.lineno} holds ({_print(key)}): refused"))
        return fail(HostKeyRefused(
            f"no key of {hostname.decode(errors='replace')} in {self._savePath.path} "
            f"(it offered {_print(key)}): refused, never "
            "trusted on first use"))


def _print(key: Key) -> str:
    """The key's type and SHA-256 fingerprint, as ssh-keygen -l shows them."""
    from twisted.conch.ssh.keys import FingerprintFormats
    k: Any = key
    return f"{k.type()} SHA256:{k.fingerprint(FingerprintFormats.SHA256_BASE64)}"


class SshOutput(Protocol):
    """Collects the remote command's stdout and stderr and how it ended."""

    def __init__(self) -> None:
        self.stdout = b""
        self.stderr = b""
        #: fires with (how the channel closed,): a bare Failure would take the errback path
        self.ended: Deferred[tuple[Failure]] = Deferred()

    def connectionMade(self) -> None:
        # Conch's command channel hands stderr (extended data) to itself only: take it.
        channel = self.transport
        channel.extReceived = self._ext  # type: ignore[union-attr]

    def _ext(self, kind: int, data: bytes) -> None:
        self.stderr = (self.stderr + data)[:_KEEP]

    def dataReceived(self, data: bytes) -> None:
        self.stdout = (self.stdout + data)[:_KEEP]

    def connectionLost(self, reason: Failure = ierror.ConnectionDone()) -> None:  # type: ignore[assignment]
        if not self.ended.called:
            self.ended.callback((reason,))

    def abort(self) -> None:
        """Cut the whole SSH connection (the budget is spent)."""
        channel: Any = self.transport
        try:
            channel.conn.transport.transport.abortConnection()
        except AttributeError:
            pass


def run_ssh(reactor: Any, target: SshTargetConfig, argv: Sequence[str], *,
            budget: float, connect_timeout: float = 10.0,
            key: Key | None = None, why: list[str] | None = None) -> Deferred[Result]:
    """Run ``argv`` on ``target`` once: log in, check the host key, run, report.

    Fires with a :class:`Result`, never fails: ``ok`` (exit status 0, or the connection
    closed without one), ``failed`` (another status, a refused host key or login),
    ``unreachable`` (no connection), ``timed-out`` (past ``connect_timeout`` or
    ``budget``).  ``why``, when given, receives one word saying which: ``done``,
    ``exit`` (a non-zero status or a signal), ``host-key``, ``login``, ``unreachable``,
    ``timed-out``, ``cancelled`` or ``error``."""
    said = why if why is not None else []
    if isinstance(argv, (str, bytes)):
        raise TypeError(f"a command is a list of arguments, not a string: {argv!r}")
    line = shlex.join(argv)
    where = f"{target.user}@{target.address}:{target.port}"
    known = cast(StrictKnownHosts, StrictKnownHosts.fromPath(FilePath(target.known_hosts)))
    known.port = target.port
    endpoint: Any = SSHCommandClientEndpoint.newConnection(
        reactor, line.encode(), target.user.encode(), target.address.encode(),
        port=target.port, keys=[key] if key is not None else None,
        password=target.password.encode() if target.password is not None else None,
        agentEndpoint=None, knownHosts=cast(Any, known), ui=None)
    out = SshOutput()
    result: Deferred[Result] = Deferred()
    stage = ["connect"]

    def finish(value: Result, word: str) -> None:
        if not result.called:
            said.append(word)
            if timer.active():
                timer.cancel()
            result.callback(value)

    def expire() -> None:
        if stage[0] == "connect":
            finish(Result(Outcome.TIMED_OUT, f"ssh {where}: no login within "
                                             f"{min(connect_timeout, budget):g} s"), "timed-out")
            connecting.cancel()
        else:
            out.abort()
            finish(Result(Outcome.TIMED_OUT, f"ssh {where}: {line} still running after "
                                             f"{budget:g} s: connection cut"
                          + _tail(out)), "timed-out")

    timer = reactor.callLater(min(connect_timeout, budget), expire)

    def connected(_: object) -> Deferred[tuple[Failure]]:
        stage[0] = "run"
        if timer.active():
            timer.reset(max(budget - (reactor.seconds() - started), 0.0))
        return out.ended

    def ended(how: tuple[Failure]) -> None:
        reason = how[0]
        exc = reason.value
        if isinstance(exc, ierror.ProcessTerminated):
            status = (f"exit status {exc.exitCode}" if exc.exitCode is not None else
                   f"signal {exc.signal}")
            finish(Result(Outcome.FAILED, f"ssh {where}: {line}: {status}" + _tail(out)),
                   "exit")
        else:
            finish(Result(Outcome.OK, f"ssh {where}: {line}: done" + _tail(out)), "done")

    def refused(reason: Failure) -> None:
        if result.called:
            return
        if isinstance(reason.value, HostKeyRefused):
            finish(Result(Outcome.FAILED, f"ssh {where}: {reason.value}"), "host-key")
        elif isinstance(reason.value, AuthenticationFailed):
            finish(Result(Outcome.FAILED, f"ssh {where}: login as {target.user} refused "
                                          "(wrong key or password)"), "login")
        elif isinstance(reason.value, (ierror.ConnectError, ierror.ConnectionLost,
                                       ierror.ConnectionDone)):
            finish(Result(Outcome.UNREACHABLE, f"ssh {where}: {reason.getErrorMessage()}"),
                   "unreachable")
        else:
            finish(Result(Outcome.FAILED, f"ssh {where}: {reason.getErrorMessage()}"),
                   "error")

    started = reactor.seconds()
    connecting = endpoint.connect(Factory.forProtocol(lambda: out))
    connecting.addCallback(connected).addCallbacks(ended, refused)

    def cancel(d: Deferred[Result]) -> None:
        finish(Result(Outcome.CANCELLED, f"ssh {where}: cancelled"), "cancelled")
        if stage[0] == "connect":
            connecting.cancel()
        out.abort()

    outer: Deferred[Result] = Deferred(cancel)
    result.addCallback(_log_result, where)
    result.chainDeferred(outer)
    return outer


def _tail(out: SshOutput) -> str:
    parts = []
    for name, data in (("stdout", out.stdout), ("stderr", out.stderr)):
        text = data.decode(errors="replace").strip()
        if text:
            parts.append(f"{name}: {text[-200:]}")
    return f" ({'; '.join(parts)})" if parts else ""


def _log_result(result: Result, where: str) -> Result:
    _log.info("ssh {where}: {outcome}: {detail}", where=where, outcome=result.outcome.value,
              detail=result.detail)
    return result


class SshBackend(Backend):
    """One machine reached over SSH: its shutdown is ``command`` run there."""

    kind = "ssh"

    def __init__(self, reactor: Any, target: SshTargetConfig, *, budget: float = 30.0,
                 connect_timeout: float = 10.0) -> None:
        self.reactor = reactor
        self.target = target
        self.budget = budget
        self.connect_timeout = connect_timeout
        self._key: Key | None = None
        if target.key_file is not None:
            try:
                self._key = cast(Any, Key).fromFile(target.key_file)
            except (OSError, BadKeyError) as exc:
                raise ValueError(f"host {target.name}: cannot read key_file "
                                 f"{target.key_file}: {exc}") from exc

    @classmethod
    def build(cls, config: ManagerConfig, reactor: Any, runner: Runner) -> SshBackend:
        """The backend of one ``[host.ssh]`` (:class:`~upsagent.config.managers.SshTargetConfig`);
        its shutdown's time budget is the record's ``budget`` (the host's
        ``shutdown_duration``)."""
        if config.kind != cls.kind:
            raise TypeError(f"{cls.__name__} is built from an ssh configuration, not "
                            f"{type(config).__name__}")
        target = cast("SshTargetConfig", config)
        return cls(reactor, target, budget=target.budget)

    def run(self, argv: Sequence[str], budget: float | None = None) -> Deferred[Result]:
        """Run ``argv`` on the host once (:func:`run_ssh`)."""
        return run_ssh(self.reactor, self.target, argv,
                       budget=self.budget if budget is None else budget,
                       connect_timeout=self.connect_timeout, key=self._key)

    def probe(self) -> Deferred[tuple[str, Result]]:
        """Log in, check the host key and that the command's program exists there
        (``command -v``, run by the remote shell); nothing is shut down.  Fires with one
        word and the :class:`Result`: ``ok``, ``host-key`` (unknown or changed key),
        ``login`` (wrong key or password), ``unreachable``, ``timed-out``, ``missing``
        (logged in, the program is not there) or ``error``."""
        program = self.target.command[0]
        why: list[str] = []

        def said(result: Result) -> tuple[str, Result]:
            word = why[0] if why else "error"
            if result.ok:
                return "ok", Result(Outcome.OK, f"logged in to {self.target.address} as "
                                                f"{self.target.user}; {program} found there")
            if word == "exit":
                return "missing", Result(Outcome.FAILED,
                                         f"logged in to {self.target.address}, but "
                                         f"{program} is not found there")
            return word if word in ("host-key", "login", "unreachable", "timed-out") \
                else "error", result

        return run_ssh(self.reactor, self.target, ("command", "-v", program),
                       budget=self.connect_timeout + 10.0,
                       connect_timeout=self.connect_timeout, key=self._key,
                       why=why).addCallback(said)

    def connect(self) -> Deferred[Result]:
        """:meth:`probe`'s result: nothing is shut down."""
        return self.probe().addCallback(lambda probed: probed[1])

    def check(self, hosts: Sequence[str]) -> Deferred[list[str]]:
        """:meth:`probe`: one line naming the host when it does not pass."""
        def lines(probed: tuple[str, Result]) -> list[str]:
            word, result = probed
            return [] if word == "ok" else [f"host {self.target.name}: {result.detail}"]
        return self.probe().addCallback(lines)

    def hosts(self) -> Deferred[list[HostInfo]]:
        return succeed([HostInfo(self.target.name, None,
                                 detail=f"ssh {self.target.address}, reached when it acts "
                                        "(upsagent test-ssh tries it)")])

    def shutdown_host(self, host: str, killpower: bool = False) -> Deferred[Result]:
        return self.run(self.target.command)
