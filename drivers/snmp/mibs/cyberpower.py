"""CyberPower CPS-MIB (RMCARD, ``1.3.6.1.4.1.3808.1.1.1``): NUT's ``cyberpower`` table
(``drivers/cyberpower-mib.c``).

Where NUT lists two OIDs for one variable without ``SU_FLAG_UNIQUE`` the later one wins
there; our rows put that one first, so the result is the same.  ``shutdown.stayoff`` SETs
``upsAdvanceControlUpsOff`` (``.6.2.1``) = 3: NUT's row is commented
``upsAdvanceControlUpsOff`` but names ``.6.2.6`` (``upsAdvanceControlTurnOnUPS``); we follow
the comment (not checked against a card).  ``ups.delay.reboot`` (a constant 0 in NUT) is
left out.
"""

from __future__ import annotations

from upsagent.drivers.snmp.mib import Mib, StatusRule, Var
from upsagent.drivers.snmp.mibs.common import SYSTEM, cmd

__all__ = ["CYBERPOWER"]

C = "1.3.6.1.4.1.3808.1.1.1."

VARIABLES = SYSTEM + (
    Var("device.type", None, default="ups"),
    Var("ups.mfr", None, default="CYBERPOWER"),
    Var("ups.model", C + "1.1.1.0", text=True, static=True),
    Var("ups.id", C + "1.1.2.0", text=True, static=True, set_as="str", string_len=8),
    Var("ups.serial", C + "1.2.3.0", text=True, static=True),
    Var("ups.firmware", C + "1.2.1.0", text=True, static=True),
    Var("ups.mfr.date", C + "1.2.2.0", text=True),
    Var("ups.load", C + "4.2.3.0"),
    Var("ups.realpower", C + "4.2.5.0"),
    Var("ups.temperature", C + "10.2.0", signed=True),
    Var("battery.runtime", C + "2.2.4.0"),
    Var("battery.runtime.elapsed", C + "2.1.2.0"),
    Var("battery.voltage", C + "2.2.2.0", 0.1),
    Var("battery.voltage", "1.3.6.1.2.1.33.1.2.5.0", 0.1),
    Var("battery.voltage.nominal", C + "2.2.8.0"),
    Var("battery.current", C + "2.2.7.0", 0.1),
    Var("battery.current", C + "4.2.4.0", 0.1),
    Var("battery.charge", C + "2.2.1.0"),
    Var("battery.temperature", C + "2.2.3.0", signed=True),
    Var("battery.date", C + "2.1.3.0", text=True),
    Var("input.voltage", C + "3.2.1.0", 0.1),
    Var("input.frequency", C + "3.2.4.0", 0.1),
    Var("input.transfer.reason", C + "3.2.5.0", lookup={
        1: "noTransfer", 2: "highLineVoltage", 3: "brownout", 4: "selfTest"}),
    Var("output.voltage", C + "4.2.1.0", 0.1),
    Var("output.frequency", C + "4.2.2.0", 0.1),
    Var("output.current", C + "4.2.4.0", 0.1),
    Var("ups.delay.start", C + "5.2.9.0", set_as="time"),
    Var("ups.delay.shutdown", C + "5.2.11.0", set_as="time"),
    Var("ups.test.date", C + "7.2.4.0", text=True),
    Var("ups.test.result", C + "7.2.3.0", lookup={1: "Ok", 2: "Failed", 3: "InvalidTest",
                                                  4: "TestInProgress"}),
)

STATUS = (
    StatusRule(C + "4.1.1.0", {2: "OL", 3: "OB", 4: "OL BOOST", 5: "OFF", 6: "OFF",
                               7: "OL", 8: "OL", 9: "OL BYPASS", 10: "OL TRIM",
                               11: "OL OVER"}),
    StatusRule(C + "2.1.1.0", {3: "LB"}),
    StatusRule(C + "7.2.7.0", {3: "CAL"}),
    StatusRule(C + "2.2.5.0", {2: "RB"}),
    StatusRule(C + "10.1.0", {}, alarms={2: "Temperature too high!",
                                         3: "Internal UPS fault!"}),
)

COMMANDS = (
    cmd("load.off", C + "6.2.1.0", 2),
    cmd("load.on", C + "6.2.6.0", 2),
    cmd("shutdown.stayoff", C + "6.2.1.0", 3),
    cmd("shutdown.return", C + "6.2.3.0", 3),
    cmd("test.failure.start", C + "6.2.4.0", 2),
    cmd("test.panel.start", C + "7.2.5.0", 2),
    cmd("test.battery.start", C + "7.2.2.0", 2),
    cmd("calibrate.start", C + "7.2.6.0", 2),
    cmd("calibrate.stop", C + "7.2.6.0", 3),
)

CYBERPOWER = Mib("cyberpower", "0.56", sysoids=("1.3.6.1.4.1.3808.1.1.1", "1.3.6.1.4.1.3808"),
                 probes=(C + "1.1.1.0",), variables=VARIABLES, status=STATUS,
                 commands=COMMANDS, description="CyberPower CPS-MIB")
