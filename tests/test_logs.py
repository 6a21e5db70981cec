"""The log line format: journal priorities (with notifications at NOTICE) or timestamps."""

from __future__ import annotations

from twisted.logger import LogLevel

from upsagent.cli.logs import format_event


def event(level: LogLevel, text: str, **extra: object) -> dict[str, object]:
    return {"log_level": level, "log_format": text, **extra}


def test_journal_prefix_follows_the_level() -> None:
    assert format_event(event(LogLevel.warn, "a\nb"), journal=True) == ["<4>a\n", "<4>b\n"]
    assert format_event(event(LogLevel.info, "x"), journal=True) == ["<6>x\n"]


def test_an_events_syslog_priority_wins() -> None:
    """upsmon logs its notifications at NOTICE; ours carry syslog_priority=5."""
    assert format_event(event(LogLevel.info, "UPS u on battery", syslog_priority=5),
                        journal=True) == ["<5>UPS u on battery\n"]
    for bad in (9, -1, "5", None):
        assert format_event(event(LogLevel.info, "x", syslog_priority=bad),
                            journal=True) == ["<6>x\n"]


def test_terminal_lines_are_timestamped() -> None:
    [line] = format_event(event(LogLevel.error, "boom", syslog_priority=5), journal=False)
    assert line.endswith(" [error] boom\n") and line[4] == "-"
