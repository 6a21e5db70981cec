"""Tripp Lite (09ae), and the HP and Delta units built on it: NUT's
``drivers/tripplite-hid.c`` ("TrippLite HID 0.85").

The battery voltage scale differs by product id: x0.1 for the 1xxx/2xxx protocols, x1 for
3xxx/4xxx; SMART1500LCDT (3016, 3024) reports volts x100000 and frequency and current x0.01.
Status flags may sit at Tripp Lite's own usages in page 0x84 (``TLACPresent`` = 0x008400d0,
which the specification puts in page 0x85).  09ae:0001 is not a HID Power Device (NUT's
``tripplite_usb`` driver); 09ae:1330 (SU3000LCD2UHV) has a broken report 0x54 that NUT skips.
"""

from __future__ import annotations

from upsagent.drivers.usbhid.conversions import Context, Conversion
from upsagent.drivers.usbhid.tables import DeviceInfo, Subdriver

TRIPPLITE, HP, DELTA = 0x09AE, 0x03F0, 0x05DD

USAGES = """
    ffff0010 TLCustom  ffff0056 TLDelayBeforeStartup  ffff0057 TLLowVoltageTransferMax
    ffff0058 TLLowVoltageTransferMin  ffff0059 TLHighVoltageTransferMax
    ffff005a TLHighVoltageTransferMin  ffff007a OutletState  ffff007b OutletCount
    ffff007c UPSFirmwareVersion  ffff007d CommunicationProtocolVersion
    ffff007e CommunicationVersion  ffff007f iUPSPartNumber  ffff0080 AutoOnDelay
    ffff0092 TLWatchdog  ffff0095 TLOutletsAvailableMask  ffff0096 TLOutletsStatusMask
    00840044 TLCharging  00840045 TLDischarging  0084004b TLNeedReplacement
    008400d0 TLACPresent
"""

_PS = "UPS.PowerSummary.PresentStatus"
_BS = "UPS.BatterySystem.Battery.PresentStatus"
_PC = "UPS.PowerConverter.PresentStatus"
_O = "UPS.OutletSystem.Outlet"

TABLE = f"""
device.part               UPS.TLCustom.[1].iUPSPartNumber              stringid static
battery.charge            UPS.PowerSummary.RemainingCapacity           %.0f
battery.charge            UPS.BatterySystem.Battery.RemainingCapacity  %.0f
battery.charge.low        UPS.PowerSummary.RemainingCapacityLimit      %.0f rw:5 semi
battery.charge.warning    UPS.PowerSummary.WarningCapacityLimit        %.0f
battery.runtime           UPS.PowerSummary.RunTimeToEmpty              %.0f
battery.voltage.nominal   UPS.BatterySystem.Battery.ConfigVoltage      %.1f static
battery.voltage           UPS.BatterySystem.Battery.Voltage            tl_battvolt
battery.type              UPS.PowerSummary.iDeviceChemistry            tl_chemistry static
battery.temperature       UPS.BatterySystem.Temperature                kelvin
ups.delay.start           {_O}.DelayBeforeStartup                      =30 rw:10
ups.delay.start           {_O}.TLDelayBeforeStartup                    =30 rw:10
ups.delay.start           UPS.TLCustom.[1].TLDelayBeforeStartup        =30 rw:6
ups.timer.start           UPS.TLCustom.[1].DelayBeforeStartup          %.0f quick
ups.delay.shutdown        {_O}.DelayBeforeShutdown                     =20 rw:10
ups.timer.start           {_O}.DelayBeforeStartup                      %.0f quick
ups.timer.start           {_O}.TLDelayBeforeStartup                    %.0f quick
ups.timer.shutdown        {_O}.DelayBeforeShutdown                     %.0f quick
ups.timer.reboot          {_O}.DelayBeforeReboot                       %.0f quick
ups.test.result           UPS.BatterySystem.Test                       test_read
ups.beeper.status         UPS.PowerSummary.AudibleAlarmControl         beeper
ups.power.nominal         UPS.Flow.ConfigApparentPower                 %.0f static
ups.power                 {_O}.ActivePower                             %.1f
ups.power                 UPS.PowerConverter.Output.ActivePower        %.1f
ups.load                  {_O}.PercentLoad                             %.0f
ups.firmware              UPS.TLCustom.[1].UPSFirmwareVersion          %.0f static
ups.watchdog.status       {_O}.TLWatchdog                              %.0f
BOOL  {_PS}.InternalFailure                    commfault
BOOL  {_PS}.ShutdownImminent                   shutdownimm
BOOL  {_PS}.ACPresent                          online       quick
BOOL  {_PS}.BelowRemainingCapacityLimit        lowbatt      quick
BOOL  {_PS}.FullyCharged                       fullycharged quick
BOOL  {_PS}.Charging                           chrg         quick
BOOL  {_PS}.Discharging                        dischrg      quick
BOOL  {_PS}.FullyDischarged                    depleted     quick
BOOL  {_PS}.NeedReplacement                    replacebatt
BOOL  {_PS}.TLACPresent                        online       quick
BOOL  {_PS}.TLDischarging                      dischrg      quick
ups.load.nominal          UPS.Flow.ConfigPercentLoad                   %.0f
BOOL  {_PS}.TLCharging                         chrg         quick
BOOL  {_PS}.TLNeedReplacement                  replacebatt
BOOL  {_PC}.VoltageOutOfRange                  vrange
BOOL  {_PC}.Buck                               trim
BOOL  {_PC}.Boost                              boost
BOOL  {_PC}.Overload                           overload
BOOL  {_PC}.OverTemperature                    overheat
BOOL  {_PC}.InternalFailure                    commfault
BOOL  {_PC}.AwaitingPower                      awaitingpower
BOOL  {_BS}.BelowRemainingCapacityLimit        lowbatt      quick
BOOL  {_BS}.FullyCharged                       fullycharged quick
BOOL  {_BS}.Charging                           chrg         quick
BOOL  {_BS}.Discharging                        dischrg      quick
BOOL  {_BS}.FullyDischarged                    depleted     quick
BOOL  {_BS}.NeedReplacement                    replacebatt
input.voltage.nominal     UPS.PowerSummary.Input.ConfigVoltage         %.0f static
input.voltage             UPS.PowerSummary.Input.Voltage               tl_iovolt
input.voltage             UPS.PowerConverter.Input.Voltage             tl_iovolt
input.frequency           UPS.PowerConverter.Input.Frequency           tl_iofreq
input.transfer.low        UPS.PowerConverter.Output.LowVoltageTransfer %.1f rw:5 semi
input.transfer.low.max    UPS.PowerConverter.Output.TLLowVoltageTransferMax %.0f static
input.transfer.low.min    UPS.PowerConverter.Output.TLLowVoltageTransferMin %.0f static
input.transfer.high       UPS.PowerConverter.Output.HighVoltageTransfer %.1f rw:5 semi
input.transfer.high.max   UPS.PowerConverter.Output.TLHighVoltageTransferMax %.0f static
input.transfer.high.min   UPS.PowerConverter.Output.TLHighVoltageTransferMin %.0f static
output.voltage.nominal    UPS.Flow.ConfigVoltage                       %.0f static
output.voltage            UPS.PowerConverter.Output.Voltage            tl_iovolt
output.voltage            UPS.PowerSummary.Voltage                     tl_iovolt
output.current            UPS.PowerConverter.Output.Current            tl_ioamp
output.frequency.nominal  UPS.Flow.ConfigFrequency                     %.0f static
output.frequency          UPS.PowerConverter.Output.Frequency          tl_iofreq
test.battery.start.quick  UPS.BatterySystem.Test                       cmd=1
test.battery.start.deep   UPS.BatterySystem.Test                       cmd=2
test.battery.stop         UPS.BatterySystem.Test                       cmd=3
load.off.delay            {_O}.DelayBeforeShutdown                     cmd=20
load.on.delay             {_O}.DelayBeforeStartup                      cmd=30
load.on.delay             {_O}.TLDelayBeforeStartup                    cmd=30
shutdown.stop             {_O}.DelayBeforeShutdown                     cmd=-1
shutdown.reboot           {_O}.DelayBeforeReboot                       cmd=10
shutdown.reboot           {_O}.TLWatchdog                              cmd=10
reset.watchdog            {_O}.TLWatchdog                              cmd=60
beeper.on                 UPS.PowerSummary.AudibleAlarmControl         cmd=2
beeper.off                UPS.PowerSummary.AudibleAlarmControl         cmd=3
beeper.disable            UPS.PowerSummary.AudibleAlarmControl         cmd=1
beeper.enable             UPS.PowerSummary.AudibleAlarmControl         cmd=2
beeper.mute               UPS.PowerSummary.AudibleAlarmControl         cmd=3
"""

_TENTH = {0x1003, 0x1007, 0x1008, 0x1009, 0x1010, 0x2005, *range(0x2007, 0x2015)}
_SMART1500LCDT = {0x3016, 0x3024}


def _scales(device: DeviceInfo) -> dict[str, object]:
    """Scale factors by product id (NUT's battery_scale_* hooks)."""
    if device.vendor_id == TRIPPLITE and device.product_id in _SMART1500LCDT:
        return {"battery": 100000.0, "volt": 100000.0, "freq": 0.01, "amp": 0.01}
    battery = 0.1 if device.vendor_id == TRIPPLITE and device.product_id in _TENTH else 1.0
    return {"battery": battery, "volt": 1.0, "freq": 1.0, "amp": 1.0}


def _scaled(key: str) -> Conversion:
    def read(value: float, ctx: Context) -> str | None:
        return f"{float(ctx.state.get(key, 1.0)) * value:.1f}"
    return Conversion(read)


def _chemistry(value: float, ctx: Context) -> str | None:
    if ctx.product_id in (0x1003, 0x2005):
        return "unknown"
    return ctx.string(int(value))


CONVERSIONS = {"tl_battvolt": _scaled("battery"), "tl_iovolt": _scaled("volt"),
               "tl_iofreq": _scaled("freq"), "tl_ioamp": _scaled("amp"),
               "tl_chemistry": Conversion(_chemistry)}

_IDS = tuple((TRIPPLITE, pid) for pid in (
    0x1003, 0x1007, 0x1008, 0x1009, 0x1010, 0x1330, 0x2005, 0x2007, 0x2008, 0x2009,
    0x2010, 0x2011, 0x2012, 0x2013, 0x2014, 0x3008, 0x3009, 0x3010, 0x3011, 0x3012,
    0x3013, 0x3014, 0x3015, 0x3016, 0x3024, 0x4001, 0x4002, 0x4003, 0x4004, 0x4005,
    0x4006, 0x4007, 0x4008)) + tuple((HP, pid) for pid in (
        0x0001, 0x1FE0, 0x1FE1, 0x1FE2, 0x1FE3, 0x1F06, 0x1F08, 0x1F09, 0x1F0A)) + (
    (DELTA, 0xA011), (DELTA, 0xA0A0))

SUBDRIVER = Subdriver(
    pages=(0xFFFF,),
    key="tripplite", name="TrippLite HID 0.85", usb_ids=_IDS, table=TABLE, usages=USAGES,
    conversions=CONVERSIONS, vendors=(TRIPPLITE,),
    claim_hook=lambda d: False if (d.vendor_id, d.product_id) == (TRIPPLITE, 0x0001) else None,
    init_state=_scales)
