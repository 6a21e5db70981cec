"""Powercom (0d9f): NUT's ``drivers/powercom-hid.c`` ("PowerCOM HID 0.75").

Quirks: DelayBeforeShutdown and DelayBeforeStartup are written byte-swapped, the startup
delay in minutes, the shutdown delay as minutes:seconds with "restart when power returns"
(0x0040) or "stay off" (0x0080) flags; ``powercom_sdcmd_byte_order_fallback`` swaps to the
legacy order and ``powercom_sdcmd_discrete_delay`` uses the Raptor / Smart King Pro table
of discrete delays (12 s ... 10 min).  Older units publish their data on page 2
(``PowercomUPS...``) with status bits packed in two bytes; their voltages are in 4 V steps.
Not ported: NUT's battery voltage read by a raw control request (``powercom_hack_voltage``).
"""

from __future__ import annotations

from upsagent.drivers.usbhid.conversions import Context, Conversion, lookup
from upsagent.drivers.usbhid.tables import Subdriver

USAGES = """
page 0002
    0004 PowercomUPS  0010 PowercomBatterySystem  0016 PowercomPowerConverter
    001a PowercomInput  001c PowercomOutput  0030 PowercomVoltage  0032 PowercomFrequency
    0035 PowercomPercentLoad  0036 PowercomTemperature  0056 PowercomDelayBeforeStartup
    0057 PowercomDelayBeforeShutdown  0058 PowercomTest  0068 PowercomShutdownRequested
    0081 PowercomInternalChargeController  0082 PowercomPrimaryBatterySupport
    0083 PowercomDesignCapacity  0084 PowercomSpecificationInfo
    0085 PowercomManufacturerDate  0086 PowercomSerialNumber  0087 PowercomManufacturerName
    0084002f POWERCOM1  ff860060 POWERCOM2  ff860080 POWERCOM3
    00ff0056 PCMDelayBeforeStartup  00ff0057 PCMDelayBeforeShutdown
"""

_P = "PowercomUPS.PowercomPowerConverter"
_PS = "UPS.PowerSummary.PresentStatus"

TABLE = f"""
BOOL  {_PS}.ACPresent                       online
BOOL  {_PS}.BatteryPresent                  nobattery
BOOL  {_PS}.BelowRemainingCapacityLimit     lowbatt
BOOL  {_PS}.Charging                        chrg
BOOL  {_PS}.CommunicationLost               commfault
BOOL  {_PS}.Discharging                     dischrg
BOOL  {_PS}.NeedReplacement                 replacebatt
BOOL  {_PS}.Overload                        overload
BOOL  {_PS}.RemainingTimeLimitExpired       timelimitexp
BOOL  {_PS}.ShutdownImminent                shutdownimm
BOOL  UPS.PresentStatus.ACPresent           online
BOOL  UPS.PresentStatus.BatteryPresent      nobattery
BOOL  UPS.PresentStatus.BelowRemainingCapacityLimit lowbatt
BOOL  UPS.PresentStatus.Boost               boost
BOOL  UPS.PresentStatus.Buck                trim
BOOL  UPS.PresentStatus.Charging            chrg
BOOL  UPS.PresentStatus.CommunicationLost   commfault
BOOL  UPS.PresentStatus.Discharging         dischrg
BOOL  UPS.PresentStatus.NeedReplacement     replacebatt
BOOL  UPS.PresentStatus.Overload            overload
BOOL  UPS.PresentStatus.RemainingTimeLimitExpired timelimitexp
BOOL  UPS.PresentStatus.ShutdownImminent    shutdownimm
battery.charge            UPS.PowerSummary.RemainingCapacity           %.0f
battery.charge            UPS.Battery.RemainingCapacity                %.0f
battery.charge.low        UPS.PowerSummary.RemainingCapacityLimit      %.0f
battery.charge.warning    UPS.PowerSummary.WarningCapacityLimit        %.0f
battery.runtime           UPS.PowerSummary.RunTimeToEmpty              %.0f
battery.mfr.date          UPS.Battery.ManufacturerDate                 date static
battery.type              UPS.PowerSummary.iDeviceChemistry            stringid static
ups.beeper.status         UPS.PowerSummary.AudibleAlarmControl         powercom_beeper
ups.beeper.status         UPS.AudibleAlarmControl                      powercom_beeper
ups.load                  UPS.Output.PercentLoad                       %.0f
ups.date                  UPS.PowerSummary.ManufacturerDate            date static
ups.test.result           UPS.Battery.Test                             test_read
ups.delay.start           UPS.PowerSummary.DelayBeforeStartup          =60 rw:8
ups.timer.start           UPS.PowerSummary.DelayBeforeStartup          powercom_startup
ups.delay.shutdown        UPS.PowerSummary.DelayBeforeShutdown         =20 rw:8
ups.timer.shutdown        UPS.PowerSummary.DelayBeforeShutdown         powercom_shutdown quick
ups.delay.shutdown        UPS.PowerSummary.PCMDelayBeforeShutdown      =20 rw:8
ups.timer.shutdown        UPS.PowerSummary.PCMDelayBeforeShutdown      powercom_shutdown quick
input.voltage             UPS.Input.Voltage                            %.1f
input.voltage.nominal     UPS.Input.ConfigVoltage                      %.0f static
input.frequency           UPS.Input.Frequency                          %.1f
output.voltage            UPS.Output.Voltage                           %.1f
output.voltage.nominal    UPS.Output.ConfigVoltage                     %.0f static
output.frequency          UPS.Output.Frequency                         %.1f
beeper.toggle             UPS.PowerSummary.AudibleAlarmControl         cmd=1
beeper.enable             UPS.PowerSummary.AudibleAlarmControl         cmd=1
beeper.disable            UPS.PowerSummary.AudibleAlarmControl         cmd=0
test.battery.start.quick  UPS.Battery.Test                             cmd=1
load.on.delay             UPS.PowerSummary.DelayBeforeStartup          cmd via:powercom_startup
shutdown.return           UPS.PowerSummary.DelayBeforeShutdown         cmd via:powercom_shutdown
shutdown.stayoff          UPS.PowerSummary.DelayBeforeShutdown         cmd via:powercom_stayoff
load.on                   UPS.PowerSummary.PCMDelayBeforeStartup       cmd=0 via:powercom_startup
load.off                  UPS.PowerSummary.PCMDelayBeforeShutdown      cmd=0 via:powercom_stayoff
shutdown.return           UPS.PowerSummary.PCMDelayBeforeShutdown      cmd via:powercom_shutdown
shutdown.stayoff          UPS.PowerSummary.PCMDelayBeforeShutdown      cmd via:powercom_stayoff
ups.serial                PowercomUPS.PowercomSerialNumber             stringid
ups.mfr                   PowercomUPS.PowercomManufacturerName         stringid
ups.mfr.date              PowercomUPS.PowercomManufacturerDate         date
battery.temperature       PowercomUPS.PowercomBatterySystem.PowercomTemperature %.0f
battery.temperature       UPS.Battery.Temperature                      %.1f
battery.charge            PowercomUPS.PowercomBatterySystem.PowercomVoltage %.0f
input.frequency           {_P}.PowercomInput.PowercomFrequency         %.0f
input.voltage             {_P}.PowercomInput.PowercomVoltage           powercom_voltage
output.voltage            {_P}.PowercomOutput.PowercomVoltage          powercom_voltage
ups.load                  {_P}.PowercomOutput.PowercomPercentLoad      %.0f
BOOL  {_P}.PowercomOutput.PowercomInternalChargeController  pc_fanfail     quick
BOOL  {_P}.PowercomOutput.PowercomInternalChargeController  pc_replacebatt quick
BOOL  {_P}.PowercomOutput.PowercomInternalChargeController  pc_cal         quick
BOOL  {_P}.PowercomOutput.PowercomInternalChargeController  pc_shutdownimm quick
BOOL  {_P}.PowercomOutput.PowercomPrimaryBatterySupport     pc_online      quick
BOOL  {_P}.PowercomOutput.PowercomPrimaryBatterySupport     pc_lowbatt     quick
BOOL  {_P}.PowercomOutput.PowercomPrimaryBatterySupport     pc_trim        quick
BOOL  {_P}.PowercomOutput.PowercomPrimaryBatterySupport     pc_boost       quick
BOOL  {_P}.PowercomOutput.PowercomPrimaryBatterySupport     pc_overload    quick
output.frequency          {_P}.PowercomOutput.PowercomFrequency        %.0f
ups.test.result           {_P}.PowercomTest                            test_read
ups.delay.shutdown        {_P}.PowercomDelayBeforeShutdown             %.0f
ups.delay.start           {_P}.PowercomDelayBeforeStartup              %.0f
load.off                  {_P}.PowercomDelayBeforeShutdown             cmd=0
"""


def _fallback(ctx: Context) -> bool:
    return "powercom_sdcmd_byte_order_fallback" in ctx.flags


def _discrete(ctx: Context) -> bool:
    return "powercom_sdcmd_discrete_delay" in ctx.flags


def _delay(text: str, ctx: Context, option: str, variable: str, default: int) -> int:
    for candidate in (text, ctx.options.get(option), ctx.values.get(variable)):
        if candidate:
            try:
                return int(candidate)
            except ValueError:
                return 0
    return default


def _startup_read(value: float, ctx: Context) -> str | None:
    number = int(value) & 0xFFFF
    return str(60 * (((number & 0x00FF) << 8) + (number >> 8)))


def _startup_write(text: str, ctx: Context) -> float | None:
    minutes = _delay(text, ctx, "ondelay", "ups.delay.start", 120) // 60
    if minutes < 0:
        return 0.0
    if _discrete(ctx):
        return float(minutes)
    minutes &= 0xFFFF
    return float(((minutes << 8) & 0xFFFF) + (minutes >> 8))


def _shutdown_read(value: float, ctx: Context) -> str | None:
    number = int(value) & 0xFFFF
    if _fallback(ctx):
        return str(60 * (number & 0x00FF) + (number >> 8))
    return str(60 * (number >> 8) + (number & 0x00FF))


_DISCRETE = (12, 18, 24, 30, 36, 42, 48, 54, 60, 120, 180, 240, 300, 360, 420, 480, 540)


def _shutdown_code(text: str, ctx: Context, stay_off: bool) -> float | None:
    seconds = _delay(text, ctx, "offdelay", "ups.delay.shutdown", 60)
    if seconds < 0 or seconds > 0xFFFF:
        return 0.0
    if _discrete(ctx) and not stay_off:
        return float(next((n for n, limit in enumerate(_DISCRETE, 1) if seconds <= limit), 18))
    seconds = seconds or 1                      # 0 would set the longest delay
    if _fallback(ctx):
        code = ((seconds % 60) << 8) + seconds // 60
        return float(code | (0x8000 if stay_off else 0x4000))
    code = ((seconds // 60) << 8) + seconds % 60
    return float(code | (0x0080 if stay_off else 0x0040))


def _bits(mask: int, word: str, equal: int | None = None) -> Conversion:
    def read(value: float, ctx: Context) -> str | None:
        bits = int(value) & mask
        on = (bits == equal) if equal is not None else bool(bits)
        return word if on else f"!{word}"
    return Conversion(read)


_ac_bit = Conversion(lambda value, ctx: "offline" if int(value) & 0x01 else "online")

CONVERSIONS = {
    "powercom_startup": Conversion(_startup_read, _startup_write),
    "powercom_shutdown": Conversion(_shutdown_read,
                                    lambda text, ctx: _shutdown_code(text, ctx, False)),
    "powercom_stayoff": Conversion(lambda value, ctx: None,
                                   lambda text, ctx: _shutdown_code(text, ctx, True)),
    "powercom_beeper": lookup({1: "enabled", 2: "disabled"}),
    "powercom_voltage": Conversion(lambda value, ctx: f"{value * 4:.0f}"),
    "pc_fanfail": _bits(0x01, "fanfail"),
    "pc_replacebatt": _bits(0x02, "replacebatt"),
    "pc_cal": _bits(0x04, "cal"),
    "pc_shutdownimm": _bits(0x10, "shutdownimm"),
    # bit 0 set is "on battery": ``offline`` (NUT says ``!online``, which no longer makes
    # OB on its own since NUT's status rework; see belkin.py)
    "pc_online": _ac_bit,
    "pc_lowbatt": _bits(0x02, "lowbatt"),
    "pc_trim": _bits(0x18, "trim", equal=0x08),
    "pc_boost": _bits(0x18, "boost", equal=0x18),
    "pc_overload": _bits(0x20, "overload"),
}

SUBDRIVER = Subdriver(
    pages=(0x0002,),
    key="powercom", name="PowerCOM HID 0.75",
    usb_ids=tuple((0x0D9F, pid) for pid in (0x00A2, 0x00A3, 0x00A4, 0x00A5, 0x00A6, 0x0004,
                                             0x0001)),
    table=TABLE, usages=USAGES, conversions=CONVERSIONS, mfr_default="PowerCOM",
    vendors=(0x0D9F,), claim_hook=lambda d: False if (d.vendor_id, d.product_id)
    == (0x0D9F, 0x0002) else None)
