# -*- test-case-name: tests.test_qx_usb -*-
"""Q1 over the USB bridges, with pyusb (the ``usb`` extra, imported when a device is opened).

:class:`UsbTransport` finds the device (NUT's matching options: ``vendorid``,
``productid``, ``vendor``, ``product``, ``serial``, ``bus``, each a case-insensitive
regular expression matched against the whole value), picks its bridge from the USB id
table (:data:`.bridges.USB_IDS`; where ids are shared, by the USB strings) unless
``subdriver =`` names one (NUT then wants ``vendorid`` and ``productid`` too), claims
interface 0 and moves bytes as the bridge does (:mod:`.bridges`).

What this module asks of a device is the small part of pyusb's ``usb.core.Device`` it
uses: ``idVendor``, ``idProduct``, ``bus``, ``address``, the string properties
``manufacturer`` / ``product`` / ``serial_number``, ``ctrl_transfer``, ``read``,
``write``, ``clear_halt``, and the kernel-driver and configuration calls; errors are
pyusb's (``OSError`` subclasses with ``errno``: a timeout is "no reply", a stalled pipe is
cleared, anything else means the device is gone).  Tests hand in devices that behave so
(``finder=``), with no pyusb installed.
"""

from __future__ import annotations

import errno
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from upsagent.drivers.qx.bridges import (
    ARMAC_UNSUPPORTED, ASSEMBLERS, BRIDGES, KRAULER_INDEX, SNR_INDEX, Assembler,
    armac_chunks, cypress_chunks, descriptor_text, fabula_index, fuji_packet, select_bridge,
    sgs_chunks, string_reply)
from upsagent.drivers.qx.transport import MissingExtra, Transport, TransportError

__all__ = ["UsbMatch", "UsbTransport", "pyusb_devices"]

SET_REPORT = (0x21, 0x09)          # class, interface, OUT; HID SET_REPORT
GET_DESCRIPTOR = (0x80, 0x06)      # standard, device, IN
VENDOR_OUT_ENDPOINT = 0x42         # vendor, endpoint, OUT (phoenixtec)
IN_ENDPOINT = 0x81
#: phoenixtec: commands that get no reply (NUT's list; "M" must not match "MSO")
_PHOENIXTEC_SILENT = ("T", "TL", "S", "C", "CT", "M", "N", "O", "SRC", "FCLR", "SS", "TUD",
                      "SSN")


def pyusb_devices() -> list[Any]:
    """Every USB device pyusb sees, or :class:`MissingExtra`."""
    try:
        import usb.core
    except ImportError:
        raise MissingExtra("USB bridges need pyusb: install upsagent[usb]") from None
    try:
        return list(usb.core.find(find_all=True))
    except Exception as exc:  # NoBackendError and friends
        raise TransportError(f"cannot list USB devices: {exc}") from None


@dataclass(frozen=True)
class UsbMatch:
    """NUT's USB matching options (regular expressions, case-insensitive, whole value)."""

    vendorid: str | None = None
    productid: str | None = None
    vendor: str | None = None
    product: str | None = None
    serial: str | None = None
    bus: str | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> "UsbMatch":
        return cls(*(options.get(key) for key in
                     ("vendorid", "productid", "vendor", "product", "serial", "bus")))

    def accepts(self, values: Mapping[str, str | None]) -> bool:
        for key, pattern in vars(self).items():
            if pattern is None:
                continue
            value = values.get(key)
            if value is None or not re.fullmatch(pattern, value, re.IGNORECASE):
                return False
        return True


def _string(device: Any, attribute: str) -> str | None:
    try:
        value = getattr(device, attribute, None)
    except (OSError, ValueError, NotImplementedError):
        return None
    return value if isinstance(value, str) else None


def _phoenixtec_silent(command: str) -> bool:
    """NUT's test: the command starts with a silent one not followed by a capital."""
    for word in _PHOENIXTEC_SILENT:
        following = command[len(word):len(word) + 1]
        if command.startswith(word) and not ("A" <= following <= "Z"):
            return True
    return False


class UsbTransport(Transport):
    """A Q1 UPS behind a USB bridge (see the module docstring)."""

    def __init__(self, match: UsbMatch, bridge: str | None = None,
                 langid_fix: int | None = None, timeout: float = 1.0,
                 finder: Callable[[], Iterable[Any]] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if bridge is not None and bridge.lower() not in BRIDGES:
            raise ValueError(f"subdriver {bridge!r}: one of {', '.join(BRIDGES)} expected")
        self.match = match
        self.forced = bridge.lower() if bridge else None
        self.langid_fix = langid_fix
        self.timeout_ms = int(timeout * 1000)
        self.finder = finder or pyusb_devices
        self.sleep = sleep
        self.bridge = self.forced or ""
        self.description = "USB"
        self._dev: Any = None
        self._hunnox_step = 0
        self._langid: int | None = None

    # -- finding the device -----------------------------------------------------------

    def open(self) -> dict[str, str]:
        self.close()
        seen = []
        for device in self.finder():
            vid, pid = int(device.idVendor), int(device.idProduct)
            strings = {"vendorid": f"{vid:04x}", "productid": f"{pid:04x}",
                       "vendor": _string(device, "manufacturer"),
                       "product": _string(device, "product"),
                       "serial": _string(device, "serial_number"),
                       "bus": f"{int(getattr(device, 'bus', 0) or 0):03d}"}
            if not self.match.accepts(strings):
                continue
            bridge = self.forced or select_bridge(vid, pid, strings["vendor"],
                                                  strings["product"])
            if bridge is None:
                seen.append(f"{vid:04x}:{pid:04x}")
                continue
            self._claim(device)
            self._dev, self.bridge = device, bridge
            self._hunnox_step, self._langid = 0, None
            self.description = (f"USB {vid:04x}:{pid:04x} ({bridge}) bus "
                                f"{getattr(device, 'bus', '?')} device "
                                f"{getattr(device, 'address', '?')}")
            return {"ups.vendorid": f"{vid:04x}", "ups.productid": f"{pid:04x}"}
        why = "no supported USB device found"
        if seen:
            why += f" ({', '.join(seen)} matched the options but no bridge is known for it; " \
                   "set subdriver)"
        raise TransportError(why)

    def _claim(self, device: Any) -> None:
        try:
            if device.is_kernel_driver_active(0):
                device.detach_kernel_driver(0)
        except (OSError, NotImplementedError, AttributeError):
            pass
        try:
            device.set_configuration()
        except (OSError, NotImplementedError, AttributeError) as exc:
            if getattr(exc, "errno", None) not in (errno.EBUSY, None):
                raise TransportError(f"cannot configure the device: {exc}") from None

    def close(self) -> None:
        device, self._dev = self._dev, None
        if device is None:
            return
        try:
            import usb.util
            usb.util.dispose_resources(device)
        except Exception:  # no pyusb (a test's device) or already gone
            pass

    # -- moving bytes -----------------------------------------------------------------

    def exchange(self, command: str) -> bytes | None:
        if self._dev is None:
            raise TransportError("the USB device is not open")
        handler: Callable[[str], bytes | None] = getattr(self, f"_{self.bridge}")
        try:
            return handler(command)
        except OSError as exc:
            if getattr(exc, "errno", None) == errno.EPIPE:
                self._clear_halt()
                return None
            self.close()
            raise TransportError(f"{self.description}: {exc}") from None

    def _read(self, size: int, timeout_ms: int | None = None) -> bytes | None:
        """One interrupt read; None on a timeout."""
        try:
            data = self._dev.read(IN_ENDPOINT, size, timeout_ms or self.timeout_ms)
        except OSError as exc:
            if getattr(exc, "errno", None) == errno.ETIMEDOUT or \
                    type(exc).__name__ == "USBTimeoutError":
                return None
            raise
        return bytes(data)

    def _clear_halt(self) -> None:
        try:
            self._dev.clear_halt(IN_ENDPOINT)
        except OSError:
            pass

    def _set_report(self, chunks: list[bytes], value: int = 0x200) -> None:
        for chunk in chunks:
            if self._dev.ctrl_transfer(*SET_REPORT, value, 0, chunk, self.timeout_ms * 5) <= 0:
                raise OSError(errno.EIO, "SET_REPORT wrote nothing")

    def _collect(self, assembler: Assembler, size: int, limit: int = 64) -> bytes | None:
        """Read chunks until the assembler is done or a read times out (a reply cut short
        then has no CR, which the codec calls truncated)."""
        for _ in range(limit):
            chunk = self._read(size)
            if chunk is None or assembler.feed(chunk):
                break
        return assembler.result()

    def _cypress(self, command: str) -> bytes | None:
        self._set_report(cypress_chunks(command))
        return self._collect(Assembler(), 8)

    def _phoenix(self, command: str) -> bytes | None:
        for _ in range(8):  # the bridge keeps stale replies: read them away first
            try:
                if self._read(8) is None:
                    break
            except OSError as exc:
                if getattr(exc, "errno", None) != errno.EPIPE:
                    raise
                self._clear_halt()
                break
        return self._cypress(command)

    def _ippon(self, command: str) -> bytes | None:
        self._set_report(cypress_chunks(command), value=0x0002)
        chunk = self._read(64)
        if chunk is None:
            return None
        assembler = ASSEMBLERS["ippon"]()
        assembler.feed(chunk)
        return assembler.result()

    def _sgs(self, command: str) -> bytes | None:
        self._set_report(sgs_chunks(command))
        return self._collect(ASSEMBLERS["sgs"](), 8)

    def _fuji(self, command: str) -> bytes | None:
        packet = fuji_packet(command)
        if packet is None:
            return command.encode("latin-1")  # as NUT: an unsupported command is echoed
        if self._dev.write(0x02, packet, self.timeout_ms) <= 0:
            raise OSError(errno.EIO, "interrupt write wrote nothing")
        return self._collect(ASSEMBLERS["fuji"](), 8)

    def _phoenixtec(self, command: str) -> bytes | None:
        data = command.encode("latin-1")
        if self._dev.ctrl_transfer(VENDOR_OUT_ENDPOINT, 0x0D, 0, 0, data,
                                   self.timeout_ms) <= 0:
            raise OSError(errno.EIO, "vendor request wrote nothing")
        if _phoenixtec_silent(command):
            return None
        return self._collect(Assembler(), 64)

    def _armac(self, command: str) -> bytes | None:
        if command in ARMAC_UNSUPPORTED:
            return command.encode("latin-1")  # NUT answers these itself, as an echo
        for _ in range(10):  # leftovers of an earlier reply
            if self._read(8, 100) is None:
                break
        for payload in armac_chunks(command):
            if self._dev.ctrl_transfer(*SET_REPORT, 0x200, 0, payload, self.timeout_ms * 5) <= 0:
                raise OSError(errno.EIO, "SET_REPORT wrote nothing")
        assembler = ASSEMBLERS["armac"]()
        for _ in range(100):
            chunk = self._read(6)
            if chunk is None or assembler.feed(chunk):
                break
        return assembler.result()

    # -- the string-index bridges -----------------------------------------------------

    def _get_string(self, index: int, size: int = 255) -> bytes:
        """GET_DESCRIPTOR(string ``index``) as raw bytes, in the device's language."""
        langid = self.langid_fix
        if langid is None:
            if self._langid is None:
                raw = bytes(self._dev.ctrl_transfer(*GET_DESCRIPTOR, 0x0300, 0, 255,
                                                    self.timeout_ms))
                self._langid = raw[2] | raw[3] << 8 if len(raw) >= 4 else 0x0409
            langid = self._langid
        return bytes(self._dev.ctrl_transfer(*GET_DESCRIPTOR, 0x0300 | index, langid, size,
                                             self.timeout_ms))

    def _string_command(self, command: str, table: dict[str, tuple[int, str]],
                        size: int = 255, check_length: bool = False) -> bytes | None:
        entry = table.get(command)
        if entry is None:
            return command.encode("latin-1")  # as NUT: an unknown command is echoed
        index, prefix = entry
        for _ in range(10):  # "UPS No Ack" is asked again
            raw = self._get_string(index, size)
            if not raw:
                return None
            if raw[0] != len(raw) and (check_length or self.langid_fix is not None):
                continue  # NUT: size mismatch, message corrupted
            reply = string_reply(descriptor_text(raw), prefix)
            if reply is not None:
                return reply
        return None

    def _krauler(self, command: str) -> bytes | None:
        return self._string_command(command, KRAULER_INDEX)

    def _snr(self, command: str) -> bytes | None:
        self._read(102)  # wakes the bridge up (NUT: "without it the UPS returns zeros")
        return self._string_command(command, SNR_INDEX, 102, check_length=True)

    def _fabula(self, command: str) -> bytes | None:
        index = fabula_index(command)
        if index is None:
            return command.encode("latin-1")
        raw = self._get_string(index)
        return string_reply(descriptor_text(raw), None) if raw else None

    def _hunnox(self, command: str) -> bytes | None:
        index = fabula_index(command)
        if index is None:
            return command.encode("latin-1")
        self._hunnox_lockstep(index)
        raw = self._get_string(index, 102)
        if not raw or (self.langid_fix is not None and raw[0] != len(raw)):
            return None
        return string_reply(descriptor_text(raw), None)

    def _hunnox_lockstep(self, asking_for: int) -> None:
        """The string requests hunnox units expect before each command (NUT's sequence)."""
        step = self._hunnox_step
        if step == 0:
            for index in (0x00, 0x00, 0x01):
                self._dev.ctrl_transfer(*GET_DESCRIPTOR, 0x0300 | index,
                                        self.langid_fix or 0x0409, 1026, self.timeout_ms)
            self.sleep(0.01)
        else:
            wanted = {1: 0x0D, 2: 0x03, 3: 0x0C}.get(step)
            if wanted is not None and wanted != asking_for:
                self._dev.ctrl_transfer(*GET_DESCRIPTOR, 0x0300 | wanted,
                                        self.langid_fix or 0x0409, 102, self.timeout_ms)
        self._hunnox_step = step + 1 if step < 3 else 1

