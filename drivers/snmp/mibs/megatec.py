"""Megatec cards (Santak, PowerWalker, INVT, Phoenixtec OEMs): XPPC-MIB and EPPC-MIB.

**XPPC** (``1.3.6.1.4.1.935.1.1.1``, NetAgent / "SNMP card"): NUT's ``xppc`` table
(``drivers/xppc-mib.c``) plus, from the XPPC-MIB itself, what NUT leaves out: the
three-phase group (``upsThreePhase*``, 0.1 V and 0.1 Hz; per-line voltages for
three-phase units, the line counts read from RFC 1628's ``upsInputNumLines`` /
``upsOutputNumLines`` which these cards also serve), the diagnostics and calibration
results, and the control group's commands (``upsSmartControl*``, ``upsSmartTest*``, value 2 =
do it).  The per-line load percentages (``upsThreePhaseOutputLoadPercentage*``) are not
mapped: the MIB gives no unit and the INVT walk's values (235, 327 with a 44 % total) fit
none.  The INVT walk answers ``upsBaseOutputStatus`` = 9 (onBuck) on a double-conversion
unit on mains, so it shows ``OL TRIM``, as NUT would.

**EPPC** (``1.3.6.1.4.1.935.10.1.1``, "Network Management Card for UPS", Winpower family):
NUT has no table; the objects are those of LibreNMS's ``powerwalker`` definition
(``../shared/research/drivers.md`` part c.4): system status, temperature (0.1 degC), input,
output and bypass line tables (0.1 Hz, 0.1 V, 0.1 A), battery status, minutes and
percentage, battery voltage (0.1 V).  Unsupported values answer -1 and are left out.  The
line count is 3 when the line table has a third row.  No commands: the MIB's control objects
are not documented well enough to SET them.
"""

from __future__ import annotations

from upsagent.drivers.snmp.mib import Mib, StatusRule, Var
from upsagent.drivers.snmp.mibs.common import SYSTEM, cmd

__all__ = ["EPPC", "XPPC"]

P = "1.3.6.1.4.1.935.1.1.1."
I = "1.3.6.1.2.1.33.1."

XPPC_VARIABLES = SYSTEM + (
    Var("ups.mfr", None, default="Tripp Lite / Phoenixtec"),
    Var("ups.model", P + "1.1.1.0", text=True),
    Var("ups.firmware.aux", P + "1.2.4.0", text=True),
    Var("battery.charge", P + "2.2.1.0"),
    Var("battery.voltage", P + "2.2.2.0", 0.1),
    Var("ups.temperature", P + "2.2.3.0", 0.1, signed=True),
    Var("battery.runtime", P + "2.2.4.0"),
    Var("input.phases", I + "3.2.0"),
    Var("input.voltage", P + "3.2.1.0", 0.1, phases="input1"),
    Var("input.L1-N.voltage", P + "8.2.2.0", 0.1, phases="input3"),
    Var("input.L2-N.voltage", P + "8.2.3.0", 0.1, phases="input3"),
    Var("input.L3-N.voltage", P + "8.2.4.0", 0.1, phases="input3"),
    Var("input.frequency", P + "3.2.4.0", 0.1),
    Var("input.frequency", P + "8.2.1.0", 0.1),
    Var("output.phases", I + "4.3.0"),
    Var("output.voltage", P + "4.2.1.0", 0.1, phases="output1"),
    Var("output.L1-N.voltage", P + "8.3.2.0", 0.1, phases="output3"),
    Var("output.L2-N.voltage", P + "8.3.3.0", 0.1, phases="output3"),
    Var("output.L3-N.voltage", P + "8.3.4.0", 0.1, phases="output3"),
    Var("output.frequency", P + "4.2.2.0", 0.1),
    Var("output.frequency", P + "8.3.1.0", 0.1),
    Var("ups.load", P + "4.2.3.0"),
    Var("output.voltage.nominal", P + "5.2.1.0", 0.1),
    Var("input.bypass.frequency", P + "8.4.1.0", 0.1),
    Var("input.bypass.L1-N.voltage", P + "8.4.2.0", 0.1, phases="input3"),
    Var("input.bypass.L2-N.voltage", P + "8.4.3.0", 0.1, phases="input3"),
    Var("input.bypass.L3-N.voltage", P + "8.4.4.0", 0.1, phases="input3"),
    Var("ups.test.result", P + "7.2.3.0", lookup={1: "Ok", 2: "Failed", 3: "InvalidTest",
                                                  4: "TestInProgress"}),
    Var("ups.test.date", P + "7.2.4.0", text=True),
)

XPPC_STATUS = (
    StatusRule(P + "2.1.1.0", {3: "LB"}),
    StatusRule(P + "4.1.1.0", {2: "OL", 3: "OB", 4: "OL BOOST", 5: "OFF", 6: "BYPASS",
                               8: "OFF", 9: "OL TRIM"}),
    StatusRule(P + "7.2.7.0", {3: "CAL"}),
)

XPPC_COMMANDS = (
    cmd("shutdown.return", P + "6.1.1.0", 2),
    cmd("load.off", P + "6.2.1.0", 2),
    cmd("shutdown.reboot", P + "6.2.2.0", 2),
    cmd("test.failure.start", P + "6.2.4.0", 2),
    cmd("test.panel.start", P + "7.2.5.0", 2),
    cmd("load.on", P + "6.2.6.0", 2),
    cmd("test.battery.start", P + "7.2.2.0", 2),
    cmd("calibrate.start", P + "7.2.6.0", 2),
    cmd("calibrate.stop", P + "7.2.6.0", 3),
)

XPPC = Mib("xppc", "0.41", sysoids=("1.3.6.1.4.1.935",),
           probes=(P + "1.1.1.0", P + "4.1.1.0", P + "2.2.1.0"),
           variables=XPPC_VARIABLES, status=XPPC_STATUS, commands=XPPC_COMMANDS,
           description="Megatec XPPC-MIB")

E = "1.3.6.1.4.1.935.10.1.1."


def _table(prefix: str, base: str, columns: dict[str, tuple[int, float]],
           kind: str) -> tuple[Var, ...]:
    """Single-line rows (line 1) and per-line rows of a line table."""
    rows: list[Var] = []
    for name, (column, scale) in columns.items():
        rows.append(Var(f"{prefix}.{name}", f"{base}{column}.1", scale, phases=f"{kind}1"))
    for name, (column, scale) in columns.items():
        sub = name.replace("voltage", "N.voltage") if name == "voltage" else name
        for n in (1, 2, 3):
            label = f"L{n}-{sub}" if name == "voltage" else f"L{n}.{sub}"
            rows.append(Var(f"{prefix}.{label}", f"{base}{column}.{n}", scale,
                            phases=f"{kind}3"))
    return tuple(rows)


EPPC_VARIABLES = SYSTEM + (
    Var("ups.temperature", E + "2.2.0", 0.1, signed=True),
    *_table("input", E + "2.16.1.", {"frequency": (2, 0.1), "voltage": (3, 0.1),
                                     "current": (4, 0.1), "realpower": (5, 1)}, "input"),
    *_table("output", E + "2.18.1.", {"frequency": (2, 0.1), "voltage": (3, 0.1),
                                      "current": (4, 0.1), "realpower": (5, 1)}, "output"),
    Var("ups.load", E + "2.18.1.7.1", phases="output1"),
    Var("output.L1.power.percent", E + "2.18.1.7.1", phases="output3"),
    Var("output.L2.power.percent", E + "2.18.1.7.2", phases="output3"),
    Var("output.L3.power.percent", E + "2.18.1.7.3", phases="output3"),
    *_table("input.bypass", E + "2.20.1.", {"frequency": (2, 0.1), "voltage": (3, 0.1)},
            "bypass"),
    Var("battery.runtime", E + "3.3.0", 60),
    Var("battery.charge", E + "3.4.0"),
    Var("battery.voltage", E + "3.5.0", 0.1),
)

EPPC_STATUS = (
    StatusRule(E + "2.1.0", {2: "OFF", 3: "BYPASS", 4: "OL", 5: "OB", 6: "OL", 8: "OL",
                             9: "OL ECO", 10: "OFF", 11: "OL BOOST", 12: "OL TRIM"},
               alarms={7: "UPS fault!"}),
    StatusRule(E + "3.1.0", {3: "LB", 4: "LB", 5: "DISCHRG", 6: "RB"}),
)

EPPC = Mib("eppc", "0.1", sysoids=("1.3.6.1.4.1.935.10.",), probes=(E + "2.1.0",),
           variables=EPPC_VARIABLES, status=EPPC_STATUS, description="Megatec EPPC-MIB",
           infer_phases={"input": E + "2.16.1.3", "output": E + "2.18.1.3",
                         "bypass": E + "2.20.1.3"})
