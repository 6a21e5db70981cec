# -*- test-case-name: tests.test_snmp_scan -*-
"""Find UPS network cards in an address range (the vendor tools' "Search Device").

For each address: one GET (``sysObjectID``, ``sysDescr``, every MIB's probe OIDs and the
identity rows ``ups.mfr`` / ``ups.model``) with a short timeout, at most ``parallel`` addresses
at a time; an address that answers and that a MIB table fits (the driver's own selection) is
a card.  Runs in its own asyncio loop (no reactor): it is a command, not part of the master.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator

from upsagent.drivers.snmp import mibs
from upsagent.drivers.snmp.client import PysnmpTransport, SnmpError
from upsagent.drivers.snmp.mib import decode
from upsagent.drivers.snmp.settings import SnmpSettings
from upsagent.drivers.snmp.values import Oid, parse_oid, render_string

__all__ = ["Card", "addresses", "identity_oids", "scan"]

SYSOID = (1, 3, 6, 1, 2, 1, 1, 2, 0)
SYSDESCR = (1, 3, 6, 1, 2, 1, 1, 1, 0)
#: most addresses one scan covers (a /16)
MAX_ADDRESSES = 65536


@dataclass(frozen=True)
class Card:
    """A UPS card found: where, which table, what it says it is."""

    host: str
    port: int
    mib: str
    mfr: str
    model: str
    description: str


def addresses(start: str, end: str) -> Iterator[str]:
    """The IPv4 addresses from ``start`` to ``end``, both included."""
    first, last = ipaddress.IPv4Address(start), ipaddress.IPv4Address(end)
    if last < first:
        raise ValueError(f"{end} comes before {start}")
    if int(last) - int(first) + 1 > MAX_ADDRESSES:
        raise ValueError(f"{start} - {end} is more than {MAX_ADDRESSES} addresses")
    for number in range(int(first), int(last) + 1):
        yield str(ipaddress.IPv4Address(number))


def identity_oids() -> list[Oid]:
    """What one probe asks each address."""
    wanted = [SYSOID, SYSDESCR, *mibs.probe_oids()]
    for mib in mibs.ORDER:
        wanted += [parse_oid(var.oid) for var in mib.variables
                   if var.name in ("ups.mfr", "ups.model") and var.oid is not None]
    return list(dict.fromkeys(wanted))


async def _probe(settings: SnmpSettings, oids: list[Oid], engine: Any) -> Card | None:
    transport = PysnmpTransport(settings, reactor=None, engine=engine)
    try:
        values = await transport.get_now(oids)
    except SnmpError:
        return None
    finally:
        transport.close_now()
    if not values:
        return None
    sysoid = mibs.sysoid_text(values.get(SYSOID))
    mib = mibs.select(sysoid, set(values), settings.mibs)
    if mib is None:
        return None
    published = dict(decode(mib, values).items())
    raw = values.get(SYSDESCR)
    description = (render_string(raw) if isinstance(raw, bytes) else None) or ""
    return Card(settings.host, settings.port, mib.name, published.get("ups.mfr", ""),
                published.get("ups.model", ""), description)


async def scan(hosts: list[str], template: SnmpSettings, parallel: int = 64,
               progress: Callable[[int, int, int], None] | None = None) -> list[Card]:
    """Probe ``hosts`` with ``template``'s settings (its host replaced); cards in order."""
    from pysnmp.hlapi.v3arch import asyncio as hl

    oids = identity_oids()
    engine = hl.SnmpEngine()  # one engine for every address: making one costs ~0.3 s
    limit = asyncio.Semaphore(max(1, parallel))
    found: dict[str, Card] = {}
    done = 0

    async def one(host: str) -> None:
        nonlocal done
        async with limit:
            card = await _probe(replace(template, host=host), oids, engine)
        done += 1
        if card is not None:
            found[host] = card
        if progress is not None:
            progress(done, len(hosts), len(found))

    try:
        await asyncio.gather(*(one(host) for host in hosts))
    finally:
        engine.close_dispatcher()
    return [found[host] for host in hosts if host in found]
