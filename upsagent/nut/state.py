# -*- test-case-name: tests.test_server -*-
"""What all sessions of one server share: UPSes, users, FSD latches, logins, tracking.

This is the sans-IO counterpart of upsd's globals.  Nothing here touches a socket or reads
the clock: time comes in through a ``now`` callable that the Twisted shell supplies (a
``Clock`` in tests).

Rules kept from upsd (NUT's ``server/upsd.c``, ``user.c``, ``netuser.c``, ``netmisc.c``):

* UPS names are matched case-insensitively; several names may lead to one UPS (aliases,
  for NAS boxes with fixed names), and they share its FSD latch and login count.
* Users: the *first* entry with a matching name decides; the password is compared exactly;
  actions and instant-command names case-insensitively; ``instcmds = all`` allows any.
* The FSD latch, once set, stays until the server restarts (or the UPS leaves the config);
  :meth:`Slot.set_fsd` sets it and tells the UPS's watchers (the push extension).
* Tracking ids are global (any session with tracking on may ask about any id) and are
  forgotten ``tracking_delay`` seconds after the request.  The ids come from a factory the
  shell passes in (upsd's are upper-case UUID v4s; tests pass a counter).

SET VAR and INSTCMD leave the core as :class:`DriverRequest` values handed to the slot's
:class:`DriverPort`; the Twisted layer carries them out and reports the driver's answer
with :meth:`Tracking.finish`.  Users and UPSes arrive as plain records
(:class:`UserRecord`, :class:`UpsRecord`), whatever front end read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, AbstractSet, Callable, Iterable, Literal, Protocol

from upsagent.model import UPS, Change
from upsagent.nut.push import fsd_changed
from upsagent.nut.tokenizer import tokenize_text

if TYPE_CHECKING:
    from upsagent.nut.server import ServerSession

__all__ = ["Descriptions", "DriverPort", "DriverRequest", "ServerState", "Slot", "Tracking",
           "UpsRecord", "UserRecord", "Users"]

#: what upsd 2.8.0 calls itself; clients (exporters) parse this wording
NUT_VERSION = "2.8.0"
SERVER_INFO = f"Network UPS Tools upsd {NUT_VERSION} - http://www.networkupstools.org/"
NETVER = "1.3"


class UserRecord(Protocol):
    """One upsd.users entry: lower-case ``actions`` and ``instcmds`` (or ``all``)."""

    @property
    def name(self) -> str: ...

    @property
    def password(self) -> str | None: ...

    @property
    def actions(self) -> AbstractSet[str]: ...

    @property
    def instcmds(self) -> AbstractSet[str]: ...


class UpsRecord(Protocol):
    """One served UPS as the configuration names it."""

    @property
    def name(self) -> str: ...

    @property
    def desc(self) -> str | None: ...

    @property
    def aliases(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class DriverRequest:
    """A SET VAR (``kind="set"``) or INSTCMD (``kind="instcmd"``) for a UPS's driver.

    ``tracking`` is the id the client was given (tracking on), to be finished with the
    driver's answer through :meth:`Tracking.finish`; None when nobody will ask.
    """

    ups: str
    kind: Literal["set", "instcmd"]
    name: str
    value: str | None
    tracking: str | None = None


class DriverPort(Protocol):
    """Where the core hands a UPS's driver requests: the Twisted layer's adapter."""

    def submit(self, request: DriverRequest) -> None:
        """Take ``request`` (it will be carried out later); raise to refuse it now."""


@dataclass(eq=False)
class Slot:
    """One served UPS: its data, its driver, and upsd's per-UPS bookkeeping."""

    name: str
    desc: str | None
    ups: UPS
    driver: DriverPort | None = None
    fsd: bool = False
    numlogins: int = 0
    #: every name (canonical first) clients may use for this UPS
    names: tuple[str, ...] = ()
    #: rendered LIST VAR bodies by the UPS name as the client spelled it:
    #: name -> (UPS.version, fsd, text); see commands._list_var
    list_cache: dict[str, tuple[int, bool, str]] = field(default_factory=dict)
    #: sessions that sent WATCH for this UPS, with the name as they typed it (push.py)
    watchers: dict["ServerSession", str] = field(default_factory=dict)
    #: the UPS observer feeding the watchers, installed while there are any
    push_observer: Callable[[Change], None] | None = None

    def set_fsd(self) -> bool:
        """Set the FSD latch (never cleared); True if it was not set before.

        Watchers are told at once.  Everything that sets the latch goes through here: the
        FSD command and the master's own shutdown sequence.
        """
        if self.fsd:
            return False
        self.fsd = True
        fsd_changed(self)
        return True


class Users:
    """upsd.users rights checks, with upsd's first-match rule."""

    def __init__(self, users: Iterable[UserRecord]) -> None:
        self._users: dict[str, UserRecord] = {}
        for user in users:
            self._users.setdefault(user.name, user)

    def _find(self, username: str | None, password: str | None) -> UserRecord | None:
        if username is None or password is None:
            return None
        user = self._users.get(username)
        if user is None or user.password is None or user.password != password:
            return None
        return user

    def check_action(self, username: str | None, password: str | None, action: str) -> bool:
        """Whether this user/password pair may perform ``action`` (``login``, ``set``, ...)."""
        user = self._find(username, password)
        return user is not None and action.lower() in user.actions

    def check_instcmd(self, username: str | None, password: str | None, cmd: str) -> bool:
        """Whether this user/password pair may run instant command ``cmd``."""
        user = self._find(username, password)
        return user is not None and (cmd.lower() in user.instcmds or "all" in user.instcmds)


class Descriptions:
    """``GET DESC`` / ``GET CMDDESC`` texts from a cmdvartab file (NUT's format)."""

    def __init__(self, text: str = "") -> None:
        self.vars: dict[str, str] = {}
        self.cmds: dict[str, str] = {}
        for _, words in tokenize_text(text):
            if isinstance(words, list) and len(words) >= 3:
                table = {"VARDESC": self.vars, "CMDDESC": self.cmds}.get(words[0])
                if table is not None:
                    table[words[1].lower()] = words[2]

    def var(self, name: str) -> str:
        return self.vars.get(name.lower(), "Description unavailable")

    def cmd(self, name: str) -> str:
        return self.cmds.get(name.lower(), "Description unavailable")


class Tracking:
    """Results of SET VAR / INSTCMD requests sent with tracking on."""

    def __init__(self, now: Callable[[], float], new_id: Callable[[], str],
                 delay: float = 3600) -> None:
        self._now = now
        self._new_id = new_id
        self.delay = delay
        self._items: dict[str, tuple[str, float]] = {}

    def add(self) -> str:
        """Register a new pending request; returns its id (from the injected factory)."""
        self.cleanup()
        ident = self._new_id()
        self._items[ident] = ("PENDING", self._now())
        return ident

    def finish(self, ident: str, result: str) -> None:
        """Record the driver's answer (``SUCCESS``, ``ERR UNKNOWN``, ...)."""
        item = self._items.get(ident)
        if item is not None:
            self._items[ident] = (result, item[1])

    def forget(self, ident: str) -> None:
        """Drop a request the driver refused before it started."""
        self._items.pop(ident, None)

    def get(self, ident: str) -> str:
        self.cleanup()
        item = self._items.get(ident.upper())
        return "ERR UNKNOWN" if item is None else item[0]

    def cleanup(self) -> None:
        limit = self._now() - self.delay
        for ident in [i for i, (_, t) in self._items.items() if t < limit]:
            del self._items[ident]


@dataclass(eq=False)
class ServerState:
    """Everything sessions share.  Build it with :meth:`from_config`."""

    users: Users
    descriptions: Descriptions
    tracking: Tracking
    tls_available: bool = False
    slots: list[Slot] = field(default_factory=list)
    #: live sessions, newest first (LIST CLIENT order)
    sessions: list["ServerSession"] = field(default_factory=list)
    _by_name: dict[str, Slot] = field(default_factory=dict)
    #: answers to whole ``GET VAR`` request lines, by the line's bytes as received (LF
    #: included): line -> (slot, UPS.version, fsd, reply with LF, the same encoded as
    #: ServerSession.data_to_send encodes).  A poller asks the same
    #: question over and over; the answer depends only on that UPS's data, so it is valid
    #: while the version and FSD are unchanged and the UPS is available.  Emptied when the
    #: served names change; see ServerSession.receive_data and commands._get_var.
    get_cache: dict[bytes, tuple[Slot, int, bool, str, bytes]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, ups: Iterable[UpsRecord], users: Iterable[UserRecord], *,
                    now: Callable[[], float], new_id: Callable[[], str],
                    descriptions: Descriptions, tracking_delay: float = 3600,
                    tls_available: bool = False) -> "ServerState":
        """The shared state for these UPSes and users; ``now`` and ``new_id`` are the
        shell's clock and tracking-id factory."""
        state = cls(Users(users), descriptions, Tracking(now, new_id, tracking_delay),
                    tls_available)
        for conf in ups:
            state.add_slot(Slot(conf.name, conf.desc, UPS(conf.name, conf.desc),
                                names=(conf.name, *conf.aliases)))
        return state

    def add_slot(self, slot: Slot) -> None:
        """Serve one more UPS under all of its names."""
        if not slot.names:
            slot.names = (slot.name,)
        self.slots.append(slot)
        self.get_cache.clear()
        for name in slot.names:
            self._by_name[name.lower()] = slot

    def remove_slot(self, slot: Slot) -> None:
        self.slots.remove(slot)
        self.get_cache.clear()
        for name in slot.names:
            self._by_name.pop(name.lower(), None)

    def find(self, name: str) -> Slot | None:
        """The UPS called ``name`` (any case, any alias), or None."""
        return self._by_name.get(name.lower())

    def listed_names(self) -> list[tuple[str, Slot]]:
        """Every served name in config order (aliases after their UPS), for LIST UPS."""
        return [(name, slot) for slot in self.slots for name in slot.names]
