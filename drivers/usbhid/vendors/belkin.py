"""Belkin (050d) and Liebert (10af): NUT's ``drivers/belkin-hid.c`` ("Belkin/Liebert HID 0.23").

Old Belkin firmware puts its data on the non-standard page 0x86 (``BELKIN*`` usages, volts
and hertz in tenths, status in two bit fields).  Liebert units (GXT4, PSI5) use the standard
paths but with exponents off by 10^5..10^8: a line voltage read as about 1e-5 is multiplied
by 1e7, one near 1e-3 by 1e5, a ConfigVoltage of 1e-7 by 1e8 (NUT's liebert_*_fun).
"""

from __future__ import annotations

from upsagent.drivers.usbhid.conversions import Context, Conversion, lookup
from upsagent.drivers.usbhid.tables import Subdriver

USAGES = """
page 86
    0026 BELKINConfig  0040 BELKINConfigVoltage  0042 BELKINConfigFrequency
    0043 BELKINConfigApparentPower  0044 BELKINConfigBatteryVoltage
    0045 BELKINConfigOverloadTransfer  0053 BELKINLowVoltageTransfer
    0054 BELKINHighVoltageTransfer  005b BELKINLowVoltageTransferMax
    005c BELKINLowVoltageTransferMin  005d BELKINHighVoltageTransferMax
    005e BELKINHighVoltageTransferMin  0027 BELKINControls  0050 BELKINLoadOn
    0051 BELKINLoadOff  0052 BELKINLoadToggle  0055 BELKINDelayBeforeReboot
    0056 BELKINDelayBeforeStartup  0057 BELKINDelayBeforeShutdown  0058 BELKINTest
    005a BELKINAudibleAlarmControl  0029 BELKINDevice  0074 BELKINVoltageSensitivity
    0075 BELKINModelString  0076 BELKINModelStringOffset  007c BELKINUPSType
    002a BELKINPowerState  001a BELKINInput  001c BELKINOutput  0010 BELKINBatterySystem
    0030 BELKINVoltage  0032 BELKINFrequency  0034 BELKINPower  0035 BELKINPercentLoad
    0036 BELKINTemperature  0039 BELKINCharge  006c BELKINRunTimeToEmpty  0028 BELKINStatus
    0022 BELKINBatteryStatus  0021 BELKINPowerStatus
"""

_C = "UPS.BELKINConfig"
_S = "UPS.BELKINPowerState"
_K = "UPS.BELKINControls"

TABLE = f"""
battery.charge            UPS.BELKINBatterySystem.BELKINCharge         %.0f
battery.charge.low        UPS.PowerSummary.RemainingCapacityLimit      %.0f
battery.charge.warning    UPS.PowerSummary.WarningCapacityLimit        %.0f
battery.runtime           UPS.PowerSummary.RunTimeToEmpty              %.0f
battery.type              UPS.PowerSummary.iDeviceChemistry            stringid
battery.voltage           UPS.BELKINBatterySystem.BELKINVoltage        div10
battery.voltage.nominal   {_C}.BELKINConfigBatteryVoltage              %.0f
input.frequency           {_S}.BELKINInput.BELKINFrequency             div10
input.frequency.nominal   {_C}.BELKINConfigFrequency                   %.0f
input.sensitivity         UPS.BELKINDevice.BELKINVoltageSensitivity    belkin_sensitivity rw:10
input.transfer.high       {_C}.BELKINHighVoltageTransfer               %.0f rw:10
input.transfer.high.max   {_C}.BELKINHighVoltageTransferMax            %.0f
input.transfer.high.min   {_C}.BELKINHighVoltageTransferMin            %.0f
input.transfer.low        {_C}.BELKINLowVoltageTransfer                %.0f rw:10
input.transfer.low.max    {_C}.BELKINLowVoltageTransferMax             %.0f
input.transfer.low.min    {_C}.BELKINLowVoltageTransferMin             %.0f
input.voltage             {_S}.BELKINInput.BELKINVoltage               div10
input.voltage.nominal     {_C}.BELKINConfigVoltage                     %.0f
output.frequency          {_S}.BELKINOutput.BELKINFrequency            div10
output.voltage            {_S}.BELKINOutput.BELKINVoltage              div10
ups.beeper.status         {_K}.BELKINAudibleAlarmControl               beeper
ups.delay.start           {_K}.BELKINDelayBeforeStartup                =30 rw:10
ups.delay.shutdown        {_K}.BELKINDelayBeforeShutdown               =20 rw:10
ups.timer.start           {_K}.BELKINDelayBeforeStartup                %.0f quick
ups.timer.shutdown        {_K}.BELKINDelayBeforeShutdown               %.0f quick
ups.timer.reboot          {_K}.BELKINDelayBeforeReboot                 %.0f quick
ups.firmware              UPS.BELKINDevice.BELKINUPSType               belkin_firmware
ups.load                  {_S}.BELKINOutput.BELKINPercentLoad          %.0f
ups.load.high             {_C}.BELKINConfigOverloadTransfer            %.0f
ups.mfr.date              UPS.PowerSummary.ManufacturerDate            date
ups.power.nominal         {_C}.BELKINConfigApparentPower               %.0f
ups.serial                UPS.PowerSummary.iSerialNumber               stringid
ups.test.result           {_K}.BELKINTest                              belkin_test
ups.type                  UPS.BELKINDevice.BELKINUPSType               belkin_upstype
battery.charge            UPS.PowerSummary.RemainingCapacity           %.0f quick
input.frequency           UPS.Input.Frequency                          div10
input.voltage             UPS.Input.Voltage                            liebert_line
output.voltage            UPS.Output.Voltage                           liebert_line
battery.voltage           UPS.PowerSummary.Voltage                     liebert_line
battery.voltage.nominal   UPS.PowerSummary.ConfigVoltage               liebert_config static
ups.load                  UPS.Output.PercentLoad                       %.0f
input.voltage.nominal     UPS.Flow.ConfigVoltage                       %.0f
input.frequency           UPS.PowerConverter.Input.Frequency           div100
input.voltage             UPS.PowerConverter.Input.Voltage             liebert_line
output.voltage.nominal    UPS.Flow.ConfigVoltage                       %.0f
output.frequency          UPS.PowerConverter.Output.Frequency          div100
output.voltage            UPS.PowerConverter.Output.Voltage            liebert_line
ups.load                  UPS.OutletSystem.Outlet.PercentLoad          %.0f
battery.voltage           UPS.BatterySystem.Battery.Voltage            liebert_line
battery.voltage.nominal   UPS.BatterySystem.Battery.ConfigVoltage      %.0f
battery.capacity          UPS.Flow.ConfigApparentPower                 %.0f
BOOL  UPS.PowerSummary.Discharging                               dischrg      quick
BOOL  UPS.PowerSummary.Charging                                  chrg         quick
BOOL  UPS.PowerSummary.ShutdownImminent                          shutdownimm
BOOL  UPS.PowerSummary.ACPresent                                 online_bool  quick
BOOL  UPS.PowerSummary.PresentStatus.Discharging                 dischrg      quick
BOOL  UPS.PowerSummary.PresentStatus.Charging                    chrg         quick
BOOL  UPS.PowerSummary.PresentStatus.ShutdownImminent            shutdownimm
BOOL  UPS.PowerSummary.PresentStatus.ACPresent                   online_bool  quick
BOOL  UPS.PowerSummary.PresentStatus.NeedReplacement             replacebatt  quick
BOOL  UPS.PowerSummary.PresentStatus.BelowRemainingCapacityLimit lowbatt      quick
BOOL  UPS.BELKINStatus.BELKINPowerStatus                         belkin_overload
BOOL  UPS.BELKINStatus.BELKINPowerStatus                         belkin_overheat
BOOL  UPS.BELKINStatus.BELKINPowerStatus                         belkin_commfault
BOOL  UPS.BELKINStatus.BELKINPowerStatus                         belkin_awaiting
BOOL  UPS.BELKINStatus.BELKINPowerStatus                         belkin_online quick
BOOL  UPS.BELKINStatus.BELKINBatteryStatus                       belkin_depleted quick
BOOL  UPS.BELKINStatus.BELKINBatteryStatus                       belkin_replacebatt
BOOL  UPS.BELKINStatus.BELKINBatteryStatus                       belkin_lowbatt quick
test.battery.start.quick  {_K}.BELKINTest                              cmd=1
test.battery.start.deep   {_K}.BELKINTest                              cmd=2
test.battery.stop         {_K}.BELKINTest                              cmd=3
beeper.on                 {_K}.BELKINAudibleAlarmControl               cmd=2
beeper.off                {_K}.BELKINAudibleAlarmControl               cmd=3
beeper.disable            {_K}.BELKINAudibleAlarmControl               cmd=1
beeper.enable             {_K}.BELKINAudibleAlarmControl               cmd=2
beeper.mute               {_K}.BELKINAudibleAlarmControl               cmd=3
load.off                  {_K}.BELKINDelayBeforeShutdown               cmd=1
load.on                   {_K}.BELKINDelayBeforeStartup                cmd=1
load.off.delay            {_K}.BELKINDelayBeforeShutdown               cmd=20
load.on.delay             {_K}.BELKINDelayBeforeStartup                cmd=30
shutdown.stop             {_K}.BELKINDelayBeforeShutdown               cmd=-1
shutdown.reboot           {_K}.BELKINDelayBeforeReboot                 cmd=10
"""


def _bit(mask: int, word: str) -> Conversion:
    def read(value: float, ctx: Context) -> str | None:
        return word if int(value) & mask else f"!{word}"
    return Conversion(read)


def _ac_failure(value: float, ctx: Context) -> str | None:
    """BELKINPowerStatus bit 0 is "AC failure": ``offline`` when set.

    Deliberate difference: NUT's belkin_online_conversion_fun() answers ``!online``, which
    since NUT's status rework (offline must be said explicitly) no longer gives OB for
    this firmware, whose discharging bit no row reads: a power cut would show no OB.
    """
    return "offline" if int(value) & 0x0001 else "online"


def _line_voltage(value: float, ctx: Context) -> str | None:
    """Liebert: a line voltage exponent off by 1e5 or 1e7 (NUT's liebert_line_voltage_fun)."""
    if value < 1:
        if abs(value - 1e-5) < 4 * 1e-5:
            ctx.state["line_mult"] = 1e7
        elif abs(value - 1e-3) < 4 * 1e-3:
            ctx.state["line_mult"] = 1e5
    return f"{value * ctx.state.get('line_mult', 1.0):.1f}"


def _config_voltage(value: float, ctx: Context) -> str | None:
    if value < 1 and abs(value - 1e-7) < 1e-9:
        ctx.state["config_mult"] = 1e8
        ctx.state["line_mult"] = 1e7
    return f"{value * ctx.state.get('config_mult', 1.0):.1f}"


def _upstype(value: float, ctx: Context) -> str | None:
    return {1: "offline", 2: "line-interactive", 3: "simple online", 4: "simple offline",
            5: "simple line-interactive"}.get(int(value) & 0x0F, "online")


CONVERSIONS = {
    "online_bool": _bit(1, "online"),
    "belkin_overload": _bit(0x0010, "overload"),
    "belkin_overheat": _bit(0x0040, "overheat"),
    "belkin_commfault": _bit(0x0080, "commfault"),
    "belkin_awaiting": _bit(0x2000, "awaitingpower"),
    "belkin_online": Conversion(_ac_failure),
    "belkin_lowbatt": _bit(0x0004, "lowbatt"),
    "belkin_depleted": _bit(0x0040, "depleted"),
    "belkin_replacebatt": _bit(0x0080, "replacebatt"),
    "belkin_firmware": Conversion(lambda value, ctx: str(int(value) >> 4)),
    "belkin_upstype": Conversion(_upstype),
    "belkin_sensitivity": Conversion(
        lambda value, ctx: {1: "reduced", 2: "low"}.get(int(value), "normal")),
    "belkin_test": lookup({0: "No test initiated", 1: "Done and passed",
                           2: "Done and warning", 3: "Done and error", 4: "Aborted",
                           5: "In progress"}),
    "liebert_line": Conversion(_line_voltage),
    "liebert_config": Conversion(_config_voltage),
}

SUBDRIVER = Subdriver(
    pages=(0x0086,),
    key="belkin", name="Belkin/Liebert HID 0.23",
    usb_ids=tuple((0x050D, pid) for pid in (0x0980, 0x0900, 0x0910, 0x0912, 0x0551, 0x0750,
                                             0x0751, 0x0375, 0x0F51, 0x1100))
    + tuple((0x10AF, pid) for pid in (0x0000, 0x0001, 0x0002, 0x0004, 0x0008)),
    table=TABLE, usages=USAGES, conversions=CONVERSIONS, vendors=(0x050D, 0x10AF))
