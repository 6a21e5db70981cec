# -*- test-case-name: tests.test_managers -*-
"""Typed getters for the slave's part of upsagent.toml (``[slave]``, ``[[host]]`` and the
manager sections), each error naming the key path and the reason, and the one rule for a
slave-side password (a monitor's session, a vCenter's, a pool's, an SSH host's): it comes
from exactly one place -- ``password``, ``password_file`` or an entry of
``[slave].secrets_file`` keyed by the user name.

The builder that reads the file (:mod:`upsagent.config.native`) supplies ``fail`` (the
error for a key path), and the callables that read private files; this module does no I/O
of its own.
"""

from __future__ import annotations

import re

from collections.abc import Callable, Mapping
from typing import Any

from upsagent.config.schema import ConfigError
from upsagent.config.validate import show, suggest
from upsagent.policy.plan import RUNTIME_MARGIN_RULE

__all__ = ["Reader", "kind_of"]


def kind_of(value: object) -> str:
    """A TOML-ish name for the type of ``value``, for messages."""
    if isinstance(value, bool):
        return "a boolean"
    names = {int: "an integer", float: "a float", str: "a string", list: "an array",
             dict: "a table"}
    for kind, name in names.items():
        if isinstance(value, kind):
            return name
    return "a date or time"


#: a TOML bare key: written as it is in a key path; any other key is quoted
_BARE = re.compile(r"[A-Za-z0-9_-]+")


def key_path(prefix: str, key: str) -> str:
    """``prefix.key`` as an error names it: ``ups[1].options."odd key"``."""
    return f"{prefix}.{key}" if _BARE.fullmatch(key) else f"{prefix}.{show(key)}"


class Reader:
    """Typed getters that name the key path on error (``fail`` comes from the builder)."""

    def __init__(self, fail: Callable[[str, str], ConfigError]) -> None:
        self.fail = fail

    def table(self, value: object, where: str) -> dict[str, Any]:
        """``value``, which must be a TOML table."""
        if not isinstance(value, dict):
            raise self.fail(where, f"must be a table, not {kind_of(value)}")
        return value

    def keys(self, table: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
        """Refuse a key of ``table`` that is not in ``allowed``, suggesting the closest."""
        for key in table:
            if key not in allowed:
                raise self.fail(key_path(where, key), f"unknown key{suggest(key, allowed)}")

    def number(self, table: Mapping[str, Any], key: str, where: str) -> float | None:
        """An optional number of seconds, not negative."""
        value = table.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(f"{where}.{key}",
                            f"must be a number (seconds), not {kind_of(value)}")
        if value < 0:
            raise self.fail(f"{where}.{key}", f"must not be negative ({value:g})")
        return float(value)

    def share(self, table: Mapping[str, Any], key: str, where: str) -> float | None:
        """A share from 0 to 1 (``runtime_margin``); 25 meant as 25 % is refused."""
        value = table.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(f"{where}.{key}", "must be a number (a share of the need, such "
                                              f"as 0.25), not {kind_of(value)}")
        if not 0 <= value <= 1:
            raise self.fail(f"{where}.{key}", f"{RUNTIME_MARGIN_RULE}, not {value:g}")
        return float(value)

    def whole(self, table: Mapping[str, Any], key: str, where: str) -> int | None:
        """An optional whole number >= 0 (``true`` is not one)."""
        value = table.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(f"{where}.{key}", f"must be a whole number >= 0, not {value!r}")
        return value

    def flag(self, table: Mapping[str, Any], key: str, where: str) -> bool | None:
        """An optional boolean."""
        value = table.get(key)
        if value is not None and not isinstance(value, bool):
            raise self.fail(f"{where}.{key}", f"must be true or false, not {kind_of(value)}")
        return value

    def text(self, table: Mapping[str, Any], key: str, where: str,
             required: bool = False) -> str | None:
        """An optional (or ``required``) non-empty string."""
        value = table.get(key)
        if value is None:
            if required:
                raise self.fail(f"{where}.{key}", "missing (it is required)")
            return None
        if not isinstance(value, str) or not value:
            raise self.fail(f"{where}.{key}", f"must be a non-empty string, not {value!r}")
        return value

    def argv(self, table: Mapping[str, Any], key: str, where: str) -> tuple[str, ...] | None:
        """An optional argument list; a string (a shell line) is refused."""
        value = table.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            raise self.fail(f"{where}.{key}", "must be a list of arguments (no shell): write "
                            f"[{', '.join(map(show, value.split()))}]")
        if not isinstance(value, list) or not value or not all(
                isinstance(v, str) for v in value):
            raise self.fail(f"{where}.{key}", "must be a non-empty list of strings (the "
                            "program and its arguments)")
        return tuple(value)

    def password(self, item: Mapping[str, Any], where: str, user: str,
                 table: Mapping[str, str], secret: Callable[[str, str], str],
                 path: Callable[[str | None], str | None],
                 required: bool = True) -> str | None:
        """The password of ``user``, from exactly one place: ``password``,
        ``password_file`` (read by ``secret``, which refuses a file others can read) or
        ``table``, the ``[slave].secrets_file`` entries.  None when there is none and it
        is not ``required``."""
        sources: list[tuple[str, str]] = []
        password = self.text(item, "password", where)
        if password is not None:
            sources.append((f"{where}.password", password))
        password_file = path(self.text(item, "password_file", where))
        if password_file is not None:
            sources.append((f"{where}.password_file", secret(password_file, where)))
        if user in table:
            sources.append(("slave.secrets_file", table[user]))
        if len(sources) > 1:
            raise self.fail(where, f"the password of {show(user)} is given twice "
                                   f"({sources[0][0]} and {sources[1][0]}); keep one")
        if not sources:
            if not required:
                return None
            raise self.fail(where, f"no password for {show(user)}: set password, "
                                   "password_file or a slave.secrets_file entry")
        return sources[0][1]
