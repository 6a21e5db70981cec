"""RFC 1628 UPS-MIB (``1.3.6.1.2.1.33``): NUT's ``ietf`` table (``drivers/ietf-mib.c``).

Differences from NUT's table, each on purpose:

* ``ups.mfr`` is also read at ``upsIdentManufacturer`` without the ``.0`` instance, where
  some agents (the Minuteman/Delta card of our fixtures) put it.
* the alarm table (``upsAlarmTable``, walked) gives ``LB``, ``OVER``, ``BYPASS``, ``OFF``
  and ``RB`` words and ``ups.alarm`` texts; NUT reads a well-known alarm OID as if it were
  a value, which no agent answers.
* the test commands SET ``upsTestId`` to the well-known test OIDs (``upsTestQuickBattery``
  ...) as RFC 1628 says; NUT sets the integer 0, which agents refuse.  NUT's ``TEST``/``CAL``
  words from ``upsTestId`` are left out: the object names the *last* test as well.
* ``shutdown.return`` / ``shutdown.stayoff`` (``upsAutoRestart`` then
  ``upsShutdownAfterDelay``), ``shutdown.stop`` (delay -1), ``load.off.delay`` and
  ``load.on.delay`` exist here, so ``killpower`` works on RFC 1628 cards.
* ``ups.timer.*`` are read-only numbers (-1: no countdown); NUT makes them writable
  strings and SETs an OCTET STRING into an INTEGER object.
"""

from __future__ import annotations

from upsagent.drivers.snmp.mib import AlarmTable, Command, Mib, Set, StatusRule, Var
from upsagent.drivers.snmp.mibs.common import SYSTEM, cmd, lines

__all__ = ["IETF", "TRIPPLITE"]

B = "1.3.6.1.2.1.33.1."
TEST = "oid:1.3.6.1.2.1.33.1.7.7."

_YES_NO = {1: "yes", 2: "no"}

VARIABLES = SYSTEM + (
    Var("ups.mfr", B + "1.1.0", text=True, static=True),
    Var("ups.mfr", B + "1.1", text=True, static=True),
    Var("ups.model", B + "1.2.0", text=True, static=True),
    Var("ups.firmware", B + "1.3.0", text=True, static=True),
    Var("ups.firmware.aux", B + "1.4.0", text=True, static=True),
    Var("battery.runtime", B + "2.3.0", 60),
    Var("battery.charge", B + "2.4.0"),
    Var("battery.voltage", B + "2.5.0", 0.1),
    Var("battery.current", B + "2.6.0", 0.1, neg_invalid=True),
    Var("battery.temperature", B + "2.7.0", signed=True),
    Var("input.phases", B + "3.2.0"),
    Var("input.frequency", B + "3.3.1.2.1", 0.1, phases="input1"),
    *lines("input.L{n}.frequency", B + "3.3.1.2.{n}", "input", 0.1),
    Var("input.voltage", B + "3.3.1.3.1", phases="input1"),
    *lines("input.L{n}-N.voltage", B + "3.3.1.3.{n}", "input"),
    Var("input.current", B + "3.3.1.4.1", 0.1, phases="input1", neg_invalid=True),
    *lines("input.L{n}.current", B + "3.3.1.4.{n}", "input", 0.1),
    Var("input.realpower", B + "3.3.1.5.1", phases="input1", neg_invalid=True),
    *lines("input.L{n}.realpower", B + "3.3.1.5.{n}", "input"),
    Var("output.frequency", B + "4.2.0", 0.1),
    Var("output.phases", B + "4.3.0"),
    Var("output.voltage", B + "4.4.1.2.1", phases="output1"),
    *lines("output.L{n}-N.voltage", B + "4.4.1.2.{n}", "output"),
    Var("output.current", B + "4.4.1.3.1", 0.1, phases="output1", neg_invalid=True),
    *lines("output.L{n}.current", B + "4.4.1.3.{n}", "output", 0.1),
    Var("output.realpower", B + "4.4.1.4.1", phases="output1", neg_invalid=True),
    *lines("output.L{n}.realpower", B + "4.4.1.4.{n}", "output"),
    Var("ups.load", B + "4.4.1.5.1", phases="output1"),
    *lines("output.L{n}.power.percent", B + "4.4.1.5.{n}", "output"),
    Var("input.bypass.phases", B + "5.2.0", neg_invalid=True),
    Var("input.bypass.frequency", B + "5.1.0", 0.1, neg_invalid=True),
    Var("input.bypass.voltage", B + "5.3.1.2.1", phases="bypass1"),
    *lines("input.bypass.L{n}-N.voltage", B + "5.3.1.2.{n}", "bypass"),
    Var("input.bypass.current", B + "5.3.1.3.1", 0.1, phases="bypass1"),
    *lines("input.bypass.L{n}.current", B + "5.3.1.3.{n}", "bypass", 0.1),
    Var("input.bypass.realpower", B + "5.3.1.4.1", phases="bypass1"),
    *lines("input.bypass.L{n}.realpower", B + "5.3.1.4.{n}", "bypass"),
    Var("ups.test.result", B + "7.3.0", lookup={
        1: "done and passed", 2: "done and warning", 3: "done and error", 4: "aborted",
        5: "in progress", 6: "no test initiated"}),
    Var("ups.timer.shutdown", B + "8.2.0", signed=True),
    Var("ups.timer.start", B + "8.3.0", signed=True),
    Var("ups.timer.reboot", B + "8.4.0", signed=True),
    Var("ups.start.auto", B + "8.5.0", lookup=_YES_NO, set_as="int"),
    Var("input.voltage.nominal", B + "9.1.0", neg_invalid=True, static=True),
    Var("input.frequency.nominal", B + "9.2.0", 0.1, neg_invalid=True, static=True),
    Var("output.voltage.nominal", B + "9.3.0", static=True),
    Var("output.frequency.nominal", B + "9.4.0", 0.1, static=True),
    Var("output.power.nominal", B + "9.5.0", neg_invalid=True, static=True),
    Var("output.realpower.nominal", B + "9.6.0", neg_invalid=True, static=True),
    Var("battery.runtime.low", B + "9.7.0", 60),
    Var("ups.beeper.status", B + "9.8.0", lookup={1: "disabled", 2: "enabled", 3: "muted"}),
    Var("input.transfer.low", B + "9.9.0"),
    Var("input.transfer.high", B + "9.10.0"),
)

STATUS = (
    StatusRule(B + "2.1.0", {3: "LB", 4: "LB"}),
    StatusRule(B + "4.1.0", {2: "OFF", 3: "OL", 4: "OL BYPASS", 5: "OB", 6: "OL BOOST",
                             7: "OL TRIM"}),
)

_A = "1.3.6.1.2.1.33.1.6.3."
ALARMS = AlarmTable(B + "6.2.1.2", count=B + "6.1.0", alarms={
    _A + "1": ("RB", None), _A + "3": ("LB", None), _A + "4": ("LB", None),
    _A + "5": (None, "Temperature bad!"), _A + "6": (None, "Input bad!"),
    _A + "7": (None, "Output bad!"), _A + "8": ("OVER", None), _A + "9": ("BYPASS", None),
    _A + "10": (None, "Bypass bad!"), _A + "11": ("OFF", None), _A + "12": ("OFF", None),
    _A + "13": (None, "Charger failure!"), _A + "14": ("OFF", None), _A + "15": ("OFF", None),
    _A + "16": (None, "Fan failure!"), _A + "17": (None, "Fuse failure!"),
    _A + "18": (None, "General fault!"), _A + "19": (None, "Diagnostic test failed!"),
    _A + "20": (None, "Communication with UPS lost!"), _A + "21": (None, "Awaiting power!"),
    _A + "22": (None, "Shutdown pending!"), _A + "23": (None, "Shutdown imminent!"),
})

COMMANDS = (
    cmd("test.battery.stop", B + "7.1.0", TEST + "2", "oid"),
    cmd("test.battery.start", B + "7.1.0", TEST + "3", "oid"),
    cmd("test.battery.start.quick", B + "7.1.0", TEST + "4", "oid"),
    cmd("test.battery.start.deep", B + "7.1.0", TEST + "5", "oid"),
    cmd("load.off", B + "8.2.0", 0),
    cmd("load.off.delay", B + "8.2.0", None, delay="offdelay"),
    cmd("load.on", B + "8.3.0", 0),
    cmd("load.on.delay", B + "8.3.0", None, delay="ondelay"),
    Command("shutdown.return", (Set(B + "8.5.0", 1), Set(B + "8.2.0", None, delay="offdelay"))),
    Command("shutdown.stayoff", (Set(B + "8.5.0", 2),
                                 Set(B + "8.2.0", None, delay="offdelay"))),
    cmd("shutdown.stop", B + "8.2.0", -1),
    cmd("beeper.disable", B + "9.8.0", 1),
    cmd("beeper.enable", B + "9.8.0", 2),
    cmd("beeper.mute", B + "9.8.0", 3),
)

IETF = Mib("ietf", "1.55", sysoids=("1.3.6.1.2.1.33",),
           probes=(B + "4.1.0", B + "1.1.0", B + "1.1", B + "2.4.0"),
           variables=VARIABLES, status=STATUS, alarm_tables=(ALARMS,), commands=COMMANDS,
           description="RFC 1628 UPS-MIB")

#: NUT's "tripplite" entry: the same table for Tripp Lite's sysObjectID
TRIPPLITE = Mib("tripplite", "1.55", sysoids=("1.3.6.1.4.1.850.1",), probes=IETF.probes,
                variables=VARIABLES, status=STATUS, alarm_tables=(ALARMS,),
                commands=COMMANDS, description="RFC 1628 UPS-MIB (Tripp Lite)")
