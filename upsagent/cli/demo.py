# -*- test-case-name: tests.test_demo -*-
"""``upsagent demo``: the product's main job, on a simulated UPS, in under a minute.

1. writes a NUT configuration (ups.conf, upsd.conf, upsd.users) and a dummy-ups sequence
   file into a temporary directory: the same files a NUT user already has;
2. starts ``upsagent master --nut-config DIR`` on a free loopback port (a real daemon);
3. shows the UPS with ``upsagent query`` (upsc's twin), as a NUT user would;
4. plays a power failure (mains lost, battery draining, low battery, mains back) and prints
   each change as a client logged in as a secondary sees it, on one connection;
5. stops everything it started;
6. ends with ``upsagent simulate 1-maintenance``: what the slave agents would do with a
   hypervisor host on that UPS, played on a simulated clock.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from upsagent.nut.tokenizer import tokenize_line

__all__ = ["main"]

#: a power cut as a dummy-ups sequence: the times are seconds between steps
SEQUENCE = """\
# upsagent demo: a UPS on line, then a power cut, then mains back
ups.status: OL CHRG
battery.charge: 100
battery.runtime: 1800
input.voltage: 230.0
ups.load: 35
TIMER 4
ups.status: OB DISCHRG
input.voltage: 0.0
battery.charge: 92
battery.runtime: 1500
TIMER 4
battery.charge: 61
battery.runtime: 900
TIMER 4
ups.status: OB DISCHRG LB
battery.charge: 18
battery.runtime: 240
TIMER 4
ups.status: OL CHRG
input.voltage: 229.0
battery.charge: 20
battery.runtime: 300
TIMER 600
"""

DEVICE = """\
device.mfr: Eaton
device.model: 5PX 2000
device.serial: DEMO000001
device.type: ups
ups.mfr: Eaton
ups.model: 5PX 2000
ups.serial: DEMO000001
ups.firmware: 01.14.0021
battery.charge.low: 20
battery.runtime.low: 300
battery.voltage.nominal: 48
input.voltage.nominal: 230
output.voltage: 230.0
output.frequency: 50.0
ups.realpower.nominal: 1800
ups.delay.shutdown: 20
ups.delay.start: 30
"""

#: the reference scenario the demo ends with (``upsagent simulate --list``)
SCENARIO = "1-maintenance"

WATCHED = ("ups.status", "battery.charge", "battery.runtime", "input.voltage")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _write_config(directory: Path, port: int) -> None:
    (directory / "demo.seq").write_text(DEVICE + SEQUENCE)
    (directory / "ups.conf").write_text(
        '[demo]\n  driver = dummy-ups\n  port = demo.seq\n  desc = "Demo UPS (replayed)"\n')
    (directory / "upsd.conf").write_text(f"LISTEN 127.0.0.1 {port}\n")
    users = directory / "upsd.users"
    users.write_text("[monuser]\n  password = secret\n  upsmon secondary\n")
    os.chmod(users, 0o600)


def _wait_listening(port: int, proc: "subprocess.Popen[bytes]", limit: float) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the master exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the master did not listen on port {port} within {limit:.0f} s")


class _Watcher:
    """One logged-in connection, as a secondary would hold it."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.file = self.sock.makefile("rb")
        for line in ("USERNAME monuser", "PASSWORD secret", "LOGIN demo"):
            self.ask(line)

    def ask(self, line: str) -> str:
        self.sock.sendall(line.encode() + b"\n")
        return self.file.readline().decode("ascii", "replace").rstrip("\n")

    def get(self, var: str) -> str:
        reply = self.ask(f"GET VAR demo {var}")
        words = tokenize_line(reply)
        if isinstance(words, list) and len(words) == 4 and words[0] == "VAR":
            return words[3]
        return reply

    def close(self) -> None:
        self.ask("LOGOUT")
        self.sock.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="upsagent demo",
        description="Run a master on a replayed UPS, show it, and play a power cut.")
    parser.add_argument("--seconds", type=float, default=25,
                        help="how long to watch the power cut (default 25)")
    args = parser.parse_args(argv)
    exe = [sys.executable, "-m", "upsagent"]
    with tempfile.TemporaryDirectory(prefix="upsagent-demo-") as tmp:
        directory, port = Path(tmp), _free_port()
        _write_config(directory, port)
        print(f"== upsagent master --nut-config {directory}  (NUT's own files, port {port})")
        log = open(directory / "master.log", "wb")
        proc = subprocess.Popen([*exe, "master", "--nut-config", str(directory)],
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_listening(port, proc, 15)
            target = f"127.0.0.1:{port}"
            print(f"\n== upsagent query -L {target}")
            sys.stdout.flush()
            subprocess.run([*exe, "query", "-L", target], check=True)
            print(f"\n== upsagent query demo@{target}")
            sys.stdout.flush()
            subprocess.run([*exe, "query", f"demo@{target}"], check=True)
            print("\n== power cut: what a secondary logged in to the master sees")
            _watch(port, args.seconds)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
        print("\n== master stopped; its log:")
        sys.stdout.write((directory / "master.log").read_text(errors="replace"))
    print(f"\n== upsagent simulate {SCENARIO}  (what the slaves would do, on a simulated clock)")
    sys.stdout.flush()
    return subprocess.run([*exe, "simulate", SCENARIO]).returncode


def _watch(port: int, seconds: float) -> None:
    watcher = _Watcher(port)
    start = time.monotonic()
    last: dict[str, str] = {}
    seen_battery = False
    try:
        while time.monotonic() - start < seconds:
            now = {var: watcher.get(var) for var in WATCHED}
            changed = {k: v for k, v in now.items() if last.get(k) != v}
            if changed:
                stamp = f"t={time.monotonic() - start:5.1f}s"
                print(stamp + "  " + "  ".join(f"{k}={v}" for k, v in changed.items()))
                sys.stdout.flush()
            last = now
            status = now["ups.status"].split()
            seen_battery = seen_battery or "OB" in status
            if seen_battery and "OL" in status:
                break  # mains is back after the cut: the story is told
            time.sleep(0.25)
        print(f"NUMLOGINS: {watcher.ask('GET NUMLOGINS demo')}")
    finally:
        watcher.close()

