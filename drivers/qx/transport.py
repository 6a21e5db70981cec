# -*- test-case-name: tests.test_qx_serial -*-
"""One blocking interface over the wire, and the serial port behind it.

A :class:`Transport` sends one command and returns the raw reply (up to and including its
CR), ``None`` when nothing came in time, and raises :class:`TransportError` when the
device is gone (unplugged adapter, closed port) or cannot be opened.  It is only ever used
from one thread at a time (the driver serialises its calls).

:class:`SerialTransport`: RS-232 at 2400 bps, 8N1, no handshake, with pyserial (the
``serial`` extra, imported when a port is opened).  ``cablepower`` powers the UPS's
interface from the modem lines as NUT does: ``normal`` (default) DTR on and RTS off,
``reverse`` DTR off and RTS on, ``both``, ``none``.  Before each command the input is
flushed (stale bytes from an earlier, late reply), then the reply is read up to its CR
within ``timeout`` seconds (NUT waits 1 s: ``SER_WAIT_SEC``).
"""

from __future__ import annotations

import abc
from typing import Any

__all__ = ["CABLEPOWER", "MissingExtra", "SerialTransport", "Transport", "TransportError"]


class TransportError(Exception):
    """The device cannot be reached (not found, cannot be opened, gone)."""


class MissingExtra(TransportError):
    """An optional library is not installed; the message says which extra to install."""


class Transport(abc.ABC):
    """Send a command, get the raw reply; one device, one thread at a time."""

    #: for logs: "serial /dev/ttyS0", "USB 0665:5161 (cypress) bus 1 device 4"
    description: str = ""

    @abc.abstractmethod
    def open(self) -> dict[str, str]:
        """Reach the device; returns variables to publish (``ups.vendorid`` ...)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the device (idempotent)."""

    @abc.abstractmethod
    def exchange(self, command: str) -> bytes | None:
        """Send ``command`` (ending in CR); the reply up to its CR, or None if none came."""


#: cablepower -> (DTR, RTS)
CABLEPOWER = {"normal": (True, False), "reverse": (False, True), "both": (True, True),
              "none": (False, False)}


def import_serial() -> Any:
    """pyserial, or :class:`MissingExtra` naming the extra to install."""
    try:
        import serial
    except ImportError:
        raise MissingExtra("the serial port needs pyserial: install upsagent[serial]") from None
    return serial


class SerialTransport(Transport):
    """A Q1 UPS on a serial port (see the module docstring)."""

    BAUDRATE = 2400
    #: longest reply we read (the longest Q1-family reply is under 110 bytes)
    MAX_REPLY = 256

    def __init__(self, port: str, cablepower: str = "normal", timeout: float = 1.0) -> None:
        if cablepower.lower() not in CABLEPOWER:
            raise ValueError(f"cablepower {cablepower!r}: one of "
                             f"{', '.join(CABLEPOWER)} expected")
        self.port = port
        self.lines = CABLEPOWER[cablepower.lower()]
        self.timeout = timeout
        self.description = f"serial {port}"
        self._serial: Any = None

    def open(self) -> dict[str, str]:
        serial = import_serial()
        self.close()
        handle = serial.Serial()
        handle.port = self.port
        handle.baudrate = self.BAUDRATE
        handle.bytesize, handle.parity, handle.stopbits = 8, "N", 1
        handle.xonxoff = handle.rtscts = handle.dsrdtr = False
        handle.timeout = handle.write_timeout = self.timeout
        handle.dtr, handle.rts = self.lines
        try:
            handle.open()
        except (OSError, ValueError) as exc:
            raise TransportError(f"cannot open {self.port}: {exc}") from None
        self._serial = handle
        return {}

    def close(self) -> None:
        handle, self._serial = self._serial, None
        if handle is not None:
            try:
                handle.close()
            except OSError:
                pass

    def exchange(self, command: str) -> bytes | None:
        handle = self._serial
        if handle is None:
            raise TransportError(f"{self.port} is not open")
        try:
            handle.reset_input_buffer()
            handle.write(command.encode("latin-1"))
            handle.flush()
            data: bytes = handle.read_until(b"\r", self.MAX_REPLY)
        except (OSError, ValueError, TypeError) as exc:
            # pyserial's SerialException is an OSError; a port closed under us can raise
            # TypeError/ValueError from inside pyserial
            self.close()
            raise TransportError(f"{self.port}: {exc}") from None
        return data or None
