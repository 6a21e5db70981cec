# -*- test-case-name: tests.test_xen -*-
"""XenServer / XCP-ng pools through the XenAPI SDK (``backend = "xen"``, ``[[slave.xenpool]]``).

One :class:`XenBackend` per pool.  The SDK is blocking: every call sequence runs in a
thread through an injected seam (``in_thread``, by default Twisted's thread pool), and the
Deferred it returns can be cancelled: the sequence stops at its next step and the xapi
task in flight is cancelled (``task.cancel``).

* **Session** with the pool master: ``session.login_with_password``; a member answers
  ``HOST_IS_SLAVE [address]`` and the login is repeated there, keeping the configured
  ``url``'s scheme and port (xapi names only the address).  A lost session is opened
  again at the next operation.
* **Certificate**: checked against ``ca_file``, or pinned by ``thumbprint`` (SHA-256 of
  the certificate), or the system's CAs; ``insecure`` turns the check off.
* **Maintenance** (and the engine's evacuation step): ``host.disable``, then
  ``Async.host.evacuate``; when evacuate cannot place every VM (``HOST_NOT_ENOUGH_FREE_
  MEMORY``, ``NO_HOSTS_AVAILABLE``, ...) each VM is moved on its own with
  ``Async.VM.pool_migrate`` to the enabled host with the most free memory, progress
  logged.  Result: ``ok`` (all moved), ``no-target`` (some VMs left, named), ``timed-out``.
* **VMs' shutdown**: group by group (``vm_groups``), ``Async.VM.clean_shutdown`` where
  allowed, ``Async.VM.hard_shutdown`` else or past the group's timeout
  (:mod:`upsagent.hypervisors.xenvms`, shared with the ``xenmaster`` backend).
* **Host shutdown**: ``host.disable`` (xapi requires it) and ``host.shutdown``; no second
  evacuation (the engine evacuates first when maintenance did not).
* **Exit maintenance**: ``host.enable``, retried while the host is still booting.
* Every task is watched through ``event.from`` with a deadline, then destroyed.
* The **pool master** is never put into maintenance or shut down by this backend: its own
  agent protects it (``backend = "xenmaster"``, :mod:`upsagent.hypervisors.xenmaster`).
"""

from __future__ import annotations

import hashlib
import http.client
import ssl
import threading
import time
import xmlrpc.client
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit, urlunsplit

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from upsagent.hypervisors.base import Backend, HostInfo
from upsagent.hypervisors.xenvms import stop_vms, time_limit
from upsagent.system.runner import Outcome, Result, Runner
from upsagent.system.threads import Blocking

if TYPE_CHECKING:
    from upsagent.policy.plan import VmGroup
    from upsagent.config.managers import ManagerConfig, XenPoolConfig

__all__ = ["XenBackend", "XenPool", "master_url"]

_log = Logger()

#: how long past an operation's own limit :meth:`XenBackend.run` still waits for its thread
GRACE = 60.0

#: evacuate's refusals after which VMs are moved one by one
_PLACEMENT = {"HOST_NOT_ENOUGH_FREE_MEMORY", "NO_HOSTS_AVAILABLE", "VM_REQUIRES_SR",
              "VM_REQUIRES_NETWORK", "CANNOT_EVACUATE_HOST", "VM_MIGRATE_FAILED",
              "HOST_EVACUATE_VM_NOT_HA_PROTECTED"}


class Stopped(Exception):
    """The operation was cancelled (the Deferred's canceller)."""


def master_url(url: str, address: str) -> str:
    """``url`` with its host replaced by the master's ``address`` (scheme, port and path
    kept: ``HOST_IS_SLAVE`` names only the address)."""
    parts = urlsplit(url)
    host = f"[{address}]" if ":" in address else address
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class _Transport(xmlrpc.client.SafeTransport):
    """HTTPS with the configured certificate check and a socket timeout.

    One session serves every thread of the pool (two hosts of a pool may be acted on at
    once, a task watched while another host is enabled): ``xmlrpc.client`` keeps one
    HTTP connection per transport, which two threads cannot share (``CannotSendRequest``,
    ``ResponseNotReady``), so each thread has a connection of its own."""

    def __init__(self, context: ssl.SSLContext, timeout: float,
                 thumbprint: str | None) -> None:
        self._local = threading.local()
        super().__init__(context=context)
        self.timeout = timeout
        self.thumbprint = thumbprint

    @property  # type: ignore[override]
    def _connection(self) -> tuple[Any, Any]:
        """xmlrpc.client's cached (host, connection), kept per thread."""
        value: tuple[Any, Any] = getattr(self._local, "connection", (None, None))
        return value

    @_connection.setter
    def _connection(self, value: tuple[Any, Any]) -> None:
        self._local.connection = value

    def make_connection(self, host: Any) -> http.client.HTTPSConnection:
        conn = super().make_connection(host)
        conn.timeout = self.timeout
        if self.thumbprint is not None:
            pin, original = self.thumbprint, conn.connect

            def connect() -> None:
                original()
                sock = cast(ssl.SSLSocket, conn.sock)
                der = sock.getpeercert(binary_form=True) or b""
                if hashlib.sha256(der).hexdigest() != pin:
                    conn.close()
                    raise ssl.SSLError("the certificate does not match the thumbprint")
            conn.connect = connect  # type: ignore[method-assign]
        return conn


def _context(config: XenPoolConfig) -> tuple[ssl.SSLContext, str | None]:
    if config.insecure or config.thumbprint is not None:
        ctx = ssl._create_unverified_context()  # the thumbprint is checked instead
        pin = None if config.thumbprint is None else \
            config.thumbprint.removeprefix("SHA256:").replace(":", "").lower()
        return ctx, pin
    return ssl.create_default_context(cafile=config.ca_file), None


class XenPool:
    """The blocking side: one XenAPI session with the master and the call sequences.

    Every method runs in a thread; ``stop`` (a :class:`threading.Event`) is checked
    between steps and while a task is watched."""

    def __init__(self, config: XenPoolConfig, *, timeout: float = 60.0,
                 session_factory: Callable[..., Any] | None = None) -> None:
        self.config = config
        self.timeout = timeout
        self._factory = session_factory
        self._session: Any = None
        self._lock = threading.Lock()

    # -- session -------------------------------------------------------------------------

    def _new_session(self, url: str) -> Any:
        if self._factory is not None:
            return self._factory(url)
        import XenAPI  # the xen extra
        ctx, pin = _context(self.config)
        return XenAPI.Session(url, transport=_Transport(ctx, self.timeout + 5.0, pin))

    def api(self) -> Any:
        """``session.xenapi`` of a session with the master, opened if needed."""
        with self._lock:
            if self._session is None:
                self._session = self._login()
            return self._session.xenapi

    def _login(self) -> Any:
        import XenAPI
        url = self.config.url
        for _ in range(4):
            session = self._new_session(url)
            try:
                session.xenapi.login_with_password(self.config.user, self.config.password,
                                                   "2.0", "upsagent")
                return session
            except XenAPI.Failure as exc:
                if exc.details and exc.details[0] == "HOST_IS_SLAVE":
                    url = master_url(self.config.url, exc.details[1])
                    _log.info("xen pool {pool}: the master is {url}", pool=self.config.name,
                              url=url)
                    continue
                raise
        raise RuntimeError(f"pool {self.config.name}: HOST_IS_SLAVE loops")

    def forget(self) -> None:
        """Drop the session (after a transport error: opened again at the next call)."""
        with self._lock:
            self._session = None

    def logout(self) -> None:
        """``session.logout`` of the open session, if any; errors are ignored."""
        with self._lock:
            if self._session is not None:
                try:
                    self._session.xenapi.session.logout()
                except Exception:
                    pass
                self._session = None

    # -- lookups -------------------------------------------------------------------------

    def host(self, name: str) -> tuple[str, dict[str, Any]]:
        for ref, rec in self.api().host.get_all_records().items():
            if rec["name_label"] == name:
                return ref, rec
        raise LookupError(f"no host named {name!r} in pool {self.config.name}")

    def liveness(self, records: dict[str, dict[str, Any]]) -> dict[str, bool | None]:
        """host ref -> whether xapi counts the host live, as xapi keeps it: in the host's
        metrics object (``host_metrics.live``; a ``live`` in the host record itself, as
        some simulators give, is taken too); None when xapi does not say."""
        metrics: dict[str, Any] = {}
        if any("live" not in rec for rec in records.values()):
            try:
                metrics = self.api().host_metrics.get_all_records()
            except Exception as exc:  # noqa: BLE001 - then liveness is unknown, not made up
                _log.warn("xen pool {pool}: host_metrics: {exc}", pool=self.config.name,
                          exc=exc)
        out: dict[str, bool | None] = {}
        for ref, rec in records.items():
            if "live" in rec:
                out[ref] = bool(rec["live"])
                continue
            found = metrics.get(rec.get("metrics", ""))
            out[ref] = bool(found["live"]) if isinstance(found, dict) and "live" in found \
                else None
        return out

    def is_master(self, ref: str) -> bool:
        api = self.api()
        return bool(api.pool.get_master(api.pool.get_all()[0]) == ref)

    def guests(self, host_ref: str) -> dict[str, dict[str, Any]]:
        """The running VMs of ``host_ref`` (no control domain, template or snapshot)."""
        return {ref: rec for ref, rec in self.api().VM.get_all_records().items()
                if rec["resident_on"] == host_ref and rec["power_state"] == "Running"
                and not rec.get("is_control_domain", False)
                and not rec.get("is_a_template", False)
                and not rec.get("is_a_snapshot", False)}

    # -- tasks ---------------------------------------------------------------------------

    def wait_tasks(self, tasks: Collection[str], deadline: float,
                   stop: threading.Event) -> dict[str, dict[str, Any]]:
        """Wait through ``event.from`` until every one of ``tasks`` has ended or
        ``deadline`` (monotonic) passes: the records of those that ended (a task that
        vanished counts as ended, ``HANDLE_INVALID``).  ``stop`` set: the tasks still
        running are cancelled (``task.cancel``) and :class:`Stopped` is raised.  Nothing
        is destroyed here."""
        import XenAPI
        api = self.api()
        event_from = getattr(api.event, "from")
        token, ended = "", {}
        while True:
            for task in tasks:
                if task in ended:
                    continue
                try:
                    record: dict[str, Any] = api.task.get_record(task)
                except XenAPI.Failure as exc:
                    if not exc.details or exc.details[0] != "HANDLE_INVALID":
                        raise
                    record = {"status": "failure", "error_info": list(exc.details)}
                if record["status"] not in ("pending", "cancelling"):
                    ended[task] = record
            running = [task for task in tasks if task not in ended]
            left = deadline - time.monotonic()
            if not running or left <= 0:
                return ended
            if stop.is_set():
                for task in running:
                    try:
                        api.task.cancel(task)
                    except XenAPI.Failure:
                        pass  # ended meanwhile, or not cancellable
                raise Stopped(", ".join(running))
            asked = time.monotonic()
            try:
                reply = event_from(["task"], token, min(left, 2.0))
            except XenAPI.Failure as exc:
                code = exc.details[0] if exc.details else ""
                if code == "EVENT_FROM_TOKEN_PARSE_FAILURE":
                    token = ""       # start over from the current state
                    continue
                if code != "MESSAGE_METHOD_UNKNOWN":
                    raise
                stop.wait(min(left, 0.5))   # no event.from here: look again shortly
                continue
            token = reply["token"]
            if not reply["events"] and time.monotonic() - asked < 0.05:
                stop.wait(0.1)   # an answer without events at once: no busy loop
            for event in reply["events"]:
                if event["ref"] in running and "progress" in event.get("snapshot", {}):
                    _log.debug("task {task}: {p:.0%}", task=event["ref"],
                               p=float(event["snapshot"]["progress"]))

    def destroy(self, tasks: Collection[str]) -> None:
        """``task.destroy`` of each of ``tasks``; failures are ignored."""
        for task in tasks:
            try:
                self.api().task.destroy(task)
            except Exception:
                pass

    def watch(self, task: str, deadline: float, stop: threading.Event,
              what: str) -> dict[str, Any]:
        """Wait for ``task`` (:meth:`wait_tasks`) until it ends, ``deadline`` (monotonic)
        passes (then it is cancelled: ``TimeoutError``) or ``stop`` is set (cancelled:
        :class:`Stopped`); its record.  The task is destroyed at the end."""
        try:
            ended = self.wait_tasks([task], deadline, stop)
            if task in ended:
                return ended[task]
            self.api().task.cancel(task)
            raise TimeoutError(what)
        finally:
            self.destroy([task])

    # -- sequences -----------------------------------------------------------------------

    def evacuate(self, name: str, timeout: float, stop: threading.Event) -> Result:
        """``host.disable`` then evacuate (one by one when evacuate cannot place all)."""
        import XenAPI
        deadline = time.monotonic() + timeout
        ref, rec = self.host(name)
        if self.is_master(ref):
            return Result(Outcome.FAILED, f"{name} is the pool master: never evacuated "
                                          "with the others")
        api = self.api()
        before = self.guests(ref)
        labels = {r: v["name_label"] for r, v in before.items()}
        if rec["enabled"]:
            api.host.disable(ref)
        if not before:
            return Result(Outcome.OK, f"{name} disabled; no VMs to move")
        try:
            task = api.Async.host.evacuate(ref)
            record = self.watch(task, deadline, stop, f"evacuate {name}")
        except TimeoutError:
            return self._moved(name, ref, labels, Outcome.TIMED_OUT,
                               f"evacuation of {name} timed out after {timeout:g} s")
        if record["status"] == "success":
            return self._moved(name, ref, labels, Outcome.OK, f"{name} evacuated")
        error = list(record["error_info"])
        _log.info("xen: evacuate {host} refused ({error}): moving its VMs one by one",
                  host=name, error=" ".join(error))
        if error and error[0] not in _PLACEMENT:
            return self._moved(name, ref, labels, Outcome.FAILED,
                               f"evacuation of {name} failed: {' '.join(error)}")
        for i, vm in enumerate(sorted(self.guests(ref), key=lambda r: labels.get(r, r))):
            target = self._target(ref, before.get(vm, {}))
            if target is None:
                continue
            try:
                task = api.Async.VM.pool_migrate(vm, target, {"live": "true"})
                record = self.watch(task, deadline, stop, f"migrate {labels.get(vm)}")
            except TimeoutError:
                return self._moved(name, ref, labels, Outcome.TIMED_OUT,
                                   f"evacuation of {name} timed out after {timeout:g} s")
            except XenAPI.Failure as exc:
                record = {"status": "failure", "error_info": exc.details}
            _log.info("xen: {vm} ({i}/{n}): {status}", vm=labels.get(vm), i=i + 1,
                      n=len(before), status=record["status"])
        return self._moved(name, ref, labels, Outcome.NO_TARGET,
                           f"evacuate could not place every VM of {name} "
                           f"({' '.join(error)})")

    def _target(self, host_ref: str, vm: dict[str, Any]) -> str | None:
        """The enabled live host other than ``host_ref`` with the most free memory that
        can take ``vm``."""
        hosts = self.api().host.get_all_records()
        live = self.liveness(hosts)
        vms = self.api().VM.get_all_records().values()
        need = int(vm.get("memory_static_max", "0"))
        best: tuple[int, str] | None = None
        for ref, rec in hosts.items():
            if ref == host_ref or not rec["enabled"] or live[ref] is False:
                continue
            used = sum(int(v.get("memory_static_max", "0")) for v in vms
                       if v["resident_on"] == ref and v["power_state"] == "Running")
            free = int(rec.get("memory_total", "0")) - used
            if free >= need and (best is None or free > best[0]):
                best = (free, ref)
        return None if best is None else best[1]

    def _moved(self, name: str, ref: str, labels: dict[str, str], outcome: Outcome,
               detail: str) -> Result:
        hosts = {r: h["name_label"] for r, h in self.api().host.get_all_records().items()}
        now = self.api().VM.get_all_records()
        moved = tuple((labels[vm], hosts.get(now[vm]["resident_on"], "?")) for vm in labels
                      if vm in now and now[vm]["resident_on"] not in (ref, "OpaqueRef:NULL"))
        left = tuple(labels[vm] for vm in self.guests(ref) if vm in labels)
        if outcome is Outcome.NO_TARGET and not left:
            outcome, detail = Outcome.OK, f"{name} evacuated VM by VM"
        text = f"{detail}: moved {len(moved)}" + (f", left {', '.join(left)}" if left else "")
        return Result(outcome, text, moved=moved, left=left)

    def shutdown_vms(self, name: str, timeout: float, stop: threading.Event,
                     groups: Sequence[VmGroup] = ()) -> Result:
        """The VMs of host ``name``, group by group (:func:`~upsagent.hypervisors.xenvms.
        stop_vms`: clean shutdown where allowed, hard shutdown else or past the group's
        timeout)."""
        return stop_vms(self, name, timeout, stop, groups)

    def shutdown_host(self, name: str) -> Result:
        """``host.disable`` if needed, then ``host.shutdown`` (no evacuation here)."""
        ref, rec = self.host(name)
        if self.is_master(ref):
            return Result(Outcome.FAILED, f"{name} is the pool master: its own agent shuts "
                                          "it down")
        if self.liveness({ref: rec})[ref] is False:
            return Result(Outcome.OK, f"{name} is already down")
        api = self.api()
        if rec["enabled"]:
            api.host.disable(ref)
        api.host.shutdown(ref)
        return Result(Outcome.OK, f"{name} shutting down")

    def enable(self, name: str, timeout: float, stop: threading.Event) -> Result:
        """``host.enable``, retried while the host is off or still booting."""
        import XenAPI
        deadline = time.monotonic() + timeout
        while True:
            try:
                ref, rec = self.host(name)
                if not rec["enabled"]:
                    self.api().host.enable(ref)
                return Result(Outcome.OK, f"{name} enabled")
            except XenAPI.Failure as exc:
                if not exc.details or exc.details[0] not in (
                        "HOST_OFFLINE", "HOST_STILL_BOOTING", "HOST_IN_EMERGENCY_MODE"):
                    raise
                if time.monotonic() > deadline or stop.wait(min(5.0, timeout / 10 + 0.1)):
                    return Result(Outcome.TIMED_OUT, f"{name} did not come back within "
                                                     f"{timeout:g} s ({exc.details[0]})")


class XenBackend(Backend):
    """A pool: the hosts named by their name-label; blocking calls in threads."""

    kind = "xen"

    def __init__(self, pool: XenPool, in_thread: Blocking, reactor: Any = None) -> None:
        self.pool = pool
        self.in_thread = in_thread
        #: with a reactor, an operation given a ``limit`` is watched (:meth:`run`)
        self.reactor = reactor

    @classmethod
    def build(cls, config: ManagerConfig, reactor: Any, runner: Runner) -> XenBackend:
        """The backend of one ``[[slave.xenpool]]``."""
        if config.kind != cls.kind:
            raise TypeError(f"{cls.__name__} is built from a xenpool configuration, not "
                            f"{type(config).__name__}")
        from upsagent.system.threads import in_thread
        pool = XenPool(cast("XenPoolConfig", config))
        return cls(pool, in_thread(reactor), reactor)

    def run(self, what: str, work: Callable[[threading.Event], Result],
            limit: float | None = None) -> Deferred[Result]:
        """``work(stop)`` in a thread: its Result; an exception becomes ``unreachable``
        (no answer) or ``failed``; cancelling sets ``stop`` and fires ``cancelled``.
        ``limit`` (with a :attr:`reactor`): no answer :data:`GRACE` seconds past it fires
        ``timed-out`` and sets ``stop`` (the worker cancels its xapi task)."""
        import XenAPI
        stop = threading.Event()

        def guarded() -> Result:
            try:
                return work(stop)
            except Stopped:
                return Result(Outcome.CANCELLED, f"{what}: cancelled")
            except XenAPI.Failure as exc:
                return Result(Outcome.FAILED, f"{what}: {' '.join(map(str, exc.details))}")
            except (OSError, ssl.SSLError, xmlrpc.client.ProtocolError) as exc:
                self.pool.forget()
                return Result(Outcome.UNREACHABLE, f"{what}: pool {self.pool.config.name}: "
                                                   f"{exc}")
            except (LookupError, xmlrpc.client.Fault, RuntimeError) as exc:
                return Result(Outcome.FAILED, f"{what}: {exc}")

        def cancel(d: Deferred[Result]) -> None:
            stop.set()
            d.callback(Result(Outcome.CANCELLED, f"{what}: cancelled"))

        outer: Deferred[Result] = Deferred(cancel)
        if limit is not None and self.reactor is not None:
            def late() -> None:
                stop.set()
                if not outer.called:
                    outer.callback(Result(Outcome.TIMED_OUT, f"{what}: no answer {GRACE:g} s "
                                                             f"after its {limit:g} s limit"))
            timer = self.reactor.callLater(limit + GRACE, late)

            def disarm(value: Any) -> Any:
                if timer.active():
                    timer.cancel()
                return value
            outer.addBoth(disarm)

        def done(value: Any) -> None:
            if not outer.called:
                if isinstance(value, Result):
                    outer.callback(value)
                else:
                    outer.callback(Result(Outcome.FAILED, f"{what}: {value}"))
        self.in_thread(guarded).addBoth(done)
        outer.addCallback(self._logged)
        return outer

    def _logged(self, result: Result) -> Result:
        _log.info("{kind}: {outcome}: {detail}", kind=self.kind,
                  outcome=result.outcome.value, detail=result.detail)
        return result

    def connect(self) -> Deferred[Result]:
        """Log in to the pool master (following ``HOST_IS_SLAVE``)."""
        def work(stop: threading.Event) -> Result:
            self.pool.api()
            return Result(Outcome.OK, f"logged in to pool {self.pool.config.name}")
        return self.run(f"pool {self.pool.config.name}", work)

    def check(self, hosts: Sequence[str]) -> Deferred[list[str]]:
        """Log in to the pool master (following ``HOST_IS_SLAVE``), read the pool's hosts
        and its master; one line per problem: no login, a configured host that is not in
        the pool (by name-label) or not live, no master found.  Only reads."""
        name = self.pool.config.name

        def work() -> list[str]:
            api = self.pool.api()
            records = api.host.get_all_records()
            labels = {ref: rec["name_label"] for ref, rec in records.items()}
            live = self.pool.liveness(records)       # one read of host_metrics for all
            problems = []
            pools = api.pool.get_all()
            master = api.pool.get_master(pools[0]) if pools else None
            if master not in labels:
                problems.append(f"pool {name}: no pool master found")
            else:
                _log.info("xen pool {pool}: the pool master is {host}", pool=name,
                          host=labels[master])
            for host in hosts:
                ref = next((r for r, label in labels.items() if label == host), None)
                if ref is None:
                    problems.append(f"host {host}: no host with that name-label in pool "
                                    f"{name} (it has: {', '.join(sorted(labels.values()))})")
                elif live[ref] is False:
                    problems.append(f"host {host}: not live in pool {name}")
            return problems

        def failed(result: Result) -> list[str]:
            return [f"pool {name}: {result.detail}"]

        def run(stop: threading.Event) -> Result:
            box.extend(work())
            return Result(Outcome.OK, f"pool {name} checked")

        box: list[str] = []
        return self.run(f"check of pool {name}", run).addCallback(
            lambda result: box if result.ok else failed(result))

    def close(self) -> Deferred[None]:
        """Log out of the session with the pool master (``session.logout``), if open."""
        def quiet(_: object) -> None:
            return None
        return cast("Deferred[None]", self.in_thread(self.pool.logout)).addBoth(quiet)

    def hosts(self) -> Deferred[list[HostInfo]]:
        def work() -> list[HostInfo]:
            records = self.pool.api().host.get_all_records()
            live = self.pool.liveness(records)
            return [HostInfo(r["name_label"], live[ref], not r["enabled"])
                    for ref, r in records.items()]
        return cast("Deferred[list[HostInfo]]", self.in_thread(work))

    def enter_maintenance(self, host: str, timeout: float) -> Deferred[Result]:
        return self.run(f"maintenance of {host}",
                        lambda stop: self.pool.evacuate(host, timeout, stop))

    def evacuate(self, host: str, timeout: float) -> Deferred[Result]:
        """The engine's evacuation step before a shutdown: the same as maintenance."""
        return self.run(f"evacuation of {host}",
                        lambda stop: self.pool.evacuate(host, timeout, stop))

    def exit_maintenance(self, host: str, timeout: float) -> Deferred[Result]:
        return self.run(f"exit maintenance of {host}",
                        lambda stop: self.pool.enable(host, timeout, stop))

    def shutdown_vms(self, host: str, timeout: float,
                     groups: Sequence[VmGroup] = ()) -> Deferred[Result]:
        return self.run(f"VMs of {host}",
                        lambda stop: self.pool.shutdown_vms(host, timeout, stop, groups),
                        time_limit(timeout, groups))

    def shutdown_host(self, host: str, killpower: bool = False) -> Deferred[Result]:
        return self.run(f"shutdown of {host}", lambda stop: self.pool.shutdown_host(host))


