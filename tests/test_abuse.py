"""Bad input against the real daemon: huge lines, junk, floods, connection storms.

Each test checks that the master keeps answering a well-behaved client correctly, that its
memory stays bounded (VmRSS from /proc), and that it says in its log what it refused.
"""

from __future__ import annotations

import socket
from typing import Iterator

import pytest

from tests.ourmaster import OurMaster, wait_for

DEV = "ups.status: OL CHRG\nbattery.charge: 100\nups.load: 23\n" + "".join(
    f"ambient.{i}.temperature: {20 + i}\n" for i in range(40))
UPS_CONF = "[dummy]\n  driver = dummy-ups\n  port = ups.dev\n"


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def connect_from(source: str, port: int, timeout: float = 10) -> socket.socket:
    """A connection to the master on 127.0.0.1 from the loopback address ``source``."""
    sock = socket.socket()
    try:
        sock.settimeout(timeout)
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the master closed ``sock`` (end of input or reset), reading nothing."""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.settimeout(timeout)


def log_in_and_read(m: OurMaster, source: str) -> list[bytes]:
    """A monitor from ``source``: USERNAME, PASSWORD, LOGIN as upsmon does, then a GET;
    its four reply lines (a client left waiting fails with a timeout)."""
    with connect_from(source, m.port) as sock:
        sock.sendall(b"USERNAME monuser\nPASSWORD monpass\nLOGIN dummy\n"
                     b"GET VAR dummy ups.status\n")
        replies = sock.makefile("rb")
        return [replies.readline() for _ in range(4)]


MONITOR_IN = [b"OK\n", b"OK\n", b"OK\n", b'VAR dummy ups.status "OL CHRG"\n']


def well_behaved(m: OurMaster) -> str:
    with socket.create_connection(("127.0.0.1", m.port), timeout=10) as sock:
        sock.sendall(b"GET VAR dummy ups.status\n")
        return sock.makefile("rb").readline().decode()


@pytest.fixture
def master() -> Iterator[OurMaster]:
    with OurMaster(UPS_CONF, upsd_conf="LISTEN 127.0.0.1 {port}\nMAXCONN 5000\n",
                   files={"ups.dev": DEV}) as m:
        wait_for(lambda: well_behaved(m) == 'VAR dummy ups.status "OL CHRG"\n', 15, "data")
        yield m


def test_one_megabyte_line_and_binary_junk(master: OurMaster) -> None:
    """A 1 MB line is answered like upsd does; NULs and junk never hurt the next client."""
    assert master.proc is not None
    before = rss_kib(master.proc.pid)
    with socket.create_connection(("127.0.0.1", master.port), timeout=10) as sock:
        sock.sendall(b"GET VAR dummy " + b"A" * 1_000_000 + b"\n")
        assert sock.makefile("rb").readline() == b"ERR VAR-NOT-SUPPORTED\n"
    with socket.create_connection(("127.0.0.1", master.port), timeout=10) as sock:
        sock.sendall(bytes(range(256)) * 400 + b"\x00" * 10000 + b"\nNETVER\n")
        reply = sock.makefile("rb")
        lines = []
        while not lines or lines[-1] != b"1.3\n":
            lines.append(reply.readline())
            assert lines[-1], "connection closed"
        assert set(lines[:-1]) == {b"ERR UNKNOWN-COMMAND\n"}
        sock.sendall(b'GET VAR dummy "a#b"\n')  # a parse error: no reply at all, logged
        wait_for(lambda: "parse error from 127.0.0.1" in master.log(), 10, "the log line")
        sock.sendall(b"NETVER\n")
        assert reply.readline() == b"1.3\n"
    assert well_behaved(master) == 'VAR dummy ups.status "OL CHRG"\n'
    assert rss_kib(master.proc.pid) - before < 20_000


def test_client_that_never_reads(master: OurMaster) -> None:
    """A client flooding LIST VAR without reading is throttled, not buffered without end."""
    assert master.proc is not None
    before = rss_kib(master.proc.pid)
    flood = socket.create_connection(("127.0.0.1", master.port), timeout=10)
    flood.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    flood.setblocking(False)
    sent, request = 0, b"LIST VAR dummy\n" * 1000
    try:
        for _ in range(2000):  # up to 30 MB of requests, each asking for ~2.5 KB
            try:
                sent += flood.send(request)
            except BlockingIOError:
                break  # the master stopped reading us: that is the point
        assert sent < 30 * len(request) * 1000
        wait_for(lambda: "Throttling 127.0.0.1" in master.log(), 10, "the throttle log line")
        assert well_behaved(master) == 'VAR dummy ups.status "OL CHRG"\n'
        assert rss_kib(master.proc.pid) - before < 30_000
    finally:
        flood.close()
    assert well_behaved(master) == 'VAR dummy ups.status "OL CHRG"\n'


def test_thousands_of_connections(master: OurMaster) -> None:
    """3000 idle connections (from three addresses: one gets a quarter of MAXCONN) are
    held; the next client is answered at once."""
    assert master.proc is not None
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    socks = []
    try:
        for i in range(3000):
            socks.append(connect_from(f"127.0.0.{2 + i % 3}", master.port))
        assert well_behaved(master) == 'VAR dummy ups.status "OL CHRG"\n'
        assert rss_kib(master.proc.pid) < 200_000
        assert not any(closed_by_server(sock) for sock in socks)
    finally:
        for sock in socks:
            sock.close()
    assert well_behaved(master) == 'VAR dummy ups.status "OL CHRG"\n'


def test_connection_limit_waits_and_logs(tmp_path: object) -> None:
    """At MAXCONN new clients wait (not refused, not dropped) and are served once a slot
    frees; the log says the limit was reached.  MAXCONN 20: 15 regular slots (5 per
    address) and 5 kept for monitors, here taken by monitors that logged in."""
    with OurMaster(UPS_CONF, upsd_conf="LISTEN 127.0.0.1 {port}\nMAXCONN 20\n",
                   files={"ups.dev": DEV}) as m:
        held = [connect_from(f"127.0.0.{2 + i // 5}", m.port) for i in range(15)]
        for sock in held:  # make sure every one of them was accepted
            sock.sendall(b"NETVER\n")
            assert sock.makefile("rb").readline() == b"1.3\n"
        for i in range(5):  # the slots kept for monitors: each logs in
            sock = connect_from(f"127.0.0.{10 + i}", m.port)
            sock.sendall(b"USERNAME monuser\nPASSWORD monpass\nLOGIN dummy\n")
            with sock.makefile("rb") as replies:  # else it keeps the socket open
                assert [replies.readline() for _ in range(3)] == [b"OK\n"] * 3
            held.append(sock)
        waiting = connect_from("127.0.0.20", m.port)
        waiting.sendall(b"GET VAR dummy ups.load\n")
        waiting.settimeout(0.5)
        with pytest.raises(socket.timeout):
            waiting.recv(100)  # queued in the backlog, not answered yet
        assert "Connection limit reached" in m.log()
        held.pop().close()
        waiting.settimeout(10)
        assert waiting.makefile("rb").readline() == b'VAR dummy ups.load "23"\n'
        for sock in held + [waiting]:
            sock.close()


def test_monitor_gets_in_while_one_address_holds_connections() -> None:
    """120 connections from 127.0.0.2 that never read (upsd, and this master before, let
    them take all of MAXCONN 40: a monitor then waited until they left): 10 are kept (a
    quarter of MAXCONN, the default per address), the rest are refused and closed; a
    monitor from 127.0.0.1 logs in and reads at once; the refusals take one log line."""
    with OurMaster(UPS_CONF, upsd_conf="LISTEN 127.0.0.1 {port}\nMAXCONN 40\n",
                   files={"ups.dev": DEV}) as m:
        wait_for(lambda: well_behaved(m) == 'VAR dummy ups.status "OL CHRG"\n', 15, "data")
        abusers = []
        try:
            for _ in range(120):
                sock = connect_from("127.0.0.2", m.port)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                abusers.append(sock)
                try:
                    sock.sendall(b"LIST VAR dummy\n" * 100)  # and never read the replies
                except OSError:
                    pass  # refused already
            assert log_in_and_read(m, "127.0.0.1") == MONITOR_IN
            closed = wait_for(lambda: (n := sum(map(closed_by_server, abusers))) == 110 and n,
                              10, "110 refused connections")
            assert closed == 110
            log = m.log()
            assert ("Refused 127.0.0.2: already 10 connections from 127.0.0.2 "
                    "(max_conn_per_address 10)") in log
            assert log.count("max_conn_per_address") <= 3  # rate-limited, not 110 lines
        finally:
            for sock in abusers:
                sock.close()


TOML_RESERVED = """\
[master]
listen = ["127.0.0.1:{port}"]
maxconn = 30
max_conn_per_address = 30
reserved_monitor_slots = 4

[[ups]]
name = "dummy"
driver = "replay"
port = "ups.dev"

[[user]]
name = "monuser"
password = "monpass"
upsmon = "secondary"
"""


def test_monitor_gets_a_slot_kept_for_it() -> None:
    """upsagent.toml lets 127.0.0.2 take every regular slot (max_conn_per_address =
    maxconn = 30) but keeps 4 for monitors: of 60 connections that never read, 26 get
    regular slots, one more a slot kept for monitors (on probation: one per address),
    the rest are refused; a monitor from 127.0.0.1 gets in, logs in and reads."""
    with OurMaster("", toml=TOML_RESERVED, files={"ups.dev": DEV}) as m:
        wait_for(lambda: well_behaved(m) == 'VAR dummy ups.status "OL CHRG"\n', 15, "data")
        abusers = []
        try:
            for _ in range(60):
                sock = connect_from("127.0.0.2", m.port)
                abusers.append(sock)
            wait_for(lambda: sum(map(closed_by_server, abusers)) >= 33, 10,
                     "33 refused connections")
            assert log_in_and_read(m, "127.0.0.1") == MONITOR_IN
            # 34 when the harness's probe from 127.0.0.1 had not been seen closing yet
            assert sum(map(closed_by_server, abusers)) in (33, 34)
            # the master writes its log after answering: wait for the lines, do not race them
            for line in ("127.0.0.2 is in a slot kept for monitors",
                         "127.0.0.1 logged in: keeps its slot kept for monitors",
                         "already holds a connection from 127.0.0.2 that has not logged in"):
                wait_for(lambda: line in m.log(), 10, f"log line {line!r}")
        finally:
            for sock in abusers:
                sock.close()


def test_overlong_line_limit_is_logged(tmp_path: object) -> None:
    """With a line limit, an overlong line drops that client and is logged."""
    with OurMaster(UPS_CONF, files={"ups.dev": DEV}) as m:
        with socket.create_connection(("127.0.0.1", m.port), timeout=10) as sock:
            sock.sendall(b"X" * (5 * 1024 * 1024))  # past the default 4 MiB, no newline
            sock.settimeout(10)
            try:
                while sock.recv(65536):
                    pass
            except ConnectionResetError:
                pass
        wait_for(lambda: "longer than" in m.log(), 10, "the refusal in the log")
        assert well_behaved(m) == 'VAR dummy ups.status "OL CHRG"\n'

