"""The generic HID Power Device table: standard usages at their standard places.

NUT has no generic table (its "explore" subdriver maps nothing); a device no vendor table
claims is then unsupported.  We serve such a device with the paths the HID Power Device
Class itself defines and the vendor tables agree on (``UPS.PowerSummary.*``, ``UPS.Input``,
``UPS.Output``, ``UPS.PowerConverter``, ``UPS.Battery``/``UPS.BatterySystem``), so a new
brand that follows the specification works out of the box.  The same table serves the
smaller NUT subdrivers' devices (Arduino, Delta, EcoFlow, Ever, iDowell, Legrand, openUPS,
Powervar, Salicru): their ids are claimed here, their own tables are not ported yet.
"""

from __future__ import annotations

from upsagent.drivers.usbhid.tables import DeviceInfo, Subdriver

TABLE = """
battery.charge            UPS.PowerSummary.RemainingCapacity                %.0f
battery.charge            UPS.BatterySystem.Battery.RemainingCapacity       %.0f
battery.charge            UPS.Battery.RemainingCapacity                     %.0f
battery.charge.low        UPS.PowerSummary.RemainingCapacityLimit           %.0f rw:10 semi
battery.charge.warning    UPS.PowerSummary.WarningCapacityLimit             %.0f
battery.runtime           UPS.PowerSummary.RunTimeToEmpty                   %.0f
battery.runtime           UPS.Battery.RunTimeToEmpty                        %.0f
battery.runtime.low       UPS.PowerSummary.RemainingTimeLimit               %.0f rw:10 semi
battery.runtime.low       UPS.Battery.RemainingTimeLimit                    %.0f rw:10 semi
battery.voltage           UPS.PowerSummary.Voltage                          %.1f
battery.voltage           UPS.BatterySystem.Battery.Voltage                 %.1f
battery.voltage           UPS.Battery.Voltage                               %.1f
battery.voltage.nominal   UPS.PowerSummary.ConfigVoltage                    %.1f
battery.voltage.nominal   UPS.BatterySystem.Battery.ConfigVoltage           %.1f
battery.voltage.nominal   UPS.Battery.ConfigVoltage                         %.1f
battery.temperature       UPS.BatterySystem.Battery.Temperature             kelvin
battery.temperature       UPS.Battery.Temperature                           kelvin
battery.type              UPS.PowerSummary.iDeviceChemistry                 stringid
battery.mfr.date          UPS.Battery.ManufacturerDate                      date
battery.mfr.date          UPS.BatterySystem.Battery.ManufacturerDate        date
ups.mfr.date              UPS.PowerSummary.ManufacturerDate                 date
ups.load                  UPS.PowerSummary.PercentLoad                      %.0f
ups.load                  UPS.Output.PercentLoad                            %.0f
ups.load                  UPS.PowerConverter.Output.PercentLoad             %.0f
ups.load                  UPS.PowerConverter.PercentLoad                    %.0f
ups.load                  UPS.OutletSystem.Outlet.PercentLoad               %.0f
ups.power                 UPS.Output.ApparentPower                          %.0f
ups.power                 UPS.PowerConverter.Output.ApparentPower           %.0f
ups.realpower             UPS.Output.ActivePower                            %.0f
ups.realpower             UPS.PowerConverter.Output.ActivePower             %.0f
ups.power.nominal         UPS.Output.ConfigApparentPower                    %.0f
ups.power.nominal         UPS.Flow.ConfigApparentPower                      %.0f
ups.realpower.nominal     UPS.Output.ConfigActivePower                      %.0f
ups.realpower.nominal     UPS.PowerConverter.ConfigActivePower              %.0f
ups.realpower.nominal     UPS.Flow.ConfigActivePower                        %.0f
ups.temperature           UPS.PowerSummary.Temperature                      kelvin
ups.beeper.status         UPS.PowerSummary.AudibleAlarmControl              beeper
ups.beeper.status         UPS.AudibleAlarmControl                           beeper
ups.test.result           UPS.BatterySystem.Battery.Test                    test_read
ups.test.result           UPS.Battery.Test                                  test_read
ups.test.result           UPS.BatterySystem.Test                            test_read
ups.test.result           UPS.Output.Test                                   test_read
ups.delay.start           UPS.PowerSummary.DelayBeforeStartup               =30 rw:10
ups.delay.shutdown        UPS.PowerSummary.DelayBeforeShutdown              =20 rw:10
ups.timer.start           UPS.PowerSummary.DelayBeforeStartup               %.0f quick
ups.timer.shutdown        UPS.PowerSummary.DelayBeforeShutdown              %.0f quick
ups.timer.reboot          UPS.PowerSummary.DelayBeforeReboot                %.0f quick
ups.delay.start           UPS.Output.DelayBeforeStartup                     =30 rw:10
ups.delay.shutdown        UPS.Output.DelayBeforeShutdown                    =20 rw:10
ups.timer.start           UPS.Output.DelayBeforeStartup                     %.0f quick
ups.timer.shutdown        UPS.Output.DelayBeforeShutdown                    %.0f quick
ups.timer.reboot          UPS.Output.DelayBeforeReboot                      %.0f quick
input.voltage             UPS.Input.Voltage                                 %.1f
input.voltage             UPS.PowerConverter.Input.Voltage                  %.1f
input.voltage             UPS.PowerConverter.Input.[1].Voltage              %.1f
input.voltage.nominal     UPS.Input.ConfigVoltage                           %.0f
input.voltage.nominal     UPS.Flow.[1].ConfigVoltage                        %.0f
input.frequency           UPS.Input.Frequency                               %.1f
input.frequency           UPS.PowerConverter.Input.Frequency                %.1f
input.frequency           UPS.PowerConverter.Input.[1].Frequency            %.1f
input.transfer.low        UPS.Input.LowVoltageTransfer                      %.0f rw:10 semi
input.transfer.high       UPS.Input.HighVoltageTransfer                     %.0f rw:10 semi
input.transfer.low        UPS.Output.LowVoltageTransfer                     %.0f rw:10 semi
input.transfer.high       UPS.Output.HighVoltageTransfer                    %.0f rw:10 semi
input.transfer.low        UPS.PowerConverter.Output.LowVoltageTransfer      %.0f rw:10 semi
input.transfer.high       UPS.PowerConverter.Output.HighVoltageTransfer     %.0f rw:10 semi
output.voltage            UPS.Output.Voltage                                %.1f
output.voltage            UPS.PowerConverter.Output.Voltage                 %.1f
output.voltage.nominal    UPS.Output.ConfigVoltage                          %.0f
output.voltage.nominal    UPS.Flow.[4].ConfigVoltage                        %.0f
output.frequency          UPS.Output.Frequency                              %.1f
output.frequency          UPS.PowerConverter.Output.Frequency               %.1f
output.current            UPS.Output.Current                                %.2f
output.current            UPS.PowerConverter.Output.Current                 %.2f
BOOL  UPS.PowerSummary.PresentStatus.ACPresent                   online       quick
BOOL  UPS.PowerSummary.PresentStatus.Discharging                 dischrg      quick
BOOL  UPS.PowerSummary.PresentStatus.Charging                    chrg         quick
BOOL  UPS.PowerSummary.PresentStatus.BelowRemainingCapacityLimit lowbatt      quick
BOOL  UPS.PowerSummary.PresentStatus.RemainingTimeLimitExpired   timelimitexp quick
BOOL  UPS.PowerSummary.PresentStatus.ShutdownImminent            shutdownimm  quick
BOOL  UPS.PowerSummary.PresentStatus.FullyCharged                fullycharged quick
BOOL  UPS.PowerSummary.PresentStatus.FullyDischarged             depleted     quick
BOOL  UPS.PowerSummary.PresentStatus.NeedReplacement             replacebatt
BOOL  UPS.PowerSummary.PresentStatus.BatteryPresent              nobattery
BOOL  UPS.PowerSummary.PresentStatus.Overload                    overload
BOOL  UPS.PowerSummary.PresentStatus.OverTemperature             overheat
BOOL  UPS.PowerSummary.PresentStatus.InternalFailure             commfault
BOOL  UPS.PowerSummary.PresentStatus.Boost                       boost
BOOL  UPS.PowerSummary.PresentStatus.Buck                        trim
BOOL  UPS.PowerSummary.ACPresent                                 online       quick
BOOL  UPS.PowerSummary.Discharging                               dischrg      quick
BOOL  UPS.PowerSummary.Charging                                  chrg         quick
BOOL  UPS.PowerSummary.BelowRemainingCapacityLimit               lowbatt      quick
BOOL  UPS.PowerSummary.ShutdownImminent                          shutdownimm  quick
BOOL  UPS.PresentStatus.ACPresent                                online       quick
BOOL  UPS.PresentStatus.Discharging                              dischrg      quick
BOOL  UPS.PresentStatus.Charging                                 chrg         quick
BOOL  UPS.PresentStatus.BelowRemainingCapacityLimit              lowbatt      quick
BOOL  UPS.PresentStatus.ShutdownImminent                         shutdownimm  quick
BOOL  UPS.PresentStatus.NeedReplacement                          replacebatt
BOOL  UPS.PresentStatus.Overload                                 overload
BOOL  UPS.PresentStatus.Boost                                    boost
BOOL  UPS.PresentStatus.Buck                                     trim
BOOL  UPS.Output.Boost                                           boost
BOOL  UPS.Output.Overload                                        overload
BOOL  UPS.PowerConverter.Input.[1].PresentStatus.Boost           boost
BOOL  UPS.PowerConverter.Input.[1].PresentStatus.Buck            trim
BOOL  UPS.BatterySystem.Battery.PresentStatus.Charging           chrg         quick
BOOL  UPS.BatterySystem.Battery.PresentStatus.Discharging        dischrg      quick
BOOL  UPS.BatterySystem.Battery.PresentStatus.NeedReplacement    replacebatt
test.battery.start.quick  UPS.BatterySystem.Battery.Test            cmd=1
test.battery.start.quick  UPS.Battery.Test                          cmd=1
test.battery.start.quick  UPS.BatterySystem.Test                    cmd=1
test.battery.start.quick  UPS.Output.Test                           cmd=1
test.battery.start.deep   UPS.BatterySystem.Battery.Test            cmd=2
test.battery.start.deep   UPS.Battery.Test                          cmd=2
test.battery.start.deep   UPS.BatterySystem.Test                    cmd=2
test.battery.start.deep   UPS.Output.Test                           cmd=2
test.battery.stop         UPS.BatterySystem.Battery.Test            cmd=3
test.battery.stop         UPS.Battery.Test                          cmd=3
test.battery.stop         UPS.BatterySystem.Test                    cmd=3
test.battery.stop         UPS.Output.Test                           cmd=3
load.off.delay            UPS.PowerSummary.DelayBeforeShutdown      cmd=20
load.on.delay             UPS.PowerSummary.DelayBeforeStartup       cmd=30
shutdown.stop             UPS.PowerSummary.DelayBeforeShutdown      cmd=-1
shutdown.reboot           UPS.PowerSummary.DelayBeforeReboot        cmd=10
load.off.delay            UPS.Output.DelayBeforeShutdown            cmd=20
load.on.delay             UPS.Output.DelayBeforeStartup             cmd=30
shutdown.stop             UPS.Output.DelayBeforeShutdown            cmd=-1
shutdown.reboot           UPS.Output.DelayBeforeReboot              cmd=10
beeper.enable             UPS.PowerSummary.AudibleAlarmControl      cmd=2
beeper.disable            UPS.PowerSummary.AudibleAlarmControl      cmd=1
beeper.mute               UPS.PowerSummary.AudibleAlarmControl      cmd=3
"""

#: devices of NUT's smaller subdrivers, served by this table (vendor, product)
USB_IDS = (
    (0x2341, 0x0036), (0x2341, 0x8036), (0x2A03, 0x0036), (0x2A03, 0x8036),  # Arduino
    (0x2A03, 0x0040), (0x2A03, 0x8040),
    (0x05DD, 0x041B),                                                         # Delta
    (0x3746, 0xFFFF),                                                         # EcoFlow
    (0x0483, 0xA113), (0x2E51, 0xFFFF), (0x2E51, 0x0000),                     # Ever
    (0x075D, 0x0300),                                                         # iDowell
    (0x1CB0, 0x0032), (0x1CB0, 0x0038),                                       # Legrand
    (0x04D8, 0xD004), (0x04D8, 0xD005),                                       # openUPS
    (0x4234, 0x0002),                                                         # Powervar
    (0x2E66, 0x0101), (0x2E66, 0x0201), (0x2E66, 0x0202), (0x2E66, 0x0203),   # Salicru
    (0x2E66, 0x0300), (0x2E66, 0x0302),
)


def _quirks(device: DeviceInfo) -> set[str]:
    """Legrand Keor: NUT disables the interrupt pipe."""
    return {"pollonly"} if device.vendor_id == 0x1CB0 else set()


SUBDRIVER = Subdriver(key="generic", name="Generic HID (upsagent) 0.1", usb_ids=USB_IDS,
                      table=TABLE, quirks=_quirks)
