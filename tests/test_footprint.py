"""The slave's footprint: what a running agent imports, and the install without the ``tls``
extra (pyOpenSSL), which a slave on a small VM has.

Both run the agent in a subprocess, so that what this test process has imported does not
count: the first starts a :class:`~upsagent.agent.daemon.SlaveDaemon` (its monitor's first
connection asked for, the reactor not run) and lists ``sys.modules``; the second runs ``upsagent check-config`` and ``upsagent slave``
against our master (with STARTTLS) with ``import OpenSSL`` made to fail, as it does where the
extra is not installed.  bench/run.py's ``slave-rss`` measures the memory itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.certs import self_signed
from tests.ourmaster import OurMaster, ask, wait_for

REPO = Path(__file__).resolve().parent.parent

#: what an agent that protects its own machine must not import (the exporter, NUT's
#: ups.conf/upsd.conf and upsmon.conf parsers, the simulator, the master, other backends,
#: what only an error message needs)
NOT_IMPORTED = ("upsagent.config.export", "upsagent.config.nutconf",
                "upsagent.config.upsmonconf", "upsagent.simulator", "upsagent.master",
                "upsagent.drivers", "upsagent.cli.query", "upsagent.transport.blocking",
                "difflib")

RUN_DAEMON = """
import json, sys
from twisted.internet import reactor
from upsagent.cli.slave import build_parser, load
from upsagent.agent.daemon import SlaveDaemon
SlaveDaemon(load(build_parser().parse_args(["-c", sys.argv[1]])), reactor).start()
print(json.dumps(sorted(sys.modules)))
"""


def slave_toml(tmp_path: Path, port: int, tls: str = "", name: str = "slave") -> Path:
    """``name``.toml for a slave that protects its own machine and watches one UPS (its
    notifications go to the log only)."""
    path = tmp_path / f"{name}.toml"
    path.write_text(f'[slave]\nname = "vm"\nstate_file = "{tmp_path}/{name}.json"\n'
                    f'status_socket = "{tmp_path}/{name}.sock"\n'
                    'shutdown_command = ["/bin/true"]\n[slave.notify_flags]\n'
                    'COMMBAD = ["SYSLOG"]\nNOCOMM = ["SYSLOG"]\nCOMMOK = ["SYSLOG"]\n'
                    f'[[slave.monitor]]\nups = "dummy@127.0.0.1:{port}"\nuser = "slaveuser"\n'
                    f'password = "slavepass"\n{tls}')
    os.chmod(path, 0o600)
    return path


def test_a_running_slave_imports_only_what_it_uses(tmp_path: Path) -> None:
    """A started agent has its monitor, engine and local backend, and none of the rest."""
    out = subprocess.run([sys.executable, "-c", RUN_DAEMON, str(slave_toml(tmp_path, 3493))],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    modules = json.loads(out.stdout.splitlines()[-1])
    assert {"upsagent.agent.monitor", "upsagent.policy.policy",
            "upsagent.hypervisors.local"} <= set(modules)
    assert [m for m in modules if m.startswith(NOT_IMPORTED)] == []


#: ``upsagent`` as installed without the tls extra: ``import OpenSSL`` fails
WITHOUT_TLS = ("import sys; sys.modules['OpenSSL'] = None; "
               "from upsagent.cli.main import main; sys.exit(main(sys.argv[1:]))")
DEV = "ups.status: OL CHRG\nbattery.charge: 100\n"
UPS_CONF = "[dummy]\n  driver = dummy-ups\n  port = ups.dev\n"


def without_tls(*argv: str, **options: Any) -> subprocess.Popen[bytes]:
    """``upsagent ARGV`` in a process where pyOpenSSL cannot be imported."""
    return subprocess.Popen([sys.executable, "-c", WITHOUT_TLS, *argv], cwd=REPO, **options)


def test_without_the_tls_extra(tmp_path: Path) -> None:
    """Without pyOpenSSL the agent watches a UPS in plain text (an optional STARTTLS is not
    attempted); a monitor that requires TLS is a warning of check-config and of the start
    saying "install upsagent[tls]", and each connection says it again."""
    certificate = self_signed(tmp_path)
    with OurMaster(UPS_CONF, files={"ups.dev": DEV},
                   upsd_conf=f"LISTEN 127.0.0.1 {{port}}\nCERTFILE {certificate}\n") as master:
        plain = slave_toml(tmp_path, master.port)
        check = without_tls("check-config", "--config", str(plain), stdout=subprocess.PIPE)
        assert check.communicate(timeout=60)[0].decode().splitlines() == [
            "OK: slave: 1 monitored UPS, 1 host"]
        required = slave_toml(tmp_path, master.port, "[slave.monitor.tls]\nrequired = true\n",
                              name="required")
        check = without_tls("check-config", "--config", str(required), stdout=subprocess.PIPE)
        warning = (f"warning: {required}: slave.monitor[1].tls.required: TLS is required, "
                   "but pyOpenSSL is not installed: install upsagent[tls]; until then "
                   f"contact with dummy@127.0.0.1:{master.port} is lost at every connection")
        assert check.communicate(timeout=60)[0].decode().splitlines() == [
            warning, "OK: slave: 1 monitored UPS, 1 host"]
        assert check.returncode == 0

        for config, logins in ((plain, "1"), (required, "0")):
            log_path = tmp_path / f"{config.stem}.log"
            with open(log_path, "wb") as log:
                slave = without_tls("slave", "-c", str(config), stdout=log,
                                    stderr=subprocess.STDOUT)
            try:
                if logins == "1":
                    wait_for(lambda: ask(master.port, "GET NUMLOGINS dummy")
                             == "NUMLOGINS dummy 1\n", 30, "the slave to log in")
                else:
                    wait_for(lambda: "cannot start TLS: TLS needs pyOpenSSL: install "
                             "upsagent[tls]" in log_path.read_text(), 30,
                             f"the TLS failure\n{log_path.read_text()}")
                    assert warning.removeprefix("warning: ") in log_path.read_text()
                    assert ask(master.port, "GET NUMLOGINS dummy") == "NUMLOGINS dummy 0\n"
            finally:
                slave.terminate()
                slave.wait(30)
            if logins == "1":     # LOGOUT on SIGTERM
                wait_for(lambda: ask(master.port, "GET NUMLOGINS dummy")
                         == "NUMLOGINS dummy 0\n", 30, "the slave to log out")
