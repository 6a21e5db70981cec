# -*- test-case-name: tests.test_scenarios -*-
"""``upsagent simulate NAME|FILE [--json]``, ``upsagent simulate --list``.

Plays a scenario (a built-in one by name, or a TOML file, see upsagent-simulate(8)) through
the real policy engine and executor on a simulated clock, with simulated UPSes and
hypervisors, and prints the timeline: seconds since the first power failure, the subject,
what happened and why.  ``--json`` prints one JSON object per line instead (keys ``t``,
``subject``, ``event``, ``detail``).

Exit status: 0 when every host came through; 1 when the timeline shows a failure (a host
or VM lost power while running, a host left off) or a plan has a configuration error;
2 for a usage error or a scenario that cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from upsagent.simulator.scenario import Scenario, ScenarioError, builtin, builtin_names, load
from upsagent.simulator.simulation import FAILURES, simulate
from upsagent.policy.timeline import format_json, format_text

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="upsagent simulate",
        description="Play a power-failure scenario through the real policy engine on a "
                    "simulated clock and print the timeline.")
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
        return 0
    if args.scenario is None:
        parser.print_usage(sys.stderr)
        sys.stderr.write("upsagent simulate: name a scenario, or --list\n")
        return 2
    try:
        scenario = _find(args.scenario)
    except ScenarioError as exc:
        sys.stderr.write(f"upsagent simulate: {exc}\n")
        return 2
    entries = simulate(scenario)
    lines = format_json(entries) if args.json else format_text(entries)
    if not args.json:
        print(f"# {scenario.name}: {scenario.description}" if scenario.description
              else f"# {scenario.name}")
    for line in lines:
        print(line)
    failed = [e for e in entries
              if e.event in FAILURES or e.event == "check-config error"]
    if not args.json:
        if failed:
            print(f"# FAILED: {len(failed)} problem(s): "
                  + "; ".join(f"{e.subject} {e.event}" for e in failed))
        else:
            print("# OK: no host or VM lost power while running")
    return 1 if failed else 0
