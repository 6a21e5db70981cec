"""The udev rules: generated from the drivers' tables, the committed file equal to them."""

from __future__ import annotations

from pathlib import Path

from upsagent.drivers.udevrules import claimed_ids, main, render
from upsagent.drivers.usbhid.driver import UsbHidDriver
from upsagent.drivers.usbhid.vendors import all_usb_ids

RULES = Path(__file__).resolve().parent.parent / "udev" / "62-upsagent-usb.rules"


def test_committed_rules_are_the_generated_ones() -> None:
    """Regenerate with: python -m upsagent.drivers.udevrules > udev/62-upsagent-usb.rules"""
    assert RULES.read_text() == render(claimed_ids())


def test_ids_come_from_the_drivers_tables() -> None:
    ids = claimed_ids()
    assert ids["usbhid-ups"] == all_usb_ids() == tuple(sorted(UsbHidDriver.usb_ids))
    assert "nutdrv_qx" in ids            # the Q1 driver's USB bridges, same generator
    text = RULES.read_text()
    # NUT's usbhid-ups ids (drivers.md a.7), a few from each family
    for vendor, product in ((0x051D, 0x0002), (0x0764, 0x0501), (0x0463, 0xFFFF),
                            (0x09AE, 0x3024), (0x050D, 0x0980), (0x10AF, 0x0004),
                            (0x0D9F, 0x00A6), (0x06DA, 0xFFFF), (0x2E66, 0x0302)):
        line = f'ATTR{{idVendor}}=="{vendor:04x}", ATTR{{idProduct}}=="{product:04x}"'
        assert line in text and line.replace("ATTR{", "ATTRS{") in text
    assert "09ae\", ATTR{idProduct}==\"0001\"" not in text     # tripplite_usb's, not HID


def test_group_option(capsys: object) -> None:
    assert 'GROUP="nut"' in render(claimed_ids(), "nut")
    assert main(["--group", "nut"]) == 0
