"""Eaton XUPS-MIB (Powerware, ``1.3.6.1.4.1.534.1``): NUT's ``pw`` table.

NUT 2.8.0 calls it ``pw`` (``drivers/powerware-mib.c``); NUT's master branch renamed it
``eaton_pw_nm2`` (``drivers/eaton-ups-pwnm2-mib.c``), whose rows we follow; both names select
it.  Differences, each on purpose:

* the bypass voltage is also read at ``xupsBypassVoltage.1`` (the Eaton ConnectUPS card of
  our fixtures has only that instance; NUT reads ``.0`` and ``.1.0``);
* the alarm table is walked by its ``xupsAlarmDescr`` column (NUT walks from
  ``xupsAlarms.0``, which reaches the same rows);
* the commands SET the ``.0`` instances (NUT's ``xupsTestBattery`` and
  ``xupsLoadShedSecsWithRestart`` rows lack it, so no agent lists them) and
  ``shutdown.return`` sends ``offdelay`` seconds (NUT sends an empty default);
* outlets (``outlet.n.*``), the EMP002 sensor templates and ``battery.date`` (NUT converts
  US dates) are not mapped.
"""

from __future__ import annotations

from upsagent.drivers.snmp.mib import AlarmTable, Mib, StatusRule, Var
from upsagent.drivers.snmp.mibs.common import SYSTEM, cmd, lines

__all__ = ["XUPS"]

X = "1.3.6.1.4.1.534.1."
I = "1.3.6.1.2.1.33.1."

VARIABLES = SYSTEM + (
    Var("ups.mfr", X + "1.1.0", text=True, static=True),
    Var("ups.model", X + "1.2.0", text=True, static=True),
    Var("ups.firmware", X + "1.3.0", text=True),
    Var("ups.firmware.aux", I + "1.4.0", text=True),
    Var("ups.serial", I + "1.5.0", text=True, static=True),
    Var("ups.load", X + "4.1.0"),
    Var("ups.power", X + "4.4.1.4.1"),
    Var("ups.power", X + "4.4.1.4.1.0"),
    Var("ups.type", X + "13.1.0", static=True, lookup={
        0x10: "Off-line switcher, Single Phase", 0x20: "Line-Interactive UPS, Single Phase",
        0x21: "Line-Interactive UPS, Two Phase", 0x22: "Line-Interactive UPS, Three Phase",
        0x30: "Dual AC Input, On-Line UPS, Single Phase",
        0x31: "Dual AC Input, On-Line UPS, Two Phase",
        0x32: "Dual AC Input, On-Line UPS, Three Phase", 0x40: "On-Line UPS, Single Phase",
        0x41: "On-Line UPS, Two Phase", 0x42: "On-Line UPS, Three Phase",
        0x50: "Parallel Redundant On-Line UPS, Single Phase",
        0x51: "Parallel Redundant On-Line UPS, Two Phase",
        0x52: "Parallel Redundant On-Line UPS, Three Phase",
        0x60: "Parallel for Capacity On-Line UPS, Single Phase",
        0x61: "Parallel for Capacity On-Line UPS, Two Phase",
        0x62: "Parallel for Capacity On-Line UPS, Three Phase",
        0x102: "System Bypass Module, Three Phase", 0x122: "Hot-Tie Cabinet, Three Phase",
        0x200: "Outlet Controller, Single Phase",
        0x222: "Dual AC Input Static Switch Module, 3 Phase"}),
    Var("ups.realpower.nominal", X + "10.3.0", static=True),
    Var("ups.power.nominal", I + "9.5.0", static=True),
    Var("ups.temperature", X + "6.1.0", signed=True),
    Var("ups.temperature.low", X + "6.2.0", signed=True, set_as="int"),
    Var("ups.temperature.high", X + "6.3.0", signed=True, set_as="int"),
    Var("ups.test.result", X + "8.2.0", lookup={
        1: "Unknown", 2: "Done and passed", 3: "Done and error", 4: "In progress",
        5: "Not supported", 6: "Inhibited", 7: "Scheduled"}),
    Var("ups.start.auto", I + "8.5.0", lookup={1: "yes", 2: "no"}, set_as="int"),
    Var("battery.charger.status", X + "2.5.0", lookup={
        1: "charging", 2: "discharging", 3: "floating", 4: "resting", 5: "unknown",
        6: "disabled"}),
    Var("battery.charge", X + "2.4.0"),
    Var("battery.runtime", X + "2.1.0"),
    Var("battery.voltage", X + "2.2.0"),
    Var("battery.current", X + "2.3.0", 0.1),
    Var("battery.runtime.low", I + "9.7.0", 60),
    Var("output.phases", X + "4.3.0"),
    Var("output.frequency", X + "4.2.0", 0.1),
    Var("output.frequency.nominal", X + "10.4.0", 0.1, static=True),
    Var("output.voltage", X + "4.4.1.2.1", phases="output1"),
    Var("output.voltage", X + "4.4.1.2.1.0", phases="output1"),
    Var("output.voltage.nominal", X + "10.1.0", static=True),
    Var("output.voltage.low", X + "10.6.0"),
    Var("output.voltage.high", X + "10.7.0"),
    Var("output.current", X + "4.4.1.3.1", phases="output1"),
    Var("output.current", X + "4.4.1.3.1.0", phases="output1"),
    Var("output.realpower", X + "4.4.1.4.1", phases="output1"),
    Var("output.realpower", X + "4.4.1.4.1.0"),
    Var("output.realpower.nominal", X + "10.3.0", static=True),
    *lines("output.L{n}-N.voltage", X + "4.4.1.2.{n}", "output"),
    *lines("output.L{n}.current", X + "4.4.1.3.{n}", "output"),
    *lines("output.L{n}.realpower", X + "4.4.1.4.{n}", "output"),
    *lines("output.L{n}.power.percent", I + "4.4.1.5.{n}", "output"),
    Var("input.phases", X + "3.3.0"),
    Var("input.frequency", X + "3.1.0", 0.1),
    Var("input.voltage", X + "3.4.1.2.0", phases="input1"),
    Var("input.voltage", X + "3.4.1.2.1", phases="input1"),
    Var("input.voltage.nominal", X + "10.2.0", static=True),
    Var("input.current", X + "3.4.1.3.0", 0.1, phases="input1"),
    *lines("input.L{n}-N.voltage", X + "3.4.1.2.{n}", "input"),
    *lines("input.L{n}.current", X + "3.4.1.3.{n}", "input"),
    *lines("input.L{n}.realpower", X + "3.4.1.4.{n}", "input"),
    Var("input.quality", X + "3.2.0"),
    Var("input.bypass.frequency", X + "5.1.0", 0.1),
    Var("input.bypass.voltage", X + "5.3.1.2.1", phases="input1"),
    Var("input.bypass.voltage", X + "5.3.1.2.0", phases="input1"),
    Var("input.bypass.voltage", X + "5.3.1.2.1.0", phases="input1"),
    *lines("input.bypass.L{n}-N.voltage", X + "5.3.1.2.{n}", "input"),
    Var("ambient.temperature", X + "6.5.0", signed=True),
    Var("ambient.temperature.low", X + "6.9.0", signed=True, set_as="int"),
    Var("ambient.temperature.high", X + "6.10.0", signed=True, set_as="int"),
    Var("ambient.humidity", X + "6.6.0"),
    Var("ambient.humidity.low", X + "6.11.0", set_as="int"),
    Var("ambient.humidity.high", X + "6.12.0", set_as="int"),
)

STATUS = (
    StatusRule(X + "4.5.0", {2: "OFF", 3: "OL", 4: "BYPASS", 5: "OB", 6: "OL BOOST",
                             7: "OL TRIM", 8: "OL", 9: "OL", 10: "OL", 11: "BYPASS"}),
    StatusRule(X + "2.5.0", {1: "CHRG", 2: "DISCHRG"}),
)

_A = X + "7."
ALARMS = AlarmTable(X + "7.2.1.2", count=X + "7.1.0", alarms={
    _A + "4": ("LB", None), _A + "7": ("OVER", "Output overload!"),
    _A + "8": (None, "Internal failure!"), _A + "9": (None, "Battery discharged!"),
    _A + "10": (None, "Inverter failure!"), _A + "11": ("BYPASS", "On bypass!"),
    _A + "12": (None, "Bypass not available!"), _A + "13": ("OFF", "Output off!"),
    _A + "14": (None, "Input failure!"), _A + "15": (None, "Building alarm!"),
    _A + "16": (None, "Shutdown imminent!"), _A + "17": (None, "On inverter!"),
    _A + "20": (None, "Breaker open!"), _A + "23": ("RB", "Battery bad!"),
    _A + "24": ("OFF", "Output off as requested!"),
    _A + "25": (None, "Diagnostic test failure!"),
    _A + "26": (None, "Communication with UPS lost!"), _A + "27": (None, "Shutdown pending!"),
    _A + "29": (None, "Bad ambient temperature!"), _A + "30": (None, "Redundancy lost!"),
    _A + "31": (None, "Bad temperature!"), _A + "32": (None, "Charger failure!"),
    _A + "33": (None, "Fan failure!"), _A + "34": (None, "Fuse failure!"),
    _A + "35": (None, "Powerswitch failure!"),
    _A + "36": (None, "Parallel or composite module failure!"),
    _A + "37": (None, "Using alternative power source!"),
    _A + "38": (None, "Alternative power source unavailable!"),
    _A + "40": (None, "Bad remote temperature!"), _A + "41": (None, "Bad remote humidity!"),
    _A + "42": (None, "Bad output condition!"), _A + "43": (None, "Awaiting power!"),
    _A + "44": ("BYPASS", "On maintenance bypass!"),
})

COMMANDS = (
    cmd("test.battery.start.quick", X + "8.1.0", 1),
    cmd("shutdown.return", X + "9.6.0", None, delay="offdelay"),
    cmd("shutdown.stop", X + "9.1.0", 0),
    cmd("load.off", X + "9.1.0", 1),
    cmd("load.off.delay", X + "9.1.0", None, delay="offdelay"),
    cmd("load.on", X + "9.2.0", 1),
    cmd("load.on.delay", X + "9.2.0", None, delay="ondelay"),
)

XUPS = Mib("pw", "0.106", sysoids=("1.3.6.1.4.1.534.1", "1.3.6.1.4.1.534.2.12"),
           probes=(X + "1.2.0", X + "4.5.0", X + "2.4.0"), variables=VARIABLES,
           status=STATUS, alarm_tables=(ALARMS,), commands=COMMANDS,
           aliases=("eaton_pw_nm2", "pxgx_ups"), description="Eaton XUPS-MIB")
