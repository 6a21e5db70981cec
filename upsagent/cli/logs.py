# -*- test-case-name: tests.test_cli -*-
"""Log to stderr, with systemd's ``<N>`` priority prefixes when stderr is the journal.

systemd reads a ``<N>`` prefix at the start of each line as the syslog priority.  We only add
it when ``$JOURNAL_STREAM`` names our stderr (compared by device and inode, as sd-daemon(3)
says), so a terminal or a pipe gets plain timestamped lines.  An event with a
``syslog_priority`` (0-7) gets that one instead of its level's (notifications:
NOTICE).  Passwords are never passed to the logger in the first place (the protocol core
never logs PASSWORD arguments).
"""

from __future__ import annotations

import os
import sys
import time
from typing import IO, cast

from twisted.logger import (FilteringLogObserver, ILogObserver, LogLevel,
                            LogLevelFilterPredicate, formatEvent, globalLogBeginner)

__all__ = ["format_event", "start_logging"]

_PRIORITY = {
    LogLevel.critical: 2,
    LogLevel.error: 3,
    LogLevel.warn: 4,
    LogLevel.info: 6,
    LogLevel.debug: 7,
}


def _journal_attached(stream: IO[str]) -> bool:
    value = os.environ.get("JOURNAL_STREAM", "")
    if ":" not in value:
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return False
    dev, _, ino = value.partition(":")
    return f"{st.st_dev}:{st.st_ino}" == f"{dev}:{ino}"


def format_event(event: dict[str, object], journal: bool) -> list[str]:
    """The lines one log event becomes: ``<N>``-prefixed for the journal, else timestamped."""
    text = formatEvent(event)
    failure = event.get("log_failure")
    if failure is not None:
        text += "\n" + str(getattr(failure, "getTraceback")())
    level = event.get("log_level", LogLevel.info)
    if journal:
        # an event may name its syslog priority (upsmon's notices are NOTICE, 5)
        priority = event.get("syslog_priority")
        if not isinstance(priority, int) or not 0 <= priority <= 7:
            priority = _PRIORITY.get(level, 6)  # type: ignore[call-overload]
        prefix = f"<{priority}>"
    else:
        prefix = time.strftime("%Y-%m-%d %H:%M:%S ") + f"[{getattr(level, 'name', '')}] "
    return [prefix + line + "\n" for line in text.splitlines() or [""]]


def start_logging(debug: bool = False, stream: IO[str] = sys.stderr) -> None:
    """Send Twisted's log events to ``stream`` in the right format."""
    journal = _journal_attached(stream)

    def observer(event: dict[str, object]) -> None:
        stream.writelines(format_event(event, journal))
        stream.flush()

    predicate = LogLevelFilterPredicate(LogLevel.debug if debug else LogLevel.info)
    globalLogBeginner.beginLoggingTo([FilteringLogObserver(cast(ILogObserver, observer),
                                                          [predicate])],
                                     redirectStandardIO=False)
