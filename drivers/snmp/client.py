# -*- test-case-name: tests.test_snmp_driver -*-
"""The SNMP I/O shell: GET, GETNEXT/GETBULK walks and SET on pysnmp, seen from Twisted.

**How pysnmp meets the reactor.**  pysnmp 7 is asyncio-based; the master runs Twisted's
default (epoll) reactor.  Installing Twisted's asyncio reactor instead would put every NUT
client of the master on asyncio's slower event loop (the list and get figures of
``bench/RESULTS.md`` were measured on epoll), and would force the choice on every process
that imports a driver.  So pysnmp's loop runs in **one daemon thread of its own**
(:class:`SnmpLoop`, shared by every card of the process, started on first use): a request
is a coroutine submitted with ``asyncio.run_coroutine_threadsafe`` and its answer comes
back to the reactor thread with ``reactor.callFromThread``, as a Deferred.  The reactor
never blocks on SNMP, no pysnmp object crosses the thread boundary (answers are converted
to :mod:`.values` types in the loop thread), and a master without SNMP UPSes never starts
the thread.  The seam is the :class:`Transport` protocol: the driver is built with a
factory, so other transports (a recorded walk) fit too.

Errors: no answer within ``timeout`` x (``retries`` + 1) is :class:`SnmpTimeout` (the
driver marks the UPS stale); an error status in the answer is :class:`SnmpError`.  On v1 a
GET of several OIDs fails whole with ``noSuchName`` when one is missing: the missing one is
dropped and the GET repeated, so a v1 GET answers like a v2c one.  A ``tooBig`` answer
halves the request.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Awaitable, Callable, Protocol, Sequence, TypeVar

from twisted.internet.defer import Deferred

from upsagent.drivers.snmp.settings import SnmpSettings
from upsagent.drivers.snmp.values import ObjectId, Oid, SnmpValue, TimeTicks, format_oid

__all__ = ["MISSING_PYSNMP", "PysnmpTransport", "SnmpError", "SnmpLoop", "SnmpTimeout",
           "Transport", "from_pysnmp", "to_pysnmp"]

T = TypeVar("T")

MISSING_PYSNMP = "the snmp-ups driver needs pysnmp: install upsagent[snmp]"
#: OIDs per GET request (cards differ in what they take; tooBig halves it)
CHUNK = 24
BULK_REPETITIONS = 24


class SnmpError(Exception):
    """The card answered with an error status (noSuchName, notWritable, badValue ...)."""


class SnmpTimeout(SnmpError):
    """The card did not answer (after the retries)."""


class Transport(Protocol):
    """What the driver needs from the network; every method returns a Deferred."""

    def get(self, oids: Sequence[Oid]) -> "Deferred[dict[Oid, SnmpValue]]":
        """The values of ``oids`` the card has (missing ones are left out)."""

    def walk(self, prefix: Oid, limit: int = 256) -> "Deferred[list[tuple[Oid, SnmpValue]]]":
        """The (OID, value) rows under ``prefix``, at most ``limit``."""

    def set(self, items: Sequence[tuple[Oid, SnmpValue]]) -> "Deferred[None]":
        """SET the values (one request); fails with :class:`SnmpError`."""

    def close(self) -> None:
        """Release what the transport holds."""


class SnmpLoop:
    """pysnmp's asyncio loop in a daemon thread; one per process (:meth:`shared`)."""

    _shared: "SnmpLoop | None" = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self._engine: Any = None
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="upsagent-snmp", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def community_engine(self) -> Any:
        """The one pysnmp engine every v1/v2c card of the process shares (in the loop
        thread).  An engine costs ~0.4 s of CPU and ~5 MB to make; v3 cards keep their own,
        since their USM users and keys are per card."""
        if self._engine is None:
            from pysnmp.hlapi.v3arch import asyncio as hl

            self._engine = hl.SnmpEngine()
        return self._engine

    @classmethod
    def shared(cls) -> "SnmpLoop":
        """The process's loop, started on first use."""
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def submit(self, reactor: Any, make: Callable[[], Awaitable[T]]) -> "Deferred[T]":
        """Run ``make()`` in the loop thread; its result fires a Deferred in the reactor."""
        done: Deferred[T] = Deferred()

        async def run() -> T:
            return await make()

        future = asyncio.run_coroutine_threadsafe(run(), self.loop)

        def finished(fut: "Any") -> None:
            try:
                result = fut.result()
            except BaseException as exc:  # handed to the reactor as a failure
                reactor.callFromThread(done.errback, exc)
            else:
                reactor.callFromThread(done.callback, result)

        future.add_done_callback(finished)
        return done


def from_pysnmp(value: Any) -> tuple[bool, SnmpValue]:
    """(present, value) of a pysnmp value (noSuch*/endOfMibView: not present)."""
    from pyasn1.type import univ
    from pysnmp.proto import rfc1902, rfc1905

    if isinstance(value, (rfc1905.NoSuchObject, rfc1905.NoSuchInstance,
                          rfc1905.EndOfMibView)):
        return False, None
    if isinstance(value, univ.Null):
        return True, None
    if isinstance(value, rfc1902.TimeTicks):
        return True, TimeTicks(int(value))
    if isinstance(value, rfc1902.IpAddress):
        return True, ".".join(str(byte) for byte in value.asOctets())
    if isinstance(value, univ.OctetString):
        return True, bytes(value.asOctets())
    if isinstance(value, univ.ObjectIdentifier):
        return True, ObjectId(tuple(int(part) for part in value))
    if isinstance(value, univ.Integer):
        return True, int(value)
    return True, bytes(str(value), "utf-8")


def to_pysnmp(value: SnmpValue) -> Any:
    """Our value as the pysnmp type a SET sends."""
    from pysnmp.proto import rfc1902

    if isinstance(value, TimeTicks):
        return rfc1902.TimeTicks(int(value))
    if isinstance(value, ObjectId):
        return rfc1902.ObjectName(format_oid(value))
    if isinstance(value, int):
        return rfc1902.Integer32(value)
    if isinstance(value, bytes):
        return rfc1902.OctetString(value)
    if isinstance(value, str):
        return rfc1902.OctetString(value.encode("utf-8"))
    raise SnmpError(f"cannot SET {value!r}")


class PysnmpTransport:
    """A :class:`Transport` to one card, through pysnmp in :class:`SnmpLoop`'s thread."""

    def __init__(self, settings: SnmpSettings, reactor: Any,
                 loop: SnmpLoop | None = None, engine: Any = None) -> None:
        try:
            import pysnmp.hlapi.v3arch.asyncio  # noqa: F401
        except ImportError:
            raise ImportError(MISSING_PYSNMP) from None
        self.settings = settings
        self.reactor = reactor
        self._loop = loop
        #: a pysnmp SnmpEngine shared with other transports (the scanner's), never closed here
        self._shared_engine = engine
        self._engine: Any = engine
        self._target: Any = None

    @property
    def loop(self) -> SnmpLoop:
        """The loop thread requests run in (the shared one unless given; started when first
        needed, so coroutine callers such as the scanner never start it)."""
        if self._loop is None:
            self._loop = SnmpLoop.shared()
        return self._loop

    # -- the Transport protocol ----------------------------------------------------------

    def get(self, oids: Sequence[Oid]) -> "Deferred[dict[Oid, SnmpValue]]":
        wanted = list(oids)
        return self.loop.submit(self.reactor, lambda: self._get_all(wanted))

    def walk(self, prefix: Oid, limit: int = 256) -> "Deferred[list[tuple[Oid, SnmpValue]]]":
        return self.loop.submit(self.reactor, lambda: self._walk(prefix, limit))

    def set(self, items: Sequence[tuple[Oid, SnmpValue]]) -> "Deferred[None]":
        wanted = list(items)
        return self.loop.submit(self.reactor, lambda: self._set(wanted))

    def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None and engine is not self._shared_engine:
            self.loop.loop.call_soon_threadsafe(_close_engine, engine)

    # -- for asyncio callers in the loop that runs them (the scanner) ---------------------

    async def get_now(self, oids: Sequence[Oid]) -> dict[Oid, SnmpValue]:
        """:meth:`get` as a coroutine in the caller's own asyncio loop."""
        return await self._get_all(list(oids))

    def close_now(self) -> None:
        """:meth:`close` from the loop the coroutines ran in."""
        engine, self._engine = self._engine, None
        if engine is not None and engine is not self._shared_engine:
            _close_engine(engine)

    # -- in the loop thread ---------------------------------------------------------------

    async def _session(self) -> tuple[Any, Any, Any, Any]:
        """(engine, auth, target, context), made once per transport."""
        from pysnmp.hlapi.v3arch import asyncio as hl

        if self._engine is None:
            if self.settings.version != "v3" and self._loop is not None:
                self._engine = self._shared_engine = self._loop.community_engine()
            else:
                self._engine = hl.SnmpEngine()
        if self._target is None:
            s = self.settings
            self._target = await hl.UdpTransportTarget.create(
                (s.host, s.port), timeout=s.timeout, retries=s.retries)
        return self._engine, _auth(self.settings), self._target, _context()

    async def _get_all(self, oids: list[Oid]) -> dict[Oid, SnmpValue]:
        out: dict[Oid, SnmpValue] = {}
        chunks = [oids[i:i + CHUNK] for i in range(0, len(oids), CHUNK)]
        for part in await asyncio.gather(*(self._get(chunk) for chunk in chunks)):
            out.update(part)
        return out

    async def _get(self, oids: list[Oid]) -> dict[Oid, SnmpValue]:
        from pysnmp.hlapi.v3arch import asyncio as hl

        out: dict[Oid, SnmpValue] = {}
        while oids:
            engine, auth, target, context = await self._session()
            binds = [hl.ObjectType(hl.ObjectIdentity(format_oid(oid))) for oid in oids]
            indication, status, index, answer = await hl.get_cmd(
                engine, auth, target, context, *binds, lookupMib=False)
            if indication:
                raise _indication(indication, self.settings)
            if status:
                name = status.prettyPrint() if hasattr(status, "prettyPrint") else str(status)
                if name == "tooBig" and len(oids) > 1:
                    half = len(oids) // 2
                    out.update(await self._get(oids[:half]))
                    out.update(await self._get(oids[half:]))
                    return out
                if name == "noSuchName" and 0 < int(index) <= len(oids):
                    oids = oids[:int(index) - 1] + oids[int(index):]
                    continue
                raise SnmpError(f"GET: {name}")
            for oid, (_, raw) in zip(oids, answer):
                present, value = from_pysnmp(raw)
                if present:
                    out[oid] = value
            return out
        return out

    async def _walk(self, prefix: Oid, limit: int) -> list[tuple[Oid, SnmpValue]]:
        from pysnmp.hlapi.v3arch import asyncio as hl

        rows: list[tuple[Oid, SnmpValue]] = []
        cursor = prefix
        while len(rows) < limit:
            engine, auth, target, context = await self._session()
            bind = hl.ObjectType(hl.ObjectIdentity(format_oid(cursor)))
            if self.settings.version == "v1":
                result = await hl.next_cmd(engine, auth, target, context, bind,
                                           lookupMib=False)
            else:
                result = await hl.bulk_cmd(engine, auth, target, context, 0,
                                           BULK_REPETITIONS, bind, lookupMib=False)
            indication, status, _, answer = result
            if indication:
                raise _indication(indication, self.settings)
            if status:  # v1 noSuchName at the end of the MIB view
                return rows
            advanced = False
            for name, raw in answer:
                oid = tuple(int(part) for part in name)
                present, value = from_pysnmp(raw)
                if not present or oid[:len(prefix)] != prefix or oid <= cursor:
                    return rows
                rows.append((oid, value))
                cursor, advanced = oid, True
                if len(rows) >= limit:
                    break
            if not advanced:
                return rows
        return rows

    async def _set(self, items: list[tuple[Oid, SnmpValue]]) -> None:
        from pysnmp.hlapi.v3arch import asyncio as hl

        engine, auth, target, context = await self._session()
        binds = [hl.ObjectType(hl.ObjectIdentity(format_oid(oid)), to_pysnmp(value))
                 for oid, value in items]
        indication, status, index, answer = await hl.set_cmd(engine, auth, target, context,
                                                        *binds, lookupMib=False)
        if indication:
            raise _indication(indication, self.settings)
        if status:
            name = status.prettyPrint() if hasattr(status, "prettyPrint") else str(status)
            where = ""
            if 0 < int(index) <= len(items):
                where = f" at {format_oid(items[int(index) - 1][0])}"
            raise SnmpError(f"SET: {name}{where}")
        for (oid, _), (_, raw) in zip(items, answer):
            if not from_pysnmp(raw)[0]:  # some agents answer noSuchInstance, status 0
                raise SnmpError(f"SET: no such object {format_oid(oid)}")


def _indication(indication: Any, settings: SnmpSettings) -> SnmpError:
    text = str(indication)
    if "timeout" in text.lower() or "no snmp response" in text.lower():
        return SnmpTimeout(f"no answer from {settings.host}:{settings.port} within "
                           f"{settings.timeout:g} s x {settings.retries + 1} tries")
    return SnmpError(text)


def _context() -> Any:
    from pysnmp.hlapi.v3arch import asyncio as hl

    return hl.ContextData()


def _auth(settings: SnmpSettings) -> Any:
    """CommunityData (v1, v2c) or UsmUserData (v3) for the settings."""
    from pysnmp.hlapi.v3arch import asyncio as hl

    if settings.version in ("v1", "v2c"):
        return hl.CommunityData(settings.community, mpModel=0 if settings.version == "v1"
                                else 1)
    auth = {"MD5": hl.usmHMACMD5AuthProtocol, "SHA": hl.usmHMACSHAAuthProtocol,
            "SHA224": hl.usmHMAC128SHA224AuthProtocol,
            "SHA256": hl.usmHMAC192SHA256AuthProtocol,
            "SHA384": hl.usmHMAC256SHA384AuthProtocol,
            "SHA512": hl.usmHMAC384SHA512AuthProtocol}[settings.auth_protocol]
    priv = {"DES": hl.usmDESPrivProtocol, "AES": hl.usmAesCfb128Protocol,
            "AES192": hl.usmAesBlumenthalCfb192Protocol,
            "AES256": hl.usmAesBlumenthalCfb256Protocol}[settings.priv_protocol]
    if settings.sec_level == "noAuthNoPriv":
        return hl.UsmUserData(settings.sec_name)
    if settings.sec_level == "authNoPriv":
        return hl.UsmUserData(settings.sec_name, settings.auth_password, authProtocol=auth)
    return hl.UsmUserData(settings.sec_name, settings.auth_password, settings.priv_password,
                          authProtocol=auth, privProtocol=priv)


def _close_engine(engine: Any) -> None:
    try:
        engine.close_dispatcher()
    except Exception:  # already closed, or never opened
        pass
