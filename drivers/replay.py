# -*- test-case-name: tests.test_replay -*-
"""The replay driver: NUT ``.dev`` / ``.seq`` dump files played into a UPS.

Configured as ``dummy-ups`` it stands in for NUT 2.8.0's dummy-ups behind upsd, and a
client sees the same variables, types and answers (measured against Debian's
``/lib/nut/dummy-ups`` + ``upsd`` 2.8.0).  As ``replay`` it is the same code: our
simulated UPS.

**The data file** is ``port``.  A relative path is taken from the configuration directory
(``config.confdir``, else the ``_confdir`` option), as dummy-ups takes it from NUT's
confpath; without either, from the current directory at construction time.

**Modes** (option ``mode``, as NUT): ``dummy-once`` reads the file once and re-reads it
when it changes (mtime, size or inode); ``dummy-loop`` (or ``dummy``) plays it again and
again, ``pollinterval`` seconds after each end of file.  Without ``mode`` the name
decides, as in dummy-ups: ``*.seq`` loops, ``*.dev`` is read once, a port with ``@`` means
repeater mode, anything else loops (published as ``driver.parameter.mode = dummy``).
Repeater mode is not supported: with ``serve = "auto"`` (the default) such a UPS is
served from NUT's own dummy-ups through its socket (:meth:`ReplayDriver.implements`);
with ``serve = "upsagent"`` it stays not connected and the log says why.

**Playback**: ``TIMER n`` pauses n seconds (``reactor.callLater``).  Changes are committed
at each TIMER and at the end of the file, so clients never see half a step.  A fresh read
(the first one, a changed ``.dev``, a file back after being lost) is built aside and then
replaces the published state in one commit: variables the file no longer has disappear.
Passes of a looping file are cumulative, as in dummy-ups.

**What dummy-ups publishes besides the file** (dummy-ups.c, main.c, dstate.c): placeholders
``ups.mfr`` "Dummy Manufacturer", ``ups.model`` "Dummy UPS" and ``ups.status`` "OL" set
before the file is read; ``device.type`` "ups"; after the first read, ``device.mfr``,
``device.model`` and ``device.serial`` copied from ``ups.*`` (overwriting file values, as
2.8.0 does); ``driver.name``, ``driver.version``, ``driver.version.internal`` and
``driver.parameter.{mode,pollinterval,port,synchronous}`` plus the driver's own options;
``driver.flag.*``; the one command ``load.off`` (answered as unhandled).

**Types**: every variable the file (or a SET) defines is writable; names of dummy-ups'
table get its type (STRING:n or NUMBER), others STRING:32.  What the core sets
(``driver.*``, ``device.type``, the ``device.*`` copies, ``default.*``) is read-only, which
upsd shows as NUMBER.  ``override.<var>`` fixes a read-only value nothing may change.

**Staleness**: never OK before the first read (``start()`` fires then).  The file is
checked every ``pollinterval`` seconds; unreadable means ``data_stale`` (or still not
connected), readable again means re-read, then ``data_ok``.

**killpower**: records ``shutdown.return`` in ``shutdown_log``; the upsagent option
``killpower_log = <path>`` also appends it to that file (for tests of ``upsagent
killpower``, which runs in a process of its own).

**Versions**: configured as ``dummy-ups`` the driver reports NUT 2.8.0's
``driver.version`` "2.8.0" and dummy-ups' ``driver.version.internal`` "0.15", so that a
client (or a byte-for-byte diff against NUT) cannot tell the difference, just as the server
answers ``VER`` with upsd 2.8.0's wording; configured as ``replay`` it names upsagent.

Deliberate differences from dummy-ups: values are set
exactly as given (2.8.0 mangles ``"``, ``\\`` and ``#`` when forwarding a SET); a name
without value is skipped, not given the previous line's value; a changed ``.dev`` drops
the variables it lost; a missing file is retried, not fatal; TIMERs are exact, not rounded
up to the next poll; ``default.ups.model`` etc. beat the placeholders.
"""

from __future__ import annotations

from upsagent.nut.state import NUT_VERSION

import os
import re
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from upsagent.config.schema import UpsConfig
from upsagent.drivers.base import Driver, Result
from upsagent.drivers.dumpfile import Entry, Timer, parse_dump
from upsagent.model import UPS

__all__ = ["ReplayDriver", "nut_type"]

DEFAULT_POLLINTERVAL = 2

# dummy-ups.h: the table of known names.  Strings with their maximum length ...
_STRINGS = {
    "ups.mfr": 32, "ups.model": 32, "ups.status": 32, "ups.serial": 32, "ups.alarm": 32,
    "ups.time": 16, "ups.date": 16, "ups.mfr.date": 16, "ups.firmware": 16,
    "ups.firmware.aux": 16, "ups.id": 16, "ups.test.result": 16,
    "input.transfer.reason": 1, "input.sensitivity": 1, "input.quality": 6,
}
# ... and numbers.
_NUMBERS = frozenset("""
    ups.load ups.temperature ups.delay.start ups.delay.reboot ups.delay.shutdown
    ups.test.interval input.voltage input.voltage.maximum input.voltage.minimum
    input.voltage.nominal input.transfer.low input.transfer.high input.frequency
    input.transfer.boost.low input.transfer.boost.high input.transfer.trim.low
    input.transfer.trim.high output.voltage output.frequency output.current battery.charge
    battery.charge.low battery.voltage battery.current battery.runtime battery.runtime.low
    battery.charge.restart battery.temperature battery.voltage.nominal ambient.temperature
    ambient.temperature.alarm ambient.temperature.high ambient.temperature.low
    ambient.humidity ambient.humidity.alarm ambient.humidity.high ambient.humidity.low
""".split())
#: set before the file is read (DU_FLAG_INIT rows)
_PLACEHOLDERS = (("ups.mfr", "Dummy Manufacturer"), ("ups.model", "Dummy UPS"),
                 ("ups.status", "OL"))
_DEVICE_COPIES = (("ups.mfr", "device.mfr"), ("ups.model", "device.model"),
                  ("ups.serial", "device.serial"))
#: ups.conf options NUT's driver core consumes without publishing them as driver.parameter.*
#: (main.c main_arg/do_upsconf_args; the last three are published with effective values)
_CORE_OPTIONS = frozenset({"driver", "desc", "sdorder", "sddelay", "user", "group",
                           "debug_min", "chroot", "maxstartdelay", "maxretry", "retrydelay",
                           "nowait", "pollinterval", "synchronous", "mode"})
_MODES = {"dummy-once": "dummy-once", "dummy-loop": "dummy-loop", "dummy": "dummy-loop",
          "repeater": "repeater"}
_LEADING_INT = re.compile(r"\s*[+-]?[0-9]+")


def nut_type(name: str) -> int | None:
    """dummy-ups' type for a variable it loads: a string length, or None for NUMBER."""
    key = name.lower()
    if key in _NUMBERS:
        return None
    return _STRINGS.get(key, 32)


class ReplayDriver(Driver):
    """Plays a NUT dump file into the UPS; also answers for NUT's ``dummy-ups``."""

    name = "replay"
    nut_names = ("dummy-ups",)

    def __init__(self, config: UpsConfig, ups: UPS, reactor: IReactorTime) -> None:
        super().__init__(config, ups, reactor)
        options = config.options
        #: every killpower order: (reactor time, command)
        self.shutdown_log: list[tuple[float, str]] = []
        self.path = _resolve(config)
        self.pollinterval = _pollinterval(options.get("pollinterval"))
        self.mode = _mode(options.get("mode"), config.port or options.get("port") or "")
        self._loop = self.mode in ("dummy-loop", "dummy")
        self._ignorelb = any(flag.lower() == "ignorelb" for flag in config.flags)
        self._defaults = _prefixed(options, "default.")
        self._overrides = _prefixed(options, "override.")
        self._started: Deferred[None] = Deferred()
        self._fired = False
        self._running = False
        self._watch_call: IDelayedCall | None = None
        self._play_call: IDelayedCall | None = None
        #: waiting (no usable data), playing (in a TIMER), between (loop), idle (once)
        self._phase = "waiting"
        self._lost: str | None = None
        self._entries: list[Entry] = []
        self._pos = 0
        self._target = ups
        self._signature: tuple[int, int, int] | None = None
        self._logged_signature: tuple[int, int, int] | None = None

    # -- the Driver contract ---------------------------------------------------------

    @classmethod
    def unfit(cls, config: UpsConfig) -> str | None:
        """Everything but dummy-ups' repeater mode (NUT's dummy-ups serves that)."""
        options = config.options
        if _mode(options.get("mode"), config.port or options.get("port") or "") == "repeater":
            return "upsagent's dummy-ups has no repeater mode"
        return None

    def start(self) -> "Deferred[None]":
        """Publish driver.*, then read the file; fires after the first successful read."""
        self._publish_driver_info()
        why = None
        if self.mode == "repeater":
            why = (f"dummy-ups repeater mode (port {self.config.port!r}) is not supported by "
                   "this upsagent version yet; the UPS is reported as not connected")
        elif self.path is None:
            why = "no data file: set port to a .dev or .seq file"
        if why is not None:
            self.log.error("UPS {ups}: {why}", ups=self.config.name, why=why)
            self.ups.disconnected(why)
            return self._started
        self.log.info("UPS {ups}: replaying {path} (mode {mode}, checked every {poll} s)",
                      ups=self.config.name, path=self.path, mode=self.mode,
                      poll=self.pollinterval)
        self._running = True
        self._watch()
        return self._started

    def stop(self) -> "Deferred[None]":
        """Cancel every pending call; the UPS is no longer connected."""
        self._running = False
        self._cancel_play()
        if self._watch_call is not None and self._watch_call.active():
            self._watch_call.cancel()
        self._watch_call = None
        self._phase = "waiting"
        self.ups.disconnected("driver stopped")
        return succeed(None)

    def setvar(self, name: str, value: str) -> "Deferred[Result]":
        """As dummy-ups: set (or, with an empty value, delete) any variable it may change."""
        if not self._apply(self.ups, name, value, raw_status=True):
            return succeed(Result.UNKNOWN)
        self.log.info("UPS {ups}: SET {name} = {value!r}", ups=self.config.name, name=name,
                      value=value)
        self.ups.commit()
        return succeed(Result.SUCCESS)

    def instcmd(self, name: str, value: str | None = None) -> "Deferred[Result]":
        """dummy-ups lists ``load.off`` but handles no command: always unknown."""
        self.log.info("UPS {ups}: instcmd: unknown command [{name}] [{value}]",
                      ups=self.config.name, name=name, value=value)
        return succeed(Result.UNKNOWN)

    def killpower(self) -> "Deferred[Result]":
        """Record the power-off order (``shutdown.return``); a replayed UPS has no power.

        With the option ``killpower_log = <path>`` the order is also appended to that file
        as ``<reactor time> shutdown.return``, so that a test can see what a separate
        ``upsagent killpower`` process ordered.
        """
        when = self.reactor.seconds()
        self.shutdown_log.append((when, "shutdown.return"))
        log_path = self.config.options.get("killpower_log")
        if log_path:
            try:
                with open(log_path, "a", encoding="utf-8") as handle:
                    handle.write(f"{when:.6f} shutdown.return\n")
            except OSError as exc:
                self.log.error("UPS {ups}: cannot append to killpower_log {path}: {err}",
                               ups=self.config.name, path=log_path, err=exc)
                return succeed(Result.FAILED)
        self.log.warn("UPS {ups}: killpower: shutdown.return ordered at {when} (simulated UPS: "
                      "recorded only, nothing is switched off)", ups=self.config.name, when=when)
        return succeed(Result.SUCCESS)

    # -- watching the file -----------------------------------------------------------

    def _watch(self) -> None:
        """Every pollinterval: notice a lost, returned or (once mode) changed file."""
        self._watch_call = None
        if not self._running or self.path is None:
            return
        self._watch_call = self.reactor.callLater(self.pollinterval, self._watch)
        try:
            signature = _signature(os.stat(self.path))
        except OSError as exc:
            self._lose(f"cannot read {self.path}: {exc.strerror or exc}")
            return
        if self._phase == "waiting":
            self._begin_pass(fresh=True)
        elif self._phase == "idle" and signature != self._signature:
            self.log.info("UPS {ups}: {path} changed, reading it again",
                          ups=self.config.name, path=self.path)
            self._begin_pass(fresh=True)
        else:
            # the file is still there and the driver is alive: the data stays current
            # (this is the poll that keeps the master's MAXAGE watchdog content)
            self.ups.data_ok()

    def _lose(self, reason: str) -> None:
        """The file cannot be read: stop playing, mark the data stale (log it once)."""
        if self._phase != "waiting" or self._lost != reason:
            self.log.warn("UPS {ups}: {reason}; data is stale until it can be read",
                          ups=self.config.name, reason=reason)
        self._cancel_play()
        self._phase = "waiting"
        self._lost = reason
        self.ups.data_stale(reason)

    def _cancel_play(self) -> None:
        if self._play_call is not None and self._play_call.active():
            self._play_call.cancel()
        self._play_call = None

    # -- playing ---------------------------------------------------------------------

    def _begin_pass(self, fresh: bool) -> None:
        """Read the file and play it from the top (``fresh``: replacing what is published)."""
        self._play_call = None
        assert self.path is not None
        try:
            with open(self.path, "rb") as stream:
                signature = _signature(os.fstat(stream.fileno()))
                data = stream.read()
        except OSError as exc:
            self._lose(f"cannot read {self.path}: {exc.strerror or exc}")
            return
        dump = parse_dump(data, self.path)
        if signature != self._logged_signature:
            self._logged_signature = signature
            for error in dump.errors:
                self.log.warn("UPS {ups}: line skipped: {error}", ups=self.config.name,
                              error=str(error))
        if self._lost is not None:
            self.log.info("UPS {ups}: {path} is readable again", ups=self.config.name,
                          path=self.path)
            self._lost = None
        self._signature = signature
        self._entries, self._pos = dump.entries, 0
        if fresh:
            self._target = UPS(self.ups.name, self.ups.desc)
            self._initial_state(self._target)
        self._phase = "playing"
        self._advance()

    def _advance(self) -> None:
        """Apply entries up to the next TIMER (commit and pause) or the end of the file."""
        self._play_call = None
        while self._pos < len(self._entries):
            entry = self._entries[self._pos]
            self._pos += 1
            if isinstance(entry, Timer):
                self._commit()
                self._play_call = self.reactor.callLater(entry.seconds, self._advance)
                return
            self._apply(self._target, entry.name, entry.value, raw_status=False)
        self._commit()
        if self._loop:
            self._phase = "between"
            self._play_call = self.reactor.callLater(self.pollinterval, self._begin_pass, False)
        else:
            self._phase = "idle"

    def _commit(self) -> None:
        """Publish what was played: swap in a fresh state, ``data_ok``, fire ``start()``."""
        if self._target is not self.ups:
            for source, copy in _DEVICE_COPIES:
                value = self._target.value(source)
                if value is not None and copy not in self._overrides:
                    self._target.set(copy, value)
            _replace(self.ups, self._target)
            self._target = self.ups
        self.ups.data_ok()
        if not self._fired:
            self._fired = True
            self.log.info("UPS {ups}: first read of {path} done", ups=self.config.name,
                          path=self.path)
            if not self._started.called:  # a caller may have cancelled it
                self._started.callback(None)

    def _initial_state(self, ups: UPS) -> None:
        """What dummy-ups and the driver core hold before the file's first line."""
        ups.set("device.type", "ups")
        for key, value in self._defaults.items():
            ups.set(key, value)
        for key, value in self._overrides.items():
            ups.set(key, value)
        for key, value in _PLACEHOLDERS:
            if key not in self._defaults:
                self._apply(ups, key, value, raw_status=True)
        ups.add_command("load.off")

    def _apply(self, ups: UPS, name: str, value: str, raw_status: bool) -> bool:
        """One ``name: value`` of the file or one SET; False if the name is not ours."""
        key = name.lower()
        if key.startswith("driver.") or key in self._overrides:
            return False
        if key == "ups.status":
            # dummy-ups: each word of a file line is a status_set(); a SET is one.
            self._set_status(ups, [value] if raw_status else value.split())
        elif value == "":
            ups.delete(name)
        else:
            _define(ups, name, value, nut_type(key))
        return True

    def _set_status(self, ups: UPS, parts: list[str]) -> None:
        """status_init/status_set/status_commit, with the core's ``ignorelb`` rule."""
        if self._ignorelb:
            parts = [part for part in parts if part.lower() != "lb"]
            if (_below(ups, "battery.charge", "battery.charge.low")
                    or _below(ups, "battery.runtime", "battery.runtime.low")):
                parts.append("LB")
        _define(ups, "ups.status", " ".join(parts), nut_type("ups.status"))

    def _publish_driver_info(self) -> None:
        """driver.* as NUT's core publishes it for dummy-ups (read-only), nothing else."""
        ups = self.ups
        for var in ups.variables():  # a previous driver's (config reload)
            if var.name.lower().startswith("driver."):
                ups.delete(var.name)
        self.publish_driver_info()
        if self.config.driver.lower() == "dummy-ups":
            ups.set("driver.version", NUT_VERSION)
            ups.set("driver.version.internal", DUMMY_UPS_VERSION)
        for key, value in self.config.options.items():
            lower = key.lower()
            if (lower.startswith(("_", "override.", "default.")) or lower in _CORE_OPTIONS):
                ups.delete(f"driver.parameter.{key}")
            elif lower not in ("port", "killpower_log"):
                self.log.warn("UPS {ups}: option {key!r} is not a dummy-ups option (NUT's "
                              "dummy-ups would refuse to start)", ups=self.config.name, key=key)
        if self.config.port is not None:
            ups.set("driver.parameter.port", self.config.port)
        ups.set("driver.parameter.mode", self.mode)
        ups.set("driver.parameter.pollinterval", str(self.pollinterval))
        synchronous = self.config.options.get("synchronous", "auto")
        ups.set("driver.parameter.synchronous",
                synchronous if synchronous in ("yes", "auto") else "no")


#: dummy-ups' own version in NUT 2.8.0 (driver.version.internal)
DUMMY_UPS_VERSION = "0.15"


def _define(ups: UPS, name: str, value: str, string_len: int | None) -> None:
    """Set a variable loaded by dummy-ups: writable, with the table's type."""
    ups.set(name, value, writable=True)
    var = ups.get(name)
    assert var is not None
    var.string_len = string_len


def _replace(ups: UPS, fresh: UPS) -> None:
    """Make ``ups`` hold exactly ``fresh`` (values, flags, commands), ``driver.*`` aside."""
    keep = {var.name.lower() for var in fresh.variables()}
    for var in ups.variables():
        if var.name.lower() not in keep and not var.name.lower().startswith("driver."):
            ups.delete(var.name)
    for src in fresh.variables():
        ups.set(src.name, src.value)
        dst = ups.get(src.name)
        assert dst is not None
        dst.writable, dst.string_len = src.writable, src.string_len
        dst.enum, dst.ranges = list(src.enum), list(src.ranges)
    for command in ups.commands():
        if not fresh.has_command(command):
            ups.remove_command(command)
    for command in fresh.commands():
        ups.add_command(command)


def _below(ups: UPS, name: str, low: str) -> bool:
    """``name`` < ``low`` compared as C's strtol does (both must exist)."""
    value, limit = ups.value(name), ups.value(low)
    return value is not None and limit is not None and _strtol(value) < _strtol(limit)


def _strtol(text: str) -> int:
    match = _LEADING_INT.match(text)
    return int(match.group()) if match else 0


def _signature(st: os.stat_result) -> tuple[int, int, int]:
    """What tells a changed file: mtime (ns), size, inode."""
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _resolve(config: UpsConfig) -> str | None:
    """The data file's path (see the module docstring), or None without a port."""
    port = config.port or config.options.get("port")
    if not port:
        return None
    if os.path.isabs(port):
        return port
    confdir = config.confdir or config.options.get("_confdir")
    return os.path.join(confdir, port) if confdir else os.path.abspath(port)


def _pollinterval(text: str | None) -> int:
    """NUT's pollinterval: a whole number of seconds above 0 (default 2)."""
    if text is not None and text.strip().isdigit() and int(text) > 0:
        return int(text)
    if text is not None:
        Driver.log.warn("pollinterval {text!r} is not a whole number of seconds above 0; "
                        "using {default}", text=text, default=DEFAULT_POLLINTERVAL)
    return DEFAULT_POLLINTERVAL


def _mode(option: str | None, port: str) -> str:
    """The mode dummy-ups runs in, as published in ``driver.parameter.mode``."""
    if option is not None:
        if option in _MODES:
            return _MODES[option]
        Driver.log.warn("mode {mode!r} is not dummy-once, dummy-loop, dummy or repeater; "
                        "choosing by the port's name as dummy-ups does", mode=option)
    if "@" in port and option is None:
        return "repeater"
    if port.endswith(".seq"):
        return "dummy-loop"
    if port.endswith(".dev"):
        return "dummy-once"
    return "dummy"


def _prefixed(options: dict[str, str], prefix: str) -> dict[str, str]:
    """``override.<var>`` / ``default.<var>`` options as {lower-case var: value}."""
    return {key[len(prefix):].lower(): value for key, value in options.items()
            if key.lower().startswith(prefix) and len(key) > len(prefix)}
