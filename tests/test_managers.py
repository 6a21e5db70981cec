"""The managers backends are built from: ``[[slave.vcenter]]``, ``[[slave.xenpool]]`` and
``[host.ssh]`` parsed and checked (each error naming the key and the reason), exported and
read back, refused by check-config until their backends land; ``Backend.build`` and the
agent building one backend per manager, not one per kind."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.task import Clock

from upsagent.agent.daemon import SlaveDaemon
from upsagent.config import ConfigError, load_toml, loads_toml, to_toml
from upsagent.config.managers import (
    LocalConfig, ManagerConfig, SshTargetConfig, VcenterConfig, XenMasterConfig,
    XenPoolConfig)
from upsagent.config.slaveconf import SlaveConfig
from upsagent.config.slavecheck import plan_problems
from upsagent.hypervisors import base
from upsagent.hypervisors.base import backend_class, Backend, build_backend
from upsagent.hypervisors.local import LocalBackend
from tests.test_slave_daemon import FakeMonitor, FakeRunner

MONITOR = '[[slave.monitor]]\nups = "ups1@nas"\nuser = "mon"\npassword = "pw"\n'


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text, encoding="utf-8")
    os.chmod(path, mode)
    return path


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """The files the sections below name: a private password file, a private SSH key, a
    CA file, known_hosts and a secrets file."""
    write(tmp_path / "vc1.pw", "vc-secret\n")
    write(tmp_path / "id_ed25519", "-----BEGIN OPENSSH PRIVATE KEY-----\n")
    write(tmp_path / "vc1-ca.pem", "-----BEGIN CERTIFICATE-----\n", 0o644)
    write(tmp_path / "known_hosts", "192.0.2.10 ssh-ed25519 AAAA\n", 0o644)
    write(tmp_path / "secrets.toml", '"root" = "pool-secret"\n')
    return tmp_path


FULL = """
[slave]
name = "mgmt"
secrets_file = "secrets.toml"
[[slave.vcenter]]
name = "vc1"
url = "https://vc1.example.com/sdk"
user = "upsagent@vsphere.local"
password_file = "vc1.pw"
ca_file = "vc1-ca.pem"
vcenter_vm = "VCSA"
last_vms = ["dns*", "ad?"]
[[slave.vcenter]]
name = "esx9"
url = "https://esx9.example.com"
user = "admin"
password = "esx-secret"
thumbprint = "SHA256:{thumb}"
agent_vm = "ups-agent"
last_vms = "dc1"
[[slave.xenpool]]
name = "pool1"
url = "https://xen1.example.com"
user = "root"
insecure = true
{monitor}
[[host]]
name = "mgmt"
shutdown_after = 300
[[host]]
name = "esx1.example.com"
backend = "vsphere"
vcenter = "vc1"
shutdown_after = 60
[[host]]
name = "esx2.example.com"
backend = "vsphere"
vcenter = "vc1"
shutdown_after = 60
[[host]]
name = "esx9"
backend = "vsphere"
vcenter = "esx9"
shutdown_after = 60
[[host]]
name = "xen2"
backend = "xen"
pool = "pool1"
shutdown_after = 60
[[host]]
name = "nas"
backend = "ssh"
shutdown_after = 120
[host.ssh]
address = "192.0.2.10"
user = "upsagent"
key_file = "id_ed25519"
known_hosts = "known_hosts"
command = ["/sbin/poweroff"]
[[host]]
name = "backup"
backend = "ssh"
shutdown_after = 120
[host.ssh]
address = "192.0.2.11"
port = 2222
user = "root"
known_hosts = "known_hosts"
"""
THUMB = ":".join(["AB"] * 32)


def full(files: Path, **changes: str) -> SlaveConfig:
    text = FULL.format(thumb=THUMB, monitor=MONITOR)
    for old, new in changes.items():
        text = text.replace(old, new)
    slave = load_toml(write(files / "upsagent.toml", text)).slave
    assert slave is not None
    return slave


def test_manager_sections_become_records(files: Path) -> None:
    """Each section is a frozen record; paths are taken from the TOML file's directory;
    the passwords come from password_file, password or the secrets file (by user name)."""
    slave = full(files)
    vc1 = VcenterConfig("vc1", "https://vc1.example.com/sdk", "upsagent@vsphere.local",
                        "vc-secret", ca_file=str(files / "vc1-ca.pem"), vcenter_vm="VCSA",
                        last_vms=("dns*", "ad?"))
    esx9 = VcenterConfig("esx9", "https://esx9.example.com", "admin", "esx-secret",
                         thumbprint=f"SHA256:{THUMB}", agent_vm="ups-agent",
                         last_vms=("dc1",))
    pool1 = XenPoolConfig("pool1", "https://xen1.example.com", "root", "pool-secret",
                          insecure=True)
    assert (slave.vcenters, slave.xenpools) == ((vc1, esx9), (pool1,))
    nas = SshTargetConfig("nas", "192.0.2.10", "upsagent", str(files / "known_hosts"),
                          key_file=str(files / "id_ed25519"), command=("/sbin/poweroff",))
    backup = SshTargetConfig("backup", "192.0.2.11", "root", str(files / "known_hosts"),
                             password="pool-secret", port=2222,
                             command=("/sbin/shutdown", "-h", "+0"))
    assert dict(slave.host_managers) == {
        "esx1.example.com": vc1, "esx2.example.com": vc1, "esx9": esx9, "xen2": pool1,
        "nas": nas, "backup": backup}
    assert "secret" not in repr(slave.vcenters) + repr(slave.host_managers)
    with pytest.raises(AttributeError):
        vc1.url = "https://elsewhere"  # type: ignore[misc]


def test_hosts_are_grouped_by_manager(files: Path) -> None:
    """One manager per vCenter or pool (its hosts share it), per SSH host, and this OS."""
    slave = full(files)
    assert [(type(m).__name__, m.name, names) for m, names in slave.managers()] == [
        ("LocalConfig", "mgmt", ("mgmt",)),
        ("VcenterConfig", "vc1", ("esx1.example.com", "esx2.example.com")),
        ("VcenterConfig", "esx9", ("esx9",)),
        ("XenPoolConfig", "pool1", ("xen2",)),
        ("SshTargetConfig", "nas", ("nas",)),
        ("SshTargetConfig", "backup", ("backup",))]
    local = slave.managers()[0][0]
    assert local == LocalConfig("mgmt", slave.shutdown_command, slave.shutdown_budget,
                                slave.powerdown_flag)


def test_the_hosts_of_a_pool_are_one_cluster(files: Path) -> None:
    """xen hosts of one pool enter maintenance one after the other (R5): their cluster is
    the pool unless one is written; vSphere hosts have none unless written."""
    slave = full(files, **{'pool = "pool1"\nshutdown_after = 60':
                           'pool = "pool1"\nshutdown_after = 60\n[[host]]\nname = "xen3"\n'
                           'backend = "xen"\npool = "pool1"\nshutdown_after = 60'})
    clusters = {h.name: h.cluster for h in slave.plan.hosts}
    assert clusters["xen2"] == clusters["xen3"] == "xenpool:pool1"
    assert clusters["esx1.example.com"] is None
    written = full(files, **{'pool = "pool1"': 'pool = "pool1"\ncluster = "rack2"'})
    assert {h.name: h.cluster for h in written.plan.hosts}["xen2"] == "rack2"


def test_an_ssh_hosts_budget_is_its_shutdown_duration(files: Path) -> None:
    """The ssh record the agent builds from carries the host's shutdown_duration as the
    budget of its command, and the backend built from it uses it."""
    pytest.importorskip("twisted.conch.endpoints")
    from upsagent.hypervisors.ssh import SshBackend
    slave = full(files, **{'name = "backup"\nbackend = "ssh"\n':
                           'name = "backup"\nbackend = "ssh"\nshutdown_duration = 45\n'})
    budgets = {m.name: m.budget for m, _ in slave.managers() if isinstance(m, SshTargetConfig)}
    assert budgets == {"nas": 60.0, "backup": 45.0}  # nas: the default duration
    backup = next(m for m, _ in slave.managers() if m.name == "backup")
    backend = build_backend(backup, Clock(), FakeRunner())
    assert isinstance(backend, SshBackend) and backend.budget == 45.0
    assert slave.host_managers["backup"].budget == 30.0  # the record as read is unchanged


def test_insecure_and_unused_managers_are_warned_about(files: Path) -> None:
    """insecure = true is said loudly at every load (check-config prints it, the agent
    logs it); a section no host names is noted."""
    source = str(files / "upsagent.toml")
    insecure = (f'{source}: slave.xenpool[1].insecure: the certificate of xenpool "pool1" '
                "(https://xen1.example.com) is not verified: anyone on the network path can "
                "pose as it and take its password; set ca_file or thumbprint instead")
    assert full(files).warnings == (insecure,)
    slave = full(files, **{'vcenter = "esx9"': 'vcenter = "vc1"'})
    assert slave.warnings == (insecure, f'{source}: slave.vcenter[2]: no [[host]] names '
                                        '"esx9" (vcenter = "esx9"): it is not used')
    assert full(files, **{"insecure = true": 'ca_file = "vc1-ca.pem"'}).warnings == ()


# -- refused: each error names the key and says why --------------------------------------

VC = '[[slave.vcenter]]\nname = "vc1"\nurl = "https://vc1/sdk"\nuser = "u"\npassword = "p"\n'
ESX = '[[host]]\nname = "esx1"\nbackend = "vsphere"\nvcenter = "vc1"\n'
SSH = ('[[host]]\nname = "nas"\nbackend = "ssh"\n[host.ssh]\naddress = "192.0.2.10"\n'
       'user = "u"\npassword = "p"\nknown_hosts = "{known}"\n')


@pytest.mark.parametrize("text, message", [
    (VC.replace('url = "https://vc1/sdk"\n', "") + ESX,
     "slave.vcenter[1].url: missing (it is required)"),
    (VC.replace("https://vc1/sdk", "http://vc1/sdk") + ESX,
     'slave.vcenter[1].url: must be an https:// URL (the password is sent over it), not '
     '"http://vc1/sdk"'),
    (VC.replace("https://vc1/sdk", "https://u:pw@vc1/sdk") + ESX,
     "slave.vcenter[1].url: must not carry a user or password: write user and "
     "password_file"),
    (VC + 'ca_file = "{known}"\ninsecure = true\n' + ESX,
     "slave.vcenter[1].insecure: insecure = true turns off the certificate check that "
     "ca_file sets up; keep one"),
    (VC + 'ca_file = "{known}"\nthumbprint = "SHA256:00"\n' + ESX,
     "slave.vcenter[1].thumbprint: ca_file and thumbprint are both given; keep one"),
    (VC + 'thumbprint = "AB:CD"\n' + ESX,
     'slave.vcenter[1].thumbprint: "AB:CD" is not "SHA256:" and the certificate\'s SHA-256 '
     "fingerprint in hex"),
    (VC + 'ca_file = "/nonexistent/ca.pem"\n' + ESX,
     "slave.vcenter[1].ca_file: cannot read /nonexistent/ca.pem: No such file or directory"),
    (VC + VC + ESX, 'slave.vcenter[2].name: "vc1" is already the name of slave.vcenter[1]'),
    (VC + 'vcenter_vm = " "\n' + ESX,
     "slave.vcenter[1].vcenter_vm: must be a VM's name as vCenter shows it, not empty"),
    (VC + "agent_vm = 3\n" + ESX, "slave.vcenter[1].agent_vm: must be a non-empty string"),
    (VC + "last_vms = 3\n" + ESX,
     'slave.vcenter[1].last_vms: must be a list of VM name patterns (such as ["dns*", '
     '"ad?"]), not an integer'),
    (VC + 'last_vms = ["dns*", ""]\n' + ESX,
     "slave.vcenter[1].last_vms: entry 2 must be a non-empty VM name pattern, not ''"),
    ('[[slave.xenpool]]\nname = "p1"\nurl = "https://x/"\nuser = "u"\npassword = "p"\n'
     'vcenter_vm = "VCSA"\n[[host]]\nname = "x1"\nbackend = "xen"\npool = "p1"\n',
     "slave.xenpool[1].vcenter_vm: unknown key"),
    (VC + "pasword = 1\n" + ESX,
     'slave.vcenter[1].pasword: unknown key (did you mean "password"?)'),
    (VC.replace('password = "p"\n', "") + ESX,
     'slave.vcenter[1]: no password for "u": set password, password_file or a '
     "slave.secrets_file entry"),
    ('[slave]\nvcenter = "vc1"\n', "slave.vcenter: must be an array of tables: write "
                                   "[[slave.vcenter]]"),
    (VC + ESX.replace('"vc1"\n', '"vc9"\n'),
     'host[1].vcenter: no [[slave.vcenter]] is named "vc9" (the names are: "vc1")'),
    (VC + ESX.replace('vcenter = "vc1"\n', ""),
     'host[1].vcenter: missing: a vsphere host names its [[slave.vcenter]] (the names are: '
     '"vc1")'),
    (ESX, 'host[1].vcenter: no [[slave.vcenter]] is named "vc1" (there is no '
          "[[slave.vcenter]])"),
    (VC + ESX.replace('"vsphere"', '"xen"'),
     'host[1].vcenter: only a vsphere host has a vcenter (this one\'s backend is "xen")'),
    ('[[host]]\nname = "xen2"\nbackend = "xen"\n',
     "host[1].pool: missing: a xen host names its [[slave.xenpool]] (there is no "
     "[[slave.xenpool]])"),
    ('[[host]]\nname = "nas"\nbackend = "ssh"\n',
     "host[1].ssh: missing: an ssh host needs its [host.ssh] table (address, user, key_file "
     "or a password, known_hosts)"),
    (SSH + 'command = "/sbin/poweroff now"\n',
     'host[1].ssh.command: must be a list of arguments (no shell): write ["/sbin/poweroff", '
     '"now"]'),
    (SSH.replace('known_hosts = "{known}"\n', ""),
     "host[1].ssh.known_hosts: missing (it is required: the host's key is checked against "
     "it, never trusted on first use)"),
    (SSH + "port = 0\n", "host[1].ssh.port: must be a port number (1-65535), not 0"),
    (SSH + 'key_file = "{known}"\n', "host[1].ssh.password: key_file is given too; keep one "
                                     "way to log in"),
    (SSH.replace('password = "p"\n', ""), 'host[1].ssh: no way to log in as "u": set '
                                          "key_file, or password, password_file or a "
                                          "slave.secrets_file entry"),
    (SSH + 'host = "x"\n', "host[1].ssh.host: unknown key"),
])
def test_bad_manager_settings_are_refused(tmp_path: Path, text: str, message: str) -> None:
    known = write(tmp_path / "known_hosts", "", 0o644)
    with pytest.raises(ConfigError) as info:
        loads_toml(MONITOR + text.replace("{known}", str(known)), source="u.toml")
    assert str(info.value).startswith(f"u.toml: {message}")


def test_secret_files_others_can_read_are_refused(tmp_path: Path) -> None:
    """The same check as every secret file of upsagent.toml: a password_file or an SSH
    key_file with any group or other bit is refused, with the file, its mode and the fix;
    so is a password written in an upsagent.toml every local user can read."""
    known = write(tmp_path / "known_hosts", "", 0o644)
    pw = write(tmp_path / "vc1.pw", "x\n", 0o640)
    text = MONITOR + VC.replace('password = "p"', f'password_file = "{pw}"') + ESX
    with pytest.raises(ConfigError) as info:
        load_toml(write(tmp_path / "u.toml", text))
    assert str(info.value) == (f"{pw}: mode 0640 lets users other than its owner read the "
                               f'passwords it holds; run "chmod 600 {pw}" (and check its '
                               "owner)")
    key = write(tmp_path / "id", "k\n", 0o644)
    text = MONITOR + SSH.replace('password = "p"', f'key_file = "{key}"').replace(
        "{known}", str(known))
    with pytest.raises(ConfigError) as info:
        load_toml(write(tmp_path / "u.toml", text))
    assert str(info.value) == (f"{key}: mode 0644 lets users other than its owner read the "
                               f'private key it holds; run "chmod 600 {key}" (and check its '
                               "owner)")
    text = MONITOR.replace('password = "pw"\n', 'password_file = "vc1.pw"\n')
    write(tmp_path / "vc1.pw", "x\n", 0o600)
    for section, key_path in ((VC + ESX, "slave.vcenter[1].password"),
                              (SSH.replace("{known}", str(known)), "host[1].ssh.password")):
        path = write(tmp_path / "u.toml", text + section, 0o644)
        with pytest.raises(ConfigError, match=re.escape(f"({key_path})")):
            load_toml(path)
        os.chmod(path, 0o640)
        assert load_toml(path).slave is not None


def test_manager_sections_survive_export(files: Path) -> None:
    """to_toml writes the sections and each host's manager; reading them back gives the
    same records (passwords inline, as for the users and monitors)."""
    first = load_toml(write(files / "upsagent.toml", FULL.format(thumb=THUMB,
                                                                 monitor=MONITOR)))
    text = to_toml(first)
    assert "[[slave.vcenter]]" in text and "[host.ssh]" in text
    again = loads_toml(text, source=first.source)
    assert again.slave == first.slave
    assert again.slave is not None and first.slave is not None
    assert again.slave.managers() == first.slave.managers()


def test_check_config_accepts_every_manager_kind(
        files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The sections are accepted and checked, every kind has its backend now (vsphere, xen,
    ssh: tests/test_vsphere.py, test_xen.py, test_ssh.py), and the insecure warning is
    printed."""
    from upsagent.cli.configcmds import check_config

    path = write(files / "upsagent.toml", FULL.format(thumb=THUMB, monitor=MONITOR))
    check_config(["--config", str(path)])
    out, err = capsys.readouterr()
    assert "slave.xenpool[1].insecure: the certificate of" in out
    assert [line for line in err.splitlines() if "no backend of this kind" in line] == []


# -- one backend per manager -------------------------------------------------------------


class FakeBackend(Backend):
    """Records what it was built from."""

    kind = "fake"
    built: list[FakeBackend] = []

    def __init__(self, config: ManagerConfig, reactor: Any, runner: Any) -> None:
        self.config, self.reactor, self.runner = config, reactor, runner

    @classmethod
    def build(cls, config: ManagerConfig, reactor: Any, runner: Any) -> FakeBackend:
        cls.built.append(cls(config, reactor, runner))
        return cls.built[-1]


def test_the_agent_builds_one_backend_per_manager(files: Path) -> None:
    """Two hosts of one vCenter share one backend; each SSH host has its own; each
    backend is built once, from its manager's record, the reactor and the runner."""
    FakeBackend.built = []
    slave = replace(full(files), state_file=str(files / "state.json"), status_socket=None)
    clock, runner = Clock(), FakeRunner()
    daemon = SlaveDaemon(slave, clock, runner=runner, backend_factory=FakeBackend.build,
                         monitor_factory=lambda s, e: FakeMonitor(s, e))
    daemon.start()
    assert daemon.executor is not None
    backends = daemon.executor.backends
    assert backends["esx1.example.com"] is backends["esx2.example.com"]
    assert len({id(b) for b in backends.values()}) == 6 == len(FakeBackend.built)
    assert backends["nas"] is not backends["backup"]
    by_host = {host: backend.config for host, backend in backends.items()
               if isinstance(backend, FakeBackend)}
    assert by_host == {host: manager for manager, hosts in slave.managers()
                       for host in hosts}
    assert all(b.reactor is clock and b.runner is runner for b in FakeBackend.built)


def test_stopping_the_agent_closes_every_backend_once(files: Path) -> None:
    """stop() calls each backend's close() once (a xen pool logs out there)."""
    closed: list[int] = []

    class Closing(FakeBackend):
        def close(self) -> Any:
            closed.append(id(self))
            return super().close()

    FakeBackend.built = []
    slave = replace(full(files), state_file=str(files / "state.json"), status_socket=None)
    daemon = SlaveDaemon(slave, Clock(), runner=FakeRunner(), backend_factory=Closing.build,
                         monitor_factory=lambda s, e: FakeMonitor(s, e))
    daemon.start()
    assert closed == []
    daemon.stop()
    assert sorted(closed) == sorted(id(b) for b in FakeBackend.built) and len(closed) == 6


def test_a_backend_that_cannot_be_built_stops_the_start(files: Path) -> None:
    """The error names the manager, its hosts and why; a dry run goes on without it."""
    def factory(config: ManagerConfig, reactor: Any, runner: Any) -> Backend:
        if isinstance(config, VcenterConfig):
            raise RuntimeError("connection refused")
        return FakeBackend.build(config, reactor, runner)
    slave = replace(full(files), state_file=str(files / "state.json"), status_socket=None)
    with pytest.raises(ConfigError) as info:
        SlaveDaemon(slave, Clock(), runner=FakeRunner(), backend_factory=factory,
                    monitor_factory=lambda s, e: FakeMonitor(s, e)).start()
    assert str(info.value) == (f'{slave.source}: backend vsphere (vcenter "vc1") for '
                               "esx1.example.com, esx2.example.com: cannot be used by the "
                               "agent: connection refused")
    daemon = SlaveDaemon(replace(slave, dry_run=True), Clock(), runner=FakeRunner(),
                         backend_factory=factory,
                         monitor_factory=lambda s, e: FakeMonitor(s, e))
    daemon.start()
    assert daemon.executor is not None
    assert set(daemon.executor.backends) == {"mgmt", "xen2", "nas", "backup"}


def test_the_registry_builds_the_local_backend(tmp_path: Path) -> None:
    """Without a factory the registry builds each manager: this OS from [slave]'s
    settings; a kind without a registered class is a KeyError; a missing extra names the
    extra to install."""
    slave = loads_toml(f'[slave]\nname = "me"\nshutdown_command = ["/sbin/poweroff"]\n'
                       f'state_file = "{tmp_path}/s.json"\npowerdown_flag = "/etc/kp"\n'
                       'status_socket = ""\n'
                       f'{MONITOR}[[host]]\nname = "me"\nshutdown_after = 60\n',
                       source="u.toml").slave
    assert slave is not None and plan_problems(slave) == ([], [])
    runner = FakeRunner()
    daemon = SlaveDaemon(slave, Clock(), runner=runner,
                         monitor_factory=lambda s, e: FakeMonitor(s, e))
    daemon.start()
    assert daemon.executor is not None
    local = daemon.executor.backends["me"]
    assert isinstance(local, LocalBackend)
    assert (local.name, local.shutdown_command, local.powerdown_flag, local.runner) == (
        "me", ("/sbin/poweroff",), "/etc/kp", runner)
    vc = VcenterConfig("vc1", "https://vc1", "u", "p")
    with pytest.raises(TypeError, match="not VcenterConfig"):
        LocalBackend.build(vc, Clock(), runner)
    pool = XenPoolConfig("pool1", "https://xen1", "u", "p")
    assert build_backend(pool, Clock(), runner).kind == "xen"   # built, not yet connected
    with pytest.raises(KeyError, match="unknown backend 'hyper-v'"):
        backend_class("hyper-v")


def test_a_missing_extra_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(base.BACKENDS, "vsphere",  # type: ignore[arg-type]
                        "upsagent.hypervisors.no_such_module:VsphereBackend")
    with pytest.raises(ImportError, match=r"backend 'vsphere' is not available: install "
                                          r"upsagent\[vsphere\]"):
        build_backend(VcenterConfig("vc1", "https://vc1", "u", "p"), Clock(), FakeRunner())


# -- the pool master protected by its own agent (xenmaster) ------------------------------

XENMASTER = """
[slave]
name = "host1"
shutdown_command = ["/sbin/poweroff"]
powerdown_flag = "/etc/killpower"
state_file = "{state}"
status_socket = ""
[[slave.xenpool]]
name = "pool1"
url = "https://localhost"
user = "root"
password = "pool-secret"
thumbprint = "SHA256:{thumb}"
{monitor}
[[host]]
name = "host1"
backend = "xenmaster"
pool = "pool1"
shutdown_after = 200
vm_shutdown_timeout = 60
vm_groups = [{{ patterns = ["app*"], timeout = 30 }}]
"""


def xenmaster(tmp_path: Path, extra: str = "", **changes: str) -> str:
    text = XENMASTER.format(thumb=THUMB, monitor=MONITOR, state=tmp_path / "s.json") + extra
    for old, new in changes.items():
        text = text.replace(old, new)
    return text


def test_a_xenmaster_host_is_the_pool_master_and_its_own_manager(tmp_path: Path) -> None:
    """Its manager is its pool with this OS's shutdown settings; it is the pool master
    and the agent's own host; a xen member of the same pool has the pool's backend."""
    member = '[[host]]\nname = "host2"\nbackend = "xen"\npool = "pool1"\nshutdown_after = 60\n'
    slave = loads_toml(xenmaster(tmp_path, member), source="u.toml").slave
    assert slave is not None
    pool = XenPoolConfig("pool1", "https://localhost", "root", "pool-secret",
                         thumbprint=f"SHA256:{THUMB}")
    assert slave.managers() == [
        (XenMasterConfig("host1", pool, LocalConfig("host1", ("/sbin/poweroff",), 30.0,
                                                    "/etc/killpower")), ("host1",)),
        (pool, ("host2",))]
    host = slave.plan.hosts[0]
    assert host.is_pool_master and host.traits.agent and not host.left_alone
    assert slave.plan.agent_host == host
    assert plan_problems(slave) == ([], [])
    again = loads_toml(to_toml(loads_toml(xenmaster(tmp_path, member), source="u.toml")),
                       source="u.toml").slave
    assert again == slave


@pytest.mark.parametrize("changes, extra, message", [
    ({'pool = "pool1"\nshutdown_after = 200': "shutdown_after = 200"}, "",
     'host[1].pool: missing: a xenmaster host names its [[slave.xenpool]] (the names are: '
     '"pool1")'),
    ({'pool = "pool1"\n': 'pool = "pool1"\npool_master = false\n'}, "",
     'host[1].pool_master: a xenmaster host is the pool master the agent runs on; a pool '
     'member is a "xen" host'),
    ({}, '[[host]]\nname = "nas"\nbackend = "ssh"\npool = "pool1"\n',
     'host[2].pool: only a xen or xenmaster host has a pool (this one\'s backend is "ssh")'),
    ({}, '[[host]]\nname = "host2"\nbackend = "xen"\npool = "pool1"\npool_master = true\n',
     'host[2].pool_master: pool "pool1" already has its master, host[1] ("host1"); a pool '
     'has one'),
])
def test_bad_xenmaster_settings_are_refused(tmp_path: Path, changes: dict[str, str],
                                            extra: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        loads_toml(xenmaster(tmp_path, extra, **changes), source="u.toml")
    assert str(info.value).startswith(f"u.toml: {message}")


def test_a_xenmaster_host_and_a_local_host_are_one_machine_too_many(tmp_path: Path) -> None:
    slave = loads_toml(xenmaster(tmp_path, '[[host]]\nname = "vm"\nshutdown_after = 60\n'),
                       source="u.toml").slave
    assert slave is not None
    errors, _ = plan_problems(slave)
    assert any("more than one host of the agent's own machine (backend local or "
               "xenmaster): host1, vm" in line for line in errors), errors


def test_the_agent_builds_the_xenmaster_backend(tmp_path: Path) -> None:
    pytest.importorskip("XenAPI")
    from upsagent.hypervisors.xenmaster import XenMasterBackend
    slave = loads_toml(xenmaster(tmp_path), source="u.toml").slave
    assert slave is not None
    runner = FakeRunner()
    daemon = SlaveDaemon(slave, Clock(), runner=runner,
                         monitor_factory=lambda s, e: FakeMonitor(s, e))
    daemon.start()
    assert daemon.executor is not None
    built = daemon.executor.backends["host1"]
    assert isinstance(built, XenMasterBackend)
    assert (built.local.shutdown_command, built.local.powerdown_flag, built.local.runner) \
        == (("/sbin/poweroff",), "/etc/killpower", runner)
    assert built.pool.config.url == "https://localhost"


# -- [host.esxi]: the direct ESXi session of a vsphere host ------------------------------

ESXI = ESX + 'runs_vcenter = true\n[host.esxi]\nuser = "root"\n'


def test_host_esxi_becomes_a_record_on_its_vcenter(tmp_path: Path) -> None:
    """[host.esxi]: url defaults to https://<host name>/sdk, the password comes from one
    place (here the secrets file, keyed by user), the certificate keys as for
    [[slave.vcenter]]; managers() gives the vCenter's record its hosts' direct sessions
    with their runs_vcenter / runs_agent marks."""
    from upsagent.config.managers import EsxiConfig
    ca = write(tmp_path / "esx-ca.pem", "-----BEGIN CERTIFICATE-----\n", 0o644)
    write(tmp_path / "secrets.toml", '"root" = "esx-root"\n')
    text = ('[slave]\nsecrets_file = "secrets.toml"\n' + MONITOR + VC + ESXI
            + f'ca_file = "{ca}"\n'
            + ESX.replace("esx1", "esx2") + '[host.esxi]\nurl = "https://192.0.2.7/sdk"\n'
            'user = "upsagent"\npassword = "pw2"\ninsecure = true\n')
    slave = load_toml(write(tmp_path / "u.toml", text)).slave
    assert slave is not None
    one = EsxiConfig("esx1", "https://esx1/sdk", "root", "esx-root", ca_file=str(ca))
    two = EsxiConfig("esx2", "https://192.0.2.7/sdk", "upsagent", "pw2", insecure=True)
    assert dict(slave.host_esxi) == {"esx1": one, "esx2": two}
    [(vc, hosts)] = [(m, h) for m, h in slave.managers() if isinstance(m, VcenterConfig)]
    assert hosts == ("esx1", "esx2")
    assert vc.esxi == (replace(one, runs_vcenter=True), two)
    assert "esx-root" not in repr(vc) and "pw2" not in repr(slave.host_esxi)
    assert slave.warnings == (
        f'{tmp_path / "u.toml"}: host[2].esxi.insecure: the certificate of the ESXi host '
        '"esx2" (https://192.0.2.7/sdk) is not verified: anyone on the network path can '
        "pose as it and take its password; set ca_file or thumbprint instead",)
    again = loads_toml(to_toml(load_toml(tmp_path / "u.toml")), source="again")
    assert again.slave is not None and again.slave.host_esxi == slave.host_esxi
    assert again.slave.managers() == slave.managers()


@pytest.mark.parametrize("text, message", [
    (VC + ESXI.replace('user = "root"\n', ""), "host[1].esxi.user: missing (it is required)"),
    (VC + ESXI.replace('user = "root"\n', 'user = "root"\nname = "x"\n'),
     "host[1].esxi.name: unknown key"),
    (VC + ESXI + 'url = "http://esx1/sdk"\n',
     'host[1].esxi.url: must be an https:// URL (the password is sent over it), not '
     '"http://esx1/sdk"'),
    (VC + ESXI.replace('user = "root"\n', 'user = "root"\npassword = "p"\n')
     + 'thumbprint = "SHA256:{thumb}"\ninsecure = true\n',
     "host[1].esxi.insecure: insecure = true turns off the certificate check that "
     "thumbprint sets up; keep one"),
    (VC + ESXI.replace('user = "root"\n', 'user = "root"\npassword = "p"\n')
     + 'ca_file = "/nonexistent/ca.pem"\n',
     "host[1].esxi.ca_file: cannot read /nonexistent/ca.pem: No such file or directory"),
    (VC + ESXI, 'host[1].esxi: no password for "root": set password, password_file or a '
                "slave.secrets_file entry"),
    (ESXI.replace('"vsphere"', '"local"').replace('vcenter = "vc1"\n', "")
     .replace("runs_vcenter = true\n", ""),
     'host[1].esxi: only a vsphere host has a direct ESXi session (this one\'s backend is '
     '"local")'),
    (VC + ESX + 'esxi = "esx1"\n', "host[1].esxi: must be a table"),
])
def test_bad_host_esxi_is_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        loads_toml(MONITOR + text.replace("{thumb}", THUMB), source="u.toml")
    assert str(info.value).startswith(f"u.toml: {message}")


def test_host_esxi_password_file_others_can_read_is_refused(tmp_path: Path) -> None:
    pw = write(tmp_path / "esx1.pw", "x\n", 0o644)
    text = MONITOR + VC + ESXI + f'password_file = "{pw}"\n'
    with pytest.raises(ConfigError) as info:
        load_toml(write(tmp_path / "u.toml", text))
    assert str(info.value).startswith(f"{pw}: mode 0644 lets users other than its owner "
                                      "read the passwords it holds")
    text = MONITOR.replace('password = "pw"\n', f'password_file = "{pw}"\n') + \
        VC.replace('password = "p"\n', f'password_file = "{pw}"\n') + ESXI + \
        'password = "inline"\n'
    os.chmod(pw, 0o600)
    with pytest.raises(ConfigError, match=re.escape("(host[1].esxi.password)")):
        load_toml(write(tmp_path / "u.toml", text, 0o644))


def test_check_config_warns_of_a_vcenter_host_without_host_esxi(tmp_path: Path) -> None:
    text = MONITOR + VC + ESX + "shutdown_after = 60\nruns_vcenter = true\n"
    slave = loads_toml(text, source="u.toml").slave
    assert slave is not None
    _, warnings = plan_problems(slave, available=("vsphere", "local"))
    assert ('u.toml: host[1].runs_vcenter (host "esx1"): no [host.esxi]: once its VMs are '
            "stopped, the vCenter VM among them, the host's own shutdown cannot go through "
            "vCenter and fails; add [host.esxi] (its own endpoint) for it") in warnings
    slave = loads_toml(text + '[host.esxi]\nuser = "root"\npassword = "p"\n',
                       source="u.toml").slave
    assert slave is not None
    assert not any("[host.esxi]" in w for w in plan_problems(
        slave, available=("vsphere", "local"))[1])
