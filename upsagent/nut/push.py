# -*- test-case-name: tests.test_push -*-
"""The push extension: ``WATCH <ups>`` and the unsolicited ``NOTIFY`` lines, sans-IO.

NUT's protocol is strict request/reply; upsagent adds one verb so that its own slave need
not poll.  A real upsd answers ``WATCH`` with ``ERR UNKNOWN-COMMAND``, which is how a client
knows it must poll instead.  Grammar (one line each, LF-terminated, like every reply)::

    WATCH <ups>                              (anonymous, like GET; exactly one argument)
      -> OK WATCHING <ups>                   (<ups> as the client typed it)
      -> ERR INVALID-ARGUMENT | ERR UNKNOWN-UPS
    then, unsolicited, at any time between two whole replies:
      NOTIFY <ups> VAR <var> "<value>"       (<var>: ups.status, battery.charge,
                                              battery.runtime; value quoted as in replies)
      NOTIFY <ups> ERR DATA-STALE
      NOTIFY <ups> ERR DRIVER-NOT-CONNECTED

Rules:

* No availability check at WATCH: a stale or driverless UPS may be watched.  Nothing is sent
  at WATCH itself; a client sends WATCH first and then reads the current values with GET VAR,
  so that no change can fall between the two.
* A line is pushed when ``ups.status`` (with the FSD latch's ``FSD`` prefix, as GET VAR shows
  it), ``battery.charge`` or ``battery.runtime`` changes while the data is available; when the
  data goes stale or the driver goes away (the matching ``ERR``); and when the data comes back
  (the current values of all three, ``ups.status`` first, the ones the UPS has).  While the
  data is unavailable no value is pushed, exactly as GET VAR serves none; that includes an FSD
  set meanwhile, which shows up in the ``ups.status`` line pushed when the data comes back.
* FSD set by any client (or by the master's own shutdown sequence) is pushed to every watcher
  of that UPS at once.
* Lines go to the session's own queue, never into its replies: the session writes them after
  the replies of the input it is handling, so they fall between whole replies and never inside
  a LIST block.  The session then calls its ``wakeup`` callback so that the adapter writes them.
* Flow control: while the adapter does not fetch output (a client that does not read), the
  queue keeps only the newest line per UPS and item (status, charge, runtime, availability):
  it is bounded by the number of UPSes watched, and the client gets the current state once it
  reads again.  A line equal to the last one queued for the same item is not queued again.
* Watching the same UPS under another spelling (or alias) replaces the spelling used in the
  lines.  Watches end with the session.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from upsagent.model import Availability, Change
from upsagent.nut.tokenizer import quote

if TYPE_CHECKING:
    from upsagent.nut.server import ServerSession
    from upsagent.nut.state import Slot

__all__ = ["WATCHED", "fsd_changed", "unwatch_all", "watch"]

#: the variables whose changes are pushed, in the order they are pushed
WATCHED = ("ups.status", "battery.charge", "battery.runtime")
#: the queue item of a UPS's availability
AVAILABILITY = "availability"


def watch(session: "ServerSession", slot: "Slot", name: str) -> None:
    """Make ``session`` a watcher of ``slot``, naming it ``name`` in the lines it gets."""
    if not slot.watchers:
        observer: Callable[[Change], None] = lambda change: _changed(slot, change)
        slot.push_observer = observer
        slot.ups.add_observer(observer)
    slot.watchers[session] = name
    session.watching[slot] = None


def unwatch_all(session: "ServerSession") -> None:
    """End every watch of ``session`` (the connection closed)."""
    for slot in session.watching:
        slot.watchers.pop(session, None)
        if not slot.watchers and slot.push_observer is not None:
            slot.ups.remove_observer(slot.push_observer)
            slot.push_observer = None
    session.watching.clear()


def fsd_changed(slot: "Slot") -> None:
    """The FSD latch of ``slot`` was just set: tell its watchers the new ``ups.status``."""
    if slot.ups.availability is Availability.OK:
        _push_values(slot, ("ups.status",))


def _changed(slot: "Slot", change: Change) -> None:
    """The UPS observer: turn one committed change into lines for every watcher."""
    ups = slot.ups
    availability = ups.availability
    if change.availability_changed:
        if availability is Availability.OK:
            for session in slot.watchers:
                session.push_cancel(slot, AVAILABILITY)
            _push_values(slot, WATCHED)
        else:
            for session, name in list(slot.watchers.items()):
                for var in WATCHED:  # after the error, the same value is news again
                    session.push_forget(slot, var)
                session.push(slot, AVAILABILITY, f"NOTIFY {name} ERR {availability.value}")
                session.push_done()
        return
    if availability is not Availability.OK:
        return
    changed = {var.lower() for var in change.variables}
    wanted = tuple(var for var in WATCHED if var in changed)
    if wanted:
        _push_values(slot, wanted)


def _push_values(slot: "Slot", names: tuple[str, ...]) -> None:
    """Queue the current value of each of ``names`` (that the UPS has) for every watcher."""
    values = []
    for var in names:
        value = slot.ups.value(var)
        if value is None:
            continue
        if var == "ups.status" and slot.fsd:
            value = f"FSD {value}"
        values.append((var, quote(value)))
    if not values:
        return
    for session, name in list(slot.watchers.items()):
        for var, quoted in values:
            session.push(slot, var, f"NOTIFY {name} VAR {var} {quoted}")
        session.push_done()
