"""Tests for the push extension (upsagent.nut.push): WATCH and the NOTIFY lines.

Sans-IO sessions first (as tests/test_server.py), then the Twisted shell with a
StringTransport (wakeup, flow control, STARTTLS).
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from tests.test_server import make_state, session, talk
from upsagent.master.protocol import NutServerFactory, NutServerProtocol
from upsagent.nut.server import ServerSession
from upsagent.nut.state import ServerState


def watcher(state: ServerState, *names: str) -> tuple[ServerSession, list[int]]:
    """A session watching ``names``, with a counter of its wakeups."""
    s = ServerSession(state, "127.0.0.1")
    wakeups: list[int] = []
    s.wakeup = lambda: wakeups.append(1)
    assert talk(s, *(f"WATCH {name}" for name in names)) == [
        f"OK WATCHING {name}" for name in names]
    return s, wakeups


def pending(s: ServerSession) -> list[str]:
    return s.data_to_send().decode().splitlines()


def test_watch_arguments_and_unknown_ups() -> None:
    """Exactly one argument, UNKNOWN-UPS, no user needed, no availability check; the name
    is echoed as typed."""
    s = session()
    assert talk(s, "WATCH", "WATCH dummy extra", "WATCH nosuch", "WATCH DUMMY",
                "WATCH nodriver", "WATCH stale", "watch ups") == [
        "ERR INVALID-ARGUMENT", "ERR INVALID-ARGUMENT", "ERR UNKNOWN-UPS",
        "OK WATCHING DUMMY", "OK WATCHING nodriver", "OK WATCHING stale", "OK WATCHING ups"]


def test_help_does_not_list_watch() -> None:
    """HELP stays upsd's line: the extension is not advertised to NUT clients."""
    assert talk(session(), "HELP") == [
        "Commands: HELP VER GET LIST SET INSTCMD LOGIN LOGOUT USERNAME PASSWORD STARTTLS"]


def test_watched_variables_are_pushed_others_not() -> None:
    """ups.status, battery.charge and battery.runtime changes are pushed, quoted; other
    variables and unchanged values are not; one wakeup per change."""
    state, _ = make_state()
    s, wakeups = watcher(state, "DUMMY")
    ups = state.find("dummy").ups  # type: ignore[union-attr]
    ups.set("ups.load", "50")
    ups.commit()
    assert pending(s) == [] and wakeups == []
    ups.set("ups.status", "OB DISCHRG")
    ups.set("battery.charge", "80")
    ups.set("battery.runtime", "1200")
    ups.commit()
    assert wakeups == [1]
    assert pending(s) == ['NOTIFY DUMMY VAR ups.status "OB DISCHRG"',
                          'NOTIFY DUMMY VAR battery.charge "80"',
                          'NOTIFY DUMMY VAR battery.runtime "1200"']
    ups.set("battery.charge", 'odd "value" #1')
    ups.commit()
    assert pending(s) == ['NOTIFY DUMMY VAR battery.charge "odd \\"value\\" \\#1"']


def test_fsd_is_pushed_to_every_watcher_at_once() -> None:
    """FSD set by any client reaches every watcher (under its spelling) with the latch's
    prefix; setting it again pushes nothing."""
    state, _ = make_state()
    first, first_wake = watcher(state, "dummy")
    second, second_wake = watcher(state, "ups")
    admin = session(state)
    assert talk(admin, "USERNAME admin", "PASSWORD adminpass", "FSD dummy", "FSD dummy") == [
        "OK", "OK", "OK FSD-SET", "OK FSD-SET"]
    assert first_wake == [1] and second_wake == [1]
    assert pending(first) == ['NOTIFY dummy VAR ups.status "FSD OL CHRG"']
    assert pending(second) == ['NOTIFY ups VAR ups.status "FSD OL CHRG"']
    ups = state.find("dummy").ups  # type: ignore[union-attr]
    ups.set("ups.status", "OB LB")
    ups.commit()
    assert pending(first) == ['NOTIFY dummy VAR ups.status "FSD OB LB"']


def test_fsd_by_the_watcher_itself_follows_its_reply() -> None:
    """A watcher that sets FSD gets the OK first, then the pushed line; no wakeup is needed
    while its own input is handled."""
    state, _ = make_state()
    s, wakeups = watcher(state, "dummy")
    assert talk(s, "USERNAME admin", "PASSWORD adminpass", "FSD dummy",
                "GET VAR dummy ups.status") == [
        "OK", "OK", "OK FSD-SET", 'VAR dummy ups.status "FSD OL CHRG"',
        'NOTIFY dummy VAR ups.status "FSD OL CHRG"']
    assert wakeups == []


def test_pushes_never_split_a_list_block() -> None:
    """A change during a batch of requests (a SET the driver applies at once) comes out
    after the whole batch, so after the complete LIST block."""
    state, _ = make_state()
    s, _ = watcher(state, "dummy")
    slot = state.find("dummy")
    assert slot is not None

    from upsagent.drivers.base import Driver

    class ApplyingDriver:
        request = Driver.request  # the contract's default: setvar / instcmd

        def setvar(self, name: str, value: str) -> object:
            slot.ups.set(name, value)  # type: ignore[union-attr]
            slot.ups.commit()  # type: ignore[union-attr]
            from twisted.internet.defer import succeed
            from upsagent.drivers.base import Result
            return succeed(Result.SUCCESS)

    from upsagent.master.driverport import DriverAdapter
    slot.driver = DriverAdapter(ApplyingDriver(), state.tracking)  # type: ignore[arg-type]
    out = talk(s, "USERNAME admin", "PASSWORD adminpass", 'SET VAR dummy ups.status "OB"',
               "LIST VAR dummy", "NETVER")
    assert out[:3] == ["OK", "OK", "OK"]
    assert out[3] == "BEGIN LIST VAR dummy" and out[-3] == "END LIST VAR dummy"
    assert out[-2:] == ["1.3", 'NOTIFY dummy VAR ups.status "OB"']
    assert not any(line.startswith("NOTIFY") for line in out[:-1])


def test_availability_errors_and_return() -> None:
    """Stale and driver-gone are pushed as ERR lines; when the data returns the current
    values come again, ups.status first (FSD latch included), even if unchanged; values
    changed while stale are not pushed."""
    state, _ = make_state()
    s, _ = watcher(state, "dummy")
    slot = state.find("dummy")
    assert slot is not None
    ups = slot.ups
    ups.data_stale("cable pulled")
    assert pending(s) == ["NOTIFY dummy ERR DATA-STALE"]
    ups.set("battery.charge", "50")
    ups.commit()
    slot.set_fsd()
    assert pending(s) == []
    ups.data_ok()
    assert pending(s) == ['NOTIFY dummy VAR ups.status "FSD OL CHRG"',
                          'NOTIFY dummy VAR battery.charge "50"']
    ups.disconnected("driver stopped")
    assert pending(s) == ["NOTIFY dummy ERR DRIVER-NOT-CONNECTED"]
    ups.data_ok()
    assert pending(s) == ['NOTIFY dummy VAR ups.status "FSD OL CHRG"',
                          'NOTIFY dummy VAR battery.charge "50"']


def test_watching_a_driverless_ups_then_it_starts() -> None:
    """A UPS watched before its driver reported pushes its values when the data arrives."""
    state, _ = make_state()
    s, _ = watcher(state, "nodriver")
    ups = state.find("nodriver").ups  # type: ignore[union-attr]
    ups.set("ups.status", "OL")
    ups.set("battery.runtime", "600")
    ups.data_ok()
    assert pending(s) == ['NOTIFY nodriver VAR ups.status "OL"',
                          'NOTIFY nodriver VAR battery.runtime "600"']


def test_unfetched_lines_are_coalesced_and_bounded() -> None:
    """A session whose output is not fetched keeps only the newest line per item, in the
    order of the latest changes: a thousand changes leave at most four lines per UPS."""
    state, _ = make_state()
    s, _ = watcher(state, "dummy")
    ups = state.find("dummy").ups  # type: ignore[union-attr]
    for i in range(1000):
        ups.set("battery.charge", str(i % 100))
        ups.set("ups.status", "OB" if i % 2 else "OL")
        ups.commit()
    assert s.pushes_pending == 2
    ups.data_stale("gone")
    assert s.pushes_pending == 3
    ups.data_ok()  # the stale episode is over before the client read it: error dropped
    assert pending(s) == ['NOTIFY dummy VAR ups.status "OB"',
                          'NOTIFY dummy VAR battery.charge "99"']


def test_rewatch_changes_spelling_and_close_ends_watching() -> None:
    """WATCH again under an alias renames the lines; a closed session is forgotten, and the
    UPS observer goes when the last watcher does."""
    state, _ = make_state()
    slot = state.find("dummy")
    assert slot is not None
    observers = len(slot.ups._observers)
    s, _ = watcher(state, "dummy", "ups")
    other, _ = watcher(state, "DUMMY")
    assert len(slot.ups._observers) == observers + 1
    slot.ups.set("battery.charge", "10")
    slot.ups.commit()
    assert pending(s) == ['NOTIFY ups VAR battery.charge "10"']
    s.connection_lost()
    other.connection_lost()
    assert slot.watchers == {} and len(slot.ups._observers) == observers
    slot.set_fsd()
    assert s.data_to_send() == b"" and other.data_to_send() == b""


def test_logout_stops_pushes() -> None:
    """After LOGOUT nothing more is queued."""
    state, _ = make_state()
    s, _ = watcher(state, "dummy")
    assert talk(s, "LOGOUT") == ["OK Goodbye"]
    state.find("dummy").set_fsd()  # type: ignore[union-attr]
    assert s.data_to_send() == b""


# -- the Twisted shell --------------------------------------------------------------------

def connect(state: ServerState) -> tuple[NutServerProtocol, StringTransport]:
    factory = NutServerFactory(state, Clock())
    addr = IPv4Address("TCP", "127.0.0.1", 40000)
    proto = factory.buildProtocol(addr)
    assert isinstance(proto, NutServerProtocol)
    transport = StringTransport(peerAddress=addr)
    proto.makeConnection(transport)
    return proto, transport


def test_adapter_writes_pushed_lines_at_once() -> None:
    """The protocol's wakeup writes pushed lines to the transport immediately."""
    state, _ = make_state()
    proto, tr = connect(state)
    proto.dataReceived(b"WATCH dummy\n")
    assert tr.value() == b"OK WATCHING dummy\n"
    tr.clear()
    state.find("dummy").set_fsd()  # type: ignore[union-attr]
    assert tr.value() == b'NOTIFY dummy VAR ups.status "FSD OL CHRG"\n'
    proto.connectionLost()
    assert state.find("dummy").watchers == {}  # type: ignore[union-attr]


def test_adapter_holds_pushes_while_throttled() -> None:
    """A client that does not read gets nothing more while throttled; when the transport
    drains it gets the newest state, once."""
    state, _ = make_state()
    proto, tr = connect(state)
    proto.dataReceived(b"WATCH dummy\n")
    tr.clear()
    proto.pauseProducing()  # the transport's buffer is full
    ups = state.find("dummy").ups  # type: ignore[union-attr]
    for i in range(500):
        ups.set("battery.runtime", str(i))
        ups.commit()
    assert tr.value() == b""
    proto.resumeProducing()
    assert tr.value() == b'NOTIFY dummy VAR battery.runtime "499"\n'


def test_pushes_wait_for_the_tls_handshake() -> None:
    """No pushed line may slip between OK STARTTLS and the handshake (sans-IO)."""
    state, _ = make_state()
    state.tls_available = True
    s, _ = watcher(state, "dummy")
    s.receive_data(b"STARTTLS\n")
    state.find("dummy").set_fsd()  # type: ignore[union-attr]
    assert s.data_to_send() == b"OK STARTTLS\n"
    assert s.data_to_send() == b""
    s.tls_started()
    assert s.data_to_send() == b'NOTIFY dummy VAR ups.status "FSD OL CHRG"\n'


def test_adapter_pushes_after_starttls() -> None:
    """The adapter writes OK STARTTLS, starts TLS, and pushes afterwards only."""
    state, _ = make_state()
    proto, tr = connect(state)
    proto.factory.set_tls_context(object())
    started: list[object] = []
    tr.startTLS = started.append  # type: ignore[attr-defined]
    proto.dataReceived(b"WATCH dummy\nSTARTTLS\n")
    assert tr.value() == b"OK WATCHING dummy\nOK STARTTLS\n" and len(started) == 1
    tr.clear()
    state.find("dummy").set_fsd()  # type: ignore[union-attr]
    assert tr.value() == b'NOTIFY dummy VAR ups.status "FSD OL CHRG"\n'


# -- against the real daemon ---------------------------------------------------------------

def test_daemon_pushes_changes_and_fsd(tmp_path: object) -> None:
    """Our master as a process: a watcher is told of a SET of ups.status and of FSD set by
    another client, without asking; its replies are untouched."""
    import socket

    from tests.ourmaster import OurMaster, wait_for

    conf = "[dummy]\n  driver = dummy-ups\n  port = ups.dev\n"
    dev = "ups.status: OL\nbattery.charge: 100\nbattery.runtime: 2400\n"
    with OurMaster(conf, files={"ups.dev": dev}) as master:
        def other(*lines: str) -> bytes:
            with socket.create_connection(("127.0.0.1", master.port), timeout=5) as sock:
                sock.sendall("".join(f"{line}\n" for line in lines).encode() + b"LOGOUT\n")
                return b"".join(iter(lambda: sock.recv(65536), b""))

        wait_for(lambda: other("GET VAR dummy ups.status").startswith(b"VAR"), 15,
                 "the UPS to have data")
        with socket.create_connection(("127.0.0.1", master.port), timeout=10) as sock:
            received = b""

            def read_until(text: bytes) -> bytes:
                nonlocal received
                while text not in received:
                    data = sock.recv(4096)
                    assert data, f"connection closed; got {received!r}"
                    received += data
                return received

            sock.sendall(b"WATCH dummy\nGET VAR dummy ups.status\n")
            assert read_until(b'"OL"\n') == b'OK WATCHING dummy\nVAR dummy ups.status "OL"\n'
            received = b""
            assert other("USERNAME admin", "PASSWORD adminpass",
                         'SET VAR dummy ups.status "OB DISCHRG"') == b"OK\nOK\nOK\nOK Goodbye\n"
            assert read_until(b"\n") == b'NOTIFY dummy VAR ups.status "OB DISCHRG"\n'
            received = b""
            assert other("USERNAME monuser", "PASSWORD monpass", "FSD dummy").endswith(
                b"OK FSD-SET\nOK Goodbye\n")
            assert read_until(b"\n") == b'NOTIFY dummy VAR ups.status "FSD OB DISCHRG"\n'
            received = b""
            sock.sendall(b"NETVER\n")
            assert read_until(b"\n") == b"1.3\n"
