"""The SNMP driver's pure part: walk files, MIB tables, selection and decoding.

The four real walks in ``tests/data/snmp`` (see ``tests/data/SOURCES.md``) must decode to
what their raw values mean in NUT's units; each expected value below says the raw value and
the conversion.  NUT's dumps of SNMP cards (other units of the same MIBs) check that our
tables publish the variables NUT publishes for those MIBs, under the same names; where we
knowingly publish less, the test says why.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from upsagent.drivers.dumpfile import Entry, parse_dump
from upsagent.drivers.snmp import mibs
from upsagent.drivers.snmp.mib import Mib, Var, decode, format_number
from upsagent.drivers.snmp.values import ObjectId, TimeTicks, WalkError, parse_oid, \
    parse_snmprec, render_string

DATA = Path(__file__).parent / "data"
SNMP = DATA / "snmp"


def walk(name: str) -> dict[tuple[int, ...], object]:
    path = SNMP / f"{name}.snmprec"
    return dict(parse_snmprec(path.read_text(), path.name))


def reading(name: str, forced: str = "auto") -> tuple[Mib, dict[str, str], list[str]]:
    """(MIB chosen, published variables, commands) for a fixture walk."""
    values = parse_snmprec((SNMP / f"{name}.snmprec").read_text())
    sysoid = values.get(parse_oid("1.3.6.1.2.1.1.2.0"))
    mib = mibs.select(None if sysoid is None else str(sysoid), set(values), forced)
    assert mib is not None
    walked = {}
    for table in mib.alarm_tables:
        prefix = parse_oid(table.column)
        walked[table.column] = [v for k, v in values.items() if k[:len(prefix)] == prefix]
    result = decode(mib, values, walked)
    return mib, dict(result.items()), result.commands


# -- values and walk files ---------------------------------------------------------------


def test_snmprec_types() -> None:
    """Every tag the fixtures use, hex forms, a leading dot in an OID value."""
    values = parse_snmprec(
        "1.3.6.1.2.1.1.2.0|6|.1.3.6.1.4.1.935\n"
        "1.3.6.1.2.1.1.3.0|67|340585\n"
        "1.3.6.1.2.1.2.2.1.6.2|4x|0030AB277337\n"
        "1.3.6.1.2.1.33.1.2.6.0|5|\n"
        "1.3.6.1.2.1.4.20.1.3.1|64|255.0.0.0\n"
        "1.3.6.1.2.1.2.2.1.10.1|65|4192067549\n"
        "1.3.6.1.2.1.4.13.0|2|-2147483648\n"
        "# comment\n\n")
    assert values[(1, 3, 6, 1, 2, 1, 1, 2, 0)] == ObjectId((1, 3, 6, 1, 4, 1, 935))
    ticks = values[(1, 3, 6, 1, 2, 1, 1, 3, 0)]
    assert isinstance(ticks, TimeTicks) and ticks == 340585
    assert values[(1, 3, 6, 1, 2, 1, 2, 2, 1, 6, 2)] == bytes.fromhex("0030AB277337")
    assert values[(1, 3, 6, 1, 2, 1, 33, 1, 2, 6, 0)] is None
    assert values[(1, 3, 6, 1, 2, 1, 4, 20, 1, 3, 1)] == "255.0.0.0"
    assert values[(1, 3, 6, 1, 2, 1, 2, 2, 1, 10, 1)] == 4192067549
    assert values[(1, 3, 6, 1, 2, 1, 4, 13, 0)] == -2147483648
    with pytest.raises(WalkError, match="line 1"):
        parse_snmprec("1.3.6|99|x\n")
    with pytest.raises(WalkError, match="line 2: expected OID"):
        parse_snmprec("1.3.6|2|1\nnonsense\n")


def test_strings_as_nut_shows_them() -> None:
    """Text as is (NUL padding dropped), binary as upper-case hex, empty left out."""
    assert render_string(b"Galaxy VS\x00\x00") == "Galaxy VS"
    assert render_string(b"\x00\x30\xab") == "00 30 AB"
    assert render_string(b"") is None and render_string(b"  ") is None


def test_number_format_is_nut_280s() -> None:
    """Whole numbers without decimals, others with two (drivers/snmp-ups.c su_ups_get)."""
    assert format_number(412 * 0.1) == "41.20"
    assert format_number(2360 * 0.1) == "236"
    assert format_number(22 * 60) == "1320"


# -- MIB selection -----------------------------------------------------------------------


@pytest.mark.parametrize("name, mib", [
    ("apc-galaxy-vs-40kw_powernet", "apcc"),      # sysObjectID 318.1.3.28.75 under 318.
    ("eaton-connectups-nmc_xups", "pw"),          # sysObjectID 534.1 (no xupsIdentModel)
    ("invt-netagent2_ppc", "xppc"),               # sysObjectID ".1.3.6.1.4.1.935"
    ("minuteman-e1500rtxl2u_ietf", "ietf"),       # Delta's 2254.2.4: by probing, RFC 1628
])
def test_each_walk_selects_its_mib(name: str, mib: str) -> None:
    assert reading(name)[0].name == mib


def test_vendor_mib_before_rfc1628_and_forced_mibs() -> None:
    """The INVT card serves a few RFC 1628 objects too; auto picks XPPC, mibs=ietf forces."""
    values = walk("invt-netagent2_ppc")
    present = set(values)
    assert mibs.select(".1.3.6.1.4.1.935", present).name == "xppc"  # type: ignore[union-attr]
    assert mibs.select(None, present).name == "xppc"  # type: ignore[union-attr]
    assert mibs.select(None, present, "ietf").name == "ietf"  # type: ignore[union-attr]
    assert mibs.select(None, present, "apcc") is None      # forced, but not on this card
    assert mibs.select(None, present, "nosuch") is None
    assert mibs.by_name("eaton_pw_nm2") is mibs.by_name("pw")
    # tripplite (RFC 1628 under Tripp Lite's sysObjectID) only by sysObjectID
    ietf_only = set(walk("minuteman-e1500rtxl2u_ietf"))
    assert mibs.select("1.3.6.1.4.1.850.1", ietf_only).name == "tripplite"  # type: ignore
    assert mibs.select("1.3.6.1.4.1.9999", ietf_only).name == "ietf"  # type: ignore
    assert mibs.select(None, set()) is None


# -- the fixture walks -------------------------------------------------------------------

SYSTEM_PRIVATE = {"device.contact": "<private>", "device.location": "<private>"}


def test_minuteman_rfc1628() -> None:
    """RFC 1628 units: minutes, 0.1 V, 0.1 Hz, 0.1 A; NULL and missing objects left out."""
    _, got, commands = reading("minuteman-e1500rtxl2u_ietf")
    assert got == {
        **SYSTEM_PRIVATE, "device.description": "UPS SNMP Agent",
        "ups.mfr": "Minuteman",              # at upsIdentManufacturer without ".0"
        "battery.runtime": "1320",           # upsEstimatedMinutesRemaining 22 min
        "battery.charge": "100",
        "battery.voltage": "41.20",          # 412 x 0.1 V
        "battery.temperature": "23",
        # upsBatteryCurrent answers NULL: left out
        "input.phases": "1",                 # no upsInputNumLines: assumed 1, as NUT
        "input.frequency": "59.90",          # 599 x 0.1 Hz
        "input.voltage": "121",
        "output.frequency": "60",            # 600 x 0.1 Hz
        "output.phases": "1",
        "output.voltage": "121",
        "output.current": "8.10",            # 81 x 0.1 A
        "output.realpower": "951",
        "ups.load": "79",
        "ups.status": "OL",                  # upsOutputSource normal(3), battery normal(2)
        # upsBypassFrequency NULL: no input.bypass.* at all (NUT would add
        # input.bypass.phases: 1 although the card says nothing about a bypass)
    }
    assert commands == []                    # no control group in this walk


def test_eaton_xups() -> None:
    """XUPS: volts and percent as they are, 0.1 Hz; no output source: no ups.status."""
    _, got, _ = reading("eaton-connectups-nmc_xups")
    assert got == {
        **SYSTEM_PRIVATE, "device.description": "ConnectUPS Web/SNMP Card V4.38",
        "battery.voltage": "78", "battery.charge": "100",
        "input.frequency": "50", "input.phases": "1", "input.voltage": "228",
        "output.frequency": "50", "output.phases": "1", "output.voltage": "230",
        "output.current": "1", "output.realpower": "231",
        "ups.power": "231",                  # xupsOutputWatts.1, as NUT maps it
        "input.bypass.frequency": "50",
        "input.bypass.voltage": "228",       # xupsBypassVoltage.1 (NUT reads .0 / .1.0)
    }


def test_invt_xppc_three_phase() -> None:
    """XPPC in 0.1 units; the three-phase group per line; onBuck(9) shows OL TRIM."""
    _, got, commands = reading("invt-netagent2_ppc")
    assert got == {
        **SYSTEM_PRIVATE, "device.description": "NET Agent II",
        "ups.mfr": "Tripp Lite / Phoenixtec",   # NUT's constant for this table
        "battery.charge": "100",
        "ups.temperature": "25",                # 250 x 0.1 degC
        "input.phases": "3", "output.phases": "3",   # RFC 1628 line counts
        "input.frequency": "50",                # 500 x 0.1 Hz
        "input.L1-N.voltage": "236", "input.L2-N.voltage": "236.70",
        "input.L3-N.voltage": "237.90",
        "output.L1-N.voltage": "231.20", "output.L2-N.voltage": "231.30",
        "output.L3-N.voltage": "231.20",
        "output.frequency": "50", "ups.load": "44",
        "input.bypass.frequency": "49.90",
        "input.bypass.L1-N.voltage": "234.60", "input.bypass.L2-N.voltage": "236.20",
        "input.bypass.L3-N.voltage": "236.40",
        "ups.status": "OL TRIM",
    }
    # single-phase rows are not published on a three-phase unit
    assert "input.voltage" not in got and "output.voltage" not in got
    assert commands == []


def test_apc_galaxy_three_phase() -> None:
    """PowerNet: TimeTicks runtime, -1 left out, basic rows when high-precision ones lack."""
    _, got, commands = reading("apc-galaxy-vs-40kw_powernet")
    anon = {k: v for k, v in got.items() if v.startswith("Anonymized")}
    assert sorted(anon) == ["battery.date", "device.contact", "device.description",
                            "device.location", "ups.firmware", "ups.mfr.date", "ups.serial"]
    rest = {k: v for k, v in got.items() if k not in anon}
    assert rest == {
        "ups.mfr": "APC", "ups.model": "Galaxy VS 40kW",
        # ups.id is an empty string on this card: left out
        "battery.charge": "100",              # upsAdvBatteryCapacity (no high precision)
        "battery.current": "0",
        "battery.runtime": "6108",            # TimeTicks 610800 / 100
        "battery.runtime.low": "240",         # upsAdvConfigLowBatteryRunTime 24000 ticks
        "battery.voltage": "542", "battery.voltage.nominal": "480",
        "input.frequency": "50",              # upsPhaseInputFrequency -1: basic 50 Hz
        "input.phases": "3", "output.phases": "3",
        "input.L1-L2.voltage": "389", "input.L2-L3.voltage": "390",
        "input.L3-L1.voltage": "390",
        "input.L1.current": "10.20", "input.L2.current": "10.40", "input.L3.current": "10.40",
        "output.L1-L2.voltage": "399", "output.L2-L3.voltage": "399",
        "output.L3-L1.voltage": "399",
        "output.L1.current": "12.10", "output.L2.current": "11.80",
        "output.L3.current": "9.20",
        "output.L1.power": "2789", "output.L2.power": "2720", "output.L3.power": "2137",
        "output.frequency": "50",             # upsPhaseOutputFrequency 500 x 0.1
        "output.voltage.nominal": "400",
        "ups.load": "21", "ups.power": "7768", "ups.realpower": "6632",
        "ups.temperature": "28",
        "ups.test.result": "Ok",
        "ups.status": "OL",                   # upsBasicOutputStatus onLine(2)
    }
    # every per-line maximum/minimum answers -1: none is published
    assert not [k for k in got if k.endswith((".maximum", ".minimum"))]
    assert commands == ["test.battery.start"]   # the only control object in the walk


# -- names against NUT's dumps ------------------------------------------------------------

#: what NUT publishes that is not a table row: the driver core's own variables
CORE = ("driver.", "device.mfr", "device.model", "device.serial", "device.type")


def dump_names(path: Path) -> set[str]:
    return {e.name for e in parse_dump(path.read_bytes(), path.name).entries
            if isinstance(e, Entry) and not e.name.startswith(CORE)}


def table_names(mib: Mib) -> set[str]:
    return {var.name for var in mib.variables} | {"ups.status", "ups.alarm"}


@pytest.mark.parametrize("dump, mib, missing", [
    (DATA / "APC__Smart-UPS_1000__snmp-ups__2.7.4__01.dev", "apcc", set()),
    (SNMP / "Tripp_Lite__SU2200RTXL2Ua__snmp-ups__2.7.4__01.dev", "ietf", set()),
    # NUT 2.7.3's pw table: ups.type came from xupsOutputSource ("normal"); NUT's master
    # (and we) read the topology there; input.voltage.nominal etc. are the same names
    (SNMP / "Eaton__PW9130_1000VA-T__snmp-ups__2.7.3-167-g0a00ddb__01.dev", "pw", set()),
])
def test_tables_publish_nuts_names(dump: Path, mib: str, missing: set[str]) -> None:
    """Every variable of NUT's dump of a card of this MIB has a row in our table."""
    table = mibs.by_name(mib)
    assert table is not None
    assert dump_names(dump) - table_names(table) == missing


# -- decoding rules ----------------------------------------------------------------------


def test_unsupported_values_are_left_out() -> None:
    """-1, NULL, missing, negative where invalid, unknown enum: never a number."""
    mib = Mib("t", "1", (), (), variables=(
        Var("a", "1.1"), Var("b", "1.2"), Var("c", "1.3", neg_invalid=True),
        Var("d", "1.4", lookup={1: "one"}), Var("e", "1.5", signed=True),
        Var("f", "1.6", zero_invalid=True), Var("g", "1.7", 0.1), Var("h", "1.8")))
    values = {(1, 1): -1, (1, 2): None, (1, 3): -5, (1, 4): 7, (1, 5): -1, (1, 6): 0,
              (1, 7): 1234}
    assert dict(decode(mib, values).items()) == {"e": "-1", "g": "123.40"}


def test_first_valid_row_wins_and_status_words() -> None:
    """Priority rows; status words in table order without repeats; ALARM first."""
    from upsagent.drivers.snmp.mib import StatusRule
    mib = Mib("t", "1", (), (), variables=(Var("v", "1.1", 0.1, neg_invalid=True),
                                           Var("v", "1.2")),
              status=(StatusRule("2.1", {5: "OB"}), StatusRule("2.2", {3: "OB LB"}),
                      StatusRule("2.3", {}, alarms={2: "Fault!"})))
    got = decode(mib, {(1, 1): -1, (1, 2): 230, (2, 1): 5, (2, 2): 3, (2, 3): 2})
    assert dict(got.items()) == {"v": "230", "ups.status": "ALARM OB LB",
                                 "ups.alarm": "Fault!"}
    got = decode(mib, {(1, 1): 2301, (1, 2): 230})
    assert dict(got.items()) == {"v": "230.10"}


def test_rfc1628_alarm_table_and_three_lines() -> None:
    """upsAlarmTable rows give words and texts; three input lines give L1..L3 rows."""
    b = "1.3.6.1.2.1.33.1."
    values = {parse_oid(b + "4.1.0"): 5, parse_oid(b + "3.2.0"): 3,
              parse_oid(b + "3.3.1.3.1"): 230, parse_oid(b + "3.3.1.3.2"): 231,
              parse_oid(b + "3.3.1.3.3"): 229, parse_oid(b + "6.1.0"): 2}
    walked = {b + "6.2.1.2": [ObjectId(parse_oid(b + "6.3.3")),
                              ObjectId(parse_oid(b + "6.3.18"))]}
    got = dict(decode(mibs.IETF_MIB, values, walked).items())
    assert got["ups.status"] == "ALARM OB LB"
    assert got["ups.alarm"] == "General fault!"
    assert (got["input.L1-N.voltage"], got["input.L2-N.voltage"],
            got["input.L3-N.voltage"]) == ("230", "231", "229")
    assert "input.voltage" not in got and got["input.phases"] == "3"


def test_commands_listed_when_their_objects_exist() -> None:
    """A command is offered when every object it SETs answered."""
    b = "1.3.6.1.2.1.33.1."
    values = {parse_oid(b + "4.1.0"): 3, parse_oid(b + "8.2.0"): -1,
              parse_oid(b + "9.8.0"): 2}
    got = decode(mibs.IETF_MIB, values)
    assert got.commands == ["load.off", "load.off.delay", "shutdown.stop", "beeper.disable",
                            "beeper.enable", "beeper.mute"]
    values[parse_oid(b + "8.5.0")] = 1
    assert "shutdown.return" in decode(mibs.IETF_MIB, values).commands
