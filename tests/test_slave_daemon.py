# -*- test-case-name: tests.test_slave_daemon -*-
"""``upsagent slave``: the configuration mapping, the daemon on a Clock with fakes, and the
judged test: our slave side by side with Debian's real upsmon on the same upsmon.conf.

Side by side: a real ``upsd`` + ``dummy-ups`` (tests/nutreal.py) serves ``dummy``; a real
upsmon (in a private /run/nut mount namespace) and ``upsagent slave --nut-config`` both run
as secondaries with the same upsmon.conf (POLLFREQ 1, HOSTSYNC 3, DEADTIME 4, FINALDELAY 0),
their SHUTDOWNCMD each touching its own file.  The same event is driven through the server
and both must shut down, or both not, within :data:`TOLERANCE` seconds of each other.  The
times measured are printed (``pytest -s``) as ``side-by-side <event>: upsmon X s, ours Y s``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from upsagent.config import loads_toml, to_toml
from upsagent.config.schema import ConfigError
from upsagent.config.slaveconf import MonitorConfig, SlaveConfig, from_upsmon
from upsagent.config.slavecheck import agent_backends, plan_problems
from upsagent.policy.events import CommLost, Event, UpsState
from upsagent.agent.daemon import SlaveDaemon
from upsagent.policy.rules import SHUTDOWN_RETRY
from upsagent.policy.plan import HostPlan, Plan, Supply, UpsPlan
from upsagent.config.upsmonconf import parse_upsmon_conf
from tests import nutreal
from tests.ourmaster import DEFAULT_USERS, OurMaster, ask, wait_for

# -- (a) the mapping -------------------------------------------------------------------


#: a [[slave.vcenter]] that vsphere hosts name with vcenter = "vc1"
VCENTER = ('[[slave.vcenter]]\nname = "vc1"\nurl = "https://vc1.example/sdk"\nuser = "u"\n'
           'password = "p"\n')


def test_native_slave_maps_onto_a_plan(tmp_path: Path) -> None:
    """[slave] + [[slave.monitor]] + [[host]] become the Plan, the monitors and the rest."""
    config = loads_toml(f"""
[slave]
name = "mgmt"
deadtime = 10
hostsync = 5
pollfreq = 2
state_file = "{tmp_path}/s.json"
shutdown_command = ["/sbin/poweroff"]
[slave.notify_flags]
ONBATT = ["SYSLOG", "EXEC"]
[[slave.monitor]]
ups = "ups1@nas:3493"
user = "mon"
password = "pw"
role = "primary"
warning_period = 180
shutdown_delay = 120
[[host]]
name = "mgmt"
shutdown_after = 60
shutdown_duration = 30
[[host]]
name = "esx1"
backend = "vsphere"
vcenter = "vc1"
maintenance_after = 30
shutdown_after = 90
shutdown_duration = 60
{VCENTER}""", source="t.toml")
    slave = config.slave
    assert slave is not None
    assert slave.plan.ups == (UpsPlan("ups1@nas:3493", "primary",
                                      slave.plan.ups[0].countdown),)
    assert slave.plan.ups[0].countdown is not None
    assert slave.plan.ups[0].countdown.cuts_at == 300
    assert [h.name for h in slave.plan.hosts] == ["mgmt", "esx1"]
    assert slave.plan.hosts[1].powered_by == (Supply("ups1@nas:3493"),)
    assert (slave.plan.deadtime, slave.plan.hostsync, slave.plan.name) == (10, 5, "mgmt")
    assert slave.shutdown_command == ("/sbin/poweroff",)
    [settings] = slave.monitor_settings()
    assert (settings.primary, settings.poll_freq, settings.password) == (True, 2.0, "pw")
    assert plan_problems(slave, available=("local", "vsphere")) == ([], [])


@pytest.mark.parametrize("text, message", [
    ('[slave]\nhostsinc = 3\n', "slave.hostsinc: unknown key (did you mean \"hostsync\"?)"),
    ('[[slave.monitor]]\nups = "u@h"\nuser = "m"\n', "slave.monitor[1]: no password"),
    ('[[slave.monitor]]\nups = "u@h:x"\nuser = "m"\npassword = "p"\n',
     "slave.monitor[1].ups: \"u@h:x\" is not name@host[:port]"),
    ('[slave]\nshutdown_command = "/sbin/poweroff now"\n', "slave.shutdown_command: must be "
     "a list of arguments"),
    ('[[host]]\nname = "h"\nshutdown_after = "1m"\n', "host[1].shutdown_after: must be a "
     "number"),
    ('[[host]]\nname = "h"\nbackend = "vsfere"\n', "host[1].backend: unknown backend"),
    ('[[host]]\nname = "h"\nbackend = "xenserver"\n', 'host[1].backend: unknown backend '
     '"xenserver" (did you mean "xen"?); the kinds are local, ssh, vsphere, xen, xenmaster, simulated'),
    ('[[host]]\nname = "h"\nbackend = "vsphere"\nvm_groups = [{patterns = ["db*"]}]\n',
     "host[1].vm_groups[1].timeout: is required"),
    ('[[host]]\nname = "h"\nvm_groups = [{patterns = ["a"], timeout = 1}, '
     '{patterns = ["b"], timeout = "2"}]\n', "host[1].vm_groups[2].timeout: must be a number"),
    ('[[host]]\nname = "h"\nvm_groups = {patterns = ["a"], timeout = 1}\n',
     "host[1].vm_groups: must be a list"),
    ('[[host]]\nname = "h"\npower_on_vms = "yes"\n',
     "host[1].power_on_vms: must be true or false"),
    ('[[host]]\nname = "h"\nruns_agent = 1\n', "host[1].runs_agent: must be true or false"),
    ('[slave]\nruntime_margin = 25\n', "slave.runtime_margin: must be a share of the need "
     "from 0 to 1 (0.25 adds 25 %), not 25"),
    ('[slave]\nruntime_margin = -0.1\n', "slave.runtime_margin: must be a share of the need "
     "from 0 to 1 (0.25 adds 25 %), not -0.1"),
    ('[slave]\nruntime_margin = "25%"\n', "slave.runtime_margin: must be a number (a share "
     "of the need, such as 0.25), not a string"),
])
def test_native_slave_errors_name_the_key(text: str, message: str) -> None:
    with pytest.raises(Exception) as info:
        loads_toml(text, source="t.toml")
    assert f"t.toml: {message}" in str(info.value)


def test_runtime_margin_and_pollfreq_alert_make_the_runtime_trigger(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """[slave] runtime_margin and pollfreq_alert reach the plan (R4b's margin: two polls +
    the share of the need), and check-config prints, per host, the runtime at which it
    acts, with the parts."""
    from upsagent.cli.configcmds import check_config

    text = (f'[slave]\nstate_file = "{tmp_path}/s"\ndry_run = true\npollfreq_alert = 10\n'
            'runtime_margin = 0.5\n[[slave.monitor]]\nups = "u@h"\nuser = "m"\n'
            'password = "p"\n[[host]]\nname = "me"\nshutdown_after = 300\n'
            'shutdown_duration = 40\n[[host]]\nname = "esx1"\nbackend = "vsphere"\n'
            'vcenter = "vc1"\nmaintenance_after = 60\nshutdown_after = 120\n' + VCENTER)
    path = tmp_path / "u.toml"
    path.write_text(text)
    os.chmod(path, 0o600)
    config = loads_toml(text, source=str(path))
    slave = config.slave
    assert slave is not None
    assert (slave.plan.runtime_margin, slave.plan.poll) == (0.5, 10)
    again = loads_toml(to_toml(config), source=str(path)).slave     # import-nut's writer
    assert again is not None and again.plan == slave.plan
    default = loads_toml(OWN_HOST, source="t.toml").slave
    assert default is not None and (default.plan.runtime_margin, default.plan.poll) == (0.25, 5)
    assert check_config(["--config", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if line.startswith("runtime trigger: ")] == [
        f'runtime trigger: {path}: host[1] ("me"): shuts down at once when the runtime left '
        "is at most 80 s = 40 s the steps need (OS 40 s) + 40 s margin (2 polls of 10 s "
        "(pollfreq_alert) + 0.5 (runtime_margin) x 40 s)",
        f'runtime trigger: {path}: host[2] ("esx1"): shuts down at once when the runtime left '
        "is at most 200 s = 120 s the steps need (VMs 60 s + OS 60 s) + 80 s margin (2 polls "
        "of 10 s (pollfreq_alert) + 0.5 (runtime_margin) x 120 s); in maintenance at most "
        "110 s = 60 s the steps need (OS 60 s) + 50 s margin (2 polls of 10 s "
        "(pollfreq_alert) + 0.5 (runtime_margin) x 60 s)"]


def test_plan_errors_are_check_config_errors(tmp_path: Path) -> None:
    """validate(plan)'s errors stop check-config (exit 1), its warnings are printed."""
    from upsagent.cli.configcmds import check_config

    path = tmp_path / "u.toml"
    path.write_text('[[slave.monitor]]\nups = "u@h"\nuser = "m"\npassword = "p"\n'
                    'shutdown_delay = 60\n[[host]]\nname = "h"\nshutdown_after = 50\n'
                    'shutdown_duration = 30\n')
    os.chmod(path, 0o600)
    assert check_config(["--config", str(path)]) == 1


def test_plan_errors_about_a_host_key_name_the_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A plan error about one of a [[host]]'s keys names it as host[N].key, as the backend
    error beside it does; an error about a step (not a key) still names the host."""
    from upsagent.cli.configcmds import check_config

    path = tmp_path / "u.toml"
    path.write_text(f'[slave]\ndry_run = true\nstate_file = "{tmp_path}/s"\n'
                    '[[slave.monitor]]\nups = "u@h"\nuser = "m"\npassword = "p"\n'
                    'warning_period = 100\nshutdown_delay = 20\n'
                    '[[host]]\nname = "me"\nshutdown_after = 100\n'
                    '[[host]]\nname = "esx1"\nbackend = "vsphere"\nvcenter = "vc1"\n'
                    'maintenance_after = 90\nshutdown_after = 60\nvm_shutdown_timeout = 0\n'
                    'shutdown_duration = 30\n' + VCENTER)
    os.chmod(path, 0o600)
    assert check_config(["--config", str(path)]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert errors == [
        f'upsagent: {path}: host "me": shutdown: host me: shutdown finishes at 160 s, 40 s '
        "after u@h cuts its output at 120 s (shutdown at 100 s + OS 60 s)",
        f'upsagent: {path}: host[2].shutdown_after (host "esx1"): shutdown_after (60 s) '
        "must be greater than maintenance_after (90 s)"]


def test_vm_groups_are_read_into_the_plan_and_checked_against_the_budget(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """vm_groups of a [[host]] reach its HostPlan; groups whose timeouts exceed
    vm_shutdown_timeout are a check-config error naming host[N].vm_groups."""
    from upsagent.cli.configcmds import check_config
    from upsagent.policy.plan import VmGroup

    text = (f'[slave]\ndry_run = true\nstate_file = "{tmp_path}/s"\n'
            '[[slave.monitor]]\nups = "u@h"\nuser = "m"\npassword = "p"\n'
            '[[host]]\nname = "me"\nshutdown_after = 100\n'
            '[[host]]\nname = "esx1"\nbackend = "vsphere"\nvcenter = "vc1"\n'
            'shutdown_after = 60\nvm_shutdown_timeout = 60\npower_on_vms = true\n'
            'runs_vcenter = true\n'
            'vm_groups = [{patterns = ["db*", "sql?"], timeout = 40}, '
            '{patterns = "*", timeout = 30}]\n' + VCENTER)
    config = loads_toml(text, source="t.toml")
    assert config.slave is not None
    assert config.slave.plan.host("esx1").vm_groups == (
        VmGroup(("db*", "sql?"), 40), VmGroup(("*",), 30))
    assert config.slave.plan.host("esx1").power_on_vms
    assert config.slave.plan.host("esx1").manager == "vc1"
    assert config.slave.plan.host("esx1").runs_vcenter
    assert not config.slave.plan.host("me").power_on_vms
    from upsagent.config import to_toml
    again = loads_toml(to_toml(config), source="t.toml")      # written back as read
    assert again.slave is not None and again.slave.plan == config.slave.plan
    path = tmp_path / "u.toml"
    path.write_text(text)
    os.chmod(path, 0o600)
    assert check_config(["--config", str(path)]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert errors == [
        f'upsagent: {path}: host[2].vm_groups (host "esx1"): the VM groups\' timeouts add '
        "up to 70 s (40 s + 30 s), more than the VM shutdown budget vm_shutdown_timeout = "
        "60 s"]


BACKEND_PLAN = """
[[slave.monitor]]
ups = "u@h"
user = "m"
password = "p"
[[host]]
name = "me"
shutdown_after = 60
[[host]]
name = "esx1"
backend = "{kind}"
shutdown_after = 30
{manager}"""

#: what each kind's host needs besides its backend: the manager it names (and defines)
MANAGER_OF = {
    "vsphere": 'vcenter = "vc1"\n' + VCENTER,
    "xen": 'pool = "p1"\n[[slave.xenpool]]\nname = "p1"\nurl = "https://xen1"\n'
           'user = "root"\npassword = "p"\n',
    "ssh": '[host.ssh]\naddress = "192.0.2.10"\nuser = "upsagent"\npassword = "p"\n'
           'known_hosts = "{known_hosts}"\n',
    "simulated": "",
}


@pytest.mark.parametrize("kind, why", [
    ("simulated", "only upsagent simulate can drive this kind (it acts on a simulated "
                  "cluster)"),
])
def test_backend_the_agent_cannot_drive_is_a_check_config_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, why: str) -> None:
    """check-config refuses what the daemon refuses, with the same line: the key, the kind,
    why, and what is available."""
    from upsagent.cli.configcmds import check_config

    path = tmp_path / "u.toml"
    (tmp_path / "known_hosts").write_text("")
    manager = MANAGER_OF[kind].format(known_hosts=tmp_path / "known_hosts")
    path.write_text(BACKEND_PLAN.format(kind=kind, manager=manager) +
                    f'[slave]\nstate_file = "{tmp_path}/s"\nstatus_socket = ""\n')
    os.chmod(path, 0o600)
    line = (f'{path}: host[2].backend: {kind} (host "esx1"): {why}; available: '
            f'{", ".join(agent_backends())}')
    assert check_config(["--config", str(path)]) == 1
    assert f"upsagent: {line}" in capsys.readouterr().err.splitlines()
    slave = loads_toml(path.read_text(), source=str(path)).slave
    assert slave is not None
    with pytest.raises(ConfigError) as info:
        SlaveDaemon(slave, Clock(), runner=FakeRunner(),
                    monitor_factory=lambda s, e: FakeMonitor(s, e)).start()
    assert str(info.value) == line
    dry = replace(slave, dry_run=True)              # a dry run warns and goes on
    assert plan_problems(dry) == ([], [f"{line} (a dry run goes on without it; a real run "
                                       "refuses to start)"])
    daemon = SlaveDaemon(dry, Clock(), runner=FakeRunner(),
                         monitor_factory=lambda s, e: FakeMonitor(s, e))
    daemon.start()
    assert daemon.executor is not None and set(daemon.executor.backends) == {"me"}


OWN_HOST = ('[[slave.monitor]]\nups = "u@h"\nuser = "m"\npassword = "p"\n'
            '[[host]]\nname = "me"\nshutdown_after = 60\n')


@pytest.mark.parametrize("slave, host, message", [
    ("finaldelay = 5", "", 'slave.finaldelay: is 5, but with [[host]] tables the agent\'s own '
     'host, host[1] ("me"), has shutdown_delay = 0, and that is what counts: write '
     'shutdown_delay = 5 in host[1] and remove finaldelay from [slave]'),
    ("minsupplies = 2", "min_supplies = 1", "slave.minsupplies: is 2, but with [[host]] tables "
     'the agent\'s own host, host[1] ("me"), has min_supplies = 1, and that is what counts: '
     "write min_supplies = 2 in host[1] and remove minsupplies from [slave]"),
    ("minsupplies = 1", 'backend = "vsphere"\nvcenter = "vc1"\n' + VCENTER, 'slave.minsupplies: applies to the agent\'s own '
     'host, and with [[host]] tables that is the one with backend "local" (or "xenmaster"), '
     "which this file does not have: each [[host]] has its own min_supplies; remove "
     "minsupplies from [slave]"),
])
def test_upsmon_settings_that_hosts_override_are_refused(slave: str, host: str,
                                                         message: str) -> None:
    """minsupplies/finaldelay in [slave] are not used with [[host]] tables: refused, with
    what to write instead, unless they say what the agent's own host says."""
    with pytest.raises(ConfigError) as info:
        loads_toml(f"[slave]\n{slave}\n{OWN_HOST}{host}\n", source="t.toml")
    assert str(info.value) == f"t.toml: {message}"


def test_upsmon_settings_that_agree_with_the_own_host_are_accepted() -> None:
    config = loads_toml(f"[slave]\nfinaldelay = 3\nminsupplies = 1\n{OWN_HOST}"
                        "shutdown_delay = 3\n", source="t.toml")
    assert config.slave is not None
    assert config.slave.plan.hosts[0].shutdown_delay == 3
    alone = loads_toml('[slave]\nfinaldelay = 3\nminsupplies = 0\n[[slave.monitor]]\n'
                       'ups = "u@h"\nuser = "m"\npassword = "p"\n', source="t.toml").slave
    assert alone is not None                          # without [[host]]: upsmon's settings
    assert (alone.plan.hosts[0].shutdown_delay, alone.plan.hosts[0].min_supplies) == (3, 0)


def test_no_shutdowncmd_warning_says_what_the_agent_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without SHUTDOWNCMD the agent runs /sbin/shutdown -h +0, and the warning says so."""
    from upsagent.cli.configcmds import check_config

    (tmp_path / "upsmon.conf").write_text("MONITOR ups@h 1 mon pw secondary\n")
    os.chmod(tmp_path / "upsmon.conf", 0o600)
    assert check_config(["--nut-config", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert (f"warning: {tmp_path}/upsmon.conf: no SHUTDOWNCMD: the agent shuts this host "
            "down with /sbin/shutdown -h +0 (upsmon would run nothing and only warns); set "
            "SHUTDOWNCMD to choose the command") in out.splitlines()
    assert "cannot be shut down" not in out
    slave = from_upsmon(parse_upsmon_conf("MONITOR ups@h 1 mon pw secondary\n"))
    assert slave.shutdown_command == ("/sbin/shutdown", "-h", "+0")
    assert sum("SHUTDOWNCMD" in w for w in slave.warnings) == 1


def test_upsmon_conf_maps_onto_upsmon_plan() -> None:
    conf = parse_upsmon_conf('MONITOR dummy@h:3493 2 mon pw primary\nMINSUPPLIES 2\n'
                             'FINALDELAY 3\nHOSTSYNC 7\nDEADTIME 9\nPOLLFREQ 2\n'
                             'SHUTDOWNCMD "/sbin/shutdown -h now"\nPOWERDOWNFLAG /etc/kp\n')
    slave = from_upsmon(conf, name="me")
    [host] = slave.plan.hosts
    assert host == HostPlan("me", "local", (Supply("dummy@h:3493", 2),), 2, shutdown_delay=3,
                            debounce=0.0, shutdown_on_critical=True)
    assert (slave.plan.hostsync, slave.plan.deadtime, slave.poll_freq) == (7, 9, 2)
    assert slave.shutdown_command == ("/bin/sh", "-c", "/sbin/shutdown -h now")
    assert slave.powerdown_flag == "/etc/kp"


# -- (a) the daemon on a Clock ---------------------------------------------------------


class FakeMonitor:
    def __init__(self, settings: Any, on_event: Callable[[Event], None]) -> None:
        self.settings, self.on_event = settings, on_event
        self.started = False
        self.stopped: bool | None = None   # the logout flag when stopped

    def start(self) -> None:
        self.started = True

    def stop(self, logout: bool = True) -> Deferred[None]:
        self.stopped = logout
        return succeed(None)


class FakeRunner:
    def __init__(self) -> None:
        self.ran: list[tuple[str, ...]] = []

    def run(self, argv: Any, budget: float | None, **_: Any) -> Deferred[Any]:
        if argv[0] != "/bin/sh":         # notifications (wall) aside
            self.ran.append(tuple(argv))
        return succeed(type("R", (), {"ok": True, "summary": "exit 0"})())


def timed_config(tmp_path: Path, dry_run: bool = False) -> SlaveConfig:
    """This host shuts down 60 s after UPS1 went on battery."""
    plan = Plan(ups=(UpsPlan("UPS1@nas"),), hosts=(HostPlan(
        "me", "local", (Supply("UPS1@nas"),), shutdown_after=60, debounce=0),), name="me")
    return SlaveConfig(plan, (MonitorConfig("UPS1@nas", "mon", "pw"),),
                       state_file=str(tmp_path / "state.json"), dry_run=dry_run,
                       shutdown_command=("/sbin/poweroff",))


class Rig:
    def __init__(self, config: SlaveConfig, clock: Clock, **options: Any) -> None:
        self.clock, self.runner = clock, FakeRunner()
        self.monitors: list[FakeMonitor] = []
        self.refuse: dict[str, Exception] = {}      # system -> what the factory raises

        def factory(settings: Any, on_event: Callable[[Event], None]) -> FakeMonitor:
            if settings.system in self.refuse:
                raise self.refuse[settings.system]
            self.monitors.append(FakeMonitor(settings, on_event))
            return self.monitors[-1]
        self.daemon = SlaveDaemon(config, clock, runner=self.runner, monitor_factory=factory,
                                  **options)
        self.daemon.start()

    def status(self, at: float, status: str) -> None:
        self.clock.advance(at - self.clock.seconds())
        self.monitors[-1].on_event(UpsState("UPS1@nas", frozenset(status.split())))

    def until(self, at: float) -> None:
        while self.clock.seconds() < at:
            self.clock.advance(min(1.0, at - self.clock.seconds()))


def on_battery_since_1001(tmp_path: Path) -> tuple[SlaveConfig, Rig]:
    """The agent of :func:`timed_config` on a Clock at 1000: OL, then on battery at 1001."""
    clock = Clock()
    clock.advance(1000)
    config = timed_config(tmp_path)
    rig = Rig(config, clock)
    rig.status(1000, "OL")
    rig.status(1001, "OB DISCHRG")
    return config, rig


def test_state_is_saved_privately_and_restored_mid_sequence(tmp_path: Path) -> None:
    """Restarted 40 s into the sequence, the agent shuts down at 60 s, not 100 s; the
    sessions stay until the shutdown order, then close without LOGOUT."""
    config, rig = on_battery_since_1001(tmp_path)
    assert rig.monitors[0].started
    rig.until(1040)
    state = Path(config.state_file)
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    saved = json.loads(state.read_text())
    assert saved["version"]
    rig.daemon.stop()
    assert rig.monitors[0].stopped is True       # SIGTERM: LOGOUT
    assert rig.runner.ran == []

    again = Rig(config, rig.clock)                   # the restarted agent
    again.status(1042, "OB DISCHRG")
    again.until(1060)
    assert again.runner.ran == []
    again.until(1062)
    assert again.runner.ran == [("/sbin/poweroff",)]
    assert again.monitors[0].stopped is False    # closed without LOGOUT


def test_a_stale_powerdown_flag_is_removed_at_start(tmp_path: Path) -> None:
    """As upsmon clears its POWERDOWNFLAG at start: a flag of ours from before this boot
    would switch the UPS off at the next ordinary shutdown (NUT #2935); one written since
    boot (a restart while the shutdown is under way) is kept, and so is a foreign file."""
    flag = tmp_path / "killpower"
    config = dataclasses.replace(timed_config(tmp_path), powerdown_flag=str(flag))
    flag.write_text("upsmon-shutdown-file\n")
    os.utime(flag, (0, 0))                          # written long before this boot
    Rig(config, Clock()).daemon.stop()
    assert not flag.exists()
    flag.write_text("upsmon-shutdown-file\n")     # written now
    Rig(config, Clock()).daemon.stop()
    assert flag.exists()
    flag.write_text("precious\n")
    os.utime(flag, (0, 0))
    Rig(config, Clock()).daemon.stop()
    assert flag.read_text() == "precious\n"


def test_a_failed_shutdown_is_run_again_until_it_works(tmp_path: Path) -> None:
    """The own host's shutdown command fails: the host is still up, its sessions closed;
    the engine runs the shutdown again (R6: 10 s after the failure, then 20 s) until it
    works, not left to a host that watches nothing."""
    clock = Clock()
    rig = Rig(timed_config(tmp_path), clock)
    outcomes = [False, False, True]

    def run(argv: Any, budget: float | None, **_: Any) -> Deferred[Any]:
        if argv[0] == "/bin/sh":         # notifications (wall)
            return succeed(type("R", (), {"ok": True, "summary": "exit 0"})())
        rig.runner.ran.append(tuple(argv))
        ok = outcomes.pop(0)
        return succeed(type("R", (), {"ok": ok, "timed_out": False,
                                      "summary": "exit 0" if ok else "exit 1"})())
    rig.runner.run = run  # type: ignore[method-assign]
    rig.status(0, "OL")
    rig.status(1, "OB DISCHRG")
    rig.until(61)
    assert rig.runner.ran == [("/sbin/poweroff",)]
    assert rig.monitors[0].stopped is False
    rig.until(61 + SHUTDOWN_RETRY - 1)
    assert len(rig.runner.ran) == 1
    rig.until(61 + SHUTDOWN_RETRY)
    assert len(rig.runner.ran) == 2
    rig.until(61 + 3 * SHUTDOWN_RETRY - 1)
    assert len(rig.runner.ran) == 2              # the wait doubles: 20 s
    rig.until(61 + 3 * SHUTDOWN_RETRY)
    assert rig.runner.ran == [("/sbin/poweroff",)] * 3 and outcomes == []
    rig.until(1000)
    assert len(rig.runner.ran) == 3              # it worked: no more attempts


def test_dry_run_takes_no_action(tmp_path: Path) -> None:
    clock = Clock()
    rig = Rig(timed_config(tmp_path, dry_run=True), clock)
    rig.status(0, "OL")
    rig.status(1, "OB")
    rig.until(120)
    assert rig.runner.ran == []
    assert rig.monitors[0].stopped is None       # the sessions stay in a dry run
    assert rig.daemon.executor is not None
    assert rig.daemon.executor.engine.phase("me").name != "IDLE"


def test_reload_carries_the_state_over(tmp_path: Path) -> None:
    """A reload logs the sessions out, starts the new ones and keeps the sequence's timers,
    even when the new configuration names another state file."""
    config, rig = on_battery_since_1001(tmp_path)
    rig.until(1030)
    first = rig.monitors[0]
    longer = replace(config, state_file=str(tmp_path / "other.json"), plan=replace(
        config.plan, hosts=(replace(config.plan.hosts[0], shutdown_after=90),)))
    rig.daemon.reload(longer)
    assert first.stopped is True and rig.monitors[1].started and len(rig.monitors) == 2
    assert rig.daemon.config is longer
    rig.status(1031, "OB DISCHRG")
    rig.until(1090)
    assert rig.runner.ran == []
    rig.until(1092)                              # 90 s after 1001, not after the reload
    assert rig.runner.ran == [("/sbin/poweroff",)]
    assert Path(longer.state_file).exists()


def test_refused_reload_leaves_the_running_configuration_alone(tmp_path: Path) -> None:
    """Whatever the new configuration gets refused for -- a backend, a setting, a monitor
    that cannot be built -- the error names the key and the reason, and the old sessions,
    executor and sequence go on as if nothing happened."""
    config, rig = on_battery_since_1001(tmp_path)
    rig.until(1010)
    first, executor = rig.monitors[0], rig.daemon.executor
    esx = HostPlan("esx1", "simulated", (Supply("UPS1@nas"),), shutdown_after=30, debounce=0)
    other = MonitorConfig("UPS2@nas", "mon", "pw")
    refused = {
        "new.toml: host[2].backend: simulated (host \"esx1\"): only upsagent simulate can "
        "drive this kind (it acts on a simulated cluster); "
        f"available: {', '.join(agent_backends())}":
            replace(config, plan=replace(config.plan, hosts=(*config.plan.hosts, esx))),
        "new.toml: slave.pollfreq: must be above 0, not 0": replace(config, poll_freq=0.0),
        "new.toml: slave.shutdown_budget: must be above 0, not 0 (it is the shutdown "
        "command's time limit)": replace(config, shutdown_budget=0.0),
        "new.toml: slave.monitor[2]: cannot watch UPS2@nas: TLS needs pyOpenSSL":
            replace(config, monitors=(*config.monitors, other), plan=replace(
                config.plan, ups=(*config.plan.ups, UpsPlan("UPS2@nas")))),
    }
    rig.refuse["UPS2@nas"] = RuntimeError("TLS needs pyOpenSSL")
    for message, new in refused.items():
        with pytest.raises(ConfigError) as info:
            rig.daemon.reload(replace(new, source="new.toml"))
        assert str(info.value) == message
        assert rig.daemon.monitors == {"UPS1@nas": first}
        assert first.started and first.stopped is None
        assert not any(m.started for m in rig.monitors[1:])    # built, never started
        assert rig.daemon.config is config and rig.daemon.executor is executor
    rig.status(1011, "OB DISCHRG")
    rig.until(1060)
    assert rig.runner.ran == []
    rig.until(1062)                              # the old plan's 60 s still hold
    assert rig.runner.ran == [("/sbin/poweroff",)]
    with pytest.raises(ConfigError, match="shutting down; reload refused"):
        rig.daemon.reload(config)


def test_reload_that_fails_to_start_goes_back(tmp_path: Path) -> None:
    """Should the checked configuration still fail to start, the previous one runs again."""
    clock = Clock()
    config = timed_config(tmp_path)
    rig = Rig(config, clock)
    rig.status(0, "OL")

    broken: list[FakeMonitor] = []

    class Broken(FakeMonitor):
        def start(self) -> None:
            broken.append(self)
            raise RuntimeError("cannot start")
    factory = rig.daemon._monitor_factory
    rig.daemon._monitor_factory = lambda s, e: (Broken(s, e) if s.poll_freq == 7 else
                                                factory(s, e))
    rig.daemon.reload(replace(config, poll_freq=7.0))
    assert rig.daemon.config is config
    assert broken and broken[0].stopped is True  # what the new one started is stopped
    assert rig.monitors[-1].started and rig.monitors[-1].stopped is None
    assert list(rig.daemon.monitors.values()) == [rig.monitors[-1]]


def test_dry_run_keeps_its_own_state(tmp_path: Path) -> None:
    """A dry run never writes the real agent's state file (its FSD and shutdowns would be
    restored as facts): it appends .dry-run, unless --state-file names a file."""
    from upsagent.cli.slave import build_parser, load
    from upsagent.config.slaveconf import DEFAULT_STATE_FILE

    path = tmp_path / "u.toml"
    real_state = tmp_path / "s.json"
    path.write_text(f'[slave]\nname = "me"\nstate_file = "{real_state}"\n'
                    f'status_socket = "{tmp_path}/st.sock"\n'
                    '[[slave.monitor]]\nups = "UPS1@nas"\nuser = "m"\npassword = "p"\n'
                    '[[host]]\nname = "me"\nshutdown_after = 60\ndebounce = 0\n')
    os.chmod(path, 0o600)

    def loaded(*argv: str) -> SlaveConfig:
        return load(build_parser().parse_args(["-c", str(path), *argv]))
    assert loaded().state_file == str(real_state)
    dry = loaded("--dry-run")
    assert dry.dry_run and dry.state_file == f"{real_state}.dry-run"
    assert (loaded().status_socket, dry.status_socket) == (
        f"{tmp_path}/st.sock", f"{tmp_path}/st.sock.dry-run")      # beside the real one
    assert loaded("-n", "--status-socket", "/x/s").status_socket == "/x/s"
    assert loaded("--status-socket", "").status_socket is None
    assert loaded("-n", "--state-file", "/x/y").state_file == "/x/y"
    assert loaded("--state-file", "/x/y").state_file == "/x/y"
    path.write_text(path.read_text().replace(f'state_file = "{real_state}"\n',
                                             "dry_run = true\n"))
    assert loaded().state_file == DEFAULT_STATE_FILE + ".dry-run"

    clock = Clock()
    rig = Rig(replace(dry, status_socket=None), clock)  # a whole sequence, taken as done
    rig.status(0, "OL")
    rig.status(1, "OB")
    rig.until(120)
    assert rig.daemon.executor is not None
    assert rig.daemon.executor.engine.phase("me").name != "IDLE"
    rig.daemon.stop()
    assert Path(dry.state_file).exists() and not real_state.exists()


@pytest.fixture
def logged() -> Iterator[list[tuple[str, str]]]:
    """The log lines emitted during the test, as (level, text)."""
    from twisted.logger import formatEvent, globalLogPublisher

    lines: list[tuple[str, str]] = []

    def observe(event: dict[str, Any]) -> None:
        lines.append((event["log_level"].name, formatEvent(event)))
    globalLogPublisher.addObserver(observe)
    yield lines
    globalLogPublisher.removeObserver(observe)


def test_countdown_delay_read_from_the_ups(tmp_path: Path,
                                          logged: list[tuple[str, str]]) -> None:
    """warning_period without shutdown_delay: the agent reads ups.delay.shutdown once per
    session, after the first good read, and logs what the countdown it completes makes of
    the plan, with check-config's line (host, step, overrun), at warn level."""
    from upsagent.config.slavecheck import countdown_problems

    config = loads_toml(f"""
[slave]
name = "me"
state_file = "{tmp_path}/s.json"
status_socket = ""
[[slave.monitor]]
ups = "UPS1@nas"
user = "m"
password = "p"
warning_period = 180
[[host]]
name = "me"
shutdown_after = 150
""", source="u.toml").slave
    assert config is not None and config.plan.ups[0].countdown is None
    assert config.monitors[0].delay_from_ups == 180
    errors, warnings = plan_problems(config)
    assert errors == [] and warnings == [
        "u.toml: slave.monitor[1]: no shutdown_delay: the plan is checked against UPS1@nas's "
        "countdown (warning_period 180 s + the UPS's ups.delay.shutdown) only when the agent "
        "has read it; it logs what does not fit then"]
    [line] = countdown_problems(config, {"UPS1@nas": 20})
    assert line == ('u.toml: host "me": shutdown: host me: shutdown finishes at 210 s, 10 s '
                    "after UPS1@nas cuts its output at 200 s (shutdown at 150 s + OS 60 s)")

    reads: list[tuple[str, str, Deferred[str | None]]] = []

    def reader(settings: Any, name: str) -> Deferred[str | None]:
        reads.append((settings.system, name, Deferred()))
        return reads[-1][2]
    clock = Clock()
    rig = Rig(config, clock, variable_reader=reader)
    assert reads == []                           # not before the monitor's first read
    rig.status(0, "OL")
    rig.status(1, "OL")
    assert [(ups, name) for ups, name, _ in reads] == [("UPS1@nas", "ups.delay.shutdown")]
    del logged[:]
    reads[0][2].callback("20")
    assert ("warn", line) in logged
    assert ("info", "UPS1@nas: ups.delay.shutdown 20 s: the UPS cuts its output 180 + 20 s "
                    "after the power fails") in logged
    assert rig.daemon.ups_delays == {"UPS1@nas": 20}

    rig.monitors[0].on_event(CommLost("UPS1@nas", "gone"))       # a new session reads again
    rig.status(2, "OL")
    assert len(reads) == 2
    del logged[:]
    reads[1][2].callback("20")                   # the same: nothing logged twice
    assert logged == []
    rig.monitors[0].on_event(CommLost("UPS1@nas", "gone"))
    rig.status(3, "OL")
    reads[2][2].callback("60")                   # now it fits
    assert ("info", "UPS1@nas: ups.delay.shutdown 60 s: the UPS cuts its output 180 + 60 s "
                    "after the power fails; the plan fits") in logged
    assert not any(level == "warn" for level, _ in logged)


def test_read_variable_on_a_short_connection() -> None:
    """The default reader: STARTTLS tried (plain text on refusal), GET VAR, LOGOUT, closed;
    a variable the UPS does not publish reads as None."""
    from twisted.internet.protocol import Factory
    from twisted.internet.testing import StringTransport

    from upsagent.agent.daemon import read_variable
    from upsagent.config.monitoring import MonitorSettings, TlsSettings

    class Endpoint:
        def connect(self, factory: Factory) -> Deferred[Any]:
            self.transport = StringTransport()
            self.proto = factory.buildProtocol(None)
            assert self.proto is not None
            self.proto.makeConnection(self.transport)
            return succeed(self.proto)

        def talk(self, expect: str, answer: str) -> None:
            assert self.transport.value().decode().splitlines()[-1] == expect
            assert self.proto is not None
            self.proto.dataReceived(answer.encode() + b"\n")

    settings = MonitorSettings("UPS1@nas", "m", "p", tls=TlsSettings(try_tls=True))
    for answer, value in (('VAR UPS1 ups.delay.shutdown "20"', "20"),
                          ("ERR VAR-NOT-SUPPORTED", None)):
        endpoint = Endpoint()
        result: list[str | None] = []
        read_variable(Clock(), settings, "ups.delay.shutdown", endpoint).addCallback(
            result.append)
        if settings.tls.attempted:
            endpoint.talk("STARTTLS", "ERR FEATURE-NOT-CONFIGURED")
        endpoint.talk("GET VAR UPS1 ups.delay.shutdown", answer)
        assert result == [value]
        assert endpoint.transport.disconnecting
    failed: list[Any] = []
    required = MonitorSettings("UPS1@nas", "m", "p", tls=TlsSettings(required=True))
    endpoint = Endpoint()
    read_variable(Clock(), required, "ups.delay.shutdown", endpoint).addErrback(failed.append)
    endpoint.talk("STARTTLS", "ERR FEATURE-NOT-CONFIGURED")
    assert "TLS is required" in failed[0].getErrorMessage()
    assert endpoint.transport.disconnecting


def test_damaged_state_is_kept_aside(tmp_path: Path) -> None:
    config = timed_config(tmp_path)
    Path(config.state_file).write_text("{not json")
    Rig(config, Clock())
    assert Path(config.state_file + ".bad").exists()


# -- (b) side by side with NUT's upsmon ------------------------------------------------

TOLERANCE = 2.5
DEV = "ups.status: OL CHRG\nbattery.charge: 100\nbattery.runtime: 2400\n"
UPS_CONF = "[dummy]\n  driver = dummy-ups\n  port = ups.dev\n"
TYPES = ("ONLINE", "ONBATT", "LOWBATT", "FSD", "COMMOK", "COMMBAD", "SHUTDOWN", "REPLBATT",
         "NOCOMM", "NOPARENT")

needs_upsmon = pytest.mark.skipif(
    nutreal.nut_missing() is not None or not os.path.exists("/lib/nut/upsmon")
    or os.geteuid() != 0, reason="needs Debian's NUT (upsd, dummy-ups, upsmon) and root")


def upsmon_conf(port: int, done: Path) -> str:
    return (f"MONITOR dummy@127.0.0.1:{port} 1 slaveuser slavepass secondary\n"
            f'MINSUPPLIES 1\nSHUTDOWNCMD "/bin/touch {done}"\n'
            "POLLFREQ 1\nPOLLFREQALERT 1\nHOSTSYNC 3\nDEADTIME 4\nFINALDELAY 0\n"
            "RUN_AS_USER root\n" + "".join(f"NOTIFYFLAG {t} SYSLOG\n" for t in TYPES))


class Pair:
    """Debian's upsmon and our slave, same upsmon.conf, each touching its own file."""

    def __init__(self, tmp: Path, port: int, with_upsmon: bool = True) -> None:
        self.port, self.procs = port, []
        self.files: dict[str, Path] = {}
        for who in ("upsmon", "ours") if with_upsmon else ("ours",):
            conf = tmp / who
            conf.mkdir()
            self.files[who] = tmp / f"{who}-shutdown"
            (conf / "upsmon.conf").write_text(upsmon_conf(port, self.files[who]))
            os.chmod(conf / "upsmon.conf", 0o600)
            if who == "upsmon":
                env = dict(os.environ, NUT_CONFPATH=str(conf), NUT_STATEPATH=str(conf))
                argv = ["unshare", "--mount", "sh", "-c", "mount -t tmpfs upsmon-run "
                        "/run/nut && exec /lib/nut/upsmon -F -p"]
            else:
                env = dict(os.environ)
                argv = [sys.executable, "-m", "upsagent", "slave", "--nut-config", str(conf),
                        "--state-file", str(conf / "state.json"),
                        "--status-socket", str(conf / "status.sock")]
            with open(conf / "log", "wb") as log:
                self.procs.append(subprocess.Popen(argv, env=env, stdout=log,
                                                   stderr=subprocess.STDOUT,
                                                   start_new_session=True))
        self.logs = [tmp / who / "log" for who in self.files]
        logins = f"NUMLOGINS dummy {len(self.files)}\n"
        wait_for(lambda: ask(port, "GET NUMLOGINS dummy") == logins, 20,
                 f"both to log in\n{self.log()}")

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs if p.exists())

    def times(self, t0: float, expect: bool, within: float) -> dict[str, float | None]:
        """When each shut down (seconds after t0), waiting up to ``within`` seconds."""
        def done() -> bool:
            return all(f.exists() for f in self.files.values())
        if expect:
            wait_for(done, within, f"both shutdowns\n{self.log()}")
        else:
            deadline = time.monotonic() + within
            wait_for(lambda: time.monotonic() > deadline or any(
                f.exists() for f in self.files.values()), within + 1, "the window")
        return {who: (f.stat().st_mtime - t0 if f.exists() else None)
                for who, f in self.files.items()}

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def set_status(port: int, status: str) -> float:
    answer = ask(port, "USERNAME admin", "PASSWORD adminpass",
                 f'SET VAR dummy ups.status "{status}"')
    assert answer == "OK\nOK\nOK\n", answer
    return time.time()


def blip(port: int, server: Any) -> tuple[float, bool, float, float | None]:
    t0 = set_status(port, "OB DISCHRG")
    wait_for(lambda: time.time() > t0 + 1.5, 3, "the blip")
    set_status(port, "OL CHRG")
    return t0, False, 6, None


def low_battery(port: int, server: Any) -> tuple[float, bool, float, float | None]:
    return set_status(port, "OB DISCHRG LB"), True, 10, 3.0


def forced(port: int, server: Any) -> tuple[float, bool, float, float | None]:
    assert ask(port, "USERNAME monuser", "PASSWORD monpass", "FSD dummy") == \
        "OK\nOK\nOK FSD-SET\n"
    return time.time(), True, 6, 0.0


def comm_lost_on_battery(port: int, server: Any) -> tuple[float, bool, float, float | None]:
    set_status(port, "OB DISCHRG")
    deadline = time.monotonic() + 1.5
    wait_for(lambda: time.monotonic() > deadline, 3, "both to poll OB")
    server.stop_driver("dummy")
    return time.time(), True, 12, 4.0


def comm_lost_on_line(port: int, server: Any) -> tuple[float, bool, float, float | None]:
    server.stop_driver("dummy")
    return time.time(), False, 8, None


EVENTS = {"blip": blip, "low-battery": low_battery, "fsd": forced,
          "comm-lost-OB": comm_lost_on_battery, "comm-lost-OL": comm_lost_on_line}


@pytest.fixture
def nut() -> Iterator[Any]:
    with nutreal.nut_server(UPS_CONF, upsd_users=DEFAULT_USERS, upsd_conf="MAXAGE 3\n",
                            files={"ups.dev": DEV}) as server:
        yield server


@needs_upsmon
@pytest.mark.parametrize("event", list(EVENTS))
def test_side_by_side_with_upsmon(event: str, nut: Any, tmp_path: Path) -> None:
    """Both shut down, or neither, at times within TOLERANCE of each other."""
    pair = Pair(tmp_path, nut.port)
    try:
        t0, expect, window, nominal = EVENTS[event](nut.port, nut)
        times = pair.times(t0, expect, window)
    finally:
        pair.stop()
    print(f"\nside-by-side {event}: upsmon {times['upsmon']}, ours {times['ours']} "
          f"(nominal {nominal})")
    if not expect:
        assert times == {"upsmon": None, "ours": None}, pair.log()
        return
    upsmon, ours = times["upsmon"], times["ours"]
    assert upsmon is not None and ours is not None
    assert abs(upsmon - ours) <= TOLERANCE, (times, pair.log())


@pytest.mark.parametrize("event", ["blip", "low-battery", "fsd"])
def test_our_slave_against_our_master(event: str, tmp_path: Path) -> None:
    """The push path (WATCH on our master): the same outcomes as upsmon's above."""
    with OurMaster(UPS_CONF, files={"ups.dev": DEV}) as master:
        wait_for(lambda: ask(master.port, "GET VAR dummy ups.status").startswith("VAR"), 15,
                 "the UPS to have data")
        pair = Pair(tmp_path, master.port, with_upsmon=False)
        try:
            t0, expect, window, nominal = EVENTS[event](master.port, None)
            times = pair.times(t0, expect, window)
        finally:
            pair.stop()
    print(f"\nour master {event}: ours {times['ours']} (nominal {nominal})")
    if not expect:
        assert times["ours"] is None, pair.log()
    else:
        ours = times["ours"]
        assert ours is not None and nominal is not None
        assert abs(ours - nominal) <= TOLERANCE, pair.log()
