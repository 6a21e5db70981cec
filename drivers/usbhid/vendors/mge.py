"""Eaton / MGE and their OEMs (Santak, Dell, HP, IBM, AEG, Kstar, Powerware): NUT's
``drivers/mge-hid.c`` ("MGE HID 1.60"), the single-phase rows.

The richest descriptors: the power path is ``UPS.PowerConverter.Input[n].PresentStatus.Used``
with n = 1 mains (ignored while the output is off), 2 automatic bypass, 3 battery, 4 manual
bypass; outlet groups are ``UPS.OutletSystem.Outlet[n]``.  Quirks kept from NUT:

* **ABM** (Advanced Battery Management) cycles the charger through charging / floating /
  resting: when ``UPS.BatterySystem.Charger.ABMEnable`` is 1, CHRG/DISCHRG come from the
  charger mode (``Charger.Mode`` or ``Charger.Status``) and battery.charger.status is
  published; PresentStatus.Charging/Discharging are ignored.
* Without ABM, a Charging flag that stays set at 100 % (float charge, Eaton 5E) is not CHRG:
  the Santak TG-BOX 850 reports ``01 25 00 00`` (ACPresent, Charging, Good) at 100 %
  charge, which NUT publishes as ``OL``.
* battery.voltage(.nominal) from PowerSummary only for the Evolution, Pulsar M, 5P and 9E
  series (others report nonsense there); the series is known from iProduct + iModel.
* ups.realpower, when the UPS has no ActivePower: load x nominal VA x power factor (0.8).

Not ported: three-phase (L1..L3) rows, ECO/ESS and bypass switching, the third outlet.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

from upsagent.drivers.usbhid.conversions import Context, Conversion, lookup
from upsagent.drivers.usbhid.tables import DeviceInfo, Subdriver

USAGES = """
page ffff
    0002 Environment  0003 Statistic  0004 StatisticSystem  0005 USB  0010 Phase
    0012 Chopper  0014 Inverter  0016 Rectifier  0018 LCMSystem  001a LCMAlarm
    001c HistorySystem  001e Event  0020 CircuitBreaker  0021 TransferForbidden
    0022 OverallAlarm  0025 PowerModule  0027 PowerSource  0028 CurrentPowerSource
    002d ConfigurationFailure  0040 SwitchType  0041 ConverterType  0043 AutomaticRestart
    0044 ForcedReboot  0045 TestPeriod  0046 EnergySaving  0047 StartOnBattery
    0049 DeepDischargeProtection  004a ShortCircuit  004b ExtendedVoltageMode
    004c SensitivityMode  004d RemainingCapacityLimitSetting  004e ExtendedFrequencyMode
    0050 LowVoltageBoostTransfer  0051 HighVoltageBoostTransfer  0052 LowVoltageBuckTransfer
    0053 HighVoltageBuckTransfer  0054 OverloadTransferEnable
    0055 OutOfToleranceTransferEnable  0056 ForcedTransferEnable
    0057 LowVoltageBypassTransfer  0058 HighVoltageBypassTransfer
    0059 FrequencyRangeBypassTransfer  005a LowVoltageEcoTransfer
    005b HighVoltageEcoTransfer  005c FrequencyRangeEcoTransfer  005d ShutdownTimer
    005e StartupTimer  005f RestartLevel  0068 EmergencyStop  0069 PowerFactor
    006b ChargerType  0071 WiringFaultDetection  0074 VoltageTooHigh  0075 VoltageTooLow
    0077 FanFailure  0078 WiringFault  0079 Floating  007d Threshold  007e OverThreshold
    0085 ECOControl  0086 Efficiency  0087 ABMEnable  0089 AutomaticStart  0090 Count
    0091 Timer  0092 Interval  0093 TimerExpired  0094 Mode  0095 Country  0096 State
    0097 Time  0098 Code  0099 DataValid  009c HysteresisVoltageTransfer  00ba iDesignator
    00e0 COPIBridge  00e1 Gateway  00e5 System  00e9 Status  00f0 iModel  00f1 iVersion
    00f2 iTechnicalLevel  00f3 iPartNumber  00f4 iReferenceNumber  00f5 iGang
"""

_IN = "UPS.PowerConverter.Input"
_OUT = "UPS.PowerConverter.Output"
_OUTLET = "UPS.OutletSystem.Outlet"

TABLE = f"""
device.country            UPS.PowerSummary.Country                     mge_country str:20 static
battery.charge            UPS.PowerSummary.RemainingCapacity           %.0f
battery.charge.low        UPS.PowerSummary.RemainingCapacityLimitSetting %.0f rw:5 semi
battery.charge.low        UPS.PowerSummary.RemainingCapacityLimit      %.0f static
battery.charge.restart    UPS.PowerSummary.RestartLevel                %.0f rw:3 semi
battery.capacity          UPS.BatterySystem.Battery.DesignCapacity     mge_capacity static
battery.runtime           UPS.PowerSummary.RunTimeToEmpty              %.0f
battery.runtime.low       UPS.PowerSummary.RemainingTimeLimit          %.0f rw:10
battery.temperature       UPS.BatterySystem.Battery.Temperature        kelvin
battery.type              UPS.PowerSummary.iDeviceChemistry            stringid static
battery.voltage           UPS.BatterySystem.Voltage                    %.1f
battery.voltage           UPS.PowerSummary.Voltage                     mge_battvolt
battery.voltage.nominal   UPS.BatterySystem.ConfigVoltage              %.0f static
battery.voltage.nominal   UPS.PowerSummary.ConfigVoltage               mge_battnominal static
battery.protection        UPS.BatterySystem.Battery.DeepDischargeProtection yes_no rw:5 semi
battery.energysave        {_IN}.[3].EnergySaving                       yes_no rw:5 semi
battery.charger.abm.status UPS.BatterySystem.Charger.ABMEnable         abm_enabled quick
battery.charger.mode.status UPS.BatterySystem.Charger.Mode             abm_path_mode quick
battery.charger.type.status UPS.BatterySystem.Charger.Status           abm_path_status quick
battery.charger.status    UPS.BatterySystem.Charger.Mode               abm_status quick
battery.charger.status    UPS.BatterySystem.Charger.Status             abm_status quick
battery.charger.type      UPS.BatterySystem.Charger.ChargerType        charger_type quick
ups.efficiency            {_OUT}.Efficiency                            %.0f
ups.firmware              UPS.PowerSummary.iVersion                    stringid static
ups.load                  UPS.PowerSummary.PercentLoad                 %.0f
ups.load.high             UPS.Flow.[4].ConfigPercentLoad               %.0f rw:5 semi
ups.delay.start           UPS.PowerSummary.DelayBeforeStartup          =30 rw:10
ups.delay.shutdown        UPS.PowerSummary.DelayBeforeShutdown         =20 rw:10
ups.timer.start           UPS.PowerSummary.DelayBeforeStartup          %.0f quick
ups.timer.shutdown        UPS.PowerSummary.DelayBeforeShutdown         %.0f quick
ups.timer.reboot          UPS.PowerSummary.DelayBeforeReboot           %.0f quick
ups.test.result           UPS.BatterySystem.Battery.Test               test_read
ups.test.interval         UPS.BatterySystem.Battery.TestPeriod         %.0f rw:8 semi
ups.beeper.status         UPS.BatterySystem.Battery.AudibleAlarmControl beeper semi
ups.beeper.status         UPS.PowerSummary.AudibleAlarmControl         beeper semi
ups.beeper.status         UPS.AudibleAlarmControl                      beeper semi
ups.temperature           UPS.PowerSummary.Temperature                 kelvin
ups.power                 {_OUT}.ApparentPower                         %.0f
ups.power.nominal         UPS.Flow.[4].ConfigApparentPower             %.0f static
ups.realpower             {_OUT}.ActivePower                           %.0f
ups.realpower             UPS.Flow.[4].ConfigApparentPower             mge_realpower
ups.realpower.nominal     UPS.Flow.[4].ConfigActivePower               %.0f static
ups.start.auto            {_IN}.[1].AutomaticRestart                   yes_no rw:5 semi
ups.start.battery         {_IN}.[3].StartOnBattery                     yes_no rw:5 semi
ups.start.reboot          {_OUT}.ForcedReboot                          yes_no rw:5 semi
ups.shutdown              UPS.PowerSummary.PresentStatus.Switchable    enable_disable rw:10 semi enum
ups.date                  UPS.PowerSummary.Time                        mge_date
ups.time                  UPS.PowerSummary.Time                        mge_time
ups.type                  UPS.PowerConverter.ConverterType             mge_upstype static
BOOL  UPS.PowerSummary.PresentStatus.ACPresent                   online       quick
BOOL  {_IN}.[3].PresentStatus.Used                               mge_onbatt
BOOL  UPS.PowerSummary.PresentStatus.Discharging                 eaton_dischrg quick
BOOL  UPS.PowerSummary.PresentStatus.Charging                    eaton_chrg   quick
BOOL  UPS.BatterySystem.Charger.Mode                             abm_chrg     quick
BOOL  UPS.BatterySystem.Charger.Status                           abm_chrg     quick
BOOL  UPS.PowerSummary.PresentStatus.BelowRemainingCapacityLimit lowbatt      quick
BOOL  {_OUT}.Overload.[1].PresentStatus.OverThreshold            overload
BOOL  {_OUT}.Overload.[2].PresentStatus.OverThreshold            overload
BOOL  UPS.PowerSummary.PresentStatus.Overload                    overload
BOOL  UPS.PowerSummary.PresentStatus.NeedReplacement             replacebatt
BOOL  UPS.LCMSystem.LCMAlarm.[2].PresentStatus.TimerExpired      replacebatt
BOOL  {_IN}.[1].PresentStatus.Buck                               trim
BOOL  {_IN}.[1].PresentStatus.Boost                              boost
BOOL  {_IN}.[1].PresentStatus.VoltageOutOfRange                  vrange
BOOL  {_IN}.[1].PresentStatus.FrequencyOutOfRange                frange
BOOL  UPS.PowerSummary.PresentStatus.Good                        off
BOOL  {_IN}.[1].PresentStatus.Used                               eaton_online
BOOL  {_IN}.[2].PresentStatus.Used                               bypassauto
BOOL  {_IN}.[4].PresentStatus.Used                               bypassman
BOOL  {_IN}.[5].PresentStatus.Used                               ecomode
BOOL  UPS.PowerSummary.PresentStatus.FanFailure                  fanfail
BOOL  UPS.BatterySystem.Battery.PresentStatus.Present            nobattery
BOOL  UPS.BatterySystem.Charger.PresentStatus.InternalFailure    chargerfail
BOOL  UPS.BatterySystem.Charger.PresentStatus.VoltageTooHigh     battvolthi
BOOL  {_IN}.[1].PresentStatus.VoltageTooHigh                     battvolthi
BOOL  UPS.BatterySystem.Battery.PresentStatus.VoltageTooHigh     battvolthi
BOOL  UPS.BatterySystem.Charger.PresentStatus.VoltageTooLow      battvoltlo
BOOL  {_IN}.[1].PresentStatus.VoltageTooLow                      mge_onbatt
BOOL  UPS.PowerSummary.PresentStatus.InternalFailure             commfault
BOOL  UPS.PowerSummary.PresentStatus.OverTemperature             overheat
BOOL  UPS.PowerSummary.PresentStatus.ShutdownImminent            shutdownimm
ups.alarm UPS.PowerSummary.PresentStatus.EmergencyStop           alarm_estop
ups.alarm {_IN}.[1].PresentStatus.WiringFault                    alarm_wiring
ups.alarm UPS.PowerSummary.PresentStatus.ConfigurationFailure    alarm_config
ups.alarm UPS.PowerConverter.Inverter.PresentStatus.VoltageTooHigh alarm_invhi
ups.alarm UPS.PowerConverter.Inverter.PresentStatus.VoltageTooLow  alarm_invlo
ups.alarm {_OUT}.PresentStatus.ShortCircuit                      alarm_short
input.voltage             {_IN}.[1].Voltage                            %.1f
input.voltage.nominal     UPS.Flow.[1].ConfigVoltage                   %.0f static
input.current             {_IN}.[1].Current                            %.2f
input.current.nominal     UPS.Flow.[1].ConfigCurrent                   %.2f static
input.frequency           {_IN}.[1].Frequency                          %.1f
input.frequency.nominal   UPS.Flow.[1].ConfigFrequency                 %.0f static
input.transfer.low        {_OUT}.LowVoltageTransfer                    %.0f rw:5 semi
input.transfer.boost.low  {_OUT}.LowVoltageBoostTransfer               %.0f rw:5 semi
input.transfer.boost.high {_OUT}.HighVoltageBoostTransfer              %.0f rw:5 semi
input.transfer.trim.low   {_OUT}.LowVoltageBuckTransfer                %.0f rw:5 semi
input.transfer.high       {_OUT}.HighVoltageTransfer                   %.0f rw:5 semi
input.transfer.trim.high  {_OUT}.HighVoltageBuckTransfer               %.0f rw:5 semi
input.sensitivity         {_OUT}.SensitivityMode                       mge_sensitivity rw:10 semi
input.voltage.extended    {_OUT}.ExtendedVoltageMode                   yes_no rw:5 semi
input.frequency.extended  {_OUT}.ExtendedFrequencyMode                 yes_no rw:5 semi
input.bypass.voltage      {_IN}.[2].Voltage                            %.1f quick
input.bypass.frequency    {_IN}.[2].Frequency                          %.1f quick
output.voltage            {_OUT}.Voltage                               %.1f
output.voltage.nominal    UPS.Flow.[4].ConfigVoltage                   mge_nominal_out rw:3 semi enum
output.current            {_OUT}.Current                               %.2f
output.current.nominal    UPS.Flow.[4].ConfigCurrent                   %.2f
output.frequency          {_OUT}.Frequency                             %.1f
output.frequency.nominal  UPS.Flow.[4].ConfigFrequency                 %.0f static
output.powerfactor        {_OUT}.PowerFactor                           mge_powerfactor
outlet.id                 {_OUTLET}.[1].OutletID                       %.0f static
outlet.desc               {_OUTLET}.[1].OutletID                       =Main\\x20Outlet rw:20
outlet.switchable         {_OUTLET}.[1].PresentStatus.Switchable       yes_no static
outlet.power              {_OUTLET}.[1].ApparentPower                  %.0f
outlet.realpower          {_OUTLET}.[1].ActivePower                    %.0f
outlet.current            {_OUTLET}.[1].Current                        %.2f
outlet.powerfactor        {_OUTLET}.[1].PowerFactor                    %.2f
outlet.1.id               {_OUTLET}.[2].OutletID                       %.0f static
outlet.1.desc             {_OUTLET}.[2].OutletID                       =PowerShare\\x20Outlet\\x201 rw:20
outlet.1.switchable       {_OUTLET}.[2].PresentStatus.Switchable       yes_no static
outlet.1.status           {_OUTLET}.[2].PresentStatus.SwitchOn/Off     on_off
outlet.1.status           UPS.PowerSummary.PresentStatus.ACPresent     on_off
outlet.1.autoswitch.charge.low {_OUTLET}.[2].RemainingCapacityLimit    %.0f rw:3 semi
outlet.1.delay.shutdown   {_OUTLET}.[2].ShutdownTimer                  %.0f rw:5 semi
outlet.1.delay.start      {_OUTLET}.[2].StartupTimer                   %.0f rw:5 semi
outlet.1.power            {_OUTLET}.[2].ApparentPower                  %.0f
outlet.1.realpower        {_OUTLET}.[2].ActivePower                    %.0f
outlet.1.current          {_OUTLET}.[2].Current                        %.2f
outlet.1.powerfactor      {_OUTLET}.[2].PowerFactor                    %.2f
outlet.2.id               {_OUTLET}.[3].OutletID                       %.0f static
outlet.2.desc             {_OUTLET}.[3].OutletID                       =PowerShare\\x20Outlet\\x202 rw:20
outlet.2.switchable       {_OUTLET}.[3].PresentStatus.Switchable       yes_no
outlet.2.status           {_OUTLET}.[3].PresentStatus.SwitchOn/Off     on_off
outlet.2.autoswitch.charge.low {_OUTLET}.[3].RemainingCapacityLimit    %.0f rw:3 semi
outlet.2.delay.shutdown   {_OUTLET}.[3].ShutdownTimer                  %.0f rw:5 semi
outlet.2.delay.start      {_OUTLET}.[3].StartupTimer                   %.0f rw:5 semi
outlet.2.power            {_OUTLET}.[3].ApparentPower                  %.0f
outlet.2.realpower        {_OUTLET}.[3].ActivePower                    %.0f
outlet.2.current          {_OUTLET}.[3].Current                        %.2f
outlet.2.powerfactor      {_OUTLET}.[3].PowerFactor                    %.2f
test.battery.start.quick  UPS.BatterySystem.Battery.Test               cmd=1
test.battery.start.deep   UPS.BatterySystem.Battery.Test               cmd=2
test.battery.stop         UPS.BatterySystem.Battery.Test               cmd=3
load.off.delay            UPS.PowerSummary.DelayBeforeShutdown         cmd=20
load.on.delay             UPS.PowerSummary.DelayBeforeStartup          cmd=30
shutdown.stop             UPS.PowerSummary.DelayBeforeShutdown         cmd=-1
shutdown.reboot           UPS.PowerSummary.DelayBeforeReboot           cmd=10
beeper.off                UPS.PowerSummary.AudibleAlarmControl         cmd=1
beeper.on                 UPS.PowerSummary.AudibleAlarmControl         cmd=2
beeper.mute               UPS.BatterySystem.Battery.AudibleAlarmControl cmd=3
beeper.mute               UPS.PowerSummary.AudibleAlarmControl         cmd=3
beeper.disable            UPS.BatterySystem.Battery.AudibleAlarmControl cmd=1
beeper.disable            UPS.PowerSummary.AudibleAlarmControl         cmd=1
beeper.enable             UPS.BatterySystem.Battery.AudibleAlarmControl cmd=2
beeper.enable             UPS.PowerSummary.AudibleAlarmControl         cmd=2
beeper.disable            UPS.AudibleAlarmControl                      cmd=1
beeper.enable             UPS.AudibleAlarmControl                      cmd=2
outlet.1.load.off         {_OUTLET}.[2].DelayBeforeShutdown            cmd=0
outlet.1.load.on          {_OUTLET}.[2].DelayBeforeStartup             cmd=0
outlet.2.load.off         {_OUTLET}.[3].DelayBeforeShutdown            cmd=0
outlet.2.load.on          {_OUTLET}.[3].DelayBeforeStartup             cmd=0
"""

# model series (NUT's models_type_t): only the high byte matters for the rules below
OFFLINE, PEGASUS, S3, DEFAULT, EVOLUTION, PULSAR_M, EATON_5P, EATON_9E = \
    0x000, 0x100, 0x110, 0x200, 0x300, 0x400, 0x500, 0x900
EVOLUTION_650 = 0x301

#: (iProduct, iModel) -> (series, name); the rest is named "<iProduct> <iModel>"
MODELS: dict[tuple[str, str], tuple[int, str | None]] = {
    **{("ELLIPSE", size): (OFFLINE, f"ellipse {size}") for size in ("300", "500", "650",
                                                                      "800", "1200")},
    **{("ELLIPSE", size): (OFFLINE, f"Ellipse {size}") for size in ("600", "750", "1000",
                                                                      "1500")},
    **{("ellipse", f"PR{size}"): (OFFLINE, f"ellipse premium {size}")
       for size in ("500", "650", "800", "1200")},
    **{("Ellipse MAX", size): (OFFLINE, None) for size in ("600", "850", "1100", "1500")},
    **{("PROTECTIONCENTER", size): (OFFLINE, f"Protection Center {size}")
       for size in ("420", "500", "675")},
    **{("Protection Station", size): (PEGASUS, None) for size in ("500", "650", "800")},
    **{("Ellipse ECO", size): (PEGASUS, None) for size in ("650", "800", "1200", "1600")},
    ("3S", "450"): (OFFLINE, None), ("3S", "550"): (OFFLINE, None),
    ("3S", "700"): (S3, None), ("3S", "750"): (S3, None),
    **{("Evolution", size): (DEFAULT, f"Pulsar Evolution {size}")
       for size in ("500", "800", "1100", "1500", "2200", "3000")},
    ("Evolution", "3000XL"): (DEFAULT, "Pulsar Evolution 3000 XL"),
    ("Evolution", "650"): (EVOLUTION_650, None),
    **{("Evolution", size): (EVOLUTION + 2, None) for size in (
        "850", "1150", "S 1250", "1550", "S 1750", "2000", "S 2500", "S 3000")},
    **{("Eaton 5P", size): (EATON_5P, f"5P {size}") for size in ("650", "850", "1150",
                                                                   "1550")},
    **{("Eaton 5PX", size): (EATON_5P, None) for size in ("1500", "2200", "3000")},
    **{("Eaton 5SC", size): (EATON_5P, None) for size in ("500", "750", "1000", "1500",
                                                            "2200", "3000")},
    **{("Eaton 9E", size): (EATON_9E, f"9E{size}") for size in (
        "1000", "1000i", "1000iau", "1000ir", "2000", "2000i", "2000iau", "2000ir",
        "3000", "3000i", "3000iau", "3000ir", "3000ixl", "3000ixlau")},
    **{("Eaton 9SX", size): (EATON_9E, f"9SX{size}") for size in (
        "700i", "1000i", "1000im", "1500i", "2000i", "3000i", "3000im", "1000ir",
        "1500ir", "2000ir", "3000ir")},
}


def _series(ctx: Context) -> int:
    return int(ctx.state.get("mge_type", DEFAULT)) & 0xFF00


def _battvolt(value: float, ctx: Context) -> str | None:
    return f"{value:.1f}" if _series(ctx) in (EVOLUTION, PULSAR_M, EATON_5P, EATON_9E) \
        else None


def _battnominal(value: float, ctx: Context) -> str | None:
    series = _series(ctx)
    if series == EVOLUTION and ctx.state.get("mge_type") == EVOLUTION_650:
        value = 12.0
    elif series not in (EVOLUTION, PULSAR_M, EATON_5P, EATON_9E):
        return None
    return f"{value:.0f}"


def _abm_enabled(value: float, ctx: Context) -> str | None:
    ctx.state["abm"] = {0: "disabled", 1: "enabled"}.get(int(value), "unknown")
    return None


def _abm_path(path: str) -> Conversion:
    def read(value: float, ctx: Context) -> str | None:
        if ctx.state.get("abm") != "enabled":
            ctx.state["abm_path"] = None
        elif ctx.state.get("abm_path") is None:
            ctx.state["abm_path"] = path
        return None
    return Conversion(read)


_ABM_TEXT = {"status": {1: "charging", 2: "floating", 3: "resting", 4: "discharging",
                        6: "off"},
             "mode": {1: "charging", 2: "discharging", 3: "floating", 4: "resting", 6: "off"}}
_ABM_WORD = {"status": {1: "chrg", 2: "chrg", 4: "dischrg"},
             "mode": {1: "chrg", 3: "chrg", 2: "dischrg"}}


def _abm_status(value: float, ctx: Context) -> str | None:
    if ctx.state.get("abm") != "enabled":
        ctx.values.pop("battery.charger.status", None)
        return None
    path = "status" if ctx.state.get("abm_path") == "status" else "mode"
    return _ABM_TEXT[path].get(int(value))


def _abm_chrg(value: float, ctx: Context) -> str | None:
    if ctx.state.get("abm") != "enabled":
        return None
    path = "status" if ctx.state.get("abm_path") == "status" else "mode"
    return _ABM_WORD[path].get(int(value))


def _eaton_dischrg(value: float, ctx: Context) -> str | None:
    if ctx.state.get("abm") == "enabled":
        return "!dischrg"
    return "dischrg" if value == 1 else "!dischrg"


def _eaton_chrg(value: float, ctx: Context) -> str | None:
    if ctx.state.get("abm") == "enabled" or value != 1:
        return "!chrg"
    try:
        full = float(ctx.values.get("battery.charge", "")) >= 100.0
    except ValueError:
        full = False
    return "!chrg" if full else "chrg"


def _realpower(value: float, ctx: Context) -> str | None:
    load, nominal = ctx.values.get("ups.load"), ctx.values.get("ups.power.nominal")
    if load is None or nominal is None:
        return None
    try:
        factor = float(ctx.values.get("output.powerfactor", "0.80"))
        real = int(float(load)) * 0.01 * int(float(nominal)) * factor
    except ValueError:
        return None
    return f"{int(real + 0.5) if real >= 0 else -int(-real + 0.5):d}"


def _nominal_out(value: float, ctx: Context) -> str | None:
    """NUT's nominal_output_voltage_fun(): the values settable for this model's range."""
    nominal = ctx.state.setdefault("nominal_out", int(value))
    number, series = int(value), _series(ctx)
    low, high208, high230 = {100, 110, 120, 127}, {200, 208}, {220, 230, 240}
    if nominal in low and number not in low:
        return None
    if nominal in high208 and not (number in high208 or (number in high230
                                                           and series >= DEFAULT)):
        return None
    if nominal in high230:
        if number in high208 and series < DEFAULT:
            return None
        if number not in high208 | high230:
            return None
    return f"{value:.0f}"


def _clock(fmt: str) -> Conversion:
    def read(value: float, ctx: Context) -> str | None:
        try:
            return time.strftime(fmt, time.localtime(value))
        except (OverflowError, OSError, ValueError):
            return None
    return Conversion(read)


def _alarm(text: str) -> Conversion:
    return lookup({1: text})


CONVERSIONS = {
    "mge_country": Conversion(lambda v, ctx: ctx.state.__setitem__("country", int(v))),
    "mge_capacity": Conversion(lambda value, ctx: f"{value / 3600:.2f}"),
    "mge_battvolt": Conversion(_battvolt),
    "mge_battnominal": Conversion(_battnominal),
    "abm_enabled": Conversion(_abm_enabled),
    "abm_path_mode": _abm_path("mode"),
    "abm_path_status": _abm_path("status"),
    "abm_status": Conversion(_abm_status),
    "abm_chrg": Conversion(_abm_chrg),
    "eaton_dischrg": Conversion(_eaton_dischrg),
    "eaton_chrg": Conversion(_eaton_chrg),
    "eaton_online": Conversion(lambda value, ctx: None if "off" in ctx.status
                               else ("!online" if value == 0 else "online")),
    "mge_onbatt": lookup({1: "!online", 0: "online"}),
    "charger_type": lookup({0: "None", 1: "Extended (CLA)", 2: "Large extension",
                            3: "Extra large extension (XL)", 4: "ABM",
                            5: "Constant Charge (CC)"}),
    "mge_realpower": Conversion(_realpower),
    "mge_nominal_out": Conversion(
        _nominal_out, lambda text, ctx: float(text) if text.isdigit() else None,
        tuple((v, str(v)) for v in (200, 208, 220, 230, 240, 100, 110, 120, 127))),
    "mge_powerfactor": Conversion(lambda value, ctx: f"{value / 100:.2f}"),
    "mge_upstype": lookup({1: "offline / line interactive", 2: "online",
                           3: "online - unitary/parallel",
                           4: "online - parallel with hot standy",
                           5: "online - hot standby redundancy"}),
    "mge_sensitivity": lookup({0: "normal", 1: "high", 2: "low"}),
    "enable_disable": lookup({0: "disabled", 1: "enabled"}),
    "mge_date": _clock("%Y/%m/%d"),
    "mge_time": _clock("%H:%M:%S"),
    "alarm_estop": _alarm("Emergency stop!"),
    "alarm_wiring": _alarm("Wiring fault!"),
    "alarm_config": _alarm("Fatal EEPROM fault!"),
    "alarm_invhi": _alarm("Inverter AC voltage too high!"),
    "alarm_invlo": _alarm("Inverter AC voltage too low!"),
    "alarm_short": _alarm("Output short circuit!"),
}


def _model(state: Any, reports: Mapping[int, bytes]) -> tuple[str | None, dict[str, str]]:
    """NUT's mge_format_model(): iProduct + iModel (or the VA rating), named by MODELS."""
    device: DeviceInfo = state.device
    if device.vendor_id == 0x047C:                     # Dell: already a full name
        return device.product, {}
    product = device.product if device.product is not None else "unknown"
    model = ""
    index = state.read_path("UPS.PowerSummary.iModel", reports)
    if index is not None:
        model = state.string(int(index)) or ""
    if not model:
        rating = state.read_path("UPS.Flow.[4].ConfigApparentPower", reports)
        if rating is not None:
            model = str(int(rating))
    if not model:
        return device.product, {}
    series, name = MODELS.get((product, model), (DEFAULT, None))
    state.state["mge_type"] = series
    return name or f"{product} {model}", {}


def _claim(device: DeviceInfo) -> bool | None:
    """06da:ffff only for AEG units (else Liebert's); Kstar only when it says so."""
    text = f"{device.manufacturer or ''} {device.product or ''}"
    if device.vendor_id == 0x06DA:
        return "AEG" in text
    if device.vendor_id == 0x09D6:
        return "KSTAR" in (device.manufacturer or "")
    return None


SUBDRIVER = Subdriver(
    pages=(0xFFFF,),
    key="mge", name="MGE HID 1.60",
    usb_ids=((0x0463, 0x0001), (0x0463, 0xFFFF), (0x047C, 0xFFFF), (0x0592, 0x0004),
             (0x03F0, 0x1FE5), (0x03F0, 0x1FE6), (0x03F0, 0x1FE7), (0x03F0, 0x1FE8),
             (0x2B2D, 0xFFFF), (0x06DA, 0xFFFF), (0x04B3, 0x0001), (0x09D6, 0x0001)),
    table=TABLE, usages=USAGES, conversions=CONVERSIONS, mfr_default="Eaton",
    vendors=(0x0463,), claim_hook=_claim, model_hook=_model)
