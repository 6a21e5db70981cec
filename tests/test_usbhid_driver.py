"""The usbhid-ups driver on a Clock, through fakes of hidapi and pyusb only.

Blocking calls go through the driver's ``run_blocking`` seam, here run at once, so every
step is one ``clock.advance``.  The fakes (tests/fakehid.py) serve the recorded Back-UPS CS
500 descriptor and reports; everything above the library boundary is the real code.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import Clock

from upsagent.config.schema import UpsConfig
from upsagent.drivers.base import Result
from upsagent.drivers.usbhid import transport
from upsagent.drivers.usbhid.driver import UsbHidDriver
from upsagent.model import UPS, Availability

from tests.fakehid import FakeHidModule, FakeUps, FakeUsbCore, FakeUsbDevice, FakeUsbUtil
from tests.usbhidkit import (BACKUPS, SECOND, Spec, build, descriptor_bytes,
                             recorded_reports)
from tests.test_usbhid_decode import BACKUPS_STRINGS, DUMPS, nut_dump


def now(func: Callable[[], Any]) -> "Deferred[Any]":
    """The run_blocking seam, synchronous."""
    return maybeDeferred(func)


def backups(descriptor: bytes | None = None, **kw: Any) -> FakeUps:
    return FakeUps(descriptor_bytes(BACKUPS) if descriptor is None else descriptor,
                   recorded_reports(BACKUPS), strings=dict(BACKUPS_STRINGS), **kw)


def make(ups_dev: FakeUps | None = None, backend: Any = None, *, options: dict[str, str]
         | None = None, flags: tuple[str, ...] = ()) -> tuple[UsbHidDriver, UPS, Clock, Any]:
    clock = Clock()
    ups = UPS("usb")
    conf = UpsConfig("usb", "usbhid-ups", "auto", options={"port": "auto", **(options or {})},
                     flags=flags)
    module = FakeHidModule(*([ups_dev] if ups_dev else []))
    driver = UsbHidDriver(conf, ups, clock, backend=backend or transport.HidapiBackend(module),
                          run_blocking=now)
    return driver, ups, clock, module


def served(ups: UPS) -> dict[str, str]:
    return {var.name: var.value for var in ups.variables()}


def test_backups_served_as_nut_serves_it() -> None:
    """Every non-driver variable of NUT's dump of this unit, from the fake hidapi."""
    dev = backups()
    driver, ups, clock, _ = make(dev)
    started: list[object] = []
    driver.start().addCallback(started.append)
    assert started == [None] and ups.availability is Availability.OK
    nut = {k: v for k, v in nut_dump(
        DUMPS / "APC__Back-UPS_CS_500__usbhid-ups__2.8.0__01.dev").items()
        if not k.startswith("driver.")}
    got = served(ups)
    assert {k: got.get(k) for k in nut} == nut
    assert (got["driver.name"], got["driver.version.data"], got["driver.version.usb"]) == \
        ("usbhid-ups", "APC HID 0.101", "hidapi")
    assert sorted(ups.commands()) == ["shutdown.reboot", "test.panel.start", "test.panel.stop"]
    low = ups.get("battery.charge.low")
    assert low is not None and low.type_words() == ["RW", "RANGE", "STRING:10"]


def test_interrupt_report_changes_status_in_one_turn() -> None:
    dev = backups()
    driver, ups, clock, _ = make(dev)
    driver.start()
    changes: list[frozenset[str]] = []
    ups.add_observer(lambda change: changes.append(change.variables))
    clock.advance(0.5)                     # the first read timed out; the next is armed
    dev.interrupts.append(bytes([0x13, 0x00]))          # ACPresent = 0
    dev.interrupts.append(bytes([0x06, 0x00, 0x01, 0x08]))  # Discharging = 1
    clock.advance(0.5)                     # both arrive, one read each, in this turn
    assert ups.value("ups.status") == "OB DISCHRG"
    assert changes[-2:] == [frozenset({"ups.status"}), frozenset({"ups.status"})]


def test_polls_quick_then_full_at_nuts_cadence() -> None:
    dev = backups()
    driver, ups, clock, _ = make(dev)
    driver.start()
    dev.reads.clear()
    clock.advance(2)                       # quick: the quick rows' reports only
    assert sorted(set(dev.reads)) == [0x06, 0x13, 0x14, 0x40]
    updates = ups.updates
    for _ in range(15):
        clock.advance(2)
    assert ups.updates == updates + 15     # data_ok at every poll, within any maxage
    assert {0x0c, 0x09} <= set(dev.reads)  # a full poll happened at 30 s


def test_unplug_is_stale_at_once_and_replug_restores() -> None:
    dev = backups()
    driver, ups, clock, module = make(dev)
    driver.start()
    clock.advance(0)
    dev.plugged = False
    clock.advance(0.5)                     # the next interrupt read fails
    assert ups.availability is Availability.STALE and "usbhid-ups" in ups.reason
    for _ in range(3):
        clock.advance(2)
    assert ups.availability is Availability.STALE
    other = backups(serial="XX0000000001", path=b"/dev/hidraw-other")
    module.upses.append(other)             # another unit with another serial: not it
    clock.advance(2)
    assert ups.availability is Availability.STALE
    dev.plugged, dev.path = True, b"/dev/hidraw-fake-9"   # back, at another node
    clock.advance(2)
    assert ups.availability is Availability.OK and ups.value("ups.status") == "OL"


def test_a_device_that_stops_answering_is_lost_within_one_poll() -> None:
    """pollonly (no interrupt reads): the next poll finds no report answering."""
    dev = backups()
    driver, ups, clock, _ = make(dev, flags=("pollonly",))
    driver.start()
    assert dev.interrupt_reads == 0
    dev.features.clear()
    clock.advance(2)
    assert ups.availability is Availability.STALE
    assert "none of its reports" in ups.reason


def test_setvar_writes_the_feature_report() -> None:
    dev = backups()
    driver, ups, clock, _ = make(dev)
    driver.start()
    results: list[Result] = []
    driver.setvar("battery.charge.low", "20").addCallback(results.append)
    assert results == [Result.SUCCESS] and dev.writes == [bytes([0x11, 20, 0, 0])]
    clock.advance(0)                      # the write triggers a full poll (semi rows)
    assert ups.value("battery.charge.low") == "20"
    for name, value, expected in (("battery.charge.low", "x", Result.INVALID_ARGUMENT),
                                  ("battery.charge", "5", Result.UNKNOWN),
                                  ("no.such", "5", Result.UNKNOWN)):
        driver.setvar(name, value).addCallback(results.append)
        assert results[-1] is expected


def generic_ups() -> FakeUps:
    specs = [Spec("UPS.PowerSummary.RemainingCapacity", 1, 8, 0, 100),
             Spec("UPS.PowerSummary.PresentStatus.ACPresent", 2, 8, 0, 1),
             Spec("UPS.PowerSummary.DelayBeforeShutdown", 3, 16, -1, 32767, SECOND),
             Spec("UPS.PowerSummary.DelayBeforeStartup", 4, 16, -1, 32767, SECOND),
             Spec("UPS.PowerSummary.AudibleAlarmControl", 5, 8, 1, 3)]
    features = {1: b"\x01\x50", 2: b"\x02\x01", 3: b"\x03\xff\xff", 4: b"\x04\xff\xff",
                5: b"\x05\x02"}
    return FakeUps(build(specs), features, vendor_id=0x1234, product_id=0x5678,
                   manufacturer="ACME", product="Generic UPS", serial="S1")


def test_shutdown_return_writes_startup_then_shutdown_delay() -> None:
    """NUT's order and its 125 ms pause; the delays from ondelay/offdelay."""
    dev = generic_ups()
    driver, ups, clock, _ = make(dev, options={"ondelay": "40", "offdelay": "25"})
    driver.start()
    assert ups.value("driver.version.data") == "Generic HID (upsagent) 0.1"
    assert {"shutdown.return", "shutdown.stayoff", "load.off", "load.on", "beeper.mute",
            "shutdown.stop"} <= set(ups.commands())
    assert (ups.value("ups.delay.start"), ups.value("ups.delay.shutdown")) == ("40", "25")
    results: list[Result] = []
    driver.instcmd("shutdown.return").addCallback(results.append)
    assert dev.writes == [b"\x04\x28\x00"] and results == []
    clock.advance(0.125)
    assert dev.writes[-1] == b"\x03\x19\x00" and results == [Result.SUCCESS]
    dev.writes.clear()
    driver.instcmd("shutdown.stayoff")
    clock.advance(0.125)
    assert dev.writes == [b"\x04\xff\xff", b"\x03\x19\x00"]
    dev.writes.clear()
    driver.instcmd("beeper.off").addCallback(results.append)      # NUT's old name
    assert dev.writes == [b"\x05\x01"] and results[-1] is Result.SUCCESS
    driver.instcmd("load.off")
    assert dev.writes[-1] == b"\x03\x00\x00"
    driver.instcmd("no.such").addCallback(results.append)
    assert results[-1] is Result.UNKNOWN
    driver.setvar("ups.delay.shutdown", "60").addCallback(results.append)
    assert results[-1] is Result.SUCCESS and ups.value("ups.delay.shutdown") == "60"
    assert ups.get("ups.delay.shutdown").ranges == [(0, 32767)]  # type: ignore[union-attr]


def test_killpower_uses_shutdown_return() -> None:
    dev = generic_ups()
    driver, _, clock, _ = make(dev)
    driver.start()
    results: list[Result] = []
    driver.killpower().addCallback(results.append)
    clock.advance(0.125)
    assert results == [Result.SUCCESS] and dev.writes == [b"\x04\x1e\x00", b"\x03\x14\x00"]


def test_killpower_falls_back_like_nut() -> None:
    """The Back-UPS CS 500 has no DelayBefore* fields: NUT falls back to shutdown.reboot
    (APCDelayBeforeReboot, value 10, as NUT writes it)."""
    dev = backups()
    driver, _, clock, _ = make(dev)
    driver.start()
    results: list[Result] = []
    driver.killpower().addCallback(results.append)
    assert results == [Result.SUCCESS] and dev.writes == [bytes([0x40, 10])]


def test_missing_library_says_install_usb_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(choice: str = "auto") -> Any:
        raise transport.MissingLibrary(f"no hidapi: {transport.INSTALL}")
    monkeypatch.setattr(transport, "backend", missing)
    clock, ups = Clock(), UPS("usb")
    driver = UsbHidDriver(UpsConfig("usb", "usbhid-ups", "auto"), ups, clock)
    fired: list[object] = []
    driver.start().addCallback(fired.append)
    assert fired == [] and ups.availability is Availability.NOT_CONNECTED
    assert "install upsagent[usb]" in ups.reason


def test_real_backends_are_lazily_imported() -> None:
    """Without hidapi and pyusb installed (the test environment), a clear MissingLibrary."""
    try:
        transport.backend()
    except transport.MissingLibrary as exc:
        assert "install upsagent[usb]" in str(exc)


def test_no_device_keeps_trying_not_connected() -> None:
    driver, ups, clock, module = make(None)
    driver.start()
    assert ups.availability is Availability.NOT_CONNECTED and "no usable UPS" in ups.reason
    module.upses.append(backups())
    clock.advance(2)
    assert ups.availability is Availability.OK


def test_matching_options_select_the_device() -> None:
    dev = backups()
    for options, found in (({"vendorid": "051D"}, True), ({"serial": "AB0427.*"}, True),
                           ({"product": "back-ups 500.*"}, True), ({"serial": "nope"}, False),
                           ({"productid": "0003"}, False)):
        driver, ups, _, _ = make(dev, options=options)
        driver.start()
        assert (ups.availability is Availability.OK) is found, options
        driver.stop()


def test_pollonly_quirk_for_apc_5g() -> None:
    """051d:0003 (Smart-UPS 5G): NUT disables the interrupt pipe."""
    dev = backups(product_id=0x0003)
    driver, ups, clock, _ = make(dev)
    driver.start()
    clock.advance(2)
    assert ups.availability is Availability.OK and dev.interrupt_reads == 0


def test_stop_closes_the_device() -> None:
    dev = backups()
    driver, ups, clock, module = make(dev)
    driver.start()
    done: list[object] = []
    driver.stop().addCallback(done.append)
    assert done == [None] and module.opened[-1].closed
    assert ups.availability is Availability.NOT_CONNECTED
    clock.advance(10)
    assert dev.interrupt_reads <= 1


def test_pyusb_backend_serves_the_same() -> None:
    """The pyusb fallback through a fake usb.core/usb.util: same variables, writes work."""
    dev = backups()
    util = FakeUsbUtil()
    usb_dev = FakeUsbDevice(dev)
    driver, ups, clock, _ = make(None, transport.PyusbBackend(FakeUsbCore(usb_dev), util))
    driver.start()
    assert ups.availability is Availability.OK and usb_dev.detached and util.claimed == [0]
    assert ups.value("battery.type") == "PbAc" and ups.value("ups.serial") == "AB0427******"
    assert ups.value("ups.status") == "OL"
    clock.advance(0)                       # an interrupt read times out: nothing happens
    dev.interrupts.append(bytes([0x13, 0x00]))
    clock.advance(0.5)
    assert ups.value("ups.status") == "OB"
    dev.plugged = False
    clock.advance(0.5)
    assert ups.availability is Availability.STALE


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=12))
def test_fuzzed_interrupt_reports_never_crash(data: bytes) -> None:
    dev = backups()
    driver, ups, clock, _ = make(dev)
    driver.start()
    dev.interrupts.append(data)
    clock.advance(0)
    clock.advance(0.5)
    assert ups.availability is Availability.OK


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=64))
def test_fuzzed_descriptors_never_crash_the_driver(data: bytes) -> None:
    dev = backups(descriptor=data)
    driver, ups, clock, _ = make(dev)
    driver.start()
    clock.advance(2)
    assert ups.availability in (Availability.NOT_CONNECTED, Availability.OK)


# -- through the real server --------------------------------------------------------------


def test_served_through_the_master_and_watch_gets_the_change_at_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``driver = usbhid-ups`` in the master: clients read it; an interrupt report that
    changes the status reaches a WATCH client in the same reactor turn; an unplug is pushed
    as DATA-STALE and a replug brings the values back."""
    from twisted.internet.address import IPv4Address
    from twisted.internet.testing import MemoryReactorClock, StringTransport

    from upsagent.config.schema import ListenAddress, MasterConfig
    from upsagent.master.protocol import NutServerProtocol
    from upsagent.master.service import Master

    dev = backups()
    module = FakeHidModule(dev)
    monkeypatch.setattr(transport, "backend",
                        lambda choice="auto": transport.HidapiBackend(module))
    reactor = MemoryReactorClock()      # no thread pool: the driver's seam runs at once
    master = Master(MasterConfig(listen=(ListenAddress("127.0.0.1", 0),),
                                 ups=(UpsConfig("usb", "usbhid-ups", "auto"),)), reactor)
    master.start()
    addr = IPv4Address("TCP", "127.0.0.1", 40000)
    proto = master.factory.buildProtocol(addr)
    assert isinstance(proto, NutServerProtocol)
    wire = StringTransport(peerAddress=addr)
    proto.makeConnection(wire)
    proto.dataReceived(b"GET VAR usb ups.status\nGET VAR usb battery.charge\nWATCH usb\n")
    assert wire.value() == (b'VAR usb ups.status "OL"\nVAR usb battery.charge "100"\n'
                            b"OK WATCHING usb\n")
    wire.clear()
    reactor.advance(0.5)
    dev.interrupts.append(bytes([0x13, 0x00]))
    reactor.advance(0.5)
    assert wire.value() == b'NOTIFY usb VAR ups.status "OB"\n'
    wire.clear()
    dev.plugged = False
    reactor.advance(0.5)
    assert wire.value() == b"NOTIFY usb ERR DATA-STALE\n"
    wire.clear()
    dev.plugged = True
    reactor.advance(2)
    assert wire.value() == (b'NOTIFY usb VAR ups.status "OL"\n'      # read afresh
                            b'NOTIFY usb VAR battery.charge "100"\n'
                            b'NOTIFY usb VAR battery.runtime "2580"\n')
    master.stop()


def test_upsagent_killpower_reaches_a_usb_ups(monkeypatch: pytest.MonkeyPatch) -> None:
    """``upsagent killpower``'s kill_all (the separate process after the master stopped):
    the driver is started, finds the UPS, orders shutdown.return within the timeout."""
    from twisted.internet.testing import MemoryReactorClock

    from upsagent.cli.killpower import kill_all

    dev = generic_ups()
    module = FakeHidModule(dev)
    monkeypatch.setattr(transport, "backend",
                        lambda choice="auto": transport.HidapiBackend(module))
    reactor = MemoryReactorClock()
    results: list[list[tuple[str, bool, str]]] = []
    kill_all(reactor, [UpsConfig("usb", "usbhid-ups", "auto")], timeout=5).addCallback(
        results.append)
    reactor.advance(0.125)
    assert results == [[("usb", True, "shutdown.return acknowledged")]]
    assert dev.writes == [b"\x04\x1e\x00", b"\x03\x14\x00"] and module.opened[-1].closed


@pytest.mark.parametrize("source", ["ups.conf", "upsagent.toml"])
def test_configured_from_nut_files_or_native(source: str, tmp_path: Any,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """``driver = usbhid-ups`` with NUT's options, from ups.conf or upsagent.toml."""
    from twisted.internet.testing import MemoryReactorClock

    from upsagent.config.native import load_toml
    from upsagent.config.nutconf import load_nut_dir
    from upsagent.master.service import Master
    from upsagent.nut.server import ServerSession

    if source == "ups.conf":
        (tmp_path / "ups.conf").write_text("[rack]\n\tdriver = usbhid-ups\n\tport = auto\n"
                                           "\tvendorid = 051D\n\tpollonly\n")
        (tmp_path / "upsd.conf").write_text("LISTEN 127.0.0.1 3493\n")
        (tmp_path / "upsd.users").write_text("[admin]\n password = x\n actions = SET\n")
        (tmp_path / "upsd.users").chmod(0o600)
        config = load_nut_dir(tmp_path)
    else:
        (tmp_path / "upsagent.toml").write_text(
            '[master]\nlisten = ["127.0.0.1:3493"]\n[[ups]]\nname = "rack"\n'
            'driver = "usbhid-ups"\nport = "auto"\nflags = ["pollonly"]\n'
            '[ups.options]\nvendorid = "051D"\n')
        (tmp_path / "upsagent.toml").chmod(0o600)
        config = load_toml(tmp_path / "upsagent.toml")
    dev = backups()
    module = FakeHidModule(dev)
    monkeypatch.setattr(transport, "backend",
                        lambda choice="auto": transport.HidapiBackend(module))
    reactor = MemoryReactorClock()
    master = Master(config.master, reactor)
    for conf in config.master.ups:             # the drivers as start() adds them, no sockets
        master._add_ups(conf)
    session = ServerSession(master.state, "127.0.0.1")
    session.receive_data(b"GET VAR rack ups.status\nGET VAR rack driver.parameter.vendorid\n")
    assert session.data_to_send().decode().splitlines() == [
        'VAR rack ups.status "OL"', 'VAR rack driver.parameter.vendorid "051D"']
    reactor.advance(2)
    assert dev.interrupt_reads == 0            # pollonly
