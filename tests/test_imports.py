"""The import graph: no cycle between the packages of upsagent, none between the modules of
the protocol core, and a protocol core that does no I/O.

Imports are read from the source with :mod:`ast` (every ``import`` and ``from ... import``,
at module level or inside a function: a lazy import is a dependency too), except those under
``if TYPE_CHECKING:``, which exist only for the type checker.  ``drivers/`` is read as
``upsagent.drivers``, the name it is installed under.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: what the sans-IO core must not import (issue 7, point 1)
CORE_FORBIDDEN = ("twisted", "socket", "select", "ssl", "uuid", "upsagent.config",
                  "importlib")


def _modules() -> dict[str, Path]:
    """Module name -> source file, for upsagent/ and drivers/ (as upsagent.drivers)."""
    found: dict[str, Path] = {}
    for base, prefix in ((ROOT / "upsagent", "upsagent"), (ROOT / "drivers", "upsagent.drivers")):
        for path in base.rglob("*.py"):
            rel = path.relative_to(base).with_suffix("").parts
            if rel and rel[-1] == "__init__":
                rel = rel[:-1]
            if base.name == "upsagent" and rel[:1] == ("drivers",):
                continue  # never a second copy of the drivers
            found[".".join((prefix, *rel))] = path
    return found


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skip.update(id(n) for n in ast.walk(child))
    return skip


def _resolve(name: str, level: int, package: str) -> str:
    """The absolute name of ``from <level dots><name> import ...`` inside ``package``."""
    if not level:
        return name
    parts = package.split(".")
    base = parts[: len(parts) - level + 1]
    return ".".join([*base, name] if name else base)


def _imports(module: str, path: Path) -> set[str]:
    """Every module name ``module`` imports at run time (full dotted names)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_nodes(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node.module or "", node.level, package)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {i for i in _imports(name, path) if i in modules}
            for name, path in modules.items()}


def _package(module: str) -> str:
    """``upsagent.nut.server`` -> ``upsagent.nut``; top-level modules stand for themselves."""
    parts = module.split(".")
    if len(parts) <= 2:
        return module if not (ROOT / "upsagent" / parts[-1]).is_dir() and parts[-1] != "drivers" \
            else ".".join(parts[:2])
    return ".".join(parts[:2])


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``edges`` as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def package_graph() -> dict[str, set[str]]:
    """Package -> the packages it imports (a package's own modules not counted)."""
    packages: dict[str, set[str]] = {}
    for module, targets in _graph().items():
        source = _package(module)
        for target in targets:
            dest = _package(target)
            if dest != source and dest != "upsagent":
                packages.setdefault(source, set()).add(dest)
        packages.setdefault(source, set())
    return packages


def test_find_cycle_finds_one() -> None:
    """The checker itself: a cycle through a third node is found, a tree is not."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_cycle_between_packages() -> None:
    """No package of upsagent imports one that imports it back, directly or not."""
    assert find_cycle(package_graph()) is None


def test_no_cycle_inside_the_protocol_core() -> None:
    """The modules of upsagent.nut import each other without a cycle."""
    core = {m: {t for t in ts if t.startswith("upsagent.nut.")}
            for m, ts in _graph().items() if m.startswith("upsagent.nut.")}
    assert find_cycle(core) is None


@pytest.mark.parametrize("module", sorted(m for m in _modules() if m.startswith("upsagent.nut")))
def test_protocol_core_does_no_io(module: str) -> None:
    """Nothing under upsagent/nut/ imports Twisted, sockets, TLS, uuid or the configuration."""
    imported = _imports(module, _modules()[module])
    bad = sorted(i for i in imported
                 if any(i == f or i.startswith(f + ".") for f in CORE_FORBIDDEN))
    assert bad == []


@pytest.mark.parametrize("module", ["upsagent.policy", "upsagent.nut"])
def test_pure_packages_import_no_twisted(module: str) -> None:
    """The policy and the protocol core import neither Twisted nor the agent, master or
    simulator that drive them."""
    for name, path in _modules().items():
        if name == module or name.startswith(module + "."):
            imported = _imports(name, path)
            bad = sorted(i for i in imported if i.split(".")[0] == "twisted"
                         or _package(i) in ("upsagent.agent", "upsagent.master",
                                            "upsagent.simulator", "upsagent.cli"))
            assert bad == [], name
