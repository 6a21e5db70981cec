# -*- test-case-name: tests.test_status -*-
"""``upsagent status``: ask the running slave agent what it is doing, and print it.

It connects to the agent's status socket (``[slave] status_socket`` of ``--config``,
default :data:`~upsagent.config.slaveconf.DEFAULT_STATUS_SOCKET`; ``--socket`` names it
directly; ``--dry-run`` the dry-run agent's, the path with ``.dry-run`` appended), sends
``status`` and prints the report (:mod:`upsagent.agent.status`): a header (agent, pid,
uptime, version, dry run), the UPSes' last readings, then per host its phase, the timers
counting during an outage (``shut down in 4m02s``; the start delay's end while a host
waits in it), the operations in flight, the last
operation with its result and age, the inventory's line and the plan's steps.  ``--json``
prints the agent's JSON as it came.

Only the socket path is read from the configuration (the file is not validated, so the
status of an agent still answers while its file is being edited).  Exit status: 0 the
report was printed, 1 the agent cannot be reached or refused (the message names the socket
and the reason), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tomllib
from typing import Any

from upsagent.config import DEFAULT_CONFIG_PATH
from upsagent.config.slaveconf import DEFAULT_STATUS_SOCKET

__all__ = ["ask", "main", "render", "socket_path", "span"]

#: as check-config's
DEFAULT_CONFIG = DEFAULT_CONFIG_PATH
DRY_RUN_SUFFIX = ".dry-run"
#: seconds to connect and read the reply
TIMEOUT = 10.0
#: the longest reply read (a report is a few kB per host)
MAX_REPLY = 16 * 1024 * 1024


class StatusError(Exception):
    """The agent cannot be reached, or did not answer as expected."""


def span(seconds: float) -> str:
    """``45s``, ``4m02s``, ``2h03m``, ``3d04h``: a duration for people."""
    s = int(round(max(seconds, 0.0)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def socket_path(config: str | None, explicit: bool) -> str:
    """The status socket ``config`` names (relative to its directory), the default when it
    names none; a missing default configuration is the default socket.  StatusError when
    the file cannot be read or turns the socket off."""
    path = config or DEFAULT_CONFIG
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError:
        if explicit:
            raise StatusError(f"{path}: no such file") from None
        return DEFAULT_STATUS_SOCKET
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise StatusError(f"{path}: cannot read it: {exc}") from None
    slave = document.get("slave")
    value = slave.get("status_socket") if isinstance(slave, dict) else None
    if value is None:
        return DEFAULT_STATUS_SOCKET
    if value == "":
        raise StatusError(f"{path}: slave.status_socket is \"\": the agent has no status "
                          "socket")
    if not isinstance(value, str):
        raise StatusError(f"{path}: slave.status_socket: must be a string")
    return os.path.join(os.path.dirname(os.path.abspath(path)), value)


def ask(path: str, timeout: float = TIMEOUT) -> dict[str, Any]:
    """The agent's report from the socket at ``path`` (StatusError with the reason)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(path)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise StatusError(f"cannot reach the agent at {path}: {reason} (is the slave "
                              "running, and with this status_socket?)") from None
        chunks: list[bytes] = []
        size = 0
        try:
            sock.sendall(b"status\n")
            while data := sock.recv(65536):
                chunks.append(data)
                size += len(data)
                if size > MAX_REPLY:
                    raise StatusError(f"{path}: the reply is larger than {MAX_REPLY} bytes")
        except OSError as exc:
            raise StatusError(f"{path}: the agent did not answer: {exc.strerror or exc}") \
                from None
    finally:
        sock.close()
    try:
        reply = json.loads(b"".join(chunks))
    except ValueError:
        raise StatusError(f"{path}: the reply is not JSON: is this an upsagent status "
                          "socket?") from None
    if not isinstance(reply, dict):
        raise StatusError(f"{path}: the reply is not a report")
    if "error" in reply:
        raise StatusError(f"{path}: the agent answered: {reply['error']}")
    return reply


def _ago(now: float, then: float | None) -> str:
    return "never" if then is None else f"{span(now - then)} ago"


def _seconds(value: Any) -> str:
    return "off" if value is None else span(float(value))


def _ups_line(ups: dict[str, Any], now: float) -> str:
    words = [f"  {ups['name']} ({ups['role']}):"]
    if ups.get("read_at") is None:
        words.append("not read yet")
    else:
        words.append(ups["status"] or "(no status)")
        if ups.get("charge") is not None:
            words.append(f"charge {ups['charge']:g} %")
        if ups.get("runtime") is not None:
            words.append(f"runtime {span(ups['runtime'])}")
        words.append(f"read {_ago(now, ups['read_at'])}")
    if ups.get("lost"):
        words.append(f"- contact lost {_ago(now, ups.get('lost_at'))}: {ups['lost']}")
    return " ".join(words)


def _plan_line(plan: dict[str, Any]) -> str:
    parts = []
    if plan.get("left_alone"):
        return "left alone (a pool master in another agent's plan)"
    if plan.get("maintenance_after") is not None:
        parts.append(f"maintenance after {span(plan['maintenance_after'])} "
                     f"(VMs get {_seconds(plan.get('maintenance_timeout'))})")
    if plan.get("shutdown_after") is not None:
        parts.append(f"shutdown after {span(plan['shutdown_after'])}")
    elif plan.get("shuts_down"):
        parts.append("shutdown when critical")
    else:
        parts.append("never shut down")
    if plan.get("shuts_down"):
        parts.append(f"start delay {span(plan['shutdown_delay'])}")
        if plan.get("command"):
            parts.append(f"command {plan['command']} ({span(plan['command_budget'])})")
        if plan.get("vm_shutdown_timeout") is not None:
            parts.append(f"VMs stop within {span(plan['vm_shutdown_timeout'])}")
        parts.append(f"OS needs {span(plan['shutdown_duration'])}")
    for flag, what in (("runs_vcenter", "runs the vCenter's VM"),
                       ("runs_agent", "runs the agent's VM")):
        value = plan.get(flag) or {}
        if value.get("in_effect"):
            parts.append(f"{what} ({'marked' if value.get('marked') else 'detected'})")
    powered = ", ".join(plan.get("powered_by", []))
    return f"powered by {powered or 'nothing'}; " + ", ".join(parts)


def _inventory_line(state: dict[str, Any] | None, managers: dict[str, Any],
                    now: float) -> str:
    if state is None:
        return "not read (no backend)"
    manager = managers.get(state["manager"], {})
    if state.get("read_at") is None:
        if manager.get("reachable") is False:
            return f"{state['manager']} unreachable: {manager.get('error', '')}"
        return "not read yet"
    if not state["found"]:
        words = f"not found on {state['manager']}"
    else:
        words = {True: "connected", False: "disconnected"}.get(state["connected"],
                                                             "connection not watched")
        if state["in_maintenance"]:
            words += ", in maintenance"
        if state.get("detail"):
            words += f" ({state['detail']})"
    words += f", read {_ago(now, state['read_at'])}"
    if manager.get("reachable") is False:
        words += f"; {state['manager']} now unreachable: {manager.get('error', '')}"
    return words


def _last_line(last: dict[str, Any], now: float) -> str:
    if last.get("finished") is None:
        return (f"{last['action']}: running for {span(now - last['started'])} "
                f"({last['reason']})")
    result = last.get("outcome") or "?"
    if last.get("detail"):
        result += f" ({last['detail']})"
    took = span(last["finished"] - last["started"])
    return f"{last['action']}: {result}, {_ago(now, last['finished'])}, took {took}"


def render(report: dict[str, Any]) -> str:
    """The report as text for people."""
    now = float(report["now"])
    dry = ", DRY RUN: no action is taken" if report.get("dry_run") else ""
    lines = [f"upsagent slave {report['agent']} (pid {report['pid']}), up "
             f"{span(now - report['started'])}, version {report['version']}{dry}",
             f"configuration: {report.get('config') or '(built in)'}"]
    if report.get("released"):
        lines.append("this host is shutting down: the sessions are closed")
    lines.append("UPS:" if report["ups"] else "UPS: none monitored")
    lines += [_ups_line(ups, now) for ups in report["ups"]]
    managers = {m["name"]: m for m in report.get("managers", [])}
    lines.append("hosts:" if report["hosts"] else "hosts: none")
    for host in report["hosts"]:
        where = host["backend"] + (f", {host['manager']}" if host.get("manager") else "")
        lines.append(f"  {host['name']} ({where}): {host['phase'] or 'not running'}")
        for timer in host["timers"]:
            lines.append(f"    {timer['step']} in {span(timer['left'])} ({timer['reason']})")
        if host["in_flight"]:
            lines.append(f"    in progress: {', '.join(host['in_flight'])}")
        last = host.get("last_action")
        lines.append(f"    last action: {_last_line(last, now) if last else 'none'}")
        lines.append(f"    inventory: {_inventory_line(host.get('inventory'), managers, now)}")
        lines.append(f"    plan: {_plan_line(host['plan'])}")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="upsagent status",
        description="Ask the running slave agent, through its status socket, for its plans, "
                    "phases, timers, last actions, UPS readings and inventory. Read-only.",
        epilog="Exit status: 0 printed, 1 the agent cannot be reached, 2 usage. "
               "See upsagent(8).")
    parser.add_argument("-c", "--config", metavar="FILE",
                        help=f"upsagent.toml whose [slave] status_socket to ask (default "
                             f"{DEFAULT_CONFIG}; without it, {DEFAULT_STATUS_SOCKET})")
    parser.add_argument("-s", "--socket", metavar="PATH",
                        help="the status socket itself (overrides the configuration)")
    parser.add_argument("-n", "--dry-run", action="store_true",
                        help=f"ask the dry-run agent (the socket path with {DRY_RUN_SUFFIX} "
                             "appended, as 'upsagent slave --dry-run' uses)")
    parser.add_argument("--json", action="store_true",
                        help="print the agent's report as JSON, as it came")
    return parser


def main(argv: list[str]) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    try:
        if args.socket is not None:
            path = args.socket
        else:
            path = socket_path(args.config, args.config is not None)
            if args.dry_run:
                path += DRY_RUN_SUFFIX
        report = ask(path)
    except StatusError as exc:
        sys.stderr.write(f"upsagent status: {exc}\n")
        return 1
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write(render(report))
    return 0
