# -*- test-case-name: tests.test_config -*-
"""NUT's own configuration files (``ups.conf``, ``upsd.conf``, ``upsd.users``), read as
NUT 2.8.0 reads them, into the same :class:`~upsagent.config.schema.Config` as upsagent.toml.

Every file goes through NUT's parseconf tokenizer (:func:`upsagent.nut.tokenizer.tokenize_text`),
so quoting, ``\\`` escapes, ``#`` comments and ``=`` as a word of its own behave exactly as in
NUT.  Then, per file (the C source each rule comes from in brackets):

ups.conf [common/upsconf.c, drivers/main.c, server/conf.c]
  ``[name]`` opens a UPS section (the first word starts with ``[`` and ends with ``]``; a
  section that appears again is merged into the first, later values winning, as the drivers
  do).  ``key = value`` sets an option (only the first value word counts), a lone word is a
  flag (``ignorelb``), any other line is ignored by NUT -- we ignore it with a warning.
  ``driver`` and ``desc`` go to their own fields; every other option, ``port`` included, is
  kept in ``options`` in file order.  As with upsd, a section without ``driver`` is skipped
  and one without ``port`` is served as "driver not connected" (its driver cannot start),
  each with a warning; a second section whose name differs only in case is skipped
  too.  Global options before the first section: ``pollinterval`` is the default for every
  UPS (it is copied into the options of each UPS that does not set its own, as NUT's drivers
  publish it anyway); the upsdrvctl and process options (``maxretry``, ``retrydelay``,
  ``user``, ...) are ignored with a note.
upsd.conf [server/conf.c]
  Directives are case-sensitive (except ``DEBUG_MIN``).  ``LISTEN addr [port]`` repeats (none
  at all means 127.0.0.1 and ::1), ``MAXAGE``, ``MAXCONN``, ``TRACKINGDELAY`` take whole
  numbers, ``ALLOW_NO_DEVICE`` and ``DISABLE_WEAK_SSL`` booleans, ``CERTFILE`` a PEM holding
  certificate and key, ``STATEPATH`` the directory of NUT's driver sockets (for the UPSes
  served from NUT's own drivers; copied into every UPS).  ``DATAPATH`` and ``DEBUG_MIN``
  are accepted and ignored,
  NSS's ``CERTPATH``/``CERTIDENT``/``CERTREQUEST`` accepted with a warning (upsagent uses
  CERTFILE), ``ACCEPT``/``REJECT``/``ACL`` warned about and ignored, as upsd does.  upsd only
  logs an unknown directive or a bad value; we refuse them, naming file, line, key and reason.
  A missing upsd.conf means the defaults (upsd 2.8.0 itself would refuse to start; warned).
upsd.users [server/user.c]
  ``[name]`` opens a user; ``key = value [value ...]`` (each value counts), ``upsmon primary``
  and the compressed ``key=value`` form; keys are case-insensitive: ``password`` (the first
  one wins), ``actions``, ``instcmds`` (stored lower-case: upsd compares them
  case-insensitively), ``upsmon primary|master`` (adds login, master, fsd) or
  ``secondary|slave`` (adds login); ``allowfrom`` and unknown keys are ignored with a warning,
  as are lines before the first section.  A user defined twice: upsd keeps the first one; it
  would also add the second section's actions to the user *before* it (a 2.8.0 bug that hands
  out rights) -- we ignore the whole second section instead and warn.  The file must not be
  readable by others (``mode & 0o004``): upsd merely warns, we refuse.  Group-readable is
  fine: Debian ships /etc/nut ``root:nut`` with the files ``0640`` so that upsd, running as
  ``nut``, can read them.

A parse error (``#`` inside quotes) is an error here too, while upsd logs it and goes on.  A
driver name upsagent does not know is a warning: that UPS is read from NUT's own driver
through its socket, as upsd reads it (``serve`` is ``auto``; ``--nut-drivers`` makes it
``nut-driver`` for every UPS); in upsagent.toml an unknown name is an error.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from typing import Any, Iterator

from upsagent.config.schema import (
    DEFAULT_PORT, Config, ConfigError, ListenAddress, MasterConfig, UpsConfig, UserConfig)
from upsagent.config.validate import (
    KNOWN_ACTIONS, readable_problem, show, suggest, validate_master)
from upsagent.nut.tokenizer import ParseError, tokenize_text

__all__ = ["DEFAULT_NUT_DIR", "load_nut_dir"]

DEFAULT_NUT_DIR = "/etc/nut"

_WHOLE = re.compile(r"[0-9]+")
_TRUE = frozenset({"true", "on", "yes", "1"})
_FALSE = frozenset({"false", "off", "no", "0"})

_DIRECTIVES = ("LISTEN", "MAXAGE", "MAXCONN", "TRACKINGDELAY", "ALLOW_NO_DEVICE", "STATEPATH",
               "DATAPATH", "CERTFILE", "CERTPATH", "CERTIDENT", "CERTREQUEST",
               "DISABLE_WEAK_SSL", "DEBUG_MIN", "ACCEPT", "REJECT", "ACL")
#: canonical MasterConfig key -> upsd.conf directive, for messages
_DIRECTIVE_OF = {"listen": "LISTEN", "maxage": "MAXAGE", "maxconn": "MAXCONN",
                 "tracking_delay": "TRACKINGDELAY", "allow_no_device": "ALLOW_NO_DEVICE",
                 "certfile": "CERTFILE", "disable_weak_ssl": "DISABLE_WEAK_SSL",
                 "statepath": "STATEPATH"}
_KEY_OF = {directive: key for key, directive in _DIRECTIVE_OF.items()}

_GLOBAL_NOTES = {
    **dict.fromkeys(("maxretry", "retrydelay", "maxstartdelay", "nowait", "driverpath"),
                    "upsdrvctl's setting for starting driver programs; upsagent runs its "
                    "own drivers in-process and retries them itself, and NUT's drivers are "
                    "started by NUT"),
    **dict.fromkeys(("user", "group", "chroot"),
                    "upsagent runs as the user and in the root its service sets"),
    "synchronous": "concerns a driver's socket to upsd, which upsagent does not have",
    "debug_min": "upsagent's log level is not set in ups.conf",
}


@dataclass
class _Draft:
    """A UPS or user section as read so far."""

    name: str
    line: int
    lines: dict[str, int] = field(default_factory=dict)
    driver: str | None = None
    desc: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    password: str | None = None
    actions: list[str] = field(default_factory=list)
    instcmds: list[str] = field(default_factory=list)


class _Places:
    """The locator handed to :func:`validate_master`: where each setting was read."""

    def __init__(self, confdir: str) -> None:
        self.files = {"master": os.path.join(confdir, "upsd.conf"),
                      "ups": os.path.join(confdir, "ups.conf"),
                      "user": os.path.join(confdir, "upsd.users")}
        self.master: dict[str, int] = {}
        self.drafts: dict[str, list[_Draft]] = {"ups": [], "user": []}

    def __call__(self, section: str, index: int | None, key: str | None) -> str:
        path = self.files[section]
        if section == "master":
            word = _DIRECTIVE_OF.get(key or "", key or "")
            line = self.master.get(key or "")
            return f"{path}:{line}: {word}" if line else f"{path}: {word}"
        if index is None:
            return path
        draft = self.drafts[section][index]
        key = key.removeprefix("options.") if key else None
        if key in (None, "name"):
            return f"{path}:{draft.line}: [{draft.name}]"
        return f"{path}:{draft.lines.get(key or '', draft.line)}: [{draft.name}] {key}"


def load_nut_dir(path: str | os.PathLike[str] = DEFAULT_NUT_DIR) -> Config:
    """Read ``ups.conf``, ``upsd.conf`` and ``upsd.users`` from ``path`` as upsd 2.8.0 does.

    Raises :class:`ConfigError` naming file, line, key and reason; what upsd accepts with a
    log message ends up in ``Config.warnings``.
    """
    confdir = os.path.abspath(os.fspath(path))
    if not os.path.isdir(confdir):
        raise ConfigError(f"{confdir}: not a directory (expected NUT's configuration directory)")
    reader = _Reader(confdir)
    master = reader.read()
    reader.warnings += validate_master(master, reader.places, strict_drivers=False)
    return Config(master=master, source=confdir, warnings=tuple(reader.warnings))


def _read(path: str, required: bool) -> tuple[bytes, int] | None:
    """The file's bytes and mode; None if it is missing and not ``required``."""
    try:
        with open(path, "rb") as handle:
            return handle.read(), os.fstat(handle.fileno()).st_mode
    except FileNotFoundError:
        if required:
            raise ConfigError(f"{path}: no such file") from None
        return None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror}") from None


def _lines(path: str, data: bytes) -> Iterator[tuple[int, list[str]]]:
    """Tokenized lines; a parse error is a :class:`ConfigError` naming the line's key."""
    for lineno, item in tokenize_text(data):
        if isinstance(item, ParseError):
            raw = data.split(b"\n")[lineno - 1].decode("ascii", "replace").split()
            key = raw[0].split("=")[0] if raw else "?"
            raise ConfigError(f"{path}:{lineno}: {key}: parse error: {item.message} "
                              "(write \\# for a # inside quotes)")
        yield lineno, item


def _whole(value: str, where: str) -> int:
    """Digits only (upsd takes ``atoi`` of anything starting with a digit; we are strict)."""
    if not _WHOLE.fullmatch(value):
        raise ConfigError(f"{where}: {show(value)} is not a whole number")
    return int(value)


def _boolean(value: str, where: str, digits: bool = False) -> bool:
    """upsd's parse_boolean; ALLOW_NO_DEVICE also takes any number (non-zero is true)."""
    if digits and _WHOLE.fullmatch(value):
        return int(value) != 0
    if value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise ConfigError(f"{where}: {show(value)} is not a boolean (true/false, yes/no, on/off, 1/0)")


def _port(value: str, where: str) -> int:
    """A LISTEN port: 1-65535 (upsd would also look up service names; we do not)."""
    if not _WHOLE.fullmatch(value) or not 1 <= int(value) <= 65535:
        raise ConfigError(f"{where}: port {show(value)} is not a port number (1-65535)")
    return int(value)


def _is_section(word: str) -> bool:
    """``[name]``: the test upsconf.c and user.c apply to a line's first word."""
    return len(word) >= 2 and word[0] == "[" and word[-1] == "]"


class _Reader:
    """One pass over the three files, collecting warnings and where things were."""

    def __init__(self, confdir: str) -> None:
        self.confdir = confdir
        self.places = _Places(confdir)
        self.warnings: list[str] = []

    def warn(self, path: str, line: int, message: str) -> None:
        self.warnings.append(f"{path}:{line}: {message}")

    def read(self) -> MasterConfig:
        settings = self._upsd_conf()
        upses = self._ups_conf()
        users = self._upsd_users()
        if settings.get("statepath") is not None:
            upses = tuple(replace(ups, statepath=settings["statepath"]) for ups in upses)
        return replace(MasterConfig(ups=upses, users=users), **settings)

    # -- upsd.conf -------------------------------------------------------------------

    def _upsd_conf(self) -> dict[str, Any]:
        path = self.places.files["master"]
        got = _read(path, required=False)
        if got is None:
            self.warnings.append(f"{path}: missing; using the defaults (upsd 2.8.0 would "
                                 "refuse to start without it)")
            return {}
        settings: dict[str, Any] = {}
        listen: list[ListenAddress] = []
        for line, words in _lines(path, got[0]):
            word, args = words[0], words[1:]
            directive = "DEBUG_MIN" if word.upper() == "DEBUG_MIN" else word
            where = f"{path}:{line}: {word}"
            if directive not in _DIRECTIVES:
                raise ConfigError(f"{where}: unknown directive{suggest(word, _DIRECTIVES)}")
            if directive in ("ACCEPT", "REJECT", "ACL"):
                self.warn(path, line, f"{word} is no longer supported by upsd (switch to "
                                      "LISTEN and a firewall); ignored")
                continue
            need, most = {"CERTIDENT": (2, 2), "LISTEN": (1, 2)}.get(directive, (1, 1))
            if len(args) < need:
                raise ConfigError(f"{where}: needs {'two values' if need == 2 else 'a value'}")
            if len(args) > most:
                self.warn(path, line, f"{word}: extra words {' '.join(args[most:])!r} ignored, "
                                      "as upsd does")
            value = args[0]
            key = _KEY_OF.get(directive)
            if key is not None:
                self.places.master.setdefault(key, line)
            if directive == "LISTEN":
                port = _port(args[1], where) if len(args) > 1 else DEFAULT_PORT
                address = ListenAddress(value, port)
                if address in listen:
                    self.warn(path, line, f"LISTEN {value} {port} given twice; ignored")
                else:
                    listen.append(address)
            elif directive in ("MAXAGE", "MAXCONN", "TRACKINGDELAY"):
                settings[key or ""] = _whole(value, where)
            elif directive == "ALLOW_NO_DEVICE":
                settings["allow_no_device"] = _boolean(value, where, digits=True)
            elif directive == "DISABLE_WEAK_SSL":
                settings["disable_weak_ssl"] = _boolean(value, where)
            elif directive == "CERTFILE":
                settings["certfile"] = value
            elif directive in ("CERTPATH", "CERTIDENT", "CERTREQUEST"):
                if directive == "CERTREQUEST":
                    _whole(value, where)
                self.warn(path, line, f"{word} belongs to NSS builds of upsd; upsagent uses "
                          "CERTFILE, one PEM file holding certificate and key (export them "
                          "with pk12util, convert with openssl pkcs12 -nodes); ignored")
            elif directive == "DEBUG_MIN" and not _WHOLE.fullmatch(value):
                self.warn(path, line, f"{word}: {show(value)} is not a whole number; ignored")
            elif directive == "STATEPATH":
                settings["statepath"] = value
            else:  # DATAPATH, DEBUG_MIN
                self.warn(path, line, f"{word} is not used by upsagent (its drivers run "
                          "in-process and it logs as its command line says); ignored")
        if listen:
            settings["listen"] = tuple(listen)
        return settings

    # -- ups.conf --------------------------------------------------------------------

    def _ups_conf(self) -> tuple[UpsConfig, ...]:
        path = self.places.files["ups"]
        got = _read(path, required=True)
        assert got is not None
        drafts: dict[str, _Draft] = {}
        current: _Draft | None = None
        pollinterval: tuple[str, int] | None = None
        for line, words in _lines(path, got[0]):
            if _is_section(words[0]):
                name = words[0][1:-1]
                self._extra(path, line, words, 1)
                if name in drafts:
                    self.warn(path, line, f"[{name}] appears again; its settings are merged "
                                          f"into the section of line {drafts[name].line}, "
                                          "as NUT does")
                current = drafts.setdefault(name, _Draft(name, line))
                continue
            if len(words) == 1:
                self._ups_flag(path, line, current, words[0])
                continue
            if len(words) < 3 or words[1] != "=":
                self.warn(path, line, f"{' '.join(words)!r} ignored, as NUT ignores it "
                                      "(expected 'key = value' or a single flag word)")
                continue
            key, value = words[0], words[2]
            self._extra(path, line, words, 3)
            where = f"{path}:{line}: {key}"
            if current is None:
                if key == "pollinterval":
                    pollinterval = (value, line)
                    _positive(value, where)
                else:
                    note = _GLOBAL_NOTES.get(key, "not a global option upsagent knows")
                    self.warn(path, line, f"global option {key} ignored: {note}")
                continue
            where = f"{path}:{line}: [{current.name}] {key}"
            if key == "pollinterval":
                _positive(value, where)
            if key in current.lines:
                self.warn(path, line, f"[{current.name}] {key} set again; the last value "
                                      "counts, as in NUT")
            current.lines[key] = line
            if key == "driver":
                current.driver = value
            elif key == "desc":
                current.desc = value
            else:
                current.options[key] = value
        upses: list[UpsConfig] = []
        seen: dict[str, str] = {}
        for draft in drafts.values():
            ups = self._ups(path, draft, pollinterval)
            if ups is None:
                continue
            if ups.name.lower() in seen:
                # upsd lists both, but finds names case-insensitively: the later one
                # could never be reached by a client
                self.warn(path, draft.line, f"[{ups.name}] ignored: the same name as "
                                            f"[{seen[ups.name.lower()]}] but for case")
                continue
            seen[ups.name.lower()] = ups.name
            upses.append(ups)
        return tuple(upses)

    def _ups_flag(self, path: str, line: int, current: _Draft | None, flag: str) -> None:
        if current is None:
            self.warn(path, line, f"global flag {flag} ignored: "
                                  f"{_GLOBAL_NOTES.get(flag, 'not a flag upsagent knows')}")
        elif flag in ("driver", "port", "desc"):
            raise ConfigError(f"{path}:{line}: [{current.name}] {flag}: needs a value "
                              f"({flag} = ...)")
        elif flag not in current.flags:
            current.lines.setdefault(flag, line)
            current.flags.append(flag)

    def _ups(self, path: str, draft: _Draft,
             pollinterval: tuple[str, int] | None) -> UpsConfig | None:
        """One ``[section]``; None (with a warning) for one upsd would skip."""
        if "driver" not in draft.lines:
            self.warn(path, draft.line, f"[{draft.name}] ignored: no driver (as upsd ignores "
                                        "it; e.g. driver = usbhid-ups)")
            return None
        self.places.drafts["ups"].append(draft)
        if "port" not in draft.lines:
            self.warn(path, draft.line, f"[{draft.name}]: no port, so its driver cannot start "
                                        "and the UPS is reported as not connected, as with "
                                        "NUT (e.g. port = auto)")
        if pollinterval is not None and "pollinterval" not in draft.options:
            draft.options["pollinterval"] = pollinterval[0]
            draft.lines["pollinterval"] = pollinterval[1]
        assert draft.driver is not None
        return UpsConfig(name=draft.name, driver=draft.driver, port=draft.options.get("port"),
                         desc=draft.desc, options=dict(draft.options), flags=tuple(draft.flags),
                         confdir=self.confdir)

    def _extra(self, path: str, line: int, words: list[str], used: int) -> None:
        if len(words) > used:
            self.warn(path, line, f"extra words {' '.join(words[used:])!r} ignored, as NUT "
                                  "ignores them")

    # -- upsd.users ------------------------------------------------------------------

    def _upsd_users(self) -> tuple[UserConfig, ...]:
        path = self.places.files["user"]
        got = _read(path, required=False)
        if got is None:
            self.warnings.append(f"{path}: missing; no user can log in (upsd 2.8.0 would "
                                 "refuse to start without it)")
            return ()
        data, mode = got
        if mode & 0o004:
            raise ConfigError(readable_problem(path, mode, 0o004, "640") +
                              "; group-readable (0640, root:nut as Debian ships it) is fine")
        users: dict[str, _Draft] = {}
        current: _Draft | None = None
        skipping = False
        for line, words in _lines(path, data):
            first = words[0]
            if first.lower() == "user":
                self.warn(path, line, "old-format 'user' line ignored, as upsd does")
            elif "=" in first:  # compressed form that survived the tokenizer (quoted)
                var, _, value = first.partition("=")
                self._user_values(path, line, current, skipping, var, [value] + words[1:])
            elif _is_section(first):
                name = first[1:-1]
                self._extra(path, line, words, 1)
                skipping = name in users
                if skipping:
                    above = (f"to user [{current.name}] above it" if current is not None
                             else "to no user")
                    self.warn(path, line, f"user [{name}] is defined again (first at line "
                              f"{users[name].line}); this section is ignored (upsd 2.8.0 "
                              f"would give its lines {above}, a NUT bug)")
                    current = None
                else:
                    current = users[name] = _Draft(name, line)
            elif first.lower() == "upsmon" and len(words) >= 2 and words[1] != "=":
                self._extra(path, line, words, 2)
                self._user_values(path, line, current, skipping, "upsmon", [words[1]])
            elif len(words) >= 3 and words[1] == "=":
                self._user_values(path, line, current, skipping, first, words[2:])
            else:
                self.warn(path, line, f"{' '.join(words)!r} ignored, as upsd ignores it "
                                      "(expected 'key = value')")
        drafts = list(users.values())
        self.places.drafts["user"] = drafts
        return tuple(UserConfig(d.name, d.password, frozenset(d.actions),
                                frozenset(d.instcmds)) for d in drafts)

    def _user_values(self, path: str, line: int, user: _Draft | None, skipping: bool,
                     var: str, values: list[str]) -> None:
        if user is None:
            if not skipping:
                self.warn(path, line, f"{var} outside any [user] section; ignored, as upsd "
                                      "does")
            return
        key = var.lower()
        user.lines.setdefault(key, line)
        for value in values:
            if key == "password":
                if user.password is None:
                    user.password = value
                else:
                    self.warn(path, line, f"[{user.name}] second password ignored; upsd "
                                          "keeps the first")
            elif key == "instcmds":
                if value.lower() not in user.instcmds:
                    user.instcmds.append(value.lower())
            elif key == "actions":
                if value.lower() in KNOWN_ACTIONS:
                    user.actions.append(value.lower())
                else:
                    self.warn(path, line, f"[{user.name}] actions: unknown action "
                              f"{show(value)} ignored (no command checks it)"
                              f"{suggest(value.upper(), [a.upper() for a in KNOWN_ACTIONS])}")
            elif key == "upsmon":
                role = value.lower()
                if role in ("primary", "master"):
                    user.actions += ["login", "master", "fsd"]
                elif role in ("secondary", "slave"):
                    user.actions.append("login")
                else:
                    self.warn(path, line, f"[{user.name}] upsmon: unknown type {show(value)} "
                              "ignored (primary, secondary, or the old master, slave)")
            elif key == "allowfrom":
                self.warn(path, line, f"[{user.name}] allowfrom is no longer used by upsd; "
                                      "ignored (use LISTEN and a firewall)")
                return
            else:
                self.warn(path, line, f"[{user.name}] unknown setting {var} ignored"
                          f"{suggest(key, ('password', 'actions', 'instcmds', 'upsmon'))}")
                return


def _positive(value: str, where: str) -> int:
    """pollinterval: NUT's drivers refuse anything but a number above 0."""
    number = _whole(value, where)
    if number < 1:
        raise ConfigError(f"{where}: must be at least 1")
    return number
