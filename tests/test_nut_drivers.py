"""Our master serving NUT's own driver processes through their sockets (issue 8).

Debian's real ``dummy-ups`` (2.8.0) runs from ``.dev`` and ``.seq`` files, and in repeater
mode, with ``NUT_STATEPATH`` at a temporary directory; our master runs as a daemon
(``upsagent master --nut-config DIR --nut-drivers``, ``STATEPATH`` at that directory).
Where it helps, NUT's own upsd reads the same driver processes at the same time
(:func:`tests.nutreal.nut_server`) and both answers are compared.  Misbehaving drivers are
played by a Python Unix-socket server (:class:`FakeDriver`).  Nothing sleeps for time to
pass: every wait polls for a condition with a deadline.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests import nutreal
from tests.ourmaster import OurMaster, ask

USERS = """\
[admin]
  password = adminpass
  actions = SET
  instcmds = ALL
"""
DEV = """\
ups.mfr: "Test \\"Manufacturer\\""
ups.model: Model 1
ups.status: OL
battery.charge: 100
battery.runtime: 1800
device.contact: "C:\\\\UPS \\#4"
input.voltage: 230
"""
SEQ = """\
ups.status: OL
battery.charge: 100
TIMER 1
ups.status: OB DISCHRG
battery.charge: 90
TIMER 1
"""
UPS_CONF = """\
[dev]
  driver = dummy-ups
  port = dev.dev
  desc = "from a .dev file"
[seq]
  driver = dummy-ups
  port = seq.seq
"""

pytestmark = pytest.mark.skipif(nutreal.nut_missing() is not None,
                                reason=nutreal.nut_missing() or "")


def our_master(nut_dir: Path, ups_conf: str, maxage: int = 5) -> OurMaster:
    """Our master reading ``ups_conf`` with every UPS served by NUT's drivers in
    ``nut_dir`` (its STATEPATH)."""
    return OurMaster(ups_conf, USERS, args=("--nut-drivers",),
                     upsd_conf=f"LISTEN 127.0.0.1 {{port}}\nMAXAGE {maxage}\n"
                               f"STATEPATH {nut_dir}\n")


def status(port: int, ups: str) -> str:
    """The reply to GET VAR <ups> ups.status ("" when the master does not answer)."""
    try:
        return ask(port, f"GET VAR {ups} ups.status").strip()
    except OSError:
        return ""


def wait_status(port: int, ups: str, wanted: str | Callable[[str], bool],
                timeout: float = 20.0, log: Callable[[], str] = lambda: "") -> str:
    """Poll until the status reply contains ``wanted`` (or satisfies it); return it."""
    check = wanted if callable(wanted) else (lambda reply: wanted in reply)
    seen: list[str] = []

    def ok() -> bool:
        seen.append(status(port, ups))
        return check(seen[-1])

    try:
        nutreal.wait_for(ok, timeout, "", 0.05)
    except TimeoutError:
        raise AssertionError(f"{ups}: status never showed {wanted!r}; last {seen[-3:]}\n"
                             f"{log()}") from None
    return seen[-1]


def session(port: int, *lines: str) -> list[str]:
    """Send ``lines`` on one connection; the reply lines (LIST blocks included)."""
    return ask(port, *lines).splitlines()


@contextlib.contextmanager
def drivers_only(ups_conf: str, files: dict[str, str],
                 drivers: list[str]) -> Iterator[nutreal.NutServer]:
    """NUT's dummy-ups processes without upsd (NutServer used for its driver control)."""
    nutreal.require_nut()
    import tempfile

    directory = Path(tempfile.mkdtemp(prefix="nutdrv-"))
    os.chmod(directory, 0o755)
    (directory / "ups.conf").write_text(ups_conf)
    for name, text in files.items():
        (directory / name).write_text(text)
    user_args = ["-u", "root"] if os.geteuid() == 0 else []
    nut = nutreal.NutServer(directory, "127.0.0.1", 0, nutreal._sections(ups_conf), user_args)
    try:
        for name in drivers:
            nut.start_driver(name)
        yield nut
    finally:
        nut.stop()
        import shutil

        shutil.rmtree(directory, ignore_errors=True)


# -- the data, compared with upsd reading the same drivers ---------------------------------


def test_dump_arrives_as_upsd_sees_it() -> None:
    """Both servers on the same dummy-ups: LIST VAR, LIST RW, LIST CMD and types are
    byte-for-byte the same; a .seq file's changes show up."""
    with nutreal.nut_server(UPS_CONF, upsd_conf="MAXAGE 5\n", upsd_users=USERS,
                            files={"dev.dev": DEV, "seq.seq": SEQ}) as nut, \
            our_master(nut.directory, UPS_CONF) as master:
        wait_status(master.port, "dev", "VAR", log=master.log)
        questions = ["LIST VAR dev", "LIST RW dev", "LIST CMD dev", "GET TYPE dev ups.mfr",
                     "GET TYPE dev driver.name", "GET VAR dev device.contact",
                     "LIST UPS", "GET UPSDESC dev"]
        for question in questions:
            assert session(master.port, question) == nut.request(question), question
        assert 'VAR dev device.contact "C:\\\\UPS \\#4"' in session(master.port,
                                                                   "LIST VAR dev")
        seen = {wait_status(master.port, "seq", '"OL"', log=master.log),
                wait_status(master.port, "seq", '"OB DISCHRG"', log=master.log)}
        assert seen == {'VAR seq ups.status "OL"', 'VAR seq ups.status "OB DISCHRG"'}


def test_set_and_instcmd_reach_the_driver_with_tracking() -> None:
    """SET VAR and INSTCMD go to dummy-ups; GET TRACKING reports the driver's answers:
    SUCCESS for the SET (the new value comes back from the driver), ERR UNKNOWN for
    load.off, which dummy-ups does not handle."""
    with drivers_only(UPS_CONF, {"dev.dev": DEV, "seq.seq": SEQ}, ["dev"]) as nut, \
            our_master(nut.directory, UPS_CONF) as master:
        wait_status(master.port, "dev", "VAR", log=master.log)
        with socket.create_connection(("127.0.0.1", master.port), timeout=5) as sock:
            lines = LineSocket(sock)
            for request in ("USERNAME admin", "PASSWORD adminpass", "SET TRACKING ON"):
                assert lines.ask(request) == "OK"
            set_id = lines.ask('SET VAR dev ups.status "OB LB"').removeprefix("OK TRACKING ")
            cmd_id = lines.ask("INSTCMD dev load.off").removeprefix("OK TRACKING ")
            assert re.fullmatch(r"[0-9A-F-]{36}", set_id) and set_id != cmd_id

            def answer(ident: str) -> str:
                reply = ""

                def done() -> bool:
                    nonlocal reply
                    reply = lines.ask(f"GET TRACKING {ident}")
                    return reply != "PENDING"

                nutreal.wait_for(done, 10, f"tracking {ident} stayed PENDING")
                return reply

            assert (answer(set_id), answer(cmd_id)) == ("SUCCESS", "ERR UNKNOWN")
        wait_status(master.port, "dev", '"OB LB"', log=master.log)
        log = (nut.directory / "driver-dev.log").read_text()
        assert "instcmd: unknown command [load.off]" in log


class LineSocket:
    """One request, one reply line, on an open connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def ask(self, line: str) -> str:
        self.sock.sendall(line.encode() + b"\n")
        while b"\n" not in self.buffer:
            data = self.sock.recv(4096)
            if not data:
                raise ConnectionError("closed")
            self.buffer += data
        reply, self.buffer = self.buffer.split(b"\n", 1)
        return reply.decode()


# -- the driver going away and coming back -------------------------------------------------


def test_frozen_driver_is_stale_killed_not_connected_restarted_back() -> None:
    """SIGSTOP: no PONG, stale after MAXAGE; SIGCONT: fresh again.  Killed: not connected
    at once (upsd's sstate_disconnect), and back with a fresh dump once it restarts."""
    with drivers_only(UPS_CONF, {"dev.dev": DEV, "seq.seq": SEQ}, ["dev"]) as nut, \
            our_master(nut.directory, UPS_CONF, maxage=3) as master:
        port = master.port
        wait_status(port, "dev", '"OL"', log=master.log)
        nut.freeze_driver("dev")
        started = time.monotonic()
        wait_status(port, "dev", "ERR DATA-STALE", timeout=15, log=master.log)
        assert time.monotonic() - started >= 2.0  # not before MAXAGE (3 s, checked each 1 s)
        nut.thaw_driver("dev")
        wait_status(port, "dev", '"OL"', log=master.log)
        nut.freeze_driver("dev")
        wait_status(port, "dev", "ERR DATA-STALE", timeout=15, log=master.log)
        nut.stop_driver("dev")  # SIGTERM + SIGCONT: it exits, the socket closes
        wait_status(port, "dev", "ERR DRIVER-NOT-CONNECTED", timeout=5, log=master.log)
        (nut.directory / "dev.dev").write_text(DEV.replace("OL", "OB"))
        nut.start_driver("dev")
        wait_status(port, "dev", '"OB"', timeout=15, log=master.log)
        assert "lost NUT's driver" in master.log()


def test_killed_driver_is_not_connected_at_once() -> None:
    """SIGKILL: the socket closes and the UPS is not connected at once, as with upsd."""
    with drivers_only(UPS_CONF, {"dev.dev": DEV, "seq.seq": SEQ}, ["dev"]) as nut, \
            our_master(nut.directory, UPS_CONF) as master:
        wait_status(master.port, "dev", '"OL"', log=master.log)
        os.killpg(nut.drivers["dev"].pid, signal.SIGKILL)
        started = time.monotonic()
        wait_status(master.port, "dev", "ERR DRIVER-NOT-CONNECTED", timeout=5,
                    log=master.log)
        assert time.monotonic() - started < 2.0
        nut.drivers.pop("dev").wait()
        nut.start_driver("dev")  # dummy-ups removes the stale socket file and binds anew
        wait_status(master.port, "dev", '"OL"', timeout=15, log=master.log)


def test_upsd_started_before_its_drivers() -> None:
    """Not connected while the socket is missing; served once the driver starts."""
    with drivers_only(UPS_CONF, {"dev.dev": DEV, "seq.seq": SEQ}, []) as nut, \
            our_master(nut.directory, UPS_CONF) as master:
        assert status(master.port, "dev") == "ERR DRIVER-NOT-CONNECTED"
        rc, _, err = nutreal.run_tool(["upsc", f"dev@127.0.0.1:{master.port}"])
        assert rc == 1 and err.endswith("Error: Driver not connected\n")
        nut.start_driver("dev")
        wait_status(master.port, "dev", '"OL"', log=master.log)


def test_repeater_mode_reads_our_master() -> None:
    """dummy-ups in repeater mode is a NUT client of our master, which serves it in turn:
    dummy-ups (.dev) -> our master -> dummy-ups repeater -> our master."""
    master_port = nutreal.free_port()
    conf = UPS_CONF + f"[rep]\n  driver = dummy-ups\n  port = dev@127.0.0.1:{master_port}\n"
    with drivers_only(conf, {"dev.dev": DEV, "seq.seq": SEQ}, ["dev"]) as nut:
        master = our_master(nut.directory, conf)
        master.port = master_port
        (master.dir / "upsd.conf").write_text(f"LISTEN 127.0.0.1 {master_port}\nMAXAGE 5\n"
                                              f"STATEPATH {nut.directory}\n")
        with master:
            wait_status(master_port, "dev", '"OL"', log=master.log)
            nut.start_driver("rep")
            wait_status(master_port, "rep", '"OL"', log=master.log)
            got = session(master_port, "GET VAR rep battery.runtime", "GET VAR rep ups.mfr",
                          "GET VAR rep driver.parameter.mode")
            assert got == ['VAR rep battery.runtime "1800"',
                           'VAR rep ups.mfr "Test \\"Manufacturer\\""',
                           'VAR rep driver.parameter.mode "repeater"']


# -- drivers that misbehave ----------------------------------------------------------------


class FakeDriver:
    """A Unix-socket server standing in for a NUT driver; ``behave(conn)`` talks to each
    connection (after reading its DUMPALL)."""

    def __init__(self, path: Path, behave: Callable[[socket.socket], None]) -> None:
        self.path = path
        self.behave = behave
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(5)
        self.server.settimeout(0.2)
        self.connections = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping:
            try:
                conn, _ = self.server.accept()
            except (socket.timeout, OSError):
                continue
            self.connections += 1
            with conn:
                conn.settimeout(5)
                try:
                    conn.recv(100)  # DUMPALL
                    self.behave(conn)
                except OSError:
                    pass

    def close(self) -> None:
        self.stopping = True
        self.thread.join(5)
        self.server.close()


def flood(conn: socket.socket) -> None:
    """A valid dump, then a line that never ends."""
    conn.sendall(b'SETINFO ups.status "OL"\nDATAOK\nDUMPDONE\n')
    chunk = b"x" * 65536
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        conn.sendall(chunk)


def garbage(conn: socket.socket) -> None:
    """Random bytes and broken lines, for ever."""
    rng = random.Random(8)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        conn.sendall(bytes(rng.randrange(256) for _ in range(512)) + b"\nBOGUS LINE\n")


class Fuzz:
    """First connection: driver keywords with random arguments (quotes, escapes, numbers,
    bytes a driver never sends), then the socket closes; afterwards a clean driver.  (An
    odd quote makes parseconf read on across line ends, so nothing after the fuzz can be
    counted on in the same connection.)"""

    def __init__(self) -> None:
        self.fuzzed = False

    def __call__(self, conn: socket.socket) -> None:
        if not self.fuzzed:
            self.fuzzed = True
            rng = random.Random(88)
            words = [b"SETINFO", b"DELINFO", b"ADDENUM", b"DELENUM", b"ADDRANGE",
                     b"DELRANGE", b"SETAUX", b"SETFLAGS", b"ADDCMD", b"DELCMD", b"TRACKING",
                     b"DATAOK", b"DATASTALE", b"DUMPDONE", b"PONG", b"ups.status", b'"',
                     b"\\", b"#", b"=", b"RW", b"STRING", b"-1", b"99999999999", b"\x00",
                     b"\xff", b"a\tb"]
            for _ in range(200):
                line = b" ".join([rng.choice(words[:15])] +
                                 [rng.choice(words) for _ in range(rng.randrange(1, 7))])
                conn.sendall(line + b"\n")
            return
        conn.sendall(b'SETINFO ups.status "FUZZED"\nDATAOK\nDUMPDONE\n')
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and conn.recv(100):
            conn.sendall(b"PONG\n")


FAKE_CONF = """\
[good]
  driver = dummy-ups
  port = dev.dev
[flood]
  driver = fake
[garbage]
  driver = fake
[fuzz]
  driver = fake
"""


def test_flooding_and_garbage_drivers_are_cut_off_others_served() -> None:
    """An endless line and a stream of garbage are cut off with a log line; fuzzed driver
    lines do not hurt; the real driver's UPS is served all along."""
    with drivers_only(FAKE_CONF, {"dev.dev": DEV}, ["good"]) as nut:
        fakes = [FakeDriver(nut.directory / f"fake-{name}", behave)
                 for name, behave in (("flood", flood), ("garbage", garbage),
                                      ("fuzz", Fuzz()))]
        try:
            with our_master(nut.directory, FAKE_CONF) as master:
                port = master.port
                wait_status(port, "fuzz", '"FUZZED"', timeout=25, log=master.log)
                nutreal.wait_for(lambda: master.log().count("cutting it off") >= 2, 20,
                                 "the flood and the garbage were never cut off")
                log = master.log()
                assert re.search(r"UPS flood: NUT's driver at \S+fake-flood sent a line "
                                 r"longer than \d+ bytes: cutting it off", log), log
                assert re.search(r"UPS garbage: NUT's driver at \S+fake-garbage sent more "
                                 r"than \d+ lines that are not driver lines", log), log
                assert status(port, "good") == 'VAR good ups.status "OL"'
                assert status(port, "flood") == "ERR DRIVER-NOT-CONNECTED"
                assert status(port, "garbage") == "ERR DRIVER-NOT-CONNECTED"
                assert master.proc is not None and master.proc.poll() is None
                assert "Traceback" not in master.log()
        finally:
            for fake in fakes:
                fake.close()


def test_check_config_names_the_sockets(tmp_path: Path) -> None:
    """check-config --nut-drivers says who serves each UPS and where its socket is."""
    (tmp_path / "ups.conf").write_text(UPS_CONF)
    (tmp_path / "upsd.conf").write_text(f"STATEPATH {tmp_path}/run\n")
    rc, out, err = nutreal.run_tool([sys.executable, "-m", "upsagent", "check-config",
                                     "--nut-config", str(tmp_path), "--nut-drivers"],
                                    env={"PYTHONPATH": str(Path(__file__).parent.parent)})
    assert (rc, err) == (0, "")
    assert out.splitlines()[-3:-1] == [
        f"UPS dev: served by NUT's driver dummy-ups through its socket {tmp_path}/run/"
        "dummy-ups-dev (NUT's driver must be running)",
        f"UPS seq: served by NUT's driver dummy-ups through its socket {tmp_path}/run/"
        "dummy-ups-seq (NUT's driver must be running)"]


def test_killpower_runs_the_drivers_k(tmp_path: Path) -> None:
    """upsagent killpower --nut-drivers: upsdrvctl shutdown <ups> with NUT_CONFPATH at the
    NUT directory, without the running driver; dummy-ups -k refuses ("shutdown not
    supported"), which is reported as a failure (exit status 1)."""
    (tmp_path / "ups.conf").write_text(UPS_CONF)
    (tmp_path / "dev.dev").write_text(DEV)
    rc, out, err = nutreal.run_tool(
        [sys.executable, "-m", "upsagent", "killpower", "--nut-config", str(tmp_path),
         "--nut-drivers", "--force", "--timeout", "20"],
        env={"PYTHONPATH": str(Path(__file__).parent.parent),
             "NUT_CONFPATH": str(tmp_path), "NUT_STATEPATH": str(tmp_path)}, timeout=60)
    assert rc == 1, (out, err)
    assert out.splitlines()[1:] == [
        "dev: FAILED: the UPS did not acknowledge shutdown.return (ERR FAILED)",
        "seq: FAILED: the UPS did not acknowledge shutdown.return (ERR FAILED)"]
    assert "upsdrvctl shutdown dev" in err
    assert "shutdown not supported" in err
