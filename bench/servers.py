"""The two servers under test, their shared configuration, and what /proc says about them.

Both servers read the same NUT configuration files (``ups.conf`` naming one ``dummy-ups``
UPS called ``bench`` on the same ``.dev`` file, ``upsd.conf``, ``upsd.users``); each gets a
directory of its own that differs only in the ``LISTEN`` port.

* NUT: ``/lib/nut/dummy-ups -a bench`` then ``/lib/nut/upsd``, both ``-u root -F`` with
  ``NUT_CONFPATH``/``NUT_STATEPATH`` set to the private directory (``/usr/sbin/upsd`` is a
  Debian wrapper that refuses to start unless ``/etc/nut/nut.conf`` says so, so the real
  binary is run directly).  upsd's descriptor limit is raised to the hard limit in a
  ``preexec_fn``, as ``ulimit -n`` would.
* ours: ``python -m upsagent master --nut-config DIR`` (it raises its own limit from
  MAXCONN).

Every server process is started under ``taskset -c 0``: core 0 is the server's, the load
generator pins itself to core 1.

:class:`ProcStats` reads a process's resident memory (``VmRSS`` of ``/proc/PID/status``) and
CPU time (``utime + stime`` of ``/proc/PID/stat``); :class:`Sampler` follows the peak RSS in a
thread.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

UPS = "bench"
USER, PASSWORD = "monuser", "secret"
#: the admin who changes ups.status in event-1000 (SET VAR, as upsrw would)
ADMIN, ADMIN_PASSWORD = "admin", "adminpass"
SERVER_CPU, GENERATOR_CPU = 0, 1
NUT_SBIN = Path("/lib/nut")
REPO = Path(__file__).resolve().parent.parent
_TICK = os.sysconf("SC_CLK_TCK")


# -- configuration -------------------------------------------------------------------------

def write_config(directory: Path, dev_file: Path, port: int, maxconn: int = 20000) -> Path:
    """Write ups.conf, upsd.conf and upsd.users into ``directory`` (created) and return it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ups.conf").write_text(
        f'[{UPS}]\n\tdriver = dummy-ups\n\tport = {dev_file}\n\tdesc = "benchmark UPS"\n')
    (directory / "upsd.conf").write_text(f"LISTEN 127.0.0.1 {port}\nMAXCONN {maxconn}\n")
    (directory / "upsd.users").write_text(
        f"[{USER}]\n\tpassword = {PASSWORD}\n\tupsmon secondary\n"
        f"[{ADMIN}]\n\tpassword = {ADMIN_PASSWORD}\n\tactions = SET\n")
    (directory / "nut.conf").write_text("MODE=standalone\n")
    for name in ("ups.conf", "upsd.conf", "upsd.users", "nut.conf"):
        (directory / name).chmod(0o640)
    return directory


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- /proc -----------------------------------------------------------------------------------

class ProcStats:
    """RSS and CPU time of one process, read from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def rss_kib(self) -> int:
        """Current resident set size in KiB (0 once the process is gone)."""
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return 0
        match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
        return int(match.group(1)) if match else 0

    def cpu_split(self) -> tuple[float, float]:
        """(utime, stime) so far, in seconds: time in the process and in the kernel."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return 0.0, 0.0
        fields = stat[stat.rindex(")") + 2:].split()
        return int(fields[11]) / _TICK, int(fields[12]) / _TICK  # fields 14, 15 of stat(5)

    def cpu_seconds(self) -> float:
        """utime + stime so far, in seconds."""
        return sum(self.cpu_split())


def system_busy_seconds() -> float:
    """CPU time all cores spent not idle since boot (from /proc/stat), in seconds."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / _TICK


class Sampler:
    """Follows the peak RSS of some processes every ``interval`` seconds, in a thread."""

    def __init__(self, procs: list[ProcStats], interval: float = 0.2) -> None:
        self.procs = procs
        self.interval = interval
        self.peak_kib = {p.pid: p.rss_kib() for p in procs}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        """Read every process's RSS once and keep the peaks."""
        for proc in self.procs:
            self.peak_kib[proc.pid] = max(self.peak_kib[proc.pid], proc.rss_kib())

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


# -- protocol probe ------------------------------------------------------------------------

def unquote_words(line: str) -> list[str]:
    """Split a NUT reply line into words (double quotes and backslash escapes)."""
    words, word, quoted, escaped, any_word = [], [], False, False, False
    for ch in line:
        if escaped:
            word.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted, any_word = not quoted, True
        elif ch == " " and not quoted:
            if word or any_word:
                words.append("".join(word))
            word, any_word = [], False
        else:
            word.append(ch)
    if word or any_word:
        words.append("".join(word))
    return words


def list_vars(port: int, timeout: float = 5.0) -> dict[str, str] | str:
    """``LIST VAR bench`` as a dict, or the error line the server gave instead."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(f"LIST VAR {UPS}\n".encode())
        data = b""
        end = f"END LIST VAR {UPS}\n".encode()
        while not data.endswith(end):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            if data.startswith(b"ERR") and data.endswith(b"\n"):
                return data.decode().strip()
    result = {}
    for line in data.decode().splitlines():
        words = unquote_words(line)
        if len(words) == 4 and words[0] == "VAR":
            result[words[2]] = words[3]
    return result


def wait_ready(port: int, proc: subprocess.Popen[bytes], what: str,
               timeout: float = 30.0) -> dict[str, str]:
    """Wait until the server on ``port`` lists the UPS's variables; return them.

    Ready means: ``ups.status`` is there and is not dummy-ups' start-up ``WAIT``, and two
    listings 0.3 s apart are the same (the driver has finished loading its file).
    """
    deadline = time.monotonic() + timeout
    last: object = None
    previous: dict[str, str] | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}")
        try:
            last = list_vars(port)
        except OSError as exc:
            last = exc
        if isinstance(last, dict) and last.get("ups.status", "WAIT") != "WAIT":
            if last == previous:
                return last
            previous = last
        time.sleep(0.3)
    raise RuntimeError(f"{what} on port {port} not ready after {timeout} s: {last}")


# -- the servers -----------------------------------------------------------------------------

def _raise_nofile() -> None:
    """preexec_fn for upsd: soft descriptor limit up to the hard one (``ulimit -n``)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@dataclass
class Server:
    """One running server: its processes (the first is the network server) and port."""

    name: str
    port: int
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    @property
    def pid(self) -> int:
        """PID of the network server (upsd, or our master)."""
        return self.procs[-1].pid

    def stats(self) -> ProcStats:
        """/proc figures of the network server process (upsd, or our master)."""
        return ProcStats(self.pid)

    def helper_stats(self) -> list[ProcStats]:
        """/proc figures of the other processes (NUT's dummy-ups driver)."""
        return [ProcStats(p.pid) for p in self.procs[:-1]]

    def stop(self) -> None:
        """Stop the processes we started (TERM, then KILL after 5 s), newest first."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.procs.clear()

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of each process's log, for error messages."""
        out = []
        for log in self.logs:
            if log.exists():
                out.append(f"--- {log.name}\n" + "\n".join(
                    log.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(out)


def _spawn(argv: list[str], log: Path, env: dict[str, str] | None = None,
           preexec: bool = False, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start ``argv`` on the server core, output to ``log``."""
    with open(log, "wb") as out:
        return subprocess.Popen(["taskset", "-c", str(SERVER_CPU), *argv], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                cwd=cwd, preexec_fn=_raise_nofile if preexec else None)


def start_nut(confdir: Path, port: int) -> tuple[Server, dict[str, str]]:
    """Start dummy-ups and upsd on ``confdir``; return the server and its LIST VAR."""
    state = confdir / "state"
    state.mkdir(exist_ok=True)
    env = dict(os.environ, NUT_CONFPATH=str(confdir), NUT_STATEPATH=str(state))
    server = Server("NUT upsd 2.8.0", port)
    try:
        driver_log, upsd_log = confdir / "dummy-ups.log", confdir / "upsd.log"
        server.logs += [driver_log, upsd_log]
        server.procs.append(_spawn([str(NUT_SBIN / "dummy-ups"), "-a", UPS, "-u", "root",
                                    "-F"], driver_log, env))
        deadline = time.monotonic() + 15
        while not any(state.glob(f"dummy-ups-{UPS}*")):
            if time.monotonic() > deadline or server.procs[0].poll() is not None:
                raise RuntimeError("dummy-ups did not create its socket\n"
                                   + server.log_tail())
            time.sleep(0.1)
        server.procs.append(_spawn([str(NUT_SBIN / "upsd"), "-u", "root", "-F"], upsd_log,
                                   env, preexec=True))
        return server, wait_ready(port, server.procs[-1], "upsd")
    except BaseException:
        server.stop()
        raise


def start_ours(confdir: Path, port: int, src: Path = REPO,
               reactor: str = "default") -> tuple[Server, dict[str, str]]:
    """Start ``upsagent master --nut-config confdir``; return it and its LIST VAR.

    ``reactor="asyncio"`` starts it through ``bench/asyncio_master.py`` (Twisted's asyncio
    reactor) instead of ``python -m upsagent`` (the default, epoll reactor).

    ``src`` is the checkout whose ``upsagent`` package is run: it is the working directory
    (``python -m`` puts that first on ``sys.path``) and on PYTHONPATH.
    """
    env = dict(os.environ, PYTHONPATH=str(src))
    where = subprocess.run([sys.executable, "-c", "import upsagent; print(upsagent.__file__)"],
                           cwd=src, env=env, capture_output=True, text=True, timeout=30)
    if not where.stdout.strip().startswith(str(src.resolve())):
        raise RuntimeError(f"upsagent would be imported from {where.stdout.strip()!r}, "
                           f"not from {src}: {where.stderr.strip()}")
    server = Server("upsagent master", port)
    log = confdir / "master.log"
    server.logs.append(log)
    entry = ([str(Path(__file__).resolve().parent / "asyncio_master.py")]
             if reactor == "asyncio" else ["-m", "upsagent"])
    server.procs.append(_spawn([sys.executable, *entry, "master", "--nut-config",
                                str(confdir)], log, env, cwd=src))
    try:
        return server, wait_ready(port, server.procs[-1], "upsagent master")
    except BaseException:
        server.stop()
        raise


def nut_version() -> str:
    """The version line of NUT's upsd."""
    try:
        out = subprocess.run([str(NUT_SBIN / "upsd"), "-V"], capture_output=True, text=True,
                             timeout=5)
        return (out.stdout + out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "unknown"


def have_pyspy() -> str | None:
    """Path of py-spy (beside our interpreter, or on PATH), or None."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")
