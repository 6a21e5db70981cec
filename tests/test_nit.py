"""NUT's own integration test suite (NIT, ``tests/NIT/nit.sh`` of NUT v2.8.0), with upsd
replaced by ``upsagent master --nut-config DIR --nut-drivers``.

nit.sh starts ``upsd``, ``dummy-ups`` and ``upsc`` by name from ``$PATH``, with the current
directory first, and writes its configuration into ``$NUT_CONFPATH`` (``STATEPATH`` in
upsd.conf, ``NUT_STATEPATH`` in the environment).  So it is run from a copy of NUT's source
layout (``tests/NIT/nit.sh``, ``data/*.seq|dev``, ``scripts/python/module/test_nutclient.py``;
tests/data/nit/, see tests/data/SOURCES.md) where ``tests/NIT/upsd`` is a three-line
script starting our master; everything else is Debian's NUT 2.8.0.  With the source layout
nit.sh runs all twelve of its checks: upsd refusing three broken configurations, running
without devices, "Driver not connected" before the drivers start, the dump of three
dummy-ups drivers afterwards (one playing NUT's evolution500.seq, one an ePDU .dev),
a bogus variable, the TIMER flip of a .seq file, and NUT's PyNUT test script without and
with credentials (PyNUT is the PyNUTClient package of our test dependencies).

The same run with Debian's own upsd is the reference (``upsd`` parameter): both must
pass 12 of 12.  As root, NUT's daemons would switch to the ``nut`` user, who cannot enter
nit.sh's state directory; so then ``dummy-ups`` (and the reference upsd) get ``-u root``
through equally small scripts in the same place.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests import nutreal

DATA = Path(__file__).parent / "data" / "nit"
NUT_DIR = "/lib/nut"


def _missing() -> str | None:
    reason = nutreal.nut_missing(clients=True)
    if reason:
        return reason
    if shutil.which("upsmon", path=f"{NUT_DIR}:/usr/sbin:/sbin:/usr/bin") is None:
        return "NUT's upsmon not found (nit.sh wants it in $PATH)"
    try:
        import PyNUTClient.PyNUT  # noqa: F401
    except ImportError:
        return "PyNUTClient is not installed (pip install -e '.[test]')"
    return None


def _script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _layout(top: Path, server: str) -> Path:
    """NUT's source layout under ``top`` with ``server`` as upsd; returns tests/NIT."""
    nit = top / "tests" / "NIT"
    data = top / "data"
    module = top / "scripts" / "python" / "module"
    for directory in (nit, data, module):
        directory.mkdir(parents=True)
    shutil.copy(DATA / "nit.sh", nit / "nit.sh")
    for name in ("evolution500.seq", "epdu-managed.dev"):
        shutil.copy(DATA / name, data / name)
    client = (DATA / "test_nutclient.py.in").read_text().replace("@PYTHON@", sys.executable)
    _script(module / "test_nutclient.py", client)
    (module / "PyNUT.py").write_text("from PyNUTClient.PyNUT import *  # noqa: F401,F403\n")
    root = os.geteuid() == 0
    user = ' -u root' if root else ''
    if server == "upsagent":
        _script(nit / "upsd", "#!/bin/sh\n# upsd -F: the master always runs in the foreground\n"
                f'exec {sys.executable} -m upsagent master --nut-config "$NUT_CONFPATH" '
                "--nut-drivers\n")
    elif root:
        _script(nit / "upsd", f'#!/bin/sh\nexec {NUT_DIR}/upsd{user} "$@"\n')
    if root:
        _script(nit / "dummy-ups", f'#!/bin/sh\nexec {NUT_DIR}/dummy-ups{user} "$@"\n')
    return nit


@pytest.mark.skipif(_missing() is not None, reason=_missing() or "")
@pytest.mark.parametrize("server", ["upsd", "upsagent"])
def test_nit_passes(tmp_path: Path, server: str) -> None:
    """nit.sh of NUT 2.8.0: PASSED=12 FAILED=0, with NUT's upsd and with our master."""
    nit = _layout(tmp_path / "nut", server)
    path = os.pathsep.join([str(nit), NUT_DIR, "/usr/sbin", "/usr/bin", "/sbin", "/bin"])
    # no TMPDIR: nit.sh then makes its state directory in /dev/shm or /tmp, as socket
    # paths must stay short
    env = {"PATH": path, "NUT_PORT": str(nutreal.free_port()),
           "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    process = subprocess.Popen(["sh", str(nit / "nit.sh")], cwd=nit, env=env,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = process.communicate(timeout=240)
    finally:
        nutreal._kill_group(process, 2.0)  # daemons nit.sh left behind, if it failed
    rc, text = process.returncode, out.decode("utf-8", "replace")
    result = re.search(r"OVERALL: PASSED=(\d+) FAILED=(\d+)", text)
    assert result is not None, text
    assert (rc, result.group(1), result.group(2)) == (0, "12", "0"), text
    if server == "upsagent":  # it was our master that passed
        assert "UPS dummy: served by NUT's driver dummy-ups through" in text, text
