# -*- test-case-name: tests.test_config -*-
"""``upsagent check-config`` and ``upsagent import-nut``.

check-config loads a configuration exactly as the master would and prints, after any
warnings, one line per UPS saying who will serve it (``UPS <name>: served by upsagent's
driver for dummy-ups (...)``, or ``served by NUT's driver usbhid-ups through its socket
/run/nut/usbhid-ups-<name> ...``; ``--nut-drivers`` as for the master), then one line
``OK: <n> UPS, <m> users, listening on <addresses>`` (all on stdout); on an
error it prints ``upsagent: <error>`` on stderr and exits 1.  When the configuration has a
slave part (``[slave]``/``[[host]]``, or an ``upsmon.conf`` in the NUT directory) its plan is
checked too (:func:`upsagent.config.slavecheck.plan_problems`): warnings are printed, errors
exit 1, a ``runtime trigger: ...`` line per host says at which runtime the agent acts at
once (:func:`upsagent.config.slavecheck.runtime_triggers`), and a second line says
``OK: slave: <n> monitored UPS, <m> hosts``.

import-nut reads a NUT configuration directory (ups.conf, upsd.conf, upsd.users and, when
present, upsmon.conf for the ``[slave]`` part) and prints the equivalent upsagent.toml on
stdout (warnings, upsmon.conf's included, go to stderr, so the output can be redirected as
is).  The output holds the
users' passwords; ``--output FILE`` creates the file with mode 0600 and never overwrites one.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace

from upsagent.config import (
    DEFAULT_CONFIG_PATH, DEFAULT_NUT_DIR, ConfigError, load_config, load_nut_dir, to_toml)
from upsagent.config.schema import Config, ListenAddress, UpsConfig
from upsagent.config.slavecheck import plan_problems, runtime_triggers
from upsagent.config.slaveconf import load_upsmon_dir

__all__ = ["check_config", "import_nut"]


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace | int:
    """Parse ``argv``; an int is the exit status when argparse wanted to exit (--help, errors)."""
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2


def _address(address: ListenAddress) -> str:
    host = f"[{address.host}]" if ":" in address.host else address.host
    return f"{host}:{address.port}"


def check_config(argv: list[str]) -> int:
    """``upsagent check-config [--config FILE | --nut-config DIR]``."""
    parser = argparse.ArgumentParser(
        prog="upsagent check-config",
        description="Load a configuration as the master would, print what it found and any "
                    "warnings; exit 1 on an error.")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--config", metavar="FILE",
                        help=f"upsagent.toml to check (default {DEFAULT_CONFIG_PATH})")
    source.add_argument("--nut-config", metavar="DIR",
                        help="check NUT's ups.conf, upsd.conf and upsd.users in DIR instead")
    parser.add_argument("--nut-drivers", action="store_true",
                        help="as upsagent master --nut-drivers: every UPS served from NUT's "
                             "own running driver")
    args = _parse(parser, argv)
    if isinstance(args, int):
        return args
    try:
        config = _load_with_upsmon(args.config, args.nut_config)
        if args.nut_drivers:
            from upsagent.cli.master import with_nut_drivers

            config = with_nut_drivers(config)
    except ConfigError as exc:
        hint = ""
        if args.config is None and args.nut_config is None and \
                not os.path.exists(DEFAULT_CONFIG_PATH):
            hint = (" (write one, see upsagent.toml(5), or check NUT's files with "
                    f"--nut-config {DEFAULT_NUT_DIR})")
        print(f"upsagent: {exc}{hint}", file=sys.stderr)
        return 1
    for warning in config.warnings:
        print(f"warning: {warning}")
    errors: list[str] = []
    if config.slave is not None:
        errors, warnings = plan_problems(config.slave)
        for warning in (*config.slave.warnings, *warnings):
            print(f"warning: {warning}")
        for error in errors:
            print(f"upsagent: {error}", file=sys.stderr)
        for line in runtime_triggers(config.slave):
            print(f"runtime trigger: {line}")
    master = config.master
    for line in serving_lines(master.ups):
        print(line)
    if config.master.ups or config.slave is None:
        users = f"{len(master.users)} user{'' if len(master.users) == 1 else 's'}"
        listen = ", ".join(_address(address) for address in master.listen)
        print(f"OK: {len(master.ups)} UPS, {users}, listening on {listen}")
    if config.slave is not None and not errors:
        hosts = len(config.slave.plan.hosts)
        print(f"OK: slave: {len(config.slave.monitors)} monitored UPS, {hosts} "
              f"host{'' if hosts == 1 else 's'}")
    return 1 if errors else 0


def serving_lines(upses: tuple[UpsConfig, ...]) -> list[str]:
    """One line per UPS: who will serve it, and where NUT's driver socket is expected."""
    try:
        from upsagent.drivers.registry import serving
    except ImportError:  # a build without drivers: nothing to say
        return []
    return [f"UPS {ups.name}: served by {serving(ups)}" for ups in upses]


def _has_upsmon(directory: str) -> bool:
    return os.path.exists(os.path.join(directory, "upsmon.conf"))


def _load_with_upsmon(path: str | None, nut_dir: str | None) -> Config:
    """:func:`load_config`, plus upsmon.conf as the slave part of a NUT directory; a
    directory with only upsmon.conf (a host that only runs upsmon) is a slave alone."""
    if nut_dir is None or not _has_upsmon(nut_dir):
        return load_config(path, nut_dir)
    slave = load_upsmon_dir(nut_dir)
    if not os.path.exists(os.path.join(nut_dir, "ups.conf")):
        return Config(slave=slave, source=os.path.abspath(nut_dir))
    return replace(load_nut_dir(nut_dir), slave=slave)


def import_nut(argv: list[str]) -> int:
    """``upsagent import-nut [-o FILE] [DIR]``."""
    parser = argparse.ArgumentParser(
        prog="upsagent import-nut",
        description="Print the upsagent.toml equivalent of a NUT configuration directory "
                    "(ups.conf, upsd.conf, upsd.users). The output contains passwords.")
    parser.add_argument("directory", metavar="DIR", nargs="?", default=DEFAULT_NUT_DIR,
                        help=f"NUT's configuration directory (default {DEFAULT_NUT_DIR})")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write to FILE, created with mode 0600 (it must not exist yet)")
    args = _parse(parser, argv)
    if isinstance(args, int):
        return args
    try:
        config = _load_with_upsmon(None, args.directory)
    except ConfigError as exc:
        print(f"upsagent: {exc}", file=sys.stderr)
        return 1
    for warning in (*config.warnings, *(config.slave.warnings if config.slave else ())):
        print(f"warning: {warning}", file=sys.stderr)
    text = to_toml(config, comment=f"upsagent.toml converted from {config.source} "
                                   "by upsagent import-nut")
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        print(f"upsagent: {args.output}: {exc.strerror}"
              f"{' (not overwritten)' if isinstance(exc, FileExistsError) else ''}",
              file=sys.stderr)
        return 1
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return 0
