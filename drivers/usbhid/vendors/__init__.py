"""The vendor tables and how one is chosen for a device.

Order is NUT's (``subdriver_list`` in ``drivers/usbhid-ups.c``): the first table that claims
the device's USB ids wins; 06da:ffff goes to the MGE table only for AEG units, else to
Liebert's.  A device no table claims (an OEM of a known brand, a new brand) gets the table
that maps the most of its descriptor, the generic one on a tie, which is also how
``upsagent decode`` picks a table from a descriptor alone.  The ups.conf option
``subdriver`` forces a table by (part of) its name, case-insensitively, as NUT's does.
"""

from __future__ import annotations

import re

from upsagent.drivers.usbhid.hidparser import ReportDescriptor, ReportType
from upsagent.drivers.usbhid.tables import DeviceInfo, Subdriver
from upsagent.drivers.usbhid.vendors import apc, belkin, cps, generic, liebert, mge
from upsagent.drivers.usbhid.vendors import powercom, tripplite

__all__ = ["GENERIC", "SUBDRIVERS", "all_usb_ids", "by_descriptor", "by_name", "select"]

SUBDRIVERS: tuple[Subdriver, ...] = (
    mge.SUBDRIVER, apc.SUBDRIVER, belkin.SUBDRIVER, cps.SUBDRIVER, liebert.SUBDRIVER,
    powercom.SUBDRIVER, tripplite.SUBDRIVER, generic.SUBDRIVER)
GENERIC = generic.SUBDRIVER


def all_usb_ids() -> tuple[tuple[int, int], ...]:
    """Every (vendor, product) a table claims, sorted (the udev rules list them)."""
    return tuple(sorted({pair for sub in SUBDRIVERS for pair in sub.usb_ids}))


def by_name(text: str) -> Subdriver | None:
    """The table named ``text`` (key, full name, or a case-insensitive regex of it)."""
    for sub in SUBDRIVERS:
        if text.lower() in (sub.key, sub.name.lower()):
            return sub
    try:
        pattern = re.compile(text, re.IGNORECASE)
    except re.error:
        return None
    for sub in SUBDRIVERS:
        if pattern.match(sub.name) or pattern.match(sub.key):
            return sub
    return None


def score(sub: Subdriver, descriptor: ReportDescriptor) -> int:
    """How many distinct readable paths of the descriptor this table maps."""
    paths = {item.path for item in descriptor.fields
             if item.kind in (ReportType.FEATURE, ReportType.INPUT)}
    mapped = set()
    for row in sub.rows:
        path = sub.names.path(row.path)
        if path is not None and path in paths:
            mapped.add(path)
    return len(mapped)


def by_descriptor(descriptor: ReportDescriptor) -> Subdriver:
    """The table for a descriptor alone.

    A vendor usage page names the family (0xff86 APC, 0xff01 CyberPower, 0x86 Belkin, page
    2 Powercom; 0xffff is both Eaton and Tripp Lite); among the candidates (all tables when
    no page matches) the one mapping the most paths wins, the generic one on a tie.
    """
    pages = {node >> 16 for item in descriptor.fields for node in item.path}
    candidates = [sub for sub in SUBDRIVERS if set(sub.pages) & pages] or list(SUBDRIVERS)
    best, best_score = GENERIC, score(GENERIC, descriptor)
    if GENERIC not in candidates:
        best, best_score = candidates[0], score(candidates[0], descriptor)
    for sub in candidates:
        value = score(sub, descriptor)
        if value > best_score:
            best, best_score = sub, value
    return best


def select(device: DeviceInfo, descriptor: ReportDescriptor | None = None,
           forced: str | None = None, productid_given: bool = False) -> Subdriver | None:
    """The table for a device: forced by name, claimed by id, else by its descriptor."""
    if forced:
        return by_name(forced)
    for sub in SUBDRIVERS:
        if sub.claims(device, productid_given):
            return sub
    return by_descriptor(descriptor) if descriptor is not None else None
