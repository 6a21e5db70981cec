"""``Backend.check`` of the vsphere backend and ``upsagent check-config --connect``, against
vcsim-ext: hosts that exist, privileges the role lacks (-deny-priv), free ESXi (-free-esxi),
a refused login; nothing changed in the simulator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pyVmomi")

from upsagent.hypervisors.base import Backend  # noqa: E402
from upsagent.hypervisors.vsphere import VsphereBackend  # noqa: E402
from upsagent.system.runner import Outcome  # noqa: E402
from tests.test_vsphere import (  # noqa: E402, F401 - fixtures
    H0, H1, ThreadSeam, backend, result_of, sim, simulator_binary)
from tests.vcsimext import PASSWORD, USER, Vcsim  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def check(b: VsphereBackend, seam: ThreadSeam, hosts: list[str]) -> list[str]:
    lines = result_of(b.check(hosts), seam)
    assert isinstance(lines, list)
    return lines


def test_default_check_has_nothing_to_say() -> None:
    assert result_of(Backend().check(["this-server"])) == []


def test_check_all_well_changes_nothing(sim: Vcsim) -> None:
    before = sim.state()
    b, seam, _ = backend(sim)
    assert check(b, seam, [H0, H1]) == []
    assert sim.state() == before


def test_check_names_a_missing_host(sim: Vcsim) -> None:
    b, seam, _ = backend(sim)
    lines = check(b, seam, [H0, "esx9.example.com"])
    assert len(lines) == 1
    assert lines[0].startswith("host esx9.example.com: not found") and H0 in lines[0]


@pytest.mark.vcsim("-deny-priv", "Host.Config.Maintenance")
def test_check_names_a_missing_privilege(sim: Vcsim) -> None:
    b, seam, _ = backend(sim)
    lines = check(b, seam, [H0])
    assert lines == [f"host {H0}: the user {USER} lacks Host.Config.Maintenance "
                     "(see the role in upsagent-slave(8))"]


def test_check_refused_login(sim: Vcsim) -> None:
    b, seam, _ = backend(sim, password="wrong")
    lines = check(b, seam, [H0])
    assert len(lines) == 1 and lines[0].startswith(f"cannot log in to {sim.url}")


@pytest.mark.vcsim("-free-esxi")
def test_free_esxi_is_reported_at_connect_check_and_write(sim: Vcsim) -> None:
    b, seam, _ = backend(sim)
    result = result_of(b.connect(), seam)
    assert result.outcome is Outcome.FAILED
    assert "Hypervisor (esxBasic)" in result.detail and 'backend = "ssh"' in result.detail
    lines = check(b, seam, [H0])
    assert len(lines) == 1 and 'backend = "ssh"' in lines[0]
    result = result_of(b.enter_maintenance(H0, 10), seam)
    assert result.outcome is Outcome.FAILED and 'backend = "ssh"' in result.detail
    assert not sim.host(H0)["maintenance"]


def _config(tmp_path: Path, sim: Vcsim, hosts: list[str]) -> Path:
    pw = tmp_path / "vc1.pw"
    pw.write_text(PASSWORD + "\n")
    pw.chmod(0o600)
    text = f"""
[slave]
name = "mgmt"
[[slave.vcenter]]
name = "vc1"
url = "{sim.url}"
user = "{USER}"
password_file = "{pw}"
ca_file = "{sim.cert}"
[[slave.monitor]]
ups = "ups1@127.0.0.1:3493"
user = "mon"
password = "pw"
"""
    for host in hosts:
        text += (f'[[host]]\nname = "{host}"\nbackend = "vsphere"\nvcenter = "vc1"\n'
                 "maintenance_after = 60\nshutdown_after = 300\n")
    path = tmp_path / "upsagent.toml"
    path.write_text(text)
    path.chmod(0o600)
    return path


def _check_config(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "upsagent", "check-config", "--config",
                           str(path), *extra], capture_output=True, text=True, env=env,
                          timeout=120, cwd=ROOT)


def test_check_config_connect(tmp_path: Path, sim: Vcsim) -> None:
    before = sim.state()
    done = _check_config(_config(tmp_path, sim, [H0, H1]), "--connect")
    assert done.returncode == 0, done.stderr
    assert 'OK: connect: vcenter "vc1": 2 hosts checked' in done.stdout
    assert sim.state() == before


def test_check_config_connect_reports_and_fails(tmp_path: Path, sim: Vcsim) -> None:
    done = _check_config(_config(tmp_path, sim, [H0, "esx9"]), "--connect")
    assert done.returncode == 1
    assert 'upsagent: connect: vcenter "vc1": host esx9: not found' in done.stderr
    # without --connect nothing is logged in to
    assert _check_config(_config(tmp_path, sim, [H0, "esx9"])).returncode == 0


def test_check_config_connect_unreachable(tmp_path: Path, sim: Vcsim) -> None:
    sim.control("down", on="1")
    done = _check_config(_config(tmp_path, sim, [H0]), "--connect")
    assert done.returncode == 1
    assert 'upsagent: connect: vcenter "vc1": cannot log in' in done.stderr




def test_check_names_a_vcenter_vm_or_agent_vm_that_does_not_exist(sim: Vcsim) -> None:
    before = sim.state()
    b, seam, _ = backend(sim, vcenter_vm="VCSA", agent_vm=f"{H0}_VM0")
    assert check(b, seam, [H0]) == ["vcenter_vm = 'VCSA': no VM of that name (the host that "
                                    "runs it cannot be found)"]
    assert sim.state() == before
