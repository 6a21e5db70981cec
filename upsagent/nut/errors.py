# -*- test-case-name: tests.test_server -*-
"""NUT's ``ERR <CODE>`` replies, as a value type shared by the server and the client."""

from __future__ import annotations

import enum

__all__ = ["Err"]


class Err(enum.Enum):
    """Every error code NUT 2.8.0's upsd sends (and the ones libupsclient knows)."""

    ACCESS_DENIED = "ACCESS-DENIED"
    UNKNOWN_UPS = "UNKNOWN-UPS"
    VAR_NOT_SUPPORTED = "VAR-NOT-SUPPORTED"
    CMD_NOT_SUPPORTED = "CMD-NOT-SUPPORTED"
    INVALID_ARGUMENT = "INVALID-ARGUMENT"
    INSTCMD_FAILED = "INSTCMD-FAILED"
    SET_FAILED = "SET-FAILED"
    READONLY = "READONLY"
    TOO_LONG = "TOO-LONG"
    FEATURE_NOT_SUPPORTED = "FEATURE-NOT-SUPPORTED"
    FEATURE_NOT_CONFIGURED = "FEATURE-NOT-CONFIGURED"
    ALREADY_SSL_MODE = "ALREADY-SSL-MODE"
    DRIVER_NOT_CONNECTED = "DRIVER-NOT-CONNECTED"
    DATA_STALE = "DATA-STALE"
    ALREADY_LOGGED_IN = "ALREADY-LOGGED-IN"
    INVALID_PASSWORD = "INVALID-PASSWORD"
    ALREADY_SET_PASSWORD = "ALREADY-SET-PASSWORD"
    INVALID_USERNAME = "INVALID-USERNAME"
    ALREADY_SET_USERNAME = "ALREADY-SET-USERNAME"
    USERNAME_REQUIRED = "USERNAME-REQUIRED"
    PASSWORD_REQUIRED = "PASSWORD-REQUIRED"
    UNKNOWN_COMMAND = "UNKNOWN-COMMAND"
    INVALID_VALUE = "INVALID-VALUE"
    UNKNOWN = "UNKNOWN"
    FAILED = "FAILED"

    @property
    def line(self) -> str:
        """The reply line, without its LF."""
        return f"ERR {self.value}"
