# -*- test-case-name: tests.test_master_protocol -*-
"""STARTTLS server context from NUT-style CERTFILE (certificate and key in one PEM).

Needs pyOpenSSL (``pip install upsagent[tls]``), as Twisted's TLS does.  The key is a
secret: a key file readable by group or others is refused, with the fix in the message.
"""

from __future__ import annotations

import os
import stat
from typing import Any

from upsagent.config.schema import ConfigError

__all__ = ["server_context"]


def server_context(certfile: str, keyfile: str | None = None) -> Any:
    """A Twisted context factory for ``transport.startTLS`` (TLS 1.2 or newer)."""
    try:
        from twisted.internet import ssl
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ConfigError("CERTFILE is set but TLS support is missing: "
                          "install upsagent[tls] (pyOpenSSL)") from exc
    keypath = keyfile or certfile
    _check_private(keypath)
    try:
        with open(certfile, "rb") as f:
            cert_pem = f.read()
        key_pem = cert_pem
        if keyfile:
            with open(keyfile, "rb") as f:
                key_pem = f.read()
    except OSError as exc:
        raise ConfigError(f"CERTFILE {certfile}: cannot read: {exc.strerror}") from exc
    try:
        cert = ssl.PrivateCertificate.loadPEM(  # type: ignore[no-untyped-call]
            cert_pem + b"\n" + key_pem)
    except Exception as exc:
        raise ConfigError(f"CERTFILE {certfile}: not a PEM certificate with its private "
                          f"key ({exc})") from exc
    return ssl.CertificateOptions(privateKey=cert.privateKey.original,
                                  certificate=cert.original,
                                  raiseMinimumTo=ssl.TLSVersion.TLSv1_2)


def _check_private(path: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise ConfigError(f"CERTFILE {path}: cannot read: {exc.strerror}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO) & ~stat.S_IRGRP or mode & stat.S_IROTH:
        raise ConfigError(
            f"{path}: holds a private key but its mode is {stat.S_IMODE(mode):04o}, "
            f"readable by others; run: chmod 600 {path}")
