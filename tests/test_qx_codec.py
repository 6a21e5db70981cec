"""The Q1 codec and the battery estimates (drivers/qx/codec.py, battery.py): pure.

Replies are those of tests/data/qx/*.q1log (recorded units and NUT's documented samples);
expected values are NUT's (nutdrv_qx_megatec.c, nutdrv_qx_blazer-common.c).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from upsagent.drivers.qx import codec
from upsagent.drivers.qx.battery import Battery, BatteryOptions, detect_packs
from upsagent.drivers.qx.codec import (
    NoData, StatusReading, battery_test, command_outcome, dialect_by_name, effective_offdelay,
    effective_ondelay, parse_protocol, parse_rating, parse_status, parse_vendor, reply_text,
    shutdown_return, shutdown_stayoff)

DATA = Path(__file__).parent / "data" / "qx"
MEGATEC = dialect_by_name("megatec")
QS = dialect_by_name("voltronic-qs")
assert MEGATEC is not None and QS is not None


def status(text: str, **kw: bool) -> StatusReading:
    reading = parse_status(text, MEGATEC, **kw)
    assert isinstance(reading, StatusReading), reading
    return reading


def replies(name: str) -> list[tuple[str, str]]:
    """(command, reply) pairs of a .q1log's reassembled lines."""
    out, command = [], ""
    for line in (DATA / name).read_text().splitlines():
        if line.startswith("> "):
            command = line[2:].replace("\\r", "")
        elif line.startswith("< "):
            out.append((command, line[2:].replace("\\r", "")))
    return out


# -- replies ----------------------------------------------------------------------------


@pytest.mark.parametrize("raw, reason", [
    (None, "no reply"),
    (b"", "truncated"),
    (b"(233.0 000.0 233.0", "truncated reply: no CR"),
    (b"Q1\r", "echoed"),
    (b"NAK\r", "refused the command (NAK)"),
    (b"(NAK\r", "refused the command ((NAK)"),
    (b"UPS No Ack\r", "refused the command (UPS No Ack)"),
    (b"\x00\x00\r", "empty reply"),
])
def test_replies_that_are_no_data(raw: bytes | None, reason: str) -> None:
    result = reply_text("Q1\r", raw)
    assert isinstance(result, NoData) and reason in result.reason


def test_reply_text_stops_at_the_first_cr() -> None:
    assert reply_text("F\r", b"#220.0 005 24.00 50.0\r\x00\x00junk") == "#220.0 005 24.00 50.0"


# -- status -----------------------------------------------------------------------------


def test_recorded_vultech_status() -> None:
    """Vultech V2000 over the armac bridge (NUT's Armac transfer dump)."""
    (command, text), = [r for r in replies("vultech-v2000_armac-usb.q1log") if r[0] == "Q1"]
    reading = status(text)
    assert reading.values == {
        "input.voltage": "233.0", "input.voltage.fault": "0.0", "output.voltage": "233.0",
        "ups.load": "14", "input.frequency": "49.0", "battery.voltage": "27.00",
        "ups.temperature": "20.8", "ups.type": "offline / line interactive",
        "ups.beeper.status": "enabled"}
    assert reading.words == ("OL",) and reading.alarms == () and reading.online


def test_recorded_armac_on_battery() -> None:
    """Armac R/2000I/PSW captured on battery: OB, input 0 V, the glitch voltage held."""
    (_, text), = replies("armac-r2000i-psw_armac-usb.q1log")
    reading = status(text)
    assert reading.words == ("OB",) and not reading.online
    assert reading.values["input.voltage"] == "0.0"
    assert reading.values["input.voltage.fault"] == "140.0"
    assert reading.values["battery.voltage"] == "46.80"
    assert reading.values["ups.beeper.status"] == "disabled"


def test_megatec_document_example() -> None:
    """The protocol document's example: bypass active and UPS failed, an on-line unit."""
    (_, text), = replies("megatec-spec_example.q1log")
    reading = status(text)
    assert reading.words == ("ALARM", "OL", "BYPASS")
    assert reading.alarms == ("UPS selftest failed!",)
    assert reading.values["ups.type"] == "online"
    assert reading.values["battery.voltage"] == "2.05" and reading.battery == 2.05


def test_an_odd_type_bit_is_only_left_out() -> None:
    """b3 (ups.type), b4 (alarm) and b0 (beeper) are not quick-poll items in NUT."""
    reading = status("(233.0 000.0 233.0 014 49.0 27.0 20.8 000xx00x")
    assert reading.words == ("OL",) and "ups.type" not in reading.values
    assert "ups.beeper.status" not in reading.values


@pytest.mark.parametrize("bits, words, alarms", [
    ("00000000", ("OL",), ()),
    ("10000000", ("OB",), ()),
    ("11000000", ("OB", "LB"), ()),
    ("00000100", ("OL", "CAL"), ()),
    ("00000010", ("ALARM", "OL", "FSD"), ("Shutdown imminent!",)),
    ("00010010", ("ALARM", "OL", "FSD"), ("UPS selftest failed!", "Shutdown imminent!")),
    ("11000110", ("ALARM", "OB", "LB", "CAL", "FSD"), ("Shutdown imminent!",)),
])
def test_status_bits(bits: str, words: tuple[str, ...], alarms: tuple[str, ...]) -> None:
    reading = status(f"(230.0 230.0 230.0 010 50.0 27.0 30.0 {bits}")
    assert (reading.words, reading.alarms) == (words, alarms)


def test_ignoresab_drops_the_shutdown_active_bit() -> None:
    reading = status("(230.0 230.0 230.0 010 50.0 27.0 30.0 000000@0", ignore_sab=True)
    assert reading.words == ("OL",)
    assert isinstance(parse_status("(230.0 230.0 230.0 010 50.0 27.0 30.0 000000@0", MEGATEC),
                      NoData)


@pytest.mark.parametrize("vi, vo, word", [
    ("230.0", "200.0", "TRIM"), ("230.0", "230.0", "BYPASS"), ("200.0", "230.0", "BOOST"),
    ("230.0", "100.0", None), ("100.0", "230.0", None), ("000.0", "230.0", None),
])
def test_bit5_by_the_voltage_ratio(vi: str, vo: str, word: str | None) -> None:
    reading = status(f"({vi} 000.0 {vo} 010 50.0 27.0 30.0 00100000")
    assert reading.words == (("OL", word) if word else ("OL",))


def test_filled_fields_are_left_out() -> None:
    """``@`` (not supported) and ``-`` fields are never values; the rest is kept."""
    reading = status("(120.3 120.3 120.0 029 59.9 26.3 --.- 00001101")
    assert "ups.temperature" not in reading.values and reading.skipped == ("ups.temperature",)
    reading = status("(@@@.@ 120.3 120.0 029 @@.@ 26.3 30.0 00001101")
    assert "input.voltage" not in reading.values and "input.frequency" not in reading.values
    assert reading.words == ("OL", "CAL")


@pytest.mark.parametrize("text, why", [
    ("(233.0 000.0 233.0 014 49.0 27.0 20.8 0000100", "short status reply (46 bytes"),
    ("#233.0 000.0 233.0 014 49.0 27.0 20.8 00001001", "starts with '#'"),
    ("(233.0 000.0 233.0 014 49.0 27.0 20.8 00000x01", "status bit 2 is 'x'"),
    ("(@@@.@ @@@.@ @@@.@ @@@ @@.@ @@.@ @@.@ @@@@@@@@", "status bit 7 is '@'"),
    ("(233.0 000.0 233.0 014 49.0 27.0 20.8 \x0000001001", "status bit 7"),
])
def test_bad_status_replies(text: str, why: str) -> None:
    result = parse_status(text, MEGATEC)
    assert isinstance(result, NoData) and why in result.reason


def test_voltronic_qs_names_the_frequency_output() -> None:
    reading = parse_status("(226.0 195.0 226.0 014 49.0 27.5 30.0 00001000", QS)
    assert isinstance(reading, StatusReading)
    assert reading.values["output.frequency"] == "49.0" and "input.frequency" not in reading.values


# -- ratings, vendor, protocol ----------------------------------------------------------


def test_rating_replies() -> None:
    assert parse_rating("#220.0 005 24.00 50.0", MEGATEC) == {
        "input.voltage.nominal": "220", "input.current.nominal": "5.0",
        "battery.voltage.nominal": "24.0", "input.frequency.nominal": "50"}
    assert parse_rating("#220.0 003 12.00 50.0", QS) == {
        "output.voltage.nominal": "220", "output.current.nominal": "3.0",
        "battery.voltage.nominal": "12.0", "output.frequency.nominal": "50"}
    assert isinstance(parse_rating("#220.0 005 24.00", MEGATEC), NoData)
    assert isinstance(parse_rating("#@@@.@ @@@ @@.@@ @@.@", MEGATEC), NoData)


def test_vendor_replies() -> None:
    assert parse_vendor("#-------------   ------     VT12046Q  ") == {
        "device.mfr": "-------------", "device.model": "------", "ups.firmware": "VT12046Q"}
    assert parse_vendor("#MegaTecabcedfhi k130v12345 v3.400000", blazer_names=True) == {
        "ups.mfr": "MegaTecabcedfhi", "ups.model": "k130v12345", "ups.firmware": "v3.400000"}
    assert isinstance(parse_vendor("#" + " " * 37), NoData)  # no firmware: NUT's claim fails
    assert isinstance(parse_vendor("#short"), NoData)


def test_protocol_reply() -> None:
    assert parse_protocol("V") == "PM-V" and parse_protocol("H") == "PM-H"
    assert isinstance(parse_protocol("P"), NoData)


# -- commands and delays ----------------------------------------------------------------


@pytest.mark.parametrize("asked, effective", [
    (12, 12), (13, 12), (30, 30), (59, 54), (60, 60), (90, 60), (119, 60), (600, 600)])
def test_offdelay_rounding(asked: int, effective: int) -> None:
    assert effective_offdelay(asked) == effective


def test_ondelay_rounding() -> None:
    assert [effective_ondelay(s) for s in (0, 59, 60, 179, 180, 599940)] == \
        [0, 0, 60, 120, 180, 599940]


def test_command_texts_as_nut_documents_them() -> None:
    """NUT's megatec testing table: S03, S02R0005, S.5R0000, T04."""
    documented = {cmd for cmd, _ in [(line[2:].replace("\\r", ""), "") for line in
                  (DATA / "nut-qx-documented-samples.q1log").read_text().splitlines()
                  if line.startswith("> ")]}
    assert shutdown_return(180, 0).rstrip("\r") == "S03"
    assert shutdown_return(120, 300).rstrip("\r") == "S02R0005"
    assert shutdown_stayoff(30).rstrip("\r") == "S.5R0000"
    assert battery_test(4).rstrip("\r") == "T04"
    assert {"S03", "S02R0005", "S.5R0000", "T04"} <= documented
    assert shutdown_return(30, 180) == "S.5R0003\r"
    assert shutdown_return(12, 59) == "S.2\r"
    assert shutdown_stayoff(600) == "S10R0000\r"


@pytest.mark.parametrize("raw, ok", [
    (None, True), (b"", True), (b"\r", True), (b"(ACK\r", True), (b"ACK\r", True),
    (b"T\r", False), (b"(NAK\r", False), (b"NAK\r", False), (b"garbage\r", False)])
def test_command_outcome(raw: bytes | None, ok: bool) -> None:
    assert command_outcome("T\r", raw).ok is ok


# -- battery estimates ------------------------------------------------------------------


def test_pack_detection() -> None:
    """Per-cell voltages: the largest multiplier within 0.8 .. 1.25 x nominal."""
    assert detect_packs(2.26, 96) == 48          # a 96 V online unit: 108.48 V
    assert detect_packs(2.28, 24) == 12          # Santak Castle C1K with F: 27.36 V
    assert detect_packs(27.0, 24) == 1
    assert detect_packs(13.0, 24) == 2
    assert detect_packs(100.0, 24) is None       # too high for any multiplier


def test_charge_from_the_nominal_voltage() -> None:
    battery = Battery(BatteryOptions(), nominal=24.0, low=None, high=None, packs=None,
                      reported=27.0, now=0)
    assert battery.published == {"battery.voltage.low": "20.80",
                                 "battery.voltage.high": "26.00"}
    assert battery.update(2, True, 27.0, 14) == {"battery.charge": "100"}
    assert battery.update(4, False, 23.4, 14) == {"battery.charge": "50"}
    assert battery.update(6, False, 20.0, 14) == {"battery.charge": "0"}


def test_per_cell_voltage_uses_the_packs() -> None:
    battery = Battery(BatteryOptions(), nominal=96.0, low=None, high=None, packs=None,
                      reported=2.26, now=0)
    assert battery.packs == 48 and f"{battery.voltage(2.26):.2f}" == "108.48"
    assert battery.update(1, True, 2.26, 10) == {"battery.charge": "100"}  # floats above
    assert battery.update(2, False, 2.1, 10) == {"battery.charge": "85"}   # 100.8 V


def test_no_nominal_no_estimate() -> None:
    """Without F (Santak C1K on blazer_ser) nothing is guessed (NUT 2.7.4 published -1.08)."""
    battery = Battery(BatteryOptions(), nominal=None, low=None, high=None, packs=None,
                      reported=2.28, now=0)
    assert battery.published == {} and battery.packs == 1
    assert battery.update(2, True, 2.28, 0) == {}


def test_runtime_from_runtimecal() -> None:
    """240 s at 100 %, 720 s at 50 %: k = ln 3 / ln 2; drains on battery, recharges on line."""
    options, errors = BatteryOptions.parse({"runtimecal": "240,100,720,50",
                                            "chargetime": "3600"})
    assert errors == []
    battery = Battery(options, nominal=24.0, low=20.8, high=26.0, packs=None, reported=27.0,
                      now=0)
    assert battery.nominal_runtime == pytest.approx(240)
    assert battery.update(0, True, 27.0, 50) == {"battery.charge": "100",
                                                  "battery.runtime": "720"}
    after = battery.update(120, False, 25.0, 100)  # two minutes at full load
    assert after == {"battery.charge": "50", "battery.runtime": "120"}
    after = battery.update(1920, True, 27.0, 100)  # 30 min on line: half the charge time
    assert after["battery.charge"] == "100"


def test_runtimecal_errors_are_reported() -> None:
    _, errors = BatteryOptions.parse({"runtimecal": "240,100", "idleload": "-3"})
    assert len(errors) == 2 and "runtimecal" in errors[0] and "idleload" in errors[1]
    _, errors = BatteryOptions.parse({"runtimecal": "720,100,240,50"})
    assert errors and "runtime out of range" in errors[0]


# -- fuzzing ----------------------------------------------------------------------------

_FIELD_OK = re.compile(r"^[0-9 .]*$")


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=80))
def test_fuzzed_bytes_never_crash_and_never_give_values(raw: bytes) -> None:
    for command in ("Q1\r", "F\r", "I\r", "M\r"):
        text = reply_text(command, raw)
        if isinstance(text, NoData):
            continue
        reading = parse_status(text, MEGATEC)
        if isinstance(reading, StatusReading):  # only ever from a well-formed reply
            assert text[0] == "(" and len(text) >= 46 and set(text[38:41]) <= set("01")
            for item in MEGATEC.status_fields:
                assert (item.name in reading.values) == bool(_FIELD_OK.match(item.cut(text)))
        parse_rating(text, MEGATEC)
        parse_vendor(text)
        parse_protocol(text)
        command_outcome(command, raw)


_REPLY_CHARS = st.sampled_from(list("0123456789 .@-(#\x00\rx"))


@settings(max_examples=400, deadline=None)
@given(st.lists(_REPLY_CHARS, min_size=40, max_size=50).map("".join))
def test_fuzzed_status_shaped_replies(body: str) -> None:
    """Replies of about the right length and alphabet: a value only from a clean field."""
    text = "(" + body
    reading = parse_status(text, MEGATEC)
    if isinstance(reading, NoData):
        return
    for item in MEGATEC.status_fields:
        field = item.cut(text)
        if item.name in reading.values:
            assert _FIELD_OK.match(field)
            assert float(reading.values[item.name]) == pytest.approx(
                codec.number(field) or 0.0, abs=0.051)
