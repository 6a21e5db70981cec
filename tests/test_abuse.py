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
    """3000 idle connections are held; the next client is answered at once."""
    assert master.proc is not None
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    socks = []
    try:
        for _ in range(3000):
            socks.append(socket.create_connection(("127.0.0.1", master.port), timeout=10))
        assert well_behaved(master) == 'VAR dummy ups.status "OL CHRG"\n'
        assert rss_kib(master.proc.pid) < 200_000
    finally:
        for sock in socks:
            sock.close()
    assert well_behaved(master) == 'VAR dummy ups.status "OL CHRG"\n'


def test_connection_limit_waits_and_logs(tmp_path: object) -> None:
    """At MAXCONN new clients wait (not refused, not dropped) and are served once a slot
    frees; the log says the limit was reached."""
    with OurMaster(UPS_CONF, upsd_conf="LISTEN 127.0.0.1 {port}\nMAXCONN 20\n",
                   files={"ups.dev": DEV}) as m:
        held = [socket.create_connection(("127.0.0.1", m.port), timeout=10) for _ in range(20)]
        for sock in held:  # make sure every one of them was accepted
            sock.sendall(b"NETVER\n")
            assert sock.makefile("rb").readline() == b"1.3\n"
        waiting = socket.create_connection(("127.0.0.1", m.port), timeout=10)
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

