"""``upsagent scan usb`` through a fake hidapi (and pyusb) module."""

from __future__ import annotations

import io
from typing import Any

import pytest

from upsagent.cli.scan import main
from upsagent.cli.scan_usb import main as usb
from upsagent.drivers.usbhid import transport

from tests.fakehid import FakeHidModule, FakeUps, FakeUsbCore, FakeUsbDevice, FakeUsbUtil
from tests.test_usbhid_driver import backups, generic_ups


def scan(monkeypatch: pytest.MonkeyPatch, backend: Any, *argv: str) -> tuple[int, str, str]:
    monkeypatch.setattr(transport, "backend", lambda choice="auto": backend)
    out, err = io.StringIO(), io.StringIO()
    return usb(list(argv), stdout=out, stderr=err), out.getvalue(), err.getvalue()


def test_claimed_and_generic_devices_with_config_to_paste(
        monkeypatch: pytest.MonkeyPatch) -> None:
    keyboard = FakeUps(b"", {}, vendor_id=0x046D, product_id=0xC31C, manufacturer="Logi",
                       product="Keyboard", serial="", usage_page=0x01, path=b"/dev/hidraw0")
    cps = FakeUps(b"", {}, vendor_id=0x0764, product_id=0x0501, manufacturer="CPS",
                  product='CP1500 "PFC"', serial="000000000000", path=b"/dev/hidraw2")
    module = FakeHidModule(backups(), keyboard, generic_ups(), cps)
    status, out, err = scan(monkeypatch, transport.HidapiBackend(module))
    assert (status, err) == (0, "")
    blocks = out.split("\n\n")
    assert blocks[0] == (
        "# 051d:0002 American Power Conversion / Back-UPS 500 FW: 6.5.I USB FW: c1 , serial "
        "AB0427******\n"
        "# driver usbhid-ups (table APC HID 0.101)\n"
        "[nutdev1]\n"
        "\tdriver = usbhid-ups\n"
        "\tport = auto\n"
        '\tdesc = "American Power Conversion Back-UPS 500 FW: 6.5.I USB FW: c1"\n'
        "\tvendorid = 051d\n"
        "\tproductid = 0002\n"
        '\tserial = "AB0427******"')
    assert blocks[1] == (
        "[[ups]]\n"
        'name = "nutdev1"\n'
        'driver = "usbhid-ups"\n'
        'port = "auto"\n'
        'desc = "American Power Conversion Back-UPS 500 FW: 6.5.I USB FW: c1"\n'
        "[ups.options]\n"
        'vendorid = "051d"\n'
        'productid = "0002"\n'
        'serial = "AB0427******"')
    assert "Keyboard" not in out                         # not a UPS
    assert "# driver usbhid-ups (a HID Power Device no table claims" in out   # 1234:5678
    assert '\tdesc = "CPS CP1500 \\"PFC\\""' in out and 'desc = "CPS CP1500 \\"PFC\\""' in out
    assert "\tserial" not in blocks[-3] and "\nserial" not in blocks[-2]  # zeros: unusable


def test_pyusb_gives_bus_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    dev = backups(serial="")
    dev.strings.pop(2)                     # no serial string at all
    backend = transport.PyusbBackend(FakeUsbCore(FakeUsbDevice(dev, bus=3, port=(1, 4))),
                                     FakeUsbUtil())
    status, out, _ = scan(monkeypatch, backend)
    assert status == 0
    assert ", bus 003 port 1.4\n" in out.splitlines()[0] + "\n"
    assert "\tbus = 003\n\tbusport = 1.4\n" in out and 'busport = "1.4"\n' in out


def test_nothing_found_and_no_library(monkeypatch: pytest.MonkeyPatch) -> None:
    status, out, err = scan(monkeypatch, transport.HidapiBackend(FakeHidModule()))
    assert (status, out) == (0, "") and "no UPS found" in err

    def missing(choice: str = "auto") -> Any:
        raise transport.MissingLibrary(f"no hidapi: {transport.INSTALL}")
    monkeypatch.setattr(transport, "backend", missing)
    err_io = io.StringIO()
    assert usb([], stdout=io.StringIO(), stderr=err_io) == 1
    assert "install upsagent[usb]" in err_io.getvalue()


def test_scan_dispatch(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0 and "usb" in capsys.readouterr().out
    assert main([]) == 2
    assert main(["nosuch"]) == 2 and "unknown family" in capsys.readouterr().err
