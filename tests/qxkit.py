"""Test helpers for the Q1 driver: a UPS emulator on a pty, recorded replies, a driver setup.

:class:`PtyUps` is the far end of a real pseudo-terminal pair (``os.openpty``): a thread
reads what the driver writes, and for each command (up to its CR) answers as the script
says: a recorded reply, silence, the command echoed back, garbage, or half a reply and
then silence (a cable pulled mid-reply).  Nothing of upsagent is used to build the answers:
they are bytes from tests/data/qx, read by :func:`recorded`.

The driver is built with the ``direct`` seam and a ``Clock``: a poll is one
``clock.advance(pollinterval)``, and the only real waiting is the serial read timeout of a
silent emulator (kept short with ``timeout=``).
"""

from __future__ import annotations

import os
import select
import threading
import tty
from pathlib import Path
from typing import Callable

DATA = Path(__file__).parent / "data" / "qx"

#: what the emulator does for a command
SILENT = "silent"
ECHO = "echo"


def recorded(name: str) -> dict[str, bytes]:
    """command -> reply bytes of a .q1log's reassembled (``<``) lines (last one wins)."""
    out: dict[str, bytes] = {}
    command = ""
    for line in (DATA / name).read_text(encoding="latin-1").splitlines():
        if line.startswith("> "):
            command = line[2:].replace("\\r", "\r")
        elif line.startswith("< "):
            out[command] = line[2:].replace("\\r", "\r").encode("latin-1")
    return out


class PtyUps:
    """A scripted Q1 UPS on the master side of a pty (see the module docstring)."""

    def __init__(self, replies: dict[str, bytes | str], unknown: str = ECHO) -> None:
        self.replies = dict(replies)
        self.unknown = unknown
        self.received: list[str] = []
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def set(self, command: str, reply: bytes | str) -> None:
        with self._lock:
            self.replies[command] = reply

    def commands(self) -> list[str]:
        with self._lock:
            return list(self.received)

    def _answer(self, command: str) -> bytes:
        with self._lock:
            self.received.append(command)
            reply = self.replies.get(command, self.unknown)
        if reply == SILENT:
            return b""
        if reply == ECHO:
            return command.encode("latin-1")
        assert isinstance(reply, bytes)
        return reply

    def _run(self) -> None:
        pending = b""
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self.master], [], [], 0.05)
                if not ready:
                    continue
                data = os.read(self.master, 1024)
            except OSError:
                return
            pending += data
            while b"\r" in pending:
                line, _, pending = pending.partition(b"\r")
                answer = self._answer(line.decode("latin-1") + "\r")
                if answer:
                    try:
                        os.write(self.master, answer)
                    except OSError:
                        return

    def unplug(self) -> None:
        """The adapter is gone: the pty's master end closes (reads fail with EIO)."""
        self._stop.set()
        self._thread.join(5)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass

    close = unplug


def wait_until(check: Callable[[], bool], tries: int = 200) -> None:
    """Poll a condition another thread makes true (bounded; each try blocks in select)."""
    for _ in range(tries):
        if check():
            return
        select.select([], [], [], 0.01)
    raise AssertionError("condition not reached")
