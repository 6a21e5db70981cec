# -*- test-case-name: tests.test_client -*-
"""The sans-IO NUT client core (request lines, every reply shape, errors) and libupsclient's
address parsing (in the blocking module)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from upsagent.nut.target import BadTarget, Target, split_addr, split_name
from upsagent.nut.client import (
    ClientConnection,
    CmdDescReply,
    DescReply,
    IncompleteList,
    InsufficientData,
    ListReply,
    NumLoginsReply,
    NutError,
    OkReply,
    ProtocolError,
    Reply,
    Request,
    TextReply,
    TrackingReply,
    TransportError,
    TypeReply,
    UpsDescReply,
    VarReply,
    c_strtol,
    error_message,
    split_reply,
)
from upsagent.nut.tokenizer import RequestReader, quote

printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=200)


def exchange(request: Request, data: bytes, max_line: int | None = None) -> Reply | None:
    """Send one request, feed ``data``, return the reply."""
    conn = ClientConnection(max_line)
    conn.send(request)
    conn.receive_data(data)
    return conn.next_reply()


# -- requests ----------------------------------------------------------------------------


@pytest.mark.parametrize("request_, line", [
    (Request.get("VAR", "dummy", "ups.status"), b"GET VAR dummy ups.status\n"),
    (Request.list("UPS"), b"LIST UPS\n"),
    (Request.get("VAR", "du mmy", 'a"b'), b'GET VAR "du mmy" "a\\"b"\n'),
    (Request.set_var("dummy", "ups.id", "x"), b'SET VAR dummy ups.id "x"\n'),
    (Request.set_var("dummy", "ups.id", 'a "q" \\c #1'),
     b'SET VAR dummy ups.id "a \\"q\\" \\\\c \\#1"\n'),
    (Request.of("PASSWORD", "pa ss"), b'PASSWORD "pa ss"\n'),
    (Request.of("USERNAME", ""), b'USERNAME ""\n'),
    (Request.of("PASSWORD", "a=b"), b'PASSWORD "a=b"\n'),
    (Request.instcmd("dummy", "load.off"), b"INSTCMD dummy load.off\n"),
    (Request.instcmd("dummy", "load.off", "30"), b"INSTCMD dummy load.off 30\n"),
    (Request.get_tracking("ABC"), b"GET TRACKING ABC\n"),
])
def test_request_lines(request_: Request, line: bytes) -> None:
    """Arguments go out raw when safe, quoted and escaped when upsd would alter them."""
    assert request_.line() == line


@given(st.lists(printable, min_size=1, max_size=6))
def test_request_words_survive_upsd_tokenizer(words: list[str]) -> None:
    """Whatever the arguments, upsd's tokenizer reads back exactly the words we meant."""
    request = Request(("GET",) + tuple(words))
    (parsed,) = RequestReader(max_word_len=10_000).feed(request.line())
    assert parsed == ["GET", *words]


@given(printable)
def test_quote_then_parse_round_trips(value: str) -> None:
    """A value quoted as upsd quotes it comes back unchanged from the reply parser."""
    line = f"VAR dummy ups.id {quote(value)}".encode()
    assert split_reply(line) == ("VAR", "dummy", "ups.id", value)
    assert exchange(Request.get("VAR", "dummy", "ups.id"), line + b"\n") == \
        VarReply("dummy", "ups.id", value)


# -- single-line replies -------------------------------------------------------------------


@pytest.mark.parametrize("request_, data, reply", [
    (Request.get("VAR", "dummy", "ups.status"), b'VAR dummy ups.status "OL CHRG"\n',
     VarReply("dummy", "ups.status", "OL CHRG")),
    (Request.get("VAR", "DUMMY", "UPS.STATUS"), b'VAR DUMMY UPS.STATUS "OL"\n',
     VarReply("DUMMY", "UPS.STATUS", "OL")),
    (Request.get("VAR", "dummy", "ups.id"), b'VAR dummy ups.id "say \\"hi\\" \\#4 C:\\\\x"\n',
     VarReply("dummy", "ups.id", 'say "hi" #4 C:\\x')),
    (Request.get("TYPE", "dummy", "ups.status"), b"TYPE dummy ups.status RW STRING:32\n",
     TypeReply("dummy", "ups.status", ("RW", "STRING:32"))),
    (Request.get("DESC", "dummy", "ups.load"), b'DESC dummy ups.load "Load on UPS (percent)"\n',
     DescReply("dummy", "ups.load", "Load on UPS (percent)")),
    (Request.get("CMDDESC", "dummy", "load.off"), b'CMDDESC dummy load.off "Turn off"\n',
     CmdDescReply("dummy", "load.off", "Turn off")),
    (Request.get("UPSDESC", "dummy"), b'UPSDESC dummy "Unavailable"\n',
     UpsDescReply("dummy", "Unavailable")),
    (Request.get("NUMLOGINS", "dummy"), b"NUMLOGINS dummy 2\n", NumLoginsReply("dummy", 2)),
    (Request.of("USERNAME", "admin"), b"OK\n", OkReply("OK")),
    (Request.of("LOGOUT"), b"OK Goodbye\n", OkReply("OK Goodbye")),
    (Request.of("PRIMARY", "dummy"), b"OK PRIMARY-GRANTED\n", OkReply("OK PRIMARY-GRANTED")),
    (Request.of("NETVER"), b"1.3\n", TextReply("1.3")),
    (Request.of("VER"), b"Network UPS Tools upsd 2.8.0\n", TextReply("Network UPS Tools upsd 2.8.0")),
    (Request.get_tracking(), b"OFF\n", TrackingReply("OFF")),
    (Request.get_tracking("ID"), b"PENDING\n", TrackingReply("PENDING")),
    (Request.get_tracking("ID"), b"SUCCESS\n", TrackingReply("SUCCESS")),
    (Request.get_tracking("ID"), b"ERR UNKNOWN\n", TrackingReply("ERR UNKNOWN")),
])
def test_single_line_replies(request_: Request, data: bytes, reply: Reply) -> None:
    """Each reply shape becomes its typed object; names are echoed as the client sent them."""
    assert exchange(request_, data) == reply


def test_type_reply_helpers() -> None:
    """TYPE flags expose RW and the STRING:n length (None for NUMBER)."""
    string = TypeReply("u", "v", ("RW", "ENUM", "STRING:16"))
    assert string.writable and string.string_length == 16
    number = TypeReply("u", "v", ("NUMBER",))
    assert not number.writable and number.string_length is None


def test_tracking_ok_reply() -> None:
    """``OK TRACKING <id>`` is a success that carries the id."""
    reply = exchange(Request.instcmd("u", "load.off"), b"OK TRACKING 1234-AB\n")
    assert isinstance(reply, OkReply) and reply.tracking_id == "1234-AB"
    assert OkReply("OK").tracking_id is None


def test_pending_tracking_reply() -> None:
    """A tracking result is pending while it says PENDING."""
    assert TrackingReply("PENDING").pending and not TrackingReply("SUCCESS").pending


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("code, message", [
    ("VAR-NOT-SUPPORTED", "Variable not supported by UPS"),
    ("UNKNOWN-UPS", "Unknown UPS"),
    ("DATA-STALE", "Data stale"),
    ("DRIVER-NOT-CONNECTED", "Driver not connected"),
    ("ACCESS-DENIED", "Access denied"),
    ("PASSWORD-REQUIRED", "Password required"),
    ("USERNAME-REQUIRED", "Username required"),
    ("READONLY", "Read-only variable"),
    ("TOO-LONG", "New value is too long"),
    ("INVALID-VALUE", "Invalid value for variable"),
    ("CMD-NOT-SUPPORTED", "Instant command not supported"),
    ("UNKNOWN-COMMAND", "Unknown command"),
    ("ALREADY-SET-USERNAME", "Already set username"),
    ("INVALID-ARGUMENT", "Unknown error"),
    ("FEATURE-NOT-CONFIGURED", "Unknown error"),
    ("VAR-NOT-SUPPORTED-EXTRA", "Variable not supported by UPS"),
    ("", "Unknown error"),
])
def test_error_messages(code: str, message: str) -> None:
    """ERR codes map to libupsclient's messages by prefix; unknown codes are "Unknown error"."""
    assert error_message(code) == message
    with pytest.raises(NutError) as caught:
        exchange(Request.get("VAR", "u", "v.x"), f"ERR {code}\n".encode())
    assert caught.value.message == message and caught.value.line == f"ERR {code}"
    assert NutError(code).message == message


def test_error_on_simple_command_keeps_line() -> None:
    """An ERR answer to a simple command raises with the raw line (upscmd prints it)."""
    with pytest.raises(NutError) as caught:
        exchange(Request.instcmd("u", "x.y"), b"ERR CMD-NOT-SUPPORTED extra words\n")
    assert caught.value.code == "CMD-NOT-SUPPORTED"
    assert caught.value.line == "ERR CMD-NOT-SUPPORTED extra words"


def test_unexpected_simple_reply() -> None:
    """A simple command answered with neither OK nor ERR is a protocol error with the line."""
    with pytest.raises(ProtocolError) as caught:
        exchange(Request.of("USERNAME", "x"), b"HUH\n")
    assert caught.value.message == "Protocol error" and caught.value.line == "HUH"


@pytest.mark.parametrize("data", [
    b'VAR other ups.status "OL"\n',       # wrong UPS echoed
    b'VAR dummy\n',                        # too short
    b'VAR dummy ups.status\n',             # no value
    b'\n',                                 # empty line
    b'TYPE dummy ups.status NUMBER\n',     # wrong kind
])
def test_get_reply_must_echo_and_carry_value(data: bytes) -> None:
    """A GET reply that does not repeat the request, or lacks its value, is a protocol error."""
    conn = ClientConnection()
    conn.send(Request.get("VAR", "dummy", "ups.status"))
    conn.send(Request.of("NETVER"))
    conn.receive_data(data + b"1.3\n")
    with pytest.raises(ProtocolError):
        conn.next_reply()
    assert conn.next_reply() == TextReply("1.3")


def test_numlogins_must_be_a_number() -> None:
    """NUMLOGINS with a non-numeric count is a protocol error (raised by next_reply)."""
    conn = ClientConnection()
    conn.send(Request.get("NUMLOGINS", "u"))
    conn.receive_data(b"NUMLOGINS u many\n")
    with pytest.raises(ProtocolError):
        conn.next_reply()


# -- lists -------------------------------------------------------------------------------


@pytest.mark.parametrize("request_, body, items", [
    (Request.list("UPS"), b'UPS dummy "Reference \\"dummy\\" UPS"\nUPS stale "Description unavailable"\n',
     (("UPS", "dummy", 'Reference "dummy" UPS'), ("UPS", "stale", "Description unavailable"))),
    (Request.list("VAR", "dummy"), b'VAR dummy battery.charge "100"\nVAR dummy ups.status "OL"\n',
     (("VAR", "dummy", "battery.charge", "100"), ("VAR", "dummy", "ups.status", "OL"))),
    (Request.list("RW", "dummy"), b'RW dummy ups.id "x"\n', (("RW", "dummy", "ups.id", "x"),)),
    (Request.list("CMD", "dummy"), b"CMD dummy load.off\n", (("CMD", "dummy", "load.off"),)),
    (Request.list("ENUM", "dummy", "v.x"), b'ENUM dummy v.x "a"\nENUM dummy v.x "b"\n',
     (("ENUM", "dummy", "v.x", "a"), ("ENUM", "dummy", "v.x", "b"))),
    (Request.list("RANGE", "dummy", "v.x"), b'RANGE dummy v.x "1" "9"\n',
     (("RANGE", "dummy", "v.x", "1", "9"),)),
    (Request.list("CLIENT", "dummy"), b"CLIENT dummy 127.0.0.1\nCLIENT dummy ::1\n",
     (("CLIENT", "dummy", "127.0.0.1"), ("CLIENT", "dummy", "::1"))),
    (Request.list("VAR", "dummy"), b"", ()),
])
def test_lists(request_: Request, body: bytes, items: tuple[tuple[str, ...], ...]) -> None:
    """Every LIST kind: BEGIN LIST <request>, items, END LIST <request>; empty lists are fine."""
    query = " ".join(request_.words[1:]).encode()
    data = b"BEGIN LIST " + query + b"\n" + body + b"END LIST " + query + b"\n"
    reply = exchange(request_, data)
    assert reply == ListReply(request_.words[1:], items)


def test_list_helpers() -> None:
    """values() and names() read LIST VAR / UPS / CMD items."""
    assert ListReply(("VAR", "u"), (("VAR", "u", "a.b", "1"),)).values() == {"a.b": "1"}
    assert ListReply(("UPS",), (("UPS", "u", "d"),)).values() == {"u": "d"}
    assert ListReply(("UPS",), (("UPS", "u", "d"),)).names() == ["u"]
    assert ListReply(("CMD", "u"), (("CMD", "u", "load.off"),)).names() == ["load.off"]


def test_short_list_item_is_insufficient_data() -> None:
    """checked_items stops at the first item with too few words, saying got/need."""
    reply = ListReply(("VAR", "u"), (("VAR", "u", "a.b", "1"), ("VAR", "u", "c.d")))
    seen = []
    with pytest.raises(InsufficientData) as caught:
        for item in reply.checked_items():
            seen.append(item)
    assert seen == [("VAR", "u", "a.b", "1")]
    assert (caught.value.got, caught.value.need) == (3, 4)
    assert caught.value.detail == "insufficient data (got 3 args, need at least 4)"


def test_list_echo_is_case_insensitive_but_end_is_exact() -> None:
    """BEGIN LIST and items match the request ignoring case; only an exact END LIST ends it."""
    data = (b"begin list var DUMMY\nvar Dummy a.b \"1\"\nend list VAR dummy\n"
            b"END LIST whatever\n")
    with pytest.raises(IncompleteList) as caught:
        exchange(Request.list("VAR", "dummy"), data)
    assert caught.value.partial.items == (("var", "Dummy", "a.b", "1"),)
    assert isinstance(caught.value.cause, ProtocolError)


@pytest.mark.parametrize("data", [
    b'VAR dummy a.b "1"\n',
    b"BEGIN LIST VAR other\n",
    b"BEGIN\n",
])
def test_list_must_begin_with_the_request(data: bytes) -> None:
    """A list that does not open with ``BEGIN LIST <request>`` is a protocol error."""
    with pytest.raises(ProtocolError):
        exchange(Request.list("VAR", "dummy"), data)


def test_error_before_list_is_plain_error() -> None:
    """An ERR instead of BEGIN LIST raises the NutError itself."""
    with pytest.raises(NutError) as caught:
        exchange(Request.list("VAR", "nosuch"), b"ERR UNKNOWN-UPS\n")
    assert caught.value.message == "Unknown UPS"


@pytest.mark.parametrize("tail, cause", [
    (b"ERR DATA-STALE\n", NutError),
    (b'VAR other x.y "1"\n', ProtocolError),
    (b"\n", ProtocolError),
])
def test_list_cut_short_keeps_partial(tail: bytes, cause: type) -> None:
    """An ERR, a foreign item or an empty line mid-list raises IncompleteList with the items so far."""
    data = b'BEGIN LIST VAR dummy\nVAR dummy a.b "1"\n' + tail
    with pytest.raises(IncompleteList) as caught:
        exchange(Request.list("VAR", "dummy"), data)
    assert caught.value.partial.items == (("VAR", "dummy", "a.b", "1"),)
    assert isinstance(caught.value.cause, cause)


def test_connection_lost_mid_list() -> None:
    """Losing the connection mid-list fails it with the partial items and the transport error."""
    conn = ClientConnection()
    conn.send(Request.list("VAR", "dummy"))
    conn.receive_data(b'BEGIN LIST VAR dummy\nVAR dummy a.b "1"\nVAR dum')
    assert conn.next_reply() is None
    conn.connection_lost()
    with pytest.raises(IncompleteList) as caught:
        conn.next_reply()
    assert caught.value.message == "Server disconnected"
    assert len(caught.value.partial.items) == 1


# -- the connection ------------------------------------------------------------------------


def test_pipelined_requests_answer_in_order() -> None:
    """Several requests in flight get their replies in order, even from one chunk."""
    conn = ClientConnection()
    data = conn.send(Request.of("NETVER")) + conn.send(Request.list("UPS")) + \
        conn.send(Request.get("VAR", "u", "x.y"))
    assert data == b"NETVER\nLIST UPS\nGET VAR u x.y\n"
    conn.receive_data(b'1.3\nBEGIN LIST UPS\nUPS u "d"\nEND LIST UPS\nERR VAR-NOT-SUPPORTED\n')
    assert conn.pending == 3
    assert conn.next_reply() == TextReply("1.3")
    assert conn.next_reply() == ListReply(("UPS",), (("UPS", "u", "d"),))
    with pytest.raises(NutError):
        conn.next_reply()
    assert conn.next_reply() is None and conn.pending == 0


def test_byte_by_byte() -> None:
    """Replies split over any number of reads are reassembled."""
    conn = ClientConnection()
    conn.send(Request.get("VAR", "u", "x.y"))
    for byte in b'VAR u x.y "a b"\n':
        assert conn.next_reply() is None
        conn.receive_data(bytes([byte]))
    assert conn.next_reply() == VarReply("u", "x.y", "a b")


def test_lines_wait_for_a_request() -> None:
    """Bytes that arrive before any request are kept for the next one, as libupsclient does."""
    conn = ClientConnection()
    conn.receive_data(b"OK\n")
    conn.send(Request.of("USERNAME", "x"))
    assert conn.next_reply() == OkReply("OK")


def test_connection_lost() -> None:
    """After connection_lost queued requests fail and new ones are refused."""
    conn = ClientConnection()
    conn.send(Request.of("USERNAME", "x"))
    conn.connection_lost(TransportError.os_error("Read error", 104))
    with pytest.raises(TransportError) as caught:
        conn.next_reply()
    assert caught.value.message == "Read error: Connection reset by peer"
    assert conn.closed
    with pytest.raises(TransportError) as refused:
        conn.send(Request.of("LOGOUT"))
    assert refused.value.message == "Driver not connected"


def test_long_lines_split_like_libupsclient() -> None:
    """With max_line=511 a longer line is cut after 511 bytes; the rest is the next line."""
    conn = ClientConnection(max_line=511)
    conn.send(Request.of("NETVER"))
    conn.send(Request.of("NETVER"))
    conn.receive_data(b"x" * 600 + b"\n")
    assert conn.next_reply() == TextReply("x" * 511)
    assert conn.next_reply() == TextReply("x" * 89)
    assert exchange(Request.of("NETVER"), b"y" * 600 + b"\n") == TextReply("y" * 600)


def test_nul_ends_the_line_text() -> None:
    """A NUL byte ends a reply line's text, as in C."""
    assert exchange(Request.get("VAR", "u", "x.y"), b'VAR u x.y "ab"\0junk\n') == \
        VarReply("u", "x.y", "ab")


@pytest.mark.parametrize("line, words", [
    (b'VAR u x.y "a#b"', ("VAR", "u", "x.y", "a")),
    (b'VAR u x.y "#"', ("VAR", "u", "x.y", "")),
    (b'VAR u x.y "\\#" "c#d"', ("VAR", "u", "x.y", "#", "c")),
    (b"VAR u x.y 1 # comment", ("VAR", "u", "x.y", "1")),
    (b'VAR u x.y "unterminated', ("VAR", "u", "x.y", "unterminated")),
    (b"VAR u x.y \x01\x80a", ("VAR", "u", "x.y", "a")),
    (b" ".join([b"w"] * 40), ("w",) * 32),
])
def test_split_reply_like_pconf_line(line: bytes, words: tuple[str, ...]) -> None:
    """Reply lines split like pconf_line: a '#' in quotes keeps the words read so far."""
    assert split_reply(line) == words


# -- addresses ---------------------------------------------------------------------------


@pytest.mark.parametrize("text, target", [
    ("dummy", Target("dummy", "localhost", 3493)),
    ("dummy@host", Target("dummy", "host", 3493)),
    ("dummy@host:1234", Target("dummy", "host", 1234)),
    ("dummy@[::1]:1234", Target("dummy", "::1", 1234)),
    ("dummy@[::1]", Target("dummy", "::1", 3493)),
    ("dummy@[::1]x", Target("dummy", "::1", 3493)),
    ("dummy@host:12abc", Target("dummy", "host", 12)),
    ("dummy@host: 7", Target("dummy", "host", 7)),
    ("@host:1234", Target("host:1234", "host", 1234)),
    ("@a@b", Target("a", "a", 3493)),  # strtok cut the host at the 2nd @
    ("a@b@c", Target("a", "b@c", 3493)),
    ("dummy@:80", Target("dummy", "80", 80)),
])
def test_split_name(text: str, target: Target) -> None:
    """ups[@host[:port]] is split with libupsclient's exact (strtok-based) rules."""
    assert split_name(text) == target


@pytest.mark.parametrize("text, diagnostic", [
    (None, None),
    ("", "upscli_splitname: can't parse empty string"),
    ("dummy@", "upscli_splitaddr: can't parse empty string"),
    ("dummy@host:", "upscli_splitaddr: no port specified after ':' separator"),
    ("dummy@host:0", "upscli_splitaddr: no port specified after ':' separator"),
    ("dummy@host:65536", "upscli_splitaddr: no port specified after ':' separator"),
    ("dummy@host:-1", "upscli_splitaddr: no port specified after ':' separator"),
    ("dummy@::1", "upscli_splitaddr: no port specified after ':' separator"),
    ("dummy@[::1:1", "upscli_splitaddr: missing closing bracket in [domain literal]"),
    ("@", None),
    ("dummy@[]", None),
])
def test_split_name_errors(text: str | None, diagnostic: str | None) -> None:
    """Bad definitions raise BadTarget with the diagnostic libupsclient prints (if any)."""
    with pytest.raises(BadTarget) as caught:
        split_name(text)
    assert caught.value.diagnostic == diagnostic


def test_split_addr() -> None:
    """host[:port] alone (upsc -l) follows the same rules."""
    assert split_addr("localhost") == ("localhost", 3493)
    assert split_addr("[fe80::1]:99") == ("fe80::1", 99)
    with pytest.raises(BadTarget):
        split_addr("127.0.0.1:")


@pytest.mark.parametrize("text, value", [
    ("12", 12), (" +7x", 7), ("-3", -3), ("", 0), ("abc", 0), ("9" * 30, (1 << 63) - 1),
])
def test_c_strtol(text: str, value: int) -> None:
    """c_strtol parses a leading integer like C strtol (clamped, 0 when none)."""
    assert c_strtol(text) == value
