"""Run snmpsim (the real SNMP agent simulator) on a loopback UDP port for the SNMP tests.

::

    with Snmpsim(tmp_path, {"ups": walk_text}) as sim:      # community "ups"
        ... sim.host, sim.port ...
        sim.stop(); sim.start()                              # the card goes silent, returns

Each data file is served under its name as the v1/v2c community; ``self.snmprec`` (a file
named ``self``) answers SNMPv3 requests with an empty context, as real cards do.  The v3 user
is ``simulator`` with the keys and protocols given.  Waiting for the simulator polls its log
for the listening line (bounded); nothing sleeps for time to pass.  Only 127.0.0.x addresses
and ports 16100-16199 are used.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from tests.ourmaster import stop_process
from upsagent.drivers.snmp.values import parse_oid

__all__ = ["Snmpsim", "free_udp_port", "sorted_walk"]

BIN = Path(sys.executable).parent / "snmpsim-command-responder"


_taken: set[int] = set()


def free_udp_port() -> int:
    """A UDP port in 16100-16199 not handed out before in this process and that binds both
    on 127.0.0.1 and as a wildcard (so that several 127.0.0.x may use it).  snmpsim's
    sockets do not always make a later bind fail, hence the record of ports handed out;
    the start is random so that test runs side by side rarely meet."""
    start = random.randrange(100)
    for offset in range(100):
        port = 16100 + (start + offset) % 100
        if port not in _taken and all(_bindable(host, port)
                                      for host in ("127.0.0.1", "0.0.0.0")):
            _taken.add(port)
            return port
    raise RuntimeError("no free UDP port in 16100-16199")


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def sorted_walk(text: str, extra: str = "") -> str:
    """``text`` plus ``extra`` snmprec lines, sorted by OID (snmpsim walks in file order)."""
    lines = [line for line in (text + "\n" + extra).splitlines() if line.strip()]
    lines.sort(key=lambda line: parse_oid(line.split("|", 1)[0]))
    return "\n".join(lines) + "\n"


class Snmpsim:
    """snmpsim-command-responder serving ``files`` (community -> snmprec text)."""

    def __init__(self, workdir: Path, files: dict[str, str], host: str = "127.0.0.1",
                 port: int | None = None, auth_proto: str = "SHA256",
                 priv_proto: str = "AES", endpoints: tuple[str, ...] = ()) -> None:
        self.dir = workdir / f"snmpsim-{id(self)}"
        (self.dir / "data").mkdir(parents=True)
        (self.dir / "cache").mkdir()
        for name, text in files.items():
            (self.dir / "data" / f"{name}.snmprec").write_text(text)
        self.host = host
        self.port = port or free_udp_port()
        self.endpoints = endpoints or (f"{host}:{self.port}",)
        self.auth = (auth_proto, "auctoritas")
        self.priv = (priv_proto, "privatus")
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.dir / "snmpsim.log"

    def start(self, timeout: float = 20.0) -> "Snmpsim":
        if self.log_path.exists():
            self.log_path.unlink()
        args = [str(BIN), f"--data-dir={self.dir / 'data'}", f"--cache-dir={self.dir / 'cache'}",
                "--v3-user=simulator", f"--v3-auth-key={self.auth[1]}",
                f"--v3-auth-proto={self.auth[0]}", f"--v3-priv-key={self.priv[1]}",
                f"--v3-priv-proto={self.priv[0]}", f"--logging-method=file:{self.log_path}"]
        args += [f"--agent-udpv4-endpoint={endpoint}" for endpoint in self.endpoints]
        env = dict(os.environ, SNMPSIM_ALLOW_ROOT="true")
        out = open(self.dir / "snmpsim.out", "ab")
        self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        out.close()
        deadline = time.monotonic() + timeout
        want = len(self.endpoints)
        while True:
            text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
            if text.count("Listening at UDP/IPv4 endpoint") >= want:
                return self
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"snmpsim did not start:\n{text}\n"
                                     f"{(self.dir / 'snmpsim.out').read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        self.proc = None

    def __enter__(self) -> "Snmpsim":
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
