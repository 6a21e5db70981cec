"""Start our master as a real daemon (a subprocess) for the interoperability tests.

The master reads NUT's own files from a temporary directory, exactly as a NUT user's
``/etc/nut`` would be read::

    with OurMaster(ups_conf=..., upsd_users=..., files={"ups.dev": text}) as master:
        subprocess.run(["upsc", f"dummy@127.0.0.1:{master.port}"])

The port is a free loopback port written into ``upsd.conf`` (``LISTEN 127.0.0.1 <port>``);
a ``upsd_conf`` of your own may say ``{port}`` where that port goes.  With ``toml=...`` the
master reads that upsagent.toml instead (``--config``; ``{port}`` and ``{dir}`` are filled
in; written with mode 0600), for what only the native file can say.  Waiting for the
daemon polls its socket (bounded; on failure the daemon's log is in the exception).
Nothing sleeps for time to pass: callers poll for the state they expect with
:func:`wait_for`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Callable, TypeVar

__all__ = ["OurMaster", "ask", "free_port", "wait_for"]

T = TypeVar("T")

DEFAULT_USERS = """\
[admin]
  password = adminpass
  actions = SET FSD
  instcmds = ALL
[monuser]
  password = monpass
  upsmon primary
[slaveuser]
  password = slavepass
  upsmon secondary
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop_process(proc: "subprocess.Popen[bytes]", grace: float = 10.0) -> None:
    """TERM a test's server (started with ``start_new_session``), then KILL its whole
    process group if it is still there after ``grace`` seconds; reaped either way."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_for(check: Callable[[], T | None], timeout: float = 15.0,
             what: str = "condition") -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def ask(port: int, *lines: str) -> str:
    """Send ``lines`` (then LOGOUT) on one connection; everything answered but the goodbye."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall("".join(line + "\n" for line in lines).encode() + b"LOGOUT\n")
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    return b"".join(chunks).decode().removesuffix("OK Goodbye\n")


class OurMaster:
    """``upsagent master --nut-config DIR`` in a subprocess, on a free port."""

    def __init__(self, ups_conf: str, upsd_users: str = DEFAULT_USERS,
                 upsd_conf: str | None = None, files: dict[str, str] | None = None,
                 args: tuple[str, ...] = (), toml: str | None = None) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="upsagent-test-")
        self.dir = Path(self._tmp.name)
        self.port = free_port()
        (self.dir / "ups.conf").write_text(ups_conf)
        (self.dir / "upsd.conf").write_text(
            (upsd_conf if upsd_conf is not None else "LISTEN 127.0.0.1 {port}\n").replace(
                "{port}", str(self.port)))
        users = self.dir / "upsd.users"
        users.write_text(upsd_users)
        os.chmod(users, 0o600)
        for name, text in (files or {}).items():
            (self.dir / name).write_text(text)
        self.source = ["--nut-config", str(self.dir)]
        if toml is not None:
            self.toml = self.dir / "upsagent.toml"
            self.toml.write_text(toml.replace("{port}", str(self.port)).replace(
                "{dir}", str(self.dir)))
            os.chmod(self.toml, 0o600)
            self.source = ["--config", str(self.toml)]
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.dir / "master.log"

    def start(self) -> "OurMaster":
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "upsagent", "master", *self.source, *self.args],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.dir, start_new_session=True)
        log.close()
        try:
            wait_for(self._listening, 20, f"our master on port {self.port}")
        except AssertionError as exc:
            self.stop()
            raise AssertionError(f"{exc}\n--- master log ---\n{self.log()}") from None
        return self

    def _listening(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"master exited with {self.proc.returncode}:\n{self.log()}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def __enter__(self) -> "OurMaster":
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
        self._tmp.cleanup()
