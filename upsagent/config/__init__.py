# -*- test-case-name: tests.test_config -*-
"""upsagent's configuration: one schema, two front ends.

:func:`load_config` reads either the native TOML file (:mod:`upsagent.config.native`) or
NUT's configuration directory (:mod:`upsagent.config.nutconf`); both return the validated
objects of :mod:`upsagent.config.schema`, checked by the same rules
(:mod:`upsagent.config.validate`).  :func:`to_toml` (:mod:`upsagent.config.export`) writes
any of them back as upsagent.toml.

The front ends and the exporter are imported when one of their names is first used (PEP
562), not with the package: ``upsagent slave`` reads upsagent.toml, and neither NUT's
ups.conf/upsd.conf parser nor the exporter takes memory in it.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from upsagent.config.schema import (
    Config, ConfigError, ListenAddress, MasterConfig, UpsConfig, UserConfig)

if TYPE_CHECKING:
    from upsagent.config.export import to_toml
    from upsagent.config.native import DEFAULT_CONFIG_PATH, load_toml, loads_toml
    from upsagent.config.nutconf import DEFAULT_NUT_DIR, load_nut_dir

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

#: name -> the module that defines it, imported on first use
_LAZY = {"to_toml": "upsagent.config.export", "DEFAULT_CONFIG_PATH": "upsagent.config.native",
         "load_toml": "upsagent.config.native", "loads_toml": "upsagent.config.native",
         "DEFAULT_NUT_DIR": "upsagent.config.nutconf",
         "load_nut_dir": "upsagent.config.nutconf"}


def __getattr__(name: str) -> Any:
    """The names of the front ends and the exporter, imported on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def load_config(path: str | os.PathLike[str] | None = None,
                nut_dir: str | os.PathLike[str] | None = None) -> Config:
    """Load upsagent.toml (``path``, default :data:`DEFAULT_CONFIG_PATH`) or, when
    ``nut_dir`` is given, NUT's ``ups.conf``/``upsd.conf``/``upsd.users`` from that directory.
    """
    if path is not None and nut_dir is not None:
        raise ConfigError("give either a TOML file or a NUT configuration directory, not both")
    if nut_dir is not None:
        from upsagent.config.nutconf import load_nut_dir
        return load_nut_dir(nut_dir)
    from upsagent.config.native import DEFAULT_CONFIG_PATH, load_toml
    return load_toml(DEFAULT_CONFIG_PATH if path is None else path)
