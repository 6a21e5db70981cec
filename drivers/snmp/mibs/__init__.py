# -*- test-case-name: tests.test_snmp_mibs -*-
"""The MIB tables and how one is chosen for a card (NUT's ``mibs=auto`` / ``mibs=NAME``).

:data:`ORDER` is the order NUT's ``mib2nut[]`` tries them in (``drivers/snmp-ups.c``):
vendor MIBs first, RFC 1628 last, because most cards serve both and the vendor MIB says more.
Selection is pure (:func:`select`): it gets the card's ``sysObjectID`` and the set of OIDs
that answered among :func:`probe_oids`, which the caller fetched in one round trip.

* ``mibs=auto``: first the MIBs whose ``sysObjectID`` matches (exactly, or under a prefix
  ending in ``.``) and that one of their probe OIDs confirms; then, in order, the first MIB a
  probe OID confirms.  Like NUT, the ``tripplite`` entry (RFC 1628 under Tripp Lite's
  sysObjectID) is chosen by sysObjectID only.
* ``mibs=NAME``: that MIB (NUT's name or an alias), if one of its probe OIDs answers.
"""

from __future__ import annotations

from typing import Collection, Mapping

from upsagent.drivers.snmp.mib import Mib, Reading, decode
from upsagent.drivers.snmp.mibs.apc import APC
from upsagent.drivers.snmp.mibs.cyberpower import CYBERPOWER
from upsagent.drivers.snmp.mibs.ietf import IETF, TRIPPLITE
from upsagent.drivers.snmp.mibs.megatec import EPPC, XPPC
from upsagent.drivers.snmp.mibs.xups import XUPS
from upsagent.drivers.snmp.values import ObjectId, Oid, SnmpValue, parse_oid

__all__ = ["IETF_MIB", "MIBS", "ORDER", "by_name", "from_walk", "probe_oids", "select",
           "sysoid_matches", "sysoid_text"]

IETF_MIB = IETF
ORDER: tuple[Mib, ...] = (APC, CYBERPOWER, XUPS, EPPC, XPPC, TRIPPLITE, IETF)
_SYSOID_ONLY = frozenset({"tripplite"})

#: every name ``mibs=`` accepts -> table
MIBS: dict[str, Mib] = {}
for _mib in ORDER:
    for _name in (_mib.name, *_mib.aliases):
        MIBS[_name] = _mib


def by_name(name: str) -> Mib | None:
    """The table ``mibs=name`` selects (case-insensitive), or None."""
    return MIBS.get(name.lower())


def probe_oids() -> list[Oid]:
    """Every OID :func:`select` may look at besides sysObjectID."""
    return list(dict.fromkeys(parse_oid(oid) for mib in ORDER for oid in mib.probes))


def sysoid_matches(mib: Mib, sysoid: str) -> bool:
    """Whether ``sysoid`` (dotted, leading dot allowed) is one of ``mib``'s."""
    sysoid = sysoid.lstrip(".")
    return any(sysoid == want or (want.endswith(".") and sysoid.startswith(want))
               for want in mib.sysoids)


def _confirmed(mib: Mib, present: Collection[Oid]) -> bool:
    return any(parse_oid(oid) in present for oid in mib.probes)


def select(sysoid: str | None, present: Collection[Oid], mibs: str = "auto") -> Mib | None:
    """The table for a card (see the module docstring), or None if none fits."""
    if mibs.lower() != "auto":
        mib = by_name(mibs)
        return mib if mib is not None and _confirmed(mib, present) else None
    if sysoid:
        for mib in ORDER:
            if sysoid_matches(mib, sysoid) and _confirmed(mib, present):
                return mib
    for mib in ORDER:
        if mib.name not in _SYSOID_ONLY and _confirmed(mib, present):
            return mib
    return None


def sysoid_text(value: SnmpValue) -> str | None:
    """sysObjectID's value as dotted text (some cards answer a string instead of an OID)."""
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").strip() or None
    if isinstance(value, (ObjectId, str)):
        return str(value) or None
    return None


def from_walk(values: Mapping[Oid, SnmpValue], mibs: str = "auto"
              ) -> tuple[Mib, Reading] | None:
    """The table and reading for a recorded walk (alarm columns taken from the walk too),
    or None if no table fits."""
    sysoid = sysoid_text(values.get((1, 3, 6, 1, 2, 1, 1, 2, 0)))
    mib = select(sysoid, set(values), mibs)
    if mib is None:
        return None
    walked = {}
    for table in mib.alarm_tables:
        prefix = parse_oid(table.column)
        walked[table.column] = [value for oid, value in sorted(values.items())
                                if oid[:len(prefix)] == prefix]
    return mib, decode(mib, values, walked)
