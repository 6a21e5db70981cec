"""The Q1 driver over every USB bridge, against fake pyusb devices (tests/qxusb.py).

The whole driver runs (``port = auto``: the USB transport, the bridge's framing, the
engine, the codec, the model); only ``usb.core.find`` is replaced, by a list of devices
that move bytes as the bridge chips do.  pyusb itself is not needed.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest
from twisted.internet.task import Clock

from upsagent.config.schema import UpsConfig
from upsagent.drivers.base import Result
from upsagent.drivers.qx import bridges, usb
from upsagent.drivers.qx.driver import QxDriver
from upsagent.system.threads import inline as direct
from upsagent.model import UPS, Availability

from tests.qxkit import recorded
from tests.qxusb import FakeBridge, recorded_chunks

VULTECH = recorded("vultech-v2000_armac-usb.q1log")
ARMAC_OB = recorded("armac-r2000i-psw_armac-usb.q1log")
VENDOR = b"#Voltronic Power  VT1500  VT12046Q  \r"
REPLIES = {"Q1\r": VULTECH["Q1\r"], "F\r": VULTECH["F\r"], "I\r": VENDOR}

#: bridge, (vid, pid), USB strings: the rows of NUT's table, one per bridge
DEVICES = [
    ("cypress", (0x0665, 0x5161), {}),
    ("cypress", (0x06DA, 0x0004), {}),
    ("cypress", (0x06DA, 0x0002), {"manufacturer": "Online"}),
    ("ippon", (0x06DA, 0x0003), {}),
    ("phoenix", (0x06DA, 0x0601), {}),
    ("phoenix", (0x14F0, 0x00C9), {}),
    ("krauler", (0x0001, 0x0000), {"manufacturer": "No name", "product": "UPS"}),
    ("krauler", (0x1CB0, 0x0035), {}),
    ("fabula", (0x0001, 0x0000), {"manufacturer": "MEC", "product": "MEC0003"}),
    ("hunnox", (0x0001, 0x0000), {"manufacturer": "Hunnox", "product": "MEC0003"}),
    ("fuji", (0x0001, 0x0000), {"manufacturer": "ATCL FOR UPS", "product": "ATCL FOR UPS"}),
    ("sgs", (0x0483, 0x0035), {}),
    ("phoenixtec", (0x06DA, 0x0002), {"manufacturer": "Phoenixtec Power",
                                       "product": "USB Cable (V2.00)"}),
    ("armac", (0x0925, 0x1234), {}),
]


def make(devices: list[Any], monkeypatch: pytest.MonkeyPatch, driver: str = "nutdrv_qx",
         **options: str) -> tuple[QxDriver, UPS, Clock]:
    monkeypatch.setattr(usb, "pyusb_devices", lambda: list(devices))
    conf = UpsConfig("q1", driver, port="auto", options={"port": "auto", **options})
    ups, clock = UPS("q1"), Clock()
    return QxDriver(conf, ups, clock, blocking=direct), ups, clock


def start(driver: QxDriver) -> bool:
    fired: list[object] = []
    driver.start().addCallback(fired.append)
    return bool(fired)


@pytest.mark.parametrize("bridge, ids, strings", DEVICES,
                         ids=[f"{b}-{v:04x}:{p:04x}" for b, (v, p), _ in DEVICES])
def test_each_bridge_carries_the_recorded_replies(
        bridge: str, ids: tuple[int, int], strings: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    device = FakeBridge(bridge, *ids, REPLIES, **strings)
    driver, ups, clock = make([device], monkeypatch, protocol="megatec")
    assert start(driver), ups.reason
    assert driver.transport is not None and f"({bridge})" in driver.transport.description
    assert ups.value("ups.vendorid") == f"{ids[0]:04x}"
    assert ups.value("ups.productid") == f"{ids[1]:04x}"
    assert ups.value("input.voltage") == "233.0" and ups.value("ups.status") == "OL"
    assert ups.value("battery.voltage") == "27.00" and ups.value("ups.beeper.status") == "enabled"
    if bridge not in ("fuji",):
        assert ups.value("input.voltage.nominal") == "220"
    clock.advance(2)
    assert ups.availability is Availability.OK and ups.updates == 2
    driver.stop()


def test_armac_recorded_raw_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Vultech's own chunks: control bytes, stale bytes, a NUL inside the status bits."""
    raw = recorded_chunks("vultech-v2000_armac-usb.q1log")
    device = FakeBridge("armac", 0x0925, 0x1234, {}, raw={"Q1\r": raw["Q1\r"],
                                                        "F\r": raw["F\r"]})
    driver, ups, clock = make([device], monkeypatch, driver="blazer_usb")
    assert start(driver), ups.reason
    assert {name: ups.value(name) for name in (
        "input.voltage", "input.voltage.fault", "output.voltage", "ups.load", "input.frequency",
        "battery.voltage", "ups.temperature", "ups.status", "ups.type", "ups.beeper.status",
        "battery.voltage.nominal", "input.current.nominal")} == {
        "input.voltage": "233.0", "input.voltage.fault": "0.0", "output.voltage": "233.0",
        "ups.load": "14", "input.frequency": "49.0", "battery.voltage": "27.00",
        "ups.temperature": "20.8", "ups.status": "OL",
        "ups.type": "offline / line interactive", "ups.beeper.status": "enabled",
        "battery.voltage.nominal": "24.0", "input.current.nominal": "5.0"}
    raw_ob = recorded_chunks("armac-r2000i-psw_armac-usb.q1log")["Q1\r"]
    device.raw["Q1\r"] = raw_ob
    clock.advance(2)
    assert ups.status == ["OB"] and ups.value("input.voltage.fault") == "140.0"
    driver.stop()


def test_armac_does_not_send_what_it_cannot_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    device = FakeBridge("armac", 0x0925, 0x1234, REPLIES)
    driver, ups, clock = make([device], monkeypatch)
    assert start(driver)
    assert "M\r" not in device.received and "QS\r" not in device.received
    assert ups.value("driver.version.data") == "Megatec 0.06"
    driver.stop()


def test_phoenix_drains_stale_replies(monkeypatch: pytest.MonkeyPatch) -> None:
    device = FakeBridge("phoenix", 0x06DA, 0x0601, REPLIES, stale=b"#220.0 005 2")
    driver, ups, clock = make([device], monkeypatch, protocol="megatec")
    assert start(driver) and ups.value("input.voltage") == "233.0"
    driver.stop()


def test_krauler_asks_again_after_ups_no_ack(monkeypatch: pytest.MonkeyPatch) -> None:
    device = FakeBridge("krauler", 0x0001, 0x0000, REPLIES)
    device.no_ack_first = True
    driver, ups, clock = make([device], monkeypatch, protocol="megatec")
    assert start(driver)
    assert device.received[:2] == ["Q1\r", "Q1\r"] and ups.value("ups.status") == "OL"
    results: list[Result] = []
    driver.instcmd("test.battery.start.quick").addCallback(results.append)
    driver.instcmd("shutdown.return").addCallback(results.append)  # no index: echoed
    assert results == [Result.SUCCESS, Result.FAILED]
    driver.stop()


def test_fabula_shutdown_goes_in_the_string_index(monkeypatch: pytest.MonkeyPatch) -> None:
    device = FakeBridge("fabula", 0x0001, 0x0000, REPLIES, manufacturer="MEC",
                        product="MEC0003")
    driver, ups, clock = make([device], monkeypatch, protocol="megatec", offdelay="120",
                              ondelay="180")
    assert start(driver)
    results: list[Result] = []
    driver.instcmd("shutdown.return").addCallback(results.append)   # S02R0003
    driver.instcmd("shutdown.stayoff").addCallback(results.append)  # S02R0000
    assert results == [Result.SUCCESS, Result.SUCCESS]  # "UPS No Ack" means done
    assert device.string_requests[-2:] == [96 + 16 + 8, 96 + 16]


def test_snr_and_hunnox_string_variants(monkeypatch: pytest.MonkeyPatch) -> None:
    """snr only by subdriver= (NUT's table gives MEC0003 to hunnox first)."""
    device = FakeBridge("snr", 0x0001, 0x0000, REPLIES, product="MEC0003")
    driver, ups, clock = make([device], monkeypatch, protocol="megatec", subdriver="snr",
                              vendorid="0001", productid="0000")
    assert start(driver) and ups.value("input.voltage") == "233.0"
    assert device.received[0] == "Q1\r"
    driver.stop()
    device = FakeBridge("hunnox", 0x0001, 0x0000, REPLIES, product="MEC0003")
    driver, ups, clock = make([device], monkeypatch, protocol="megatec")
    assert start(driver)
    # the lock-step opening, the language list, then Q1
    assert device.string_requests[:5] == [0x00, 0x00, 0x01, 0x00, 0x03]
    clock.advance(2)
    assert ups.updates == 2
    driver.stop()


def test_fabula_index_table() -> None:
    assert bridges.fabula_index("S.5R0000\r") == 16
    assert bridges.fabula_index("S.3\r") == 16 + 8           # clamped to .5, returns
    assert bridges.fabula_index("S.7R0003\r") == 16 + 2 * 16 + 8
    assert bridges.fabula_index("S10R0000\r") == 240
    assert bridges.fabula_index("T\r") is None
    assert bridges.fuji_packet("S02R0003\r") == b"\x80\x06\x04\x03S02\x00"
    assert bridges.fuji_packet("Q1\r") == b"\x80\x06\x03\x03Q1\x00\x2f"
    assert bridges.fuji_packet("S.5R0000\r") is None


@pytest.mark.parametrize("ids, strings, bridge", [
    ((0x0001, 0x0000), ("MEC", "MEC0003"), "fabula"),
    ((0x0001, 0x0000), ("Other", "MEC0003"), "hunnox"),
    ((0x0001, 0x0000), ("ATCL FOR UPS", "ATCL FOR UPS"), "fuji"),
    ((0x0001, 0x0000), (None, None), "krauler"),
    ((0x06DA, 0x0002), ("Phoenixtec Power", "USB Cable (V2.00)"), "phoenixtec"),
    ((0x06DA, 0x0002), ("Phoenixtec Power", "Other"), "cypress"),
    ((0x06DA, 0x0003), (None, None), "ippon"),
    ((0x0665, 0x5161), (None, None), "cypress"),
    ((0x0925, 0x1234), (None, None), "armac"),
    ((0x051D, 0x0002), (None, None), None),
])
def test_selection_by_ids_and_strings(ids: tuple[int, int], strings: tuple[str | None, str | None],
                                      bridge: str | None) -> None:
    assert bridges.select_bridge(*ids, *strings) == bridge


def test_forced_subdriver_and_matching_options(monkeypatch: pytest.MonkeyPatch) -> None:
    hid = FakeBridge("cypress", 0x051D, 0x0002, REPLIES)          # not a Q1 bridge
    other = FakeBridge("cypress", 0x0665, 0x5161, REPLIES, serial="B")
    wanted = FakeBridge("cypress", 0x0665, 0x5161, REPLIES, serial="A1")
    driver, ups, clock = make([hid, other, wanted], monkeypatch, protocol="megatec",
                              serial="a[0-9]")
    assert start(driver) and wanted.received and not other.received
    driver.stop()
    forced = FakeBridge("ippon", 0x1234, 0x5678, REPLIES)
    driver, ups, clock = make([forced], monkeypatch, protocol="megatec", subdriver="ippon",
                              vendorid="1234", productid="5678")
    assert start(driver) and ups.value("ups.productid") == "5678"
    driver.stop()
    driver, ups, clock = make([forced], monkeypatch, subdriver="ippon")
    driver.start()
    assert ups.availability is Availability.NOT_CONNECTED
    assert "vendorid and productid" in ups.reason


def test_nothing_found_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    devices: list[Any] = []
    driver, ups, clock = make(devices, monkeypatch, protocol="megatec")
    assert not start(driver)
    assert ups.availability is Availability.NOT_CONNECTED
    assert "no supported USB device found" in ups.reason
    devices.append(FakeBridge("cypress", 0x0665, 0x5161, REPLIES))
    clock.advance(5)
    assert ups.availability is Availability.OK
    driver.stop()


def test_unplug_is_stale_at_once_and_replug_comes_back(monkeypatch: pytest.MonkeyPatch) -> None:
    device = FakeBridge("cypress", 0x0665, 0x5161, REPLIES)
    devices: list[Any] = [device]
    driver, ups, clock = make(devices, monkeypatch, protocol="megatec")
    assert start(driver)
    device.unplug()
    devices.clear()
    clock.advance(2)
    assert ups.availability is Availability.STALE and "No such device" in ups.reason
    clock.advance(2)
    assert ups.availability is Availability.STALE
    again = FakeBridge("cypress", 0x0665, 0x5161, {**REPLIES, "Q1\r": ARMAC_OB["Q1\r"]})
    devices.append(again)
    clock.advance(5)
    assert ups.availability is Availability.OK and ups.status == ["OB"]
    assert again.received == ["Q1\r"]  # reopened: no new probe
    driver.stop()


def test_timeouts_and_a_stalled_pipe_are_no_data(monkeypatch: pytest.MonkeyPatch) -> None:
    device = FakeBridge("cypress", 0x0665, 0x5161, REPLIES)
    driver, ups, clock = make([device], monkeypatch, protocol="megatec")
    assert start(driver)
    del device.replies["Q1\r"]
    clock.advance(2)
    device.stall_next = True
    clock.advance(2)
    assert device.halts_cleared == 1 and ups.availability is Availability.OK
    clock.advance(2)
    assert ups.availability is Availability.STALE
    device.replies["Q1\r"] = VULTECH["Q1\r"]
    clock.advance(2)
    assert ups.availability is Availability.OK
    driver.stop()


def test_missing_pyusb_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "usb", None)
    monkeypatch.setitem(sys.modules, "usb.core", None)
    conf = UpsConfig("q1", "blazer_usb", port="auto", options={"port": "auto"})
    ups, clock = UPS("q1"), Clock()
    QxDriver(conf, ups, clock, blocking=direct).start()
    assert ups.availability is Availability.NOT_CONNECTED
    assert "install upsagent[usb]" in ups.reason


def test_usb_ids_for_the_udev_rules() -> None:
    """Every id of NUT's table that a bridge here serves, once."""
    ids = QxDriver.usb_ids
    for wanted in ((0x0665, 0x5161), (0x06DA, 0x0003), (0x06DA, 0x0004), (0x06DA, 0x0601),
                   (0x0001, 0x0000), (0x0925, 0x1234), (0x14F0, 0x00C9), (0x1CB0, 0x0035),
                   (0x05B8, 0x0000), (0x0F03, 0x0001), (0x06DA, 0x0002), (0x06DA, 0x0005),
                   (0x06DA, 0x0201), (0x0483, 0x0035)):
        assert wanted in ids
    assert len(ids) == len(set(ids)) == 14
