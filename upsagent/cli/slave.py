# -*- test-case-name: tests.test_slave_daemon -*-
"""``upsagent slave``: run the slave agent in the foreground (systemd runs it so).

It watches UPSes on NUT-compatible masters and protects hosts: this machine (upsmon's job)
and, with ``[[host]]`` tables, others (maintenance, VM and host shutdown on timers).
Configuration comes from upsagent.toml's ``[slave]`` part (``--config``, default
``/etc/upsagent/upsagent.toml``) or from NUT's ``upsmon.conf`` (``--nut-config /etc/nut``),
which makes it a drop-in replacement for upsmon.  The plan is checked as ``check-config``
does: errors stop the start (exit 1), warnings are logged.  SIGHUP re-reads the
configuration, all or nothing (the running one is untouched when anything of the new one
is refused); SIGTERM/SIGINT stop cleanly with LOGOUT.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from upsagent.cli.foreground import serve
from upsagent.cli.logs import start_logging
from upsagent.config.schema import ConfigError
from upsagent.config.slaveconf import DEFAULT_STATE_FILE, DEFAULT_STATUS_SOCKET, SlaveConfig

__all__ = ["main"]

DEFAULT_CONFIG = "/etc/upsagent/upsagent.toml"
#: a dry run's state file is the real one's with this appended (unless --state-file)
DRY_RUN_SUFFIX = ".dry-run"

EPILOG = """\
With --nut-config the agent behaves as NUT's upsmon with the same upsmon.conf: the same
sessions (LOGIN, PRIMARY/MASTER), the same critical rules (FSD, OB+LB, HOSTSYNC for a
secondary, DEADTIME while on battery), SHUTDOWNCMD after FINALDELAY, POWERDOWNFLAG,
NOTIFYCMD/NOTIFYFLAG/NOTIFYMSG.  The engine's state is saved to the state file whenever it
changes, so a restarted agent continues a shutdown sequence with the right timers; once
its own host's shutdown command has started, the next start is a new boot (a fresh
watch; only the hosts it put into maintenance are remembered, to take them out).
A dry run (--dry-run, or dry_run = true) keeps its state apart, in the state file with
.dry-run appended, unless --state-file names one: what it decided (FSD set, a host shut
down) never reaches the real agent; its status socket is the configured one with
.dry-run appended too, unless --status-socket names one.  'upsagent status' asks the
running agent, through its status socket, for its plans, timers and last actions.  The plan is checked at start as check-config checks
it.  SIGHUP re-reads the configuration: everything it needs is checked and built first,
and when anything is refused the log says what and why and the running configuration
goes on untouched.
See upsagent-slave(8), upsagent(8) and upsagent.toml(5).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="upsagent slave", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Watch UPSes on NUT servers and shut hosts down when their power "
                    "fails (upsmon's job, plus timed maintenance and shutdown of other "
                    "hosts).")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("-c", "--config", metavar="FILE",
                        help=f"native TOML configuration with a [slave] table "
                             f"(default {DEFAULT_CONFIG})")
    source.add_argument("--nut-config", metavar="DIR",
                        help="read NUT's upsmon.conf from DIR instead")
    parser.add_argument("--state-file", metavar="FILE",
                        help=f"where the sequence's state is kept (default: the "
                             f"configured one, else {DEFAULT_STATE_FILE}; in a dry run "
                             f"that path with {DRY_RUN_SUFFIX} appended)")
    parser.add_argument("--status-socket", metavar="PATH",
                        help=f"the Unix socket 'upsagent status' asks (default: the "
                             f"configured one, else {DEFAULT_STATUS_SOCKET}; in a dry run "
                             f"that path with {DRY_RUN_SUFFIX} appended; '' for none)")
    parser.add_argument("-n", "--dry-run", action="store_true",
                        help="do everything except the actions: log what would be done "
                             "and when; the state goes to a file of its own (the state "
                             f"file with {DRY_RUN_SUFFIX} appended, unless --state-file "
                             "names one), never to the real agent's")
    parser.add_argument("-D", "--debug", action="store_true", help="log debug messages")
    return parser


def load(args: argparse.Namespace) -> SlaveConfig:
    """The slave configuration the arguments name (ConfigError when there is none)."""
    if args.nut_config:
        from upsagent.config.slaveconf import load_upsmon_dir
        slave = load_upsmon_dir(args.nut_config)
    else:
        from upsagent.config import load_toml
        config = load_toml(args.config or DEFAULT_CONFIG)
        if config.slave is None:
            raise ConfigError(f"{config.source}: no [slave] table: nothing to monitor")
        slave = config.slave
    if args.dry_run:
        slave = replace(slave, dry_run=True)
    if args.state_file:
        slave = replace(slave, state_file=args.state_file)
    elif slave.dry_run:      # its FSD and shutdowns must never be restored by a real agent
        slave = replace(slave, state_file=slave.state_file + DRY_RUN_SUFFIX)
    if args.status_socket is not None:
        slave = replace(slave, status_socket=args.status_socket or None)
    elif slave.dry_run and slave.status_socket is not None:   # beside the real agent's
        slave = replace(slave, status_socket=slave.status_socket + DRY_RUN_SUFFIX)
    return slave


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load(args)
    except ConfigError as exc:
        sys.stderr.write(f"upsagent slave: {exc}\n")
        return 1
    start_logging(debug=args.debug)

    from twisted.internet import reactor

    from upsagent.agent.daemon import SlaveDaemon

    daemon = SlaveDaemon(config, reactor)
    return serve("slave", reactor, start=daemon.start,
                 reload=lambda: daemon.reload(load(args)), stop=daemon.stop)
