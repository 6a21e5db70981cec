# -*- test-case-name: tests.test_snmp_driver -*-
"""The snmp-ups options of a ``[ups]`` section (NUT's names, ``drivers/snmp-ups.c``).

``port`` is the card: ``host``, ``host:port``, ``[v6address]`` or ``[v6address]:port``
(UDP 161 by default).  ``snmp_version`` ``v1`` (NUT's default), ``v2c`` or ``v3``;
``community`` (default ``public``); for v3 ``secLevel`` (``noAuthNoPriv``, ``authNoPriv``,
``authPriv``), ``secName``, ``authPassword``, ``privPassword``, ``authProtocol`` (``MD5``,
``SHA``, ``SHA224``, ``SHA256``, ``SHA384``, ``SHA512``; default MD5) and ``privProtocol``
(``DES``, ``AES``, ``AES192``, ``AES256``; default DES).  ``mibs`` (``auto`` or a table's
name), ``pollfreq`` (seconds between polls, default 30), ``snmp_timeout`` (seconds, default
1) and ``snmp_retries`` (default 5), ``ondelay`` / ``offdelay`` (seconds for the delayed
commands, default 30 / 20).

Secrets: ``community``, ``secName``, ``authPassword`` and ``privPassword`` (NUT's
``VAR_SENSITIVE`` options) are never published as ``driver.parameter.*`` nor logged.  Each
may instead be given as ``<name>_file``: the path of a file holding it (its first line); a
relative path is taken from the configuration directory.
``snmp_trap_engine_id`` (hex) is the engine ID the card's SNMPv3 traps must carry
(``traps.py``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from upsagent.config.schema import UpsConfig

__all__ = ["AUTH_PROTOCOLS", "PRIV_PROTOCOLS", "SECRET_OPTIONS", "SettingsError", "check_v3",
           "SnmpSettings", "parse_port", "settings_from"]

#: option names (lower case) whose values are secrets, ``*_file`` forms included
SECRET_OPTIONS = frozenset({"community", "secname", "authpassword", "privpassword"})
AUTH_PROTOCOLS = ("MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512")
PRIV_PROTOCOLS = ("DES", "AES", "AES192", "AES256")
SEC_LEVELS = ("noAuthNoPriv", "authNoPriv", "authPriv")


class SettingsError(ValueError):
    """An option that cannot work (names the option)."""


@dataclass(frozen=True)
class SnmpSettings:
    """How to reach one card."""

    host: str
    port: int = 161
    version: str = "v1"
    community: str = "public"
    sec_level: str = "noAuthNoPriv"
    sec_name: str | None = None
    auth_password: str | None = None
    priv_password: str | None = None
    auth_protocol: str = "MD5"
    priv_protocol: str = "DES"
    mibs: str = "auto"
    pollfreq: float = 30.0
    timeout: float = 1.0
    retries: int = 5
    ondelay: int = 30
    offdelay: int = 20
    #: the authoritative engine ID v3 traps from this card must carry (None: any)
    trap_engine_id: bytes | None = None

    def __repr__(self) -> str:  # never show secrets in a log or a traceback
        return (f"SnmpSettings(host={self.host!r}, port={self.port}, "
                f"version={self.version!r}, mibs={self.mibs!r})")


def is_secret(option: str) -> bool:
    """Whether ``option`` (or its ``_file`` form) holds a secret."""
    key = option.lower()
    return key.removesuffix("_file") in SECRET_OPTIONS


def parse_port(port: str) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` as (host, port)."""
    text = port.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise SettingsError(f"port {port!r}: expected [address] or [address]:port")
        return host, _udp_port(rest[1:], port) if rest else 161
    if text.count(":") == 1:
        host, _, number = text.partition(":")
        return host, _udp_port(number, port)
    if not text:
        raise SettingsError("port: the card's address is missing")
    return text, 161


def _udp_port(text: str, port: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise SettingsError(f"port {port!r}: {text!r} is not a UDP port number")
    return int(text)


def _secret(options: dict[str, str], name: str, confdir: str | None) -> str | None:
    """An option's value, or the first line of the file its ``_file`` form names."""
    lowered = {key.lower(): value for key, value in options.items()}
    if name.lower() in lowered:
        return lowered[name.lower()]
    path = lowered.get(f"{name.lower()}_file")
    if path is None:
        return None
    if not os.path.isabs(path) and confdir:
        path = os.path.join(confdir, path)
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.readline().rstrip("\r\n")
    except OSError as exc:
        raise SettingsError(f"{name}_file: cannot read {path}: {exc.strerror or exc}") from None


def _number(options: dict[str, str], name: str, default: float, minimum: float) -> float:
    lowered = {key.lower(): value for key, value in options.items()}
    text = lowered.get(name.lower())
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise SettingsError(f"{name} {text!r} is not a number") from None
    if value < minimum:
        raise SettingsError(f"{name} {text!r} is below {minimum:g}")
    return value


def settings_from(config: UpsConfig) -> SnmpSettings:
    """The settings of a ``[ups]`` section; :class:`SettingsError` names what is wrong."""
    options = config.options
    lowered = {key.lower(): value for key, value in options.items()}
    host, port = parse_port(config.port or lowered.get("port", ""))
    version = lowered.get("snmp_version", "v1")
    if version not in ("v1", "v2c", "v3"):
        raise SettingsError(f"snmp_version {version!r}: expected v1, v2c or v3")
    confdir = config.confdir or lowered.get("_confdir")
    settings = SnmpSettings(
        host=host, port=port, version=version,
        community=_secret(options, "community", confdir) or "public",
        sec_level=lowered.get("seclevel", "noAuthNoPriv"),
        sec_name=_secret(options, "secName", confdir),
        auth_password=_secret(options, "authPassword", confdir),
        priv_password=_secret(options, "privPassword", confdir),
        auth_protocol=lowered.get("authprotocol", "MD5").upper(),
        priv_protocol=lowered.get("privprotocol", "DES").upper(),
        mibs=lowered.get("mibs", "auto"),
        pollfreq=_number(options, "pollfreq", 30.0, 0.05),
        timeout=_number(options, "snmp_timeout", 1.0, 0.01),
        retries=int(_number(options, "snmp_retries", 5, 0)),
        ondelay=int(_number(options, "ondelay", 30, 0)),
        offdelay=int(_number(options, "offdelay", 20, 0)),
        trap_engine_id=_engine_id(lowered.get("snmp_trap_engine_id")))
    if version == "v3":
        check_v3(settings)
    return settings


def _engine_id(text: str | None) -> bytes | None:
    """``snmp_trap_engine_id``: hex digits, ``0x`` and ``:`` allowed (``80001f8880...``)."""
    if text is None:
        return None
    digits = text.strip().lower().removeprefix("0x").replace(":", "")
    try:
        value = bytes.fromhex(digits)
    except ValueError:
        raise SettingsError(f"snmp_trap_engine_id {text!r}: expected hex digits") from None
    if not 5 <= len(value) <= 32:
        raise SettingsError(f"snmp_trap_engine_id {text!r}: an engine ID is 5 to 32 bytes")
    return value


def check_v3(settings: SnmpSettings) -> None:
    """NUT's v3 checks (``nut_snmp_init``): names, protocols, what each level needs."""
    if settings.sec_level not in SEC_LEVELS:
        raise SettingsError(f"secLevel {settings.sec_level!r}: expected one of "
                            f"{', '.join(SEC_LEVELS)}")
    if not settings.sec_name:
        raise SettingsError("secName is required for SNMPv3")
    if settings.auth_protocol not in AUTH_PROTOCOLS:
        raise SettingsError(f"authProtocol {settings.auth_protocol!r}: expected one of "
                            f"{', '.join(AUTH_PROTOCOLS)}")
    if settings.priv_protocol not in PRIV_PROTOCOLS:
        raise SettingsError(f"privProtocol {settings.priv_protocol!r}: expected one of "
                            f"{', '.join(PRIV_PROTOCOLS)}")
    if settings.sec_level != "noAuthNoPriv" and not settings.auth_password:
        raise SettingsError(f"authPassword is required for SNMPv3 in {settings.sec_level} "
                            "mode")
    if settings.sec_level == "authPriv" and not settings.priv_password:
        raise SettingsError("privPassword is required for SNMPv3 in authPriv mode")
