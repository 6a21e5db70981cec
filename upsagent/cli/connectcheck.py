# -*- test-case-name: tests.test_vsphere_check -*-
"""``upsagent check-config --connect``: log in to every manager of the slave's hosts and look.

Each manager (a ``[[slave.vcenter]]``, a ``[[slave.xenpool]]``, an ``ssh`` host, this OS, a
``xenmaster`` host: the pool master the agent runs on) gets its backend built exactly as
the agent builds it
(:meth:`~upsagent.config.slaveconf.SlaveConfig.managers` and
:func:`~upsagent.hypervisors.base.build_backend`), and its
:meth:`~upsagent.hypervisors.base.Backend.check` is asked about the hosts it manages: log in,
look (the hosts exist, the privileges the plan needs are granted, the endpoint can be
driven), change nothing.  Every problem is one line naming the manager and the host.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, gatherResults, maybeDeferred
from twisted.python.failure import Failure

from upsagent.config.managers import ManagerConfig
from upsagent.config.slaveconf import SlaveConfig

__all__ = ["connect_problems", "manager_label", "run_connect_checks"]

#: how each kind's manager is named in a line (its configuration section)
_LABELS = {"vsphere": "vcenter", "xen": "xenpool", "ssh": "ssh", "local": "local",
           "xenmaster": "xenmaster"}


def manager_label(manager: ManagerConfig) -> str:
    """``vcenter "vc1"``, ``xenpool "pool1"``, ``ssh "nas"``, ``local "this-server"``,
    ``xenmaster "host1"`` (the pool master the agent runs on)."""
    return f'{_LABELS.get(manager.kind, manager.kind)} "{manager.name}"'


def connect_problems(slave: SlaveConfig, reactor: Any, runner: Any
                     ) -> Deferred[list[tuple[str, list[str]]]]:
    """Each manager's label with its problem lines (empty: all is well), in plan order.  A
    backend that cannot be built, or a ``check`` that fails, is a problem line too."""
    from upsagent.hypervisors.base import build_backend

    def one(manager: ManagerConfig, hosts: tuple[str, ...]) -> Deferred[tuple[str, list[str]]]:
        label = manager_label(manager)

        def check() -> Deferred[list[str]]:
            return build_backend(manager, reactor, runner).check(hosts)

        def failed(failure: Failure) -> list[str]:
            return [f"cannot check: {failure.getErrorMessage()}"]
        d: Deferred[list[str]] = maybeDeferred(check)
        return d.addErrback(failed).addCallback(lambda lines: (label, list(lines)))
    return gatherResults([one(m, hosts) for m, hosts in slave.managers()])


def run_connect_checks(slave: SlaveConfig) -> int:
    """Run :func:`connect_problems` on the global reactor (this process's last use of it),
    print ``upsagent: connect: <manager>: <problem>`` on stderr per problem and
    ``OK: connect: <manager>: <n> hosts`` per manager without one; 1 on any problem."""
    import sys

    from twisted.internet import reactor

    from upsagent.system.runprocess import ProcessRunner

    results: list[tuple[str, list[str]]] = []
    errors: list[Failure] = []

    def done(outcome: list[tuple[str, list[str]]] | Failure) -> None:
        if isinstance(outcome, Failure):
            errors.append(outcome)
        else:
            results.extend(outcome)
        reactor.stop()  # type: ignore[attr-defined]

    def start() -> None:
        connect_problems(slave, reactor, ProcessRunner(reactor)).addBoth(done)
    reactor.callWhenRunning(start)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]
    if errors:
        print(f"upsagent: connect: {errors[0].getErrorMessage()}", file=sys.stderr)
        return 1
    hosts = {manager_label(m): len(names) for m, names in slave.managers()}
    bad = 0
    for label, lines in results:
        for line in lines:
            print(f"upsagent: connect: {label}: {line}", file=sys.stderr)
        if lines:
            bad += 1
        else:
            count = hosts.get(label, 0)
            print(f"OK: connect: {label}: {count} host{'' if count == 1 else 's'} checked")
    return 1 if bad else 0
