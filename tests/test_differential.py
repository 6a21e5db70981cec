"""Differential test: NUT 2.8.0's ``upsd`` and our master, byte for byte, on the same input.

Every case of ``tests/data/nutdiff/cases.txt`` (its header documents the format) is played
against two servers started from the *same* ``ups.conf``, ``upsd.users`` and data files
(``tests/data/nutdiff/``):

* **NUT**: Debian's ``upsd`` with ``dummy-ups`` for ``dummy`` and ``stale``, through
  :mod:`tests.nutreal`.  ``nodriver`` is declared in ups.conf but its driver is never
  started (its port file does not exist either), so upsd answers DRIVER-NOT-CONNECTED.
* **ours**: ``python -m upsagent master --nut-config DIR`` through :mod:`tests.ourmaster`,
  in two modes (every case runs in both):

  - ``replay``: its replay driver stands in for dummy-ups; for ``nodriver`` the missing
    port file keeps the UPS not connected;
  - ``nut-drivers``: ``--nut-drivers`` with ``STATEPATH`` at NUT's directory, so that both
    servers read the *same* dummy-ups processes through their sockets (a driver serves
    several socket clients), as a user keeping NUT's driver units would run it.

``stale`` goes stale the way that fits each side: NUT's driver is frozen with SIGSTOP
(``MAXAGE 5`` in upsd.conf, so upsd calls the data stale about five seconds later); ours
loses its data file, which the replay driver notices on its next poll (``nut-drivers``
mode: the same frozen driver, frozen once both servers have its dump).  Cases that need
it stale start with ``@stale``, which waits until the server answers ``ERR DATA-STALE``;
they sit late in the file so that the wait is normally over before they run.

Several server pairs are used, each started once per test session and only when a case
needs it: ``main`` for almost everything; ``fsd`` for the cases that set upsd's FSD latch,
which never clears; ``users`` and ``conf`` for the upsd.users and ups.conf variants of
``upsd.users-users`` and ``ups.conf-conf``; ``late``
where ``nodriver`` gets its driver in the middle of the session (``@start``); ``scratch``
for the ``@nutbug`` cases that leave the two servers' data different.  State that cases
change (SET VAR) changes identically on both servers, because both see the same requests
in the same order; a case that reads a value it has set waits for it with ``@waitfor``
first, since NUT applies a SET only when dummy-ups echoes it back.

**Reading replies without slowing down.**  A sentinel request after each step (a trailing
``NETVER``) would change what is being tested: after a parse error upsd throws away the
rest of the read, sentinel included, and an unterminated line would swallow it.  Instead
each step says how many replies it expects: a request line expects one, a ``@raw`` step
expects ``@expect N`` replies (a reply is one line, or a whole ``BEGIN LIST`` ...
``END LIST`` block).  Reading stops as soon as that many replies arrived; steps without a
count (and ``@expect 0``) read until the connection has been quiet for :data:`QUIET`
seconds.  At the end of a case every connection is half-closed and read to EOF, so a reply
that came later than expected still lands in the transcript.  The counts come from NUT's
behaviour: when NUT sends fewer replies than a step expects, or replies arrive only at the
final drain, the case file is wrong and the test says so instead of comparing.

The two servers run each case at the same time (one thread each).  The transcripts record
what was sent (``main> ...``) and every reply line (``main< ...``); bytes outside printable
ASCII are shown as ``\\xNN``.  Only tracking ids are masked before comparing (``OK
TRACKING <id>``: random UUIDs).  ``VER``, ``server.info`` and ``driver.version`` are
compared as they are, and so are client addresses (both servers see ``127.0.0.1`` or
``::1``; upsd never shows ports).

Cases marked ``@nutbug`` cover NUT 2.8.0 bugs that we deliberately do not copy (each with the
reason and NUT's source file);
they are skipped unless ``NUTDIFF_NUTBUGS=1``, and then they are expected to differ.
``@xfail`` marks a known difference whose fix belongs to another module; its reason names
the file (``@xfail-timing``: the same for a difference that shows only with some timings,
so a pass is no surprise).

Not covered, because dummy-ups cannot provoke them: ``ERR INVALID-VALUE`` (no ENUM/RANGE
lists), ``SET-FAILED``/``INSTCMD-FAILED`` (a failing driver socket), STARTTLS with a
certificate (Debian's upsd is an NSS build); nor the 60-second idle cut, to keep the run
short.  ``tests/test_server.py`` covers those against the sans-IO core.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import difflib
import os
import re
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from tests import nutreal
from tests.ourmaster import OurMaster

DATA = Path(__file__).parent / "data" / "nutdiff"
CASES_FILE = DATA / "cases.txt"

#: silence (seconds) that ends a step whose reply count is not known
QUIET = 0.15
#: longest wait for the replies a step expects, or for EOF
REPLY_TIMEOUT = 3.0
#: longest wait for ``@waitfor`` / ``@driver`` / ``@stale`` conditions
CONDITION_TIMEOUT = 20.0
#: upsd.conf text besides LISTEN, for both servers
UPSD_CONF = "MAXAGE 5\n"
RUN_NUTBUGS = os.environ.get("NUTDIFF_NUTBUGS") == "1"
#: when set, a directory where both transcripts of every case are written
DUMP_DIR = os.environ.get("NUTDIFF_DUMP")

_UUID = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
_TRACKING_ID = re.compile(rf"^OK TRACKING ({_UUID})$")
_MASKS = [(re.compile(rf"^OK TRACKING {_UUID}$"), "OK TRACKING <id>")]


# -- the case file ------------------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    """One thing a case does, on one connection or on the side."""

    #: send | connect | use | close | eof | poll | driver | waitfor | stale
    op: str
    #: what the transcript shows (request text, connection name, ...)
    shown: str = ""
    #: bytes to send (``$TRACKING`` / ``$tracking`` substituted at run time)
    data: bytes = b""
    #: replies to wait for after a send; None: until the connection is quiet
    expect: int | None = None
    #: ``@waitfor``: the reply to wait for; ``@driver``: ups, variable, value
    args: tuple[str, ...] = ()


@dataclass
class Case:
    """One named case: its steps and how it is expected to compare."""

    name: str
    line: int
    steps: list[Step] = field(default_factory=list)
    nutbug: str | None = None
    xfail: str | None = None
    #: the known difference shows only with some timings (xfail, not strict)
    xfail_timing: str | None = None
    pair: str = "main"


class CaseFileError(ValueError):
    """The case file does not follow its format."""


_ESCAPE = re.compile(rb"\\(x[0-9A-Fa-f]{2}|.)", re.DOTALL)
_SIMPLE_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"s": b" ", b"\\": b"\\",
                   b"0": b"\x00"}


def decode_escapes(text: str) -> bytes:
    """``@raw`` text to bytes: ``\\n \\r \\t \\s`` (space) ``\\0 \\\\ \\xNN``."""
    def one(match: re.Match[bytes]) -> bytes:
        code = match.group(1)
        if code[:1] == b"x" and len(code) == 3:
            return bytes([int(code[1:], 16)])
        if code in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[code]
        raise CaseFileError(f"unknown escape \\{code.decode()} in {text!r}")
    raw = text.encode("ascii")
    if raw.endswith(b"\\") and not raw.endswith(b"\\\\"):
        raise CaseFileError(f"dangling backslash in {text!r}")
    return _ESCAPE.sub(one, raw)


def show_bytes(data: bytes) -> str:
    """Printable ASCII as is, everything else as ``\\xNN`` (LF as ``\\n``)."""
    out = []
    for byte in data:
        if byte == 0x0A:
            out.append("\\n")
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out)


def load_cases(path: Path = CASES_FILE) -> list[Case]:
    """Parse the case file (format: see its header)."""
    cases: list[Case] = []
    case: Case | None = None
    expect: int | None = None
    for number, line in enumerate(path.read_text(encoding="ascii").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word == "@case":
            if not re.fullmatch(r"[a-z0-9][a-z0-9.-]*", rest):
                raise CaseFileError(f"line {number}: bad case name {rest!r}")
            case = Case(rest, number)
            cases.append(case)
            expect = None
            continue
        if case is None:
            raise CaseFileError(f"line {number}: {line!r} before the first @case")
        try:
            expect = _parse_line(case, word, rest, line, expect)
        except (CaseFileError, ValueError) as exc:
            raise CaseFileError(f"line {number}: {exc}") from None
    names = [c.name for c in cases]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise CaseFileError(f"duplicate case names: {sorted(duplicates)}")
    return cases


def _parse_line(case: Case, word: str, rest: str, line: str, expect: int | None) -> int | None:
    """Add one line of the case file to ``case``; returns the pending ``@expect``."""
    if not word.startswith("@"):
        case.steps.append(Step("send", line, line.encode("ascii") + b"\n",
                               1 if expect is None else expect))
        return None
    if word == "@expect":
        return int(rest)
    if word in ("@raw", "@hex", "@rep", "@+raw", "@+hex", "@+rep"):
        join = word.startswith("@+")
        kind = word.lstrip("@+")
        if kind == "raw":
            data, shown = decode_escapes(rest), f"raw {rest}"
        elif kind == "hex":
            data, shown = bytes.fromhex(rest), f"hex {rest[:32]}... ({len(rest) // 2} bytes)"
        else:
            count, _, text = rest.partition(" ")
            data, shown = decode_escapes(text) * int(count), f"rep {count} x {text}"
        if not join:
            case.steps.append(Step("send", shown, data, expect))
            return None
        if expect is not None or not case.steps or case.steps[-1].op != "send":
            raise CaseFileError(f"{word} must follow a request, @raw, @hex or @rep")
        last = case.steps[-1]
        case.steps[-1] = Step("send", f"{last.shown} + {shown}", last.data + data, last.expect)
        return None
    if expect is not None:
        raise CaseFileError("@expect must be followed by a request, @raw, @hex or @rep")
    if word in ("@nutbug", "@xfail", "@xfail-timing", "@pair"):
        if not rest:
            raise CaseFileError(f"{word} needs an argument")
        setattr(case, word[1:].replace("-", "_"), rest)
    elif word in ("@connect", "@connect6", "@use"):
        if not re.fullmatch(r"[a-z0-9]+", rest):
            raise CaseFileError(f"bad connection name {rest!r}")
        case.steps.append(Step(word[1:], rest))
    elif word == "@rawclose":
        case.steps.append(Step("rawclose", f"raw {rest} (then EOF)", decode_escapes(rest)))
    elif word in ("@close", "@eof", "@stale", "@start"):
        case.steps.append(Step(word[1:], rest))
    elif word == "@poll":
        case.steps.append(Step("poll", rest, rest.encode("ascii") + b"\n", 1))
    elif word == "@waitfor":
        request, sep, reply = rest.partition(" => ")
        if not sep:
            raise CaseFileError("@waitfor needs '<request> => <reply>'")
        case.steps.append(Step("waitfor", request, request.encode("ascii") + b"\n",
                               args=(reply,)))
    elif word == "@driver":
        parts = rest.split(" ", 2)
        if len(parts) < 2:
            raise CaseFileError("@driver needs '<ups> <variable> [<value>]'")
        case.steps.append(Step("driver", rest, args=(parts[0], parts[1],
                                                     parts[2] if len(parts) > 2 else "")))
    else:
        raise CaseFileError(f"unknown directive {word}")
    return None


CASES = load_cases()


# -- talking to one server ----------------------------------------------------------------

def _units(buffer: bytes) -> list[int]:
    """End offsets of the complete replies in ``buffer`` (a LIST block is one reply)."""
    ends: list[int] = []
    pos, in_list = 0, False
    while True:
        nl = buffer.find(b"\n", pos)
        if nl < 0:
            return ends
        line = buffer[pos:nl]
        pos = nl + 1
        if in_list:
            in_list = not line.startswith(b"END LIST")
        else:
            in_list = line.startswith(b"BEGIN LIST")
        if not in_list:
            ends.append(pos)


class Conn:
    """One client connection of a case."""

    def __init__(self, name: str, port: int, host: str = "127.0.0.1") -> None:
        self.name = name
        self.sock = socket.create_connection((host, port), timeout=REPLY_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.eof = False

    def read(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for bytes (or EOF); False when nothing came."""
        if self.eof:
            return False
        ready, _, _ = select.select([self.sock], [], [], max(timeout, 0))
        if not ready:
            return False
        try:
            data = self.sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buffer += data
        return True

    def send(self, data: bytes) -> bool:
        """Write all of ``data``; False when the server has gone away."""
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        return True

    def close(self) -> None:
        """Drop the socket (no half-close: see :meth:`Runner._close`)."""
        self.sock.close()


def _side_request(port: int, lines: list[str]) -> list[str]:
    """Send requests on a fresh connection; one reply line each (LIST blocks flattened)."""
    conn = Conn("side", port)
    try:
        conn.send("".join(line + "\n" for line in lines).encode("ascii"))
        deadline = time.monotonic() + REPLY_TIMEOUT
        while len(_units(conn.buffer)) < len(lines) and time.monotonic() < deadline:
            if not conn.read(deadline - time.monotonic()) and conn.eof:
                break
        return conn.buffer.decode("ascii", "replace").splitlines()
    finally:
        conn.close()


class Runner:
    """Plays cases against one server and writes their transcripts.

    ``start_driver(ups)`` gives the UPS its data file (``<ups>.dev``, from ``late.dev``)
    and starts its driver, in whatever way fits the server.
    """

    def __init__(self, label: str, port: int, start_driver: Callable[[str], None]) -> None:
        self.label = label
        self.port = port
        self.start_driver = start_driver

    def run(self, case: Case,
            lockstep: threading.Barrier | None = None) -> tuple[list[str], list[str]]:
        """Play ``case``; return its transcript and the problems seen on the way.

        With ``lockstep`` (servers sharing driver processes) each step starts only once the
        other runner has finished the step before, so that neither changes the drivers'
        data under the other's feet.
        """
        self.lines: list[str] = []
        self.problems: list[str] = []
        self.tracking = ""
        self.conns: dict[str, Conn] = {}
        self.current = self._connect("main")
        try:
            for step in case.steps:
                if lockstep is not None:
                    lockstep.wait(CONDITION_TIMEOUT + REPLY_TIMEOUT)
                getattr(self, f"_op_{step.op}")(step)
            for conn in list(self.conns.values()):
                self._close(conn)
        except BaseException:
            if lockstep is not None:
                lockstep.abort()  # the other runner must not wait for this one
            raise
        finally:
            for conn in self.conns.values():
                conn.close()
        return self.lines, self.problems

    # -- connections ---------------------------------------------------------------

    def _connect(self, name: str, host: str = "127.0.0.1") -> Conn:
        """Open connection ``name`` of the running case."""
        if name in self.conns:
            raise CaseFileError(f"connection {name} is already open")
        conn = self.conns[name] = Conn(name, self.port, host)
        return conn

    def _op_connect(self, step: Step) -> None:
        """``@connect``: a new current connection over IPv4."""
        self.current = self._connect(step.shown)
        self.lines.append(f"{step.shown}: connected")

    def _op_connect6(self, step: Step) -> None:
        """``@connect6``: a new current connection over IPv6."""
        self.current = self._connect(step.shown, "::1")
        self.lines.append(f"{step.shown}: connected over IPv6")

    def _op_use(self, step: Step) -> None:
        """``@use``: switch the current connection."""
        if step.shown not in self.conns:
            raise CaseFileError(f"@use {step.shown}: no such open connection")
        self.current = self.conns[step.shown]

    def _op_close(self, step: Step) -> None:
        """``@close``: half-close a connection and read it to EOF."""
        conn = self.conns.get(step.shown or self.current.name)
        if conn is None:
            raise CaseFileError(f"@close {step.shown}: no such open connection")
        self._close(conn)

    def _close(self, conn: Conn, late_ok: bool = False) -> None:
        """Half-close, read to EOF: late replies are recorded (and are a problem)."""
        with contextlib.suppress(OSError):
            conn.sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + REPLY_TIMEOUT
        while not conn.eof and time.monotonic() < deadline:
            conn.read(deadline - time.monotonic())
        if conn.buffer:
            if not late_ok:
                self.problems.append(f"{conn.name}: replies arrived only when the "
                                     f"connection was closed: {conn.buffer!r}")
            self._record(conn, len(conn.buffer))
        self.lines.append(f"{conn.name}: closed" if conn.eof
                          else f"{conn.name}: no EOF after close")
        conn.close()
        del self.conns[conn.name]
        if conn is self.current and "main" in self.conns:
            self.current = self.conns["main"]

    def _op_rawclose(self, step: Step) -> None:
        """Send and half-close at once (``printf ... | nc -N``), then read to EOF."""
        conn = self.current
        self.lines.append(f"{conn.name}> {step.shown}")
        if conn.eof or not conn.send(step.data):
            self.lines.append(f"{conn.name}: not sent, the server closed the connection")
            return
        self._close(conn, late_ok=True)

    def _op_eof(self, step: Step) -> None:
        """Wait for the server to close the current connection by itself."""
        conn = self.current
        deadline = time.monotonic() + REPLY_TIMEOUT
        while not conn.eof and time.monotonic() < deadline:
            conn.read(deadline - time.monotonic())
        if conn.buffer:
            self._record(conn, len(conn.buffer))
        self.lines.append(f"{conn.name}: closed by the server" if conn.eof
                          else f"{conn.name}: still open")

    # -- requests ------------------------------------------------------------------

    def _substitute(self, data: bytes) -> bytes:
        """Put the last tracking id in for ``$TRACKING`` / ``$tracking``."""
        return data.replace(b"$TRACKING", self.tracking.encode()).replace(
            b"$tracking", self.tracking.lower().encode())

    def _op_send(self, step: Step) -> None:
        """A request or raw bytes on the current connection, then its replies."""
        conn = self.current
        self.lines.append(f"{conn.name}> {step.shown}")
        if conn.eof or not conn.send(self._substitute(step.data)):
            self.lines.append(f"{conn.name}: not sent, the server closed the connection")
            return
        self._collect(conn, step.expect)

    def _collect(self, conn: Conn, expect: int | None) -> None:
        """Read the replies of one step and record them."""
        if expect is None or expect == 0:
            while conn.read(QUIET):
                pass
            self._record(conn, len(conn.buffer))
            return
        deadline = time.monotonic() + REPLY_TIMEOUT
        while len(_units(conn.buffer)) < expect:
            if not conn.read(deadline - time.monotonic()) and (
                    conn.eof or time.monotonic() >= deadline):
                break
        ends = _units(conn.buffer)
        if len(ends) < expect:
            self.problems.append(f"{conn.name}: expected {expect} replies, got {len(ends)}"
                                 f" ({conn.buffer!r})")
            self._record(conn, len(conn.buffer))
        else:
            self._record(conn, ends[expect - 1])

    def _record(self, conn: Conn, size: int) -> None:
        """Move ``size`` bytes of the buffer into the transcript."""
        data, conn.buffer = conn.buffer[:size], conn.buffer[size:]
        lines = data.split(b"\n")
        for number, raw in enumerate(lines):
            last = number == len(lines) - 1
            if last and not raw:
                break
            text = show_bytes(raw)
            match = _TRACKING_ID.match(text)
            if match:
                self.tracking = match.group(1)
            for pattern, replacement in _MASKS:
                text = pattern.sub(replacement, text)
            self.lines.append(f"{conn.name}< {text}" + (" (no LF)" if last else ""))

    def _op_poll(self, step: Step) -> None:
        """Repeat a request on this connection while it answers PENDING; record it once."""
        conn = self.current
        self.lines.append(f"{conn.name}> {step.shown}")
        deadline = time.monotonic() + CONDITION_TIMEOUT
        while True:
            if not conn.send(self._substitute(step.data)):
                self.lines.append(f"{conn.name}: send failed (connection closed)")
                return
            deadline_one = time.monotonic() + REPLY_TIMEOUT
            while not _units(conn.buffer) and conn.read(deadline_one - time.monotonic()):
                pass
            ends = _units(conn.buffer)
            if ends and conn.buffer[:ends[0]] == b"PENDING\n" and time.monotonic() < deadline:
                conn.buffer = conn.buffer[ends[0]:]
                time.sleep(0.02)
                continue
            self._record(conn, ends[0] if ends else len(conn.buffer))
            return

    # -- side channel: not part of the transcript ------------------------------------

    def _wait_reply(self, request: str, wanted: list[str], what: str) -> None:
        """Repeat ``request`` on side connections until it answers one of ``wanted``."""
        deadline = time.monotonic() + CONDITION_TIMEOUT
        reply: list[str] = []
        while time.monotonic() < deadline:
            reply = _side_request(self.port, [request])
            if len(reply) == 1 and reply[0] in wanted:
                return
            time.sleep(0.05)
        self.problems.append(f"{what}: {request!r} never answered {wanted!r} (last: {reply})")
        self.lines.append(f"(gave up waiting: {what})")

    def _op_waitfor(self, step: Step) -> None:
        """``@waitfor``: poll on side connections until the reply is the awaited one."""
        self._wait_reply(self._substitute(step.data).decode().rstrip("\n"), [step.args[0]],
                         f"@waitfor {step.shown}")

    def _op_start(self, step: Step) -> None:
        """``@start``: the UPS gets its data file and driver."""
        self.start_driver(step.shown)

    def _op_stale(self, step: Step) -> None:
        """``@stale``: wait until the stale UPS answers DATA-STALE."""
        self._wait_reply("GET VAR stale ups.status", ["ERR DATA-STALE"], "@stale")

    def _op_driver(self, step: Step) -> None:
        """Change a variable as dummy-ups would (SET VAR as admin), wait until it shows."""
        ups, var, value = step.args
        quoted = '"' + re.sub(r'([\\"#])', r"\\\1", value) + '"'
        replies = _side_request(self.port, ["USERNAME admin", "PASSWORD adminpass",
                                            f"SET VAR {ups} {var} {quoted}"])
        if replies != ["OK", "OK", "OK"]:
            self.problems.append(f"@driver {step.shown}: SET refused: {replies}")
        wanted = [f"VAR {ups} {var} {quoted}"] if value else ["ERR VAR-NOT-SUPPORTED"]
        if value and var.lower() == "ups.status":  # with the FSD latch set
            wanted.append(f'VAR {ups} {var} "FSD {quoted[1:]}')
        self._wait_reply(f"GET VAR {ups} {var}", wanted, f"@driver {step.shown}")


# -- the two server pairs -----------------------------------------------------------------

def _data_files() -> dict[str, str]:
    """The dump files both servers read."""
    return {name: (DATA / name).read_text() for name in ("dummy.dev", "stale.dev")}


def _config(name: str, pair: str) -> str:
    """A config file of a pair: ``<name>-<pair>`` if there is one, else ``<name>``."""
    special = DATA / f"{name}-{pair}"
    return (special if special.exists() else DATA / name).read_text()


@contextlib.contextmanager
def _nut_side(ups_conf: str, users: str) -> Iterator[nutreal.NutServer]:
    """NUT's upsd with dummy-ups for ``dummy`` and ``stale`` (frozen), none for ``nodriver``."""
    with nutreal.nut_server(ups_conf, upsd_conf=UPSD_CONF,
                            upsd_users=users,
                            files=_data_files(), drivers=["dummy", "stale"],
                            extra_listen=["::1"]) as nut:
        nut.freeze_driver("stale")
        yield nut


@contextlib.contextmanager
def _our_side(ups_conf: str, users: str) -> Iterator[OurMaster]:
    """Our master on the same files; ``stale`` loses its data file once it has been read."""
    master = OurMaster(ups_conf, users, files=_data_files())
    (master.dir / "upsd.conf").write_text(
        f"LISTEN 127.0.0.1 {master.port}\nLISTEN ::1 {master.port}\n{UPSD_CONF}")
    with master:
        def served(ups: str) -> bool:
            return _side_request(master.port, [f"GET VAR {ups} ups.status"])[:1] != [] and \
                _side_request(master.port, [f"GET VAR {ups} ups.status"])[0].startswith("VAR ")

        nutreal.wait_for(lambda: served("dummy") and served("stale"), 20,
                         "our master never served dummy and stale")
        (master.dir / "stale.dev").unlink()
        yield master


@contextlib.contextmanager
def _shared_sides(ups_conf: str,
                  users: str) -> Iterator[tuple[nutreal.NutServer, OurMaster]]:
    """``nut-drivers`` mode: upsd and our master (``--nut-drivers``) on the same dummy-ups
    processes; ``stale`` is frozen once both have its dump."""
    with nutreal.nut_server(ups_conf, upsd_conf=UPSD_CONF, upsd_users=users,
                            files=_data_files(), drivers=["dummy", "stale"],
                            extra_listen=["::1"]) as nut:
        master = OurMaster(ups_conf, users, args=("--nut-drivers",))
        (master.dir / "upsd.conf").write_text(
            f"LISTEN 127.0.0.1 {master.port}\nLISTEN ::1 {master.port}\n{UPSD_CONF}"
            f"STATEPATH {nut.directory}\n")
        with master:
            def served(ups: str) -> bool:
                reply = _side_request(master.port, [f"GET VAR {ups} ups.status"])
                return reply[:1] != [] and reply[0].startswith("VAR ")

            nutreal.wait_for(lambda: served("dummy") and served("stale"), 20,
                             "our master never served dummy and stale from NUT's drivers\n"
                             + master.log())
            nut.freeze_driver("stale")
            yield nut, master


def _nut_starter(nut: nutreal.NutServer) -> Callable[[str], None]:
    """NUT: write the UPS's port file, start its dummy-ups; upsd connects on its own."""
    def start(ups: str) -> None:
        (nut.directory / f"{ups.lower()}.dev").write_text((DATA / "late.dev").read_text())
        nut.start_driver(ups)
    return start


def _shared_starter(ups: str) -> None:
    """Ours in ``nut-drivers`` mode: NUT's runner starts the driver both servers read."""


def _our_starter(master: OurMaster) -> Callable[[str], None]:
    """Ours: the replay driver finds its missing port file on its next poll."""
    def start(ups: str) -> None:
        (master.dir / f"{ups.lower()}.dev").write_text((DATA / "late.dev").read_text())
    return start


@dataclass
class Pair:
    """NUT and our master, started side by side."""

    nut: Runner
    ours: Runner
    #: both servers read the same driver processes: the runners go in lockstep
    shared: bool = False


class Pairs:
    """Server pairs started on first use and stopped at the end of the session."""

    def __init__(self, stack: contextlib.ExitStack) -> None:
        self._stack = stack
        self._pairs: dict[str, Pair] = {}
        #: pairs that could not be started, so that their other cases fail fast
        self._failed: dict[str, BaseException] = {}
        self._lock = threading.Lock()

    def get(self, name: str, mode: str = "replay") -> Pair:
        """The pair called ``name`` in ``mode``, started now if this is its first use."""
        key = f"{name}/{mode}"
        with self._lock:
            if key in self._failed:
                raise RuntimeError(f"server pair {key!r} did not start") from self._failed[key]
            if key not in self._pairs and mode == "nut-drivers":
                stack = self._stack.enter_context(contextlib.ExitStack())
                try:
                    nut, ours = stack.enter_context(_shared_sides(
                        _config("ups.conf", name), _config("upsd.users", name)))
                except BaseException as exc:
                    self._failed[key] = exc
                    raise
                self._pairs[key] = Pair(Runner("NUT", nut.port, _nut_starter(nut)),
                                        Runner("ours", ours.port, _shared_starter),
                                        shared=True)
            if key not in self._pairs:
                # One exit stack per side, registered before starting, so that a side
                # that did start is stopped even when the other one fails.
                nut_stack = self._stack.enter_context(contextlib.ExitStack())
                our_stack = self._stack.enter_context(contextlib.ExitStack())
                with concurrent.futures.ThreadPoolExecutor(2) as pool:
                    conf = _config("ups.conf", name), _config("upsd.users", name)
                    nut_future = pool.submit(nut_stack.enter_context, _nut_side(*conf))
                    our_future = pool.submit(our_stack.enter_context, _our_side(*conf))
                    try:
                        nut, ours = nut_future.result(), our_future.result()
                    except BaseException as exc:
                        self._failed[key] = exc
                        raise
                self._pairs[key] = Pair(Runner("NUT", nut.port, _nut_starter(nut)),
                                        Runner("ours", ours.port, _our_starter(ours)))
            return self._pairs[key]


@pytest.fixture(scope="session")
def pairs() -> Iterator[Pairs]:
    """The server pairs of this test session (skipped without NUT's binaries)."""
    nutreal.require_nut()
    with contextlib.ExitStack() as stack:
        yield Pairs(stack)


# -- the tests ------------------------------------------------------------------------------

def _params() -> list[Any]:
    """One pytest parameter per case, with its skip/xfail marks."""
    params = []
    for case in CASES:
        marks: list[Any] = []
        if case.nutbug is not None:
            marks.append(pytest.mark.xfail(reason=f"NUT 2.8.0 bug: {case.nutbug}", strict=True)
                         if RUN_NUTBUGS else
                         pytest.mark.skip(reason=f"NUT 2.8.0 bug (NUTDIFF_NUTBUGS=1 runs it): "
                                                 f"{case.nutbug}"))
        elif case.xfail is not None:
            marks.append(pytest.mark.xfail(reason=case.xfail, strict=True))
        elif case.xfail_timing is not None:
            marks.append(pytest.mark.xfail(reason=case.xfail_timing, strict=False))
        params.append(pytest.param(case, id=case.name, marks=marks))
    return params


_POOL = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="nutdiff")


#: how our master gets its data: its own replay driver, or NUT's dummy-ups processes
MODES = ("replay", "nut-drivers")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", _params())
def test_case(case: Case, mode: str, pairs: Pairs) -> None:
    """The case's transcript from our master equals NUT's, byte for byte (after masks)."""
    pair = pairs.get(case.pair, mode)
    lockstep = threading.Barrier(2) if pair.shared else None
    nut_future = _POOL.submit(pair.nut.run, case, lockstep)
    our_future = _POOL.submit(pair.ours.run, case, lockstep)
    (nut_lines, nut_problems), (our_lines, _) = nut_future.result(), our_future.result()
    if DUMP_DIR:
        for side, lines in (("nut", nut_lines), ("ours", our_lines)):
            path = Path(DUMP_DIR) / f"{case.name}.{mode}.{side}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(lines) + "\n")
    if nut_problems:
        pytest.fail(f"case {case.name} (cases.txt line {case.line}) does not match what NUT "
                    "does; fix the case file:\n" + "\n".join(nut_problems)
                    + "\n--- NUT transcript\n" + "\n".join(nut_lines), pytrace=False)
    if nut_lines != our_lines:
        diff = difflib.unified_diff(nut_lines, our_lines, "NUT 2.8.0 upsd", "upsagent master",
                                    lineterm="")
        pytest.fail(f"case {case.name} (cases.txt line {case.line}) differs:\n"
                    + "\n".join(diff), pytrace=False)


def test_case_file() -> None:
    """The case file parses, names are unique, and it covers enough ground."""
    assert len(CASES) > 100
    assert all(case.steps for case in CASES)
    assert {case.pair for case in CASES} <= {"main", "fsd", "scratch", "users", "late", "conf"}
