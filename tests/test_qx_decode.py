"""``upsagent decode q1``: recorded exchanges replayed through the driver's engine.

Recorded units (tests/data/qx/*.q1log) decode from their reassembled replies and, with the
bridge's rules, from their raw chunks alone, to the same output.  Replies reconstructed from
NUT's dumps of three real units (``reconstructed-*.q1log``, labelled as such) decode to what
NUT published for them, except where we differ on purpose (listed in each test).
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from upsagent.cli import decode as decode_cli
from upsagent.cli.decode_q1 import main
from upsagent.drivers.qx.q1log import LogError, decode, parse_log

DATA = Path(__file__).parent / "data" / "qx"

VULTECH = """\
battery.charge: 100
battery.voltage: 27.00
battery.voltage.high: 26.00
battery.voltage.low: 20.80
battery.voltage.nominal: 24.0
device.type: ups
driver.name: nutdrv_qx
driver.version.data: Megatec 0.06
input.current.nominal: 5.0
input.frequency: 49.0
input.frequency.nominal: 50
input.voltage: 233.0
input.voltage.fault: 0.0
input.voltage.nominal: 220
output.voltage: 233.0
ups.beeper.status: enabled
ups.delay.shutdown: 30
ups.delay.start: 180
ups.load: 14
ups.status: OL
ups.temperature: 20.8
ups.type: offline / line interactive
"""


def run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), stdout=out, stdin=io.StringIO(stdin), stderr=err)
    return status, out.getvalue(), err.getvalue()


def without_reassembled(name: str, tmp_path: Path, header: bool = True) -> Path:
    """A copy of a log with only its raw chunks (and, if not ``header``, no transport line)."""
    lines = [line for line in (DATA / name).read_text().splitlines()
             if not line.startswith("< ") and (header or not line.startswith("# transport"))
             and not line.startswith("#   ")]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def dump(name: str) -> dict[str, str]:
    """A NUT .dev dump's variables (inline ``#COMMENT:`` notes removed)."""
    out = {}
    for line in (DATA / name).read_text().splitlines():
        if line.startswith("#") or ": " not in line:
            continue
        key, _, value = line.partition(": ")
        out[key] = value.split(" #COMMENT")[0].strip()
    return out


def decoded(path: Path | str) -> dict[str, str]:
    status, out, err = run(str(path))
    assert status == 0, err
    return dict(line.split(": ", 1) for line in out.splitlines())


# -- recorded units ---------------------------------------------------------------------


def test_vultech_from_reassembled_replies() -> None:
    status, out, err = run(str(DATA / "vultech-v2000_armac-usb.q1log"))
    assert (status, out, err) == (0, VULTECH, "")


def test_vultech_from_raw_chunks_alone(tmp_path: Path) -> None:
    """The armac rules rebuild every reply, the NUL inside the status bits included."""
    path = without_reassembled("vultech-v2000_armac-usb.q1log", tmp_path)
    assert run(str(path))[1] == VULTECH
    (tmp_path / "bare").mkdir()
    bare = without_reassembled("vultech-v2000_armac-usb.q1log", tmp_path / "bare",
                               header=False)
    status, out, err = run(str(bare))
    assert status == 1 and "no bridge" in err and "--bridge" in err
    assert run("--bridge", "armac", str(bare))[1] == VULTECH


def test_armac_on_battery_from_raw_chunks(tmp_path: Path) -> None:
    path = without_reassembled("armac-r2000i-psw_armac-usb.q1log", tmp_path)
    values = decoded(path)
    assert values == decoded(DATA / "armac-r2000i-psw_armac-usb.q1log")
    assert values["ups.status"] == "OB" and values["input.voltage.fault"] == "140.0"
    assert values["driver.version.data"] == "Q1 0.07"  # no F, no I in this capture


def test_protocol_document_example() -> None:
    values = decoded(DATA / "megatec-spec_example.q1log")
    assert values["ups.status"] == "ALARM OL BYPASS"
    assert values["ups.alarm"] == "UPS selftest failed!"
    assert values["battery.voltage"] == "2.05" and values["ups.type"] == "online"


def test_each_later_status_reply_is_a_poll(tmp_path: Path) -> None:
    log = (DATA / "vultech-v2000_armac-usb.q1log").read_text()
    log += "> Q1\\r\n< (000.0 140.0 227.0 002 00.0 23.4 56.0 11001000\\r\n"
    log += "> Q1\\r\n< garbage\\r\n"
    path = tmp_path / "two.q1log"
    path.write_text(log)
    values = decoded(path)
    assert values["ups.status"] == "OB LB" and values["battery.charge"] == "50"
    status, out, err = run("-v", str(path))
    assert "a later status reply" in err and "no data, skipped" in err


# -- units NUT dumped: the same values ---------------------------------------------------

#: what only a live driver publishes (not decode): driver.*, the USB ids
LIVE_ONLY = ("driver.", "ups.vendorid", "ups.productid")


def compare(ours: dict[str, str], nut: dict[str, str]) -> dict[str, tuple[str | None, str | None]]:
    keys = {k for k in set(ours) | set(nut) if not k.startswith(LIVE_ONLY)}
    return {k: (ours.get(k), nut.get(k)) for k in sorted(keys) if ours.get(k) != nut.get(k)}


def test_eaton_5e_like_nut_from_ippon_chunks() -> None:
    nut = dump("Eaton__5E2200USB-LA__nutdrv_qx__2.7.4.1__01.dev")
    ours = decoded(DATA / "reconstructed-eaton-5e2200usb-la_ippon-usb.q1log")
    assert compare(ours, nut) == {}
    assert ours["driver.version.data"] == nut["driver.version.data"] == "Q1 0.07"


def test_powerwalker_like_nut_from_cypress_chunks() -> None:
    nut = dump("PowerWalker__VI_1500_CSW_IEC__nutdrv_qx__2.8.1__01.dev")
    ours = decoded(DATA / "reconstructed-powerwalker-vi1500csw_cypress-usb.q1log")
    # NUT 2.8.1 passes the battery field through as text (qx_multiply_battvolt); 2.8.0 and
    # we print it with "%.2f", as every other Q1 value is printed.  driver.debug/state are
    # 2.8.1 additions of the driver core.
    assert compare(ours, nut) == {"battery.voltage": ("27.70", "27.7")}
    assert ours["ups.firmware.aux"] == "PM-H"


def test_santak_like_nut_except_its_negative_limits() -> None:
    nut = dump("Santak__Castle_C1K__blazer_ser__2.7.4__01.dev")
    ours = decoded(DATA / "reconstructed-santak-castle-c1k_serial.q1log")
    # blazer.c guessed limits from an unknown nominal voltage (-1) and published
    # -1.08/-0.87; without a nominal voltage we publish no limits (as nutdrv_qx does).
    assert compare(ours, nut) == {"battery.voltage.high": (None, "-1.08"),
                                  "battery.voltage.low": (None, "-0.87")}


# -- errors and the command line -------------------------------------------------------


@pytest.mark.parametrize("text, where", [
    ("> Q1\\r\n< (233.0\\r\nsomething else\n", "line 3: not a command"),
    ("< (233.0\\r\n", "line 1: a reply before any command"),
    ("> Q1\\r\n  chunk 81 zz\n", "line 2: not a command"),
    ("> Q1\n", "line 1: a command must end with \\r"),
    ("> Q1\\r\n< a\\r\n< b\\r\n", "line 3: a second reply"),
])
def test_malformed_lines_exit_1_naming_the_line(text: str, where: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.q1log"
    path.write_text(text)
    status, out, err = run(str(path))
    assert status == 1 and out == "" and where in err


def test_unreadable_and_undecodable_logs() -> None:
    assert run("/nonexistent/x.q1log")[0] == 1
    status, out, err = run("-", stdin="> Q1\\r\n(none)\n")
    assert status == 1 and "no supported UPS answered" in err
    status, out, err = run("-", stdin="> Q1\\r\n< (233.0 000.0 233.0 014 49.0 27.0 20.8 "
                                      "00001001\\r\n")
    assert status == 0 and "ups.status: OL\n" in out


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--bridge", "nosuch", "x.q1log"])
    assert exit_.value.code == 2


def test_the_family_is_listed(capsys: pytest.CaptureFixture[str]) -> None:
    assert decode_cli.main(["--help"]) == 0
    assert "q1 " in capsys.readouterr().out
    assert decode_cli.main(["q1", str(DATA / "vultech-v2000_armac-usb.q1log")]) == 0
    assert capsys.readouterr().out == VULTECH


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([
    "> Q1\\r", "> F\\r", "> I\\r", "> M\\r", "> QS\\r", "(none)", "< V\\r", "< NAK\\r",
    "< (233.0 000.0 233.0 014 49.0 27.0 20.8 00001001\\r", "< #220.0 005 24.00 50.0\\r",
    "  chunk 81 28 30", "  chunk c1 0d", "# transport: armac", "< (@@@.@\\r", "junk",
    "< (233.0 000.0 233.0 014 49.0 27.0 20.8 0000100x\\r", ""]), max_size=12))
def test_fuzzed_logs_decode_or_say_why(lines: list[str]) -> None:
    try:
        values, _ = decode(parse_log("\n".join(lines)))
    except LogError:
        return
    assert values["ups.status"].split()[0] in ("OL", "OB", "ALARM")
