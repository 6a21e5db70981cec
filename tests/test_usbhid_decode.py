"""From report bytes to NUT variables: every fixture decodes as NUT did; vendor quirks;
the status rules; NUT's options that change decoding.

Where we knowingly differ from NUT, the test says why.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from upsagent.drivers.usbhid import vendors
from upsagent.drivers.usbhid.decoder import HidState, Mode
from upsagent.drivers.usbhid.hidparser import ReportType, parse_descriptor
from upsagent.drivers.usbhid.status import alarm_texts, apply_word, status_words
from upsagent.drivers.usbhid.tables import DeviceInfo, Subdriver
from upsagent.drivers.usbhid.vendors import apc, belkin, cps, generic, mge, powercom, tripplite

from tests.usbhidkit import (BACKUPS, HERTZ, SANTAK, SMARTUPS, VOLT, Spec, descriptor_bytes,
                             nut_dump, parse_specs, recorded_reports, report)

DUMPS = Path(__file__).parent / "data"

#: the Back-UPS CS 500 as NUT's log shows it (USB strings; index 4 is iDeviceChemistry)
BACKUPS_DEVICE = DeviceInfo(0x051D, 0x0002, "American Power Conversion",
                            "Back-UPS 500 FW: 6.5.I USB FW: c1 ", "AB0427******")
BACKUPS_STRINGS = {1: BACKUPS_DEVICE.product, 2: BACKUPS_DEVICE.serial,
                   3: BACKUPS_DEVICE.manufacturer, 4: "PbAc"}


def decoded(name: str, device: DeviceInfo, strings: dict[int, str | None] | None = None,
            **options: str) -> HidState:
    desc = parse_descriptor(descriptor_bytes(name))
    sub = vendors.select(device, desc)
    assert sub is not None
    state = HidState(desc, sub, device, options=options,
                     strings=(strings or {}).get)
    state.walk(Mode.INIT, recorded_reports(name))
    return state


def values(state: HidState) -> dict[str, str]:
    return {name: value for name, (value, _) in state.published().items()}


# -- the fixtures ------------------------------------------------------------------------


def test_backups_cs_500_decodes_exactly_as_nut() -> None:
    """Every variable of NUT's dump of this unit (driver.* aside), values and spelling."""
    state = decoded(BACKUPS, BACKUPS_DEVICE, BACKUPS_STRINGS)
    nut = {name: value for name, value in nut_dump(
        DUMPS / "APC__Back-UPS_CS_500__usbhid-ups__2.8.0__01.dev").items()
        if not name.startswith("driver.")}
    assert values(state) == nut
    assert state.subdriver is apc.SUBDRIVER
    # `upscmd -l` of the same unit
    assert sorted(state.commands) == ["shutdown.reboot", "test.panel.start", "test.panel.stop"]
    # units: ConfigVoltage 1200 x 10^(5-7) V, RunTimeToEmpty 2580 s, the APC BCD date
    assert (nut["battery.voltage.nominal"], nut["battery.runtime"], nut["battery.mfr.date"]) \
        == ("12.0", "2580", "2004/07/03")


def test_backups_interrupt_reports_move_the_status() -> None:
    """An Input report 0x13 (ACPresent) 0 and 0x06 (Discharging) make it OB DISCHRG."""
    state = decoded(BACKUPS, BACKUPS_DEVICE, BACKUPS_STRINGS)
    assert state.interrupt_report(bytes([0x13, 0x00]))
    assert state.interrupt_report(bytes([0x06, 0x00, 0x01, 0x08]))
    assert state.status_words() == ["OB", "DISCHRG"]
    assert state.interrupt_report(bytes([0x14, 0x01, 0x00]))       # BelowRemainingCapacityLimit
    assert state.status_words() == ["OB", "DISCHRG", "LB"]
    assert not state.interrupt_report(bytes([0x77, 0x01]))         # no such report


def test_santak_decodes_as_its_reports_say() -> None:
    """The capture's author read these values from the same reports; we agree, except:
    the status bits say ACPresent and Charging at 100 % charge, which NUT's MGE table
    (eaton_abm_check_chrg_fun, current NUT) publishes as ``OL``, not ``OL CHRG``: a float
    charge at 100 % is not charging.  NUT 2.7.4 (the Eaton 5PX dump) still said CHRG."""
    state = decoded(SANTAK, DeviceInfo(0x0463, 0xFFFF))
    got = values(state)
    expected = {"battery.charge": "100", "battery.runtime": "1248", "ups.load": "24",
                "battery.charge.low": "20", "ups.power.nominal": "850",
                "output.frequency.nominal": "50", "output.voltage": "230.0",
                "output.voltage.nominal": "220", "input.transfer.high": "264",
                "input.transfer.low": "184", "ups.beeper.status": "enabled",
                "ups.status": "OL"}
    assert {name: got.get(name) for name in expected} == expected
    assert state.subdriver is mge.SUBDRIVER
    # NUT computes ups.realpower when the UPS lacks ActivePower: 24 % x 850 VA x 0.8
    assert got["ups.realpower"] == "163"
    # writable with ENUM and RANGE where NUT marks them writable
    info = state.published()
    assert info["output.voltage.nominal"][1].enum == ["200", "208", "220", "230", "240"]
    assert info["input.transfer.low"][1].writable and info["input.transfer.low"][1].ranges


def test_santak_by_descriptor_alone_picks_the_eaton_table() -> None:
    desc = parse_descriptor(descriptor_bytes(SANTAK))
    assert vendors.by_descriptor(desc) is mge.SUBDRIVER


def test_smart_ups_x_750() -> None:
    """Descriptor only (no reports recorded): the APC table by id or by page 0xff86; NUT
    turns the interrupt pipe off for 051d:0003; nothing is made up without reports."""
    desc = parse_descriptor(descriptor_bytes(SMARTUPS))
    device = DeviceInfo(0x051D, 0x0003)
    assert vendors.select(device, desc) is apc.SUBDRIVER
    assert vendors.by_descriptor(desc) is apc.SUBDRIVER
    assert apc.SUBDRIVER.quirks is not None and "pollonly" in apc.SUBDRIVER.quirks(device)
    state = decoded(SMARTUPS, device)
    assert "battery.charge" not in state.values and state.status_words() == []
    assert state.needed(Mode.QUICK) == {0x07, 0x12, 0x13}


# -- quirks of the vendor tables (synthetic descriptors with the paths NUT names) --------


def run(sub: Subdriver, specs: list[Spec], reports: dict[int, dict[str, int]],
        device: DeviceInfo | None = None, **options: str) -> HidState:
    desc = parse_specs(specs, sub)
    device = device or DeviceInfo(sub.usb_ids[0][0], sub.usb_ids[0][1])
    state = HidState(desc, sub, device, options=options)
    state.walk(Mode.INIT, {rid: report(desc, rid, vals, sub.names)
                           for rid, vals in reports.items()})
    return state


def test_cyberpower_battery_scale_and_frequency() -> None:
    """0764:0501 reporting 36 V for a 24 V pack is scaled by 2/3; 499 is 49.9 Hz."""
    specs = [Spec("UPS.PowerSummary.ConfigVoltage", 1, 8, 0, 255, VOLT, 7),
             Spec("UPS.PowerSummary.Voltage", 2, 16, 0, 65535, VOLT, 5),
             Spec("UPS.Input.Frequency", 3, 16, 0, 65535, HERTZ, 0),
             Spec("UPS.PowerSummary.RemainingCapacity", 4, 8, 0, 255)]
    state = run(cps.SUBDRIVER, specs, {1: {"UPS.PowerSummary.ConfigVoltage": 24},
                                       2: {"UPS.PowerSummary.Voltage": 3600},
                                       3: {"UPS.Input.Frequency": 499},
                                       4: {"UPS.PowerSummary.RemainingCapacity": 103}},
                device=DeviceInfo(0x0764, 0x0501))
    assert (state.values["battery.voltage"], state.values["input.frequency"],
            state.values["battery.charge"]) == ("24.0", "49.9", "100")
    other = run(cps.SUBDRIVER, specs, {1: {"UPS.PowerSummary.ConfigVoltage": 24},
                                       2: {"UPS.PowerSummary.Voltage": 3600}},
                device=DeviceInfo(0x0764, 0x0601))
    assert other.values["battery.voltage"] == "36.0"     # only 0501 is known to need it


def test_cyberpower_output_voltage_range_fix() -> None:
    """Output Voltage (report 0x12) declared with the HVT range 0..140 reads 230 (fixed)."""
    specs = [Spec("UPS.Input.HighVoltageTransfer", 0x10, 8, 0, 140, VOLT, 7),
             Spec("UPS.Output.Voltage", 0x12, 16, 0, 140, VOLT, 7),
             Spec("UPS.Input.Voltage", 0x0F, 16, 0, 140, VOLT, 7)]
    state = run(cps.SUBDRIVER, specs, {0x12: {"UPS.Output.Voltage": 230},
                                       0x0F: {"UPS.Input.Voltage": 229}},
                device=DeviceInfo(0x0764, 0x0501))
    assert (state.values["output.voltage"], state.values["input.voltage"]) == \
        ("230.0", "229.0")
    state = HidState(parse_specs(specs, cps.SUBDRIVER), cps.SUBDRIVER,
                     DeviceInfo(0x0764, 0x0501), flags=["disable_fix_report_desc"])
    assert state.field_for("UPS.Output.Voltage").logical_max == 140  # type: ignore[union-attr]


def test_tripplite_scales_by_product_id() -> None:
    specs = [Spec("UPS.BatterySystem.Battery.Voltage", 1, 16, 0, 65535, VOLT, 7),
             Spec("UPS.PowerConverter.Input.Frequency", 2, 16, 0, 65535, HERTZ, 0)]
    reports = {1: {"UPS.BatterySystem.Battery.Voltage": 136},
               2: {"UPS.PowerConverter.Input.Frequency": 5998}}
    old = run(tripplite.SUBDRIVER, specs, reports, DeviceInfo(0x09AE, 0x2010))
    lcdt = run(tripplite.SUBDRIVER, specs, reports, DeviceInfo(0x09AE, 0x3024))
    assert old.values["battery.voltage"] == "13.6"
    assert (lcdt.values["battery.voltage"], lcdt.values["input.frequency"]) == \
        ("13600000.0", "60.0")


def test_liebert_line_voltage_exponent() -> None:
    """Liebert GXT: 230 V reported as 2.3e-5 (exponent off by 1e7) is published as 230."""
    specs = [Spec("UPS.PowerConverter.Input.Voltage", 1, 16, 0, 65535, VOLT, 0)]
    state = run(belkin.SUBDRIVER, specs, {1: {"UPS.PowerConverter.Input.Voltage": 230}},
                DeviceInfo(0x10AF, 0x0001))
    assert state.values["input.voltage"] == "230.0"


def test_belkin_status_bits() -> None:
    """AC failure (bit 0) is OB here; NUT's table says only ``!online`` (see belkin.py)."""
    specs = [Spec("UPS.BELKINStatus.BELKINPowerStatus", 1, 16, 0, 65535),
             Spec("UPS.BELKINStatus.BELKINBatteryStatus", 2, 8, 0, 255)]
    state = run(belkin.SUBDRIVER, specs, {1: {"UPS.BELKINStatus.BELKINPowerStatus": 0x0011},
                                          2: {"UPS.BELKINStatus.BELKINBatteryStatus": 0x84}})
    assert state.status_words() == ["OB", "LB", "OVER", "RB"]


def test_powercom_delays_are_byte_swapped() -> None:
    specs = [Spec("UPS.PowerSummary.DelayBeforeShutdown", 1, 16, 0, 65535),
             Spec("UPS.PowerSummary.DelayBeforeStartup", 2, 16, 0, 65535)]
    state = run(powercom.SUBDRIVER, specs, {1: {"UPS.PowerSummary.DelayBeforeShutdown": 0x0105},
                                            2: {"UPS.PowerSummary.DelayBeforeStartup": 0x0200}})
    assert (state.values["ups.timer.shutdown"], state.values["ups.timer.start"]) == \
        ("65", "120")
    row, item = state.row_for("shutdown.return", command=True)  # type: ignore[misc]
    assert state.encode(row, item, None) == 0x0014 | 0x0040          # 20 s, restart on
    row, item = state.row_for("shutdown.stayoff", command=True)  # type: ignore[misc]
    assert state.encode(row, item, "90") == 0x011E | 0x0080           # 1:30, stay off


def test_generic_table_serves_an_unknown_brand() -> None:
    """A standard Power Device descriptor from a vendor no table claims."""
    specs = [Spec("UPS.PowerSummary.RemainingCapacity", 1, 8, 0, 100),
             Spec("UPS.PowerSummary.RunTimeToEmpty", 2, 16, 0, 65535, 0x1001),
             Spec("UPS.PowerSummary.PresentStatus.ACPresent", 3, 1, 0, 1),
             Spec("UPS.PowerSummary.PresentStatus.Discharging", 3, 1, 0, 1),
             Spec("UPS.PowerSummary.DelayBeforeShutdown", 4, 16, -1, 32767, 0x1001),
             Spec("UPS.PowerSummary.DelayBeforeStartup", 5, 16, -1, 32767, 0x1001)]
    desc = parse_specs(specs)
    device = DeviceInfo(0x1234, 0x5678)
    sub = vendors.select(device, desc)
    assert sub is generic.SUBDRIVER
    state = HidState(desc, sub, device, options={"offdelay": "45"})
    reports = {1: report(desc, 1, {"UPS.PowerSummary.RemainingCapacity": 57}),
               2: report(desc, 2, {"UPS.PowerSummary.RunTimeToEmpty": 900}),
               3: report(desc, 3, {"UPS.PowerSummary.PresentStatus.Discharging": 1}),
               4: report(desc, 4, {"UPS.PowerSummary.DelayBeforeShutdown": -1}),
               5: report(desc, 5, {"UPS.PowerSummary.DelayBeforeStartup": -1})}
    state.walk(Mode.INIT, reports)
    got = values(state)
    assert (got["battery.charge"], got["battery.runtime"], got["ups.status"]) == \
        ("57", "900", "OB DISCHRG")
    assert (got["ups.delay.shutdown"], got["ups.timer.shutdown"]) == ("45", "-1")
    assert set(state.commands) >= {"load.off.delay", "load.on.delay", "shutdown.stop",
                                   "load.off", "load.on", "shutdown.return",
                                   "shutdown.stayoff"}
    assert state.published()["ups.delay.shutdown"][1].ranges == [(0, 32767)]


def test_mge_abm_takes_charging_from_the_charger_mode() -> None:
    """With ABM on, PresentStatus.Charging is ignored and Charger.Mode 3 (floating) is CHRG
    (below 100 %: a bare charging bit at 100 % is not CHRG, by NUT's rule)."""
    specs = [Spec("UPS.BatterySystem.Charger.ABMEnable", 1),
             Spec("UPS.BatterySystem.Charger.Mode", 2),
             Spec("UPS.PowerSummary.PresentStatus.ACPresent", 3, 1, 0, 1),
             Spec("UPS.PowerSummary.PresentStatus.Charging", 3, 1, 0, 1),
             Spec("UPS.PowerSummary.RemainingCapacity", 4)]
    state = run(mge.SUBDRIVER, specs, {
        1: {"UPS.BatterySystem.Charger.ABMEnable": 1},
        2: {"UPS.BatterySystem.Charger.Mode": 3},
        3: {"UPS.PowerSummary.PresentStatus.ACPresent": 1},
        4: {"UPS.PowerSummary.RemainingCapacity": 95}})
    assert state.status_words() == ["OL", "CHRG"]
    assert state.values["battery.charger.status"] == "floating"


def test_default_and_override_options() -> None:
    """NUT's default.<var> drops the device's rows for it; override.<var> always wins."""
    specs = [Spec("UPS.PowerSummary.RemainingCapacity", 1, 8, 0, 100),
             Spec("UPS.PowerSummary.RunTimeToEmpty", 2, 16, 0, 65535, 0x1001)]
    state = run(generic.SUBDRIVER, specs, {1: {"UPS.PowerSummary.RemainingCapacity": 80},
                                           2: {"UPS.PowerSummary.RunTimeToEmpty": 600}},
                DeviceInfo(0x1234, 1), **{"default.battery.charge": "50",
                                          "override.battery.runtime": "42"})
    assert (state.values["battery.charge"], state.values["battery.runtime"]) == ("50", "42")


# -- the status rules ------------------------------------------------------------------------


@pytest.mark.parametrize("words,options,charge,expected", [
    (["online", "!dischrg"], [], "100", ["OL"]),
    (["offline", "dischrg"], [], "80", ["OB", "DISCHRG"]),
    (["dischrg"], [], None, ["OB", "DISCHRG"]),                    # no ACPresent at all
    (["online", "dischrg"], [], None, ["OL", "DISCHRG"]),          # NUT: OL, with a warning
    (["online", "dischrg"], ["onlinedischarge_onbattery"], None, ["OB", "DISCHRG"]),
    (["online", "dischrg"], ["onlinedischarge"], None, ["OB", "DISCHRG"]),  # old name
    (["online", "dischrg"], ["onlinedischarge_calibration"], None, ["CAL", "DISCHRG"]),
    (["online", "chrg"], [], "100", ["OL"]),                       # no FullyCharged flag
    (["online", "chrg"], [], "60", ["OL", "CHRG"]),
    (["online", "chrg", "fullycharged"], [], "60", ["OL"]),
    (["online", "chrg", "notfullycharged"], [], "100", ["OL", "CHRG"]),
    (["offline", "dischrg", "depleted", "lowbatt"], [], "0", ["OB", "LB"]),
    (["online", "timelimitexp"], [], None, ["OL", "LB"]),
    (["online", "overload", "boost", "nobattery"], [], None, ["OL", "OVER", "RB", "BOOST"]),
    (["online", "trim", "bypassauto", "off", "cal"], [], None,
     ["CAL", "OL", "TRIM", "BYPASS", "OFF"]),
])
def test_status_rules(words: list[str], options: list[str], charge: str | None,
                      expected: list[str]) -> None:
    bits: set[str] = set()
    for word in words:
        apply_word(bits, word)
    assert status_words(bits, options, charge) == expected


def test_online_and_offline_clear_each_other() -> None:
    bits: set[str] = set()
    apply_word(bits, "offline")
    apply_word(bits, "online")
    assert bits == {"online"}
    apply_word(bits, "!online")
    assert bits == set()


def test_alarm_prefixes_status_as_nut() -> None:
    """NUT 2.7.4's dump of an Eaton 5PX: ``ALARM OL CHRG RB`` with "Replace battery!"."""
    assert alarm_texts({"replacebatt", "online"}) == ["Replace battery!"]
    specs = [Spec("UPS.PowerSummary.PresentStatus.ACPresent", 1, 1, 0, 1),
             Spec("UPS.PowerSummary.PresentStatus.NeedReplacement", 1, 1, 0, 1)]
    state = run(generic.SUBDRIVER, specs, {1: {
        "UPS.PowerSummary.PresentStatus.ACPresent": 1,
        "UPS.PowerSummary.PresentStatus.NeedReplacement": 1}}, DeviceInfo(0x1234, 1))
    state.walk(Mode.FULL, {})
    got = values(state)
    assert (got["ups.status"], got["ups.alarm"]) == ("ALARM OL RB", "Replace battery!")


def test_ignorelb_takes_lb_from_the_thresholds() -> None:
    specs = [Spec("UPS.PowerSummary.RemainingCapacity", 1, 8, 0, 100),
             Spec("UPS.PowerSummary.RemainingCapacityLimit", 2, 8, 0, 100),
             Spec("UPS.PowerSummary.PresentStatus.ACPresent", 3, 1, 0, 1),
             Spec("UPS.PowerSummary.PresentStatus.BelowRemainingCapacityLimit", 3, 1, 0, 1)]
    desc = parse_specs(specs)
    for charge, expected in ((50, ["OB"]), (5, ["OB", "LB"])):
        state = HidState(desc, generic.SUBDRIVER, DeviceInfo(1, 1), flags=["ignorelb"])
        state.walk(Mode.INIT, {
            1: report(desc, 1, {"UPS.PowerSummary.RemainingCapacity": charge}),
            2: report(desc, 2, {"UPS.PowerSummary.RemainingCapacityLimit": 10}),
            3: report(desc, 3, {
                "UPS.PowerSummary.PresentStatus.BelowRemainingCapacityLimit": 1})})
        assert state.status_words() == expected


def test_every_table_parses_and_names_its_paths() -> None:
    """Each row's path is made of known usage names (a typo would drop the row silently)."""
    for sub in vendors.SUBDRIVERS:
        for row in sub.rows:
            assert sub.names.path(row.path) is not None, (sub.key, row.line, row.path)
    ids = vendors.all_usb_ids()
    assert (0x051D, 0x0002) in ids and (0x0764, 0x0501) in ids and (0x0463, 0xFFFF) in ids
    assert len(ids) == len(set(ids)) > 100


def test_claims_follow_nut() -> None:
    """06da:ffff is Liebert's unless it is an AEG; 09ae:0001 and 0d9f:0002 are not HID."""
    assert vendors.select(DeviceInfo(0x06DA, 0xFFFF)).key == "liebert"  # type: ignore[union-attr]
    aeg = vendors.select(DeviceInfo(0x06DA, 0xFFFF, "AEG", "PROTECT NAS"))
    assert aeg is mge.SUBDRIVER
    assert vendors.select(DeviceInfo(0x09AE, 0x0001)) is None
    assert vendors.select(DeviceInfo(0x0D9F, 0x0002)) is None
    assert vendors.by_name("cyberpower") is cps.SUBDRIVER and vendors.by_name("apc") is \
        apc.SUBDRIVER
    assert ReportType.FEATURE.label == "Feature"
