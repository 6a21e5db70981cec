"""The one seam for blocking I/O (upsagent.system.threads): inline for tests, the reactor's
pool or a pool of its own for the daemons."""

from __future__ import annotations

import threading

from twisted.internet.task import Clock

from upsagent.system.threads import in_thread, inline


def test_inline_calls_now_and_carries_failures() -> None:
    """``inline`` runs in this thread at once; an exception becomes a failed Deferred."""
    results: list[object] = []
    inline(lambda: threading.current_thread()).addCallback(results.append)
    assert results == [threading.current_thread()]

    def boom() -> None:
        raise OSError("device gone")
    failures: list[object] = []
    inline(boom).addErrback(lambda f: failures.append(f.value))
    assert isinstance(failures[0], OSError)


def test_a_reactor_without_threads_runs_inline() -> None:
    """A test reactor (a Clock has no thread pool) gets the inline seam."""
    assert in_thread(Clock()) is inline


def test_the_reactor_pool_runs_off_the_reactor_thread() -> None:
    """With a reactor that has a thread pool the call runs in a pool thread, and its result
    comes back through the reactor (callFromThread)."""
    import queue

    from twisted.python.threadpool import ThreadPool

    class Reactor:
        """The two reactor calls the seam uses; callFromThread queues for this thread."""

        def __init__(self) -> None:
            self.pool = ThreadPool(minthreads=1, maxthreads=1)
            self.calls: queue.Queue[tuple[object, tuple[object, ...]]] = queue.Queue()

        def getThreadPool(self) -> ThreadPool:
            return self.pool

        def callFromThread(self, func: object, *args: object) -> None:
            self.calls.put((func, args))

    fake = Reactor()
    fake.pool.start()
    try:
        seen: list[object] = []
        in_thread(fake)(threading.current_thread).addCallback(seen.append)
        func, args = fake.calls.get(timeout=10)
        func(*args)  # type: ignore[operator]
        assert seen and seen[0] is not threading.current_thread()
    finally:
        fake.pool.stop()
