# -*- test-case-name: tests.test_usbhid_parser -*-
"""The HID report descriptor parser: bytes in, fields out; pure (no I/O, no USB library).

A report descriptor (USB HID 1.11, section 6.2.2) is a list of *items*: a prefix byte
(tag, type, size) and 0, 1, 2 or 4 data bytes.  *Global* items (usage page, logical and
physical ranges, unit and exponent, report size, id and count) stay in force until changed
or popped; *local* items (usages, usage ranges) apply to the next *main* item only.  Main
items open and close collections or declare the fields of Input, Output and Feature reports.

:func:`parse_descriptor` walks the items and returns a :class:`ReportDescriptor` whose
:class:`Field` objects say where each value sits (report type and id, bit offset and size),
how to read it (signed or not, logical and physical range, unit and exponent) and what it
means (its usage path, e.g. ``UPS.PowerSummary.RemainingCapacity``).

It follows NUT's ``drivers/hidparser.c`` where NUT is what the usage tables were written
against, and the HID specification elsewhere:

* **Paths**: a collection adds its first usage to the path; a collection whose type byte is
  0x80 or more (vendor-defined, used by MGE/Eaton to number ``Input[1]``, ``Input[2]`` ...)
  also adds an *index* node ``0x00ff0000 | (type & 0x7f)`` shown as ``[n]``.
* **Usages per element**: element *i* of a main item gets the item's *i*-th usage; elements
  beyond the usages (padding, buffers) get none and are not listed, as in NUT.  Usage
  Minimum/Maximum ranges are expanded into usages (NUT ignores them).
* **Signs**: Logical/Physical Minimum/Maximum are signed little-endian numbers.  A Logical
  Maximum that is less than the Logical Minimum is the common firmware mistake ``15 00 25
  FF``; it is read again as unsigned (NUT's ``assumed_LogMax``) and the field says so.
* **Unit exponent**: the low nibble is a 4-bit two's complement number (0x0E = -2).

Anything malformed raises :class:`DescriptorError` naming the byte offset of the item and
what is wrong; no other exception escapes (the fuzz test holds us to it).  Limits keep a
hostile descriptor from exhausting memory: see ``MAX_*`` below.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = ["DescriptorError", "Field", "ReportDescriptor", "ReportType", "extract",
           "insert", "parse_descriptor", "parse_hex", "INDEX_NODE"]

#: a path node ``0x00ffXXXX`` is a collection index, shown as ``[XXXX]``
INDEX_NODE = 0x00FF0000
MAX_DESCRIPTOR = 65536        # bytes (real ones are 300..1200)
MAX_DEPTH = 32                # nested collections
MAX_PUSH = 16                 # Push depth
MAX_USAGES = 1024             # usages before one main item (ranges included)
MAX_FIELDS = 16384            # fields listed in total
MAX_REPORT_BITS = 8 * 4096    # one report, without its id byte

_SIZES = (0, 1, 2, 4)


class DescriptorError(ValueError):
    """A malformed report descriptor: ``offset`` is the byte where the bad item starts."""

    def __init__(self, offset: int, message: str) -> None:
        super().__init__(f"report descriptor byte {offset} (0x{offset:04x}): {message}")
        self.offset = offset
        self.reason = message


class ReportType(enum.IntEnum):
    """The three kinds of report (the values are the main item tags)."""

    INPUT = 8
    OUTPUT = 9
    FEATURE = 11

    @property
    def label(self) -> str:
        return self.name.capitalize()


@dataclass(frozen=True)
class Field:
    """One value of one report: where it is and how to read it."""

    kind: ReportType
    report_id: int
    #: bit offset after the report id byte, and size in bits
    offset: int
    size: int
    #: usage path, outermost collection first, the field's own usage last
    path: tuple[int, ...]
    logical_min: int
    logical_max: int
    physical_min: int | None
    physical_max: int | None
    unit: int
    unit_exponent: int
    #: the main item's data byte(s): bit 0 constant, bit 1 variable, bit 2 relative ...
    flags: int
    #: the Logical Maximum was read as unsigned because signed it was below the minimum
    assumed_logical_max: bool = False
    #: byte offset of the main item that declared the field
    item_offset: int = 0

    @property
    def usage(self) -> int:
        return self.path[-1]

    @property
    def constant(self) -> bool:
        return bool(self.flags & 1)


@dataclass(frozen=True)
class ReportDescriptor:
    """The parsed descriptor: its fields in declaration order and its report lengths."""

    fields: tuple[Field, ...]
    #: (report type, report id) -> length in bytes *without* the id byte
    lengths: dict[tuple[ReportType, int], int] = field(default_factory=dict)
    #: whether the descriptor declares report ids (then every report starts with one)
    numbered: bool = False
    size: int = 0

    def report_length(self, kind: ReportType, report_id: int) -> int:
        """Bytes of a report of this type and id, its id byte included."""
        return self.lengths.get((kind, report_id), 0) + 1

    def find(self, path: tuple[int, ...], kind: ReportType) -> Field | None:
        """The first field of this type with exactly this path (NUT's FindObject_with_Path)."""
        for item in self.fields:
            if item.kind is kind and item.path == path:
                return item
        return None

    def report_ids(self, kind: ReportType) -> list[int]:
        return sorted({rid for (k, rid) in self.lengths if k is kind})


@dataclass
class _Globals:
    usage_page: int = 0
    logical_min: int = 0
    logical_max: int = 0
    logical_max_raw: tuple[int, int] = (0, 0)    # (unsigned value, byte count)
    physical_min: int | None = None
    physical_max: int | None = None
    unit: int = 0
    unit_exponent: int = 0
    report_size: int = 0
    report_id: int = 0
    report_count: int = 0

    def copy(self) -> "_Globals":
        return _Globals(**self.__dict__)


def parse_hex(text: str) -> bytes:
    """Hex text as in the fixtures (white space and line breaks ignored) to bytes."""
    compact = "".join(text.split())
    if len(compact) % 2:
        raise ValueError("odd number of hex digits")
    try:
        return bytes.fromhex(compact)
    except ValueError:
        raise ValueError("not hexadecimal text") from None


def _signed(value: int, size: int) -> int:
    if size == 0:
        return 0
    bits = 8 * size
    return value - (1 << bits) if value & (1 << (bits - 1)) else value


def parse_descriptor(data: bytes) -> ReportDescriptor:
    """Parse a report descriptor; raises :class:`DescriptorError` (only) when malformed."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DescriptorError(0, "not bytes")
    data = bytes(data)
    if not data:
        raise DescriptorError(0, "empty descriptor")
    if len(data) > MAX_DESCRIPTOR:
        raise DescriptorError(MAX_DESCRIPTOR, f"longer than {MAX_DESCRIPTOR} bytes")
    return _Parser(data).run()


class _Parser:
    """One pass over the items (state kept here, so the function above stays short)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.glob = _Globals()
        self.stack: list[_Globals] = []
        self.usages: list[int] = []
        self.usage_min: int | None = None
        self.path: list[int] = []
        #: per open collection: how many path nodes it added
        self.collections: list[tuple[int, int]] = []   # (nodes added, offset)
        self.offsets: dict[tuple[ReportType, int], int] = {}
        self.fields: list[Field] = []
        self.numbered = False
        self.unnumbered = False
        self.pos = 0

    def run(self) -> ReportDescriptor:
        data = self.data
        while self.pos < len(data):
            start = self.pos
            prefix = data[start]
            if prefix == 0xFE:                       # long item: skip it whole
                if start + 3 > len(data):
                    raise DescriptorError(start, "long item cut short")
                end = start + 3 + data[start + 1]
                if end > len(data):
                    raise DescriptorError(start, "long item data runs past the end")
                self.pos = end
                continue
            size = _SIZES[prefix & 0x03]
            end = start + 1 + size
            if end > len(data):
                raise DescriptorError(start, f"item 0x{prefix:02x} needs {size} data "
                                      f"byte(s), only {len(data) - start - 1} left")
            raw = int.from_bytes(data[start + 1:end], "little")
            self.pos = end
            kind, tag = (prefix >> 2) & 0x03, prefix >> 4
            if kind == 0:
                self.main(start, tag, raw, size)
            elif kind == 1:
                self.global_item(start, tag, raw, size)
            elif kind == 2:
                self.local_item(start, tag, raw, size)
            else:
                raise DescriptorError(start, f"reserved item type (prefix 0x{prefix:02x})")
        if self.collections:
            opened = self.collections[-1][1]
            raise DescriptorError(len(data), f"{len(self.collections)} collection(s) not "
                                  f"closed (innermost opened at byte {opened})")
        lengths = {key: (bits + 7) // 8 for key, bits in self.offsets.items()}
        return ReportDescriptor(tuple(self.fields), lengths, self.numbered, len(data))

    # -- item kinds ------------------------------------------------------------------

    def main(self, start: int, tag: int, raw: int, size: int) -> None:
        if tag in (8, 9, 11):
            self.data_item(start, ReportType(tag), raw)
        elif tag == 10:                                  # Collection
            if len(self.collections) >= MAX_DEPTH:
                raise DescriptorError(start, f"collections nested deeper than {MAX_DEPTH}")
            usage = self.usages[0] if self.usages else 0
            self.path.append(usage)
            added = 1
            if raw >= 0x80:
                self.path.append(INDEX_NODE | (raw & 0x7F))
                added = 2
            self.collections.append((added, start))
        elif tag == 12:                                  # End Collection
            if not self.collections:
                raise DescriptorError(start, "End Collection without an open collection")
            added, _ = self.collections.pop()
            del self.path[len(self.path) - added:]
        else:
            raise DescriptorError(start, f"reserved main item tag 0x{tag:x}")
        self.usages = []
        self.usage_min = None

    def data_item(self, start: int, kind: ReportType, flags: int) -> None:
        glob = self.glob
        if glob.report_id == 0:
            if self.numbered:
                raise DescriptorError(start, "main item without a Report ID in a "
                                      "descriptor that uses report ids")
            self.unnumbered = True
        key = (kind, glob.report_id)
        offset = self.offsets.get(key, 0)
        total = offset + glob.report_size * glob.report_count
        if total > MAX_REPORT_BITS:
            raise DescriptorError(start, f"{kind.label} report {glob.report_id} longer "
                                  f"than {MAX_REPORT_BITS // 8} bytes")
        self.offsets[key] = total
        lmin, lmax, assumed = glob.logical_min, glob.logical_max, False
        if lmax < lmin:
            unsigned, nbytes = glob.logical_max_raw
            if nbytes and unsigned >= lmin:
                lmax, assumed = unsigned, True
        count = min(glob.report_count, len(self.usages))
        if len(self.fields) + count > MAX_FIELDS:
            raise DescriptorError(start, f"more than {MAX_FIELDS} fields")
        for index in range(count):
            self.fields.append(Field(
                kind, glob.report_id, offset + index * glob.report_size, glob.report_size,
                (*self.path, self.usages[index]), lmin, lmax, glob.physical_min,
                glob.physical_max, glob.unit, glob.unit_exponent, flags, assumed, start))

    def global_item(self, start: int, tag: int, raw: int, size: int) -> None:
        glob = self.glob
        if tag == 0:
            glob.usage_page = raw & 0xFFFF
        elif tag == 1:
            glob.logical_min = _signed(raw, size)
        elif tag == 2:
            glob.logical_max = _signed(raw, size)
            glob.logical_max_raw = (raw, size)
        elif tag == 3:
            glob.physical_min = _signed(raw, size)
        elif tag == 4:
            glob.physical_max = _signed(raw, size)
        elif tag == 5:
            # NUT: (int8_t)value, and 8..127 taken as a 4-bit negative number (0x0E = -2)
            exponent = _signed(raw & 0xFF, 1)
            glob.unit_exponent = _signed((exponent | 0xF0) & 0xFF, 1) if exponent > 7 \
                else exponent
        elif tag == 6:
            glob.unit = raw
        elif tag == 7:
            glob.report_size = raw
        elif tag == 8:
            if raw == 0 or raw > 255:
                raise DescriptorError(start, f"Report ID {raw} is not 1..255")
            if self.unnumbered:
                raise DescriptorError(start, "Report ID after fields declared without one")
            glob.report_id = raw
            self.numbered = True
        elif tag == 9:
            glob.report_count = raw
        elif tag == 10:                                  # Push
            if len(self.stack) >= MAX_PUSH:
                raise DescriptorError(start, f"Push nested deeper than {MAX_PUSH}")
            self.stack.append(glob.copy())
        elif tag == 11:                                  # Pop
            if not self.stack:
                raise DescriptorError(start, "Pop without a Push")
            self.glob = self.stack.pop()
        else:
            raise DescriptorError(start, f"reserved global item tag 0x{tag:x}")

    def local_item(self, start: int, tag: int, raw: int, size: int) -> None:
        if tag == 0:                                     # Usage
            self.add_usages(start, [self.extended(raw, size)])
        elif tag == 1:                                   # Usage Minimum
            self.usage_min = self.extended(raw, size)
        elif tag == 2:                                   # Usage Maximum
            if self.usage_min is None:
                raise DescriptorError(start, "Usage Maximum without a Usage Minimum")
            high = self.extended(raw, size)
            low, self.usage_min = self.usage_min, None
            if high < low or (high >> 16) != (low >> 16):
                raise DescriptorError(start, f"usage range 0x{low:08x}..0x{high:08x} "
                                      "is empty or spans usage pages")
            if high - low + 1 > MAX_USAGES:
                raise DescriptorError(start, f"usage range of more than {MAX_USAGES} usages")
            self.add_usages(start, list(range(low, high + 1)))
        elif tag in (3, 4, 5, 7, 8, 9, 10):              # designators, strings, delimiter
            pass
        else:
            raise DescriptorError(start, f"reserved local item tag 0x{tag:x}")

    def extended(self, raw: int, size: int) -> int:
        """A usage: a 4-byte item carries its own page, shorter ones use the global one."""
        return raw if size == 4 else (self.glob.usage_page << 16) | (raw & 0xFFFF)

    def add_usages(self, start: int, usages: list[int]) -> None:
        if len(self.usages) + len(usages) > MAX_USAGES:
            raise DescriptorError(start, f"more than {MAX_USAGES} usages before one item")
        self.usages.extend(usages)


# -- values in reports -------------------------------------------------------------------


def _hibit(value: int) -> int:
    """1 + the position of the highest set bit (0 for 0), as NUT's hibit()."""
    return value.bit_length()


def extract(item: Field, report: bytes) -> int:
    """The logical value of ``item`` in ``report`` (its first byte is the report id).

    As NUT's ``GetValue``: the bits are read LSB first (bytes missing from a short report
    read as 0), masked to the width the logical range needs, sign-extended only when the
    minimum is negative, and clamped into the logical range.
    """
    bit = item.offset + 8
    value = 0
    first, last = bit >> 3, (bit + item.size + 7) >> 3
    chunk = bytes(report[first:last])
    if chunk:
        value = (int.from_bytes(chunk, "little") >> (bit & 7)) & ((1 << item.size) - 1)
    lmin, lmax = item.logical_min, item.logical_max
    mag_max = lmax if lmax >= 0 else -(lmax + 1)
    mag_min = lmin if lmin >= 0 else -(lmin + 1)
    signbit = 1 << _hibit(max(mag_max, mag_min))
    mask = (signbit - 1) | (signbit if lmin < 0 else 0)
    value &= mask
    if lmin < 0 and value & signbit:
        value -= mask + 1
    if value < lmin:
        return lmin
    if value > lmax:
        return lmax
    return value


def insert(item: Field, report: bytearray, value: int) -> None:
    """Write ``value`` (two's complement, ``item.size`` bits) into ``report`` in place."""
    bit = item.offset + 8
    need = (bit + item.size + 7) >> 3
    if len(report) < need:
        report.extend(bytes(need - len(report)))
    for weight in range(item.size):
        pos = bit + weight
        if (value >> weight) & 1:
            report[pos >> 3] |= 1 << (pos & 7)
        else:
            report[pos >> 3] &= ~(1 << (pos & 7)) & 0xFF
