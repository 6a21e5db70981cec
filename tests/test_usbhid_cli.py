"""``upsagent decode usbhid``: upsc's format from a descriptor and recorded reports."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from upsagent.cli.decode import main, upsc_text, usbhid
from upsagent.drivers.usbhid.usages import GENERIC, UsageNames
from upsagent.drivers.usbhid.vendors import apc

from tests.usbhidkit import BACKUPS, DATA, SANTAK, SMARTUPS

DESC = str(DATA / f"{BACKUPS}.rdesc.hex")
TSV = str(DATA / f"{BACKUPS}.reports.tsv")


def decode(*argv: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = usbhid(list(argv), stdout=out, stdin=io.StringIO(stdin), stderr=err)
    return status, out.getvalue(), err.getvalue()


def test_backups_in_upsc_format() -> None:
    """NUT's dump of this unit, less what only the USB strings and the config give."""
    status, out, err = decode("--usb-id", "051d:0002", DESC, TSV)
    assert (status, err) == (0, "")
    assert out == (
        "battery.charge: 100\n"
        "battery.charge.low: 10\n"
        "battery.charge.warning: 50\n"
        "battery.mfr.date: 2004/07/03\n"
        "battery.runtime: 2580\n"
        "battery.voltage: 13.6\n"
        "battery.voltage.nominal: 12.0\n"
        "device.type: ups\n"
        "driver.name: usbhid-ups\n"
        "driver.version.data: APC HID 0.101\n"
        "ups.mfr.date: 2004/07/03\n"
        "ups.productid: 0002\n"
        "ups.status: OL\n"
        "ups.timer.reboot: 0\n"
        "ups.vendorid: 051d\n")


def test_without_usb_id_the_descriptor_decides() -> None:
    status, out, _ = decode(DESC, TSV)
    assert status == 0 and "driver.version.data: APC HID 0.101\n" in out
    assert "ups.vendorid" not in out and "battery.charge: 100\n" in out


def test_paths_show_the_values_nut_logged() -> None:
    """Every ``Path ... Value`` of NUT's debug log of this unit, as --paths prints it
    (``%g`` as NUT prints it: iManufacturer inherits volts and exponent 5 and is 0.03)."""
    status, out, _ = decode("--paths", DESC, TSV)
    assert status == 0
    lines = out.splitlines()
    generic, ours = UsageNames(GENERIC), apc.SUBDRIVER.names
    for line in (DATA / f"{BACKUPS}.reports.tsv").read_text().splitlines():
        if line.startswith("#"):
            continue
        _, path, _, _, _, _, value = line.split("\t")
        nodes = generic.path(path)
        assert nodes is not None
        assert f"{ours.path_text(nodes)}: {value}" in lines
    assert "UPS.PowerSummary.APCStatusFlag: 8" in lines
    assert len(lines) == len(set(lines)) == 27      # 35 fields, 8 paths both Input+Feature


def test_paths_without_reports_list_bare_paths() -> None:
    status, out, _ = decode("--paths", str(DATA / f"{SMARTUPS}.rdesc.hex"))
    assert status == 0
    assert "UPS.PowerSummary.PresentStatus.ACPresent\n" in out and ":" not in out


def test_santak_from_stdin() -> None:
    status, out, _ = decode("--usb-id", "0463:ffff", "-", str(DATA / f"{SANTAK}.reports.tsv"),
                            stdin=(DATA / f"{SANTAK}.rdesc.hex").read_text())
    assert status == 0
    assert "ups.load: 24\n" in out and "output.voltage: 230.0\n" in out
    assert "driver.version.data: MGE HID 1.60\n" in out


def test_malformed_descriptor_exit_1_with_the_parsers_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.hex"
    bad.write_text("05 84 09 04 a1 01 85 01 09 30 75 08 95 01 b1 02\n")
    status, out, err = decode(str(bad))
    assert (status, out) == (1, "")
    assert err == ("upsagent decode usbhid: report descriptor byte 16 (0x0010): "
                   "1 collection(s) not closed (innermost opened at byte 4)\n")
    bad.write_text("05 8")
    assert decode(str(bad))[0] == 1
    assert "no such file" in decode(str(tmp_path / "none.hex"))[2].lower()


def test_bad_reports_and_usage_errors(tmp_path: Path) -> None:
    tsv = tmp_path / "r.tsv"
    tsv.write_text("# comment\n0c 64 00\nzz\n")
    status, _, err = decode(DESC, str(tsv))
    assert status == 1 and "line 3" in err
    with pytest.raises(SystemExit) as caught:
        decode("--usb-id", "51d-2", DESC)
    assert caught.value.code == 2


def test_decode_dispatch(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0 and "usbhid" in capsys.readouterr().out
    assert main([]) == 2
    assert main(["nosuch"]) == 2 and "unknown family" in capsys.readouterr().err


def test_upsc_text_sorts_as_upsd_lists() -> None:
    assert upsc_text([("ups.status", "OL"), ("Battery.charge", "5"), ("a.b", "")]) == \
        "a.b: \nBattery.charge: 5\nups.status: OL\n"


def test_the_real_command() -> None:
    """Through ``python -m upsagent`` (the installed entry point)."""
    result = subprocess.run([sys.executable, "-m", "upsagent", "decode", "usbhid", DESC, TSV],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "ups.status: OL\n" in result.stdout
