"""APC PowerNet-MIB (``1.3.6.1.4.1.318.1.1.1``): NUT's ``apcc`` table (``drivers/apc-mib.c``).

Differences from NUT's table, each on purpose:

* selected by any ``sysObjectID`` under APC's ``1.3.6.1.4.1.318.`` confirmed by
  ``upsBasicIdentModel`` (NUT compares the sysObjectID with the model's OID, which never
  matches, and finds the card by probing);
* the high-precision rows come first and the basic ones are the fallback when the card has
  no valid high-precision value (NUT's ``SU_FLAG_UNIQUE`` turns the basic row off when the
  high-precision one is -1 too);
* the three-phase rows (``upsPhase*`` tables) are published for three-phase units only;
* ``ups.delay.shutdown`` / ``ups.delay.start`` are whole seconds (NUT multiplies them by 3,
  its string length, as if it were a scale) and ``battery.runtime.low`` is written as
  TimeTicks (NUT SETs a string into a TimeTicks object);
* the Integrated Environmental Monitor rows (Fahrenheit probes) are not mapped.
"""

from __future__ import annotations

from upsagent.drivers.snmp.mib import Mib, StatusRule, Var
from upsagent.drivers.snmp.mibs.common import SYSTEM, cmd, lines

__all__ = ["APC"]

B = "1.3.6.1.4.1.318.1.1.1."
PH = B + "9."

VARIABLES = SYSTEM + (
    Var("ups.mfr", None, default="APC"),
    Var("ups.model", B + "1.1.1.0", text=True, static=True),
    Var("ups.serial", B + "1.2.3.0", text=True, static=True),
    Var("ups.mfr.date", B + "1.2.2.0", text=True, static=True),
    Var("input.voltage", B + "3.3.1.0", 0.1, neg_invalid=True),
    Var("input.voltage", B + "3.2.1.0"),
    Var("input.voltage.maximum", B + "3.3.2.0", 0.1, neg_invalid=True),
    Var("input.voltage.maximum", B + "3.2.2.0"),
    Var("input.voltage.minimum", B + "3.3.3.0", 0.1, neg_invalid=True),
    Var("input.voltage.minimum", B + "3.2.3.0"),
    Var("input.phases", PH + "2.2.1.2.1", static=True),
    Var("input.L1-L2.voltage", PH + "2.3.1.3.1.1", phases="input3", neg_invalid=True),
    Var("input.L2-L3.voltage", PH + "2.3.1.3.1.2", phases="input3", neg_invalid=True),
    Var("input.L3-L1.voltage", PH + "2.3.1.3.1.3", phases="input3", neg_invalid=True),
    Var("input.L1-L2.voltage.maximum", PH + "2.3.1.4.1.1", phases="input3",
        neg_invalid=True),
    Var("input.L2-L3.voltage.maximum", PH + "2.3.1.4.1.2", phases="input3",
        neg_invalid=True),
    Var("input.L3-L1.voltage.maximum", PH + "2.3.1.4.1.3", phases="input3",
        neg_invalid=True),
    Var("input.L1-L2.voltage.minimum", PH + "2.3.1.5.1.1", phases="input3",
        neg_invalid=True),
    Var("input.L2-L3.voltage.minimum", PH + "2.3.1.5.1.2", phases="input3",
        neg_invalid=True),
    Var("input.L3-L1.voltage.minimum", PH + "2.3.1.5.1.3", phases="input3",
        neg_invalid=True),
    *lines("input.L{n}.current", PH + "2.3.1.6.1.{n}", "input", 0.1, True),
    *lines("input.L{n}.current.maximum", PH + "2.3.1.7.1.{n}", "input", 0.1, True),
    *lines("input.L{n}.current.minimum", PH + "2.3.1.8.1.{n}", "input", 0.1, True),
    Var("input.frequency", PH + "2.2.1.4.1", 0.1, neg_invalid=True),
    Var("input.frequency", B + "3.3.4.0", 0.1, neg_invalid=True),
    Var("input.frequency", B + "3.2.4.0"),
    Var("input.transfer.low", B + "5.2.3.0", text=True, set_as="int", string_len=3),
    Var("input.transfer.high", B + "5.2.2.0", text=True, set_as="int", string_len=3),
    Var("input.transfer.reason", B + "3.2.5.0", lookup={
        1: "noTransfer", 2: "highLineVoltage", 3: "brownout", 4: "blackout",
        5: "smallMomentarySag", 6: "deepMomentarySag", 7: "smallMomentarySpike",
        8: "largeMomentarySpike", 9: "selfTest", 10: "rateOfVoltageChange"}),
    Var("input.sensitivity", B + "5.2.7.0", lookup={1: "auto", 2: "low", 3: "medium",
                                                    4: "high"}, set_as="int"),
    Var("ups.power", B + "4.2.9.0"),
    Var("ups.realpower", B + "4.2.8.0"),
    Var("ups.temperature", B + "2.3.2.0", 0.1, signed=True),
    Var("ups.temperature", B + "2.2.2.0", signed=True),
    Var("ups.load", B + "4.3.3.0", 0.1, neg_invalid=True),
    Var("ups.load", B + "4.2.3.0"),
    Var("ups.firmware", B + "1.2.1.0", text=True, static=True),
    Var("ups.delay.shutdown", B + "5.2.10.0", set_as="time"),
    Var("ups.delay.start", B + "5.2.9.0", set_as="time"),
    Var("battery.charge", B + "2.3.1.0", 0.1, neg_invalid=True),
    Var("battery.charge", B + "2.2.1.0"),
    Var("battery.charge.restart", B + "5.2.6.0", text=True, set_as="int", string_len=3),
    Var("battery.runtime", B + "2.2.3.0"),
    Var("battery.runtime.low", B + "5.2.8.0", text=True, set_as="time", string_len=3),
    Var("battery.voltage", B + "2.3.4.0", 0.1, neg_invalid=True),
    Var("battery.voltage", B + "2.2.8.0"),
    Var("battery.voltage.nominal", B + "2.2.7.0"),
    Var("battery.current", B + "2.3.5.0", 0.1),
    Var("battery.current", B + "2.2.9.0"),
    Var("battery.current.total", B + "2.3.6.0", 0.1),
    Var("battery.packs", B + "2.2.5.0"),
    Var("battery.packs.bad", B + "2.2.6.0"),
    Var("battery.date", B + "2.1.3.0", text=True, static=True, set_as="str", string_len=8),
    Var("ups.id", B + "1.1.2.0", text=True, static=True, set_as="str", string_len=8),
    Var("ups.test.result", B + "7.2.3.0", lookup={1: "Ok", 2: "Failed", 3: "InvalidTest",
                                                  4: "TestInProgress"}),
    Var("ups.test.date", B + "7.2.4.0", text=True, set_as="str", string_len=8),
    Var("output.voltage", B + "4.3.1.0", 0.1),
    Var("output.voltage", B + "4.2.1.0"),
    Var("output.phases", PH + "3.2.1.2.1", static=True),
    Var("output.frequency", PH + "3.2.1.4.1", 0.1, neg_invalid=True),
    Var("output.frequency", B + "4.3.2.0", 0.1, neg_invalid=True),
    Var("output.frequency", B + "4.2.2.0"),
    Var("output.current", B + "4.3.4.0", 0.1, neg_invalid=True),
    Var("output.current", B + "4.2.4.0"),
    Var("output.L1-L2.voltage", PH + "3.3.1.3.1.1", phases="output3", neg_invalid=True),
    Var("output.L2-L3.voltage", PH + "3.3.1.3.1.2", phases="output3", neg_invalid=True),
    Var("output.L3-L1.voltage", PH + "3.3.1.3.1.3", phases="output3", neg_invalid=True),
    *lines("output.L{n}.current", PH + "3.3.1.4.1.{n}", "output", 0.1, True),
    *lines("output.L{n}.current.maximum", PH + "3.3.1.5.1.{n}", "output", 0.1, True),
    *lines("output.L{n}.current.minimum", PH + "3.3.1.6.1.{n}", "output", 0.1, True),
    *lines("output.L{n}.power", PH + "3.3.1.7.1.{n}", "output", 1, True),
    *lines("output.L{n}.power.maximum", PH + "3.3.1.8.1.{n}", "output", 1, True),
    *lines("output.L{n}.power.minimum", PH + "3.3.1.9.1.{n}", "output", 1, True),
    *lines("output.L{n}.power.percent", PH + "3.3.1.10.1.{n}", "output", 1, True),
    *lines("output.L{n}.power.maximum.percent", PH + "3.3.1.11.1.{n}", "output", 1, True),
    *lines("output.L{n}.power.minimum.percent", PH + "3.3.1.12.1.{n}", "output", 1, True),
    Var("output.voltage.nominal", B + "5.2.1.0", text=True, set_as="int", string_len=3),
    Var("ambient.temperature", "1.3.6.1.4.1.318.1.1.2.1.1.0", signed=True),
    Var("ambient.1.temperature.alarm.high", "1.3.6.1.4.1.318.1.1.10.1.2.2.1.3.1",
        signed=True),
    Var("ambient.1.temperature.alarm.low", "1.3.6.1.4.1.318.1.1.10.1.2.2.1.4.1", signed=True),
    Var("ambient.humidity", "1.3.6.1.4.1.318.1.1.2.1.2.0"),
    Var("ambient.1.humidity.alarm.high", "1.3.6.1.4.1.318.1.1.10.1.2.2.1.6.1"),
    Var("ambient.1.humidity.alarm.low", "1.3.6.1.4.1.318.1.1.10.1.2.2.1.7.1"),
)

STATUS = (
    StatusRule(B + "4.1.1.0", {
        2: "OL", 3: "OB", 4: "OL BOOST", 5: "OFF", 6: "OFF", 7: "OFF", 9: "BYPASS",
        10: "BYPASS", 11: "OFF", 12: "OL TRIM", 13: "OL ECO", 14: "OL", 15: "OL",
        16: "BYPASS", 17: "BYPASS", 19: "OL", 20: "OL ECO", 21: "OL", 22: "OL", 24: "OL",
        25: "OL", 28: "OL"}),
    StatusRule(B + "2.1.1.0", {3: "LB", 4: "LB", 5: "LB"}),
    StatusRule(B + "7.2.6.0", {3: "CAL"}),
    StatusRule(B + "2.2.4.0", {2: "RB"}),
)

COMMANDS = (
    cmd("load.off", B + "6.2.1.0", 2),
    cmd("load.on", B + "6.2.6.0", 2),
    cmd("shutdown.stayoff", B + "6.2.1.0", 3),
    cmd("shutdown.return", B + "6.1.1.0", 2),
    cmd("test.failure.start", B + "6.2.4.0", 2),
    cmd("test.panel.start", B + "6.2.5.0", 2),
    cmd("bypass.start", B + "6.2.7.0", 2),
    cmd("bypass.stop", B + "6.2.7.0", 3),
    cmd("test.battery.start", B + "7.2.2.0", 2),
    cmd("calibrate.start", B + "7.2.5.0", 2),
    cmd("calibrate.stop", B + "7.2.5.0", 3),
    cmd("reset.input.minmax", B + "9.1.1.0", 2),
)

APC = Mib("apcc", "1.61", sysoids=("1.3.6.1.4.1.318.",), probes=(B + "1.1.1.0",),
          variables=VARIABLES, status=STATUS, commands=COMMANDS,
          description="APC PowerNet-MIB")
