"""slave-rss: the idle resident memory of ``upsagent slave`` watching one UPS, installed with
and without the ``tls`` extra, next to Debian's upsmon watching the same UPS.

The server is NUT's upsd with dummy-ups on the bench UPS (:func:`servers.start_nut`).  Each
watcher runs alone, one after the other, as a ``secondary`` on that UPS with POLLFREQ 5 (both
programs' default): it is started, must log in (upsd's ``NUMLOGINS``), is left alone for a
settling period and then sampled every 0.2 s over the idle window; the figures are the RSS
(``VmRSS``) and PSS (``smaps_rollup``) at the end of the window and the peak RSS in it.

* ``upsmon``: ``/lib/nut/upsmon -D`` (``/sbin/upsmon`` is Debian's wrapper that refuses to
  run unless /etc/nut/nut.conf says so), in a private ``/run/nut`` mount namespace for its
  PID file, with NUT_CONFPATH pointing at its upsmon.conf.  upsmon forks: a privileged
  parent that waits to run SHUTDOWNCMD and the child that monitors.  Both processes are
  counted (their RSS added: shared pages are counted twice, which their PSS, added too,
  does not).
* ``ours, no tls extra``: a venv made with ``pip install <repo>`` and no extras (no pyOpenSSL;
  :func:`notls_venv` creates it in ``bench/out/venv-notls`` when it is missing, and checks
  that ``import OpenSSL`` fails there), running the checkout under test (``PYTHONPATH``;
  ``--ours-src`` names another), so that the code measured is this checkout's, with
  Twisted as a small VM gets it.
* ``ours, tls extra``: this interpreter's venv, which must have pyOpenSSL: Twisted's TCP
  module then loads OpenSSL and cryptography at import.  The session itself stays plain
  text (upsd here has no certificate): the cost measured is that of having TLS installed.

Both our slaves read the same upsagent.toml: ``[slave]`` with one ``[[slave.monitor]]`` and
no ``[[host]]`` (this machine, as upsmon protects it).  For reference the report also gives
each interpreter's RSS alone and after ``from twisted.internet import reactor``: what any
Twisted program pays before it does anything.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from servers import REPO, UPS, PASSWORD, USER, ProcStats, Sampler, free_port, start_nut, \
    write_config

HERE = Path(__file__).resolve().parent
NOTLS_VENV = HERE / "out" / "venv-notls"
#: seconds left alone after the login, and of the idle window (full, quick)
SETTLE, WINDOW = (10.0, 3.0), (30.0, 10.0)
#: the goal for our slave without the tls extra
RSS_GOAL_MB = 30.0
UPSMON = "/lib/nut/upsmon"
SIDES = (("upsmon", "Debian upsmon 2.8.0 (parent + child)"),
         ("ours-notls", "upsagent slave, no tls extra"),
         ("ours-tls", "upsagent slave, tls extra"))


def notls_venv(path: Path = NOTLS_VENV) -> Path:
    """The python of a venv where upsagent is installed without extras (created if
    missing); fails when pyOpenSSL can be imported there."""
    python = path / "bin" / "python"
    if not python.exists():
        print(f"  creating {path}: pip install {REPO} (no extras) ...")
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", str(REPO)], check=True)
    probe = subprocess.run([str(python), "-c", "import OpenSSL"], capture_output=True)
    if probe.returncode == 0:
        raise SystemExit(f"{path} has pyOpenSSL: it is not an install without the tls extra")
    return python


def has_pyopenssl(python: str) -> bool:
    """Whether ``python`` can import pyOpenSSL."""
    return subprocess.run([python, "-c", "import OpenSSL"], capture_output=True).returncode == 0


def numlogins(port: int) -> int:
    """upsd's ``NUMLOGINS`` of the bench UPS."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET NUMLOGINS {UPS}\nLOGOUT\n".encode())
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    match = re.search(rb"NUMLOGINS \S+ (\d+)", data)
    if match is None:
        raise RuntimeError(f"no NUMLOGINS in {data!r}")
    return int(match.group(1))


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    pids = [pid]
    for p in pids:
        try:
            pids += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except OSError:
            pass
    return pids


def pss_kib(pid: int) -> int:
    """The proportional set size of ``pid`` (0 once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    match = re.search(r"^Pss:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) if match else 0


def floor_kib(python: str) -> tuple[int, int]:
    """RSS of ``python`` alone, and after importing Twisted's reactor (KiB)."""
    code = ("import re, sys\nrss = lambda: re.search(r'VmRSS:\\s+(\\d+)', "
            "open('/proc/self/status').read()).group(1)\nalone = rss()\n"
            "from twisted.internet import reactor\nprint(alone, rss())")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    alone, reactor = out.stdout.split()
    return int(alone), int(reactor)


def _start(side: str, tmp: Path, port: int, python: str,
           src: Path) -> subprocess.Popen[bytes]:
    """Start one watcher of the bench UPS on ``port`` (ours: the checkout ``src``)."""
    log = open(tmp / f"{side}.log", "wb")
    if side == "upsmon":
        conf = tmp / "upsmon"
        conf.mkdir(exist_ok=True)
        (conf / "upsmon.conf").write_text(
            f"MONITOR {UPS}@127.0.0.1:{port} 1 {USER} {PASSWORD} secondary\n"
            'SHUTDOWNCMD "/bin/true"\nRUN_AS_USER root\n')
        (conf / "upsmon.conf").chmod(0o600)
        env = dict(os.environ, NUT_CONFPATH=str(conf), NUT_STATEPATH=str(conf))
        argv = ["unshare", "--mount", "sh", "-c",
                f"mount -t tmpfs upsmon-run /run/nut && exec {UPSMON} -D"]
        cwd = tmp
    else:
        toml = tmp / "slave.toml"
        toml.write_text(f'[slave]\nname = "vm"\nstate_file = "{tmp}/{side}.json"\n'
                        'shutdown_command = ["/bin/true"]\n[[slave.monitor]]\n'
                        f'ups = "{UPS}@127.0.0.1:{port}"\nuser = "{USER}"\n'
                        f'password = "{PASSWORD}"\n')
        toml.chmod(0o600)
        env = dict(os.environ, PYTHONPATH=str(src))
        where = subprocess.run([python, "-c", "import upsagent; print(upsagent.__file__)"],
                               cwd=src, env=env, capture_output=True, text=True, timeout=30)
        if not where.stdout.strip().startswith(str(src.resolve())):
            raise RuntimeError(f"upsagent would be imported from {where.stdout.strip()!r}, "
                               f"not from {src}: {where.stderr.strip()}")
        argv = [python, "-m", "upsagent", "slave", "-c", str(toml)]
        cwd = src
    try:
        return subprocess.Popen(argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        log.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the watcher's process group, SIGKILL after 10 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def measure_one(side: str, tmp: Path, port: int, python: str, settle: float,
                window: float, src: Path = REPO) -> dict[str, Any]:
    """Start ``side``, wait for its login, let it settle, sample it over the window."""
    proc = _start(side, tmp, port, python, src)
    try:
        deadline = time.monotonic() + 30
        while numlogins(port) < 1:
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (tmp / f"{side}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{side} did not log in\n{log}")
            time.sleep(0.1)
        time.sleep(settle)
        pids = tree(proc.pid)
        stats = [ProcStats(p) for p in pids]
        with Sampler(stats) as sampler:
            time.sleep(window)
        if numlogins(port) != 1 or tree(proc.pid) != pids:
            raise RuntimeError(f"{side} changed during the window (processes {pids} -> "
                               f"{tree(proc.pid)})")
        return {"pids": len(pids),
                "comm": [Path(f"/proc/{p}/comm").read_text().strip() for p in pids],
                "rss_kib": [s.rss_kib() for s in stats],
                "peak_rss_kib": [sampler.peak_kib[s.pid] for s in stats],
                "pss_kib": [pss_kib(p) for p in pids], "settle": settle, "window": window}
    finally:
        _stop(proc)
        deadline = time.monotonic() + 15
        while numlogins(port) and time.monotonic() < deadline:
            time.sleep(0.1)


def run(args: Any, tmp: Path, dev: Path) -> dict[str, Any]:
    """The slave-rss scenario: the three watchers, one after the other, on one upsd."""
    quick = 1 if args.quick else 0
    settle, window = SETTLE[quick], args.seconds or WINDOW[quick]
    pythons = {"upsmon": "", "ours-notls": str(notls_venv()), "ours-tls": sys.executable}
    if not has_pyopenssl(sys.executable):
        raise SystemExit(f"slave-rss: {sys.executable} has no pyOpenSSL: install the project "
                         "venv with the test or tls extra")
    port = free_port()
    nut, _vars = start_nut(write_config(tmp / "slave-rss-nut", dev, port), port)
    result: dict[str, Any] = {"scenario": "slave-rss", "var_differences": [],
                              "settle": settle, "window": window, "sides": {}}
    try:
        for side, _label in SIDES:
            res = measure_one(side, tmp, port, pythons[side], settle, window,
                              args.ours_src)
            result["sides"][side] = res
            print(f"  {side:10} {res['pids']} process(es) {res['comm']}: RSS "
                  f"{mb(sum(res['rss_kib'])):.1f} MB, PSS {mb(sum(res['pss_kib'])):.1f} MB")
    finally:
        nut.stop()
    result["floor_kib"] = {side: floor_kib(pythons[side]) for side in ("ours-notls",
                                                                       "ours-tls")}
    notls = mb(sum(result["sides"]["ours-notls"]["rss_kib"]))
    result["summary"] = {"met": {f"RSS without tls <= {RSS_GOAL_MB:g} MB":
                                 notls <= RSS_GOAL_MB}}
    return result


def mb(kib: float) -> float:
    """KiB -> MB (10^6 bytes)."""
    return kib * 1024 / 1e6


def table(r: dict[str, Any]) -> list[str]:
    """The report's rows for slave-rss."""
    s = r["sides"]
    cols = [s[side] for side, _label in SIDES]
    met = r["summary"]["met"]
    goal = next(iter(met))

    def row(label: str, cells: list[str], extra: str = "| | |") -> str:
        return f"| {label} | " + " | ".join(cells) + f" {extra}"

    def total(c: dict[str, Any], key: str) -> str:
        parts = c[key]
        text = f"{mb(sum(parts)):.1f}"
        return text + (f" ({' + '.join(f'{mb(p):.1f}' for p in parts)})"
                       if len(parts) > 1 else "")

    floors = r["floor_kib"]
    rows = [
        "| | " + " | ".join(label for _s, label in SIDES) + " | target | met? |",
        "|---|---:|---:|---:|---|---|",
        row(f"**RSS** after {r['settle']:g} s settled + {r['window']:g} s idle (MB)",
            [f"**{total(c, 'rss_kib')}**" for c in cols],
            f"| no tls extra <= {RSS_GOAL_MB:g} MB | "
            f"{'**yes**' if met[goal] else '**NO**'} |"),
        row("peak RSS in the window (MB)", [total(c, "peak_rss_kib") for c in cols]),
        row("PSS (MB; shared pages divided)", [total(c, "pss_kib") for c in cols]),
        row("processes", [f"{c['pids']} ({', '.join(c['comm'])})" for c in cols]),
        row("reference: the interpreter alone / + `from twisted.internet import reactor` "
            "(MB)", ["n/a (C)", *(f"{mb(floors[k][0]):.1f} / {mb(floors[k][1]):.1f}"
                                  for k in ("ours-notls", "ours-tls"))]),
        "",
    ]
    return rows
