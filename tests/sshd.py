"""A real OpenSSH server (Debian's ``openssh-server``) for the tests, on 127.0.0.1.

:func:`start_sshd` runs ``/usr/sbin/sshd -D -e`` with a configuration, a host key and an
``authorized_keys`` of its own in a temporary folder, on a free high port, logging in the
user the tests run as (no account is created, no system file is changed; when the tests
run as root, the privilege separation folder ``/run/sshd`` that Debian's service would
create is made if missing).  :func:`recorder` writes a remote program that records the
arguments it received, one per line, so a test sees exactly what the remote side was
asked to run.
"""

from __future__ import annotations

import getpass
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.ourmaster import free_port

__all__ = ["SSHD", "Sshd", "free_port", "recorder", "sshd", "start_sshd"]

SSHD = "/usr/sbin/sshd"


@dataclass
class Sshd:
    """A running sshd: its port, the files the client needs, the process."""

    port: int
    user: str
    key_file: Path
    known_hosts: Path
    host_pub: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        """Terminate sshd (this process only) and wait for it."""
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
                   check=True)


def start_sshd(directory: Path) -> Sshd:
    """Start sshd on a free port of 127.0.0.1 with everything kept in ``directory``."""
    user = getpass.getuser()
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    host_key = directory / "ssh_host_ed25519_key"
    client_key = directory / "id_ed25519"
    _keygen(host_key)
    _keygen(client_key)
    authorized = directory / "authorized_keys"
    authorized.write_text(client_key.with_suffix(".pub").read_text())
    os.chmod(authorized, 0o600)
    port = free_port()
    config = directory / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
        f"PidFile {directory / 'sshd.pid'}\nAuthorizedKeysFile {authorized}\n"
        "StrictModes no\nUsePAM no\nPasswordAuthentication yes\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin yes\nPubkeyAuthentication yes\n"
        f"AllowUsers {user}\nMaxStartups 50\nLogLevel VERBOSE\n")
    host_pub = (host_key.with_suffix(".pub")).read_text().split()
    known_hosts = directory / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    log = directory / "sshd.log"
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)],
                               stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited: {log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        process.kill()
        raise RuntimeError("sshd did not listen")
    return Sshd(port, user, client_key, known_hosts, f"{host_pub[0]} {host_pub[1]}",
                process, log)


def recorder(directory: Path, name: str = "record") -> tuple[Path, Path]:
    """A remote program (``directory/name``) that appends its arguments, one per line,
    then ``--`` to ``directory/name.out``, prints ``recorded`` and exits 0; the two
    paths."""
    out = directory / f"{name}.out"
    script = directory / name
    script.write_text("#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done >> "
                      f"'{out}'\necho -- >> '{out}'\necho recorded\necho to-stderr >&2\n")
    os.chmod(script, 0o755)
    return script, out


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """One sshd for a test module (import this fixture into the module that uses it)."""
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    try:
        yield server
    finally:
        server.stop()

