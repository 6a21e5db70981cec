# -*- test-case-name: tests.test_server -*-
"""The NUT protocol verbs: one dispatch table and one small handler per verb.

The table mirrors upsd's ``netcmds.h``: verb, handler, and whether USERNAME and PASSWORD
must have been sent first.  ``PROTVER`` is an alias of ``NETVER``; ``PRIMARY`` and
``MASTER`` do the same check with their own OK texts.

Error precedence is upsd 2.8.0's, verb by verb (NUT's ``server/netget.c``, ``netset.c``,
``netinstcmd.c``, ``netuser.c``; checked against the real upsd by ``tests/test_differential.py``):

* argument count first (after the user check of the table);
* UNKNOWN-UPS, then driver availability (DRIVER-NOT-CONNECTED / DATA-STALE) for commands
  that read data -- but not for LIST UPS, GET UPSDESC, LIST CLIENT, LOGIN, PRIMARY/MASTER,
  FSD and ``server.*`` variables;
* SET VAR: ACCESS-DENIED before VAR-NOT-SUPPORTED, READONLY, TOO-LONG, INVALID-VALUE;
* INSTCMD: CMD-NOT-SUPPORTED before ACCESS-DENIED;
* LOGIN: ALREADY-LOGGED-IN before UNKNOWN-UPS.

One verb is upsagent's own: ``WATCH`` (the push extension, :mod:`upsagent.nut.push`).

Names the client typed (UPS, variable, command) are echoed in its spelling; values are
quoted and escaped with :func:`~upsagent.nut.tokenizer.quote`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Literal

from upsagent.model import Availability, Variable
from upsagent.nut import push
from upsagent.nut.errors import Err
from upsagent.nut.state import NETVER, NUT_VERSION, SERVER_INFO, DriverRequest, Slot
from upsagent.nut.tokenizer import quote

if TYPE_CHECKING:
    from upsagent.nut.server import ServerSession

__all__ = ["COMMANDS"]

Handler = Callable[["ServerSession", list[str]], None]

HELP_TEXT = ("Commands: HELP VER GET LIST SET INSTCMD LOGIN LOGOUT USERNAME PASSWORD "
             "STARTTLS")


# -- shared checks -----------------------------------------------------------------------

def _slot(session: "ServerSession", name: str, *, available: bool = True) -> Slot | None:
    """Find a UPS, answering UNKNOWN-UPS (and the availability error) when it fails."""
    slot = session.state.find(name)
    if slot is None:
        session.error(Err.UNKNOWN_UPS)
        return None
    if available:
        availability = slot.ups.availability
        if availability is Availability.NOT_CONNECTED:
            session.error(Err.DRIVER_NOT_CONNECTED)
            return None
        if availability is Availability.STALE:
            session.error(Err.DATA_STALE)
            return None
    return slot


def _variable(session: "ServerSession", name: str, var: str) -> Variable | None:
    """Find a UPS's variable, answering UNKNOWN-UPS / availability / VAR-NOT-SUPPORTED."""
    slot = _slot(session, name)
    if slot is None:
        return None
    variable = slot.ups.get(var)
    if variable is None:
        session.error(Err.VAR_NOT_SUPPORTED)
    return variable


def _status_value(slot: Slot, value: str) -> str:
    return f"FSD {value}" if slot.fsd else value


# -- informational -----------------------------------------------------------------------

def _fixed(text: str) -> Handler:
    """A verb that takes no argument and answers one fixed line."""
    def handler(session: "ServerSession", args: list[str]) -> None:
        if args:
            session.error(Err.INVALID_ARGUMENT)
        else:
            session.reply(text)
    return handler


def _starttls(session: "ServerSession", args: list[str]) -> None:
    if session.tls:
        session.error(Err.ALREADY_SSL_MODE)
    elif not session.state.tls_available:
        session.error(Err.FEATURE_NOT_CONFIGURED)
    else:
        session.reply("OK STARTTLS")
        session.start_tls = True


# -- GET ---------------------------------------------------------------------------------

def _get(session: "ServerSession", args: list[str]) -> None:
    if not args:
        session.error(Err.INVALID_ARGUMENT)
        return
    sub = args[0].upper()
    if sub == "TRACKING":
        if len(args) < 2:
            session.reply("ON" if session.tracking else "OFF")
        elif session.tracking:
            session.reply(session.state.tracking.get(args[1]))
        else:
            session.error(Err.FEATURE_NOT_CONFIGURED)
        return
    if len(args) < 2:
        session.error(Err.INVALID_ARGUMENT)
        return
    if sub in _GET_ONE:
        _GET_ONE[sub](session, args[1])
        return
    if len(args) < 3 or sub not in _GET_TWO:
        session.error(Err.INVALID_ARGUMENT)
        return
    _GET_TWO[sub](session, args[1], args[2])


def _get_numlogins(session: "ServerSession", name: str) -> None:
    slot = _slot(session, name)
    if slot is not None:
        session.reply(f"NUMLOGINS {name} {slot.numlogins}")


def _get_upsdesc(session: "ServerSession", name: str) -> None:
    slot = _slot(session, name, available=False)
    if slot is not None:
        desc = "Unavailable" if slot.desc is None else slot.desc
        session.reply(f"UPSDESC {name} {quote(desc)}")


def _get_var(session: "ServerSession", name: str, var: str) -> None:
    if var[:7].lower() == "server.":
        low = var.lower()
        if low == "server.info":
            session.reply(f"VAR {name} server.info {quote(SERVER_INFO)}")
        elif low == "server.version":
            session.reply(f"VAR {name} server.version {quote(NUT_VERSION)}")
        else:
            session.error(Err.VAR_NOT_SUPPORTED)
        return
    slot = _slot(session, name)
    if slot is None:
        return
    value = slot.ups.value(var)
    if value is None:
        session.error(Err.VAR_NOT_SUPPORTED)
        return
    if var.lower() == "ups.status":
        value = _status_value(slot, value)
    line = f"VAR {name} {var} {quote(value)}"
    session.reply(line)
    session.remember_get(slot, line + "\n")


def _get_type(session: "ServerSession", name: str, var: str) -> None:
    variable = _variable(session, name, var)
    if variable is not None:
        session.reply(" ".join(["TYPE", name, var, *variable.type_words()]))


def _get_desc(session: "ServerSession", name: str, var: str) -> None:
    if _slot(session, name) is not None:
        session.reply(f'DESC {name} {var} "{session.state.descriptions.var(var)}"')


def _get_cmddesc(session: "ServerSession", name: str, cmd: str) -> None:
    if _slot(session, name) is not None:
        session.reply(f'CMDDESC {name} {cmd} "{session.state.descriptions.cmd(cmd)}"')


_GET_ONE: dict[str, Callable[["ServerSession", str], None]] = {
    "NUMLOGINS": _get_numlogins,
    "UPSDESC": _get_upsdesc,
}
_GET_TWO: dict[str, Callable[["ServerSession", str, str], None]] = {
    "VAR": _get_var,
    "TYPE": _get_type,
    "DESC": _get_desc,
    "CMDDESC": _get_cmddesc,
}


# -- LIST --------------------------------------------------------------------------------

def _list(session: "ServerSession", args: list[str]) -> None:
    if not args:
        session.error(Err.INVALID_ARGUMENT)
        return
    sub = args[0].upper()
    if sub == "UPS":
        _list_ups(session)
        return
    if len(args) < 2:
        session.error(Err.INVALID_ARGUMENT)
        return
    if sub in _LIST_ONE:
        _LIST_ONE[sub](session, args[1])
        return
    if len(args) < 3 or sub not in _LIST_TWO:
        session.error(Err.INVALID_ARGUMENT)
        return
    _LIST_TWO[sub](session, args[1], args[2])


def _block(session: "ServerSession", head: str, body: list[str]) -> None:
    session.reply_lines([f"BEGIN LIST {head}", *body, f"END LIST {head}"])


def _list_ups(session: "ServerSession") -> None:
    body = []
    for name, slot in session.state.listed_names():
        desc = "Description unavailable" if slot.desc is None else slot.desc
        body.append(f"UPS {name} {quote(desc)}")
    _block(session, "UPS", body)


def _list_var(session: "ServerSession", name: str) -> None:
    slot = _slot(session, name)
    if slot is None:
        return
    # Pollers (Home Assistant, exporters, upsmon-style scripts) ask for the same list over
    # and over: render it once per change of the data, per spelling of the UPS name.
    cached = slot.list_cache.get(name)
    if cached is not None and cached[0] == slot.ups.version and cached[1] == slot.fsd:
        session.reply(cached[2])
        return
    body = []
    for var in slot.ups.variables():
        value = var.value
        if slot.fsd and var.name.lower() == "ups.status":
            value = _status_value(slot, value)
        body.append(f"VAR {name} {var.name} {quote(value)}")
    text = "\n".join([f"BEGIN LIST VAR {name}", *body, f"END LIST VAR {name}"])
    if len(slot.list_cache) >= 16:  # bounded: a client could try every case variant
        slot.list_cache.clear()
    slot.list_cache[name] = (slot.ups.version, slot.fsd, text)
    session.reply(text)


def _list_rw(session: "ServerSession", name: str) -> None:
    slot = _slot(session, name)
    if slot is not None:
        body = [f"RW {name} {v.name} {quote(v.value)}"
                for v in slot.ups.variables() if v.writable]
        _block(session, f"RW {name}", body)


def _list_cmd(session: "ServerSession", name: str) -> None:
    slot = _slot(session, name)
    if slot is not None:
        _block(session, f"CMD {name}", [f"CMD {name} {cmd}" for cmd in slot.ups.commands()])


def _list_client(session: "ServerSession", name: str) -> None:
    slot = _slot(session, name, available=False)
    if slot is None:
        return
    # upsd prints the UPS's own name (ups.conf section), not the spelling used at LOGIN
    body = [f"CLIENT {slot.name} {other.address}"
            for other in session.state.sessions if other.login_slot is slot]
    _block(session, f"CLIENT {name}", body)


def _list_enum(session: "ServerSession", name: str, var: str) -> None:
    variable = _variable(session, name, var)
    if variable is not None:
        _block(session, f"ENUM {name} {var}",
               [f"ENUM {name} {var} {quote(value)}" for value in variable.enum])


def _list_range(session: "ServerSession", name: str, var: str) -> None:
    variable = _variable(session, name, var)
    if variable is not None:
        _block(session, f"RANGE {name} {var}",
               [f'RANGE {name} {var} "{low}" "{high}"'
                for low, high in variable.ranges])


_LIST_ONE: dict[str, Callable[["ServerSession", str], None]] = {
    "VAR": _list_var,
    "RW": _list_rw,
    "CMD": _list_cmd,
    "CLIENT": _list_client,
}
_LIST_TWO: dict[str, Callable[["ServerSession", str, str], None]] = {
    "ENUM": _list_enum,
    "RANGE": _list_range,
}


# -- session and rights --------------------------------------------------------------------

def _credential(attribute: str, already: Err) -> Handler:
    """USERNAME and PASSWORD: one argument, once per session, always ``OK`` (checked later,
    by the command that needs the right)."""
    def handler(session: "ServerSession", args: list[str]) -> None:
        if len(args) != 1:
            session.error(Err.INVALID_ARGUMENT)
        elif getattr(session, attribute) is not None:
            session.error(already)
        else:
            setattr(session, attribute, args[0])
            session.reply("OK")
    return handler


def _login(session: "ServerSession", args: list[str]) -> None:
    if len(args) != 1:
        session.error(Err.INVALID_ARGUMENT)
        return
    if session.login_slot is not None:
        session.error(Err.ALREADY_LOGGED_IN)
        return
    slot = _slot(session, args[0], available=False)
    if slot is None:
        return
    if not session.state.users.check_action(session.username, session.password, "login"):
        session.error(Err.ACCESS_DENIED)
        return
    session.log_in(slot, args[0])
    session.reply("OK")


def _logout(session: "ServerSession", args: list[str]) -> None:
    if args:
        session.error(Err.INVALID_ARGUMENT)
        return
    session.reply("OK Goodbye")
    session.log_out()


def _primary(granted: str) -> Handler:
    """PRIMARY and MASTER: the same rights check, each with its own OK text."""
    def handler(session: "ServerSession", args: list[str]) -> None:
        if len(args) != 1:
            session.error(Err.INVALID_ARGUMENT)
            return
        if _slot(session, args[0], available=False) is None:
            return
        users, user, password = session.state.users, session.username, session.password
        if not (users.check_action(user, password, "primary")
                or users.check_action(user, password, "master")):
            session.error(Err.ACCESS_DENIED)
            return
        session.reply(f"OK {granted}")
    return handler


def _fsd(session: "ServerSession", args: list[str]) -> None:
    if len(args) != 1:
        session.error(Err.INVALID_ARGUMENT)
        return
    slot = _slot(session, args[0], available=False)
    if slot is None:
        return
    if not session.state.users.check_action(session.username, session.password, "fsd"):
        session.error(Err.ACCESS_DENIED)
        return
    if slot.set_fsd():
        session.notices.append(
            f"Client {session.username}@{session.address} set FSD on UPS [{slot.name}]")
    session.reply("OK FSD-SET")


def _watch(session: "ServerSession", args: list[str]) -> None:
    """upsagent's push extension (see :mod:`upsagent.nut.push`); upsd has no such verb."""
    if len(args) != 1:
        session.error(Err.INVALID_ARGUMENT)
        return
    slot = _slot(session, args[0], available=False)
    if slot is None:
        return
    push.watch(session, slot, args[0])
    session.reply(f"OK WATCHING {args[0]}")


# -- SET and INSTCMD ---------------------------------------------------------------------

def _set(session: "ServerSession", args: list[str]) -> None:
    if len(args) < 2:
        session.error(Err.INVALID_ARGUMENT)
        return
    sub = args[0].upper()
    if sub == "VAR":
        if len(args) < 4:
            session.error(Err.INVALID_ARGUMENT)
        else:
            _set_var(session, args[1], args[2], args[3])
    elif sub == "TRACKING":
        mode = args[1].upper()
        if mode not in ("ON", "OFF"):
            session.error(Err.INVALID_ARGUMENT)
            return
        session.tracking = mode == "ON"
        session.reply("OK")
    else:
        session.error(Err.INVALID_ARGUMENT)


def _set_var(session: "ServerSession", name: str, var: str, value: str) -> None:
    slot = _slot(session, name)
    if slot is None:
        return
    if not session.state.users.check_action(session.username, session.password, "set"):
        session.error(Err.ACCESS_DENIED)
        return
    variable = slot.ups.get(var)
    if variable is None:
        session.error(Err.VAR_NOT_SUPPORTED)
        return
    if not variable.writable:
        session.error(Err.READONLY)
        return
    if variable.string_len is not None:
        if variable.string_len < 1:
            session.error(Err.SET_FAILED)
            return
        if variable.string_len < len(value):
            session.error(Err.TOO_LONG)
            return
    if variable.enum and value not in variable.enum:
        session.error(Err.INVALID_VALUE)
        return
    if variable.ranges:
        number = _atoi(value)
        if not any(low <= number <= high for low, high in variable.ranges):
            session.error(Err.INVALID_VALUE)
            return
    if slot.driver is None:
        session.error(Err.SET_FAILED)
        return
    session.notices.append(f"Set variable: {session.username}@{session.address} set "
                           f"{variable.name} on {slot.name} to {value}")
    _send(session, slot, Err.SET_FAILED, "set", variable.name, value)


def _instcmd(session: "ServerSession", args: list[str]) -> None:
    if len(args) < 2:
        session.error(Err.INVALID_ARGUMENT)
        return
    name, cmd = args[0], args[1]
    param = args[2] if len(args) == 3 else None  # upsd drops the parameter given 4+ words
    slot = _slot(session, name)
    if slot is None:
        return
    if not slot.ups.has_command(cmd):
        session.error(Err.CMD_NOT_SUPPORTED)
        return
    if not session.state.users.check_instcmd(session.username, session.password, cmd):
        session.error(Err.ACCESS_DENIED)
        return
    if slot.driver is None:
        session.error(Err.INSTCMD_FAILED)
        return
    session.notices.append(f"Instant command: {session.username}@{session.address} did "
                           f"{cmd}{'' if param is None else ' with value ' + param} "
                           f"on {slot.name}")
    _send(session, slot, Err.INSTCMD_FAILED, "instcmd", cmd, param)


def _send(session: "ServerSession", slot: Slot, failure: Err,
          kind: Literal["set", "instcmd"], name: str, value: str | None) -> None:
    """Hand a request to the slot's driver port: ``OK``, or ``OK TRACKING <id>`` with
    tracking on.

    ``OK`` means "handed to the driver", as in upsd; the driver's answer is kept for
    ``GET TRACKING`` (the shell calls ``tracking.finish``).  A driver that refuses the
    hand-over gets ``failure``.
    """
    port = slot.driver
    assert port is not None  # checked by the callers
    tracking = session.state.tracking
    ident = tracking.add() if session.tracking else None
    try:
        port.submit(DriverRequest(slot.name, kind, name, value, ident))
    except Exception as exc:  # a driver bug must not kill the session
        if ident is not None:
            tracking.forget(ident)
        session.notices.append(f"driver refused the request: {exc!r}")
        session.error(failure)
        return
    session.reply("OK" if ident is None else f"OK TRACKING {ident}")


def _atoi(text: str) -> int:
    """C's atoi: optional sign and leading digits, 0 when there are none."""
    text = text.lstrip(" \t\n\r\v\f")
    sign, digits = 1, ""
    if text[:1] in "+-" and text:
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    for ch in text:
        if not ch.isdigit():
            break
        digits += ch
    return sign * int(digits) if digits else 0


#: verb -> (handler, needs USERNAME and PASSWORD first); upsd's netcmds table
COMMANDS: dict[str, tuple[Handler, bool]] = {
    "VER": (_fixed(SERVER_INFO), False),
    "NETVER": (_fixed(NETVER), False),
    "PROTVER": (_fixed(NETVER), False),
    "HELP": (_fixed(HELP_TEXT), False),
    "STARTTLS": (_starttls, False),
    "GET": (_get, False),
    "LIST": (_list, False),
    "USERNAME": (_credential("username", Err.ALREADY_SET_USERNAME), False),
    "PASSWORD": (_credential("password", Err.ALREADY_SET_PASSWORD), False),
    "LOGIN": (_login, True),
    "LOGOUT": (_logout, False),
    "PRIMARY": (_primary("PRIMARY-GRANTED"), True),
    "MASTER": (_primary("MASTER-GRANTED"), True),
    "FSD": (_fsd, True),
    "SET": (_set, True),
    "INSTCMD": (_instcmd, True),
    # upsagent's extension; upsd answers ERR UNKNOWN-COMMAND (and HELP does not list it)
    "WATCH": (_watch, False),
}
