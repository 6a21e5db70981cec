"""CyberPower (0764) and Cyber Energy (0483:a430): NUT's ``drivers/cps-hid.c``.

Quirks (NUT's, with the reports NUT's issues recorded):

* 0764:0501 may report the battery voltage 1.5 times too high: when battery.voltage /
  battery.voltage.nominal > 1.4 the readings are scaled by 2/3 (NUT issue #1120: 36.0 V
  shown for a 24 V pack).  The same units may give frequencies in 0.1 Hz without an
  exponent (499 for 49.9 Hz): scaled by 0.1 when the value is ten times a 45..65 Hz window.
* 0764:0501/0601 descriptors reuse the High Voltage Transfer logical range for the Output
  Voltage (report 0x12) and have a wrong Input Voltage (0x0f) maximum: both are widened to
  0..511; a ConfigActivePower (0x18) maximum below 2048 clips the nominal power and is
  raised (NUT issues #1512, #2917).
* Delays are whole minutes: NUT's defaults are offdelay 60, ondelay 120, pollfreq 12.
* Charge above 100 % is clamped.
"""

from __future__ import annotations

from dataclasses import replace

from upsagent.drivers.usbhid.conversions import Context, Conversion, lookup
from upsagent.drivers.usbhid.hidparser import Field, ReportDescriptor
from upsagent.drivers.usbhid.tables import DeviceInfo, Subdriver

CPS = 0x0764

USAGES = "ff0100d0 CPSFirmwareVersion  ff010043 CPSInputSensitivity"

TABLE = """
battery.type              UPS.PowerSummary.iDeviceChemistry            stringid
battery.mfr.date          UPS.Battery.ManufacturerDate                 date rw:10 semi
battery.mfr.date          UPS.PowerSummary.iOEMInformation             stringid
battery.charge.warning    UPS.PowerSummary.WarningCapacityLimit        %.0f
battery.charge.low        UPS.PowerSummary.RemainingCapacityLimit      %.0f rw:10 semi
battery.charge            UPS.PowerSummary.RemainingCapacity           cps_charge
battery.runtime           UPS.PowerSummary.RunTimeToEmpty              %.0f
battery.runtime.low       UPS.PowerSummary.RemainingTimeLimit          %.0f rw:10 semi
battery.voltage.nominal   UPS.PowerSummary.ConfigVoltage               %.0f
battery.voltage           UPS.PowerSummary.Voltage                     cps_battvolt
battery.status            UPS.PowerSummary.FullChargeCapacity          cps_battstatus
ups.load                  UPS.Output.PercentLoad                       %.0f
ups.beeper.status         UPS.PowerSummary.AudibleAlarmControl         beeper
ups.test.result           UPS.Output.Test                              test_read
ups.power                 UPS.Output.ApparentPower                     %.0f
ups.power.nominal         UPS.Output.ConfigApparentPower               %.0f
ups.realpower             UPS.Output.ActivePower                       %.0f
ups.realpower.nominal     UPS.Output.ConfigActivePower                 %.0f
ups.delay.start           UPS.Output.DelayBeforeStartup                =120 rw:10
ups.delay.shutdown        UPS.Output.DelayBeforeShutdown               =60 rw:10
ups.timer.start           UPS.Output.DelayBeforeStartup                %.0f quick
ups.timer.shutdown        UPS.Output.DelayBeforeShutdown               %.0f quick
ups.timer.reboot          UPS.Output.DelayBeforeReboot                 %.0f quick
ups.firmware              UPS.PowerSummary.CPSFirmwareVersion          stringid static
ups.temperature           UPS.PowerSummary.Temperature                 kelvin
BOOL  UPS.PowerSummary.PresentStatus.ACPresent                   online       quick
BOOL  UPS.PowerSummary.PresentStatus.Charging                    chrg         quick
BOOL  UPS.PowerSummary.PresentStatus.Discharging                 dischrg      quick
BOOL  UPS.PowerSummary.PresentStatus.BelowRemainingCapacityLimit lowbatt      quick
BOOL  UPS.PowerSummary.PresentStatus.FullyCharged                fullycharged
BOOL  UPS.PowerSummary.PresentStatus.RemainingTimeLimitExpired   timelimitexp
BOOL  UPS.PowerSummary.PresentStatus.NeedReplacement             replacebatt
BOOL  UPS.Output.Boost                                           boost
BOOL  UPS.Output.Overload                                        overload
input.frequency           UPS.Input.Frequency                          cps_infreq
input.voltage.nominal     UPS.Input.ConfigVoltage                      %.0f
input.voltage             UPS.Input.Voltage                            %.1f
input.transfer.low        UPS.Input.LowVoltageTransfer                 %.0f rw:10 semi
input.transfer.high       UPS.Input.HighVoltageTransfer                %.0f rw:10 semi
input.transfer.low        UPS.Output.LowVoltageTransfer                %.0f rw:10 semi
input.transfer.high       UPS.Output.HighVoltageTransfer               %.0f rw:10 semi
input.sensitivity         UPS.Output.CPSInputSensitivity               cps_sensitivity rw:0 semi enum
output.frequency          UPS.Output.Frequency                         cps_outfreq
output.voltage            UPS.Output.Voltage                           %.1f
output.voltage.nominal    UPS.Output.ConfigVoltage                     %.0f
test.battery.start.quick  UPS.Output.Test                              cmd=1
test.battery.start.deep   UPS.Output.Test                              cmd=2
test.battery.stop         UPS.Output.Test                              cmd=3
load.off.delay            UPS.Output.DelayBeforeShutdown               cmd=60
load.on.delay             UPS.Output.DelayBeforeStartup                cmd=120
shutdown.stop             UPS.Output.DelayBeforeShutdown               cmd=-1
shutdown.reboot           UPS.Output.DelayBeforeReboot                 cmd=10
beeper.on                 UPS.PowerSummary.AudibleAlarmControl         cmd=2
beeper.off                UPS.PowerSummary.AudibleAlarmControl         cmd=3
beeper.enable             UPS.PowerSummary.AudibleAlarmControl         cmd=2
beeper.disable            UPS.PowerSummary.AudibleAlarmControl         cmd=1
beeper.mute               UPS.PowerSummary.AudibleAlarmControl         cmd=3
"""


def _number(ctx: Context, name: str) -> float:
    try:
        return float(ctx.values.get(name, "0"))
    except ValueError:
        return 0.0


def _battvolt(value: float, ctx: Context) -> str | None:
    state = ctx.state
    if state.get("might_scale") and not state.get("battery_checked"):
        nominal = _number(ctx, "battery.voltage.nominal")
        if nominal:
            if value / nominal > 1.4:
                state["battery_scale"] = 2.0 / 3
            state["battery_checked"] = True
    return f"{state.get('battery_scale', 1.0) * value:.1f}"


def _frequency_scale(value: float, ctx: Context, prefix: str) -> float:
    """NUT's cps_adjust_frequency_scale(): 1, or 0.1 for a 0.1 Hz reading."""
    state = ctx.state
    key = f"{prefix}_freq_scale"
    if not state.get("might_scale") or key in state:
        return float(state.get(key, 1.0))
    nominal = _number(ctx, f"{prefix}.frequency.nominal")
    low, high = _number(ctx, f"{prefix}.frequency.low"), _number(ctx, f"{prefix}.frequency.high")
    if not nominal:
        for lo_, hi_, guess in ((45, 55, 50), (450, 550, 50), (55, 65, 60), (550, 650, 60)):
            if lo_ < value <= hi_:
                nominal = guess
                break
    low = low or (nominal * 0.95 if nominal else 45.0)
    high = high or (nominal * 1.05 if nominal else 65.0)
    if low <= value <= high:
        state[key] = 1.0
    elif low <= value / 10 <= high:
        state[key] = 0.1
    return float(state.get(key, 1.0))


def _freq(prefix: str) -> Conversion:
    def read(value: float, ctx: Context) -> str | None:
        return f"{_frequency_scale(value, ctx, prefix) * value:.1f}"
    return Conversion(read)


CONVERSIONS = {
    "cps_charge": Conversion(lambda value, ctx: f"{min(value, 100.0):.0f}"),
    "cps_battvolt": Conversion(_battvolt),
    "cps_battstatus": Conversion(lambda value, ctx: f"{value:.0f}%"),
    "cps_infreq": _freq("input"),
    "cps_outfreq": _freq("output"),
    "cps_sensitivity": lookup({0: "low", 1: "normal", 2: "high"}),
}


def _find(fields: list[Field], report_id: int, usage: int) -> int | None:
    for index, item in enumerate(fields):
        if item.report_id == report_id and item.path and item.path[-1] == usage:
            return index
    return None


def _fix(descriptor: ReportDescriptor, device: DeviceInfo) -> ReportDescriptor:
    """NUT's cps_fix_report_desc() for 0764:0501 and 0764:0601."""
    if device.vendor_id != CPS or device.product_id not in (0x0501, 0x0601):
        return descriptor
    fields = list(descriptor.fields)
    voltage, hvt_usage, power = 0x00840030, 0x00840054, 0x00840044

    def widen(index: int, low: int | None, high: int) -> None:
        item = fields[index]
        for pos, other in enumerate(fields):
            if other.report_id == item.report_id and other.path == item.path:
                fields[pos] = replace(other, logical_min=item.logical_min if low is None
                                      else low, logical_max=high)

    hvt, out, inp = _find(fields, 0x10, hvt_usage), _find(fields, 0x12, voltage), \
        _find(fields, 0x0F, voltage)
    if hvt is not None and out is not None:
        h, o = fields[hvt], fields[out]
        if (h.logical_min, h.logical_max) == (o.logical_min, o.logical_max):
            widen(out, 0, 511)
            if inp is not None and (h.logical_min, h.logical_max) == \
                    (fields[inp].logical_min, fields[inp].logical_max):
                widen(inp, 0, 511)
    out, inp = _find(fields, 0x12, voltage), _find(fields, 0x0F, voltage)
    if out is not None and inp is not None:
        o, i = fields[out], fields[inp]
        if o.assumed_logical_max or i.assumed_logical_max:
            omax, imax = o.logical_max, i.logical_max
            if o.assumed_logical_max and omax < 511:
                omax = 511
            if i.assumed_logical_max and imax < 511:
                imax = 511
            if o.assumed_logical_max and omax < imax:
                omax = imax
            elif i.assumed_logical_max and imax < omax:
                imax = omax
            if i.assumed_logical_max and 1 < i.size <= 64:
                imax = min(imax, (1 << i.size) - 1)
            if o.assumed_logical_max and 1 < o.size <= 64:
                omax = min(omax, (1 << o.size) - 1)
            widen(inp, None, imax)
            widen(out, None, omax)
    nominal = _find(fields, 0x18, power)
    if nominal is not None and fields[nominal].logical_max < 2048:
        widen(nominal, None, 2048)
    return replace(descriptor, fields=tuple(fields))


SUBDRIVER = Subdriver(
    pages=(0xFF01, 0xFF00),
    key="cps", name="CyberPower HID 0.85",
    usb_ids=((CPS, 0x0005), (CPS, 0x0501), (CPS, 0x0601), (0x0483, 0xA430)),
    table=TABLE, usages=USAGES, conversions=CONVERSIONS, mfr_default="CPS",
    offdelay="60", ondelay="120", pollfreq=12, vendors=(CPS,), fix_hook=_fix,
    init_state=lambda device: {"might_scale": (device.vendor_id, device.product_id)
                               == (CPS, 0x0501)})
