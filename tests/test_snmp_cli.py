"""``upsagent decode snmp``: upsc's format from a recorded walk (snmprec or snmpwalk -On)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from upsagent.cli.decode_snmp import main
from upsagent.drivers.snmp import mibs
from upsagent.drivers.snmp.mib import publication
from upsagent.drivers.snmp.values import parse_snmprec, parse_walk

SNMP = Path(__file__).parent / "data" / "snmp"
MINUTEMAN = str(SNMP / "minuteman-e1500rtxl2u_ietf.snmprec")


def decode(*argv: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), stdout=out, stdin=io.StringIO(stdin), stderr=err)
    return status, out.getvalue(), err.getvalue()


def test_minuteman_in_upsc_format() -> None:
    status, out, err = decode(MINUTEMAN)
    assert (status, err) == (0, "")
    assert out == (
        "battery.charge: 100\n"
        "battery.runtime: 1320\n"
        "battery.temperature: 23\n"
        "battery.voltage: 41.20\n"
        "device.contact: <private>\n"
        "device.description: UPS SNMP Agent\n"
        "device.location: <private>\n"
        "device.mfr: Minuteman\n"
        "device.type: ups\n"
        "driver.name: snmp-ups\n"
        "driver.version.data: ietf MIB 1.55\n"
        "input.frequency: 59.90\n"
        "input.phases: 1\n"
        "input.voltage: 121\n"
        "output.current: 8.10\n"
        "output.frequency: 60\n"
        "output.phases: 1\n"
        "output.realpower: 951\n"
        "output.voltage: 121\n"
        "ups.load: 79\n"
        "ups.mfr: Minuteman\n"
        "ups.status: OL\n")


def test_every_fixture_decodes_as_the_driver_publishes() -> None:
    """The CLI prints exactly the driver's publication (shared code), for every walk."""
    for path in sorted(SNMP.glob("*.snmprec")):
        found = mibs.from_walk(parse_snmprec(path.read_text()))
        assert found is not None, path.name
        mib, reading = found
        status, out, _ = decode(str(path))
        assert status == 0
        for name, value in publication(reading).items():
            assert f"{name}: {value}\n" in out
        assert f"driver.version.data: {mib.name} MIB {mib.version}\n" in out


def test_snmpwalk_text_is_read_too() -> None:
    """net-snmp's ``snmpwalk -On`` output, as a user would send it."""
    text = (
        '.1.3.6.1.2.1.1.2.0 = OID: .1.3.6.1.4.1.318.1.3.2.12\n'
        '.1.3.6.1.4.1.318.1.1.1.1.1.1.0 = STRING: "Smart-UPS 1000"\n'
        '.1.3.6.1.4.1.318.1.1.1.2.2.1.0 = Gauge32: 93\n'
        '.1.3.6.1.4.1.318.1.1.1.2.2.3.0 = Timeticks: (7068000) 19:38:00.00\n'
        '.1.3.6.1.4.1.318.1.1.1.4.1.1.0 = INTEGER: onBattery(3)\n'
        '.1.3.6.1.4.1.318.1.1.1.5.2.8.0 = Timeticks: (12000) 0:02:00.00\n'
        '.1.3.6.1.4.1.318.1.1.1.2.2.6.0 = INTEGER: -1\n'
        '.1.3.6.1.4.1.318.1.1.1.1.2.3.0 = Hex-STRING: 41 53 30 38\n'
        '.1.3.6.1.4.1.318.1.1.1.9.9.9.0 = No Such Object available on this agent at this OID\n')
    assert parse_walk(text)[(1, 3, 6, 1, 4, 1, 318, 1, 1, 1, 4, 1, 1, 0)] == 3
    status, out, err = decode("-", stdin=text)
    assert (status, err) == (0, "")
    # the values NUT's dump of a Smart-UPS 1000 on battery shows (2.7.4 printed "%.2f")
    for line in ("battery.charge: 93", "battery.runtime: 70680", "battery.runtime.low: 120",
                 "ups.model: Smart-UPS 1000", "ups.status: OB", "ups.serial: AS08",
                 "driver.version.data: apcc MIB 1.61"):
        assert line + "\n" in out
    assert "battery.packs.bad" not in out      # -1: unsupported, left out (NUT shows -1.00)


def test_forced_mib_commands_and_errors(tmp_path: Path) -> None:
    status, out, _ = decode("--commands", str(SNMP / "apc-galaxy-vs-40kw_powernet.snmprec"))
    assert (status, out) == (0, "test.battery.start\n")
    status, out, _ = decode("--mibs", "ietf", str(SNMP / "invt-netagent2_ppc.snmprec"))
    assert status == 0 and "driver.version.data: ietf MIB 1.55\n" in out
    assert "battery.voltage: 269\n" in out       # upsBatteryVoltage 2690 x 0.1 V
    status, _, err = decode("--mibs", "apcc", MINUTEMAN)
    assert status == 1 and "sysObjectID 1.3.6.1.4.1.2254.2.4" in err
    assert decode("--mibs", "nosuch", MINUTEMAN)[0] == 2
    (tmp_path / "bad").write_text("1.3.6.1|2|1\nnonsense\n")
    status, _, err = decode(str(tmp_path / "bad"))
    assert status == 1 and "line 2" in err
    assert decode(str(tmp_path / "missing"))[0] == 1


def test_family_listed_and_reached_through_upsagent() -> None:
    done = subprocess.run([sys.executable, "-m", "upsagent", "decode", "snmp", MINUTEMAN],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "ups.status: OL\n" in done.stdout
    done = subprocess.run([sys.executable, "-m", "upsagent", "decode", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert "snmp" in done.stdout


# -- tables without a fixture walk: written here from the MIBs -----------------------------

EPPC = """\
1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.935.10.1
1.3.6.1.4.1.935.10.1.1.2.1.0|2|5
1.3.6.1.4.1.935.10.1.1.2.2.0|2|315
1.3.6.1.4.1.935.10.1.1.2.16.1.2.1|2|500
1.3.6.1.4.1.935.10.1.1.2.16.1.3.1|2|0
1.3.6.1.4.1.935.10.1.1.2.16.1.4.1|2|-1
1.3.6.1.4.1.935.10.1.1.2.18.1.2.1|2|500
1.3.6.1.4.1.935.10.1.1.2.18.1.3.1|2|2301
1.3.6.1.4.1.935.10.1.1.2.18.1.7.1|2|37
1.3.6.1.4.1.935.10.1.1.3.1.0|2|5
1.3.6.1.4.1.935.10.1.1.3.3.0|2|14
1.3.6.1.4.1.935.10.1.1.3.4.0|2|88
1.3.6.1.4.1.935.10.1.1.3.5.0|2|-1
"""

CYBERPOWER = """\
1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.3808.1.1.1
1.3.6.1.2.1.33.1.2.5.0|2|240
1.3.6.1.4.1.3808.1.1.1.1.1.1.0|4|OR1500ELCDRM1U
1.3.6.1.4.1.3808.1.1.1.2.1.1.0|2|2
1.3.6.1.4.1.3808.1.1.1.2.2.1.0|2|100
1.3.6.1.4.1.3808.1.1.1.2.2.2.0|2|270
1.3.6.1.4.1.3808.1.1.1.2.2.4.0|67|204000
1.3.6.1.4.1.3808.1.1.1.4.1.1.0|2|2
1.3.6.1.4.1.3808.1.1.1.6.2.3.0|2|1
1.3.6.1.4.1.3808.1.1.1.10.1.0|2|2
"""


def test_eppc_on_battery_with_minus_one_left_out() -> None:
    """EPPC (no NUT table): system status battery(5), minutes, 0.1 units, -1 unsupported."""
    found = mibs.from_walk(parse_snmprec(EPPC))
    assert found is not None and found[0].name == "eppc"
    assert dict(found[1].items()) == {
        "ups.temperature": "31.50", "input.frequency": "50", "input.voltage": "0",
        "output.frequency": "50", "output.voltage": "230.10", "ups.load": "37",
        "input.phases": "1", "output.phases": "1",
        "battery.runtime": "840", "battery.charge": "88", "ups.status": "OB DISCHRG"}


def test_cyberpower_rows_and_alarm() -> None:
    """The vendor's battery voltage beats RFC 1628's (NUT: the later row wins); TimeTicks
    runtime; upsAdvanceStatusAlarm overheat is an alarm; shutdown.return listed."""
    found = mibs.from_walk(parse_snmprec(CYBERPOWER))
    assert found is not None and found[0].name == "cyberpower"
    got = dict(found[1].items())
    assert got["battery.voltage"] == "27" and got["battery.runtime"] == "2040"
    assert got["ups.status"] == "ALARM OL" and got["ups.alarm"] == "Temperature too high!"
    assert got["ups.mfr"] == "CYBERPOWER" and got["ups.model"] == "OR1500ELCDRM1U"
    assert found[1].commands == ["shutdown.return"]
