# -*- test-case-name: tests.test_config -*-
"""The native configuration file, ``/etc/upsagent/upsagent.toml`` (see upsagent.toml(5)).

Layout: a ``[master]`` table (listeners, limits, TLS, ``secrets_file``, ``powerdown_flag``,
``statepath``: the directory of NUT's driver sockets, copied into every UPS)
with an optional ``[master.shutdown]`` table (the primary's end of the sequence), one
``[[ups]]`` table per UPS (``name``, ``driver``, ``port``, ``desc``, ``aliases``, ``flags``,
``confdir``, ``lowbatt_charge``, ``lowbatt_runtime``, ``serve`` -- ``"auto"``,
``"upsagent"`` or ``"nut-driver"``, see :data:`~upsagent.config.schema.SERVE_CHOICES` --
and a ``[ups.options]`` table of NUT driver options) and one ``[[user]]`` table per network user
(``name``, ``password`` or ``password_file``, ``actions``, ``instcmds``, ``upsmon``).  The
slave agent's ``[slave]``, ``[[slave.monitor]]`` and ``[[host]]`` tables are mapped by
:mod:`upsagent.config.slaveconf` into ``Config.slave``.

Rules:

* Unknown keys, wrong types, bad ports are errors naming the key as a path
  (``ups[1].drvier: unknown key (did you mean "driver"?)``; ``ups[1]`` is the first
  ``[[ups]]``).  Integers must be integers (``true`` is not one); option values may be strings
  or integers (stored as strings, as NUT has them).
* ``listen`` entries are ``"host:port"``, ``"host"``, ``"[v6addr]:port"`` or a bare IPv6
  address; the port defaults to 3493.
* Relative paths in ``secrets_file``, ``password_file`` and ``confdir`` are taken from the
  directory of the TOML file; ``confdir`` (where a relative dummy-ups ``port`` is looked up)
  defaults to that directory.
* Secrets.  A password comes from exactly one place: ``password`` in the ``[[user]]`` table,
  a ``password_file`` (its whole content, one trailing newline removed) or the
  ``secrets_file`` (a TOML table mapping user names to passwords).  Secret files must be
  private to their owner (``mode & 0o077 == 0``).  Passwords written in upsagent.toml itself
  (and SNMP v3 pass phrases among the options) are accepted only if the file is not readable
  by every local user (``mode & 0o004 == 0``); the message names the file, its mode and the
  ``chmod`` that fixes it.
* Everything else (names, duplicates, limits, driver names) is checked by
  :func:`upsagent.config.validate.validate_master`, as for NUT's files.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import replace
from typing import Any, BinaryIO

from upsagent.config.schema import (
    DEFAULT_PORT, SERVE_CHOICES, Config, ConfigError, ListenAddress, MasterConfig,
    ShutdownConfig, UpsConfig, UserConfig)
from upsagent.config.reader import Reader, key_path
from upsagent.config.reader import kind_of as _kind
from upsagent.config.slaveconf import SlaveConfig, build_slave
from upsagent.config.validate import (
    KNOWN_ACTIONS, control_problem, readable_problem, show, suggest, validate_master)

__all__ = ["DEFAULT_CONFIG_PATH", "load_toml", "loads_toml"]

DEFAULT_CONFIG_PATH = "/etc/upsagent/upsagent.toml"

_TOP = ("master", "ups", "user", "slave", "host")
_MASTER_INT = ("maxconn", "maxage", "tracking_delay", "idle_timeout", "max_line_length",
               "max_send_buffer", "max_conn_per_address", "reserved_monitor_slots")
_MASTER_STR = ("certfile", "keyfile", "powerdown_flag", "statepath", "snmp_traps")
_MASTER_BOOL = ("allow_no_device", "disable_weak_ssl")
_MASTER_KEYS = ("listen", *_MASTER_INT, *_MASTER_STR, *_MASTER_BOOL, "secrets_file",
                "shutdown")
_UPS_KEYS = ("name", "driver", "port", "desc", "aliases", "options", "flags", "confdir",
             "lowbatt_charge", "lowbatt_runtime", "serve")
_SHUTDOWN_INT = ("minsupplies", "on_battery_for", "deadtime", "hostsync", "finaldelay")
_SHUTDOWN_BOOL = ("enabled", "dry_run")
_SHUTDOWN_KEYS = (*_SHUTDOWN_BOOL, "ups", *_SHUTDOWN_INT, "shutdown_command")
_USER_KEYS = ("name", "password", "password_file", "actions", "instcmds", "upsmon")
_UPSMON = {"primary": ("login", "master", "fsd"), "master": ("login", "master", "fsd"),
           "secondary": ("login",), "slave": ("login",)}
#: driver options that hold pass phrases (snmp-ups v3, netxml-ups)
SECRET_OPTIONS = frozenset({"authpassword", "privpassword", "password"})


def load_toml(path: str | os.PathLike[str] = DEFAULT_CONFIG_PATH) -> Config:
    """Read and validate upsagent.toml; raise :class:`ConfigError` naming key and reason."""
    path = os.path.abspath(os.fspath(path))
    data, mode = _read(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return loads_toml(text, source=path, base_dir=os.path.dirname(path), file_mode=mode)


def loads_toml(text: str, *, source: str = "<string>", base_dir: str | None = None,
               file_mode: int | None = None) -> Config:
    """Validate TOML text as :func:`load_toml` does.

    ``file_mode`` is the mode of the file the text came from; when it is None the check of
    inline passwords against the file's permissions is left to the caller.
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return _Builder(source, base_dir, file_mode).build(document)


def _read(path: str) -> tuple[bytes, int]:
    try:
        with open(path, "rb") as handle:
            return handle.read(), os.fstat(handle.fileno()).st_mode
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror}") from None


class _Builder:
    """Turns a parsed TOML document into a validated :class:`Config`."""

    def __init__(self, source: str, base_dir: str | None, file_mode: int | None) -> None:
        self.source = source
        self.base_dir = base_dir
        self.file_mode = file_mode
        self.warnings: list[str] = []
        #: keys that hold a secret written in the main file itself
        self.inline_secrets: list[str] = []
        #: the typed getters, failing with this file's key paths
        self.reader = Reader(self.fail)

    # -- helpers ---------------------------------------------------------------------

    def fail(self, where: str, reason: str) -> ConfigError:
        """An error for the key path ``where`` of this file."""
        return ConfigError(f"{self.source}: {where}: {reason}")

    def locate(self, section: str, index: int | None, key: str | None) -> str:
        """The locator for :func:`validate_master`: ``<file>: ups[1].driver``."""
        where = section if index is None else f"{section}[{index + 1}]"
        if key is not None:
            if key.startswith("options."):
                where = key_path(f"{where}.options", key[len("options."):])
            else:
                where = f"{where}.{key}"
        return f"{self.source}: {where}"

    def table(self, value: object, where: str) -> dict[str, Any]:
        """``value``, which must be a TOML table."""
        return self.reader.table(value, where)

    def known_keys(self, table: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
        """Refuse a key not in ``allowed``, suggesting the closest one."""
        self.reader.keys(table, allowed, where)

    def string(self, table: dict[str, Any], key: str, where: str,
               required: bool = False) -> str | None:
        """An optional (or ``required``) string without control characters."""
        value = table.get(key)
        if value is None:
            if required:
                raise self.fail(f"{where}.{key}", "missing (it is required)")
            return None
        if not isinstance(value, str):
            raise self.fail(f"{where}.{key}", f"must be a string, not {_kind(value)}")
        problem = control_problem(value)
        if problem:
            raise self.fail(f"{where}.{key}", problem)
        return value

    def strings(self, table: dict[str, Any], key: str, where: str) -> list[str]:
        """A list of strings, none repeated (compared case-insensitively)."""
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(f"{where}.{key}", "must be a list of strings")
        if len({v.lower() for v in value}) != len(value):
            raise self.fail(f"{where}.{key}", "lists the same name twice")
        return list(value)

    def path(self, value: str | None) -> str | None:
        """A path relative to the directory of upsagent.toml, when there is one."""
        if value is None or self.base_dir is None:
            return value
        return os.path.join(self.base_dir, value)

    # -- the document ----------------------------------------------------------------

    def build(self, document: dict[str, Any]) -> Config:
        for key in document:
            if key not in _TOP:
                raise self.fail(key, f"unknown key{suggest(key, _TOP)}")
        master_table = self.table(document.get("master", {}), "master")
        self.known_keys(master_table, _MASTER_KEYS, "master")
        secrets = self.secrets(self.string(master_table, "secrets_file", "master"))
        upses = tuple(self.ups(i, t) for i, t in enumerate(self.array(document, "ups")))
        users = tuple(self.user(i, t, secrets)
                      for i, t in enumerate(self.array(document, "user")))
        for name in secrets.keys() - {user.name for user in users}:
            self.warnings.append(f"{self.source}: master.secrets_file: {show(name)} is not a "
                                 "[[user]]; its password is unused")
        master = self.master(master_table, upses, users)
        slave = self.slave(document) if "slave" in document or "host" in document else None
        if self.inline_secrets and self.file_mode is not None and self.file_mode & 0o004:
            raise ConfigError(readable_problem(self.source, self.file_mode, 0o004, "640") +
                              f" ({self.inline_secrets[0]}); or move the passwords to a "
                              "secrets_file")
        if slave is None or any(key in document for key in ("master", "ups", "user")):
            self.warnings += validate_master(master, self.locate)
        return Config(master=master, slave=slave, source=self.source,
                      warnings=tuple(self.warnings))

    def slave(self, document: dict[str, Any]) -> SlaveConfig:
        """``[slave]`` and ``[[host]]``, mapped by :mod:`upsagent.config.slaveconf`."""
        slave_table = document.get("slave", {})
        monitors = slave_table.get("monitor", []) if isinstance(slave_table, dict) else []
        for i, monitor in enumerate(monitors if isinstance(monitors, list) else []):
            if isinstance(monitor, dict) and "password" in monitor:
                self.inline_secrets.append(f"slave.monitor[{i + 1}].password")
        for section in ("vcenter", "xenpool"):
            managers = slave_table.get(section, []) if isinstance(slave_table, dict) else []
            for i, manager in enumerate(managers if isinstance(managers, list) else []):
                if isinstance(manager, dict) and "password" in manager:
                    self.inline_secrets.append(f"slave.{section}[{i + 1}].password")
        hosts = document.get("host", [])
        for i, host in enumerate(hosts if isinstance(hosts, list) else []):
            for key in ("ssh", "esxi"):
                table = host.get(key) if isinstance(host, dict) else None
                if isinstance(table, dict) and "password" in table:
                    self.inline_secrets.append(f"host[{i + 1}].{key}.password")
        return build_slave(
            document, source=self.source, fail=self.fail, secret=self.password_file,
            secrets=lambda path, where: self.secrets(path, where), path=self.path,
            private=self.check_private, readable=self.check_readable)

    def array(self, document: dict[str, Any], key: str) -> list[dict[str, Any]]:
        """An array of tables (``[[ups]]``, ``[[user]]``)."""
        value = document.get(key, [])
        if not isinstance(value, list):
            raise self.fail(key, f"must be an array of tables: write [[{key}]], not [{key}]")
        return [self.table(item, f"{key}[{i + 1}]") for i, item in enumerate(value)]

    def master(self, table: dict[str, Any], upses: tuple[UpsConfig, ...],
               users: tuple[UserConfig, ...]) -> MasterConfig:
        settings: dict[str, Any] = {"ups": upses, "users": users}
        for key in _MASTER_INT:
            if key in table:
                value = table[key]
                if not isinstance(value, int) or isinstance(value, bool):
                    raise self.fail(f"master.{key}", f"must be a whole number, not "
                                                     f"{_kind(value)}")
                settings[key] = value
        for key in _MASTER_STR:
            if key in table:
                settings[key] = self.string(table, key, "master")
        for key in _MASTER_BOOL:
            if key in table:
                if not isinstance(table[key], bool):
                    raise self.fail(f"master.{key}", f"must be true or false, not "
                                                     f"{_kind(table[key])}")
                settings[key] = table[key]
        if "shutdown" in table:
            settings["shutdown"] = self.shutdown(self.table(table["shutdown"],
                                                            "master.shutdown"))
        if "listen" in table:
            entries = self.strings(table, "listen", "master")
            if not entries:
                raise self.fail("master.listen", "must name at least one address")
            listen = [self.listen(entry, f"master.listen[{i + 1}]")
                      for i, entry in enumerate(entries)]
            if len(set(listen)) != len(listen):
                raise self.fail("master.listen", "lists the same address and port twice")
            settings["listen"] = tuple(listen)
        if settings.get("statepath") is not None:
            settings["ups"] = tuple(replace(ups, statepath=settings["statepath"])
                                    for ups in upses)
        return MasterConfig(**settings)

    def whole(self, table: dict[str, Any], key: str, where: str) -> int | None:
        """An optional whole number (``true`` is not one)."""
        if key not in table:
            return None
        value = table[key]
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(f"{where}.{key}", f"must be a whole number, not {_kind(value)}")
        return value

    def flag(self, table: dict[str, Any], key: str, where: str) -> bool | None:
        """An optional boolean."""
        if key not in table:
            return None
        if not isinstance(table[key], bool):
            raise self.fail(f"{where}.{key}", f"must be true or false, not "
                                              f"{_kind(table[key])}")
        return bool(table[key])

    def shutdown(self, table: dict[str, Any]) -> ShutdownConfig:
        """``[master.shutdown]``; ranges and UPS names are checked by validate_master."""
        where = "master.shutdown"
        self.known_keys(table, _SHUTDOWN_KEYS, where)
        settings: dict[str, Any] = {}
        for key in _SHUTDOWN_INT:
            settings[key] = self.whole(table, key, where)
        for key in _SHUTDOWN_BOOL:
            settings[key] = self.flag(table, key, where)
        if "ups" in table:
            settings["ups"] = tuple(self.strings(table, "ups", where))
        if "shutdown_command" in table:
            argv = table["shutdown_command"]
            if isinstance(argv, str):
                raise self.fail(f"{where}.shutdown_command", "must be a list of arguments "
                                f"(no shell): write [{', '.join(map(show, argv.split()))}]")
            if (not isinstance(argv, list) or not argv
                    or not all(isinstance(arg, str) for arg in argv)):
                raise self.fail(f"{where}.shutdown_command",
                                "must be a non-empty list of strings (the program and its "
                                "arguments)")
            settings["shutdown_command"] = tuple(argv)
        return ShutdownConfig(**{k: v for k, v in settings.items() if v is not None})

    def listen(self, text: str, where: str) -> ListenAddress:
        """``host:port``, ``host``, ``[v6]:port``, ``[v6]`` or a bare IPv6 address."""
        port_text: str | None = None
        if text.startswith("["):
            host, bracket, rest = text[1:].partition("]")
            if not bracket or (rest and not rest.startswith(":")):
                raise self.fail(where, f"{show(text)} is not [address] or [address]:port")
            port_text = rest[1:] if rest else None
        elif text.count(":") == 1:
            host, port_text = text.split(":")
        else:
            host = text
        if not host or host.strip() != host:
            raise self.fail(where, f"{show(text)} names no address")
        if port_text is None:
            return ListenAddress(host, DEFAULT_PORT)
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise self.fail(where, f"port {show(port_text)} is not a port number (1-65535)")
        return ListenAddress(host, int(port_text))

    def ups(self, index: int, table: dict[str, Any]) -> UpsConfig:
        where = f"ups[{index + 1}]"
        self.known_keys(table, _UPS_KEYS, where)
        name = self.string(table, "name", where, required=True)
        driver = self.string(table, "driver", where, required=True)
        port = self.string(table, "port", where)
        confdir = self.path(self.string(table, "confdir", where)) or self.base_dir
        options: dict[str, str] = {} if port is None else {"port": port}
        raw = self.table(table.get("options", {}), f"{where}.options")
        for key, value in raw.items():
            key_where = key_path(f"{where}.options", key)
            if key in ("port", "driver", "desc"):
                raise self.fail(key_where, f"write {key} in the [[ups]] table itself")
            if isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            if not isinstance(value, str):
                hint = " (a flag goes in flags = [...])" if isinstance(value, bool) else ""
                raise self.fail(key_where, f"must be a string or a whole number, not "
                                           f"{_kind(value)}{hint}")
            if key.lower() in SECRET_OPTIONS:
                self.inline_secrets.append(key_where)
            options[key] = value
        assert name is not None and driver is not None
        charge = table.get("lowbatt_charge")
        if charge is not None and (isinstance(charge, bool)
                                   or not isinstance(charge, (int, float))):
            raise self.fail(f"{where}.lowbatt_charge",
                            f"must be a number (percent), not {_kind(charge)}")
        serve = self.string(table, "serve", where) or "auto"
        if serve not in SERVE_CHOICES:
            raise self.fail(f"{where}.serve", f"{show(serve)} is not one of "
                            f"{', '.join(map(show, SERVE_CHOICES))}{suggest(serve, SERVE_CHOICES)}")
        return UpsConfig(name=name, driver=driver, port=port, serve=serve,
                         desc=self.string(table, "desc", where), options=options,
                         flags=tuple(self.strings(table, "flags", where)),
                         aliases=tuple(self.strings(table, "aliases", where)), confdir=confdir,
                         lowbatt_charge=None if charge is None else float(charge),
                         lowbatt_runtime=self.whole(table, "lowbatt_runtime", where))

    def user(self, index: int, table: dict[str, Any], secrets: dict[str, str]) -> UserConfig:
        where = f"user[{index + 1}]"
        self.known_keys(table, _USER_KEYS, where)
        name = self.string(table, "name", where, required=True)
        assert name is not None
        sources: list[tuple[str, str]] = []
        password = self.string(table, "password", where)
        if password is not None:
            sources.append((f"{where}.password", password))
            self.inline_secrets.append(f"{where}.password")
        password_file = self.path(self.string(table, "password_file", where))
        if password_file is not None:
            sources.append((f"{where}.password_file", self.password_file(password_file, where)))
        if name in secrets:
            sources.append(("master.secrets_file", secrets[name]))
        if len(sources) > 1:
            raise self.fail(where, f"the password of {show(name)} is given twice "
                                   f"({sources[0][0]} and {sources[1][0]}); keep one")
        actions = {action.lower() for action in self.strings(table, "actions", where)}
        unknown = sorted(actions - KNOWN_ACTIONS)
        if unknown:
            raise self.fail(f"{where}.actions", f"unknown action {show(unknown[0])}"
                                                f"{suggest(unknown[0], KNOWN_ACTIONS)}")
        role = self.string(table, "upsmon", where)
        if role is not None:
            if role.lower() not in _UPSMON:
                raise self.fail(f"{where}.upsmon", f"unknown upsmon role {show(role)} "
                                f"(primary or secondary){suggest(role, _UPSMON)}")
            actions.update(_UPSMON[role.lower()])
        instcmds = frozenset(cmd.lower() for cmd in self.strings(table, "instcmds", where))
        return UserConfig(name, sources[0][1] if sources else None, frozenset(actions),
                          instcmds)

    # -- secret files ----------------------------------------------------------------

    def open_private(self, path: str, where: str,
                     holds: str = "the passwords it holds") -> BinaryIO:
        """A secret file, open for reading, once checked that only its owner may read it
        (the one check of every secret file: ``secrets_file``, ``password_file``, an SSH
        ``key_file``); ``where`` is the key that names it, ``holds`` what it holds."""
        try:
            handle = open(path, "rb")
        except OSError as exc:
            raise self.fail(where, f"cannot read {path}: {exc.strerror}") from None
        mode = os.fstat(handle.fileno()).st_mode
        if mode & 0o077:
            handle.close()
            raise ConfigError(readable_problem(path, mode, 0o077, "600", holds))
        return handle

    def private_file(self, path: str, where: str) -> str:
        """The text of a secret file that only its owner may read."""
        with self.open_private(path, where) as handle:
            try:
                data = handle.read()
            except OSError as exc:
                raise self.fail(where, f"cannot read {path}: {exc.strerror}") from None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(where, f"{path} is not UTF-8 text") from None

    def check_private(self, path: str, where: str, holds: str) -> None:
        """Refuse a secret file the agent cannot read or others than its owner can (its
        content is not read: an SSH key is the backend's to use)."""
        self.open_private(path, where, holds).close()

    def check_readable(self, path: str, where: str) -> None:
        """Refuse a file (a CA certificate, known_hosts) the agent cannot read."""
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise self.fail(where, f"cannot read {path}: {exc.strerror}") from None

    def password_file(self, path: str, where: str) -> str:
        """The password in a private file, one trailing newline removed."""
        text = self.private_file(path, f"{where}.password_file")
        for ending in ("\r\n", "\n"):
            if text.endswith(ending):
                return text[:-len(ending)]
        return text

    def secrets(self, path: str | None, where: str = "master.secrets_file") -> dict[str, str]:
        """The user name -> password table of ``secrets_file`` (empty without one)."""
        if path is None:
            return {}
        path = self.path(path) or path
        text = self.private_file(path, where)
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        for name, value in document.items():
            if not isinstance(value, str):
                raise ConfigError(f"{path}: {show(name)}: must be a password string "
                                  f"(user name = \"password\"), not {_kind(value)}")
        return dict(document)
