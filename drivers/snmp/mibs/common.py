"""Rows every MIB table shares, and helpers to write the tables briefly."""

from __future__ import annotations

from upsagent.drivers.snmp.mib import Command, Set, Var

__all__ = ["SYSTEM", "cmd", "lines"]

#: MIB-2 system group: NUT publishes these for every card (``upsdrv_initups``), writable
SYSTEM = (
    Var("device.description", "1.3.6.1.2.1.1.1.0", text=True, set_as="str", string_len=128),
    Var("device.contact", "1.3.6.1.2.1.1.4.0", text=True, set_as="str", string_len=128),
    Var("device.location", "1.3.6.1.2.1.1.6.0", text=True, set_as="str", string_len=128),
)


def cmd(name: str, oid: str, value: int | str | None, set_as: str = "int",
        delay: str | None = None) -> Command:
    """A command made of one SET."""
    return Command(name, (Set(oid, value, set_as, delay),))


def lines(pattern: str, oid: str, kind: str, scale: float = 1.0, neg_invalid: bool = False,
          ) -> tuple[Var, ...]:
    """Three per-line rows: ``pattern`` with ``{n}`` (1-3), ``oid`` with ``{n}`` too."""
    return tuple(Var(pattern.format(n=n), oid.format(n=n), scale, phases=f"{kind}3",
                     neg_invalid=neg_invalid) for n in (1, 2, 3))
