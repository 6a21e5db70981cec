"""Fake pyusb devices for the Q1 USB bridges: below the library boundary.

A :class:`FakeBridge` stands where pyusb's ``usb.core.Device`` stands (the same attributes
and methods the driver calls: ``ctrl_transfer``, ``read``, ``write``, ``clear_halt``, the
string properties ...) and behaves as the bridge chip does on the wire, byte for byte:

* it takes the command only in the bridge's own framing (8-byte SET_REPORTs with the right
  wValue, 4-byte armac payloads, count-prefixed sgs chunks, fuji's interrupt packet, a
  vendor request, or a string index) and fails a test that sends anything else;
* it hands the reply back in the bridge's chunks (8, 64 or 6 bytes), with the control
  bytes and the stale bytes past the valid count that the real chips leave, as string
  descriptors (UTF-16LE, the first character wrong for krauler, ``UPS No Ack`` for
  commands on fabula), or as the raw chunks recorded from a real unit (armac);
* timeouts, a stalled pipe and an unplugged device raise what pyusb raises (an
  ``OSError`` with ``errno`` ETIMEDOUT, EPIPE, ENODEV), immediately.

The replies themselves are the recorded ones of tests/data/qx (or written out per test);
nothing of upsagent's codec is used here.
"""

from __future__ import annotations

import errno
from array import array
from collections import deque

from tests.qxkit import DATA

CYPRESS_LIKE = ("cypress", "phoenix", "ippon", "sgs", "phoenixtec")


class USBError(OSError):
    """What pyusb raises (usb.core.USBError is an IOError with an errno)."""


class USBTimeoutError(USBError):
    def __init__(self) -> None:
        super().__init__(errno.ETIMEDOUT, "Operation timed out")


def recorded_chunks(name: str) -> dict[str, list[bytes]]:
    """command -> the raw interrupt chunks of a .q1log (armac captures)."""
    out: dict[str, list[bytes]] = {}
    command = ""
    for line in (DATA / name).read_text(encoding="latin-1").splitlines():
        if line.startswith("> "):
            command = line[2:].replace("\\r", "\r")
            out[command] = []
        elif line.strip().startswith("chunk "):
            out[command].append(bytes.fromhex(line.strip()[6:]))
    return out


def descriptor(text: str) -> bytes:
    data = text.encode("utf-16-le")
    return bytes([len(data) + 2, 3]) + data


class FakeBridge:
    """One UPS behind one bridge (see the module docstring)."""

    bus, address = 1, 7

    def __init__(self, bridge: str, vendor_id: int, product_id: int,
                 replies: dict[str, bytes], *, manufacturer: str | None = None,
                 product: str | None = None, serial: str | None = None,
                 raw: dict[str, list[bytes]] | None = None, stale: bytes = b"") -> None:
        self.bridge = bridge
        self.idVendor, self.idProduct = vendor_id, product_id
        self.manufacturer, self.product, self.serial_number = manufacturer, product, serial
        self.replies = dict(replies)
        self.raw = dict(raw or {})
        #: bytes the phoenix bridge still holds from an earlier reply
        self.stale = stale
        self.received: list[str] = []
        self.queue: deque[bytes] = deque()
        self.pending = b""
        self.gone = False
        self.stall_next = False
        self.halts_cleared = 0
        self.string_requests: list[int] = []
        self.no_ack_first = False
        self._leave_stale()

    # -- pyusb's Device surface -------------------------------------------------------

    def is_kernel_driver_active(self, interface: int) -> bool:
        return True

    def detach_kernel_driver(self, interface: int) -> None:
        self._alive()

    def set_configuration(self) -> None:
        self._alive()

    def clear_halt(self, endpoint: int) -> None:
        self.halts_cleared += 1

    def ctrl_transfer(self, request_type: int, request: int, value: int, index: int,
                      data: bytes | int, timeout: int) -> int | array[int]:
        self._alive()
        if (request_type, request) == (0x80, 0x06):
            return self._string(value & 0xFF, index, int(data))
        assert isinstance(data, (bytes, bytearray))
        if (request_type, request) == (0x42, 0x0D):
            assert self.bridge == "phoenixtec"
            self._command(bytes(data).decode("latin-1"))
            return len(data)
        assert (request_type, request) == (0x21, 0x09), "not a HID SET_REPORT"
        if self.bridge == "armac":
            assert value == 0x200 and len(data) == 4 and data[0] & 0xF0 == 0xA0
            self._take(bytes(data[1:1 + (data[0] & 0x0F)]))
        elif self.bridge == "sgs":
            assert value == 0x200 and len(data) == 8 and data[0] <= 7
            self._take(bytes(data[1:1 + data[0]]))
        else:
            assert len(data) == 8, "cypress-like bridges take 8-byte reports"
            assert value == (0x0002 if self.bridge == "ippon" else 0x200)
            self._take(bytes(data).rstrip(b"\x00"))
        return len(data)

    def write(self, endpoint: int, data: bytes, timeout: int) -> int:
        self._alive()
        assert self.bridge == "fuji" and endpoint == 0x02 and len(data) == 8
        assert data[:2] == b"\x80\x06" and data[3] == 0x03
        self._command(bytes(data[4:4 + data[2] - 1]).decode("latin-1") + "\r")
        return 8

    def read(self, endpoint: int, size: int, timeout: int) -> array[int]:
        self._alive()
        assert endpoint == 0x81
        if self.stall_next:
            self.stall_next = False
            raise USBError(errno.EPIPE, "Pipe error")
        if not self.queue:
            raise USBTimeoutError()
        chunk = self.queue.popleft()
        assert len(chunk) <= size, f"the bridge sends {len(chunk)} bytes, {size} asked"
        return array("B", chunk)

    # -- the UPS side -----------------------------------------------------------------

    def unplug(self) -> None:
        self.gone = True

    def _alive(self) -> None:
        if self.gone:
            raise USBError(errno.ENODEV, "No such device (it may have been disconnected)")

    def _take(self, data: bytes) -> None:
        self.pending += data
        while b"\r" in self.pending:
            line, _, self.pending = self.pending.partition(b"\r")
            self._command(line.decode("latin-1") + "\r")

    def _command(self, command: str) -> None:
        self.received.append(command)
        if command in self.raw:
            self.queue.extend(self.raw[command])
            return
        reply = self.replies.get(command)
        if reply is not None:  # else: a classic unit acts without answering
            self.queue.extend(self._chunks(reply))
        self._leave_stale()

    def _leave_stale(self) -> None:
        """phoenix: the bridge holds more than the reply; it comes out on the next reads."""
        self.queue.extend(self.stale[i:i + 8].ljust(8, b"\x00")
                          for i in range(0, len(self.stale), 8))

    def _chunks(self, reply: bytes) -> list[bytes]:
        if self.bridge == "ippon":
            return [(reply + b"\x00" * 64)[:64]]
        if self.bridge == "sgs":
            return [bytes([len(reply[i:i + 7])]) + reply[i:i + 7].ljust(7, b"\xee")
                    for i in range(0, len(reply), 7)]
        if self.bridge == "armac":
            out, toggle = [], 0x80
            for i in range(0, len(reply), 3):  # at most 3 valid bytes, stale ones after
                part = reply[i:i + 3]
                out.append(bytes([toggle | len(part)]) + part + b"0.0 0"[:5 - len(part)])
                toggle ^= 0x40
            return out
        pad = b"\x00" if self.bridge == "fuji" else b"\xaa"  # stale bytes after the CR
        return [reply[i:i + 8].ljust(8, pad) for i in range(0, len(reply), 8)]

    def _string(self, index: int, langid: int, size: int) -> array[int]:
        self.string_requests.append(index)
        if index == 0:
            return array("B", b"\x04\x03\x09\x04")
        table = {0x03: "Q1\r", 0x0D: "F\r", 0x0C: "I\r", 0x04: "T\r", 0x05: "TL\r",
                 0x07: "Q\r", 0x0B: "C\r", 0x0A: "C\r"}
        command = table.get(index, f"S#{index:02x}\r")
        self.received.append(command)
        if self.no_ack_first:
            self.no_ack_first = False
            return array("B", descriptor("UPS No Ack")[:size])
        reply = self.replies.get(command)
        if reply is None:
            return array("B", descriptor("UPS No Ack")[:size])
        text = reply.decode("latin-1")
        if self.bridge in ("krauler", "snr"):
            text = "\x01" + text[1:]  # the bridge mangles the first character
        return array("B", descriptor(text.rstrip("\r"))[:size])

