# -*- test-case-name: tests.test_ssh -*-
"""``upsagent test-ssh [--config FILE] HOST``: try an ``ssh`` host without shutting it down.

HOST is a ``[[host]]`` name with ``backend = "ssh"`` in upsagent.toml (the same default
file as ``check-config``).  The command logs in exactly as the agent would (the host key
checked against ``known_hosts``, the key or password of ``[host.ssh]``), then asks the
remote shell whether the first word of ``command`` exists there (``command -v``); nothing
else is run.  One line on stdout when it passes, ``upsagent: HOST: <why>`` on stderr when it
does not; the exit status says which (:data:`EXIT`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from upsagent.config import DEFAULT_CONFIG_PATH, ConfigError, load_config

__all__ = ["EXIT", "main"]

#: the probe's word -> exit status (0 ok, 1 configuration, 2 usage)
EXIT = {"ok": 0, "unreachable": 3, "timed-out": 3, "host-key": 4, "login": 5,
        "missing": 6, "error": 7}

_EPILOG = """\
exit status: 0 logged in and the command exists; 1 configuration error (or HOST is not
an ssh host); 2 usage; 3 unreachable or no login in time; 4 host key unknown or changed;
5 login refused (wrong key or password); 6 the command is missing on the host; 7 another
SSH error.  Nothing is shut down."""


def main(argv: list[str]) -> int:
    """``upsagent test-ssh [--config FILE] [--timeout S] HOST``."""
    parser = argparse.ArgumentParser(
        prog="upsagent test-ssh", epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Log in to an ssh [[host]] as the agent would, check its host key and "
                    "that its shutdown command exists there; shut nothing down.")
    parser.add_argument("host", metavar="HOST", help="the [[host]] name (backend = \"ssh\")")
    parser.add_argument("--config", metavar="FILE",
                        help=f"upsagent.toml (default {DEFAULT_CONFIG_PATH})")
    parser.add_argument("--timeout", metavar="S", type=float, default=10.0,
                        help="seconds allowed for the connection and login (default 10)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"upsagent: {exc}", file=sys.stderr)
        return 1
    from upsagent.config.managers import SshTargetConfig

    slave = config.slave
    target = None if slave is None else slave.host_managers.get(args.host)
    if not isinstance(target, SshTargetConfig):
        names = [] if slave is None else sorted(
            name for name, m in slave.host_managers.items() if isinstance(m, SshTargetConfig))
        print(f"upsagent: {args.host}: no [[host]] of that name with backend = \"ssh\" in "
              f"{config.source} (ssh hosts: {', '.join(names) or 'none'})", file=sys.stderr)
        return 1
    try:
        from upsagent.hypervisors.ssh import SshBackend
    except ImportError as exc:
        print(f"upsagent: the ssh backend is not available: install upsagent[ssh] ({exc})",
              file=sys.stderr)
        return 1
    from twisted.internet import reactor

    try:
        backend = SshBackend(reactor, target, connect_timeout=args.timeout)
    except ValueError as exc:
        print(f"upsagent: {exc}", file=sys.stderr)
        return 1
    answer: list[Any] = []

    def done(value: Any) -> None:
        answer.append(value)
        reactor.stop()  # type: ignore[attr-defined]

    reactor.callWhenRunning(  # type: ignore[attr-defined]
        lambda: backend.probe().addBoth(done))
    reactor.run()  # type: ignore[attr-defined]
    if not answer or not isinstance(answer[0], tuple):
        print(f"upsagent: {args.host}: {answer[0] if answer else 'no answer'}",
              file=sys.stderr)
        return EXIT["error"]
    word, result = answer[0]
    if word == "ok":
        print(f"{args.host}: {result.detail}; host key matches {target.known_hosts}; "
              "nothing was shut down")
    else:
        print(f"upsagent: {args.host}: {result.detail}", file=sys.stderr)
    return EXIT[word]
