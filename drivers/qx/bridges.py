# -*- test-case-name: tests.test_qx_usb -*-
"""How each USB bridge chip carries Q1 text, pure: what the host sends, how replies arrive.

The bridges are NUT's USB "communication subdrivers" in ``nutdrv_qx.c``; every rule below
is theirs (byte layouts, chunk sizes, control bytes, string indexes).  This module only
says how bytes are shaped; :mod:`.usb` moves them with pyusb, and ``upsagent decode q1``
uses the same :class:`Assembler` classes on recorded raw chunks.

* **cypress** (0665:5161 and others): the command, zero-padded, as HID SET_REPORT control
  transfers (``0x21``, ``0x09``, wValue ``0x0200``) of 8 bytes; the reply from the
  interrupt endpoint ``0x81`` in 8-byte reads until one holds a CR.
* **phoenix** (06da:0601, 14f0:00c9): cypress after draining up to 8 stale reads.
* **ippon** (06da:0003): cypress's chunks with wValue ``0x0002``; the reply is one 64-byte
  read, cut after the first CR (a CR is added when there is none).
* **krauler** (0001:0000, 1cb0:0035): no commands at all, only GET_DESCRIPTOR(string) with
  a fixed index per command (:data:`KRAULER_INDEX`); the string's first character is
  replaced by ``(`` or ``#``; ``UPS No Ack`` is asked again (10 times).
* **fabula**, **hunnox** (0001:0000 "MEC0003"): string indexes too, shutdowns encoded in the
  index (:func:`fabula_index`); every command answers ``UPS No Ack``, which means "done" for
  commands and "no data" for queries.  hunnox also asks a fixed sequence of strings
  before each command (lock-step) and never more than 102 bytes.
* **snr** (0001:0000 "MEC0003", only with ``subdriver = snr``): one 102-byte interrupt read
  first, then string indexes for Q1, F, I with a raw UTF-16 descriptor.
* **fuji** (0001:0000 "ATCL FOR UPS"): 8-byte interrupt OUT ``80 06 <len+1> 03 <cmd>
  <pad> <reply length>``, commands of 3 characters at most (``SnRm`` becomes ``Sn``); reply
  in 8-byte chunks, zero padded.
* **sgs** (0483:0035): SET_REPORT chunks of a count byte and up to 7 bytes; replies alike,
  read until a timeout.
* **phoenixtec** (06da:0002 "Phoenixtec Power" / "USB Cable (V2.00)"): the whole command in
  one vendor control transfer (``0x42``, request ``0x0d``); commands that act get no read.
* **armac** (0925:1234, Richcomm): SET_REPORT of 4 bytes ``a0+n`` and up to 3 characters;
  replies in 6-byte interrupt chunks whose first byte's low bits count the valid bytes that
  follow (the rest is stale); a NUL in the status bits (offset >= 38) reads as ``0``, a
  NUL elsewhere ends the reply, a NUL first means the UPS is off (no data).  Commands the
  bridge never answers (QS, QGS, QPI, M, D) are not sent.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = ["ASSEMBLERS", "Assembler", "BRIDGES", "USB_IDS", "UsbId", "armac_chunks",
           "cypress_chunks", "descriptor_text", "fabula_index", "fuji_packet",
           "krauler_lookup", "select_bridge", "sgs_chunks"]

CR = 0x0D


@dataclass(frozen=True)
class UsbId:
    """One row of NUT's ``qx_usb_id`` table: ids, optional USB strings, the bridge."""

    vendor_id: int
    product_id: int
    manufacturer: str | None
    product: str | None
    bridge: str
    comment: str


#: NUT's table, in its order (the first row that matches wins)
USB_IDS: tuple[UsbId, ...] = (
    UsbId(0x05B8, 0x0000, None, None, "cypress", "Agiler UPS"),
    UsbId(0x1CB0, 0x0035, None, None, "krauler", "Legrand Daker DK / DK Plus"),
    UsbId(0x0665, 0x5161, None, None, "cypress", "Belkin F6C1200-UNV, Voltronic Power UPSes"),
    UsbId(0x06DA, 0x0002, "Phoenixtec Power", "USB Cable (V2.00)", "phoenixtec",
          "Masterguard A Series"),
    UsbId(0x06DA, 0x0002, None, None, "cypress", "Online Yunto YQ450"),
    UsbId(0x06DA, 0x0003, None, None, "ippon", "Mustek Powermust, Eaton 5E"),
    UsbId(0x06DA, 0x0004, None, None, "cypress", "Phoenixtec Innova 3/1 T"),
    UsbId(0x06DA, 0x0005, None, None, "cypress", "Phoenixtec Innova RT"),
    UsbId(0x06DA, 0x0201, None, None, "cypress", "Phoenixtec Innova T"),
    UsbId(0x06DA, 0x0601, None, None, "phoenix", "Online Zinto A"),
    UsbId(0x0F03, 0x0001, None, None, "cypress", "Unitek Alpha 1200Sx"),
    UsbId(0x14F0, 0x00C9, None, None, "phoenix", "GE EP series"),
    UsbId(0x0483, 0x0035, None, None, "sgs", "TS Shara UPSes"),
    UsbId(0x0001, 0x0000, "MEC", "MEC0003", "fabula", "Fideltronik/MEC LUPUS 500 USB"),
    UsbId(0x0001, 0x0000, None, "MEC0003", "hunnox", "Hunnox HNX 850, Powercool"),
    UsbId(0x0001, 0x0000, "ATCL FOR UPS", "ATCL FOR UPS", "fuji", "Fuji UPSes"),
    UsbId(0x0001, 0x0000, None, None, "krauler", "Krauler UP-M500VA and many others"),
    UsbId(0x0925, 0x1234, None, None, "armac", "Armac, Vultech (Richcomm bridge)"),
)

#: every bridge ``subdriver =`` may name
BRIDGES = ("cypress", "phoenixtec", "phoenix", "ippon", "krauler", "fabula", "hunnox",
           "fuji", "sgs", "snr", "armac")


def select_bridge(vendor_id: int, product_id: int, manufacturer: str | None,
                  product: str | None) -> str | None:
    """The bridge NUT picks for a device (ids, then the USB strings where ids are shared)."""
    for row in USB_IDS:
        if (row.vendor_id, row.product_id) != (vendor_id, product_id):
            continue
        if row.manufacturer is not None and (manufacturer or "").lower() != row.manufacturer.lower():
            continue
        if row.product is not None and (product or "").lower() != row.product.lower():
            continue
        return row.bridge
    return None


# -- what the host sends -----------------------------------------------------------------


def cypress_chunks(command: str) -> list[bytes]:
    """The 8-byte SET_REPORT payloads of cypress, phoenix and ippon (zero-padded)."""
    data = command.encode("latin-1")
    padded = data + bytes(8 - len(data) % 8 if len(data) % 8 else 0)
    return [padded[i:i + 8] for i in range(0, len(data), 8)]


def sgs_chunks(command: str) -> list[bytes]:
    """sgs: each 8-byte payload is a count (<= 7) and that many bytes."""
    data = command.encode("latin-1")
    out = []
    for i in range(0, len(data), 7):
        part = data[i:i + 7]
        out.append(bytes([len(part)]) + part + bytes(7 - len(part)))
    return out


def armac_chunks(command: str) -> list[bytes]:
    """armac: 4-byte payloads, ``0xa0 + n`` then n (<= 3) bytes."""
    data = command.encode("latin-1")
    out = []
    for i in range(0, len(data), 3):
        part = data[i:i + 3]
        out.append(bytes([0xA0 + len(part)]) + part + bytes(3 - len(part)))
    return out


#: commands the armac bridge never answers (NUT sends nothing and echoes them)
ARMAC_UNSUPPORTED = ("QGS\r", "QS\r", "QPI\r", "M\r", "D\r")

_FUJI_REPLY_LEN = {"Q1": 47, "F": 22, "I": 39}
_SNRM = re.compile(r"S([0-9.]+)R([0-9]+)\r")


def fuji_packet(command: str) -> bytes | None:
    """fuji's 8-byte interrupt OUT packet, or None for a command it cannot carry."""
    text = command.split("\r")[0]
    match = _SNRM.fullmatch(command)
    if match and int(match.group(2)):
        text = text[:3]  # SnRm (m != 0) -> Sn: back on as soon as mains returns
    if len(text) > 3:
        return None
    data = text.encode("latin-1")
    return bytes([0x80, 0x06, len(data) + 1, 0x03]) + data + bytes(3 - len(data)) + bytes(
        [_FUJI_REPLY_LEN.get(text, 0)])


#: krauler: command -> (string index, the character that replaces the reply's first one)
KRAULER_INDEX: dict[str, tuple[int, str]] = {
    "Q1\r": (0x03, "("), "F\r": (0x0D, "#"), "I\r": (0x0C, "#"), "T\r": (0x04, "\r"),
    "TL\r": (0x05, "\r"), "Q\r": (0x07, "\r"), "C\r": (0x0B, "\r"), "CT\r": (0x0B, "\r"),
}
SNR_INDEX: dict[str, tuple[int, str]] = {
    "Q1\r": (0x03, "("), "F\r": (0x0D, "#"), "I\r": (0x0C, "#"),
}
FABULA_INDEX = {"Q1\r": 0x03, "F\r": 0x0D, "I\r": 0x0C, "Q\r": 0x07, "C\r": 0x0A}


def krauler_lookup(command: str, table: dict[str, tuple[int, str]] = KRAULER_INDEX
                   ) -> tuple[int, str] | None:
    """The string index and reply prefix of a command (None: the bridge cannot send it)."""
    return table.get(command)


_SHUTDOWN = re.compile(r"S([0-9]*\.?[0-9]*)(?:R([0-9]+))?\r")


def fabula_index(command: str) -> int | None:
    """fabula/hunnox string index of a command, shutdowns included; None: unsupported.

    The shutdown delay n (minutes, .5 .. 10) goes in the high nibble: n < 1 ->
    16 + round((n - .5) x 10) x 16, else 96 + (n - 1) x 16; + 8 when the output is to come
    back (``Sn`` or ``SnRm`` with m != 0).
    """
    if command in FABULA_INDEX:
        return FABULA_INDEX[command]
    match = _SHUTDOWN.fullmatch(command)
    if not match or match.group(1) in ("", "."):
        return None
    delay = min(10.0, max(0.5, float(match.group(1))))
    if delay < 1:
        index = 16 + math.floor((delay - 0.5) * 10 + 0.5) * 16
    else:
        index = int(96 + (delay - 1) * 16)
    returns = match.group(2) is None or int(match.group(2)) != 0
    return index + 8 if returns else index


def descriptor_text(raw: bytes) -> str:
    """A string descriptor's text (UTF-16LE after the 2-byte header; non-ASCII -> ``?``)."""
    length = min(len(raw), raw[0]) if raw else 0
    chars = []
    for i in range(2, length - 1, 2):
        low, high = raw[i], raw[i + 1]
        chars.append("?" if high or low > 0x7F else chr(low))
    return "".join(chars)


# -- how replies arrive ------------------------------------------------------------------


class Assembler:
    """Collects one reply from raw chunks; ``feed`` says when it is complete.

    ``result()`` is the reply up to and including its CR, or None when the chunks hold no
    data (a reply without CR is returned as is: the codec calls it truncated).
    """

    name = "cypress"

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.finished = False
        self.empty = False

    def feed(self, chunk: bytes) -> bool:
        """Add one chunk as read; True when no more should be read."""
        self.buffer += chunk
        self.finished = CR in chunk
        return self.finished

    def result(self) -> bytes | None:
        if self.empty:
            return None
        data = bytes(self.buffer)
        end = data.find(b"\r")
        if end >= 0:
            return data[:end + 1]
        data = data.rstrip(b"\x00")
        return data or None


class IpponAssembler(Assembler):
    """ippon: one 64-byte read; the text ends at the first CR (one is added if missing)."""

    name = "ippon"

    def feed(self, chunk: bytes) -> bool:
        self.buffer += chunk
        self.finished = True
        return True

    def result(self) -> bytes | None:
        data = bytes(self.buffer)
        end = data.find(b"\r")
        if end >= 0:
            return data[:end + 1]
        data = data.split(b"\x00")[0]
        return data + b"\r" if data else None


class SgsAssembler(Assembler):
    """sgs: each 8-byte chunk is a count (<= 7) and data; read until a timeout."""

    name = "sgs"

    def feed(self, chunk: bytes) -> bool:
        if chunk:
            count = min(chunk[0], 7)
            self.buffer += chunk[1:1 + count]
        return False

    def result(self) -> bytes | None:
        data = bytes(self.buffer)
        if not data:
            return None
        end = data.find(b"\r")
        return data[:end + 1] if end >= 0 else data + b"\r"


class FujiAssembler(Assembler):
    """fuji: 8-byte chunks, zero padded after the CR; the text is what precedes a NUL."""

    name = "fuji"

    def result(self) -> bytes | None:
        data = bytes(self.buffer).split(b"\x00")[0]
        end = data.find(b"\r")
        if end >= 0:
            return data[:end + 1]
        return data or None


class ArmacAssembler(Assembler):
    """armac: control byte + 5 data bytes per chunk (see the module docstring)."""

    name = "armac"
    #: offsets from which a NUL is taken as a '0' status bit (NUT master's rule)
    STATUS_BITS_FROM = 38

    def feed(self, chunk: bytes) -> bool:
        if not chunk:
            return False
        available = min(chunk[0] & 0x3F, len(chunk) - 1)
        if available == 0:
            self.finished = True
            return True
        for byte in chunk[1:1 + available]:
            if byte == 0:
                if not self.buffer:
                    self.empty = True  # a UPS switched off answers NULs
                    self.finished = True
                    return True
                if len(self.buffer) >= self.STATUS_BITS_FROM:
                    self.buffer.append(0x30)
                    continue
                self.finished = True
                return True
            self.buffer.append(byte)
            if byte == CR:
                self.finished = True
                return True
        return False

    def result(self) -> bytes | None:
        if self.empty or not self.buffer:
            return None
        return bytes(self.buffer)


class StringAssembler(Assembler):
    """krauler, snr, fabula, hunnox: the reply is a string descriptor (raw bytes)."""

    name = "krauler"

    def __init__(self, prefix: str | None = None) -> None:
        super().__init__()
        self.prefix = prefix

    def feed(self, chunk: bytes) -> bool:
        self.buffer += chunk
        self.finished = True
        return True

    def result(self) -> bytes | None:
        text = descriptor_text(bytes(self.buffer)) if self.buffer[1:2] == b"\x03" \
            else bytes(self.buffer).decode("latin-1")
        return string_reply(text, self.prefix)


def string_reply(text: str, prefix: str | None) -> bytes | None:
    """A string-index reply as NUT keeps it: CR added, ``UPS No Ack`` is no data, prefix."""
    if not text:
        return None
    if "\r" not in text:
        text += "\r"
    if text.split("\r")[0].upper() == "UPS NO ACK":
        return None
    if prefix is not None:
        text = prefix + text[1:]
    return text.encode("latin-1")


#: bridge name -> the assembler of its replies
ASSEMBLERS: dict[str, type[Assembler]] = {
    "cypress": Assembler, "phoenix": Assembler, "phoenixtec": Assembler,
    "ippon": IpponAssembler, "sgs": SgsAssembler, "fuji": FujiAssembler,
    "armac": ArmacAssembler, "krauler": StringAssembler, "snr": StringAssembler,
    "fabula": StringAssembler, "hunnox": StringAssembler,
}
