# -*- test-case-name: tests.test_usbhid_driver -*-
"""The USB side: find, open and talk to a HID device with hidapi or, failing that, pyusb.

Every call here **blocks** (USB control and interrupt transfers): the driver runs them in a
thread through its ``run_blocking`` seam, never in the reactor.  The libraries are imported
lazily, only when a backend is made; a missing one raises :class:`MissingLibrary`, whose
message says ``install upsagent[usb]``.  Tests pass a fake of the library module (a
``hid`` module object or pyusb's ``usb.core``/``usb.util``) to the backend: everything
above the library boundary is the real code.

Reports cross this boundary **with their report id as the first byte**, also for devices
without numbered reports (id 0), whatever the library does with it.

* **hidapi** (cython-hidapi, module ``hid``; on Linux the hidraw kernel driver): enumerate
  gives the strings, the HID usage page (0x84 for a Power Device) and the path;
  ``get_feature_report``/``send_feature_report`` do GET/SET_REPORT(Feature), ``read`` the
  interrupt endpoint.  The report descriptor comes from ``get_report_descriptor`` (hidapi
  0.14 and later) or, on Linux, from sysfs.
* **pyusb** (libusb): the HID interface is claimed (the kernel's usbhid driver detached
  first); GET_REPORT is ``ctrl_transfer(0xA1, 0x01, 0x0300 | id, interface)``, SET_REPORT
  ``ctrl_transfer(0x21, 0x09, 0x0300 | id, interface, data)``, the descriptor
  ``GET_DESCRIPTOR(0x22)`` at its declared length (NUT asks the same way).
"""

from __future__ import annotations

import os
import re
from typing import Any, Protocol

from upsagent.drivers.usbhid.tables import DeviceInfo

__all__ = ["Backend", "DeviceGone", "HidDevice", "HidapiBackend", "MissingLibrary",
           "PyusbBackend", "TransportError", "backend", "matches"]

INSTALL = "install upsagent[usb] (the hidapi or pyusb library)"


class TransportError(Exception):
    """A transfer failed (the device may still be there)."""


class DeviceGone(TransportError):
    """The device is not there any more (unplugged, reset, taken by another driver)."""


class MissingLibrary(Exception):
    """Neither hidapi nor pyusb can be imported."""


class HidDevice(Protocol):
    """An open device; every method blocks."""

    info: DeviceInfo

    def descriptor(self) -> bytes: ...
    def get_feature(self, report_id: int, length: int) -> bytes: ...
    def set_feature(self, data: bytes) -> None: ...
    def read_interrupt(self, length: int, timeout_ms: int) -> bytes: ...
    def string(self, index: int) -> str | None: ...
    def close(self) -> None: ...


class Backend(Protocol):
    """A way to reach USB HID devices."""

    name: str

    def enumerate(self) -> list[DeviceInfo]: ...
    def open(self, info: DeviceInfo) -> HidDevice: ...


def matches(info: DeviceInfo, options: dict[str, str]) -> bool:
    """NUT's regex matcher: ``vendorid``, ``productid``, ``vendor``, ``product``, ``serial``,
    ``bus``, ``device``, ``busport``: each a case-insensitive regular expression that must
    match the whole value; ids are matched as 4 hex digits."""
    fields = {"vendorid": f"{info.vendor_id:04x}", "productid": f"{info.product_id:04x}",
              "vendor": info.manufacturer, "product": info.product, "serial": info.serial,
              "bus": info.bus, "device": None, "busport": info.port}
    for option, value in fields.items():
        pattern = options.get(option)
        if pattern is None:
            continue
        try:
            if value is None or not re.fullmatch(pattern, value, re.IGNORECASE):
                return False
        except re.error:
            return False
    return True


# -- hidapi --------------------------------------------------------------------------------


class HidapiDevice:
    """A device opened with cython-hidapi."""

    def __init__(self, lib: Any, info: DeviceInfo) -> None:
        self.info = info
        self._dev = lib.device()
        try:
            self._dev.open_path(info.handle)
        except (OSError, ValueError) as exc:
            raise DeviceGone(f"cannot open {_text(info.handle)}: {exc}") from None

    def descriptor(self) -> bytes:
        reader = getattr(self._dev, "get_report_descriptor", None)
        if reader is not None:
            try:
                return bytes(reader(4096))
            except (OSError, ValueError) as exc:
                raise DeviceGone(f"cannot read the report descriptor: {exc}") from None
        return _sysfs_descriptor(self.info.handle)

    def get_feature(self, report_id: int, length: int) -> bytes:
        try:
            data = bytes(self._dev.get_feature_report(report_id, max(length, 2)))
        except (OSError, ValueError) as exc:
            raise TransportError(f"report 0x{report_id:02x}: {exc}") from None
        if not data:
            raise TransportError(f"report 0x{report_id:02x}: empty")
        return data

    def set_feature(self, data: bytes) -> None:
        try:
            sent = self._dev.send_feature_report(list(data))
        except (OSError, ValueError) as exc:
            raise TransportError(f"SET_REPORT 0x{data[0]:02x}: {exc}") from None
        if sent is not None and sent < 0:
            raise TransportError(f"SET_REPORT 0x{data[0]:02x} refused")

    def read_interrupt(self, length: int, timeout_ms: int) -> bytes:
        try:
            return bytes(self._dev.read(length, timeout_ms))
        except (OSError, ValueError) as exc:
            raise DeviceGone(f"interrupt read: {exc}") from None

    def string(self, index: int) -> str | None:
        try:
            text = self._dev.get_indexed_string(index)
        except (OSError, ValueError, AttributeError):
            return None
        return None if text is None else str(text)

    def close(self) -> None:
        try:
            self._dev.close()
        except (OSError, ValueError):
            pass


class HidapiBackend:
    """hidapi (cython-hidapi's ``hid`` module, or a fake of it)."""

    name = "hidapi"

    def __init__(self, lib: Any = None) -> None:
        if lib is None:
            try:
                import hid as lib  # type: ignore[import-not-found, no-redef]
            except ImportError:
                raise MissingLibrary(f"no hidapi: {INSTALL}") from None
            if not hasattr(lib, "device"):
                raise MissingLibrary(f"the 'hid' module is not cython-hidapi: {INSTALL}")
        self.lib = lib

    def enumerate(self) -> list[DeviceInfo]:
        try:
            found = self.lib.enumerate(0, 0)
        except (OSError, ValueError) as exc:
            raise TransportError(f"cannot list HID devices: {exc}") from None
        out = []
        for entry in found:
            path = entry.get("path")
            bus, port = _sysfs_usb(path)
            out.append(DeviceInfo(
                int(entry.get("vendor_id") or 0), int(entry.get("product_id") or 0),
                entry.get("manufacturer_string") or None, entry.get("product_string") or None,
                entry.get("serial_number") or None, bus, port,
                entry.get("release_number"), path, entry.get("usage_page"),
                entry.get("usage")))
        return out

    def open(self, info: DeviceInfo) -> HidDevice:
        return HidapiDevice(self.lib, info)


def _text(path: object) -> str:
    return path.decode(errors="replace") if isinstance(path, bytes) else str(path)


def _sysfs_dir(path: object) -> str | None:
    """/sys/class/hidraw/hidrawN/device for a hidapi path ``/dev/hidrawN``."""
    name = os.path.basename(_text(path))
    return f"/sys/class/hidraw/{name}/device" if name.startswith("hidraw") else None


def _sysfs_descriptor(path: object) -> bytes:
    directory = _sysfs_dir(path)
    if directory is None:
        raise DeviceGone("this hidapi has no get_report_descriptor and the device is not "
                         "a Linux hidraw node")
    try:
        with open(os.path.join(directory, "report_descriptor"), "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise DeviceGone(f"cannot read the report descriptor: {exc}") from None


def _sysfs_usb(path: object) -> tuple[str | None, str | None]:
    """USB bus number (NUT's 3 digits) and port path of a hidraw node, when Linux says."""
    directory = _sysfs_dir(path)
    if directory is None:
        return None, None
    current = os.path.realpath(directory)
    for _ in range(6):
        try:
            with open(os.path.join(current, "busnum")) as handle:
                bus = f"{int(handle.read().strip()):03d}"
            with open(os.path.join(current, "devpath")) as handle:
                return bus, handle.read().strip()
        except (OSError, ValueError):
            current = os.path.dirname(current)
    return None, None


# -- pyusb ---------------------------------------------------------------------------------


class PyusbDevice:
    """A device opened with pyusb: its HID interface claimed, the kernel driver detached."""

    def __init__(self, core: Any, util: Any, info: DeviceInfo) -> None:
        self.info = info
        self._core, self._util = core, util
        handle: Any = info.handle
        self._dev: Any = handle
        interface = _hid_interface(self._dev)
        if interface is None:
            raise DeviceGone("no HID interface")
        self._intf = interface
        self._number = interface.bInterfaceNumber
        self._endpoint = next((ep.bEndpointAddress for ep in interface
                               if ep.bEndpointAddress & 0x80), 0x81)
        try:
            if self._dev.is_kernel_driver_active(self._number):
                self._dev.detach_kernel_driver(self._number)
            self._util.claim_interface(self._dev, self._number)
        except (core.USBError, NotImplementedError) as exc:
            raise DeviceGone(f"cannot claim interface {self._number}: {exc}") from None

    def _gone(self, exc: Exception) -> bool:
        return getattr(exc, "errno", None) in (19, 5, 16) or \
            getattr(exc, "backend_error_code", None) in (-4, -1)

    def descriptor(self) -> bytes:
        length = _declared_length(self._intf) or 4096
        try:
            return bytes(self._dev.ctrl_transfer(0x81, 0x06, 0x2200, self._number, length))
        except self._core.USBError as exc:
            raise DeviceGone(f"cannot read the report descriptor: {exc}") from None

    def get_feature(self, report_id: int, length: int) -> bytes:
        try:
            data = bytes(self._dev.ctrl_transfer(0xA1, 0x01, 0x0300 | report_id,
                                                 self._number, max(length, 1)))
        except self._core.USBError as exc:
            cls = DeviceGone if self._gone(exc) else TransportError
            raise cls(f"report 0x{report_id:02x}: {exc}") from None
        return bytes([0]) + data if report_id == 0 else data

    def set_feature(self, data: bytes) -> None:
        payload = data[1:] if data[0] == 0 else data
        try:
            self._dev.ctrl_transfer(0x21, 0x09, 0x0300 | data[0], self._number, payload)
        except self._core.USBError as exc:
            cls = DeviceGone if self._gone(exc) else TransportError
            raise cls(f"SET_REPORT 0x{data[0]:02x}: {exc}") from None

    def read_interrupt(self, length: int, timeout_ms: int) -> bytes:
        try:
            return bytes(self._dev.read(self._endpoint, length, timeout_ms))
        except self._core.USBTimeoutError:
            return b""
        except self._core.USBError as exc:
            raise DeviceGone(f"interrupt read: {exc}") from None

    def string(self, index: int) -> str | None:
        try:
            text = self._util.get_string(self._dev, index)
        except (self._core.USBError, ValueError):
            return None
        return None if text is None else str(text)

    def close(self) -> None:
        try:
            self._util.release_interface(self._dev, self._number)
            self._util.dispose_resources(self._dev)
        except (self._core.USBError, ValueError):
            pass


def _hid_interface(dev: Any) -> Any:
    try:
        for config in dev:
            for interface in config:
                if interface.bInterfaceClass == 3:
                    return interface
    except Exception:   # pyusb raises several types while a device goes away
        return None
    return None


def _declared_length(interface: Any) -> int | None:
    """wDescriptorLength of the report descriptor in the HID class descriptor (0x21)."""
    extra = bytes(getattr(interface, "extra_descriptors", b"") or b"")
    pos = 0
    while pos + 1 < len(extra):
        size, kind = extra[pos], extra[pos + 1]
        if size < 2:
            break
        if kind == 0x21 and size >= 9:
            for i in range(6, size - 2, 3):
                if extra[pos + i] == 0x22:
                    return int.from_bytes(extra[pos + i + 1:pos + i + 3], "little")
        pos += size
    return None


class PyusbBackend:
    """pyusb (``usb.core`` and ``usb.util``, or fakes of them)."""

    name = "pyusb"

    def __init__(self, core: Any = None, util: Any = None) -> None:
        if core is None or util is None:
            try:
                import usb.core as core  # type: ignore[import-not-found, no-redef]
                import usb.util as util  # type: ignore[import-not-found, no-redef]
            except ImportError:
                raise MissingLibrary(f"no pyusb: {INSTALL}") from None
        self.core, self.util = core, util

    def enumerate(self) -> list[DeviceInfo]:
        try:
            devices = list(self.core.find(find_all=True))
        except Exception as exc:        # NoBackendError (no libusb) and USBError
            raise TransportError(f"cannot list USB devices: {exc}") from None
        out = []
        for dev in devices:
            if _hid_interface(dev) is None:
                continue
            out.append(DeviceInfo(
                dev.idVendor, dev.idProduct, self._string(dev, dev.iManufacturer),
                self._string(dev, dev.iProduct), self._string(dev, dev.iSerialNumber),
                f"{dev.bus:03d}", ".".join(str(p) for p in (dev.port_numbers or ())) or None,
                dev.bcdDevice, dev))
        return out

    def _string(self, dev: Any, index: int) -> str | None:
        if not index:
            return None
        try:
            return str(self.util.get_string(dev, index))
        except Exception:           # access denied, device gone, bad langid
            return None

    def open(self, info: DeviceInfo) -> HidDevice:
        return PyusbDevice(self.core, self.util, info)


def backend(choice: str = "auto") -> Backend:
    """hidapi when importable, else pyusb (``choice`` may force one)."""
    errors = []
    for name, make in (("hidapi", HidapiBackend), ("pyusb", PyusbBackend)):
        if choice not in ("auto", name):
            continue
        try:
            made: Backend = make()
            return made
        except MissingLibrary as exc:
            errors.append(str(exc))
    raise MissingLibrary("; ".join(errors) or f"unknown USB backend {choice!r}: {INSTALL}")
