# -*- test-case-name: tests.test_killpower -*-
"""``upsagent killpower``: the last act of the OS shutdown, like ``upsmon -K`` followed by
``upsdrvctl shutdown``.

Run by the shutdown hook (``contrib/systemd/upsagent-killpower`` in
``/lib/systemd/system-shutdown/``) when everything else has stopped::

    upsagent killpower [--config FILE | --nut-config DIR] [--nut-drivers] [--force]
                       [--timeout S] [-D]

Rules:

* It acts only when the power-down flag (``master.powerdown_flag``; with ``--nut-config``
  and no such setting, upsmon.conf's ``POWERDOWNFLAG`` in that directory, so that it can
  replace nutshutdown behind a NUT upsmon primary) is set: written by the
  master's shutdown sequence (or by NUT's upsmon, same content), holding the magic first
  line ``upsmon-shutdown-file``, and written since this boot (master/powerdown.py).  A file
  without the magic line is not ours: refused and left alone.  A flag from before this boot
  is stale (NUT #2935, where a forgotten flag switched the UPS off at every later reboot):
  refused and removed.  ``--force`` acts without a valid flag (an operator's explicit order).
* Acting: the driver of every UPS that powers this host (``[master.shutdown] ups``, default
  every configured UPS) is started, all at once; as soon as one has reached its UPS (its
  first successful read) it is told :meth:`~upsagent.drivers.base.Driver.killpower`
  (``shutdown.return``: output off after the UPS's own delay, back on when mains returns).
  A UPS served by NUT's own driver is told through NUT's usual way, ``upsdrvctl shutdown
  <ups>`` (the driver's ``-k``), without waiting for the running driver, which is usually
  stopped by then; ``--nut-drivers`` treats every UPS so, as the master's option does.
  ``--timeout`` (default 30 s) bounds each UPS's start and its answer.
* One line per UPS on stdout (``<ups>: shutdown.return acknowledged`` or
  ``<ups>: FAILED: <why>``); driver logs on stderr.
* The flag is removed afterwards, whatever the outcome (on a read-only root file system it
  cannot be; the master removes it at its next start, as it then predates the boot).

Exit status: 0 when every UPS acknowledged; 1 when one failed or did not answer; 2 on a usage
or configuration error; 3 when nothing was done (no flag, no ``powerdown_flag`` configured, a
flag that is not ours, or a stale one).  The hook treats 0 and 1 as "the UPS was told" (and
then may wait for POWEROFF_WAIT and reboot), 3 as an ordinary shutdown.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from twisted.internet.defer import (
    Deferred, DeferredList, TimeoutError, maybeDeferred, succeed)

from upsagent.config.schema import ConfigError, MasterConfig, UpsConfig
from upsagent.system.powerdown import FlagState, boot_time, check_flag, remove_flag

__all__ = ["main", "kill_all", "targets"]

DEFAULT_CONFIG = "/etc/upsagent/upsagent.toml"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOTHING = 0, 1, 2, 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="upsagent killpower",
        description="Tell each UPS powering this host to switch its output off after its "
                    "delay and back on when mains returns, if the power-down flag is set. "
                    "Exit 0 when every UPS acknowledged, 1 when one did not, 3 when nothing "
                    "was done.")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("-c", "--config", metavar="FILE",
                        help=f"native TOML configuration (default {DEFAULT_CONFIG})")
    source.add_argument("--nut-config", metavar="DIR",
                        help="read NUT's ups.conf, upsd.conf and upsd.users from DIR")
    parser.add_argument("--nut-drivers", action="store_true",
                        help="as upsagent master --nut-drivers: every UPS is NUT's driver's, "
                             "switched off with upsdrvctl shutdown")
    parser.add_argument("--force", action="store_true",
                        help="act even without a valid power-down flag")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="S",
                        help="seconds each UPS may take to be reached and to answer "
                             "(default 30)")
    parser.add_argument("-D", "--debug", action="store_true", help="log debug messages")
    return parser


def targets(master: MasterConfig) -> list[UpsConfig]:
    """The UPSes to switch off: those powering this host (default: all configured)."""
    wanted = {name.lower() for name in master.shutdown.ups}
    if not wanted:
        return list(master.ups)
    return [ups for ups in master.ups
            if {n.lower() for n in (ups.name, *ups.aliases)} & wanted]


def kill_all(reactor: Any, upses: list[UpsConfig],
             timeout: float) -> "Deferred[list[tuple[str, bool, str]]]":
    """Start each UPS's driver and order ``killpower``; fires with (name, ok, text) each."""
    return DeferredList([_kill_one(reactor, conf, timeout) for conf in upses],
                        consumeErrors=True).addCallback(
        lambda results: [value for _, value in results])


def _kill_one(reactor: Any, conf: UpsConfig,
              timeout: float) -> "Deferred[tuple[str, bool, str]]":
    from upsagent.drivers.base import Result, UnavailableDriver
    from upsagent.drivers.registry import create_driver
    from upsagent.model import UPS

    driver = create_driver(conf, UPS(conf.name, conf.desc), reactor)
    stage = ["reached"]

    def started(_: object) -> "Deferred[Any]":
        stage[0] = "answered"
        ordered: Deferred[Any] = maybeDeferred(driver.killpower)
        return ordered.addTimeout(timeout, reactor)

    def answered(result: object) -> tuple[str, bool, str]:
        if result is Result.SUCCESS:
            return conf.name, True, "shutdown.return acknowledged"
        value = getattr(result, "value", result)
        return conf.name, False, f"the UPS did not acknowledge shutdown.return ({value})"

    def failed(reason: Any) -> tuple[str, bool, str]:
        if reason.check(TimeoutError):
            why = f"the UPS was not {stage[0]} within {timeout:g} s"
            if isinstance(driver, UnavailableDriver):
                why = driver.why
        else:
            why = f"{reason.type.__name__}: {reason.getErrorMessage()}"
        return conf.name, False, why

    def stop(outcome: tuple[str, bool, str]) -> "Deferred[tuple[str, bool, str]]":
        return maybeDeferred(driver.stop).addBoth(lambda _: outcome)

    if driver.killpower_needs_device:
        first: Deferred[Any] = maybeDeferred(driver.start)
        first.addTimeout(timeout, reactor)
    else:  # the order goes to another program (NUT's driver -k), not through this driver
        first = succeed(None)
    first.addCallback(started)
    return first.addCallbacks(answered, failed).addCallback(stop)


def upsmon_flag(nut_dir: str) -> str | None:
    """upsmon.conf's POWERDOWNFLAG in ``nut_dir`` (the last one, as upsmon), or None.

    Read leniently with NUT's tokenizer: at the end of a shutdown an unreadable or odd file
    must not stop the power-off when the flag itself is plain.
    """
    from upsagent.nut.tokenizer import tokenize_text

    try:
        with open(os.path.join(nut_dir, "upsmon.conf"), "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    flag = None
    for _, words in tokenize_text(data):
        if isinstance(words, list) and len(words) >= 2 and words[0] == "POWERDOWNFLAG":
            flag = words[1]
    return flag


def _flag_gate(master: MasterConfig, force: bool) -> tuple[int | None, str]:
    """(exit status to stop with or None to go on, what to say)."""
    path = master.powerdown_flag
    if path is None:
        if force:
            return None, "no powerdown_flag is configured; --force: switching off anyway"
        return EXIT_NOTHING, "no powerdown_flag is configured; nothing done"
    state = check_flag(path, boot_time())
    if state is FlagState.OURS:
        return None, f"{path}: power-down flag set"
    note = ""
    if state is FlagState.STALE and _remove(path):
        note = "; removed"
    text = f"{path}: {state.value}{note}"
    if force:
        return None, f"{text}; --force: switching off anyway"
    return EXIT_NOTHING, f"{text}; nothing done"


def _remove(path: str) -> bool:
    try:
        return remove_flag(path)
    except OSError as exc:
        print(f"upsagent killpower: cannot remove {path}: {exc.strerror or exc} (the master "
              "removes it at its next start)", file=sys.stderr)
        return False


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from upsagent.config import load_config

    try:
        config = load_config(path=args.config or (None if args.nut_config else DEFAULT_CONFIG),
                             nut_dir=args.nut_config)
    except ConfigError as exc:
        print(f"upsagent killpower: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.nut_drivers:
        from upsagent.cli.master import with_nut_drivers

        config = with_nut_drivers(config)
    master = config.master
    if master.powerdown_flag is None and args.nut_config:
        from dataclasses import replace

        master = replace(master, powerdown_flag=upsmon_flag(args.nut_config))
    status, text = _flag_gate(master, args.force)
    print(f"upsagent killpower: {text}", flush=True)
    if status is not None:
        return status
    upses = targets(master)
    if not upses:
        print("upsagent killpower: no UPS is configured", file=sys.stderr)
        return EXIT_FAILED

    from upsagent.cli.logs import start_logging

    start_logging(debug=args.debug)
    from twisted.internet import reactor

    outcome: list[tuple[str, bool, str]] = []

    def go() -> None:
        done = kill_all(reactor, upses, args.timeout)
        done.addCallback(outcome.extend)
        done.addBoth(lambda _: reactor.stop())  # type: ignore[attr-defined]

    reactor.callWhenRunning(go)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]
    for name, ok, what in outcome:
        print(f"{name}: {what}" if ok else f"{name}: FAILED: {what}", flush=True)
    if master.powerdown_flag is not None and os.path.exists(master.powerdown_flag):
        _remove(master.powerdown_flag)
    acknowledged = len(outcome) == len(upses) and all(ok for _, ok, _ in outcome)
    return EXIT_OK if acknowledged else EXIT_FAILED
