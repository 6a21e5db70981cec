# -*- test-case-name: tests.test_scenarios -*-
"""``upsagent simulate NAME|FILE [--json]``, ``upsagent simulate --list``.

Plays a scenario (a built-in one by name, or a TOML file, see upsagent-simulate(8)) through
the real policy engine and executor on a simulated clock, with simulated UPSes and
hypervisors, and prints the timeline: seconds since the first power failure, the subject,
what happened and why.  ``--json`` prints one JSON object per line instead (keys ``t``,
``subject``, ``event``, ``detail``).

Exit status (:data:`EXIT_STATUS`): 0 when every host came through; 1 for a failure of the
policy (the timeline shows a host or VM that lost power while running or before its
shutdown finished, or a plan has a check-config error); 2 for a usage error or a scenario
that cannot be read; 3 when nothing failed but a host stays off (shut down safely, and its
power came back without its UPS cycling the output: nothing switches it on again).  A host
still off at the end because its UPS's output is off (the mains did not come back within
the scenario) is the normal outcome of a shutdown: 0.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

from upsagent.simulator.scenario import Scenario, ScenarioError, builtin, builtin_names, load
from upsagent.simulator.simulation import FAILURES, LEFT_OFF, simulate
from upsagent.policy.timeline import format_json, format_text

__all__ = ["EXIT_FAILURE", "EXIT_LEFT_OFF", "EXIT_OK", "EXIT_STATUS", "EXIT_USAGE", "main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_LEFT_OFF = 3

#: the exit codes and what they mean, as ``--help`` prints them
EXIT_STATUS = (
    (EXIT_OK, "every host came through: no host or VM lost power while running or "
              "shutting down (a host still off at the end because its UPS's output is off, "
              "the mains not back within the scenario, is the normal outcome of a "
              "shutdown)"),
    (EXIT_FAILURE, "a policy failure: a host or VM lost power while running or before its "
                   "shutdown finished (crashed), or a plan has a check-config error"),
    (EXIT_USAGE, "a usage error or a scenario that cannot be read"),
    (EXIT_LEFT_OFF, "no policy failure, but a host stays off: it was shut down and its power "
                    "came back without its UPS cycling the output, so nothing switches it "
                    "on again"),
)


def _parser() -> argparse.ArgumentParser:
    epilog = "exit status:\n" + "\n".join(
        "\n".join(textwrap.wrap(f"{code}  {text}", 78, initial_indent="  ",
                                 subsequent_indent="     "))
        for code, text in EXIT_STATUS)
    parser = argparse.ArgumentParser(
        prog="upsagent simulate",
        description="Play a power-failure scenario through the real policy engine on a "
                    "simulated\nclock and print the timeline.",
        epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", nargs="?", metavar="NAME|FILE",
                        help="a built-in scenario (see --list) or a scenario TOML file")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per line: t, subject, event, detail")
    parser.add_argument("--list", action="store_true", help="list the built-in scenarios")
    return parser


def _find(name: str) -> Scenario:
    if name in builtin_names():
        return builtin(name)
    path = Path(name)
    if path.exists() or name.endswith(".toml") or "/" in name:
        return load(path)
    raise ScenarioError(f"no built-in scenario {name!r} and no such file "
                        f"(built-in: {', '.join(builtin_names())})")


def main(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.list:
        for name in builtin_names():
            print(f"{name:<28} {builtin(name).description}")
        return EXIT_OK
    if args.scenario is None:
        parser.print_usage(sys.stderr)
        sys.stderr.write("upsagent simulate: name a scenario, or --list\n")
        return EXIT_USAGE
    try:
        scenario = _find(args.scenario)
    except ScenarioError as exc:
        sys.stderr.write(f"upsagent simulate: {exc}\n")
        return EXIT_USAGE
    entries = simulate(scenario)
    lines = format_json(entries) if args.json else format_text(entries)
    if not args.json:
        print(f"# {scenario.name}: {scenario.description}" if scenario.description
              else f"# {scenario.name}")
    for line in lines:
        print(line)
    failed = [e for e in entries
              if e.event in FAILURES or e.event == "check-config error"]
    left = [e.subject for e in entries if e.event in LEFT_OFF]
    if not args.json:
        if failed:
            print(f"# FAILED: {len(failed)} problem(s): "
                  + "; ".join(f"{e.subject} {e.event}" for e in failed))
        elif left:
            print(f"# LEFT OFF: no host or VM lost power while running, but {len(left)} "
                  f"host{' stays' if len(left) == 1 else 's stay'} off: {', '.join(left)}")
        else:
            print("# OK: no host or VM lost power while running")
    return EXIT_FAILURE if failed else EXIT_LEFT_OFF if left else EXIT_OK
