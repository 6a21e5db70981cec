# -*- test-case-name: tests.test_master_service -*-
"""``upsagent master``: run the master daemon in the foreground (systemd runs it so).

Configuration comes from the native TOML file (``--config``, default
``/etc/upsagent/upsagent.toml``) or from a NUT directory (``--nut-config /etc/nut``).
``--nut-drivers`` serves every UPS from NUT's own running drivers through their sockets
(``serve = "nut-driver"`` for each), as upsd would: ``upsagent master --nut-config /etc/nut
--nut-drivers`` stands in for upsd while NUT's driver units keep running.
SIGHUP re-reads it without dropping clients; a reload that fails validation keeps the running
configuration and says why.  SIGTERM/SIGINT stop cleanly.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from upsagent.cli.foreground import serve
from upsagent.cli.logs import start_logging
from upsagent.config.schema import Config, ConfigError

__all__ = ["main", "with_nut_drivers"]

DEFAULT_CONFIG = "/etc/upsagent/upsagent.toml"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="upsagent master",
        description="Serve the NUT network protocol for the configured UPSes.")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("-c", "--config", metavar="FILE",
                        help=f"native TOML configuration (default {DEFAULT_CONFIG})")
    source.add_argument("--nut-config", metavar="DIR",
                        help="read NUT's ups.conf, upsd.conf and upsd.users from DIR")
    parser.add_argument("--nut-drivers", action="store_true",
                        help="serve every UPS from NUT's own running drivers, through their "
                             "sockets, exactly as upsd would (for keeping NUT's driver units)")
    parser.add_argument("-l", "--listen", metavar="HOST:PORT", action="append",
                        help="listen here instead of the configured addresses "
                             "(repeatable; [::1]:3493 for IPv6)")
    parser.add_argument("-D", "--debug", action="store_true", help="log debug messages")
    return parser


def load(args: argparse.Namespace) -> Config:
    """Load and validate the configuration the arguments name."""
    from upsagent.config import load_config

    config: Config = load_config(path=args.config or (None if args.nut_config
                                                      else DEFAULT_CONFIG),
                                 nut_dir=args.nut_config)
    if args.nut_drivers:
        config = with_nut_drivers(config)
    if args.listen:
        from dataclasses import replace

        listen = tuple(_parse_listen(item) for item in args.listen)
        config = replace(config, master=replace(config.master, listen=listen))
    return config


def with_nut_drivers(config: Config) -> Config:
    """``--nut-drivers``: every UPS served from NUT's own driver (``serve = "nut-driver"``)."""
    from dataclasses import replace

    upses = tuple(replace(ups, serve="nut-driver") for ups in config.master.ups)
    return replace(config, master=replace(config.master, ups=upses))


def _parse_listen(text: str) -> Any:
    from upsagent.config.schema import DEFAULT_PORT, ListenAddress

    host, port = text, str(DEFAULT_PORT)
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else port
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--listen {text}: port must be a number from 0 to 65535")
    return ListenAddress(host, int(port))


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load(args)
    except ConfigError as exc:
        sys.stderr.write(f"upsagent master: {exc}\n")
        return 1
    start_logging(debug=args.debug)

    from twisted.internet import reactor

    from upsagent.master.service import Master

    master = Master(config.master, reactor)
    return serve("master", reactor, start=master.start,
                 reload=lambda: master.reload(load(args).master), stop=master.stop,
                 warnings=config.warnings)
