"""Phoenixtec / Liebert PSA (06da:ffff): NUT's ``drivers/liebert-hid.c``
("Phoenixtec/Liebert HID 0.41").

Its transfer points sit at unnamed Eaton-page usages (ffff0057, ffff0058); frequencies are
reported with two decimals.  (The other Liebert units, vendor 10af, are Belkin's firmware:
see ``belkin.py``.)
"""

from __future__ import annotations

from upsagent.drivers.usbhid.tables import Subdriver

TABLE = """
battery.voltage           UPS.PowerSummary.Voltage                     %.2f
battery.charge            UPS.PowerSummary.RemainingCapacity           %.0f
experimental.battery.capacity UPS.PowerSummary.FullChargeCapacity      %.0f
experimental.battery.capacity.nominal UPS.PowerSummary.DesignCapacity  %.0f
battery.runtime           UPS.PowerSummary.RunTimeToEmpty              %.0f
battery.type              UPS.PowerSummary.iDeviceChemistry            stringid
ups.load                  UPS.PowerSummary.PercentLoad                 %.0f
ups.power.nominal         UPS.Flow.[4].ConfigApparentPower             %.0f semi
ups.test.result           UPS.BatterySystem.Battery.Test               test_read
ups.beeper.status         UPS.PowerSummary.AudibleAlarmControl         beeper semi
output.voltage            UPS.PowerConverter.Output.Voltage            %.1f
output.voltage.nominal    UPS.Flow.[4].ConfigVoltage                   %.0f semi
output.frequency          UPS.PowerConverter.Output.Frequency          %.2f
output.frequency.nominal  UPS.Flow.[4].ConfigFrequency                 %.0f semi
output.transfer.high      UPS.PowerConverter.Output.HighVoltageTransfer %.1f semi
output.transfer.low       UPS.PowerConverter.Output.LowVoltageTransfer %.1f semi
input.voltage             UPS.PowerConverter.Input.[1].Voltage         %.1f
input.frequency           UPS.PowerConverter.Input.[1].Frequency       %.2f
input.transfer.low        UPS.PowerConverter.Output.ffff0057           %.0f semi
input.transfer.high       UPS.PowerConverter.Output.ffff0058           %.0f semi
input.frequency.transfer.low  UPS.PowerConverter.Output.ffff00f9       %.0f semi
input.frequency.transfer.high UPS.PowerConverter.Output.ffff00f8       %.0f semi
BOOL  UPS.PowerSummary.PresentStatus.ACPresent                   online       quick
BOOL  UPS.PowerSummary.PresentStatus.BelowRemainingCapacityLimit lowbatt      quick
BOOL  UPS.PowerSummary.PresentStatus.Charging                    chrg         quick
BOOL  UPS.PowerSummary.PresentStatus.Discharging                 dischrg      quick
BOOL  UPS.PowerSummary.PresentStatus.Overload                    overload     quick
BOOL  UPS.PowerSummary.PresentStatus.Good                        off          quick
BOOL  UPS.PowerSummary.PresentStatus.InternalFailure             commfault    quick
BOOL  UPS.PowerSummary.PresentStatus.ShutdownImminent            shutdownimm  quick
BOOL  UPS.PowerConverter.Input.[1].PresentStatus.Buck            trim
BOOL  UPS.PowerConverter.Input.[1].PresentStatus.Boost           boost
ups.delay.start           UPS.PowerSummary.DelayBeforeStartup          =30 rw:10
ups.delay.shutdown        UPS.PowerSummary.DelayBeforeShutdown         =20 rw:10
test.battery.start        UPS.BatterySystem.Battery.Test               cmd=1
load.off.delay            UPS.PowerSummary.DelayBeforeShutdown         cmd=20
load.on.delay             UPS.PowerSummary.DelayBeforeStartup          cmd=30
shutdown.stop             UPS.PowerSummary.DelayBeforeShutdown         cmd=-1
beeper.toggle             UPS.PowerSummary.AudibleAlarmControl         cmd=1
"""

SUBDRIVER = Subdriver(key="liebert", name="Phoenixtec/Liebert HID 0.41",
                      usb_ids=((0x06DA, 0xFFFF),), table=TABLE, mfr_default="Liebert",
                      vendors=(0x06DA,))
