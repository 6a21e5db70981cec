"""APC (051d): NUT's ``drivers/apc-hid.c`` ("APC HID 0.101"), rows and quirks as data.

Quirks and the frames that justify them:

* 051d:0003 and 051d:0004 ("5G" Smart-UPS, SMT/SMX) use the interrupt pipe for a
  proprietary protocol: NUT turns it off (``pollonly``).  The Smart-UPS X 750 descriptor
  (tests/data/usbhid/apc-smart-ups-x-750_051d-0003.rdesc.hex) is such a unit.
* The product string packs the firmware: ``Back-UPS 500 FW: 6.5.I USB FW: c1 `` gives
  ups.model ``Back-UPS 500``, ups.firmware `` 6.5.I`` and ups.firmware.aux `` c1 `` (spaces
  kept, as NUT keeps them; the Back-UPS CS 500 dump shows them).
* APCBattReplaceDate (ff860016) is a BCD-like date: 0x070304 is 2004/07/03 (report ``1c 04
  03 07`` of the Back-UPS CS 500, published by NUT as battery.mfr.date 2004/07/03).
* APCStatusFlag (ff860060) is 8 in normal operation (report ``06 00 00 08``): it clears OFF.
* Back-UPS CS / ES 525 need whole-buffer report reads (NUT's ``maxreport``).
* 051d:0002 Back-UPS XS 1400U: Input Voltage / ConfigVoltage logical maxima below the High
  Voltage Transfer maximum are widened (NUT's apc_fix_report_desc).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

from upsagent.drivers.usbhid.conversions import Context, Conversion, lookup
from upsagent.drivers.usbhid.hidparser import ReportDescriptor
from upsagent.drivers.usbhid.tables import DeviceInfo, Subdriver

APC = 0x051D

USAGES = """
    ff860005 APCGeneralCollection  ff860006 APCEnvironment  ff860007 APCProbe1
    ff860008 APCProbe2  ff860016 APCBattReplaceDate  ff860019 APCBattCapBeforeStartup
    ff860042 APC_UPS_FirmwareRevision  ff860052 APCLineFailCause  ff860060 APCStatusFlag
    ff860061 APCSensitivity  ff860072 APCPanelTest  ff860076 APCShutdownAfterDelay
    ff860079 APC_USB_FirmwareRevision  ff86007c APCDelayBeforeReboot
    ff86007d APCDelayBeforeShutdown  ff86007e APCDelayBeforeStartup
    00850058 BUPHibernate  00860012 BUPBattCapBeforeStartup  00860076 BUPDelayBeforeStartup
    00860010 BUPSelfTest
"""

TABLE = """
battery.charge            UPS.PowerSummary.RemainingCapacity           %.0f
battery.charge.low        UPS.PowerSummary.RemainingCapacityLimit      %.0f rw:10 semi
battery.charge.warning    UPS.PowerSummary.WarningCapacityLimit        %.0f
battery.runtime           UPS.Battery.RunTimeToEmpty                   %.0f
battery.runtime           UPS.PowerSummary.RunTimeToEmpty              %.0f
battery.runtime.low       UPS.Battery.RemainingTimeLimit               %.0f rw:10 semi
battery.runtime.low       UPS.PowerSummary.RemainingTimeLimit          %.0f rw:10 semi
battery.voltage           UPS.Battery.Voltage                          %.1f
battery.voltage           UPS.PowerSummary.Voltage                     %.1f
battery.voltage.nominal   UPS.Battery.ConfigVoltage                    %.1f
battery.voltage.nominal   UPS.PowerSummary.ConfigVoltage               %.1f
battery.temperature       UPS.Battery.Temperature                      kelvin
battery.type              UPS.PowerSummary.iDeviceChemistry            stringid
battery.mfr.date          UPS.Battery.ManufacturerDate                 date rw:10 semi
battery.mfr.date          UPS.PowerSummary.APCBattReplaceDate          apc_date
battery.date              UPS.Battery.APCBattReplaceDate               apc_date
ups.load                  UPS.Output.PercentLoad                       %.1f
ups.load                  UPS.PowerConverter.PercentLoad               %.0f
ups.delay.start           UPS.PowerSummary.DelayBeforeStartup          =30 rw:10
ups.delay.shutdown        UPS.PowerSummary.DelayBeforeShutdown         =20 rw:10
ups.timer.start           UPS.PowerSummary.DelayBeforeStartup          %.0f quick
ups.timer.shutdown        UPS.PowerSummary.DelayBeforeShutdown         %.0f quick
ups.timer.reboot          UPS.PowerSummary.DelayBeforeReboot           %.0f quick
ups.delay.start           UPS.Output.DelayBeforeStartup                =30 rw:10
ups.delay.shutdown        UPS.Output.DelayBeforeShutdown               =20 rw:10
ups.timer.start           UPS.Output.DelayBeforeStartup                %.0f quick
ups.timer.shutdown        UPS.Output.DelayBeforeShutdown               %.0f quick
ups.timer.reboot          UPS.Output.DelayBeforeReboot                 %.0f quick
ups.delay.start           UPS.APCGeneralCollection.APCDelayBeforeStartup   =30 rw:10
ups.delay.shutdown        UPS.APCGeneralCollection.APCDelayBeforeShutdown  =20 rw:10
ups.timer.start           UPS.APCGeneralCollection.APCDelayBeforeStartup   %.0f quick
ups.timer.shutdown        UPS.APCGeneralCollection.APCDelayBeforeShutdown  %.0f quick
ups.timer.reboot          UPS.APCGeneralCollection.APCDelayBeforeReboot    %.0f quick
ups.test.result           UPS.Battery.Test                             test_read
ups.beeper.status         UPS.PowerSummary.AudibleAlarmControl         beeper
ups.mfr.date              UPS.ManufacturerDate                         date
ups.mfr.date              UPS.PowerSummary.ManufacturerDate            date
ups.realpower.nominal     UPS.PowerConverter.ConfigActivePower         %.0f
ups.realpower.nominal     UPS.Output.ConfigActivePower                 %.0f
BOOL  UPS.PowerSummary.PresentStatus.ACPresent                   online       quick
BOOL  UPS.PowerSummary.PresentStatus.Discharging                 dischrg      quick
BOOL  UPS.PowerSummary.PresentStatus.Charging                    chrg         quick
BOOL  UPS.PowerSummary.PresentStatus.ShutdownImminent            shutdownimm
BOOL  UPS.PowerSummary.PresentStatus.BelowRemainingCapacityLimit lowbatt      quick
BOOL  UPS.PowerSummary.PresentStatus.Overload                    overload
BOOL  UPS.PowerSummary.PresentStatus.NeedReplacement             replacebatt
BOOL  UPS.PowerSummary.PresentStatus.RemainingTimeLimitExpired   timelimitexp
BOOL  UPS.PowerSummary.PresentStatus.BatteryPresent              nobattery
BOOL  UPS.PowerSummary.Charging                                  chrg         quick
BOOL  UPS.PowerSummary.Discharging                               dischrg      quick
BOOL  UPS.PowerSummary.ACPresent                                 online       quick
BOOL  UPS.PowerSummary.BelowRemainingCapacityLimit               lowbatt      quick
BOOL  UPS.PowerSummary.ShutdownImminent                          shutdownimm
BOOL  UPS.PowerSummary.APCStatusFlag                             apc_statusflag quick
BOOL  UPS.Input.APCLineFailCause                                 apc_vrange
BOOL  UPS.Input.APCLineFailCause                                 apc_frange
input.voltage             UPS.Input.Voltage                            %.1f
input.voltage.nominal     UPS.Input.ConfigVoltage                      %.0f
input.transfer.low        UPS.Output.LowVoltageTransfer                %.0f rw:10 semi
input.transfer.high       UPS.Output.HighVoltageTransfer               %.0f rw:10 semi
input.transfer.low        UPS.Input.LowVoltageTransfer                 %.0f rw:10 semi
input.transfer.high       UPS.Input.HighVoltageTransfer                %.0f rw:10 semi
input.sensitivity         UPS.Input.APCSensitivity                     apc_sensitivity rw:10 semi
output.voltage            UPS.Output.Voltage                           %.1f
output.voltage.nominal    UPS.Output.ConfigVoltage                     %.1f
output.current            UPS.Output.Current                           %.2f
output.frequency          UPS.Output.Frequency                         %.1f
ambient.temperature       UPS.APCEnvironment.APCProbe1.Temperature     kelvin
ambient.humidity          UPS.APCEnvironment.APCProbe1.Humidity        %.1f
test.battery.start.quick  UPS.BatterySystem.Battery.Test               cmd=1
test.battery.start.quick  UPS.Battery.Test                             cmd=1
test.battery.start.deep   UPS.BatterySystem.Battery.Test               cmd=2
test.battery.start.deep   UPS.Battery.Test                             cmd=2
test.battery.stop         UPS.BatterySystem.Battery.Test               cmd=3
test.battery.stop         UPS.Battery.Test                             cmd=3
test.panel.start          UPS.APCPanelTest                             cmd=1
test.panel.stop           UPS.APCPanelTest                             cmd=0
test.panel.start          UPS.PowerSummary.APCPanelTest                cmd=1
test.panel.stop           UPS.PowerSummary.APCPanelTest                cmd=0
load.off.delay            UPS.PowerSummary.DelayBeforeShutdown         cmd=20
load.on.delay             UPS.PowerSummary.DelayBeforeStartup          cmd=30
shutdown.stop             UPS.PowerSummary.DelayBeforeShutdown         cmd=-1
shutdown.reboot           UPS.PowerSummary.DelayBeforeReboot           cmd=10
load.off.delay            UPS.Output.DelayBeforeShutdown               cmd=20
load.on.delay             UPS.Output.DelayBeforeStartup                cmd=30
shutdown.stop             UPS.Output.DelayBeforeShutdown               cmd=-1
shutdown.reboot           UPS.Output.DelayBeforeReboot                 cmd=10
load.off.delay            UPS.APCGeneralCollection.APCDelayBeforeShutdown  cmd=20
load.on.delay             UPS.APCGeneralCollection.APCDelayBeforeStartup   cmd=30
shutdown.stop             UPS.APCGeneralCollection.APCDelayBeforeShutdown  cmd=-1
shutdown.reboot           UPS.APCGeneralCollection.APCDelayBeforeReboot    cmd=10
shutdown.return           UPS.Output.APCDelayBeforeReboot              cmd=1
beeper.on                 UPS.PowerSummary.AudibleAlarmControl         cmd=2
beeper.off                UPS.PowerSummary.AudibleAlarmControl         cmd=3
beeper.enable             UPS.PowerSummary.AudibleAlarmControl         cmd=2
beeper.disable            UPS.PowerSummary.AudibleAlarmControl         cmd=1
beeper.mute               UPS.PowerSummary.AudibleAlarmControl         cmd=3
"""


def _apc_date(value: float, ctx: Context) -> str | None:
    """APC's hexadecimal-as-decimal date: 0x102202 is 2002/10/22."""
    number = int(value)
    if number == 0:
        return "not set"
    year = (number & 0xF) + 10 * ((number >> 4) & 0xF)
    month = ((number >> 16) & 0xF) + 10 * ((number >> 20) & 0xF)
    day = ((number >> 8) & 0xF) + 10 * ((number >> 12) & 0xF)
    year += 1900 if year >= 70 else 2000
    return f"{year:04d}/{month:02d}/{day:02d}"


def _apc_date_back(text: str, ctx: Context) -> float | None:
    try:
        year, month, day = (int(part) for part in text.split("/"))
    except ValueError:
        return None
    if year >= 2070 or month > 12 or day > 31:
        return 0.0
    year %= 100
    return float(((year // 10 & 0xF) << 4) + year % 10 + ((month // 10 & 0xF) << 20)
                 + ((month % 10) << 16) + ((day // 10 & 0xF) << 12) + ((day % 10) << 8))


CONVERSIONS = {
    "apc_date": Conversion(_apc_date, _apc_date_back),
    "apc_statusflag": lookup({8: "!off", 16: "!off", 0: "off"}),
    "apc_vrange": lookup({1: "vrange", 2: "vrange", 4: "vrange", 8: "vrange", 9: "vrange",
                          0: "!vrange"}),
    "apc_frange": lookup({7: "frange", 0: "!frange"}),
    "apc_sensitivity": lookup({0: "low", 1: "medium", 2: "high"}),
}

#: product strings whose firmware overflows on reads of the declared size (NUT)
_MAX_REPORT = ("Back-UPS ES 525", "Back-UPS CS")


def _quirks(device: DeviceInfo) -> set[str]:
    quirks = set()
    if device.product_id in (0x0003, 0x0004):
        quirks.add("pollonly")
    if device.product and device.product.startswith(_MAX_REPORT):
        quirks.add("maxreport")
    return quirks


def _model(state: Any, reports: Mapping[int, bytes]) -> tuple[str | None, dict[str, str]]:
    """Split ``<model> FW:<firmware> USB FW:<usb firmware>`` as NUT's apc_format_model()."""
    device: DeviceInfo = state.device
    product = device.product if device.product is not None else "unknown"
    extra: dict[str, str] = {}
    head, sep, firmware = product.partition("FW:")
    if not sep:
        return product, extra
    model = head[:-1] if head else head
    before, sep2, aux = firmware.partition("USB FW:")
    if sep2:
        extra["ups.firmware.aux"] = aux
        firmware = before[:-1] if before else before
    extra["ups.firmware"] = firmware
    return model, extra


def _fix(descriptor: ReportDescriptor, device: DeviceInfo) -> ReportDescriptor:
    """Back-UPS XS 1400U (051d:0002) input voltage ranges (NUT's apc_fix_report_desc)."""
    if (device.vendor_id, device.product_id) != (APC, 0x0002):
        return descriptor
    fields = list(descriptor.fields)

    def by_id(report_id: int, usage: int) -> int | None:
        for index, item in enumerate(fields):
            if item.report_id == report_id and item.path and item.path[-1] == usage:
                return index
        return None

    hvt = by_id(0x33, 0x00840054)
    if hvt is None:
        return descriptor
    hvt_max = fields[hvt].logical_max
    volt = by_id(0x31, 0x00840030)
    if volt is not None and hvt_max > fields[volt].logical_max:
        for index, item in enumerate(fields):
            if item.report_id == 0x31 and item.path == fields[volt].path:
                fields[index] = replace(item, logical_min=0, logical_max=hvt_max * 2)
    config = by_id(0x30, 0x00840040)
    if config is not None and hvt_max > fields[config].logical_max:
        for index, item in enumerate(fields):
            if item.report_id == 0x30 and item.path == fields[config].path:
                fields[index] = replace(item, logical_max=255)
    return replace(descriptor, fields=tuple(fields))


SUBDRIVER = Subdriver(
    pages=(0xFF86,),
    key="apc", name="APC HID 0.101",
    usb_ids=((APC, 0x0000), (APC, 0x0002), (APC, 0x0003), (APC, 0x0004), (APC, 0x0005)),
    table=TABLE, usages=USAGES, conversions=CONVERSIONS, mfr_default="APC",
    vendors=(APC,), quirks=_quirks, model_hook=_model, fix_hook=_fix)
