# -*- test-case-name: tests.test_config -*-
"""upsagent's configuration: one schema, two front ends.

:func:`load_config` reads either the native TOML file (:mod:`upsagent.config.native`) or
NUT's configuration directory (:mod:`upsagent.config.nutconf`); both return the validated
objects of :mod:`upsagent.config.schema`, checked by the same rules
(:mod:`upsagent.config.validate`).  :func:`to_toml` (:mod:`upsagent.config.export`) writes
any of them back as upsagent.toml.
"""

from __future__ import annotations

import os

from upsagent.config.export import to_toml
from upsagent.config.native import DEFAULT_CONFIG_PATH, load_toml, loads_toml
from upsagent.config.nutconf import DEFAULT_NUT_DIR, load_nut_dir
from upsagent.config.schema import (
    Config, ConfigError, ListenAddress, MasterConfig, UpsConfig, UserConfig)

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_NUT_DIR",
    "Config",
    "ConfigError",
    "ListenAddress",
    "MasterConfig",
    "UpsConfig",
    "UserConfig",
    "load_config",
    "load_nut_dir",
    "load_toml",
    "loads_toml",
    "to_toml",
]


def load_config(path: str | os.PathLike[str] | None = None,
                nut_dir: str | os.PathLike[str] | None = None) -> Config:
    """Load upsagent.toml (``path``, default :data:`DEFAULT_CONFIG_PATH`) or, when
    ``nut_dir`` is given, NUT's ``ups.conf``/``upsd.conf``/``upsd.users`` from that directory.
    """
    if path is not None and nut_dir is not None:
        raise ConfigError("give either a TOML file or a NUT configuration directory, not both")
    if nut_dir is not None:
        return load_nut_dir(nut_dir)
    return load_toml(DEFAULT_CONFIG_PATH if path is None else path)
