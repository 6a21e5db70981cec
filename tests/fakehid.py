"""Fakes of the lowest layer only: cython-hidapi's ``hid`` module and pyusb's ``usb.core`` /
``usb.util``, serving recorded descriptors and reports.

A :class:`FakeUps` is one device on a fake USB bus: its descriptor, its Feature reports
(GET_REPORT answers, SET_REPORT stores), a queue of Input reports for the interrupt
endpoint, its strings, and whether it is plugged in.  Everything above the library
boundary (transport, decoder, driver, server) is the real code.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FakeUps:
    descriptor: bytes
    features: dict[int, bytes]
    vendor_id: int = 0x051D
    product_id: int = 0x0002
    manufacturer: str = "American Power Conversion"
    product: str = "Back-UPS 500 FW: 6.5.I USB FW: c1 "
    serial: str = "AB0427******"
    strings: dict[int, str] = field(default_factory=dict)
    path: bytes = b"/dev/hidraw-fake-1"
    plugged: bool = True
    interrupts: deque[bytes] = field(default_factory=deque)
    #: every SET_REPORT, in order
    writes: list[bytes] = field(default_factory=list)
    #: every GET_REPORT(Feature) report id, in order
    reads: list[int] = field(default_factory=list)
    interrupt_reads: int = 0
    usage_page: int = 0x84

    def feature(self, report_id: int, length: int) -> bytes:
        self.reads.append(report_id)
        if not self.plugged:
            raise OSError("read error")
        if report_id not in self.features:
            raise OSError("read error")        # a STALL: no such report
        return self.features[report_id][:length]

    def store(self, data: bytes) -> None:
        if not self.plugged:
            raise OSError("write error")
        self.writes.append(bytes(data))
        self.features[data[0]] = bytes(data)

    def interrupt(self, length: int) -> bytes:
        self.interrupt_reads += 1
        if not self.plugged:
            raise OSError("read error")
        return self.interrupts.popleft()[:length] if self.interrupts else b""


class FakeHidModule:
    """What ``import hid`` gives with cython-hidapi installed."""

    def __init__(self, *upses: FakeUps) -> None:
        self.upses = list(upses)
        self.opened: list[FakeHidDevice] = []

    def enumerate(self, vendor_id: int = 0, product_id: int = 0) -> list[dict[str, Any]]:
        return [{"path": ups.path, "vendor_id": ups.vendor_id, "product_id": ups.product_id,
                 "serial_number": ups.serial, "release_number": 0x0100,
                 "manufacturer_string": ups.manufacturer, "product_string": ups.product,
                 "usage_page": ups.usage_page, "usage": 4, "interface_number": 0}
                for ups in self.upses if ups.plugged]

    def device(self) -> "FakeHidDevice":
        dev = FakeHidDevice(self)
        self.opened.append(dev)
        return dev


class FakeHidDevice:
    """``hid.device()``: the calls the transport makes, with hidapi's error behaviour."""

    def __init__(self, module: FakeHidModule) -> None:
        self.module = module
        self.ups: FakeUps | None = None
        self.closed = False

    def open_path(self, path: bytes) -> None:
        for ups in self.module.upses:
            if ups.path == path and ups.plugged:
                self.ups = ups
                return
        raise OSError("open failed")

    def _ups(self) -> FakeUps:
        if self.ups is None or self.closed:
            raise ValueError("not open")
        return self.ups

    def get_report_descriptor(self, max_length: int = 4096) -> list[int]:
        ups = self._ups()
        if not ups.plugged:
            raise OSError("get_report_descriptor failed")
        return list(ups.descriptor[:max_length])

    def get_feature_report(self, report_num: int, max_length: int) -> list[int]:
        return list(self._ups().feature(report_num, max_length))

    def send_feature_report(self, data: list[int]) -> int:
        self._ups().store(bytes(data))
        return len(data)

    def read(self, max_length: int, timeout_ms: int = 0) -> list[int]:
        return list(self._ups().interrupt(max_length))

    def get_indexed_string(self, index: int) -> str:
        ups = self._ups()
        if index not in ups.strings:
            raise OSError("get indexed string error")
        return ups.strings[index]

    def close(self) -> None:
        self.closed = True


# -- pyusb ----------------------------------------------------------------------------------


class USBError(OSError):
    def __init__(self, text: str, errno: int | None = None) -> None:
        super().__init__(errno, text)


class USBTimeoutError(USBError):
    pass


@dataclass
class _Endpoint:
    bEndpointAddress: int


class _Interface:
    bInterfaceClass = 3
    bInterfaceNumber = 0

    def __init__(self, length: int) -> None:
        # HID class descriptor: 09 21 11 01 00 01 22 <wDescriptorLength>
        self.extra_descriptors = [9, 0x21, 0x11, 0x01, 0, 1, 0x22, length & 0xFF, length >> 8]

    def __iter__(self) -> Any:
        return iter([_Endpoint(0x81)])


class FakeUsbDevice:
    """A pyusb Device (``usb.core.find`` gives these)."""

    def __init__(self, ups: FakeUps, bus: int = 3, port: tuple[int, ...] = (1,)) -> None:
        self.ups = ups
        self.idVendor, self.idProduct = ups.vendor_id, ups.product_id
        self.iManufacturer, self.iProduct, self.iSerialNumber = 3, 1, 2
        self.bus, self.port_numbers, self.bcdDevice = bus, port, 0x0100
        self.detached = False

    def __iter__(self) -> Any:
        return iter([[_Interface(len(self.ups.descriptor))]])

    def is_kernel_driver_active(self, number: int) -> bool:
        return not self.detached

    def detach_kernel_driver(self, number: int) -> None:
        self.detached = True

    def ctrl_transfer(self, request_type: int, request: int, value: int, index: int,
                      data_or_length: Any = None) -> Any:
        ups = self.ups
        if not ups.plugged:
            raise USBError("No such device", errno=19)
        if (request_type, request) == (0x81, 0x06):
            return ups.descriptor[:data_or_length]
        if (request_type, request) == (0xA1, 0x01):
            try:
                return ups.feature(value & 0xFF, data_or_length)
            except OSError:
                raise USBError("Pipe error", errno=32) from None
        if (request_type, request) == (0x21, 0x09):
            ups.store(bytes(data_or_length))
            return len(data_or_length)
        raise USBError("unexpected request")

    def read(self, endpoint: int, length: int, timeout: int) -> Any:
        if not self.ups.plugged:
            raise USBError("No such device", errno=19)
        data = self.ups.interrupt(length)
        if not data:
            raise USBTimeoutError("timeout", errno=110)
        return data


class FakeUsbCore:
    """``usb.core``: find(), the error types."""

    USBError = USBError
    USBTimeoutError = USBTimeoutError

    def __init__(self, *devices: FakeUsbDevice) -> None:
        self.devices = list(devices)

    def find(self, find_all: bool = False, **match: Any) -> Any:
        return iter([dev for dev in self.devices if dev.ups.plugged])


class FakeUsbUtil:
    """``usb.util``: strings and interface claiming."""

    def __init__(self) -> None:
        self.claimed: list[int] = []

    def get_string(self, dev: FakeUsbDevice, index: int) -> str:
        named = {1: dev.ups.product, 2: dev.ups.serial, 3: dev.ups.manufacturer}
        text = dev.ups.strings.get(index) or named.get(index)
        if text is None:
            raise ValueError("no string")
        return text

    def claim_interface(self, dev: FakeUsbDevice, number: int) -> None:
        self.claimed.append(number)

    def release_interface(self, dev: FakeUsbDevice, number: int) -> None:
        pass

    def dispose_resources(self, dev: FakeUsbDevice) -> None:
        pass
