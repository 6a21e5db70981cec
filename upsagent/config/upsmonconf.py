# -*- test-case-name: tests.test_upsmonconf -*-
"""NUT's ``upsmon.conf``, read as upsmon 2.8.0 reads it (``loadconfig``/``parse_conf_arg`` in
clients/upsmon.c), into frozen dataclasses.

The file goes through NUT's own tokenizer (:func:`upsagent.nut.tokenizer.tokenize_text`), so
quoting, ``\\`` escapes and ``#`` comments behave as in NUT.  Then, as upsmon does:

* Directive names are case-sensitive (``strcmp``), except ``DEBUG_MIN``.  Each directive uses
  its first values only; words after them are ignored (we warn).  Later lines override earlier
  ones, except MONITOR (one per UPS), NOTIFYMSG/NOTIFYFLAG (one per type) and CERTHOST (one
  per host; upsmon searches its list newest first, so the last line for a host wins).
* ``MONITOR <system> <powervalue> <user> <password> primary|secondary`` (``master`` and
  ``slave`` are the old spellings, matched case-insensitively).  ``<system>`` is
  ``ups[@host[:port]]``, split as libupsclient does (:func:`upsagent.transport.blocking.split_name`;
  no host means ``localhost``, no port 3493).  The pre-2.0 form without a user (four values)
  is fatal, as in upsmon.  A second MONITOR for the same system is ignored with a warning.
* ``NOTIFYMSG <type> "<text>"`` and ``NOTIFYFLAG <type> <flag>[+<flag>...]``: the type is
  matched case-insensitively, the flags (``SYSLOG``, ``WALL``, ``EXEC``, ``IGNORE``)
  case-sensitively; NOTIFYFLAG replaces the type's flags, and an unknown flag counts as
  nothing (upsmon warns and goes on, so ``NOTIFYFLAG ONBATT WAL`` silences ONBATT; we warn).
* ``SHUTDOWNCMD`` and ``NOTIFYCMD`` are shell lines (:class:`ShellLine`): upsmon runs them
  with ``system()``, so we run them with ``/bin/sh -c`` -- the operator's own line, never one
  we compose.
* Unknown directives (misspellings, and directives of newer NUT releases such as
  SHUTDOWNEXIT, OFFDURATION, OBLBDURATION) are ignored with a warning, as upsmon does.
* ``RUN_AS_USER`` and ``CERTIDENT`` are kept but not used (upsagent runs as the user its
  service sets; a client certificate from an NSS database is not supported): warnings.
* The sum of the power values must reach MINSUPPLIES ("insufficient power configured",
  fatal in upsmon); no SHUTDOWNCMD is a warning, as in upsmon, saying that the agent
  runs :data:`~upsagent.policy.plan.DEFAULT_SHUTDOWN_COMMAND` (upsmon would run nothing).

Where upsmon takes a value silently we are strict and refuse the file naming
``file:line: KEY: reason`` (:class:`~upsagent.config.schema.ConfigError`), because a wrong
value here decides when machines lose power:

* numbers are whole numbers (upsmon's ``atoi`` makes ``five`` a 0); POLLFREQ and
  POLLFREQALERT at least 1 (0 makes upsmon spin); CERTVERIFY, FORCESSL and CERTHOST's flags
  are 0 or 1;
* a MONITOR type other than primary/secondary/master/slave is an error (upsmon makes it a
  secondary), as is a bad power value (upsmon skips the UPS) or an unsplittable system;
* a known directive without its values is an error (upsmon calls it an invalid directive
  and drops it, which for MONITOR silently drops a UPS);
* a SHUTDOWNCMD or NOTIFYCMD of several unquoted words is an error: upsmon would run only the
  first word;
* NOTIFYMSG texts may use only ``%s`` (once) and ``%%`` (upsmon feeds them to printf);
* a NOTIFYMSG/NOTIFYFLAG for an unknown type, an unknown flag, a duplicate MONITOR stay
  warnings, as in upsmon;
* CERTVERIFY 1 without CERTPATH is an error (upsmon refuses to connect then);
* a parse error (``#`` inside quotes) is an error, where upsmon logs it and goes on;
* the file must not be readable by others: it holds passwords (upsmon does not check).
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator

from upsagent.config.schema import ConfigError
from upsagent.config.validate import readable_problem, show, suggest
from upsagent.nut.target import BadTarget, split_name
from upsagent.nut.tokenizer import ParseError, tokenize_text
from upsagent.config.notify import FLAGS, NOTIFY_TYPES, NotifySettings, message_problem
from upsagent.policy.plan import DEFAULT_SHUTDOWN_COMMAND
from upsagent.config.shellline import ShellLine

__all__ = ["DEFAULT_UPSMON_CONF", "CertHost", "Monitor", "ShellLine", "TlsConfig",
           "UpsmonConf", "load_upsmon_conf", "parse_upsmon_conf"]

DEFAULT_UPSMON_CONF = "/etc/nut/upsmon.conf"

_WHOLE = re.compile(r"[0-9]+")
#: directive -> (values needed, dataclass field) for the plain numbers
_NUMBERS = {"MINSUPPLIES": ("min_supplies", 0), "POLLFREQ": ("poll_freq", 1),
            "POLLFREQALERT": ("poll_freq_alert", 1), "DEADTIME": ("dead_time", 0),
            "HOSTSYNC": ("host_sync", 0), "FINALDELAY": ("final_delay", 0),
            "RBWARNTIME": ("rb_warn_time", 0), "NOCOMMWARNTIME": ("nocomm_warn_time", 0)}
#: values each directive needs (after its name)
_NEEDS = {**dict.fromkeys(_NUMBERS, 1), **dict.fromkeys(
    ("SHUTDOWNCMD", "POWERDOWNFLAG", "NOTIFYCMD", "RUN_AS_USER", "CERTPATH", "CERTVERIFY",
     "FORCESSL", "DEBUG_MIN"), 1), "NOTIFYMSG": 2, "NOTIFYFLAG": 2, "CERTIDENT": 2,
    "CERTHOST": 4, "MONITOR": 5}
_VALUE_HELP = {"MONITOR": "<system> <powervalue> <user> <password> primary|secondary",
               "NOTIFYMSG": "<type> \"<text>\"", "NOTIFYFLAG": "<type> <flag>[+<flag>...]",
               "CERTIDENT": "<certificate name> <database password>",
               "CERTHOST": "<hostname> <certificate name> <certverify> <forcessl>"}
_NEWER = ("SHUTDOWNEXIT", "OFFDURATION", "OBLBDURATION", "OVERDURATION",
          "POLLFAIL_LOG_THROTTLE_MAX", "ALARMCRITICAL")
_ROLES = {"primary": True, "master": True, "secondary": False, "slave": False}


@dataclass(frozen=True)
class Monitor:
    """One MONITOR line.  ``system`` is the name as written (``%s`` in notifications)."""

    system: str
    ups: str
    host: str
    port: int
    power_value: int
    user: str
    password: str = field(repr=False)
    primary: bool
    line: int = 0


@dataclass(frozen=True)
class CertHost:
    """``CERTHOST <hostname> <certificate name> <certverify> <forcessl>``: per-server TLS rules.

    upsagent checks that the server's certificate carries ``cert_name`` (NUT's NSS build
    compares it with the certificate's nickname).
    """

    host: str
    cert_name: str
    verify: bool
    force_ssl: bool


@dataclass(frozen=True)
class TlsConfig:
    """CERTPATH, CERTVERIFY, FORCESSL, CERTIDENT and CERTHOST.

    ``cert_path`` is a file or a directory of PEM CA certificates (NUT's OpenSSL build:
    a directory of CA certificates; its NSS build: a certificate database, which upsagent
    cannot read).
    """

    cert_path: str | None = None
    verify: bool = False
    force_ssl: bool = False
    cert_ident: tuple[str, str] | None = field(default=None, repr=False)
    hosts: tuple[CertHost, ...] = ()

    def for_host(self, host: str) -> CertHost | None:
        """The CERTHOST rule for ``host`` (exact, case-sensitive, as upsmon looks it up)."""
        for rule in self.hosts:
            if rule.host == host:
                return rule
        return None


@dataclass(frozen=True)
class UpsmonConf:
    """Everything upsmon.conf says, with upsmon 2.8.0's defaults."""

    path: str
    monitors: tuple[Monitor, ...] = ()
    min_supplies: int = 1
    poll_freq: int = 5
    poll_freq_alert: int = 5
    dead_time: int = 15
    host_sync: int = 15
    final_delay: int = 5
    rb_warn_time: int = 43200
    nocomm_warn_time: int = 300
    shutdown_cmd: ShellLine | None = None
    powerdown_flag: str | None = None
    notify: NotifySettings = NotifySettings()
    run_as_user: str | None = None
    tls: TlsConfig = TlsConfig()
    debug_min: int | None = None
    warnings: tuple[str, ...] = ()

    @property
    def total_power(self) -> int:
        """The sum of the MONITOR power values (upsmon's ``totalpv``)."""
        return sum(m.power_value for m in self.monitors)


def load_upsmon_conf(path: str | os.PathLike[str] = DEFAULT_UPSMON_CONF) -> UpsmonConf:
    """Read ``upsmon.conf`` at ``path``; raises :class:`ConfigError`."""
    where = os.fspath(path)
    try:
        with open(where, "rb") as handle:
            data, mode = handle.read(), os.fstat(handle.fileno()).st_mode
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read it: {exc.strerror}") from None
    if mode & 0o004:
        raise ConfigError(readable_problem(where, mode, 0o004, "640") +
                          "; group-readable (0640, root:nut as Debian ships it) is fine")
    return parse_upsmon_conf(data, where)


def parse_upsmon_conf(data: bytes | str, path: str = "upsmon.conf") -> UpsmonConf:
    """Parse upsmon.conf text (no permission check); ``path`` names it in messages."""
    return _Reader(path).read(data.encode("utf-8") if isinstance(data, str) else data)


def _lines(path: str, data: bytes) -> Iterator[tuple[int, list[str]]]:
    """Tokenized lines; a parse error is a :class:`ConfigError` naming the line's key."""
    for lineno, item in tokenize_text(data):
        if isinstance(item, ParseError):
            raw = data.split(b"\n")[lineno - 1].decode("ascii", "replace").split()
            raise ConfigError(f"{path}:{lineno}: {raw[0] if raw else '?'}: parse error: "
                              f"{item.message} (write \\# for a # inside quotes)")
        yield lineno, item


def _whole(value: str, where: str, least: int = 0) -> int:
    """A whole number of at least ``least`` (upsmon's atoi takes anything)."""
    if not _WHOLE.fullmatch(value):
        raise ConfigError(f"{where}: {show(value)} is not a whole number")
    if int(value) < least:
        raise ConfigError(f"{where}: must be at least {least} (got {value})")
    return int(value)


def _switch(value: str, where: str) -> bool:
    """0 or 1."""
    if value not in ("0", "1"):
        raise ConfigError(f"{where}: {show(value)} must be 0 or 1")
    return value == "1"


class _Reader:
    """One pass over upsmon.conf, collecting settings, warnings and the line of each."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.settings: dict[str, Any] = {}
        self.lines: dict[str, int] = {}
        self.monitors: list[Monitor] = []
        self.messages: dict[str, str] = {}
        self.flags: dict[str, frozenset[str]] = {}
        self.cert_path: str | None = None
        self.verify = False
        self.force_ssl = False
        self.cert_ident: tuple[str, str] | None = None
        self.cert_hosts: dict[str, CertHost] = {}
        self.notify_cmd: ShellLine | None = None
        self.warnings: list[str] = []

    def warn(self, line: int, message: str) -> None:
        self.warnings.append(f"{self.path}:{line}: {message}")

    def read(self, data: bytes) -> UpsmonConf:
        for line, words in _lines(self.path, data):
            self._directive(line, words[0], words[1:])
        tls = TlsConfig(cert_path=self.cert_path, verify=self.verify, force_ssl=self.force_ssl,
                        cert_ident=self.cert_ident,
                        hosts=tuple(reversed(self.cert_hosts.values())))
        notify = NotifySettings(self.notify_cmd, tuple(self.messages.items()),
                                tuple(self.flags.items()))
        conf = replace(UpsmonConf(self.path), monitors=tuple(self.monitors), notify=notify,
                       tls=tls, **self.settings)
        self._check(conf)
        return replace(conf, warnings=tuple(self.warnings))

    def _check(self, conf: UpsmonConf) -> None:
        """The checks upsmon makes once the whole file is read."""
        if conf.total_power < conf.min_supplies:
            line = self.lines.get("MINSUPPLIES")
            where = f"{self.path}:{line}: MINSUPPLIES" if line else f"{self.path}: MINSUPPLIES"
            what = ("no MONITOR line gives any power" if not conf.monitors else
                    f"the MONITOR power values add up to {conf.total_power}")
            raise ConfigError(f"{where}: {conf.min_supplies} power supplies must be fed but "
                              f"{what}: insufficient power configured (upsmon refuses to "
                              "start too)")
        if conf.tls.verify and conf.tls.cert_path is None:
            raise ConfigError(f"{self.path}:{self.lines['CERTVERIFY']}: CERTVERIFY: set, but "
                              "CERTPATH is not: there is nothing to verify the server's "
                              "certificate against (upsmon refuses to connect too)")
        if conf.shutdown_cmd is None:
            self.warnings.append(f"{self.path}: no SHUTDOWNCMD: the agent shuts this host "
                                 f"down with {shlex.join(DEFAULT_SHUTDOWN_COMMAND)} (upsmon "
                                 "would run nothing and only warns); set SHUTDOWNCMD to "
                                 "choose the command")
        if conf.dead_time < max(conf.poll_freq, conf.poll_freq_alert):
            line = self.lines.get("DEADTIME")
            self.warnings.append(
                f"{self.path}{f':{line}' if line else ''}: DEADTIME {conf.dead_time} is "
                f"shorter than a poll interval ({max(conf.poll_freq, conf.poll_freq_alert)} s):"
                " a UPS on battery will be declared dead between two polls (NUT's advice: "
                "three times the larger of POLLFREQ and POLLFREQALERT)")

    def _directive(self, line: int, word: str, args: list[str]) -> None:
        name = "DEBUG_MIN" if word.upper() == "DEBUG_MIN" else word
        where = f"{self.path}:{line}: {word}"
        handler: Callable[[int, str, list[str]], None] | None = getattr(
            self, f"_d_{name.lower()}", None) if name.isupper() or name == "DEBUG_MIN" else None
        need = _NEEDS.get(name)
        if handler is None or need is None:
            if word.upper() in _NEWER:
                self.warn(line, f"{word}: a directive of NUT releases after 2.8.0; upsagent "
                                "reads upsmon.conf as 2.8.0 does and ignores it")
            else:
                self.warn(line, f"{word}: invalid directive, ignored as upsmon ignores it"
                                f"{suggest(word, _NEEDS)}")
            return
        if name == "MONITOR" and len(args) == 4:
            raise ConfigError(f"{where}: old-style MONITOR line without a user name; upsmon "
                              "2.8.0 refuses it too: write MONITOR <system> <powervalue> "
                              "<user> <password> primary|secondary and give the user "
                              "'upsmon primary' or 'upsmon secondary' in upsd.users")
        if len(args) < need:
            form = _VALUE_HELP.get(name, "<value>")
            raise ConfigError(f"{where}: needs {need} value{'s' if need > 1 else ''} "
                              f"({word} {form})")
        if len(args) > need:
            extra = " ".join(args[need:])
            if name in ("SHUTDOWNCMD", "NOTIFYCMD"):
                raise ConfigError(f"{where}: the command is not quoted, so upsmon would run "
                                  f"only {show(args[0])} and drop {show(extra)}; write "
                                  f"{word} \"{' '.join(args)}\"")
            self.warn(line, f"{word}: extra words {extra!r} ignored, as upsmon ignores them")
        self.lines[name] = line
        handler(line, where, args)

    # -- directives (one method each, named after the directive) ---------------------

    def _number(self, name: str, where: str, value: str) -> None:
        key, least = _NUMBERS[name]
        self.settings[key] = _whole(value, where, least)

    def _d_minsupplies(self, line: int, where: str, args: list[str]) -> None:
        self._number("MINSUPPLIES", where, args[0])

    def _d_pollfreq(self, line: int, where: str, args: list[str]) -> None:
        self._number("POLLFREQ", where, args[0])

    def _d_pollfreqalert(self, line: int, where: str, args: list[str]) -> None:
        self._number("POLLFREQALERT", where, args[0])

    def _d_deadtime(self, line: int, where: str, args: list[str]) -> None:
        self._number("DEADTIME", where, args[0])

    def _d_hostsync(self, line: int, where: str, args: list[str]) -> None:
        self._number("HOSTSYNC", where, args[0])

    def _d_finaldelay(self, line: int, where: str, args: list[str]) -> None:
        self._number("FINALDELAY", where, args[0])

    def _d_rbwarntime(self, line: int, where: str, args: list[str]) -> None:
        self._number("RBWARNTIME", where, args[0])

    def _d_nocommwarntime(self, line: int, where: str, args: list[str]) -> None:
        self._number("NOCOMMWARNTIME", where, args[0])

    def _d_shutdowncmd(self, line: int, where: str, args: list[str]) -> None:
        if not args[0].strip():
            raise ConfigError(f"{where}: the command is empty")
        self.settings["shutdown_cmd"] = ShellLine(args[0])

    def _d_notifycmd(self, line: int, where: str, args: list[str]) -> None:
        if not args[0].strip():
            raise ConfigError(f"{where}: the command is empty")
        self.notify_cmd = ShellLine(args[0])

    def _d_powerdownflag(self, line: int, where: str, args: list[str]) -> None:
        if not args[0]:
            raise ConfigError(f"{where}: the file name is empty")
        self.settings["powerdown_flag"] = args[0]

    def _d_run_as_user(self, line: int, where: str, args: list[str]) -> None:
        self.settings["run_as_user"] = args[0]
        self.warn(line, "RUN_AS_USER: upsagent runs as the user its service sets; ignored")

    def _d_debug_min(self, line: int, where: str, args: list[str]) -> None:
        if _WHOLE.fullmatch(args[0]):
            self.settings["debug_min"] = int(args[0])
        else:
            self.warn(line, f"DEBUG_MIN: {show(args[0])} is not a whole number; ignored, as "
                            "upsmon ignores it")

    def _d_certpath(self, line: int, where: str, args: list[str]) -> None:
        self.cert_path = args[0]

    def _d_certverify(self, line: int, where: str, args: list[str]) -> None:
        self.verify = _switch(args[0], where)

    def _d_forcessl(self, line: int, where: str, args: list[str]) -> None:
        self.force_ssl = _switch(args[0], where)

    def _d_certident(self, line: int, where: str, args: list[str]) -> None:
        self.cert_ident = (args[0], args[1])
        self.warn(line, "CERTIDENT: client certificates from an NSS database are not "
                        "supported by upsagent; ignored")

    def _d_certhost(self, line: int, where: str, args: list[str]) -> None:
        host, name = args[0], args[1]
        rule = CertHost(host, name, _switch(args[2], f"{where} (certverify)"),
                        _switch(args[3], f"{where} (forcessl)"))
        self.cert_hosts.pop(host, None)
        self.cert_hosts[host] = rule

    def _d_notifymsg(self, line: int, where: str, args: list[str]) -> None:
        ntype = args[0].upper()
        if ntype not in NOTIFY_TYPES:
            self.warn(line, f"NOTIFYMSG: {show(args[0])} is not a valid notify event name; "
                            f"ignored, as upsmon ignores it{suggest(ntype, NOTIFY_TYPES)}")
            return
        problem = message_problem(args[1])
        if problem:
            raise ConfigError(f"{where}: {ntype}: {show(args[1])}: {problem}")
        self.messages[ntype] = args[1]

    def _d_notifyflag(self, line: int, where: str, args: list[str]) -> None:
        ntype = args[0].upper()
        if ntype not in NOTIFY_TYPES:
            self.warn(line, f"NOTIFYFLAG: invalid notify type {show(args[0])}; ignored, as "
                            f"upsmon ignores it{suggest(ntype, NOTIFY_TYPES)}")
            return
        flags: set[str] = set()
        for flag in args[1].split("+"):
            if flag in FLAGS:
                flags.add(flag)
            else:
                self.warn(line, f"NOTIFYFLAG {ntype}: invalid notify flag {show(flag)} counts "
                                f"as nothing, as in upsmon{suggest(flag, FLAGS)}")
        if "IGNORE" in flags and len(flags) > 1:
            self.warn(line, f"NOTIFYFLAG {ntype}: IGNORE wins over "
                            f"{'+'.join(sorted(flags - {'IGNORE'}))} (nothing is sent)")
        self.flags[ntype] = frozenset(flags)

    def _d_monitor(self, line: int, where: str, args: list[str]) -> None:
        system, power, user, password, role = args[:5]
        try:
            target = split_name(system)
        except BadTarget as exc:
            raise ConfigError(f"{where}: cannot split {show(system)} into ups@host[:port]"
                              f"{': ' + exc.diagnostic if exc.diagnostic else ''}") from None
        if not target.ups:
            raise ConfigError(f"{where}: {show(system)} names no UPS")
        if not _WHOLE.fullmatch(power):
            raise ConfigError(f"{where}: power value {show(power)} is not a whole number "
                              "(how many of this host's power supplies the UPS feeds; 0 "
                              "to monitor only)")
        if role.lower() not in _ROLES:
            raise ConfigError(f"{where}: {show(role)} must be primary or secondary (or the "
                              "old names master, slave); upsmon would take it as secondary")
        for known in self.monitors:
            if known.system == system:
                self.warn(line, f"MONITOR: duplicate UPS {system} ignored; the one of line "
                                f"{known.line} counts, as in upsmon")
                return
        self.monitors.append(Monitor(system, target.ups, target.host, target.port,
                                     int(power), user, password, _ROLES[role.lower()], line))
