# -*- test-case-name: tests.test_cli -*-
"""The foreground shell both daemons share (``upsagent master`` and ``upsagent slave``).

Start the service (a start-up error is printed and exits 1), log the configuration's
warnings, re-read the configuration on SIGHUP (a configuration that fails validation is
refused and the running one kept, with the reason in the log), stop cleanly before the
reactor shuts down (SIGTERM/SIGINT), and run the reactor until then.
"""

from __future__ import annotations

import signal
import sys
from typing import Any, Callable, Iterable

from twisted.logger import Logger

from upsagent.config.schema import ConfigError

__all__ = ["serve"]


def serve(prog: str, reactor: Any, *, start: Callable[[], object],
          reload: Callable[[], object], stop: Callable[[], object],
          warnings: Iterable[str] = ()) -> int:
    """Run a daemon in the foreground; returns the exit status."""
    log = Logger(namespace=f"upsagent.{prog}")
    for warning in warnings:
        log.warn("{w}", w=warning)
    try:
        start()
    except (RuntimeError, ConfigError) as exc:
        sys.stderr.write(f"upsagent {prog}: {exc}\n")
        return 1

    def on_hup() -> None:
        log.info("SIGHUP: reloading the configuration")
        try:
            result = reload()
        except ConfigError as exc:
            log.error("Reload refused, keeping the running configuration: {err}", err=exc)
            return
        add_errback = getattr(result, "addErrback", None)
        if add_errback is not None:
            add_errback(lambda f: log.failure("Reload failed", f))

    signal.signal(signal.SIGHUP, lambda *_: reactor.callFromThread(on_hup))
    reactor.addSystemEventTrigger("before", "shutdown", stop)
    reactor.run()
    return 0
