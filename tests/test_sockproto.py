"""The driver socket protocol's sans-IO session (upsagent/nut/sockproto.py).

The expected behaviour is NUT 2.8.0's: server/sstate.c (which lines count, with how many
words), common/state.c (flags, aux, enums, ranges, the sorted command list),
server/upsd.c (tracking statuses), server/netset.c and server/netinstcmd.c (what upsd
writes).  The dump below is what Debian's dummy-ups 2.8.0 sends for a small .dev file.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from upsagent.model import UPS, Availability
from upsagent.nut.sockproto import DriverSession, Limits, UpsSink, c_atoi, tracking_result

# recorded from /lib/nut/dummy-ups (2.8.0) answering DUMPALL for a three-line .dev file
DUMP = b"""\
SETINFO battery.charge "100"
SETFLAGS battery.charge RW
SETINFO device.contact "a \\"q\\" b\\\\c \\#1"
SETAUX device.contact 32
SETFLAGS device.contact RW STRING
SETINFO device.mfr "Dummy Manufacturer"
SETINFO driver.name "dummy-ups"
SETINFO ups.status "OL"
SETAUX ups.status 32
SETFLAGS ups.status RW STRING
ADDCMD load.off
DATAOK
DUMPDONE
"""


def session(limits: Limits = Limits()) -> tuple[DriverSession, UPS]:
    ups = UPS("dummy")
    s = DriverSession(UpsSink(ups), limits)
    assert s.start() == b"DUMPALL\n"
    return s, ups


def test_the_dump_fills_the_model() -> None:
    """Values unescaped as parseconf reads them, flags and aux as GET TYPE shows them."""
    s, ups = session()
    got = s.receive(DUMP[:100], 0)
    assert got.heard and not got.dump_done
    assert s.availability is Availability.NOT_CONNECTED
    got = s.receive(DUMP[100:], 0)
    assert got.dump_done and got.fault is None and got.notices == []
    assert s.availability is Availability.OK
    assert ups.value("device.contact") == 'a "q" b\\c #1'
    charge, contact, name = (ups.get(n) for n in ("battery.charge", "device.contact",
                                                  "driver.name"))
    assert charge is not None and charge.type_words() == ["RW", "NUMBER"]
    assert contact is not None and contact.type_words() == ["RW", "STRING:32"]
    assert name is not None and name.type_words() == ["NUMBER"]
    assert ups.commands() == ["load.off"]
    # a second DUMPDONE is not news
    assert not s.receive(b"DUMPDONE\n", 1).dump_done


def test_datastale_counts_after_the_dump() -> None:
    """DATASTALE at the start of a dump, DATAOK later: sstate_dead's reading."""
    s, _ = session()
    s.receive(b"DATASTALE\nSETINFO ups.status \"OL\"\n", 0)
    assert s.availability is Availability.NOT_CONNECTED
    s.receive(b"DUMPDONE\n", 0)
    assert s.availability is Availability.STALE
    s.receive(b"DATAOK\n", 1)
    assert s.availability is Availability.OK
    s.receive(b"datastale\n", 2)  # keywords in any case
    assert s.availability is Availability.STALE


def test_variables_flags_aux_and_deletion() -> None:
    s, ups = session()
    s.receive(b'SETINFO Ups.Id "x"\nSETINFO ups.id "y"\nSETFLAGS ups.id rw string bogus\n'
              b"SETAUX ups.id 0x10\nSETAUX nosuch 5\nSETFLAGS nosuch RW\n", 0)
    var = ups.get("ups.id")
    assert var is not None
    assert (var.name, var.value, var.type_words()) == ("Ups.Id", "y", ["RW", "STRING:0"])
    s.receive(b"SETAUX ups.id 12abc\nSETFLAGS ups.id NUMBER\n", 0)
    assert var.type_words() == ["NUMBER"] and var.string_len is None
    s.receive(b"SETFLAGS ups.id STRING\n", 0)
    assert var.type_words() == ["STRING:12"]
    assert ups.get("nosuch") is None
    s.receive(b"DELINFO UPS.ID\nDELINFO nosuch\n", 0)
    assert ups.get("ups.id") is None


def test_enums_and_ranges_follow_nut_state_c() -> None:
    """Enums append (exact duplicates ignored), DELENUM ignores case; a range sharing its
    minimum or maximum with a listed one is a duplicate, DELRANGE takes the first such."""
    s, ups = session()
    s.receive(b'SETINFO input.sensitivity "M"\nADDENUM input.sensitivity "H"\n'
              b'ADDENUM input.sensitivity "M"\nADDENUM input.sensitivity "H"\n'
              b'ADDENUM input.sensitivity "L"\nDELENUM input.sensitivity "m"\n'
              b'ADDENUM nosuch "x"\n', 0)
    var = ups.get("input.sensitivity")
    assert var is not None and var.enum == ["H", "L"]
    s.receive(b"SETINFO input.transfer.low 95\nADDRANGE input.transfer.low 90 100\n"
              b"ADDRANGE input.transfer.low 90 110\nADDRANGE input.transfer.low 80 100\n"
              b"ADDRANGE input.transfer.low 120 110\nADDRANGE input.transfer.low 60 70x\n", 0)
    var = ups.get("input.transfer.low")
    assert var is not None and var.ranges == [(90, 100), (60, 70)]
    assert var.type_words() == ["RANGE", "NUMBER"]
    s.receive(b"DELRANGE input.transfer.low 1 70\n", 0)
    assert var.ranges == [(90, 100)]


def test_commands_are_kept_sorted() -> None:
    """upsd's command list is sorted case-insensitively (LIST CMD order)."""
    s, ups = session()
    s.receive(b"ADDCMD test.battery.start\nADDCMD beeper.off\nADDCMD Load.off\n"
              b"ADDCMD load.OFF\nADDCMD load.on\n", 0)
    assert ups.commands() == ["beeper.off", "Load.off", "load.on", "test.battery.start"]
    s.receive(b"DELCMD LOAD.off\nDELCMD nosuch\n", 0)
    assert ups.commands() == ["beeper.off", "load.on", "test.battery.start"]
    assert ups.has_command("LOAD.ON")


def test_what_counts_as_heard() -> None:
    """Only valid driver lines are news (last_heard); too few words or unknown keywords
    are notices; PONG is heard."""
    s, _ = session()
    got = s.receive(b"PONG\n", 0)
    assert got.heard and got.notices == []
    got = s.receive(b"SETINFO ups.status\nADDRANGE x 1\nHELLO there\n\n", 0)
    assert not got.heard
    assert got.notices == ["SETINFO needs 2 arguments: SETINFO ups.status",
                           "ADDRANGE needs 3 arguments: ADDRANGE x 1",
                           "not a driver line: HELLO there"]
    got = s.receive(b'SETINFO x "a # b"\nPID 12\nOK\n', 0)
    assert not got.heard and got.notices == ["parse error: Unbalanced word due to unescaped "
                                             "# in quotes"]


def test_tracking_statuses_as_upsd_reports_them() -> None:
    assert [tracking_result(v) for v in ("0", "1", "2", "3", "-1", "4", "x", " 3z")] == [
        "SUCCESS", "ERR UNKNOWN", "ERR INVALID-ARGUMENT", "ERR FAILED", None, "ERR UNKNOWN",
        "SUCCESS", "ERR FAILED"]
    s, _ = session()
    got = s.receive(b"TRACKING ABC 0\nTRACKING def -1\nTRACKING only\n", 0)
    assert got.tracking == [("ABC", "SUCCESS"), ("def", None)]
    assert c_atoi("4294967297") == 1 and c_atoi("-2147483649") == 2147483647


def test_requests_as_upsd_writes_them() -> None:
    """SET quotes and escapes its value; INSTCMD's value is plain when it can be, quoted when
    it holds a space or =, left out when empty; TRACKING <id> at the end."""
    assert DriverSession.setvar("ups.id", 'a "b" \\#', None) == \
        b'SET ups.id "a \\"b\\" \\\\\\#"\n'
    assert DriverSession.setvar("ups.id", "", "ID-1") == b'SET ups.id "" TRACKING ID-1\n'
    assert DriverSession.instcmd("load.off") == b"INSTCMD load.off\n"
    assert DriverSession.instcmd("load.off", "10", "ID-2") == \
        b"INSTCMD load.off 10 TRACKING ID-2\n"
    assert DriverSession.instcmd("load.off", "") == b"INSTCMD load.off\n"
    assert DriverSession.instcmd("x", "a b=c") == b'INSTCMD x "a b=c"\n'
    assert DriverSession.ping() == b"PING\n"


def test_a_long_line_is_a_fault_and_ends_the_session() -> None:
    s, ups = session(Limits(max_line=100))
    got = s.receive(b"SETINFO ups.status " + b"x" * 200, 0)
    assert got.fault == "sent a line longer than 100 bytes"
    assert s.receive(b"\nSETINFO a 1\n", 1).fault == got.fault
    assert ups.get("a") is None


def test_byte_flood_and_garbage_flood_are_faults() -> None:
    s, _ = session(Limits(burst_bytes=1000, bytes_per_second=100))
    assert s.receive(b"PONG\n" * 150, 0).fault is None  # 750 bytes
    assert s.receive(b"PONG\n" * 30, 1).fault is None   # +150, -100 refilled
    assert s.receive(b"PONG\n" * 60, 1).fault == ("sent more than 1000 bytes at once or "
                                                  "100 bytes per second")
    s, _ = session(Limits(burst_bad_lines=5, bad_lines_per_second=1))
    assert s.receive(b"junk\n" * 5, 0).fault is None
    assert s.receive(b"junk\n", 2).fault is None
    assert s.receive(b"junk\n" * 3, 2).fault is not None


def test_size_limits_are_faults() -> None:
    s, _ = session(Limits(max_variables=2, max_commands=1, max_enums=1, max_ranges=1))
    assert s.receive(b"SETINFO a 1\nSETINFO b 1\nSETINFO a 2\nADDCMD x\nADDCMD X\n"
                     b"ADDENUM a 1\nADDENUM a 1\nADDRANGE b 1 2\n", 0).fault is None
    for line in (b"SETINFO c 1\n", b"ADDCMD y\n", b"ADDENUM a 2\n", b"ADDRANGE b 3 4\n"):
        s2, _ = session(Limits(max_variables=2, max_commands=1, max_enums=1, max_ranges=1))
        s2.receive(b"SETINFO a 1\nSETINFO b 1\nADDCMD x\nADDENUM a 1\nADDRANGE b 1 2\n", 0)
        assert s2.receive(line, 0).fault is not None, line


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"SETINFO ", b"DELINFO ", b"ADDENUM ", b"DELENUM ", b"ADDRANGE ",
                     b"DELRANGE ", b"SETAUX ", b"SETFLAGS ", b"ADDCMD ", b"DELCMD ",
                     b"TRACKING ", b"DATAOK\n", b"DATASTALE\n", b"DUMPDONE\n", b"PONG\n",
                     b'"', b"\\", b"#", b"\n", b" ", b"=", b"RW STRING\n", b"-1 ", b"99 "])),
    max_size=60))
def test_fuzzed_driver_output_never_raises(chunks: list[bytes]) -> None:
    """Whatever a driver sends, the session answers with a Received (maybe a fault)."""
    s, ups = session(Limits(burst_bad_lines=10_000))
    for index, chunk in enumerate(chunks):
        got = s.receive(chunk, float(index))
        assert got.fault is None or s.fault == got.fault
    for var in ups.variables():
        var.type_words()
