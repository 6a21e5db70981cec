# -*- test-case-name: tests.test_usbhid_cli -*-
"""Subcommands with one entry per device family (``decode``, ``scan``): a table of
``family -> ("module:function", summary)``, each entry imported only when it is chosen, so a
family's optional library is needed only by that family."""

from __future__ import annotations

import importlib
import sys
from typing import Callable, Mapping

__all__ = ["run_family"]


def run_family(command: str, families: Mapping[str, tuple[str, str]], usage: str,
               argv: list[str]) -> int:
    """``upsagent <command> <family> ...``: ``usage`` (with ``{families}`` filled in) for
    ``--help`` (exit 0) or no family (exit 2); an unknown family is a usage error."""
    width = max(len(name) for name in families)
    text = usage.format(families="\n".join(
        f"  {name:<{width}}  {summary}" for name, (_, summary) in families.items()))
    if not argv or argv[0] in ("-h", "--help"):
        (sys.stdout if argv else sys.stderr).write(text)
        return 0 if argv else 2
    family = families.get(argv[0])
    if family is None:
        sys.stderr.write(f"upsagent {command}: unknown family {argv[0]!r}\n\n{text}")
        return 2
    module, _, func = family[0].partition(":")
    entry: Callable[[list[str]], int] = getattr(importlib.import_module(module), func)
    return entry(argv[1:])
