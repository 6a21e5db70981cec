# -*- test-case-name: tests.test_usbhid_decode -*-
"""Usage names and usage paths (``UPS.PowerSummary.RemainingCapacity``), pure.

A usage is ``page << 16 | id``.  The generic names are those of the HID Power Device
(page 0x84) and Battery System (page 0x85) usage tables, spelled as NUT spells them
(``drivers/libhid.c``, ``hid_usage_lkp``), because the vendor tables name paths that way.
A vendor adds its own names (``APCStatusFlag`` = 0xff860060); its names are looked up first,
in both directions, as NUT does.

Path text: names joined by ``.``; a usage without a name is eight hex digits
(``ff860016``); a collection index node is ``[n]``.
"""

from __future__ import annotations

from upsagent.drivers.usbhid.hidparser import INDEX_NODE

__all__ = ["GENERIC", "UsageNames", "parse_names"]

#: HID Power Device and Battery System usages (NUT's hid_usage_lkp)
GENERIC_TEXT = """
page 84
    0000 Undefined  0001 iName  0002 PresentStatus  0003 ChangedStatus  0004 UPS
    0005 PowerSupply  0010 BatterySystem  0011 BatterySystemID  0012 Battery
    0013 BatteryID  0014 Charger  0015 ChargerID  0016 PowerConverter
    0017 PowerConverterID  0018 OutletSystem  0019 OutletSystemID  001a Input
    001b InputID  001c Output  001d OutputID  001e Flow  001f FlowID  0020 Outlet
    0021 OutletID  0022 Gang  0023 GangID  0024 PowerSummary  0025 PowerSummaryID
    0030 Voltage  0031 Current  0032 Frequency  0033 ApparentPower  0034 ActivePower
    0035 PercentLoad  0036 Temperature  0037 Humidity  0038 BadCount
    0040 ConfigVoltage  0041 ConfigCurrent  0042 ConfigFrequency
    0043 ConfigApparentPower  0044 ConfigActivePower  0045 ConfigPercentLoad
    0046 ConfigTemperature  0047 ConfigHumidity  0050 SwitchOnControl
    0051 SwitchOffControl  0052 ToggleControl  0053 LowVoltageTransfer
    0054 HighVoltageTransfer  0055 DelayBeforeReboot  0056 DelayBeforeStartup
    0057 DelayBeforeShutdown  0058 Test  0059 ModuleReset  005a AudibleAlarmControl
    0060 Present  0061 Good  0062 InternalFailure  0063 VoltageOutOfRange
    0064 FrequencyOutOfRange  0065 Overload  0066 OverCharged  0067 OverTemperature
    0068 ShutdownRequested  0069 ShutdownImminent  006b SwitchOn/Off  006c Switchable
    006d Used  006e Boost  006f Buck  0070 Initialized  0071 Tested
    0072 AwaitingPower  0073 CommunicationLost  00fd iManufacturer  00fe iProduct
    00ff iSerialNumber
page 85
    0000 Undefined  0001 SMBBatteryMode  0002 SMBBatteryStatus  0003 SMBAlarmWarning
    0004 SMBChargerMode  0005 SMBChargerStatus  0006 SMBChargerSpecInfo
    0007 SMBSelectorState  0008 SMBSelectorPresets  0009 SMBSelectorInfo
    0010 OptionalMfgFunction1  0011 OptionalMfgFunction2  0012 OptionalMfgFunction3
    0013 OptionalMfgFunction4  0014 OptionalMfgFunction5  0015 ConnectionToSMBus
    0016 OutputConnection  0017 ChargerConnection  0018 BatteryInsertion  0019 Usenext
    001a OKToUse  001b BatterySupported  001c SelectorRevision  001d ChargingIndicator
    0028 ManufacturerAccess  0029 RemainingCapacityLimit  002a RemainingTimeLimit
    002b AtRate  002c CapacityMode  002d BroadcastToCharger  002e PrimaryBattery
    002f ChargeController  0040 TerminateCharge  0041 TerminateDischarge
    0042 BelowRemainingCapacityLimit  0043 RemainingTimeLimitExpired  0044 Charging
    0045 Discharging  0046 FullyCharged  0047 FullyDischarged  0048 ConditioningFlag
    0049 AtRateOK  004a SMBErrorCode  004b NeedReplacement  0060 AtRateTimeToFull
    0061 AtRateTimeToEmpty  0062 AverageCurrent  0063 Maxerror
    0064 RelativeStateOfCharge  0065 AbsoluteStateOfCharge  0066 RemainingCapacity
    0067 FullChargeCapacity  0068 RunTimeToEmpty  0069 AverageTimeToEmpty
    006a AverageTimeToFull  006b CycleCount  0080 BattPackModelLevel
    0081 InternalChargeController  0082 PrimaryBatterySupport  0083 DesignCapacity
    0084 SpecificationInfo  0085 ManufacturerDate  0086 SerialNumber
    0087 iManufacturerName  0088 iDevicename  0089 iDeviceChemistry
    008a ManufacturerData  008b Rechargeable  008c WarningCapacityLimit
    008d CapacityGranularity1  008e CapacityGranularity2  008f iOEMInformation
    00c0 InhibitCharge  00c1 EnablePolling  00c2 ResetToZero  00d0 ACPresent
    00d1 BatteryPresent  00d2 PowerFail  00d3 AlarmInhibited
    00d4 ThermistorUnderRange  00d5 ThermistorHot  00d6 ThermistorCold
    00d7 ThermistorOverRange  00d8 VoltageOutOfRange  00d9 CurrentOutOfRange
    00da CurrentNotRegulated  00db VoltageNotRegulated  00dc MasterMode
    00f0 ChargerSelectorSupport  00f1 ChargerSpec  00f2 Level2  00f3 Level3
"""


def parse_names(text: str) -> list[tuple[int, str]]:
    """A names block: ``page XXXX`` lines, then ``id Name`` pairs (hex ids) on any lines.

    A pair may also give a full 8-digit usage (``ff860016 APCBattReplaceDate``), which
    ignores the current page.
    """
    page = 0
    out: list[tuple[int, str]] = []
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "page":
            page = int(words[1], 16)
            continue
        if len(words) % 2:
            raise ValueError(f"usage names: odd line {line!r}")
        for code, name in zip(words[::2], words[1::2]):
            usage = int(code, 16)
            out.append((usage if len(code) == 8 else (page << 16) | usage, name))
    return out


class UsageNames:
    """Names of usages: a vendor's first, then the generic ones (as NUT's ``utab``)."""

    def __init__(self, *tables: list[tuple[int, str]]) -> None:
        self._names: dict[int, str] = {}
        self._codes: dict[str, int] = {}
        for table in tables:
            for usage, name in table:
                self._names.setdefault(usage, name)
                self._codes.setdefault(name.lower(), usage)

    def name(self, usage: int) -> str:
        """The usage's name, ``[n]`` for an index node, else eight hex digits."""
        known = self._names.get(usage)
        if known is not None:
            return known
        if usage & 0xFFFF0000 == INDEX_NODE:
            return f"[{usage & 0xFFFF}]"
        return f"{usage:08x}"

    def path_text(self, path: tuple[int, ...]) -> str:
        return ".".join(self.name(node) for node in path)

    def path(self, text: str) -> tuple[int, ...] | None:
        """A path's nodes from its text (names, hex, ``[n]``); None if a part is unknown."""
        nodes = []
        for token in text.split("."):
            code = self._codes.get(token.lower())
            if code is not None:
                nodes.append(code)
            elif len(token) == 8 and all(c in "0123456789abcdefABCDEF" for c in token):
                nodes.append(int(token, 16))
            elif len(token) > 2 and token[0] == "[" and token[-1] == "]" \
                    and token[1:-1].isdigit():
                nodes.append(INDEX_NODE | (int(token[1:-1]) & 0xFFFF))
            else:
                return None
        return tuple(nodes)


GENERIC = parse_names(GENERIC_TEXT)
