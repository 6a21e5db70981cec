# -*- test-case-name: tests.test_client -*-
"""Where a NUT client connects: libupsclient's ``ups[@host[:port]]`` and ``host[:port]``
forms, parsed exactly as ``upscli_splitname`` / ``upscli_splitaddr`` do (strtok quirks and
the 511-byte buffer included).  Pure: text in, a :class:`Target` or :class:`BadTarget` out.
"""

from __future__ import annotations

from dataclasses import dataclass

from upsagent.nut.client import c_strtol

__all__ = ["DEFAULT_PORT", "BadTarget", "Target", "split_addr", "split_name"]

#: NUT's registered port
DEFAULT_PORT = 3493


@dataclass(frozen=True)
class Target:
    """Where a tool connects: UPS name (None for host-only forms), host and port."""

    ups: str | None
    host: str
    port: int


class BadTarget(ValueError):
    """An address libupsclient rejects; ``diagnostic`` is the line it prints first, if any."""

    def __init__(self, diagnostic: str | None) -> None:
        super().__init__(diagnostic or "invalid address")
        self.diagnostic = diagnostic


_SMALLBUF = 511


def _strtok(text: str, delims: str) -> tuple[str | None, int | None]:
    """C ``strtok_r`` once: the token, and the index of the delimiter it overwrote."""
    start = 0
    while start < len(text) and text[start] in delims:
        start += 1
    if start == len(text):
        return None, None
    end = start
    while end < len(text) and text[end] not in delims:
        end += 1
    return text[start:end], (end if end < len(text) else None)


def split_name(text: str | None) -> Target:
    """libupsclient's ``upscli_splitname``: ``ups[@host[:port]]``, host default localhost."""
    if text is None:
        raise BadTarget(None)
    tmp = text[:_SMALLBUF]
    if not tmp:
        raise BadTarget("upscli_splitname: can't parse empty string")
    at = tmp.find("@")
    ups, cut = _strtok(tmp, "@")
    if ups is None:  # NUT crashes here (strdup(NULL)); call it what it is
        raise BadTarget(None)
    if at < 0:
        return Target(ups, "localhost", DEFAULT_PORT)
    rest = tmp[at + 1:]
    if cut is not None and cut > at:  # strtok wrote a NUL into the host part
        rest = tmp[at + 1:cut]
    host, port = split_addr(rest)
    return Target(ups, host, port)


def split_addr(text: str) -> tuple[str, int]:
    """libupsclient's ``upscli_splitaddr``: ``host[:port]`` or ``[v6-literal][:port]``."""
    tmp = text[:_SMALLBUF]
    if not tmp:
        raise BadTarget("upscli_splitaddr: can't parse empty string")
    if tmp[0] == "[":
        if "]" not in tmp:
            raise BadTarget("upscli_splitaddr: missing closing bracket in [domain literal]")
        host, cut = _strtok(tmp[1:], "]")
        if host is None:
            raise BadTarget(None)
        rest = tmp[1 + cut + 1:] if cut is not None else ""
        if not rest or rest[0] != ":":
            return host, DEFAULT_PORT
        port_text = rest[1:]
    else:
        colon = tmp.find(":")
        host, cut = _strtok(tmp, ":")
        if host is None:
            raise BadTarget(None)
        if colon < 0:
            return host, DEFAULT_PORT
        port_text = tmp[colon + 1:cut] if cut is not None and cut > colon else tmp[colon + 1:]
    port = c_strtol(port_text)
    if not port_text or port < 1 or port > 65535:
        raise BadTarget("upscli_splitaddr: no port specified after ':' separator")
    return host, port
