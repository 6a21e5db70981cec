# -*- test-case-name: tests.test_query_tools -*-
"""Run Debian's real NUT 2.8.0 (``upsd`` + ``dummy-ups``) for tests, and its client tools.

A plain module; import it from any test::

    from tests import nutreal

    with nutreal.nut_server(UPS_CONF, upsd_conf="MAXAGE 3\\n", upsd_users=USERS,
                            files={"ups.dev": DEV_TEXT}, drivers=["dummy"]) as nut:
        rc, out, err = nutreal.run_tool(["upsc", nut.address("dummy")])

API:

* :func:`nut_server` (context manager) -> :class:`NutServer`.  Writes ``ups.conf``,
  ``upsd.conf`` (our ``LISTEN`` lines first, then your text), ``upsd.users`` (mode 0600) and
  the data files into a fresh temporary directory that is both ``NUT_CONFPATH`` and
  ``NUT_STATEPATH``; starts one ``dummy-ups -a <section> -F`` per section listed in
  ``drivers`` (default: every section), waits until each driver socket exists; starts
  ``upsd -F`` on a free loopback port and waits until it accepts TCP *and* every started
  driver's data is loaded (``GET VAR <ups> ups.status`` answers neither
  ``DRIVER-NOT-CONNECTED``/``DATA-STALE`` nor ``WAIT``).  Everything runs in its own process
  group, as root with ``-u root`` (as yourself otherwise).  On exit every group is killed
  (SIGTERM + SIGCONT, SIGKILL after 5 s) and the directory removed.  Startup is bounded by
  ``timeout``; a failure raises :class:`NutStartError` quoting the daemons' stderr.
  Instances are independent, so several can run side by side.
* :class:`NutServer`: ``host``, ``port``, ``directory``, ``address(ups)`` ->
  ``"ups@127.0.0.1:port"``, ``request(line)`` (raw protocol, returns the reply lines),
  ``freeze_driver``/``thaw_driver`` (SIGSTOP/SIGCONT: upsd calls the UPS stale after MAXAGE),
  ``stop_driver``/``start_driver``, ``wait_for_status(ups, wanted)``, ``logs()``.
* :func:`free_port`, :func:`run_tool` (``(rc, stdout, stderr)`` of a command run without a
  controlling terminal, stdin empty unless ``input`` is given, ``LC_ALL=C``, and without the
  ``NUT_QUIET_INIT_SSL``/``NUT_DEBUG_LEVEL`` of the caller), :func:`run_in_terminal`
  (the same on a pseudo-terminal, answering prompts; returns the screen), :func:`wait_for`.
* :func:`require_nut` skips the calling test (``pytest.skip``) when the binaries are absent;
  :func:`nut_missing` says why, or None.

Notes: the daemons are taken from ``/lib/nut`` (Debian's ``/usr/sbin/upsd`` is a wrapper that
refuses to start while ``/etc/nut/nut.conf`` says ``MODE=none``).  If upsd cannot bind the
port it was given by :func:`free_port` (another process took it meanwhile) the start is
retried on a new port.  Do not connect to a driver's Unix socket and leave: NUT 2.8.0's
driver then aborts at its next broadcast (``bit out of range 0 - FD_SETSIZE``), which is
why readiness is judged by the socket file and by upsd's answers only.
"""

from __future__ import annotations

import contextlib
import os
import pty
import select
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence, Union

import pytest

from upsagent.nut.tokenizer import tokenize_text

__all__ = [
    "NutServer", "NutStartError", "free_port", "nut_missing", "nut_server", "require_nut",
    "run_in_terminal", "run_tool", "wait_for", "CLIENT_TOOLS",
]

NUT_DIRS = ("/lib/nut", "/usr/lib/nut", "/usr/libexec/nut")
CLIENT_TOOLS = {"upsc": "/usr/bin/upsc", "upsrw": "/usr/bin/upsrw", "upscmd": "/usr/bin/upscmd"}
FileData = Union[str, bytes, "os.PathLike[str]"]


class NutStartError(RuntimeError):
    """The daemons did not come up in time; the message quotes their logs."""


def _find(name: str) -> str | None:
    """A NUT daemon binary (not Debian's /usr/sbin/upsd wrapper, which obeys nut.conf)."""
    for directory in NUT_DIRS:
        path = os.path.join(directory, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            with open(path, "rb") as handle:
                if handle.read(2) != b"#!":
                    return path
    return None


def nut_missing(clients: bool = False) -> str | None:
    """Why the real NUT cannot be used here (None when it can)."""
    for name in ("upsd", "dummy-ups"):
        if _find(name) is None:
            return f"NUT's {name} binary not found in {', '.join(NUT_DIRS)}"
    if clients:
        for tool, path in CLIENT_TOOLS.items():
            if not os.access(path, os.X_OK):
                return f"NUT's {tool} not found at {path}"
    return None


def require_nut(clients: bool = False) -> None:
    """``pytest.skip`` the caller when upsd/dummy-ups (and with ``clients`` the tools) are absent."""
    reason = nut_missing(clients)
    if reason:
        pytest.skip(reason)


_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (never the same one twice per process)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    while True:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
            port = int(probe.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def wait_for(predicate: Callable[[], bool], timeout: float, message: str,
             interval: float = 0.02) -> None:
    """Poll ``predicate`` until true; raise ``TimeoutError(message)`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(message)
        time.sleep(interval)


def _clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUT_QUIET_INIT_SSL", "NUT_DEBUG_LEVEL", "NUT_CONFPATH",
                        "NUT_STATEPATH", "NUT_ALTPIDPATH")}
    env["LC_ALL"] = "C"
    env.update(extra or {})
    return env


def _kill_group(process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM (and SIGCONT, for frozen ones) the process group, SIGKILL if it lingers."""
    if process.poll() is None or _group_alive(process.pid):
        for sig in (signal.SIGTERM, signal.SIGCONT):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, sig)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            pass
        if process.poll() is None or _group_alive(process.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(grace)
    process.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def run_tool(argv: Sequence[str], timeout: float = 30.0, *, input: bytes | None = None,
             env: Mapping[str, str] | None = None) -> tuple[int, str, str]:
    """Run a command without a controlling terminal; return ``(rc, stdout, stderr)``.

    Output is decoded as UTF-8 with ``surrogateescape`` (byte-exact round trip).  A run
    longer than ``timeout`` is killed (its whole process group) and raises TimeoutError.
    """
    process = subprocess.Popen(list(argv), stdin=subprocess.PIPE if input is not None
                               else subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=_clean_env(env),
                               start_new_session=True)
    try:
        out, err = process.communicate(input, timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process, 1.0)
        out, err = process.communicate()
        raise TimeoutError(f"{list(argv)} ran over {timeout}s; stdout={out!r} stderr={err!r}")
    return (process.returncode, out.decode("utf-8", "surrogateescape"),
            err.decode("utf-8", "surrogateescape"))


def run_in_terminal(argv: Sequence[str], answers: Sequence[bytes], timeout: float = 30.0,
                    env: Mapping[str, str] | None = None) -> tuple[int, bytes]:
    """Run a command on a fresh pseudo-terminal (its controlling tty); return ``(rc, screen)``.

    Each answer is typed after the program shows a prompt (output ending in ``": "``); the
    screen is everything written to the terminal, echo included (so a typed password that
    does not appear was not echoed).
    """
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.execve(argv[0], list(argv), _clean_env(env))
        finally:
            os._exit(127)
    screen = bytearray()
    pending = list(answers)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                screen += data
            elif pending and screen.rstrip(b" ").endswith(b":"):
                os.write(fd, pending.pop(0))
        else:
            os.kill(pid, signal.SIGKILL)
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), bytes(screen)


def _sections(ups_conf: str) -> dict[str, str]:
    """``{section: driver}`` from ups.conf text."""
    sections: dict[str, str] = {}
    current = None
    for _, words in tokenize_text(ups_conf):
        if isinstance(words, list) and words:
            if words[0].startswith("[") and words[0].endswith("]"):
                current = words[0][1:-1]
                sections[current] = ""
            elif current and len(words) >= 3 and words[0] == "driver" and words[1] == "=":
                sections[current] = words[2]
    return sections


@dataclass
class NutServer:
    """A running upsd (+ drivers) started by :func:`nut_server`."""

    directory: Path
    host: str
    port: int
    sections: dict[str, str]
    user_args: list[str]
    upsd: subprocess.Popen[bytes] | None = None
    drivers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def address(self, ups: str | None = None) -> str:
        """``ups@host:port`` (``host:port`` without a UPS), IPv6 hosts in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{ups}@{host}:{self.port}" if ups else f"{host}:{self.port}"

    def env(self) -> dict[str, str]:
        """The environment the daemons run with."""
        path = str(self.directory)
        return _clean_env({"NUT_CONFPATH": path, "NUT_STATEPATH": path, "NUT_ALTPIDPATH": path})

    def logs(self) -> str:
        """Every daemon's captured output, for error messages."""
        parts = []
        for log in sorted(self.directory.glob("*.log")):
            parts.append(f"--- {log.name}\n{log.read_text(errors='replace')}")
        return "\n".join(parts)

    # -- raw protocol ------------------------------------------------------------------

    def request(self, line: str, timeout: float = 5.0) -> list[str]:
        """Send one request line; return the reply lines (a whole LIST block)."""
        with socket.create_connection((self.host, self.port), timeout) as sock:
            sock.sendall(line.encode() + b"\n")
            lines: list[str] = []
            buffer = b""
            while True:
                while b"\n" in buffer:
                    raw, buffer = buffer.split(b"\n", 1)
                    lines.append(raw.decode("ascii", "replace"))
                    if not lines[0].startswith("BEGIN LIST") or lines[-1].startswith("END LIST"):
                        return lines
                data = sock.recv(4096)
                if not data:
                    return lines
                buffer += data

    def status_of(self, ups: str) -> str:
        """The reply to ``GET VAR <ups> ups.status`` ("" when upsd is not answering)."""
        try:
            reply = self.request(f"GET VAR {ups} ups.status", 2.0)
        except OSError:
            return ""
        return reply[0] if reply else ""

    def wait_for_status(self, ups: str, wanted: str, timeout: float = 20.0) -> None:
        """Wait until ``status_of(ups)`` contains ``wanted`` (e.g. "ERR DATA-STALE")."""
        wait_for(lambda: wanted in self.status_of(ups), timeout,
                 f"{ups}: status never showed {wanted!r}\n{self.logs()}", 0.1)

    # -- drivers -----------------------------------------------------------------------

    def start_driver(self, name: str, timeout: float = 20.0) -> None:
        """Start ``<driver> -a name -F`` and wait until its socket exists."""
        driver = self.sections.get(name) or "dummy-ups"
        binary = _find(driver)
        if binary is None:
            raise NutStartError(f"driver {driver} for [{name}] not found")
        log = open(self.directory / f"driver-{name}.log", "ab")
        with log:
            process = subprocess.Popen([binary, "-a", name, "-F", *self.user_args],
                                       cwd=self.directory, env=self.env(),
                                       stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                       start_new_session=True)
        self.drivers[name] = process
        path = str(self.directory / f"{driver}-{name}")

        def ready() -> bool:
            # Only look for the socket: a client that connects to a NUT 2.8.0 driver and
            # leaves makes the driver abort at its next broadcast (FD_SETSIZE check).
            if process.poll() is not None:
                raise NutStartError(f"{driver} for [{name}] exited with {process.returncode}"
                                    f"\n{self.logs()}")
            try:
                return stat.S_ISSOCK(os.stat(path).st_mode)
            except OSError:
                return False

        try:
            wait_for(ready, timeout, f"{driver} for [{name}] never opened {path}")
        except TimeoutError as error:
            raise NutStartError(f"{error}\n{self.logs()}") from None

    def stop_driver(self, name: str) -> None:
        """Kill a driver (upsd then reports DRIVER-NOT-CONNECTED for it)."""
        process = self.drivers.pop(name)
        _kill_group(process)

    def freeze_driver(self, name: str) -> None:
        """SIGSTOP a driver: after MAXAGE seconds upsd calls its data stale."""
        os.killpg(self.drivers[name].pid, signal.SIGSTOP)

    def thaw_driver(self, name: str) -> None:
        """SIGCONT a frozen driver."""
        os.killpg(self.drivers[name].pid, signal.SIGCONT)

    # -- upsd ----------------------------------------------------------------------------

    def start_upsd(self, timeout: float) -> None:
        """Start ``upsd -F``; wait until it answers and every started driver's data is in."""
        binary = _find("upsd")
        assert binary is not None
        log = open(self.directory / "upsd.log", "ab")
        with log:
            self.upsd = subprocess.Popen([binary, "-F", *self.user_args], cwd=self.directory,
                                         env=self.env(), stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, start_new_session=True)
        upsd = self.upsd

        def ready() -> bool:
            if upsd.poll() is not None:
                raise NutStartError(f"upsd exited with {upsd.returncode}\n{self.logs()}")
            for ups in self.drivers:
                status = self.status_of(ups)
                if not status or "DRIVER-NOT-CONNECTED" in status or "DATA-STALE" in status \
                        or status.endswith('"WAIT"'):
                    return False
            if not self.drivers:
                try:
                    socket.create_connection((self.host, self.port), 1.0).close()
                except OSError:
                    return False
            return True

        try:
            wait_for(ready, timeout, f"upsd on {self.address()} not ready after {timeout}s",
                     0.05)
        except TimeoutError as error:
            raise NutStartError(f"{error}\n{self.logs()}") from None

    def stop(self) -> None:
        """Kill upsd and every driver (process groups), and wait for them."""
        if self.upsd is not None:
            _kill_group(self.upsd)
            self.upsd = None
        for name in list(self.drivers):
            self.stop_driver(name)


def _write(path: Path, data: FileData, mode: int = 0o644) -> None:
    if isinstance(data, os.PathLike):
        shutil.copyfile(data, path)
    elif isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    os.chmod(path, mode)


@contextlib.contextmanager
def nut_server(ups_conf: str, *, upsd_conf: str = "", upsd_users: str = "",
               files: Mapping[str, FileData] | None = None,
               drivers: Sequence[str] | None = None, host: str = "127.0.0.1",
               extra_listen: Sequence[str] = (), port: int | None = None,
               timeout: float = 20.0, keep: bool = False) -> Iterator[NutServer]:
    """Run a real upsd with dummy-ups drivers; see the module docstring.

    ``host`` is where upsd listens and what :meth:`NutServer.address` uses;
    ``extra_listen`` adds more LISTEN addresses on the same port (e.g. ``"::1"``);
    ``port`` defaults to a free one (with a few retries if another process grabs it);
    ``keep`` leaves the directory behind for debugging.
    """
    require_nut()
    sections = _sections(ups_conf)
    started = list(sections) if drivers is None else list(drivers)
    user_args = ["-u", "root"] if os.geteuid() == 0 else []
    attempts = 1 if port is not None else 4
    for attempt in range(attempts):
        directory = Path(tempfile.mkdtemp(prefix="nutreal-"))
        os.chmod(directory, 0o755)
        server = NutServer(directory, host, port or free_port(host), sections, user_args)
        listen = "".join(f"LISTEN {addr} {server.port}\n" for addr in (host, *extra_listen))
        _write(directory / "ups.conf", ups_conf, 0o640)
        _write(directory / "upsd.conf", listen + upsd_conf, 0o640)
        _write(directory / "upsd.users", upsd_users, 0o600)
        for name, data in (files or {}).items():
            _write(directory / name, data)
        try:
            for name in started:
                server.start_driver(name, timeout)
            server.start_upsd(timeout)
        except NutStartError as error:
            server.stop()
            # another process took the port between free_port() and upsd's bind: try anew
            retry = attempt + 1 < attempts and "not listening on" in server.logs()
            if not keep:
                shutil.rmtree(directory, ignore_errors=True)
            if retry:
                continue
            raise error
        break
    try:
        yield server
    finally:
        server.stop()
        if not keep:
            shutil.rmtree(server.directory, ignore_errors=True)
