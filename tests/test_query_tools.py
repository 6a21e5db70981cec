# -*- test-case-name: tests.test_query_tools -*-
"""Differential tests: NUT 2.8.0's upsc/upsrw/upscmd against ``upsagent query/rw/cmd``.

Each case runs the real tool and ours with the same arguments (and the same stdin, no
terminal) against the same server and asserts identical exit status, stdout and stderr.
Two kinds of server:

* Debian's real ``upsd`` + ``dummy-ups`` (:mod:`tests.nutreal`), for everything a real
  server can provoke: success, unknown UPS/variable/command, driver not connected, data
  stale (a frozen driver, MAXAGE 3), access denied, read-only, too long, refused
  connections, bad definitions, prompts.
* A scripted fake server in this module, for what upsd never does but libupsclient must
  survive (errors and disconnects in mid-list, short items, mismatched echoes, ENUM/RANGE
  variables, tracking replies, TLS after ``OK STARTTLS``).  There the request lines each
  tool sent are compared too.

``-h``, ``-V`` and option errors print our own text: for those the status, the streams used
and the glibc-style error line (with our program name) are compared instead.
"""

from __future__ import annotations

import datetime
import socket
import ssl
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Union

import pytest

from tests import nutreal
from upsagent.cli import cmd, query, rw

DATA = Path(__file__).parent / "data"
OURS = {"upsc": ("query", query), "upsrw": ("rw", rw), "upscmd": ("cmd", cmd)}
Result = tuple[int, str, str]

pytestmark = pytest.mark.skipif(nutreal.nut_missing(clients=True) is not None,
                                reason=str(nutreal.nut_missing(clients=True)))


def run_real(tool: str, args: list[str], stdin: bytes | None = None) -> Result:
    """NUT's tool, no terminal, stdin empty unless given."""
    return nutreal.run_tool([nutreal.CLIENT_TOOLS[tool], *args], input=stdin)


def run_ours(tool: str, args: list[str], stdin: bytes | None = None) -> Result:
    """``python -m upsagent <sub>`` the same way."""
    return nutreal.run_tool([sys.executable, "-m", "upsagent", OURS[tool][0], *args], input=stdin)


def assert_same(tool: str, args: list[str], stdin: bytes | None = None) -> Result:
    """Run both; status, stdout and stderr must be identical."""
    real = run_real(tool, args, stdin)
    ours = run_ours(tool, args, stdin)
    assert ours == real, f"{tool} {args}\nreal: {real!r}\nours: {ours!r}"
    return real


# ------------------------------------------------------------------------------------------
# against the real upsd

UPS_CONF = r"""
[dummy]
    driver = dummy-ups
    port = Cyber_Power_Systems__CP1500PFCLCD__usbhid-ups__2.7.4__01.dev
    desc = "Test \"dummy\" UPS"
[onbatt]
    driver = dummy-ups
    port = APC__Smart-UPS_1000__snmp-ups__2.7.4__01.dev
[quoting]
    driver = dummy-ups
    port = query-tools-quoting.dev
    desc = "Quotes \"and\" \\back\\slashes \#hash"
[setme]
    driver = dummy-ups
    port = query-tools-quoting.dev
[stale]
    driver = dummy-ups
    port = Cyber_Power_Systems__CP1500PFCLCD__usbhid-ups__2.7.4__01.dev
[nodriver]
    driver = dummy-ups
    port = Cyber_Power_Systems__CP1500PFCLCD__usbhid-ups__2.7.4__01.dev
"""
USERS = """
[admin]
    password = adminpass
    actions = SET
    instcmds = ALL
[viewer]
    password = viewerpass
[monuser]
    password = monpass
    upsmon primary
"""
DATA_FILES = ("Cyber_Power_Systems__CP1500PFCLCD__usbhid-ups__2.7.4__01.dev",
              "APC__Smart-UPS_1000__snmp-ups__2.7.4__01.dev", "query-tools-quoting.dev")


def _ipv6_loopback() -> bool:
    """Whether ::1 can be bound here."""
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def nut() -> Iterator[nutreal.NutServer]:
    """A real upsd: six UPSes (one never started, one frozen until stale), three users."""
    nutreal.require_nut(clients=True)
    with nutreal.nut_server(UPS_CONF, upsd_conf="MAXAGE 3\n", upsd_users=USERS,
                            files={name: DATA / name for name in DATA_FILES},
                            drivers=["dummy", "onbatt", "quoting", "setme", "stale"],
                            extra_listen=("::1",) if _ipv6_loopback() else ()) as server:
        server.freeze_driver("stale")
        server.wait_for_status("stale", "ERR DATA-STALE")
        yield server


def expand(nut: nutreal.NutServer, args: list[str]) -> list[str]:
    """Fill in ``{ups}`` (an address on the fixture), ``{host}``, ``{port}``, ``{refused}``."""
    refused = f"dummy@127.0.0.1:{nutreal.free_port()}"
    out = []
    for arg in args:
        if arg.startswith("{") and arg.endswith("}") and arg[1:-1] in UPS_NAMES:
            arg = nut.address(arg[1:-1])
        out.append(arg.replace("{host}", nut.address()).replace("{port}", str(nut.port))
                   .replace("{refused}", refused))
    return out


UPS_NAMES = ("dummy", "onbatt", "quoting", "setme", "stale", "nodriver", "nosuch")
ADMIN = ["-u", "admin", "-p", "adminpass"]

# (id = the behaviour, tool, arguments, stdin)
REAL_CASES: list[tuple[str, str, list[str], bytes | None]] = [
    ("upsc lists all variables", "upsc", ["{dummy}"], None),
    ("upsc lists an on-battery UPS", "upsc", ["{onbatt}"], None),
    ("upsc shows values needing escapes", "upsc", ["{quoting}"], None),
    ("upsc prints one value", "upsc", ["{dummy}", "ups.status"], None),
    ("upsc prints a value with spaces", "upsc", ["{dummy}", "ups.test.result"], None),
    ("upsc prints an escaped value", "upsc", ["{quoting}", "device.location"], None),
    ("upsc echoes names case-insensitively", "upsc",
     ["DUMMY@127.0.0.1:{port}", "UPS.STATUS"], None),
    ("upsc unknown variable", "upsc", ["{dummy}", "nosuch.var"], None),
    ("upsc unknown UPS", "upsc", ["{nosuch}"], None),
    ("upsc unknown UPS with variable", "upsc", ["{nosuch}", "ups.status"], None),
    ("upsc driver not connected", "upsc", ["{nodriver}"], None),
    ("upsc data stale", "upsc", ["{stale}"], None),
    ("upsc data stale for one variable", "upsc", ["{stale}", "ups.status"], None),
    ("upsc server.version ignores the UPS", "upsc", ["{nosuch}", "server.version"], None),
    ("upsc -l lists UPS names", "upsc", ["-l", "{host}"], None),
    ("upsc -L adds descriptions", "upsc", ["-L", "{host}"], None),
    ("upsc -lc is -l", "upsc", ["-lc", "{host}"], None),
    ("upsc -l ignores extra operands", "upsc", ["-l", "{host}", "extra"], None),
    ("upsc -c with no client", "upsc", ["-c", "{dummy}"], None),
    ("upsc -c unknown UPS", "upsc", ["-c", "{nosuch}"], None),
    ("upsc refuses old-style names after connecting", "upsc", ["{dummy}", "upsstatus"], None),
    ("upsc -- ends options", "upsc", ["--", "{dummy}", "ups.load"], None),
    ("upsc connection refused", "upsc", ["{refused}"], None),
    ("upsc -l connection refused", "upsc", ["-l", "127.0.0.1:1"], None),
    ("upsc no UPS at all", "upsc", [], None),
    ("upsc empty UPS", "upsc", [""], None),
    ("upsc empty host", "upsc", ["dummy@"], None),
    ("upsc empty port", "upsc", ["dummy@127.0.0.1:"], None),
    ("upsc port 0", "upsc", ["dummy@127.0.0.1:0"], None),
    ("upsc port out of range", "upsc", ["dummy@127.0.0.1:70000"], None),
    ("upsc unclosed bracket", "upsc", ["dummy@[::1"], None),
    ("upsc bad -l host", "upsc", ["-l", "127.0.0.1:"], None),
    ("upsc leading @ makes the host the UPS name", "upsc", ["@127.0.0.1:{port}"], None),
    ("upsc port with junk after digits", "upsc", ["dummy@127.0.0.1:{port}xyz", "ups.status"],
     None),
    ("upsc unresolvable host", "upsc", ["dummy@nosuchhost.invalid"], None),
    ("upsrw lists writable variables", "upsrw", ["{dummy}"], None),
    ("upsrw -l lists escaped values", "upsrw", ["-l", "{quoting}"], None),
    ("upsrw unknown UPS", "upsrw", ["{nosuch}"], None),
    ("upsrw driver not connected", "upsrw", ["{nodriver}"], None),
    ("upsrw data stale", "upsrw", ["{stale}"], None),
    ("upsrw connection refused", "upsrw", ["{refused}"], None),
    ("upsrw bad definition", "upsrw", ["dummy@127.0.0.1:"], None),
    ("upsrw -s sets", "upsrw", ["-s", "ups.model=Set by test", *ADMIN, "{setme}"], None),
    ("upsrw -s sets a value with quotes and hash", "upsrw",
     ["-s", 'ups.model=a "b" #c', *ADMIN, "{setme}"], None),
    ("upsrw -s -w waits for SUCCESS", "upsrw", ["-s", "ups.mfr=Waited", "-w", *ADMIN, "{setme}"],
     None),
    ("upsrw -s wrong password", "upsrw", ["-s", "ups.model=x", "-u", "admin", "-p", "bad",
                                          "{setme}"], None),
    ("upsrw -s unknown user", "upsrw", ["-s", "ups.model=x", "-u", "nobody", "-p", "x",
                                        "{setme}"], None),
    ("upsrw -s user without SET", "upsrw", ["-s", "ups.model=x", "-u", "viewer", "-p",
                                            "viewerpass", "{setme}"], None),
    ("upsrw -s read-only", "upsrw", ["-s", "driver.name=x", *ADMIN, "{setme}"], None),
    ("upsrw -s unknown variable", "upsrw", ["-s", "nosuch.var=1", *ADMIN, "{setme}"], None),
    ("upsrw -s too long", "upsrw", ["-s", "ups.id=123456789012345678901", *ADMIN, "{setme}"],
     None),
    ("upsrw -s unknown UPS", "upsrw", ["-s", "ups.model=x", *ADMIN, "{nosuch}"], None),
    ("upsrw -s data stale", "upsrw", ["-s", "ups.model=x", *ADMIN, "{stale}"], None),
    ("upsrw -s old variable name", "upsrw", ["-s", "upsmodel=x", *ADMIN, "{setme}"], None),
    ("upsrw -s prompts for user and password", "upsrw", ["-s", "ups.model=Prompted", "{setme}"],
     b"admin\nadminpass\n"),
    ("upsrw -s prompts for the value", "upsrw", ["-s", "ups.model", *ADMIN, "{setme}"],
     b"Typed value\n"),
    ("upsrw -s without input sends no password", "upsrw", ["-s", "ups.model=x", "{setme}"],
     None),
    ("upsrw -s unfinished user line loses its last byte", "upsrw",
     ["-s", "ups.model=x", "-p", "adminpass", "{setme}"], b"admin"),
    ("upsrw -l after -s lists", "upsrw", ["-s", "ups.model=x", "-l", "{quoting}"], None),
    ("upsrw -s after -l sets", "upsrw", ["-l", "-s", "ups.model=After", *ADMIN, "{setme}"],
     None),
    ("upsrw -t not a number", "upsrw", ["-t", "abc", "{dummy}"], None),
    ("upsrw -t out of range", "upsrw", ["-t", "99999999999", "{dummy}"], None),
    ("upscmd -l lists commands", "upscmd", ["-l", "{dummy}"], None),
    ("upscmd -l unknown UPS", "upscmd", ["-l", "{nosuch}"], None),
    ("upscmd -l driver not connected", "upscmd", ["-l", "{nodriver}"], None),
    ("upscmd runs a command", "upscmd", [*ADMIN, "{dummy}", "load.off"], None),
    ("upscmd passes a value", "upscmd", [*ADMIN, "{dummy}", "load.off", "10"], None),
    ("upscmd -w reports the driver's answer", "upscmd", ["-w", *ADMIN, "{dummy}", "load.off"],
     None),
    ("upscmd -w -t 0 times out", "upscmd", ["-w", "-t", "0", *ADMIN, "{dummy}", "load.off"],
     None),
    ("upscmd wrong password", "upscmd", ["-u", "admin", "-p", "bad", "{dummy}", "load.off"],
     None),
    ("upscmd user without the command", "upscmd",
     ["-u", "viewer", "-p", "viewerpass", "{dummy}", "load.off"], None),
    ("upscmd unknown command", "upscmd", [*ADMIN, "{dummy}", "nosuch.cmd"], None),
    ("upscmd old command name", "upscmd", [*ADMIN, "{dummy}", "loadoff"], None),
    ("upscmd unknown UPS", "upscmd", [*ADMIN, "{nosuch}", "load.off"], None),
    ("upscmd data stale", "upscmd", [*ADMIN, "{stale}", "load.off"], None),
    ("upscmd connection refused", "upscmd", [*ADMIN, "{refused}", "load.off"], None),
    ("upscmd without input cannot read a user", "upscmd", ["{dummy}", "load.off"], None),
    ("upscmd prompts for user and password", "upscmd", ["{dummy}", "load.off"],
     b"admin\nadminpass\n"),
    ("upscmd empty user line means the login name", "upscmd", ["{dummy}", "load.off"],
     b"\n\n"),
    ("upscmd prompts for the password only", "upscmd", ["-u", "admin", "{dummy}", "load.off"],
     b"adminpass\n"),
    ("upscmd -t negative", "upscmd", ["-t", "-5", "{dummy}", "load.off"], None),
]


@pytest.mark.parametrize("tool, args, stdin", [c[1:] for c in REAL_CASES],
                         ids=[c[0] for c in REAL_CASES])
def test_same_as_nut(nut: nutreal.NutServer, tool: str, args: list[str],
                     stdin: bytes | None) -> None:
    """Against real upsd, our tool's status, stdout and stderr equal NUT's (see the id)."""
    assert_same(tool, expand(nut, args), stdin)


@pytest.mark.parametrize("address", ["dummy@[::1]:{port}", "dummy@localhost:{port}"])
def test_ipv6_and_names(nut: nutreal.NutServer, address: str) -> None:
    """IPv6 literals and names resolving to both families connect like libupsclient."""
    if not _ipv6_loopback():
        pytest.skip("no IPv6 loopback")
    assert_same("upsc", [address.replace("{port}", str(nut.port)), "ups.status"])


def test_client_list(nut: nutreal.NutServer) -> None:
    """upsc -c lists the address of a session that did LOGIN, like NUT's upsc."""
    with socket.create_connection((nut.host, nut.port)) as session:
        session.sendall(b"USERNAME monuser\nPASSWORD monpass\nLOGIN dummy\n")
        nutreal.wait_for(lambda: "CLIENT" in " ".join(nut.request("LIST CLIENT dummy")), 5,
                         "LOGIN never showed up")
        _, out, _ = assert_same("upsc", ["-c", nut.address("dummy")])
    assert out == "127.0.0.1\n"


def test_set_value_arrives(nut: nutreal.NutServer) -> None:
    """A value set with ``upsagent rw`` is what NUT's upsc then reads back."""
    rc, _, err = run_ours("upsrw", ["-s", "ups.model=Arrived safely", *ADMIN,
                                    nut.address("setme")])
    assert (rc, err) == (0, "OK\n")
    nutreal.wait_for(lambda: run_real("upsc", [nut.address("setme"), "ups.model"])[1]
                     == "Arrived safely\n", 10, "value never arrived")


def test_get_without_value_differs() -> None:
    """A GET reply without its value: upsc 2.8.0 crashes (SIGSEGV), we say Protocol error."""
    server = FakeServer({"GET VAR f x.y": b"VAR f x.y\n"})
    try:
        address = F.replace("{port}", str(server.port))
        rc, out, err = run_ours("upsc", [address, "x.y"])
    finally:
        server.close()
    assert (rc, out) == (1, "")
    assert err.endswith("Error: Protocol error\n")


@pytest.mark.parametrize("tool, args, answers", [
    ("upscmd", ["{dummy}", "load.off"], [b"admin\n", b"adminpass\n"]),
    ("upscmd", ["-u", "admin", "{dummy}", "load.off"], [b"wrong\n"]),
    ("upsrw", ["-s", "ups.model", "{setme}"], [b"admin\n", b"adminpass\n", b"On a tty\n"]),
    ("upsrw", ["-s", "ups.model=x", "{setme}"], [b"\n", b"\n"]),
])
def test_prompts_on_a_terminal(nut: nutreal.NutServer, tool: str, args: list[str],
                               answers: list[bytes]) -> None:
    """On a terminal the prompts, the echo (none for the password) and the result are NUT's."""
    args = expand(nut, args)
    real = nutreal.run_in_terminal([nutreal.CLIENT_TOOLS[tool], *args], answers)
    ours = nutreal.run_in_terminal([sys.executable, "-m", "upsagent", OURS[tool][0], *args],
                                   answers)
    assert ours == real
    assert b"adminpass" not in real[1] and b"Password: " in real[1]


def test_quiet_init_ssl(nut: nutreal.NutServer) -> None:
    """NUT_QUIET_INIT_SSL=true drops the "Init SSL" line, as NUT 2.8.1 and later do."""
    rc, out, err = nutreal.run_tool([sys.executable, "-m", "upsagent", "query",
                                     nut.address("dummy"), "ups.status"],
                                    env={"NUT_QUIET_INIT_SSL": "true"})
    assert (rc, out, err) == (0, "OL\n", "")


OWN_TEXT_CASES = [
    ("upsc", ["-h"]), ("upsc", ["-V"]), ("upsc", ["-x"]), ("upsc", ["--help"]),
    ("upsrw", []), ("upsrw", ["-h"]), ("upsrw", ["-V"]), ("upsrw", ["-s"]), ("upsrw", ["-q", "x"]),
    ("upscmd", []), ("upscmd", ["-V"]), ("upscmd", ["-u"]), ("upscmd", ["{dummy}"]),
]


@pytest.mark.parametrize("tool, args", OWN_TEXT_CASES)
def test_help_version_and_option_errors(nut: nutreal.NutServer, tool: str,
                                        args: list[str]) -> None:
    """Usage/version use our text, but the same status and streams; getopt errors match."""
    args = expand(nut, args)
    real, ours = run_real(tool, args), run_ours(tool, args)
    sub, module = OURS[tool]
    assert ours[0] == real[0]
    assert (bool(ours[1]), bool(ours[2])) == (bool(real[1]), bool(real[2]))
    if "usage:" in real[1]:
        assert ours[1] == module.USAGE
    elif real[1].startswith("Network UPS Tools"):
        assert ours[1] == module.VERSION + "\n"
    if real[2].startswith("Network UPS Tools"):
        assert ours[2] == module.VERSION + "\n"
    else:
        assert ours[2] == real[2].replace(f"{nutreal.CLIENT_TOOLS[tool]}:", f"upsagent {sub}:")


# ------------------------------------------------------------------------------------------
# against our own master


@pytest.fixture(scope="module")
def our_master() -> Iterator[str]:
    """``upsagent master`` (via tests.ourmaster) serving the CyberPower dump; yields host:port."""
    ourmaster = pytest.importorskip("tests.ourmaster")
    conf = UPS_CONF.split("[onbatt]")[0] + "[nodriver]\n    driver = dummy-ups\n    port = none.dev\n"
    name = DATA_FILES[0]
    with ourmaster.OurMaster(ups_conf=conf, files={name: (DATA / name).read_text()}) as master:
        where = f"127.0.0.1:{master.port}"
        nutreal.wait_for(lambda: run_real("upsc", [f"dummy@{where}", "ups.status"])[0] == 0, 20,
                         "our master never served dummy")
        yield where


MASTER_CASES = [
    ("upsc", ["{dummy}"]), ("upsc", ["{dummy}", "ups.status"]), ("upsc", ["{dummy}", "no.such"]),
    ("upsc", ["-L", "{host}"]), ("upsc", ["{nosuch}"]), ("upsc", ["{nodriver}"]),
    ("upsrw", ["{dummy}"]), ("upsrw", ["-s", "ups.delay.start=40", *ADMIN, "{dummy}"]),
    ("upsrw", ["-s", "ups.delay.start=40", "-u", "admin", "-p", "bad", "{dummy}"]),
    ("upscmd", ["-l", "{dummy}"]), ("upscmd", ["-w", *ADMIN, "{dummy}", "load.off"]),
]


@pytest.mark.parametrize("tool, args", MASTER_CASES)
def test_same_as_nut_against_our_master(our_master: str, tool: str, args: list[str]) -> None:
    """Against ``upsagent master`` too, our tools print exactly what NUT's tools print."""
    args = [a.replace("{host}", our_master) if a == "{host}" else
            (f"{a[1:-1]}@{our_master}" if a.startswith("{") else a) for a in args]
    assert_same(tool, args)


# ------------------------------------------------------------------------------------------
# against a scripted server


@dataclass(frozen=True)
class Close:
    """Send ``data``, then close the connection."""

    data: bytes = b""


SILENT = object()
TLS = object()
Answer = Union[bytes, Close, object, list[object]]
DEFAULT_SCRIPT: dict[str, Answer] = {
    "STARTTLS": b"ERR FEATURE-NOT-CONFIGURED\n", "LOGOUT": Close(b"OK Goodbye\n"),
    "USERNAME admin": b"OK\n", "PASSWORD adminpass": b"OK\n",
}


class FakeServer:
    """Answers each request line from a script (a list answers successive asks in turn)."""

    def __init__(self, script: Mapping[str, Answer], tls: ssl.SSLContext | None = None) -> None:
        self.script = {**DEFAULT_SCRIPT, **script}
        self.tls = tls
        self.transcripts: list[list[str]] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop serving."""
        self.stopped.set()
        self.thread.join(10)
        self.listener.close()

    def _serve(self) -> None:
        """Accept and serve connections one after the other until closed."""
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            lines: list[str] = []
            self.transcripts.append(lines)
            sock: socket.socket = conn
            try:
                sock = self._session(conn, lines)
            except OSError:
                pass
            finally:
                sock.close()
                conn.close()

    def _session(self, sock: socket.socket, lines: list[str]) -> socket.socket:
        """Answer one client until it leaves or the script closes; returns the socket used."""
        counts: dict[str, int] = {}
        buffer = b""
        while True:
            while b"\n" not in buffer:
                data = sock.recv(4096)
                if not data:
                    return sock
                buffer += data
            raw, buffer = buffer.split(b"\n", 1)
            line = raw.decode("ascii", "replace").rstrip("\r")
            lines.append(line)
            answer = self.script.get(line, b"ERR UNKNOWN-COMMAND\n")
            if isinstance(answer, list):
                counts[line] = counts.get(line, 0) + 1
                answer = answer[min(counts[line], len(answer)) - 1]
            if answer is TLS and self.tls is not None:
                sock.sendall(b"OK STARTTLS\n")
                sock = self.tls.wrap_socket(sock, server_side=True)
            elif isinstance(answer, Close):
                sock.sendall(answer.data)
                return sock
            elif isinstance(answer, bytes):
                sock.sendall(answer)


def assert_same_on_fake(tool: str, args: list[str], script: Mapping[str, Answer],
                        tls: ssl.SSLContext | None = None) -> Result:
    """Run NUT's tool and ours, each against a fresh copy of the scripted server, at once;
    status, output and the request lines sent must be identical."""
    servers = [FakeServer(script, tls), FakeServer(script, tls)]
    try:
        def call(which: int) -> Result:
            real_args = [a.replace("{port}", str(servers[which].port)) for a in args]
            return (run_real if which == 0 else run_ours)(tool, real_args)
        with ThreadPoolExecutor(2) as pool:
            real, ours = pool.map(call, (0, 1))
    finally:
        for server in servers:
            server.close()
    assert ours == real, f"{tool} {args}\nreal: {real!r}\nours: {ours!r}"
    assert servers[1].transcripts == servers[0].transcripts
    return real


F = "f@127.0.0.1:{port}"
TRACKING_ID = "0123ABCD-4567-89EF-0123-456789ABCDEF"
ENUM_RANGE_SCRIPT: dict[str, Answer] = {
    "LIST RW f": b"BEGIN LIST RW f\n" + b"".join(
        b'RW f %s "v"\n' % name for name in (b"a.enum", b"b.range", b"c.old", b"d.odd",
                                               b"e.notype", b"f.nodesc", b"g.nenum")) +
    b"END LIST RW f\n",
    **{f"GET DESC f {n}": f'DESC f {n} "About {n}"\n'.encode()
       for n in ("a.enum", "b.range", "c.old", "d.odd", "e.notype", "g.nenum")},
    "GET TYPE f a.enum": b"TYPE f a.enum RW ENUM STRING:8\n",
    "GET VAR f a.enum": b'VAR f a.enum "y z"\n',
    "LIST ENUM f a.enum": b'BEGIN LIST ENUM f a.enum\nENUM f a.enum "x"\nENUM f a.enum "y z"\n'
                          b'END LIST ENUM f a.enum\n',
    "GET TYPE f b.range": b"TYPE f b.range RW RANGE NUMBER\n",
    "GET VAR f b.range": b'VAR f b.range "5"\n',
    "LIST RANGE f b.range": b'BEGIN LIST RANGE f b.range\nRANGE f b.range "1" "3"\n'
                            b'RANGE f b.range "4" "9"\nEND LIST RANGE f b.range\n',
    "GET TYPE f c.old": b"TYPE f c.old ENUM\n",
    "GET VAR f c.old": b'VAR f c.old "1"\n',
    "LIST ENUM f c.old": b"BEGIN LIST ENUM f c.old\nEND LIST ENUM f c.old\n",
    "GET TYPE f d.odd": b"TYPE f d.odd RW FOO NUMBER\n",
    "GET VAR f d.odd": b'VAR f d.odd "7"\n',
    "GET TYPE f f.nodesc": b"TYPE f f.nodesc RW NUMBER\n",
    "GET VAR f f.nodesc": b'VAR f f.nodesc "8"\n',
    "GET TYPE f g.nenum": b"TYPE f g.nenum RW ENUM NUMBER\n",
    "GET VAR f g.nenum": b'VAR f g.nenum "2"\n',
    "LIST ENUM f g.nenum": b'BEGIN LIST ENUM f g.nenum\nENUM f g.nenum "1"\nENUM f g.nenum "2"\n'
                           b'END LIST ENUM f g.nenum\n',
}
LIST_VAR = b'BEGIN LIST VAR f\nVAR f a.b "1"\n'
SET_OK: dict[str, Answer] = {"SET VAR f ups.id \"x\"": b"OK\n"}

# (id = the behaviour, tool, arguments, script)
FAKE_CASES: list[tuple[str, str, list[str], dict[str, Answer]]] = [
    ("upsrw lists ENUM, RANGE, odd and failing types", "upsrw", [F], ENUM_RANGE_SCRIPT),
    ("upsc ERR mid-list ends the list quietly", "upsc", [F],
     {"LIST VAR f": LIST_VAR + b"ERR DATA-STALE\n"}),
    ("upsc foreign item mid-list ends the list quietly", "upsc", [F],
     {"LIST VAR f": LIST_VAR + b'VAR g x.y "2"\nEND LIST VAR f\n'}),
    ("upsc disconnect mid-list ends the list quietly", "upsc", [F],
     {"LIST VAR f": Close(LIST_VAR)}),
    ("upsc short item is insufficient data", "upsc", [F],
     {"LIST VAR f": LIST_VAR + b"VAR f c.d\nEND LIST VAR f\n"}),
    ("upsc short UPS item", "upsc", ["-L", "127.0.0.1:{port}"],
     {"LIST UPS": b'BEGIN LIST UPS\nUPS f "d \\"q\\" \\\\"\nUPS g\nEND LIST UPS\n'}),
    ("upsc mismatched GET echo is a protocol error", "upsc", [F, "x.y"],
     {"GET VAR f x.y": b'VAR g x.y "1"\n'}),
    ("upsc unlisted error code is Unknown error", "upsc", [F, "x.y"],
     {"GET VAR f x.y": b"ERR INVALID-ARGUMENT\n"}),
    ("upsc UNKNOWN-COMMAND means an old upsd (GET)", "upsc", [F, "x.y"],
     {"GET VAR f x.y": b"ERR UNKNOWN-COMMAND\n"}),
    ("upsc UNKNOWN-COMMAND means an old upsd (LIST)", "upsc", [F], {}),
    ("upsc bad BEGIN LIST", "upsc", [F], {"LIST VAR f": b"BEGIN LIST VAR g\n"}),
    ("upsc hash inside quotes cuts the value", "upsc", [F, "x.y"],
     {"GET VAR f x.y": b'VAR f x.y "a#b"\n'}),
    ("upsc line over 511 bytes is cut", "upsc", [F, "x.y"],
     {"GET VAR f x.y": b'VAR f x.y "' + b"z" * 600 + b'"\n'}),
    ("upsc server closes at STARTTLS", "upsc", [F], {"STARTTLS": Close()}),
    ("upsc server closes after OK STARTTLS", "upsc", [F, "x.y"],
     {"STARTTLS": Close(b"OK STARTTLS\n")}),
    ("upsc server closes after the GET", "upsc", [F, "x.y"], {"GET VAR f x.y": Close()}),
    ("upsc server never answers", "upsc", [F, "x.y"], {"GET VAR f x.y": SILENT}),
    ("upsc -c lists clients", "upsc", ["-c", F],
     {"LIST CLIENT f": b"BEGIN LIST CLIENT f\nCLIENT f 10.0.0.1\nCLIENT f ::1\n"
                       b"END LIST CLIENT f\n"}),
    ("upscmd -l without descriptions", "upscmd", ["-l", F],
     {"LIST CMD f": b"BEGIN LIST CMD f\nCMD f a.b\nCMD f c.d\nEND LIST CMD f\n",
      "GET CMDDESC f a.b": b'CMDDESC f a.b "Does a b"\n'}),
    ("upscmd -l short item", "upscmd", ["-l", F],
     {"LIST CMD f": b"BEGIN LIST CMD f\nCMD f\nEND LIST CMD f\n"}),
    ("upscmd odd answer is unexpected", "upscmd", [*ADMIN, F, "a.b"],
     {"INSTCMD f a.b": b"WHAT\n"}),
    ("upscmd credential errors are not judged", "upscmd", [*ADMIN, F, "a.b"],
     {"USERNAME admin": b"ERR INVALID-ARGUMENT\n", "INSTCMD f a.b": b"OK\n"}),
    ("upscmd -w polls PENDING until done", "upscmd", ["-w", *ADMIN, F, "a.b"],
     {"SET TRACKING ON": b"OK\n", "INSTCMD f a.b": f"OK TRACKING {TRACKING_ID}\n".encode(),
      f"GET TRACKING {TRACKING_ID}": [b"PENDING\n", b"SUCCESS\n"]}),
    ("upscmd -w times out while PENDING", "upscmd", ["-w", "-t", "1", *ADMIN, F, "a.b"],
     {"SET TRACKING ON": b"OK\n", "INSTCMD f a.b": f"OK TRACKING {TRACKING_ID}\n".encode(),
      f"GET TRACKING {TRACKING_ID}": b"PENDING\n"}),
    ("upscmd -w without tracking support", "upscmd", ["-w", *ADMIN, F, "a.b"],
     {"SET TRACKING ON": b"ERR INVALID-ARGUMENT\n"}),
    ("upscmd -w with a plain OK", "upscmd", ["-w", *ADMIN, F, "a.b"],
     {"SET TRACKING ON": b"OK\n", "INSTCMD f a.b": b"OK\n"}),
    ("upscmd dies of SIGPIPE when the server is gone", "upscmd", [*ADMIN, F, "a.b"],
     {"PASSWORD adminpass": Close(b"OK\n")}),
    ("upsrw -s plain OK", "upsrw", ["-s", "ups.id=x", *ADMIN, F], SET_OK),
    ("upsrw -s escapes quotes and hash like upsrw", "upsrw", ["-s", 'ups.id=a "b" #c', *ADMIN, F],
     {'SET VAR f ups.id "a \\"b\\" \\#c"': b"OK\n"}),
    ("upsrw -w without tracking support", "upsrw", ["-s", "ups.id=x", "-w", *ADMIN, F],
     {"SET TRACKING ON": b"ERR FEATURE-NOT-CONFIGURED\n"}),
    ("upsrw -s server gone after USERNAME", "upsrw", ["-s", "ups.id=x", *ADMIN, F],
     {"USERNAME admin": Close()}),
    ("upsrw list short item", "upsrw", [F], {"LIST RW f": b"BEGIN LIST RW f\nRW f a.b\n"}),
    ("upsrw short RANGE item says 4", "upsrw", [F],
     {"LIST RW f": b'BEGIN LIST RW f\nRW f b.range "5"\nEND LIST RW f\n',
      "GET TYPE f b.range": b"TYPE f b.range RW RANGE\n", "GET VAR f b.range": b'VAR f b.range "5"\n',
      "LIST RANGE f b.range": b'BEGIN LIST RANGE f b.range\nRANGE f b.range "1"\n'
                              b'END LIST RANGE f b.range\n'}),
    ("upsrw value vanishes while listing", "upsrw", [F],
     {"LIST RW f": b'BEGIN LIST RW f\nRW f a.b "5"\nEND LIST RW f\n',
      "GET TYPE f a.b": b"TYPE f a.b RW STRING:3\n", "GET VAR f a.b": b"ERR VAR-NOT-SUPPORTED\n"}),
]


@pytest.mark.parametrize("tool, args, script", [c[1:] for c in FAKE_CASES],
                         ids=[c[0] for c in FAKE_CASES])
def test_same_as_nut_on_odd_servers(tool: str, args: list[str],
                                    script: dict[str, Answer]) -> None:
    """Against a scripted server, output, status and the request lines sent equal NUT's."""
    assert_same_on_fake(tool, args, script)


@pytest.fixture(scope="module")
def tls_context(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate."""
    crypto = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.generate_private_key(ec.SECP256R1())
    name = crypto.Name([crypto.NameAttribute(crypto.oid.NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (crypto.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(crypto.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2)).sign(key, hashes.SHA256()))
    pem = tmp_path_factory.mktemp("tls") / "server.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
                    + cert.public_bytes(serialization.Encoding.PEM))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pem)
    return context


def test_tls_after_ok_starttls(tls_context: ssl.SSLContext) -> None:
    """After ``OK STARTTLS`` both shake hands unverified, log the same lines, talk TLS."""
    rc, out, err = assert_same_on_fake("upsc", [F, "x.y"], {
        "STARTTLS": TLS, "GET VAR f x.y": b'VAR f x.y "over TLS"\n'}, tls_context)
    assert (rc, out) == (0, "over TLS\n")
    assert "SSL handshake done successfully with server 127.0.0.1" in err
