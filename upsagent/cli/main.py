# -*- test-case-name: tests.test_cli -*-
"""``upsagent <subcommand>``: a registry of subcommands, each imported only when used.

Each entry points at a function ``main(argv: list[str]) -> int`` that parses its own
arguments (the query tools must take exactly upsc's, upsrw's and upscmd's options, which
argparse cannot express, so every subcommand owns its parsing).
"""

from __future__ import annotations

import importlib
import sys
from typing import Callable, Sequence

from upsagent import __version__

__all__ = ["SUBCOMMANDS", "main"]

#: name -> ("module:function", one-line summary)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "master": ("upsagent.cli.master:main", "run the master daemon (serves the NUT protocol)"),
    "slave": ("upsagent.cli.slave:main",
              "run the slave agent: watch UPSes, shut hosts down (upsmon's job)"),
    "status": ("upsagent.cli.status:main",
               "ask the running slave agent for its plans, timers, last actions and "
               "inventory"),
    "query": ("upsagent.cli.query:main", "query a NUT server; takes exactly upsc's arguments"),
    "rw": ("upsagent.cli.rw:main", "list or set writable variables, like upsrw"),
    "cmd": ("upsagent.cli.cmd:main", "list or run instant commands, like upscmd"),
    "check-config": ("upsagent.cli.configcmds:check_config",
                     "validate a configuration and exit non-zero on an error"),
    "test-ssh": ("upsagent.cli.testssh:main",
                 "log in to an ssh [[host]], check its host key and command; shut nothing "
                 "down"),
    "import-nut": ("upsagent.cli.configcmds:import_nut",
                   "print the native TOML equivalent of a NUT configuration directory"),
    "demo": ("upsagent.cli.demo:main", "run a master on a replayed UPS and play a power cut"),
    "simulate": ("upsagent.cli.simulate:main", "print the timeline of a scripted power failure"),
    "decode": ("upsagent.cli.decode:main",
               "print what a driver would publish from recorded device data (upsc format)"),
    "scan": ("upsagent.cli.scan:main",
             "find UPSes (attached by USB, network cards in an address range) and print "
             "their configuration"),
    "killpower": ("upsagent.cli.killpower:main",
                  "at the end of the OS shutdown: switch the UPS output off if the "
                  "power-down flag is set"),
}

USAGE = """\
usage: upsagent [--version] [--help] <subcommand> [options]

A NUT-compatible UPS network agent.  Subcommands:

{commands}

'upsagent <subcommand> --help' describes each one; see also upsagent(8).
"""


def _usage() -> str:
    width = max(len(name) for name in SUBCOMMANDS)
    lines = [f"  {name:<{width}}  {summary}" for name, (_, summary) in SUBCOMMANDS.items()]
    return USAGE.format(commands="\n".join(lines))


def _load(target: str) -> Callable[[list[str]], int]:
    module, _, func = target.partition(":")
    entry: Callable[[list[str]], int] = getattr(importlib.import_module(module), func)
    return entry


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to a subcommand; returns the process exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(_usage())
        return 0 if args else 2
    if args[0] in ("-V", "--version"):
        print(f"upsagent {__version__}")
        return 0
    name = args[0]
    if name not in SUBCOMMANDS:
        sys.stderr.write(f"upsagent: unknown subcommand {name!r}\n\n{_usage()}")
        return 2
    return _load(SUBCOMMANDS[name][0])(args[1:])
