"""The HID report descriptor parser (drivers/usbhid/hidparser.py): pure, total, NUT's paths.

Every fixture descriptor parses to the last byte; the fields agree with what NUT's debug log
says about the same descriptor (report id, offset, size, logical range, unit, exponent);
malformed descriptors give a :class:`DescriptorError` naming the byte, and nothing else
ever escapes (hypothesis).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from upsagent.drivers.usbhid.hidparser import (
    INDEX_NODE, DescriptorError, ReportType, extract, insert, parse_descriptor, parse_hex)
from upsagent.drivers.usbhid.usages import GENERIC, UsageNames

DATA = Path(__file__).parent / "data" / "usbhid"
NAMES = UsageNames(GENERIC)


def load(name: str) -> bytes:
    return parse_hex((DATA / f"{name}.rdesc.hex").read_text())


BACKUPS = "apc-back-ups-cs-500_051d-0002"
SMARTUPS = "apc-smart-ups-x-750_051d-0003"
SANTAK = "santak-tg-box-850_mge-hid"


@pytest.mark.parametrize("name,size,fields", [(BACKUPS, 374, 35), (SMARTUPS, 425, 54),
                                              (SANTAK, 926, 95)])
def test_fixture_descriptors_parse_to_the_last_byte(name: str, size: int, fields: int) -> None:
    """Sizes as SOURCES.md gives them; field counts: NUT's log says 35 for the Back-UPS."""
    desc = parse_descriptor(load(name))
    assert desc.size == size and len(desc.fields) == fields and desc.numbered


def test_backups_fields_match_nuts_log() -> None:
    """Path, type, report id, offset, size as NUT's ``-DDDDD`` log of the same unit."""
    desc = parse_descriptor(load(BACKUPS))
    seen = [(NAMES.path_text(f.path), f.kind.label, f.report_id, f.offset, f.size)
            for f in desc.fields]
    # the lines of the NUT log (nut-ddl APC__Back-UPS_CS_500__usbhid-ups__2.8.0__01.dev)
    for line in (DATA / f"{BACKUPS}.reports.tsv").read_text().splitlines():
        if line.startswith("#"):
            continue
        _, path, kind, rid, offset, size, _ = line.split("\t")
        assert (path, kind, int(rid, 16), int(offset), int(size)) in seen
    volt = desc.find(NAMES.path("UPS.PowerSummary.Voltage") or (), ReportType.FEATURE)
    assert volt is not None
    assert (volt.unit, volt.unit_exponent, volt.logical_min, volt.logical_max) == \
        (0x00F0D121, 5, 0, 65534)
    assert desc.report_length(ReportType.FEATURE, 0x0C) == 6     # 0c 64 00 00 14 0a


def test_index_collections_and_signed_ranges() -> None:
    """MGE's vendor collection types 0x81.. number the path; negative minima stay signed."""
    desc = parse_descriptor(load(SANTAK))
    texts = {NAMES.path_text(f.path) for f in desc.fields}
    assert "UPS.Flow.[4].ConfigApparentPower" in texts
    assert "UPS.OutletSystem.Outlet.[2].PresentStatus.Switchable" in texts
    delay = desc.find(NAMES.path("UPS.PowerSummary.DelayBeforeShutdown") or (),
                      ReportType.FEATURE)
    assert delay is not None and (delay.logical_min, delay.logical_max) == (-1, 2**31 - 1)
    smx = parse_descriptor(load(SMARTUPS))
    reboot = smx.find(NAMES.path("UPS.PowerSummary.DelayBeforeReboot") or (),
                      ReportType.FEATURE)
    assert reboot is not None and (reboot.logical_min, reboot.size) == (-1, 24)
    assert extract(reboot, bytes([0x13, 0xFF, 0xFF, 0xFF])) == -1


def test_wrong_logical_maximum_is_read_unsigned() -> None:
    """``15 00 25 ff``: signed the maximum would be -1; read as 255 and flagged (NUT)."""
    desc = parse_descriptor(bytes.fromhex(
        "05 84 09 04 a1 01 85 01 09 30 75 08 95 01 15 00 25 ff b1 02 c0".replace(" ", "")))
    (item,) = desc.fields
    assert (item.logical_min, item.logical_max, item.assumed_logical_max) == (0, 255, True)
    assert extract(item, b"\x01\xe6") == 230


def test_push_pop_usage_ranges_and_long_items() -> None:
    """Push/Pop restore globals; Usage Min/Max expand; long items are skipped."""
    data = bytes.fromhex(
        "0584 0904 a101 8501 7508 9502 1500 2564"     # globals: 8 bits x 2, 0..100
        "a4 7510 9501 0930 b102 b4"                   # push, 16 bits, pop
        "1966 2967 b102"                              # usage range 66..67, 2 x 8 bits
        "fe0201 aabb"                                 # a long item
        "c0")
    desc = parse_descriptor(data)
    assert [(NAMES.path_text(f.path), f.offset, f.size) for f in desc.fields] == [
        ("UPS.Voltage", 0, 16), ("UPS.OverCharged", 16, 8), ("UPS.OverTemperature", 24, 8)]


def test_insert_then_extract() -> None:
    desc = parse_descriptor(load(SANTAK))
    delay = desc.find(NAMES.path("UPS.PowerSummary.DelayBeforeShutdown") or (),
                      ReportType.FEATURE)
    assert delay is not None
    report = bytearray([delay.report_id])
    insert(delay, report, -1 & 0xFFFFFFFF)
    assert bytes(report) == b"\x09\xff\xff\xff\xff" and extract(delay, report) == -1
    insert(delay, report, 20)
    assert extract(delay, report) == 20


@pytest.mark.parametrize("data,offset,words", [
    (b"", 0, "empty"),
    (bytes.fromhex("0584 0904 a101 8501 0930 7508 9501 b102"), 16, "not closed"),
    (bytes.fromhex("c0"), 0, "without an open collection"),
    (bytes.fromhex("0584 0904 a101 27ff ff"), 6, "needs 4 data byte"),
    (bytes.fromhex("b4"), 0, "Pop without a Push"),
    (bytes.fromhex("8500"), 0, "Report ID 0"),
    (bytes.fromhex("f4"), 0, "reserved global"),
    (bytes.fromhex("0d00"), 0, "reserved item type"),
    (bytes.fromhex("fe05"), 0, "long item"),
    (bytes.fromhex("2930"), 0, "Usage Maximum without a Usage Minimum"),
    (bytes.fromhex("0930 7508 9501 8102 8501 0930 8102"), 8, "Report ID after fields"),
])
def test_malformed_descriptors_name_the_byte(data: bytes, offset: int, words: str) -> None:
    with pytest.raises(DescriptorError) as caught:
        parse_descriptor(data)
    assert caught.value.offset == offset and words in str(caught.value)
    assert f"byte {offset}" in str(caught.value)


def test_hostile_sizes_are_refused() -> None:
    """A report count of 2^32 is an error, not an allocation."""
    data = bytes.fromhex("0584 0904 a101 8501 0930 7508 97ffffffff b102 c0")
    with pytest.raises(DescriptorError, match="longer than"):
        parse_descriptor(data)


def test_parse_hex() -> None:
    assert parse_hex("05 84\n09 04 ") == b"\x05\x84\x09\x04"
    for bad in ("0", "zz"):
        with pytest.raises(ValueError):
            parse_hex(bad)


# -- fuzz -------------------------------------------------------------------------------

_REAL = [load(name) for name in (BACKUPS, SMARTUPS, SANTAK)]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A real descriptor with bytes flipped, cut, inserted or deleted."""
    data = bytearray(draw(st.sampled_from(_REAL)))
    for _ in range(draw(st.integers(1, 8))):
        action = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if action == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[pos:]
        elif action == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=6))
        elif data:
            del data[pos]
    return bytes(data)


def _check(data: bytes) -> None:
    try:
        desc = parse_descriptor(data)
    except DescriptorError as exc:
        assert 0 <= exc.offset <= len(data) + 1
        return
    for item in desc.fields:        # every field is readable from any report bytes
        extract(item, bytes([item.report_id]) + bytes(8))
        NAMES.path_text(item.path)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes_only_descriptor_errors(data: bytes) -> None:
    _check(data)


@settings(max_examples=400, deadline=None)
@given(mutated())
def test_fuzz_mutated_descriptors_only_descriptor_errors(data: bytes) -> None:
    _check(data)


def test_index_node_value() -> None:
    assert NAMES.name(INDEX_NODE | 3) == "[3]" and NAMES.path("UPS.[3]") == (0x840004,
                                                                             INDEX_NODE | 3)
