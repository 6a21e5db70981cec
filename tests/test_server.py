"""Tests for the sans-IO server core: upsagent.nut.server, commands and state."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from upsagent.config.schema import UpsConfig, UserConfig
from upsagent.drivers.base import Driver, Result
from upsagent.nut.server import ServerSession
from upsagent.master.driverport import DriverAdapter, new_tracking_id
from upsagent.nut.state import Descriptions, ServerState

UUID = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$")


class FakeDriver:
    """Records what the server hands to the driver; answers with scripted results."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str | None]] = []
        self.pending: list[Deferred[Result]] = []

    request = Driver.request  # the contract's default: setvar / instcmd

    def setvar(self, name: str, value: str) -> Deferred[Result]:
        self.calls.append(("set", name, value))
        return succeed(Result.SUCCESS)

    def instcmd(self, name: str, value: str | None = None) -> Deferred[Result]:
        self.calls.append(("cmd", name, value))
        d: Deferred[Result] = Deferred()
        self.pending.append(d)
        return d


USERS = [
    UserConfig("admin", "adminpass", frozenset({"set", "fsd"}), frozenset({"all"})),
    UserConfig("monuser", "monpass", frozenset({"login", "master", "fsd"})),
    UserConfig("slave", "slavepass", frozenset({"login"})),
    UserConfig("tester", "t", frozenset(), frozenset({"test.battery.start"})),
]


def make_state(clock: Clock | None = None) -> tuple[ServerState, FakeDriver]:
    clock = clock or Clock()
    state = ServerState.from_config(
        [UpsConfig("dummy", "dummy-ups", desc='Reference "dummy" UPS', aliases=("ups",)),
         UpsConfig("nodriver", "usbhid-ups"),
         UpsConfig("stale", "dummy-ups", desc="stale one")],
        USERS, now=clock.seconds, new_id=new_tracking_id, tracking_delay=100,
        descriptions=Descriptions('VARDESC ups.status "UPS status"\n'
                                  'CMDDESC load.off "Turn off the load immediately"\n'))
    driver = FakeDriver()
    dummy = state.find("dummy")
    assert dummy is not None
    dummy.driver = DriverAdapter(driver, state.tracking)
    ups = dummy.ups
    ups.set("ups.status", "OL CHRG", writable=True, string_len=32)
    ups.set("ups.load", "23", writable=True)
    ups.set("driver.name", "dummy-ups")
    ups.set("ups.id", 'say "hi" #1 C:\\x', writable=True, string_len=16)
    ups.set("input.sensitivity", "M", writable=True, string_len=1)
    ups.add_enum("input.sensitivity", "M")
    ups.add_enum("input.sensitivity", "H")
    ups.set("ups.delay.shutdown", "20", writable=True)
    ups.add_range("ups.delay.shutdown", 0, 600)
    ups.add_command("load.off")
    ups.add_command("test.battery.start")
    ups.data_ok()
    stale = state.find("stale")
    assert stale is not None
    stale.ups.set("ups.status", "OL")
    stale.ups.data_ok()
    stale.ups.data_stale("device vanished")
    return state, driver


def talk(session: ServerSession, *lines: str) -> list[str]:
    session.receive_data("".join(line + "\n" for line in lines).encode())
    return session.data_to_send().decode().splitlines()


def session(state: ServerState | None = None, addr: str = "127.0.0.1") -> ServerSession:
    return ServerSession(state or make_state()[0], addr)


def test_informational() -> None:
    """VER/NETVER/PROTVER/HELP answer fixed lines and refuse arguments."""
    s = session()
    assert talk(s, "VER", "NETVER", "PROTVER", "HELP") == [
        "Network UPS Tools upsd 2.8.0 - http://www.networkupstools.org/", "1.3", "1.3",
        "Commands: HELP VER GET LIST SET INSTCMD LOGIN LOGOUT USERNAME PASSWORD STARTTLS"]
    assert talk(s, "VER 1", "HELP me", "NETVER 1", "PROTVER 1") == [
        "ERR INVALID-ARGUMENT"] * 4


def test_unknown_and_empty() -> None:
    """Unknown verbs and empty lines are UNKNOWN-COMMAND; verbs are case-insensitive."""
    s = session()
    assert talk(s, "QUIT", "", "  ", "# c", "netver", "NetVer") == [
        "ERR UNKNOWN-COMMAND"] * 4 + ["1.3", "1.3"]


def test_get_var_echoes_spelling_and_escapes() -> None:
    """Names match case-insensitively and are echoed as typed; values are escaped."""
    s = session()
    assert talk(s, "GET VAR DUMMY ups.status", "get var dummy UPS.STATUS",
                "GET VAR dummy ups.id") == [
        'VAR DUMMY ups.status "OL CHRG"', 'VAR dummy UPS.STATUS "OL CHRG"',
        'VAR dummy ups.id "say \\"hi\\" \\#1 C:\\\\x"']


def test_get_errors_in_order() -> None:
    """GET checks argument count, then UPS, then availability, then the variable."""
    s = session()
    assert talk(s, "GET", "GET VAR", "GET VAR dummy", "GET FOO dummy x", "GET FOO",
                "GET VAR nosuch ups.status", "GET VAR nodriver ups.status",
                "GET VAR stale ups.status", "GET VAR dummy nosuch") == [
        "ERR INVALID-ARGUMENT"] * 5 + [
        "ERR UNKNOWN-UPS", "ERR DRIVER-NOT-CONNECTED", "ERR DATA-STALE",
        "ERR VAR-NOT-SUPPORTED"]


def test_server_vars_skip_ups_lookup() -> None:
    """server.info/server.version answer even for unknown UPSes (name printed lower-case,
    as upsd does); other server.* fail."""
    s = session()
    assert talk(s, "GET VAR nosuch server.version", "GET VAR x SERVER.INFO",
                "GET VAR dummy server.other") == [
        'VAR nosuch server.version "2.8.0"',
        'VAR x server.info "Network UPS Tools upsd 2.8.0 - http://www.networkupstools.org/"',
        "ERR VAR-NOT-SUPPORTED"]


def test_type_desc_upsdesc_numlogins() -> None:
    """GET TYPE/DESC/CMDDESC/UPSDESC/NUMLOGINS shapes and their availability checks."""
    s = session()
    assert talk(s, "GET TYPE dummy ups.status", "GET TYPE dummy ups.load",
                "GET TYPE dummy driver.name", "GET TYPE dummy input.sensitivity",
                "GET TYPE dummy ups.delay.shutdown", "GET DESC dummy ups.status",
                "GET DESC dummy no.such", "GET CMDDESC dummy load.off",
                "GET CMDDESC dummy b'load.off'", "GET UPSDESC dummy",
                "GET UPSDESC nodriver", "GET NUMLOGINS dummy", "GET NUMLOGINS nodriver",
                "GET DESC nodriver ups.status") == [
        "TYPE dummy ups.status RW STRING:32", "TYPE dummy ups.load RW NUMBER",
        "TYPE dummy driver.name NUMBER", "TYPE dummy input.sensitivity RW ENUM STRING:1",
        "TYPE dummy ups.delay.shutdown RW RANGE NUMBER",
        'DESC dummy ups.status "UPS status"',
        'DESC dummy no.such "Description unavailable"',
        'CMDDESC dummy load.off "Turn off the load immediately"',
        "CMDDESC dummy b'load.off' \"Description unavailable\"",
        'UPSDESC dummy "Reference \\"dummy\\" UPS"', 'UPSDESC nodriver "Unavailable"',
        "NUMLOGINS dummy 0", "ERR DRIVER-NOT-CONNECTED", "ERR DRIVER-NOT-CONNECTED"]


def test_lists() -> None:
    """LIST blocks echo the request, sort variables, and may be empty."""
    s = session()
    assert talk(s, "LIST UPS extra") == [
        "BEGIN LIST UPS", 'UPS dummy "Reference \\"dummy\\" UPS"',
        'UPS ups "Reference \\"dummy\\" UPS"', 'UPS nodriver "Description unavailable"',
        'UPS stale "stale one"', "END LIST UPS"]
    out = talk(s, "LIST VAR DuMmY")
    assert out[0] == "BEGIN LIST VAR DuMmY" and out[-1] == "END LIST VAR DuMmY"
    names = [line.split()[2] for line in out[1:-1]]
    assert names == sorted(names, key=str.lower) and "driver.name" in names
    assert talk(s, "LIST RW dummy")[1:3] == ['RW dummy input.sensitivity "M"',
                                               'RW dummy ups.delay.shutdown "20"']
    assert talk(s, "LIST CMD dummy") == ["BEGIN LIST CMD dummy", "CMD dummy load.off",
                                         "CMD dummy test.battery.start", "END LIST CMD dummy"]
    assert talk(s, "LIST ENUM dummy input.sensitivity", "LIST RANGE dummy ups.delay.shutdown",
                "LIST ENUM dummy ups.load") == [
        "BEGIN LIST ENUM dummy input.sensitivity", 'ENUM dummy input.sensitivity "M"',
        'ENUM dummy input.sensitivity "H"', "END LIST ENUM dummy input.sensitivity",
        "BEGIN LIST RANGE dummy ups.delay.shutdown",
        'RANGE dummy ups.delay.shutdown "0" "600"', "END LIST RANGE dummy ups.delay.shutdown",
        "BEGIN LIST ENUM dummy ups.load", "END LIST ENUM dummy ups.load"]
    assert talk(s, "LIST", "LIST VAR", "LIST CLIENTS dummy", "LIST ENUM dummy",
                "LIST CLIENT", "LIST ENUM dummy nosuch", "LIST VAR nodriver",
                "LIST CLIENT nodriver") == ["ERR INVALID-ARGUMENT"] * 5 + [
        "ERR VAR-NOT-SUPPORTED", "ERR DRIVER-NOT-CONNECTED",
        "BEGIN LIST CLIENT nodriver", "END LIST CLIENT nodriver"]


def test_user_required_before_arguments() -> None:
    """Commands needing a user check USERNAME then PASSWORD before anything else."""
    s = session()
    assert talk(s, "LOGIN", "FSD", "SET", "INSTCMD") == ["ERR USERNAME-REQUIRED"] * 4
    assert talk(s, "USERNAME admin", "SET VAR dummy ups.load 1") == [
        "OK", "ERR PASSWORD-REQUIRED"]
    assert talk(s, "PASSWORD wrong", "SET VAR dummy ups.load 1") == ["OK", "ERR ACCESS-DENIED"]
    assert talk(s, "USERNAME again", "PASSWORD again") == [
        "ERR ALREADY-SET-USERNAME", "ERR ALREADY-SET-PASSWORD"]
    assert talk(session(), "USERNAME", "USERNAME a b", 'USERNAME "two words"') == [
        "ERR INVALID-ARGUMENT", "ERR INVALID-ARGUMENT", "OK"]


def test_login_rules_and_numlogins_follow_session() -> None:
    """LOGIN needs the login right; NUMLOGINS and LIST CLIENT follow the TCP session."""
    state, _ = make_state()
    admin = session(state)
    assert talk(admin, "USERNAME admin", "PASSWORD adminpass", "LOGIN dummy",
                "PRIMARY dummy") == ["OK", "OK", "ERR ACCESS-DENIED", "ERR ACCESS-DENIED"]
    mon = session(state, "::1")
    assert talk(mon, "USERNAME monuser", "PASSWORD monpass", "LOGIN nodriver",
                "LOGIN dummy", "LOGIN nosuch", "PRIMARY dummy", "MASTER dummy",
                "PRIMARY nosuch") == [
        "OK", "OK", "OK", "ERR ALREADY-LOGGED-IN", "ERR ALREADY-LOGGED-IN",
        "OK PRIMARY-GRANTED", "OK MASTER-GRANTED", "ERR UNKNOWN-UPS"]
    sec = session(state, "10.0.0.2")
    assert talk(sec, "USERNAME slave", "PASSWORD slavepass", "LOGIN UPS",
                "MASTER ups") == ["OK", "OK", "OK", "ERR ACCESS-DENIED"]
    assert talk(admin, "GET NUMLOGINS dummy", "LIST CLIENT dummy") == [
        "NUMLOGINS dummy 1", "BEGIN LIST CLIENT dummy", "CLIENT dummy 10.0.0.2",
        "END LIST CLIENT dummy"]
    assert talk(admin, "LIST CLIENT nodriver") == [
        "BEGIN LIST CLIENT nodriver", "CLIENT nodriver ::1", "END LIST CLIENT nodriver"]
    sec.connection_lost()
    assert talk(admin, "GET NUMLOGINS dummy") == ["NUMLOGINS dummy 0"]


def test_list_client_shows_the_ups_own_name() -> None:
    """LIST CLIENT names the UPS as ups.conf does, whatever spelling LOGIN used (upsd stores
    ``ups->name``); found by the differential test (case login-echo-in-list-client)."""
    state, _ = make_state()
    mon = session(state)
    assert talk(mon, "USERNAME monuser", "PASSWORD monpass", "LOGIN DUMMY",
                "LIST CLIENT Dummy") == [
        "OK", "OK", "OK", "BEGIN LIST CLIENT Dummy", "CLIENT dummy 127.0.0.1",
        "END LIST CLIENT Dummy"]


def test_logout() -> None:
    """LOGOUT says goodbye and closes; with an argument it is refused."""
    s = session()
    assert talk(s, "LOGOUT x") == ["ERR INVALID-ARGUMENT"] and not s.closing
    assert talk(s, "LOGOUT", "NETVER") == ["OK Goodbye"] and s.closing


def test_fsd_latch() -> None:
    """FSD needs the fsd right, skips availability, and stays set; LIST RW keeps the bare
    status."""
    state, _ = make_state()
    s = session(state)
    assert talk(s, "USERNAME slave", "PASSWORD slavepass", "FSD dummy") == [
        "OK", "OK", "ERR ACCESS-DENIED"]
    p = session(state)
    assert talk(p, "USERNAME monuser", "PASSWORD monpass", "FSD", "FSD nosuch",
                "FSD nodriver", "FSD ups", "FSD dummy") == [
        "OK", "OK", "ERR INVALID-ARGUMENT", "ERR UNKNOWN-UPS", "OK FSD-SET",
        "OK FSD-SET", "OK FSD-SET"]
    assert talk(s, "GET VAR dummy ups.status") == ['VAR dummy ups.status "FSD OL CHRG"']
    assert 'VAR dummy ups.status "FSD OL CHRG"' in talk(s, "LIST VAR dummy")
    assert 'RW dummy ups.status "OL CHRG"' in talk(s, "LIST RW dummy")
    state.find("dummy").ups.set_status(["OB", "LB"])  # type: ignore[union-attr]
    assert talk(s, "GET VAR dummy ups.status") == ['VAR dummy ups.status "FSD OB LB"']


def test_set_var_precedence() -> None:
    """SET VAR: UPS, availability, access, variable, readonly, length, enum, range."""
    state, driver = make_state()
    anon = session(state)
    assert talk(anon, "USERNAME slave", "PASSWORD slavepass", "SET VAR dummy nosuch 1",
                "SET VAR nosuch x 1", "SET VAR stale x 1") == [
        "OK", "OK", "ERR ACCESS-DENIED", "ERR UNKNOWN-UPS", "ERR DATA-STALE"]
    s = session(state)
    assert talk(s, "USERNAME admin", "PASSWORD adminpass", "SET", "SET VAR dummy ups.load",
                "SET FOO dummy a b", "SET VAR dummy nosuch 1", "SET VAR dummy driver.name x",
                "SET VAR dummy ups.id 01234567890123456", "SET VAR dummy input.sensitivity m",
                "SET VAR dummy ups.delay.shutdown 601", "SET VAR dummy ups.delay.shutdown 60x",
                "SET VAR dummy ups.load abc extra words") == [
        "OK", "OK", "ERR INVALID-ARGUMENT", "ERR INVALID-ARGUMENT", "ERR INVALID-ARGUMENT",
        "ERR VAR-NOT-SUPPORTED", "ERR READONLY", "ERR TOO-LONG", "ERR INVALID-VALUE",
        "ERR INVALID-VALUE", "OK", "OK"]
    assert driver.calls == [("set", "ups.delay.shutdown", "60x"), ("set", "ups.load", "abc")]


def test_instcmd_precedence_and_parameter() -> None:
    """INSTCMD: CMD-NOT-SUPPORTED wins over a bad password; a 4th word drops the param."""
    state, driver = make_state()
    bad = session(state)
    assert talk(bad, "USERNAME admin", "PASSWORD nope", "INSTCMD dummy no.such",
                "INSTCMD dummy load.off") == [
        "OK", "OK", "ERR CMD-NOT-SUPPORTED", "ERR ACCESS-DENIED"]
    t = session(state)
    assert talk(t, "USERNAME tester", "PASSWORD t", "INSTCMD dummy load.off",
                "INSTCMD dummy TEST.BATTERY.START 30", "INSTCMD dummy test.battery.start a b",
                "INSTCMD dummy") == [
        "OK", "OK", "ERR ACCESS-DENIED", "OK", "OK", "ERR INVALID-ARGUMENT"]
    assert driver.calls == [("cmd", "TEST.BATTERY.START", "30"),
                            ("cmd", "test.battery.start", None)]


def test_tracking() -> None:
    """SET TRACKING ON gives OK TRACKING <uuid>; GET TRACKING follows the driver; ids expire."""
    clock = Clock()
    state, driver = make_state(clock)
    s = session(state)
    assert talk(s, "GET TRACKING", "GET TRACKING x") == ["ERR USERNAME-REQUIRED"][:0] + [
        "OFF", "ERR FEATURE-NOT-CONFIGURED"]
    assert talk(s, "USERNAME ghost", "PASSWORD ghost", "SET TRACKING maybe",
                "SET TRACKING", "SET TRACKING on", "GET TRACKING") == [
        "OK", "OK", "ERR INVALID-ARGUMENT", "ERR INVALID-ARGUMENT", "OK", "ON"]
    a = session(state)
    talk(a, "USERNAME admin", "PASSWORD adminpass", "SET TRACKING ON")
    set_reply, cmd_reply = talk(a, "SET VAR dummy ups.load 50", "INSTCMD dummy load.off")
    set_id, cmd_id = set_reply.split()[2], cmd_reply.split()[2]
    assert set_reply.startswith("OK TRACKING ") and UUID.match(set_id)
    assert talk(a, f"GET TRACKING {set_id.lower()}", f"GET TRACKING {cmd_id}",
                "GET TRACKING 00000000-0000-4000-8000-000000000000") == [
        "SUCCESS", "PENDING", "ERR UNKNOWN"]
    driver.pending[0].callback(Result.UNKNOWN)
    assert talk(s, f"GET TRACKING {cmd_id}") == ["ERR UNKNOWN"]
    clock.advance(101)
    assert talk(a, f"GET TRACKING {set_id}") == ["ERR UNKNOWN"]
    assert talk(a, "SET TRACKING OFF", "SET VAR dummy ups.load 5") == ["OK", "OK"]


def test_starttls_replies() -> None:
    """STARTTLS without a certificate is FEATURE-NOT-CONFIGURED; with one, OK and stop."""
    state, _ = make_state()
    s = session(state)
    assert talk(s, "STARTTLS") == ["ERR FEATURE-NOT-CONFIGURED"]
    state.tls_available = True
    s = session(state)
    assert talk(s, "STARTTLS", "NETVER") == ["OK STARTTLS"] and s.start_tls
    s.tls_started()
    assert talk(s, "STARTTLS") == ["ERR ALREADY-SSL-MODE"]


def test_pipelined_and_parse_error() -> None:
    """Pipelined requests are answered in order; a parse error gets no reply at all."""
    s = session()
    s.receive_data(b'NETVER\nGET VAR dummy ups.load\nGET "#"\n')
    assert s.data_to_send() == b'1.3\nVAR dummy ups.load "23"\n'
    assert s.notices and "parse error" in s.notices[0]


def test_line_limit_closes() -> None:
    """A line longer than max_line_length closes the session with a reason."""
    s = ServerSession(make_state()[0], "127.0.0.1", max_line_length=1000)
    s.receive_data(b"GET VAR " + b"x" * 2000)
    assert s.closing and s.close_reason and "1000" in s.close_reason


def test_unavailable_then_recovers() -> None:
    """A stale UPS answers DATA-STALE until its driver reports data again."""
    state, _ = make_state()
    slot = state.find("stale")
    assert slot is not None
    s = session(state)
    assert talk(s, "GET VAR stale ups.status") == ["ERR DATA-STALE"]
    slot.ups.data_ok()
    assert talk(s, "GET VAR stale ups.status") == ['VAR stale ups.status "OL"']


request_words = st.sampled_from(
    ["GET", "LIST", "SET", "VAR", "UPS", "dummy", "nodriver", "stale", "ups.status", "TYPE",
     "RW", "CMD", "ENUM", "RANGE", "CLIENT", "INSTCMD", "load.off", "LOGIN", "USERNAME",
     "PASSWORD", "admin", "adminpass", "FSD", "TRACKING", "ON", "NETVER", "LOGOUT", "x",
     "MASTER", "PRIMARY", "DESC", "CMDDESC", "UPSDESC", "NUMLOGINS", '"a b"', "#", "="])


@settings(max_examples=400)
@given(st.lists(st.lists(request_words, max_size=6), max_size=12))
def test_every_request_gets_exactly_one_answer(lines: list[list[str]]) -> None:
    """Every request (without comments or quotes) gets one line or one whole LIST block."""
    lines = [[w for w in line if w not in ('"a b"', "#")] for line in lines]
    s = session()
    for words in lines:
        if s.closing:
            break
        out = talk(s, " ".join(words))
        if out and out[0].startswith("BEGIN LIST "):
            assert out[-1] == "END" + out[0][5:]
        else:
            assert len(out) == 1, (words, out)


@settings(max_examples=300)
@given(st.binary(max_size=2000))
def test_junk_never_breaks_the_session(data: bytes) -> None:
    """Arbitrary bytes never raise, and the session still answers a clean request after."""
    s = session()
    s.receive_data(data)
    s.data_to_send()
    if not s.closing:
        # '"#' either closes an open quote and comments out the rest, or opens one and
        # makes a parse error: both leave the reader at the start of a fresh line.
        s.receive_data(b'"#\n')
        s.receive_data(b"\nNETVER\n")
        assert s.data_to_send().endswith(b"1.3\n")


def test_driver_requests_leave_the_core_as_values() -> None:
    """SET VAR and INSTCMD reach the slot's port as DriverRequest values carrying the
    tracking id; a port that refuses gets the verb's FAILED error, and its id is forgotten."""
    from upsagent.nut.state import DriverRequest

    ids = iter(["ID-1", "ID-2", "ID-3"])
    state = ServerState.from_config(
        [UpsConfig("dummy", "dummy-ups")], USERS, now=Clock().seconds,
        new_id=lambda: next(ids), descriptions=Descriptions())
    slot = state.find("dummy")
    assert slot is not None
    slot.ups.set("ups.load", "23", writable=True)
    slot.ups.add_command("load.off")
    slot.ups.data_ok()

    class Port:
        def __init__(self) -> None:
            self.requests: list[DriverRequest] = []
            self.refuse = False

        def submit(self, request: DriverRequest) -> None:
            if self.refuse:
                raise RuntimeError("driver gone")
            self.requests.append(request)

    port = Port()
    slot.driver = port
    s = ServerSession(state, "127.0.0.1")
    assert talk(s, "USERNAME admin", "PASSWORD adminpass", "SET VAR dummy ups.load 42",
                "SET TRACKING ON", "INSTCMD dummy load.off") == [
        "OK", "OK", "OK", "OK", "OK TRACKING ID-1"]
    assert port.requests == [DriverRequest("dummy", "set", "ups.load", "42", None),
                             DriverRequest("dummy", "instcmd", "load.off", None, "ID-1")]
    assert talk(s, "GET TRACKING ID-1") == ["PENDING"]
    state.tracking.finish("ID-1", "SUCCESS")
    assert talk(s, "GET TRACKING ID-1") == ["SUCCESS"]
    port.refuse = True
    assert talk(s, "INSTCMD dummy load.off", "GET TRACKING ID-2") == [
        "ERR INSTCMD-FAILED", "ERR UNKNOWN"]
    assert any("driver refused" in n for n in s.notices)
