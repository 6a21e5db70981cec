"""Tests for upsagent.agent.notify: upsmon 2.8.0's notifications, planned and sent."""

from __future__ import annotations

import subprocess
from typing import Any, Iterator, Mapping, Sequence, cast

import pytest
from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import ILogObserver, LogEvent, globalLogPublisher

from upsagent.agent.notify import Notifier
from upsagent.config.notify import (
    NOTIFY_TYPES, WALL_SCRIPT, LogNotice, NotifySettings, RunCommand, format_message, plan)
from upsagent.config.shellline import ShellLine
from upsagent.config.upsmonconf import parse_upsmon_conf

def wall(text: str) -> tuple[str, ...]:
    """The argv that writes ``text`` to wall's standard input."""
    return ("/bin/sh", "-c", WALL_SCRIPT, "upsagent", text)


STOCK = {
    "ONLINE": "UPS ups@host on line power",
    "ONBATT": "UPS ups@host on battery",
    "LOWBATT": "UPS ups@host battery is low",
    "FSD": "UPS ups@host: forced shutdown in progress",
    "COMMOK": "Communications with UPS ups@host established",
    "COMMBAD": "Communications with UPS ups@host lost",
    "SHUTDOWN": "Auto logout and shutdown proceeding",
    "REPLBATT": "UPS ups@host battery needs to be replaced",
    "NOCOMM": "UPS ups@host is unavailable",
    "NOPARENT": "upsmon parent process died - shutdown impossible",
    "CAL": "UPS ups@host: calibration in progress",
}


def test_the_eleven_types_and_their_stock_texts() -> None:
    """The 2.8.0 types in upsmon.h's order; SYSLOG+WALL by default, CAL only SYSLOG."""
    assert list(NOTIFY_TYPES) == list(STOCK)
    for ntype, text in STOCK.items():
        actions = plan(NotifySettings(), ntype, "ups@host")
        assert actions[0] == LogNotice(ntype, text)
        if ntype == "CAL":
            assert len(actions) == 1
        else:
            assert actions[1:] == (RunCommand("WALL", wall(text)),)


def test_shutdown_and_noparent_name_no_ups() -> None:
    """%s is the empty string where no UPS is concerned (upsmon passes "")."""
    settings = NotifySettings(messages=(("SHUTDOWN", "[%s] down"),))
    assert plan(settings, "SHUTDOWN", None)[0] == LogNotice("SHUTDOWN", "[] down")


def test_flags_and_overrides_from_upsmon_conf() -> None:
    """NOTIFYMSG/NOTIFYFLAG/NOTIFYCMD from a real upsmon.conf drive the plan."""
    conf = parse_upsmon_conf(
        "MONITOR ups@host 1 u p secondary\n"
        'NOTIFYCMD "/usr/local/bin/notify --to ops"\n'
        'NOTIFYMSG ONBATT "Mains lost: %s (100%%)"\n'
        "NOTIFYFLAG ONBATT EXEC+SYSLOG\n"
        "NOTIFYFLAG ONLINE IGNORE+WALL\n"
        "NOTIFYFLAG LOWBATT WALL\n"
        "NOTIFYFLAG COMMBAD EXEC\n")
    text = "Mains lost: ups@host (100%)"
    assert plan(conf.notify, "ONBATT", "ups@host") == (
        LogNotice("ONBATT", text),
        RunCommand("EXEC", ShellLine("/usr/local/bin/notify --to ops").argv(text),
                   env=(("NOTIFYTYPE", "ONBATT"), ("UPSNAME", "ups@host"))))
    assert plan(conf.notify, "ONLINE", "ups@host") == ()
    assert plan(conf.notify, "LOWBATT", "ups@host") == (
        RunCommand("WALL", wall("UPS ups@host battery is low")),)
    # EXEC without NOTIFYCMD does nothing, as in upsmon
    assert plan(NotifySettings(flags=(("COMMBAD", frozenset({"EXEC"})),)),
                "COMMBAD", "u") == ()


def test_message_is_cut_like_upsmons_buffer() -> None:
    """upsmon formats into 512 bytes: 511 characters survive."""
    assert len(format_message("x" * 600 + "%s", "ups")) == 511


def test_wall_script_feeds_the_text_to_stdin() -> None:
    """The constant WALL script writes the text and a newline to wall's stdin, unparsed."""
    argv = wall('UPS $(x) "on" `battery`')
    script = argv[2].replace("| wall", "| cat")
    out = subprocess.run(argv[:2] + (script,) + argv[3:], capture_output=True, text=True,
                         check=True).stdout
    assert out == 'UPS $(x) "on" `battery`\n'


def test_notifycmd_gets_the_message_as_one_argument() -> None:
    """The real /bin/sh runs the operator's line with the message appended as one word."""
    argv = ShellLine("printf '<%s>' first").argv('UPS $(touch /nonexistent) "on" battery')
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    assert out == '<first><UPS $(touch /nonexistent) "on" battery>'


class FakeRunner:
    """Records what it is asked to run; answers with the scripted results in order."""

    def __init__(self, *results: Deferred[Any]) -> None:
        self.calls: list[tuple[tuple[str, ...], float | None, dict[str, str], str]] = []
        self.results = list(results)

    def run(self, argv: Sequence[str], budget: float | None, *,
            env: Mapping[str, str] | None = None, name: str = "") -> Deferred[Any]:
        self.calls.append((tuple(argv), budget, dict(env or {}), name))
        return self.results.pop(0) if self.results else succeed(0)


@pytest.fixture
def logged() -> Iterator[list[LogEvent]]:
    """The log events emitted during the test."""
    events: list[LogEvent] = []
    observer = cast(ILogObserver, events.append)
    globalLogPublisher.addObserver(observer)
    yield events
    globalLogPublisher.removeObserver(observer)


def test_notifier_runs_wall_and_notifycmd(logged: list[LogEvent]) -> None:
    """WALL gets the text on stdin; EXEC gets NOTIFYTYPE/UPSNAME added to the environment."""
    settings = NotifySettings(ShellLine("notify"), flags=(
        ("ONBATT", frozenset({"SYSLOG", "WALL", "EXEC"})),))
    runner = FakeRunner()
    done = Notifier(settings, runner, budget=7.0).notify("ONBATT", "ups@host")
    assert done.called
    assert runner.calls == [
        (wall("UPS ups@host on battery"), 7.0, {}, "wall ONBATT"),
        (ShellLine("notify").argv("UPS ups@host on battery"), 7.0,
         {"NOTIFYTYPE": "ONBATT", "UPSNAME": "ups@host"}, "exec ONBATT")]
    notices = [e for e in logged if e.get("notify_type") == "ONBATT"]
    assert [(e["message"], e["syslog_priority"]) for e in notices] == [
        ("UPS ups@host on battery", 5)]


def test_a_failing_notifier_is_logged_not_raised(logged: list[LogEvent]) -> None:
    """A command that fails (or cannot start) never fails the notification."""
    runner = FakeRunner(fail(OSError("no wall here")))
    done = Notifier(NotifySettings(), runner).notify("COMMBAD", "u@h")
    result: list[object] = []
    done.addBoth(result.append)
    assert result == [None]
    assert any(e.get("log_format") == "{what} for {notify_type} failed" for e in logged)

    class Broken:
        def run(self, argv: Sequence[str], budget: float | None, *,
                env: Mapping[str, str] | None = None, name: str = "") -> Deferred[Any]:
            raise RuntimeError("runner is gone")

    done = Notifier(NotifySettings(), Broken()).notify("COMMBAD", "u@h")
    assert done.called
    assert any(e.get("log_format") == "{what} for {notify_type} could not start"
               for e in logged)
