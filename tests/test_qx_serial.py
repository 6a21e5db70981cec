"""The Q1 driver on a real pty pair against a scripted UPS (tests/qxkit.py).

The driver runs whole (pyserial, the engine, the codec, the model) with the ``direct``
seam and a ``Clock``: each ``clock.advance(2)`` is one poll.  The emulator answers with the
recorded replies of tests/data/qx (the Vultech V2000 and Armac R/2000I/PSW captures), and
with silence, echoes, garbage and half replies where a test says so.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterator

import pytest
from twisted.internet.task import Clock

from upsagent.config.schema import UpsConfig
from upsagent.drivers import registry
from upsagent.drivers.base import Result
from upsagent.drivers.qx.driver import QxDriver
from upsagent.system.threads import inline as direct
from upsagent.drivers.qx.transport import SerialTransport
from upsagent.model import UPS, Availability

from tests.qxkit import ECHO, SILENT, PtyUps, recorded

pytest.importorskip("serial")

VULTECH = recorded("vultech-v2000_armac-usb.q1log")
ARMAC_OB = recorded("armac-r2000i-psw_armac-usb.q1log")["Q1\r"]
TIMEOUT = 0.2


@pytest.fixture
def ups_end() -> Iterator[PtyUps]:
    emulator = PtyUps({"Q1\r": VULTECH["Q1\r"], "F\r": VULTECH["F\r"]})
    yield emulator
    emulator.close()


def make(driver: str, port: str, options: dict[str, str] | None = None,
         flags: tuple[str, ...] = ()) -> tuple[QxDriver, UPS, Clock]:
    conf = UpsConfig("q1", driver, port=port, options={"port": port, **(options or {})},
                     flags=flags)
    ups, clock = UPS("q1"), Clock()
    transport = SerialTransport(port, conf.options.get("cablepower", "normal"), timeout=TIMEOUT)
    return QxDriver(conf, ups, clock, transport=transport, blocking=direct), ups, clock


def started(driver: QxDriver) -> bool:
    fired: list[object] = []
    driver.start().addCallback(fired.append)
    return bool(fired)


def test_registry_serves_the_three_names() -> None:
    for name in ("nutdrv_qx", "blazer_ser", "blazer_usb"):
        assert registry.available(name) and registry.driver_class(name) is QxDriver
    assert (0x0665, 0x5161) in QxDriver.usb_ids and (0x0925, 0x1234) in QxDriver.usb_ids


def test_blazer_ser_reads_a_recorded_unit(ups_end: PtyUps) -> None:
    driver, ups, clock = make("blazer_ser", ups_end.path)
    assert started(driver)
    assert ups.availability is Availability.OK
    values = {var.name: var.value for var in ups.variables()}
    assert values["ups.status"] == "OL"
    assert values["input.voltage"] == "233.0" and values["battery.voltage"] == "27.00"
    assert values["input.voltage.nominal"] == "220"
    assert values["battery.voltage.low"] == "20.80" and values["battery.charge"] == "100"
    assert values["ups.delay.shutdown"] == "30" and values["ups.delay.start"] == "180"
    assert values["driver.name"] == "blazer_ser"
    assert values["driver.version.internal"] == "1.58"
    assert "driver.version.data" not in values
    assert not ups.get("ups.delay.shutdown").writable  # type: ignore[union-attr]
    assert ups_end.commands()[:3] == ["Q1\r", "F\r", "I\r"]
    assert "shutdown.return" in ups.commands() and "test.battery.start" in ups.commands()
    driver.stop()


def test_nutdrv_qx_probes_the_dialect_on_serial(ups_end: PtyUps) -> None:
    """voltronic-qs (M), mustek (QS), megatec/old (D) are echoed: megatec claims by F."""
    driver, ups, clock = make("nutdrv_qx", ups_end.path)
    assert started(driver)
    assert ups.value("driver.version.data") == "Megatec 0.06"
    assert ups_end.commands()[:9] == ["M\r"] * 3 + ["QS\r"] * 3 + ["D\r"] * 3
    delay = ups.get("ups.delay.shutdown")
    assert delay is not None and delay.writable and delay.ranges == [(12, 600)]
    driver.stop()


def test_polls_follow_the_ups(ups_end: PtyUps) -> None:
    driver, ups, clock = make("blazer_ser", ups_end.path)
    assert started(driver)
    ups_end.set("Q1\r", ARMAC_OB)
    clock.advance(2)
    assert ups.status == ["OB"] and ups.value("input.voltage") == "0.0"
    assert ups.value("battery.voltage") == "46.80"
    driver.stop()


@pytest.mark.parametrize("bad", [SILENT, ECHO, b"\x15\xfe garbage\r", b"NAK\r",
                                 b"(233.0 000.0 23",  # the cable pulled mid-reply
                                 b"(@@@.@ @@@.@ @@@.@ @@@ @@.@ @@.@ @@.@ @@@@@@@@\r"])
def test_no_data_three_times_is_stale(ups_end: PtyUps, bad: bytes | str) -> None:
    driver, ups, clock = make("blazer_ser", ups_end.path)
    assert started(driver)
    ups_end.set("Q1\r", bad)
    clock.advance(2)
    clock.advance(2)
    assert ups.availability is Availability.OK and ups.value("input.voltage") == "233.0"
    clock.advance(2)
    assert ups.availability is Availability.STALE
    assert "3 times in a row" in ups.reason
    ups_end.set("Q1\r", VULTECH["Q1\r"])
    clock.advance(2)
    assert ups.availability is Availability.OK
    driver.stop()


def test_an_unplugged_adapter_is_stale_at_once_and_comes_back(tmp_path: Path) -> None:
    """A USB-serial adapter removed and plugged in again (the port is a stable symlink)."""
    first = PtyUps({"Q1\r": VULTECH["Q1\r"], "F\r": VULTECH["F\r"]})
    link = tmp_path / "ttyUPS"
    link.symlink_to(first.path)
    driver, ups, clock = make("blazer_ser", str(link))
    assert started(driver)
    first.unplug()
    clock.advance(2)
    assert ups.availability is Availability.STALE and "device lost" in ups.reason
    second = PtyUps({"Q1\r": ARMAC_OB, "F\r": VULTECH["F\r"]})
    try:
        link.unlink()
        link.symlink_to(second.path)
        clock.advance(2)
        assert ups.availability is Availability.OK and ups.status == ["OB"]
    finally:
        driver.stop()
        second.close()


def test_instant_commands_on_the_wire(ups_end: PtyUps) -> None:
    driver, ups, clock = make("nutdrv_qx", ups_end.path,
                              {"offdelay": "30", "ondelay": "180"})
    assert started(driver)
    for command in ("T\r", "S.5R0003\r", "S.5R0000\r", "T02\r", "Q\r", "C\r"):
        ups_end.set(command, SILENT)  # a classic unit acts without answering
    results: list[Result] = []
    for name, value in (("test.battery.start.quick", None), ("shutdown.return", None),
                        ("shutdown.stayoff", None), ("test.battery.start", "120"),
                        ("beeper.toggle", None), ("load.on", None)):
        driver.instcmd(name, value).addCallback(results.append)
    assert results == [Result.SUCCESS] * 6
    assert ups_end.commands()[-6:] == ["T\r", "S.5R0003\r", "S.5R0000\r", "T02\r", "Q\r", "C\r"]
    ups_end.set("CT\r", ECHO)
    driver.instcmd("test.battery.stop").addCallback(results.append)
    ups_end.set("Q\r", b"(ACK\r")
    driver.instcmd("beeper.toggle").addCallback(results.append)
    driver.instcmd("test.battery.start", "30").addCallback(results.append)
    driver.instcmd("no.such.command").addCallback(results.append)
    assert results[6:] == [Result.FAILED, Result.SUCCESS, Result.INVALID_ARGUMENT,
                           Result.UNKNOWN]
    driver.stop()


def test_writable_delays_publish_what_the_ups_will_use(ups_end: PtyUps) -> None:
    driver, ups, clock = make("nutdrv_qx", ups_end.path)
    assert started(driver)
    results: list[Result] = []
    driver.setvar("ups.delay.shutdown", "90").addCallback(results.append)
    driver.setvar("ups.delay.start", "200").addCallback(results.append)
    driver.setvar("ups.delay.shutdown", "5").addCallback(results.append)
    driver.setvar("ups.delay.shutdown", "abc").addCallback(results.append)
    driver.setvar("ups.load", "1").addCallback(results.append)
    assert results == [Result.SUCCESS, Result.SUCCESS, Result.INVALID_ARGUMENT,
                       Result.INVALID_ARGUMENT, Result.UNKNOWN]
    assert ups.value("ups.delay.shutdown") == "60" and ups.value("ups.delay.start") == "180"
    clock.advance(2)
    assert ups.value("ups.delay.shutdown") == "60"  # kept by the next poll
    driver.instcmd("shutdown.return").addCallback(results.append)
    assert ups_end.commands()[-1] == "S01R0003\r"
    driver.stop()


def test_killpower_cancels_then_orders_shutdown_return(ups_end: PtyUps) -> None:
    driver, ups, clock = make("blazer_ser", ups_end.path, {"offdelay": "20", "ondelay": "2"})
    assert started(driver)
    ups_end.set("C\r", SILENT)
    ups_end.set("S.3R0002\r", b"(ACK\r")
    results: list[Result] = []
    driver.killpower().addCallback(results.append)
    assert results == [Result.SUCCESS]
    assert ups_end.commands()[-2:] == ["C\r", "S.3R0002\r"]
    assert ups.value("ups.delay.shutdown") == "18"  # 20 s is not a tenth of a minute
    driver.stop()


def test_killpower_stayoff_flag(ups_end: PtyUps) -> None:
    driver, ups, clock = make("nutdrv_qx", ups_end.path, flags=("stayoff",))
    assert started(driver)
    driver.killpower()
    assert ups_end.commands()[-1] == "S.5R0000\r"
    driver.stop()


def test_a_silent_port_keeps_the_ups_not_connected_and_retries(ups_end: PtyUps) -> None:
    ups_end.unknown = SILENT
    ups_end.set("Q1\r", SILENT)
    driver, ups, clock = make("blazer_ser", ups_end.path, {"protocol": "megatec"})
    assert not started(driver)
    assert ups.availability is Availability.NOT_CONNECTED
    assert "no supported UPS answered (megatec: no reply)" in ups.reason
    ups_end.set("Q1\r", VULTECH["Q1\r"])
    clock.advance(5)
    assert ups.availability is Availability.OK
    driver.stop()


def test_cablepower_and_bad_options() -> None:
    assert SerialTransport("/dev/null", "reverse").lines == (False, True)
    assert SerialTransport("/dev/null").lines == (True, False)
    conf = UpsConfig("q1", "blazer_ser", port="/dev/ttyS0", options={"cablepower": "odd"})
    ups = UPS("q1")
    driver = QxDriver(conf, ups, Clock(), blocking=direct)
    driver.start()
    assert ups.availability is Availability.NOT_CONNECTED and "cablepower" in ups.reason


def test_missing_pyserial_names_the_extra(monkeypatch: pytest.MonkeyPatch,
                                          ups_end: PtyUps) -> None:
    monkeypatch.setitem(sys.modules, "serial", None)
    driver, ups, clock = make("blazer_ser", ups_end.path)
    driver.start()
    assert ups.availability is Availability.NOT_CONNECTED
    assert "install upsagent[serial]" in ups.reason
    assert not clock.getDelayedCalls()  # nothing to retry until it is installed
    assert os.path.exists(ups_end.path)
