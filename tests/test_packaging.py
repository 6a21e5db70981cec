"""Packaging: drivers/ is installed as upsagent.drivers by a wheel, an sdist and an editable install.

drivers/ lives at the top of the tree; setup.cfg's package_dir maps it to upsagent.drivers,
and no symlink upsagent/drivers -> ../drivers stands in for that mapping.  Each
distribution is built from a copy of the tree (what git tracks plus untracked files it does
not ignore, so a stale build/ never leaks in), offline and with this venv's setuptools
(``--no-isolation``), and installed with ``--no-deps --no-index`` into a fresh venv of its
own that sees this venv's site-packages (Twisted) only through a plain path .pth, not
this venv's editable upsagent.  The check then runs there with cwd outside both trees.

The copy gets two packages the tree does not have, upsagent/_packaging_probe and
drivers/_packaging_probe: setup.cfg lists no packages, and a new package, under upsagent/
or under drivers/, must be installed without an edit there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import textwrap
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROBE = "_packaging_probe"
#: folders that travel in the sdist besides the code (MANIFEST.in)
SDIST_EXTRAS = ("man", "contrib", "udev")

#: run in an installed venv: where upsagent and its drivers come from, and a driver loaded
#: by name through the registry as the master does
CHECK = textwrap.dedent(f"""\
    import json, sys
    import upsagent, upsagent.drivers.base as base, upsagent.drivers.registry as registry
    import upsagent.{PROBE}, upsagent.drivers.{PROBE}
    replay = registry.driver_class("dummy-ups")
    assert replay is not None and issubclass(replay, base.Driver), replay
    print(json.dumps({{
        "upsagent": upsagent.__file__,
        "base": base.__file__,
        "registry": registry.__file__,
        "replay": sys.modules[replay.__module__].__file__,
        "probe": upsagent.{PROBE}.__file__,
        "drivers_probe": upsagent.drivers.{PROBE}.__file__,
    }}))
    """)


def _env() -> dict[str, str]:
    """The environment less what would point Python at the tree."""
    env = dict(os.environ)
    for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE"):
        env.pop(name, None)
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _console_script_loads_registry(script: Path, cwd: Path) -> None:
    """``upsagent check-config`` run as a command finds the driver registry: it says which
    driver serves the UPS (without the registry it would say nothing).  (snmp-ups: this test
    used usbhid-ups as a known name without a driver; both have one now.)"""
    conf = cwd / "nut-conf"
    conf.mkdir()
    (conf / "ups.conf").write_text("[demo]\n\tdriver = snmp-ups\n\tport = auto\n")
    result = subprocess.run([str(script), "check-config", "--nut-config", str(conf)], cwd=cwd,
                            env=_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "served by upsagent's driver for snmp-ups (SNMP)" in result.stdout, result


def _run(*argv: str | Path, cwd: Path) -> str:
    result = subprocess.run([str(a) for a in argv], cwd=cwd, env=_env(), capture_output=True,
                            text=True, timeout=180)
    assert result.returncode == 0, (
        f"{argv} exited {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n"
        f"{result.stderr}")
    return result.stdout


def _tree_files() -> list[str]:
    """The tree's files, relative to ROOT, as a fresh clone plus the work in progress has them."""
    if (ROOT / ".git").exists():
        out = subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others",
             "--exclude-standard"], capture_output=True, check=True).stdout.decode()
        return sorted(f for f in set(out.split("\0")) if f and os.path.lexists(ROOT / f))
    skip = {".venv", "build", "dist", ".git", "__pycache__", ".mypy_cache", ".hypothesis"}
    return sorted(str(p.relative_to(ROOT)) for p in ROOT.rglob("*")
                  if not p.is_dir() and not skip & set(p.relative_to(ROOT).parts)
                  and not p.parts[-2].endswith(".egg-info"))


def _copy_tree(dest: Path) -> None:
    for name in _tree_files():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target, follow_symlinks=False)
    for package in ("upsagent", "drivers"):
        (dest / package / PROBE).mkdir()
        (dest / package / PROBE / "__init__.py").write_text('"""New package, no setup.cfg edit."""\n')


def _expected_modules(tree: Path) -> set[str]:
    """The .py files a wheel must hold: upsagent/ as is, drivers/ as upsagent/drivers/."""
    expected = set()
    for folder, installed in (("upsagent", "upsagent"), ("drivers", "upsagent/drivers")):
        for path in (tree / folder).rglob("*.py"):
            if "__pycache__" not in path.parts:
                expected.add(f"{installed}/{path.relative_to(tree / folder).as_posix()}")
    return expected


@dataclass
class Built:
    src: Path          # the copy of the tree the distributions were built from
    tree_wheel: Path   # wheel built from the tree
    sdist: Path
    sdist_wheel: Path  # wheel built from the sdist
    editable: Path     # editable wheel (PEP 660) built from the tree


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    base = tmp_path_factory.mktemp("packaging")
    src = base / "src"
    _copy_tree(src)
    py = sys.executable
    _run(py, "-m", "build", "--no-isolation", "--wheel", "--outdir", base / "tree", src, cwd=base)
    # without --sdist/--wheel, build makes the sdist, then the wheel from that sdist
    _run(py, "-m", "build", "--no-isolation", "--outdir", base / "sdist", src, cwd=base)
    _run(py, "-c", "import setuptools.build_meta as b, sys; b.build_editable(sys.argv[1])",
         base / "editable", cwd=src)
    (tree_wheel,) = (base / "tree").glob("*.whl")
    (sdist,) = (base / "sdist").glob("*.tar.gz")
    (sdist_wheel,) = (base / "sdist").glob("*.whl")
    (editable,) = (base / "editable").glob("*.whl")
    return Built(src, tree_wheel, sdist, sdist_wheel, editable)


def _install_and_check(wheel: Path, venv: Path) -> dict[str, Path]:
    """Install ``wheel`` alone into a new venv at ``venv``; where the check imported from."""
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=venv.parent)
    python = venv / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps",
         "--no-index", wheel, cwd=venv.parent)
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))",
                     cwd=venv.parent).strip())
    # Twisted and the rest, after the install so pip sees an environment without upsagent;
    # a path line only: this venv's own .pth files (its editable upsagent) are not run
    (site / "_parent_site.pth").write_text(sysconfig.get_path("purelib") + "\n")
    out = _run(python, "-c", CHECK, cwd=venv.parent)
    _console_script_loads_registry(venv / "bin" / "upsagent", venv.parent)
    found = {k: Path(v) for k, v in json.loads(out).items()}
    found["site"] = site
    return found


def test_no_symlink_in_the_repository() -> None:
    """Nothing git tracks is a symlink, and nothing under upsagent/ or drivers/ is one."""
    if (ROOT / ".git").exists():
        listing = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-s"],
                                 capture_output=True, text=True, check=True).stdout
        links = [line.split("\t", 1)[1] for line in listing.splitlines()
                 if line.startswith("120000 ")]
        assert links == []
    for folder in ("upsagent", "drivers"):
        links = [p for p in (ROOT / folder).rglob("*") if p.is_symlink()]
        assert links == []


@pytest.mark.parametrize("which", ["tree_wheel", "sdist_wheel"])
def test_wheel_holds_every_package(built: Built, which: str) -> None:
    """Each wheel holds every module of upsagent/ and of drivers/ (as upsagent/drivers/)."""
    with zipfile.ZipFile(getattr(built, which)) as whl:
        names = set(whl.namelist())
    modules = {n for n in names if n.endswith(".py")}
    assert modules == _expected_modules(built.src)
    assert "upsagent/drivers/registry.py" in modules
    assert f"upsagent/drivers/{PROBE}/__init__.py" in modules
    assert "upsagent/py.typed" in names
    assert not any(n.startswith("drivers/") for n in names)


def test_sdist_carries_drivers_and_the_rest(built: Built) -> None:
    """The sdist has drivers/ at the top as in the tree, man/, contrib/ and udev/; no link."""
    with tarfile.open(built.sdist) as tar:
        members = tar.getmembers()
    prefix = built.sdist.name.removesuffix(".tar.gz") + "/"
    assert all(m.name.startswith(prefix) or m.name + "/" == prefix for m in members)
    assert [m.name for m in members if m.issym() or m.islnk()] == []
    names = {m.name.removeprefix(prefix) for m in members if m.isfile()}
    tree = {str(p.relative_to(built.src)) for p in built.src.rglob("*") if p.is_file()}
    for folder in ("drivers", "upsagent", *SDIST_EXTRAS):
        wanted = {n for n in tree if n.startswith(folder + "/") and "__pycache__" not in n
                  and not n.startswith("upsagent.egg-info")}
        assert wanted, folder
        assert wanted <= names, f"{folder}: missing {sorted(wanted - names)}"
    assert "drivers/registry.py" in names
    assert not any(n.startswith("upsagent/drivers/") for n in names)


@pytest.mark.parametrize("which", ["tree_wheel", "sdist_wheel"])
def test_wheel_installs_upsagent_drivers(built: Built, which: str, tmp_path: Path) -> None:
    """A fresh venv with only the wheel imports upsagent.drivers, and loads a driver, from it."""
    found = _install_and_check(getattr(built, which), tmp_path / "venv")
    site = found.pop("site")
    assert found["registry"] == site / "upsagent" / "drivers" / "registry.py"
    assert found["replay"] == site / "upsagent" / "drivers" / "replay.py"
    assert found["drivers_probe"] == site / "upsagent" / "drivers" / PROBE / "__init__.py"
    assert all(path.is_relative_to(site) for path in found.values()), found


def test_editable_install_maps_drivers(built: Built, tmp_path: Path) -> None:
    """A fresh venv with the tree installed editable takes upsagent.drivers from drivers/."""
    found = _install_and_check(built.editable, tmp_path / "venv")
    src = built.src
    assert found["upsagent"] == src / "upsagent" / "__init__.py"
    assert found["base"] == src / "drivers" / "base.py"
    assert found["registry"] == src / "drivers" / "registry.py"
    assert found["replay"] == src / "drivers" / "replay.py"
    assert found["probe"] == src / "upsagent" / PROBE / "__init__.py"
    assert found["drivers_probe"] == src / "drivers" / PROBE / "__init__.py"


def test_this_venv_maps_drivers_to_the_tree(tmp_path: Path) -> None:
    """The venv running the tests (make's editable install) maps upsagent.drivers to drivers/,
    for an interpreter and for the console script the tests start, from any folder."""
    # this venv's own record (the tree's upsagent.egg-info is on sys.path too)
    dists = list(metadata.distributions(name="upsagent", path=[sysconfig.get_path("purelib")]))
    direct_url = dists[0].read_text("direct_url.json") if dists else None
    if not direct_url or not json.loads(direct_url).get("dir_info", {}).get("editable"):
        pytest.skip("upsagent is not installed editable in this venv")
    out = _run(sys.executable, "-c",
               "import upsagent, upsagent.drivers.registry as r; "
               "print(upsagent.__file__); print(r.__file__)", cwd=tmp_path)
    assert out.split() == [str(ROOT / "upsagent" / "__init__.py"),
                           str(ROOT / "drivers" / "registry.py")]
    _console_script_loads_registry(Path(sys.executable).parent / "upsagent", tmp_path)
