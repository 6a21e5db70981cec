# -*- test-case-name: tests.test_cli -*-
"""Log to stderr, with systemd's ``<N>`` priority prefixes when stderr is the journal.

systemd reads a ``<N>`` prefix at the start of each line as the syslog priority.  We only add
it when ``$JOURNAL_STREAM`` names our stderr (compared by device and inode, as sd-daemon(3)
says), so a terminal or a pipe gets plain timestamped lines.  Passwords are never passed to
the logger in the first place (the protocol core never logs PASSWORD arguments).
"""

from __future__ import annotations

import os
import sys
import time
from typing import IO, cast

from twisted.logger import (FilteringLogObserver, ILogObserver, LogLevel,
                            LogLevelFilterPredicate, formatEvent, globalLogBeginner)

__all__ = ["start_logging"]

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


def start_logging(debug: bool = False, stream: IO[str] = sys.stderr) -> None:
    """Send Twisted's log events to ``stream`` in the right format."""
    journal = _journal_attached(stream)

    def observer(event: dict[str, object]) -> None:
        text = formatEvent(event)
        failure = event.get("log_failure")
        if failure is not None:
            text += "\n" + str(getattr(failure, "getTraceback")())
        level = event.get("log_level", LogLevel.info)
        if journal:
            prefix = f"<{_PRIORITY.get(level, 6)}>"  # type: ignore[call-overload]
        else:
            prefix = time.strftime("%Y-%m-%d %H:%M:%S ") + f"[{getattr(level, 'name', '')}] "
        for line in text.splitlines() or [""]:
            stream.write(prefix + line + "\n")
        stream.flush()

    predicate = LogLevelFilterPredicate(LogLevel.debug if debug else LogLevel.info)
    globalLogBeginner.beginLoggingTo([FilteringLogObserver(cast(ILogObserver, observer),
                                                          [predicate])],
                                     redirectStandardIO=False)
