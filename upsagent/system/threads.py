# -*- test-case-name: tests.test_threads -*-
"""The one seam for blocking I/O: ``Blocking = (func) -> Deferred``.

Drivers (USB HID, Q1 over serial or USB) and backends (vSphere, XenServer) call libraries
that block (hidapi, pyusb, pyserial, pyvmomi, XenAPI).  None of them calls those libraries
on the reactor: each is built with a :data:`Blocking` function and hands it every blocking
call.  The daemons pass :func:`in_thread` (the reactor's thread pool) or
:func:`own_pool` (a pool of its own, for a backend whose calls may hang for minutes and
must not starve the others); tests with a ``Clock`` and the offline decoders pass
:func:`inline`, which calls at once in this thread, so they stay deterministic.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.defer import Deferred, maybeDeferred

__all__ = ["Blocking", "in_thread", "inline", "own_pool"]

#: run a blocking callable off the reactor; the Deferred fires with its result (or failure)
Blocking = Callable[[Callable[[], Any]], "Deferred[Any]"]


def inline(func: Callable[[], Any]) -> Deferred[Any]:
    """Call ``func`` now, in this thread (tests on a ``Clock``, offline decoders)."""
    return maybeDeferred(func)


def in_thread(reactor: Any) -> Blocking:
    """The reactor's thread pool; a reactor without one (a test's) calls inline."""
    from twisted.internet.threads import deferToThreadPool

    get_pool = getattr(reactor, "getThreadPool", None)
    if get_pool is None:
        return inline

    def run(func: Callable[[], Any]) -> Deferred[Any]:
        return deferToThreadPool(reactor, get_pool(), func)
    return run


def own_pool(reactor: Any, name: str, threads: int = 4) -> Blocking:
    """A pool of ``threads`` workers of its own, started now and stopped with the reactor."""
    from twisted.internet.threads import deferToThreadPool
    from twisted.python.threadpool import ThreadPool

    pool = ThreadPool(minthreads=0, maxthreads=threads, name=name)
    pool.start()
    reactor.addSystemEventTrigger("during", "shutdown", pool.stop)

    def run(func: Callable[[], Any]) -> Deferred[Any]:
        return deferToThreadPool(reactor, pool, func)
    return run
