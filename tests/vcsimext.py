"""vcsim-ext (tests/vcsim/main.go), the vCenter simulator the vsphere tests run against.

:func:`binary` builds it from Debian's govmomi sources (``golang-github-vmware-govmomi-dev``,
``golang-go``) offline (GOPATH=/usr/share/gocode, GO111MODULE=off, GOPROXY=off) into
``build/vcsim/<hash of the sources>/vcsim-ext`` and reuses it while the sources are
unchanged (``make vcsim`` does the same).  :class:`Vcsim` runs one instance on a free
loopback port; the model is one DRS cluster ``DC0_C0`` of hosts ``DC0_C0_H<i>`` with VMs
``DC0_C0_H<i>_VM<j>``; :meth:`Vcsim.state` and :meth:`Vcsim.control` use its ``/_ext``
interface (see the header of main.go).  With ``-esx`` the process is a direct ESXi
endpoint instead (one host, ``-esx-name``; tests/vcsim/esx.go) that exits once the host is
shut down (:meth:`Vcsim.gone`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import ssl
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "tests" / "vcsim"
GOPATH = "/usr/share/gocode"
USER, PASSWORD = "upsagent@vsphere.local", "s3cret"


def available() -> str | None:
    """Why the simulator cannot be built here, or None."""
    if shutil.which("go") is None:
        return "golang-go is not installed (make sysdeps)"
    if not Path(GOPATH, "src/github.com/vmware/govmomi/simulator").is_dir():
        return "golang-github-vmware-govmomi-dev is not installed (make sysdeps)"
    return None


def binary() -> Path:
    """The built simulator, built now if its sources changed."""
    digest = hashlib.sha256()
    for path in sorted(SOURCES.glob("*.go")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    out = ROOT / "build" / "vcsim" / digest.hexdigest()[:16] / "vcsim-ext"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, GOPATH=GOPATH, GO111MODULE="off", GOPROXY="off",
                   GOFLAGS="", GOCACHE=str(ROOT / "build" / "vcsim" / "gocache"))
        tmp = out.with_suffix(".tmp")
        subprocess.run(["go", "build", "-o", str(tmp), "."], cwd=SOURCES, env=env,
                       check=True, timeout=600)
        tmp.rename(out)
    return out


class Vcsim:
    """One simulator process: ``url`` (https), ``sha256`` of its certificate, ``cert``
    (its PEM file, also its CA)."""

    def __init__(self, workdir: Path, *args: str) -> None:
        self.cert = workdir / "vcsim-cert.pem"
        self.proc = subprocess.Popen(
            [str(binary()), "-l", "127.0.0.1:0", "-tls", "-cert-out", str(self.cert),
             "-username", USER, "-password", PASSWORD, *args],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if len(line) < 3 or line[0] not in ("vCenter", "ESXi"):
            self.stop()
            raise RuntimeError(f"vcsim-ext did not start: {line}")
        self.url = line[1]
        self.sha256 = "SHA256:" + line[2].split("=", 1)[1]
        self._ctx = ssl.create_default_context(cafile=str(self.cert))

    def _ext(self, path: str, method: str = "GET") -> bytes:
        base = self.url.rsplit("/sdk", 1)[0]
        request = urllib.request.Request(base + path, method=method)
        with urllib.request.urlopen(request, context=self._ctx, timeout=10) as reply:
            data: bytes = reply.read()
            return data

    def state(self) -> dict[str, Any]:
        """Hosts and VMs as the simulator has them."""
        state: dict[str, Any] = json.loads(self._ext("/_ext/state"))
        return state

    def host(self, name: str) -> dict[str, Any]:
        return next(h for h in self.state()["hosts"] if h["name"] == name)

    def vm(self, name: str) -> dict[str, Any]:
        return next(v for v in self.state()["vms"] if v["name"] == name)

    def calls(self) -> dict[str, list[str]]:
        """The SOAP calls made on each host and its VMs (``Method`` or ``Method VM``), by
        host name: a host that is not there was never touched."""
        calls: dict[str, list[str]] = json.loads(self._ext("/_ext/calls"))
        return calls

    def control(self, what: str, **query: str) -> None:
        """POST /_ext/<what>?query (host power, vm tools/hang, drs, down, stuck)."""
        qs = "&".join(f"{k}={v}" for k, v in query.items())
        self._ext(f"/_ext/{what}?{qs}", "POST")

    def gone(self) -> bool:
        """The process has exited (an ``-esx`` endpoint whose host was shut down)."""
        return self.proc.poll() is not None

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
