# -*- test-case-name: tests.test_config -*-
"""Validation shared by both configuration front ends.

The NUT reader (:mod:`upsagent.config.nutconf`) and the TOML reader
(:mod:`upsagent.config.native`) each turn their syntax into a :class:`MasterConfig`, then hand
it to :func:`validate_master` together with a *locator*: a function that names where a setting
came from (``/etc/nut/ups.conf:7: [myups] driver`` or ``upsagent.toml: ups[1].driver``).  So the
rules live here once and every message reads ``<where>: <reason>``.

The rules, and why:

* UPS names and aliases are unique *case-insensitively* (clients' names are matched that way),
  are not empty and hold only printable ASCII without white space or ``@ " \\ # = [ ]``:
  anything else no NUT client could name (``ups@host``, the tokenizer's quoting and comments).
* User names and passwords are printable ASCII: the protocol tokenizer drops every other byte,
  so a client could never send them.  Descriptions and option values may be any Unicode text
  but no control characters (a line feed would break the reply framing).
* A user without a password can never log in (upsd skips it): a warning, not an error, since
  upsd accepts such a file.  A password holding a space, ``#``, ``"``, ``\\`` or ``=`` is a
  warning for users with the ``login`` right, because upsmon sends it unquoted.
* Limits: ``maxconn``, ``maxage`` and ``idle_timeout`` at least 1, ``tracking_delay`` at least
  0, ``max_line_length`` at least 512 (NUT's own read size), ``max_send_buffer`` at least 1024;
  when set, ``max_conn_per_address`` from 1 to ``maxconn`` (more would mean no limit: likely
  a mistake) and ``reserved_monitor_slots`` from 0 to ``maxconn`` - 1 (all of them would leave
  no slot for a client that does not log in, such as upsc);
  ``keyfile`` needs ``certfile``; no UPS at all is an error unless ``allow_no_device`` (upsd
  refuses to start then too).
* Low-battery thresholds: ``lowbatt_charge`` above 0 and at most 100 (percent),
  ``lowbatt_runtime`` at least 1 (seconds); 0 would never trigger, so it is refused as a
  likely mistake rather than silently doing nothing.
* ``[master.shutdown]``: ``minsupplies``, ``deadtime``, ``hostsync`` and ``on_battery_for`` at
  least 1, ``finaldelay`` at least 0; ``ups`` names served UPSes (or aliases), each once;
  ``minsupplies`` cannot exceed the number of those UPSes (the host would shut down at
  once); the shutdown command's program is an absolute path (a shutdown must not depend on
  ``$PATH``).  Enabled without ``powerdown_flag`` is a warning: the host goes down but the
  UPS output is never switched off.
* Who serves the UPS (``serve``, one of ``auto``, ``upsagent``, ``nut-driver``).  With
  ``nut-driver`` any driver name NUT could have will do (no ``/``: it names the socket).
  Otherwise the driver name must be one upsagent knows (:func:`driver_known`, asking
  drivers/registry.py): an error in upsagent.toml (a typo; ``serve = "nut-driver"`` says it
  is NUT's), a warning for NUT's files (with ``auto`` NUT's own driver is read through its
  socket, as upsd does).  A known driver this version cannot run yet
  (:func:`driver_unavailable`) is a warning in both, saying whether NUT's driver socket
  stands in (``auto``) or the UPS stays not connected (``upsagent``).
"""

from __future__ import annotations

import importlib
import re
from types import ModuleType
from typing import Callable, Iterable

from upsagent.config.schema import (
    SERVE_CHOICES, ConfigError, MasterConfig, UpsConfig, UserConfig)

__all__ = [
    "KNOWN_ACTIONS",
    "Locator",
    "control_problem",
    "driver_known",
    "driver_names",
    "driver_unavailable",
    "password_problem",
    "readable_problem",
    "show",
    "suggest",
    "ups_name_problem",
    "user_name_problem",
    "validate_master",
]

#: section ("master", "ups" or "user"), index into ``ups``/``users`` (None for master or the
#: whole list), canonical key (None for the item itself) -> "where" text for a message
Locator = Callable[[str, int | None, str | None], str]

#: the action names upsd checks (``primary`` is the 2.8 alias of ``master``)
KNOWN_ACTIONS = frozenset({"set", "fsd", "login", "master", "primary"})

_UPS_NAME_BAD = re.compile(r'[^\x21-\x7e]|[@"\\#=\[\]]')
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_UPSMON_UNSAFE = re.compile(r'[ #"\\=]')

_MINIMUMS: tuple[tuple[str, int], ...] = (
    ("maxconn", 1), ("maxage", 1), ("tracking_delay", 0), ("idle_timeout", 1),
    ("max_line_length", 512), ("max_send_buffer", 1024))


def show(value: str) -> str:
    """Quote a value for a message: ``"..."`` with ``"`` and ``\\`` escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def suggest(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean "x"?)`` for the closest choice, or the empty string."""
    choices = list(choices)
    folded = {choice.lower(): choice for choice in choices}
    if word.lower() in folded:
        return f" (did you mean {show(folded[word.lower()])}? names are case-sensitive)"
    import difflib          # only on an error: a running agent never needs it
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {show(close[0])}?)" if close else ""


def control_problem(value: str) -> str | None:
    """Why a text value cannot be served (it holds a control character), or None."""
    match = _CONTROL.search(value)
    if match:
        return f"{show(value)} holds the control character U+{ord(match.group()):04X}"
    return None


def ups_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a UPS name or alias, or None."""
    if not name:
        return "a UPS name cannot be empty"
    match = _UPS_NAME_BAD.search(name)
    if match:
        return (f"{show(name)} holds {show(match.group())}; a UPS name is printable ASCII "
                'without spaces or @ " \\ # = [ ], or NUT clients could not name it')
    return None


def user_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a user name, or None."""
    if not name:
        return "a user name cannot be empty"
    if not _PRINTABLE_ASCII.fullmatch(name):
        return (f"{show(name)} is not printable ASCII; the NUT protocol drops other "
                "characters, so no client could send this name")
    return None


def password_problem(password: str) -> str | None:
    """Why ``password`` can never be sent by a client, or None."""
    if not _PRINTABLE_ASCII.fullmatch(password):
        return ("holds characters outside printable ASCII; the NUT protocol drops them, "
                "so no client could log in with this password")
    return None


def readable_problem(path: str, mode: int, mask: int, fix: str,
                     holds: str = "the passwords it holds") -> str:
    """The message refusing a file with secrets (``holds``) that ``mask`` says is readable
    by too many."""
    who = "every local user" if mask == 0o004 else "users other than its owner"
    return (f"{path}: mode {mode & 0o7777:04o} lets {who} read {holds}; "
            f"run \"chmod {fix} {path}\" (and check its owner)")


#: how the driver registry is imported (a seam for the tests)
_import_module = importlib.import_module


def _registry() -> ModuleType | None:
    """drivers/registry.py, imported only when a configuration is checked."""
    try:
        return _import_module("upsagent.drivers.registry")
    except ModuleNotFoundError as exc:
        if exc.name == "upsagent.drivers.registry":  # a build without it: skip the checks
            return None
        raise


def driver_known(name: str) -> bool | None:
    """Whether upsagent knows a driver called ``name``; None when that cannot be told."""
    registry = _registry()
    check: Callable[[str], object] | None = getattr(registry, "known_driver", None)
    return None if check is None else bool(check(name))


def driver_unavailable(name: str) -> str | None:
    """Why the known driver ``name`` cannot serve a UPS in this version, or None."""
    registry = _registry()
    available: Callable[[str], object] | None = getattr(registry, "available", None)
    describe: Callable[[str], object] | None = getattr(registry, "describe", None)
    if available is None or describe is None or available(name):
        return None
    return str(describe(name))


def driver_names() -> list[str]:
    """The driver names the registry lists (for "did you mean")."""
    return sorted(getattr(_registry(), "DRIVERS", ()))


def _fail(where: str, reason: str) -> ConfigError:
    return ConfigError(f"{where}: {reason}")


def validate_master(master: MasterConfig, where: Locator, *,
                    strict_drivers: bool = True) -> list[str]:
    """Check everything both front ends share; raise :class:`ConfigError`, return warnings.

    With ``strict_drivers`` an unknown driver name is an error (a typo in upsagent.toml);
    without, a warning (NUT's files: upsd too serves such a UPS, as not connected).
    """
    warnings: list[str] = []
    for key, minimum in _MINIMUMS:
        value = getattr(master, key)
        if value < minimum:
            raise _fail(where("master", None, key), f"{value} is below the minimum of {minimum}")
    per_address, reserved = master.max_conn_per_address, master.reserved_monitor_slots
    if per_address is not None and not 1 <= per_address <= master.maxconn:
        raise _fail(where("master", None, "max_conn_per_address"),
                    f"{per_address} is below the minimum of 1" if per_address < 1 else
                    f"{per_address} is more than maxconn ({master.maxconn}), so it would "
                    "limit nothing")
    if reserved is not None and not 0 <= reserved < master.maxconn:
        raise _fail(where("master", None, "reserved_monitor_slots"),
                    f"{reserved} is below the minimum of 0" if reserved < 0 else
                    f"{reserved} is not below maxconn ({master.maxconn}): no slot would be "
                    "left for clients that do not log in")
    if master.keyfile is not None and master.certfile is None:
        raise _fail(where("master", None, "keyfile"), "a keyfile needs a certfile")
    if not master.ups and not master.allow_no_device:
        raise _fail(where("ups", None, None),
                    "no UPS is defined (set allow_no_device to start without one, "
                    "as upsd's ALLOW_NO_DEVICE)")
    warnings += _check_ups(master.ups, where, strict_drivers)
    warnings += _check_users(master.users, where)
    warnings += _check_shutdown(master, where)
    return warnings


def _check_shutdown(master: MasterConfig, where: Locator) -> list[str]:
    shutdown = master.shutdown
    for key, minimum in (("minsupplies", 1), ("deadtime", 1), ("hostsync", 1),
                         ("finaldelay", 0), ("on_battery_for", 1)):
        value = getattr(shutdown, key)
        if value is not None and value < minimum:
            raise _fail(where("master", None, f"shutdown.{key}"),
                        f"{value} is below the minimum of {minimum}")
    served = {name.lower(): ups.name for ups in master.ups
              for name in (ups.name, *ups.aliases)}
    seen: set[str] = set()
    for name in shutdown.ups:
        if name.lower() not in served:
            raise _fail(where("master", None, "shutdown.ups"),
                        f"{show(name)} is not a served UPS"
                        f"{suggest(name, [u.name for u in master.ups])}")
        if served[name.lower()] in seen:
            raise _fail(where("master", None, "shutdown.ups"),
                        f"{show(name)} is listed twice (as a name or an alias)")
        seen.add(served[name.lower()])
    supplies = len(shutdown.ups) if shutdown.ups else len(master.ups)
    if shutdown.enabled and shutdown.minsupplies > supplies:
        raise _fail(where("master", None, "shutdown.minsupplies"),
                    f"{shutdown.minsupplies} is more than the {supplies} UPS powering this "
                    "host: it would shut down at once")
    program = shutdown.shutdown_command[0] if shutdown.shutdown_command else ""
    if not program.startswith("/"):
        raise _fail(where("master", None, "shutdown.shutdown_command"),
                    f"{show(program)}: give the program as an absolute path "
                    "(such as /sbin/shutdown)")
    for arg in shutdown.shutdown_command:
        problem = control_problem(arg)
        if problem:
            raise _fail(where("master", None, "shutdown.shutdown_command"), problem)
    if shutdown.enabled and master.powerdown_flag is None:
        return [f"{where('master', None, 'powerdown_flag')}: not set, so the shutdown "
                "sequence will not ask for the UPS output to be switched off (upsagent "
                "killpower); the hosts will not restart by themselves when power returns"]
    return []


def _check_ups(upses: Iterable[UpsConfig], where: Locator, strict_drivers: bool) -> list[str]:
    warnings: list[str] = []
    seen: dict[str, str] = {}
    for index, ups in enumerate(upses):
        for key, name in [("name", ups.name)] + [("aliases", a) for a in ups.aliases]:
            problem = ups_name_problem(name)
            if problem:
                raise _fail(where("ups", index, key), problem)
            if name.lower() in seen:
                raise _fail(where("ups", index, key),
                            f"{show(name)} is already the name of {seen[name.lower()]} "
                            "(names are compared case-insensitively, as NUT does)")
            seen[name.lower()] = f"UPS {show(ups.name)}" if key == "name" else \
                f"an alias of UPS {show(ups.name)}"
        if not ups.driver:
            raise _fail(where("ups", index, "driver"), "the driver name cannot be empty")
        if ups.lowbatt_charge is not None and not 0 < ups.lowbatt_charge <= 100:
            raise _fail(where("ups", index, "lowbatt_charge"),
                        f"{ups.lowbatt_charge:g} is not a percentage above 0 and at most 100")
        if ups.lowbatt_runtime is not None and ups.lowbatt_runtime < 1:
            raise _fail(where("ups", index, "lowbatt_runtime"),
                        f"{ups.lowbatt_runtime} is below the minimum of 1 (seconds)")
        warnings += _check_serving(ups, index, where, strict_drivers)
        texts: list[tuple[str, str]] = [("desc", ups.desc or ""), ("port", ups.port or "")]
        if ups.confdir is not None:
            texts.append(("confdir", ups.confdir))
        texts += [(f"options.{k}", k + v) for k, v in ups.options.items()]
        texts += [("flags", flag) for flag in ups.flags]
        for key, text in texts:
            problem = control_problem(text)
            if problem:
                raise _fail(where("ups", index, key), problem)
        for key in list(ups.options) + list(ups.flags):
            if not key or " " in key:
                raise _fail(where("ups", index, f"options.{key}"),
                            f"{show(key)} is not a usable option name")
    return warnings


def _check_serving(ups: UpsConfig, index: int, where: Locator,
                   strict_drivers: bool) -> list[str]:
    """Who can serve the UPS, by its ``serve`` setting and the driver name."""
    if ups.serve not in SERVE_CHOICES:
        raise _fail(where("ups", index, "serve"),
                    f"{show(ups.serve)} is not one of {', '.join(map(show, SERVE_CHOICES))}")
    nut = f"NUT's own {ups.driver} will be read through its socket (NUT's driver must run)"
    if ups.serve == "nut-driver":
        if "/" in ups.driver:
            raise _fail(where("ups", index, "driver"),
                        f"{show(ups.driver)}: a NUT driver's socket is named <driver>-<ups>, "
                        "so the driver name cannot hold /")
        return []
    known = driver_known(ups.driver)
    if known is False:
        problem = (f"upsagent has no driver called {show(ups.driver)}"
                   f"{suggest(ups.driver, driver_names())}")
        if strict_drivers:
            if ups.serve == "auto":
                problem += ' (or set serve = "nut-driver" to read NUT\'s own driver of that name)'
            raise _fail(where("ups", index, "driver"), problem)
        then = nut if ups.serve == "auto" and "/" not in ups.driver else \
            "the UPS will be reported as not connected"
        return [f"{where('ups', index, 'driver')}: {problem}; {then}"]
    if known:
        note = driver_unavailable(ups.driver)
        if note:
            then = nut if ups.serve == "auto" else "the UPS will be reported as not connected"
            return [f"{where('ups', index, 'driver')}: {note}; {then}"]
    return []


def _check_users(users: Iterable[UserConfig], where: Locator) -> list[str]:
    warnings: list[str] = []
    seen: set[str] = set()
    for index, user in enumerate(users):
        problem = user_name_problem(user.name)
        if problem:
            raise _fail(where("user", index, "name"), problem)
        if user.name in seen:
            raise _fail(where("user", index, "name"),
                        f"user {show(user.name)} is defined twice")
        seen.add(user.name)
        if user.password is None:
            warnings.append(f"{where('user', index, None)}: user {show(user.name)} has no "
                            "password and can never log in")
        else:
            problem = password_problem(user.password)
            if problem:
                raise _fail(where("user", index, "password"), problem)
            if "login" in user.actions and _UPSMON_UNSAFE.search(user.password):
                warnings.append(
                    f"{where('user', index, 'password')}: the password of {show(user.name)} "
                    "holds a space or one of # \" \\ =; NUT's upsmon sends it unquoted "
                    "and will fail to log in")
        for action in sorted(user.actions):
            if action not in KNOWN_ACTIONS:
                raise _fail(where("user", index, "actions"),
                            f"unknown action {show(action)}{suggest(action, KNOWN_ACTIONS)}")
        for cmd in sorted(user.instcmds):
            if not cmd or not _PRINTABLE_ASCII.fullmatch(cmd) or " " in cmd:
                raise _fail(where("user", index, "instcmds"),
                            f"{show(cmd)} is not an instant command name")
    return warnings
