"""Real NUT clients, unchanged, against our master (a real daemon on NUT's config files).

Peers: Debian's ``upsc``, ``upsrw``, ``upscmd``, ``upsmon`` (primary and secondary, up to
their SHUTDOWNCMD), ``upslog``; the Python libraries ``nut2``, ``PyNUTClient`` (also over
STARTTLS with certificate verification) and ``aionut``; Synology- and QNAP-style setups.
Nothing here sleeps for time to pass: every wait polls for the state it expects.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from tests.certs import self_signed as _certificate
from tests.ourmaster import OurMaster, wait_for

pytestmark = pytest.mark.skipif(shutil.which("upsc") is None or not os.path.exists(
    "/lib/nut/upsmon"), reason="NUT's clients (Debian nut-client) are not installed")

DEV = """\
device.mfr: Eaton
device.model: 5PX 2000
device.serial: G123A45678
device.type: ups
ups.mfr: Eaton
ups.model: 5PX 2000
ups.serial: G123A45678
ups.status: OL CHRG
ups.load: 23
ups.id: "Rack \\#4, row \\"B\\""
battery.charge: 100
battery.runtime: 2400
input.voltage: 230.0
"""

UPS_CONF = '[dummy]\n  driver = dummy-ups\n  port = ups.dev\n  desc = "Reference UPS"\n'


@pytest.fixture
def master() -> Iterator[OurMaster]:
    with OurMaster(UPS_CONF, files={"ups.dev": DEV}) as m:
        wait_for(lambda: query(m, "-l").returncode == 0 and ask(
            m, "GET VAR dummy ups.status").startswith("VAR"), 15, "the UPS to have data")
        yield m


def query(m: OurMaster, *args: str) -> subprocess.CompletedProcess[str]:
    """Run Debian's upsc against our master."""
    argv = ["upsc", *[a.replace("@HERE", f"@127.0.0.1:{m.port}") for a in args]]
    if args and args[0] in ("-l", "-L"):
        argv.append(f"127.0.0.1:{m.port}")
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def ask(m: OurMaster, *lines: str) -> str:
    """Send request lines on one connection and return everything the server answered."""
    with socket.create_connection(("127.0.0.1", m.port), timeout=5) as sock:
        sock.sendall("".join(line + "\n" for line in lines).encode() + b"LOGOUT\n")
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    text = b"".join(chunks).decode()
    return text.removesuffix("OK Goodbye\n")


def test_upsc(master: OurMaster) -> None:
    """upsc lists UPSes, prints all variables, one variable, and clients."""
    assert query(master, "-l").stdout == "dummy\n"
    assert query(master, "-L").stdout == "dummy: Reference UPS\n"
    out = query(master, "dummy@HERE")
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert "ups.status: OL CHRG" in lines and 'ups.id: Rack #4, row "B"' in lines
    assert "driver.name: dummy-ups" in lines
    assert query(master, "dummy@HERE", "battery.charge").stdout == "100\n"
    missing = query(master, "dummy@HERE", "no.such")
    assert missing.returncode == 1 and "Error: Variable not supported by UPS" in missing.stderr
    unknown = query(master, "nosuch@HERE")
    assert unknown.returncode == 1 and "Error: Unknown UPS" in unknown.stderr


def first_line(m: OurMaster, line: str) -> str:
    """Send one request and return the first reply line (the connection is then dropped)."""
    with socket.create_connection(("127.0.0.1", m.port), timeout=5) as sock:
        sock.sendall(line.encode() + b"\n")
        return sock.makefile("rb").readline().decode()


def test_upsrw_and_upscmd(master: OurMaster) -> None:
    """upsrw lists and sets writable variables; upscmd lists and runs commands, with -w."""
    port = master.port
    listing = subprocess.run(["upsrw", f"dummy@127.0.0.1:{port}"], capture_output=True,
                             text=True, timeout=30)
    assert listing.returncode == 0 and "[ups.load]" in listing.stdout
    setting = subprocess.run(["upsrw", "-s", "ups.load=42", "-u", "admin", "-p", "adminpass",
                              f"dummy@127.0.0.1:{port}"], capture_output=True, text=True,
                             timeout=30)
    assert setting.returncode == 0, setting.stderr
    wait_for(lambda: query(master, "dummy@HERE", "ups.load").stdout == "42\n", 10,
             "ups.load to become 42")
    denied = subprocess.run(["upsrw", "-s", "ups.load=1", "-u", "admin", "-p", "wrong",
                             f"dummy@127.0.0.1:{port}"], capture_output=True, text=True,
                            timeout=30)
    assert denied.returncode == 1 and "ERR ACCESS-DENIED" in denied.stderr
    cmds = subprocess.run(["upscmd", "-l", f"dummy@127.0.0.1:{port}"], capture_output=True,
                          text=True, timeout=30)
    assert "load.off" in cmds.stdout
    run = subprocess.run(["upscmd", "-u", "admin", "-p", "adminpass", f"dummy@127.0.0.1:{port}",
                          "load.off"], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0 and run.stderr.strip() == "OK"  # upscmd says OK on stderr
    tracked = subprocess.run(["upscmd", "-w", "-u", "admin", "-p", "adminpass",
                              f"dummy@127.0.0.1:{port}", "load.off"], capture_output=True,
                             text=True, timeout=30)
    # dummy-ups handles no instant command, so the tracked result is "unknown"
    assert tracked.stderr.strip() == "ERR UNKNOWN"


def _upsmon(directory: Path, name: str, monitor: str, shutdown_file: Path,
            hostsync: int = 5) -> subprocess.Popen[bytes]:
    conf = directory / name
    conf.mkdir()
    upsmon_conf = conf / "upsmon.conf"
    upsmon_conf.write_text(
        f"MONITOR {monitor}\nMINSUPPLIES 1\n"
        f'SHUTDOWNCMD "/bin/touch {shutdown_file}"\n'
        f"POLLFREQ 1\nPOLLFREQALERT 1\nHOSTSYNC {hostsync}\nDEADTIME 15\nFINALDELAY 0\n"
        "RUN_AS_USER root\n"
        + "".join(f"NOTIFYFLAG {t} SYSLOG\n" for t in (
            "ONLINE", "ONBATT", "LOWBATT", "FSD", "COMMOK", "COMMBAD", "SHUTDOWN",
            "REPLBATT", "NOCOMM", "NOPARENT")))
    os.chmod(upsmon_conf, 0o600)
    # upsmon 2.8.0 refuses to start while /run/nut/upsmon.pid names a live process, so
    # each one gets a private /run/nut (a mount namespace) to run side by side
    env = dict(os.environ, NUT_CONFPATH=str(conf), NUT_STATEPATH=str(conf))
    argv = ["unshare", "--mount", "sh", "-c",
            "mount -t tmpfs upsmon-run /run/nut && exec /lib/nut/upsmon -F -p"]
    with open(conf / "upsmon.log", "wb") as log:
        return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_upsmon_primary_and_secondary_follow_fsd(master: OurMaster, tmp_path: Path) -> None:
    """On OB+LB the primary upsmon sets FSD, the secondary shuts down first, then the
    primary once the secondary's session has closed."""
    target = f"dummy@127.0.0.1:{master.port}"
    sec_done, prim_done = tmp_path / "secondary-shutdown", tmp_path / "primary-shutdown"
    secondary = _upsmon(tmp_path, "sec", f"{target} 1 slaveuser slavepass secondary",
                        sec_done)
    primary = _upsmon(tmp_path, "prim", f"{target} 1 monuser monpass primary", prim_done,
                      hostsync=15)
    try:
        try:
            wait_for(lambda: ask(master, "GET NUMLOGINS dummy") == "NUMLOGINS dummy 2\n", 20,
                     "both upsmon to log in")
        except AssertionError as exc:
            logs = "".join(p.read_text(errors="replace") for p in tmp_path.glob("*/upsmon.log"))
            raise AssertionError(f"{exc}\n{ask(master, 'LIST CLIENT dummy')}\n{logs}\n"
                                 f"{master.log()}") from None
        clients = ask(master, "LIST CLIENT dummy").splitlines()
        assert clients.count("CLIENT dummy 127.0.0.1") == 2
        assert ask(master, "USERNAME admin", "PASSWORD adminpass",
                   'SET VAR dummy ups.status "OB DISCHRG LB"') == "OK\nOK\nOK\n"
        wait_for(prim_done.exists, 30, "the primary's SHUTDOWNCMD")
        assert sec_done.exists(), "the secondary must have shut down before the primary"
        assert sec_done.stat().st_mtime_ns <= prim_done.stat().st_mtime_ns
        assert ask(master, "GET VAR dummy ups.status") == (
            'VAR dummy ups.status "FSD OB DISCHRG LB"\n')
        assert "set FSD on UPS [dummy]" in master.log()
    finally:
        _stop(secondary)
        _stop(primary)


def test_upsmon_secondary_on_fsd_only(master: OurMaster, tmp_path: Path) -> None:
    """A secondary upsmon shuts down when the primary's FSD appears, even on line power."""
    done = tmp_path / "shutdown"
    mon = _upsmon(tmp_path, "sec", f"dummy@127.0.0.1:{master.port} 1 slaveuser slavepass "
                  "slave", done)
    try:
        wait_for(lambda: ask(master, "GET NUMLOGINS dummy") == "NUMLOGINS dummy 1\n", 20,
                 "upsmon to log in")
        assert not done.exists()
        assert ask(master, "USERNAME monuser", "PASSWORD monpass", "FSD dummy") == (
            "OK\nOK\nOK FSD-SET\n")
        wait_for(done.exists, 20, "the secondary's SHUTDOWNCMD")
        wait_for(lambda: ask(master, "GET NUMLOGINS dummy") == "NUMLOGINS dummy 0\n", 20,
                 "the secondary to drop its session")
    finally:
        _stop(mon)


def test_upslog(master: OurMaster) -> None:
    """upslog polls variables on one connection; a missing one shows as NA."""
    proc = subprocess.Popen(
        ["upslog", "-s", f"dummy@127.0.0.1:{master.port}", "-l", "-", "-i", "1", "-f",
         "%VAR ups.status%|%VAR battery.charge%|%VAR no.such%"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]  # banner, "logging status", data
        assert lines[0].startswith("Network UPS Tools upslog")
        assert lines[2] == "OL CHRG|100|NA\n"
    finally:
        _stop(proc)  # type: ignore[arg-type]


def test_nut2(master: OurMaster) -> None:
    """The nut2 library works, including MASTER+FSD; its LIST CLIENTS fails as on NUT."""
    import nut2

    client = nut2.PyNUTClient(host="127.0.0.1", port=master.port, login="admin",
                              password="adminpass")
    assert client.list_ups() == {"dummy": "Reference UPS"}
    assert client.list_vars("dummy")["ups.status"] == "OL CHRG"
    assert client.get_var("dummy", "battery.charge") == "100"
    assert client.var_description("dummy", "ups.status") == "UPS status"
    assert client.list_commands("dummy") == {"load.off": "Turn off the load immediately"}
    client.set_var("dummy", "ups.load", "55")
    wait_for(lambda: client.get_var("dummy", "ups.load") == "55", 10, "ups.load=55")
    client.run_command("dummy", "load.off")
    with pytest.raises(nut2.PyNUTError):
        client.list_clients("dummy")
    mon = nut2.PyNUTClient(host="127.0.0.1", port=master.port, login="monuser",
                           password="monpass")
    mon.fsd("dummy")
    assert client.get_var("dummy", "ups.status") == "FSD OL CHRG"


def test_pynutclient_over_starttls(tmp_path: Path) -> None:
    """PyNUTClient talks plain and over STARTTLS with the certificate verified."""
    from PyNUTClient.PyNUT import PyNUTClient

    pem = _certificate(tmp_path)
    with OurMaster(UPS_CONF, files={"ups.dev": DEV}) as m:
        (m.dir / "upsd.conf").write_text(f"LISTEN 127.0.0.1 {m.port}\nCERTFILE {pem}\n")
        m.signal(signal.SIGHUP)  # reload picks up the certificate
        wait_for(lambda: first_line(m, "STARTTLS") == "OK STARTTLS\n", 10,
                 "STARTTLS to be offered after SIGHUP")
        wait_for(lambda: ask(m, "GET VAR dummy ups.status").startswith("VAR"), 15, "data")
        tls = PyNUTClient(host="127.0.0.1", port=m.port, login="monuser", password="monpass",
                          use_ssl=True, force_ssl=True, cert_verify=True, ca_file=str(pem))
        assert tls.GetUPSVars("dummy")[b"ups.status"] == b"OL CHRG"
        tls.DeviceLogin("dummy")
        plain = PyNUTClient(host="127.0.0.1", port=m.port, login="admin", password="adminpass")
        assert plain.GetUPSList() == {b"dummy": b"Reference UPS"}
        assert plain.GetUPSVars("dummy")[b"ups.status"] == b"OL CHRG"
        tls.FSD("dummy")  # PRIMARY, then FSD, over TLS
        assert plain.GetUPSVars("dummy")[b"ups.status"] == b"FSD OL CHRG"
        assert b"load.off" in plain.GetUPSCommands("dummy")
        assert plain.ListClients("dummy") == {b"dummy": [b"127.0.0.1"]}
        assert "switched to TLS" in m.log()


def test_upsc_over_starttls(tmp_path: Path) -> None:
    """upsc opens with STARTTLS; with a certificate configured it still gets its data."""
    pem = _certificate(tmp_path)
    port_holder = OurMaster(UPS_CONF, files={"ups.dev": DEV})
    (port_holder.dir / "upsd.conf").write_text(
        f"LISTEN 127.0.0.1 {port_holder.port}\nCERTFILE {pem}\n")
    with port_holder as m:
        wait_for(lambda: query(m, "dummy@HERE", "ups.status").stdout == "OL CHRG\n", 20,
                 "upsc to read ups.status")


def test_aionut(master: OurMaster) -> None:
    """aionut (Home Assistant) lists, reads, describes and runs a command."""
    from aionut import AIONUTClient

    async def session() -> None:
        client = AIONUTClient(host="127.0.0.1", port=master.port, username="admin",
                              password="adminpass")
        try:
            assert await client.list_ups() == {"dummy": "Reference UPS"}
            variables = await client.list_vars("dummy")
            assert variables["ups.status"] == "OL CHRG"
            assert await client.description("dummy") == "Reference UPS"
            assert "load.off" in await client.list_commands("dummy")
            await client.run_command("dummy", "load.off")
        finally:
            client.disconnect()

    asyncio.run(session())


@pytest.mark.parametrize("ups,user,password,role", [
    ("ups", "monuser", "secret", "slave"),          # Synology DSM
    ("qnapups", "admin", "123456", "slave"),        # QNAP QTS
])
def test_nas_style_setups(tmp_path: Path, ups: str, user: str, password: str,
                          role: str) -> None:
    """A NAS with fixed names (upsmon as secondary) logs in and follows FSD."""
    users = f"[{user}]\n  password = {password}\n  upsmon {role}\n" + (
        "[boss]\n  password = bosspass\n  upsmon master\n")
    conf = f"[{ups}]\n  driver = dummy-ups\n  port = ups.dev\n"
    with OurMaster(conf, upsd_users=users, files={"ups.dev": DEV}) as m:
        wait_for(lambda: ask(m, f"GET VAR {ups} ups.status").startswith("VAR"), 15, "data")
        done = tmp_path / "nas-shutdown"
        mon = _upsmon(tmp_path, "nas", f"{ups}@127.0.0.1:{m.port} 1 {user} {password} {role}",
                      done)
        try:
            wait_for(lambda: ask(m, f"GET NUMLOGINS {ups}") == f"NUMLOGINS {ups} 1\n", 20,
                     "the NAS to log in")
            assert ask(m, "USERNAME boss", "PASSWORD bosspass", f"FSD {ups}") == (
                "OK\nOK\nOK FSD-SET\n")
            wait_for(done.exists, 20, "the NAS to shut down")
        finally:
            _stop(mon)


def test_sighup_reload_keeps_clients(master: OurMaster, tmp_path: Path) -> None:
    """SIGHUP re-reads users and UPSes while a logged-in upsmon session stays up."""
    done = tmp_path / "shutdown"
    mon = _upsmon(tmp_path, "sec", f"dummy@127.0.0.1:{master.port} 1 slaveuser slavepass "
                  "secondary", done)
    try:
        wait_for(lambda: ask(master, "GET NUMLOGINS dummy") == "NUMLOGINS dummy 1\n", 20,
                 "upsmon to log in")
        (master.dir / "ups.conf").write_text(
            UPS_CONF + '[second]\n  driver = dummy-ups\n  port = ups.dev\n')
        users = master.dir / "upsd.users"
        users.write_text(users.read_text().replace("adminpass", "newpass"))
        master.signal(signal.SIGHUP)
        wait_for(lambda: "Configuration reloaded" in master.log(), 10, "the reload")
        assert query(master, "-l").stdout == "dummy\nsecond\n"
        assert ask(master, "GET NUMLOGINS dummy") == "NUMLOGINS dummy 1\n"
        assert ask(master, "USERNAME admin", "PASSWORD newpass", "FSD dummy") == (
            "OK\nOK\nOK FSD-SET\n")
        wait_for(done.exists, 20, "the secondary, still connected, to follow the FSD")
    finally:
        _stop(mon)
