# -*- test-case-name: tests.test_notify -*-
"""upsmon's notifications (NUT 2.8.0): what to send for an event (pure).

The eleven types, their stock texts and default flags are upsmon.h's ``notifylist``:
every type is ``SYSLOG+WALL`` except ``CAL`` (``SYSLOG`` only).  ``%s`` in a text is the
MONITOR system name (``ups@host``); ``SHUTDOWN`` and ``NOPARENT`` concern no UPS, so it is
the empty string there.  ``NOTIFYMSG`` replaces a text, ``NOTIFYFLAG`` replaces the flags
(the upsmon.conf reader, :mod:`upsagent.config.upsmonconf`, checks both).

What upsmon does with the flags (``notify()`` in clients/upsmon.c), and so what we do:

* ``IGNORE`` anywhere in the flags: nothing at all, whatever else is set.
* ``SYSLOG``: the text is logged at syslog priority NOTICE.  We log it through the Twisted
  logger (namespace ``upsagent.notify``, level info, ``syslog_priority=5``), which ends up in
  syslog or the journal like the rest of the agent's log.
* ``WALL``: ``wall`` is started and the text plus a newline is written to its standard
  input (upsmon: ``popen("wall", "w")``, which goes through ``sh``).  The runner closes
  stdin, so we run ``sh -c`` with a constant script (:data:`WALL_SCRIPT`, not built from any
  data) that pipes its argument, the text, into ``wall``: the text is never parsed by the
  shell.
* ``EXEC``: when NOTIFYCMD is set, it runs with the text as its one argument and
  ``NOTIFYTYPE=<type>``, ``UPSNAME=<system or "">`` added to the environment.  NOTIFYCMD is
  the operator's shell line (:class:`~upsagent.config.shellline.ShellLine`); the text goes
  in as a real argument, never through the shell.  Without NOTIFYCMD, EXEC does nothing.
* The text is at most 511 characters, as upsmon's 512-byte buffer cuts it.

upsmon forks and does not wait for ``wall`` or NOTIFYCMD; we run them through an injected
runner with a time budget each (:class:`upsagent.agent.notify.Notifier`), and a failure is logged, never raised: a broken
notifier must not get in the way of a shutdown.

:func:`plan` says what to send: a tuple of :class:`LogNotice` and :class:`RunCommand`;
:class:`upsagent.agent.notify.Notifier` carries the plan out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

from upsagent.config.shellline import ShellLine

__all__ = [
    "DEFAULT_FLAGS", "FLAGS", "NOTIFY_TYPES", "WALL_SCRIPT", "LogNotice", "NotifySettings",
    "NotifyType", "RunCommand", "format_message", "message_problem", "plan",
]

#: the flags NOTIFYFLAG knows (compared case-sensitively, as upsmon does)
FLAGS = ("SYSLOG", "WALL", "EXEC", "IGNORE")
DEFAULT_FLAGS = frozenset({"SYSLOG", "WALL"})
#: upsmon formats into a 512-byte buffer
MAX_MESSAGE = 511
#: ``sh -c WALL_SCRIPT <name> <text>``: what upsmon's ``popen("wall")`` + fprintf do
WALL_SCRIPT = 'printf "%s\\n" "$1" | wall'


@dataclass(frozen=True)
class NotifyType:
    """One notification type: its name, upsmon's stock text and default flags."""

    name: str
    text: str
    flags: frozenset[str] = DEFAULT_FLAGS


_TYPES = (
    NotifyType("ONLINE", "UPS %s on line power"),
    NotifyType("ONBATT", "UPS %s on battery"),
    NotifyType("LOWBATT", "UPS %s battery is low"),
    NotifyType("FSD", "UPS %s: forced shutdown in progress"),
    NotifyType("COMMOK", "Communications with UPS %s established"),
    NotifyType("COMMBAD", "Communications with UPS %s lost"),
    NotifyType("SHUTDOWN", "Auto logout and shutdown proceeding"),
    NotifyType("REPLBATT", "UPS %s battery needs to be replaced"),
    NotifyType("NOCOMM", "UPS %s is unavailable"),
    NotifyType("NOPARENT", "upsmon parent process died - shutdown impossible"),
    NotifyType("CAL", "UPS %s: calibration in progress", frozenset({"SYSLOG"})),
)
#: the eleven types of NUT 2.8.0, in upsmon.h's order
NOTIFY_TYPES: Mapping[str, NotifyType] = {t.name: t for t in _TYPES}


@dataclass(frozen=True)
class NotifySettings:
    """NOTIFYCMD, NOTIFYMSG and NOTIFYFLAG as read from upsmon.conf.

    ``messages`` and ``flags`` hold only the overrides, as ``(TYPE, value)`` pairs with
    upper-case type names; a type not listed keeps upsmon's default.
    """

    command: ShellLine | None = None
    messages: tuple[tuple[str, str], ...] = ()
    flags: tuple[tuple[str, frozenset[str]], ...] = ()

    def text_for(self, ntype: str) -> str:
        """The (unformatted) text for ``ntype``: the NOTIFYMSG override or the stock text."""
        return dict(self.messages).get(ntype, NOTIFY_TYPES[ntype].text)

    def flags_for(self, ntype: str) -> frozenset[str]:
        """The flags for ``ntype``: the NOTIFYFLAG override or the default."""
        return dict(self.flags).get(ntype, NOTIFY_TYPES[ntype].flags)


_CONVERSION = re.compile(r"%(.)", re.DOTALL)


def message_problem(text: str) -> str | None:
    """Why ``text`` is not safe as a NOTIFYMSG (None when it is).

    upsmon hands the text to ``snprintf`` as the format with the system name as the only
    argument, so ``%s`` (once) and ``%%`` are the only conversions that make sense; any
    other one reads memory that is not there.
    """
    seen = 0
    for match in _CONVERSION.finditer(text + "\0" if _odd_tail(text) else text):
        if match.group(1) == "s":
            seen += 1
            if seen > 1:
                return "more than one %s (upsmon passes only the UPS name); write %% for a %"
        elif match.group(1) == "\0":
            return "a lone % at the end; write %% for a %"
        elif match.group(1) != "%":
            return (f"%{match.group(1)} is not allowed: the text is a printf format with the "
                    "UPS name as its only argument, so use %s for it and %% for a %")
    return None


def _odd_tail(text: str) -> bool:
    """Whether ``text`` ends in an odd number of ``%`` (a conversion cut off)."""
    return (len(text) - len(text.rstrip("%"))) % 2 == 1


def format_message(text: str, system: str | None) -> str:
    """``snprintf(buf, 512, text, system or "")``, for a text :func:`message_problem` accepts."""
    name = system or ""
    out = _CONVERSION.sub(lambda m: name if m.group(1) == "s" else "%", text)
    return out[:MAX_MESSAGE]


@dataclass(frozen=True)
class LogNotice:
    """Log ``message`` as upsmon's syslog NOTICE would."""

    ntype: str
    message: str


@dataclass(frozen=True)
class RunCommand:
    """Run ``argv`` with ``env`` added to the agent's environment."""

    what: str  # "WALL" or "EXEC"
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = field(default=())


Action = LogNotice | RunCommand


def plan(settings: NotifySettings, ntype: str, system: str | None) -> tuple[Action, ...]:
    """What upsmon 2.8.0 sends for notification ``ntype`` about UPS ``system``."""
    if ntype not in NOTIFY_TYPES:
        raise ValueError(f"unknown notification type {ntype!r}")
    flags = settings.flags_for(ntype)
    if "IGNORE" in flags:
        return ()
    message = format_message(settings.text_for(ntype), system)
    actions: list[Action] = []
    if "SYSLOG" in flags:
        actions.append(LogNotice(ntype, message))
    if "WALL" in flags:
        actions.append(RunCommand("WALL", ("/bin/sh", "-c", WALL_SCRIPT, "upsagent", message)))
    if "EXEC" in flags and settings.command is not None:
        actions.append(RunCommand("EXEC", settings.command.argv(message),
                                  env=(("NOTIFYTYPE", ntype), ("UPSNAME", system or ""))))
    return tuple(actions)
