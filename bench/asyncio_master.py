"""Run ``upsagent`` on Twisted's asyncio reactor instead of the default (epoll) one.

``python bench/asyncio_master.py master --nut-config DIR`` is ``python -m upsagent master
--nut-config DIR`` with :func:`twisted.internet.asyncioreactor.install` called before
anything imports the reactor.  Only for measuring (``bench/reactors.py``); production
runs the default reactor (docs/design.md, "pysnmp and the reactor").
"""

from __future__ import annotations

import asyncio
import sys

from twisted.internet import asyncioreactor

asyncioreactor.install(asyncio.new_event_loop())

from twisted.internet import reactor  # noqa: E402

print(f"bench: reactor {type(reactor).__module__}.{type(reactor).__name__}", file=sys.stderr,
      flush=True)

from upsagent.cli.main import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
