"""The reference scenarios (the built-in ones of ``upsagent simulate``) and variants, through ``upsagent simulate``.

Each reference scenario is checked step by step, with its time, from the JSON lines
``upsagent simulate NAME --json`` prints.  The variants (flickers, redundant supplies, a
short runtime, loss of contact, restarts of the agent, NUT's default HOSTSYNC, timers that
do not fit the countdown) are small TOML scenarios written here, run through the same
simulation: the behaviour comes from the rules, not from the five examples.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from upsagent.cli.simulate import main
from upsagent.simulator.scenario import ScenarioError, builtin, builtin_names, loads
from upsagent.simulator.simulation import simulate
from upsagent.policy.timeline import Entry, format_text

ROOT = Path(__file__).resolve().parent.parent

Step = tuple[float, str, str]


def run_json(name: str, capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    """``upsagent simulate NAME --json``, parsed."""
    assert main([name, "--json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def steps(entries: list[dict[str, object]] | list[Entry]) -> list[Step]:
    out: list[Step] = []
    for e in entries:
        if isinstance(e, Entry):
            out.append((e.t, e.subject, e.event))
        else:
            out.append((e["t"], e["subject"], e["event"]))  # type: ignore[arg-type]
    return out


def detail(entries: list[dict[str, object]], t: float, subject: str, event: str) -> object:
    [found] = [e["detail"] for e in entries
               if (e["t"], e["subject"], e["event"]) == (t, subject, event)]
    return found


# -- the five reference scenarios ----------------------------------------------------------

SCENARIO_1 = [
    (0, "UPS1", "power failed"),
    (0, "mgmt", "notify ONBATT"),
    (60, "host1", "enter maintenance"),
    (70, "vm1", "moved"),
    (80, "vm2", "moved"),
    (80, "host1", "in maintenance"),
    (120, "host1", "shut down"),
    (120, "host1", "shutting down"),
    (180, "UPS1", "countdown started"),
    (180, "host1", "down"),
    (300, "UPS1", "output off"),
    (420, "UPS1", "power restored"),
    (420, "mgmt", "notify ONLINE"),
    (420, "host1", "exit maintenance"),
    (420, "UPS1", "output on"),
    (480, "host1", "booted"),
    (480, "host1", "out of maintenance"),
    (490, "vm1", "moved back"),
    (500, "vm2", "moved back"),
]


def test_scenario_1_maintenance_shutdown_and_return(capsys: pytest.CaptureFixture[str]) -> None:
    """UPS1 fails. 60 s: host1 enters maintenance, its VMs move to host2. 120 s: host1
    shuts down. 180 s: UPS1 starts its countdown; 300 s: output off. Power returns: host1
    boots, exits maintenance, VMs come back."""
    entries = run_json("1-maintenance", capsys)
    assert steps(entries) == SCENARIO_1
    assert detail(entries, 60, "host1", "enter maintenance") == "UPS1 on battery for 60 s"
    assert detail(entries, 80, "host1", "in maintenance") == "VMs vm1, vm2 moved to host2"
    assert detail(entries, 120, "host1", "shut down") == "UPS1 on battery for 120 s"
    assert detail(entries, 180, "UPS1", "countdown started") == "output off in 120 s"
    assert detail(entries, 490, "vm1", "moved back") == "host2 → host1 (DRS)"


def test_scenario_2_power_returns_during_migration(
        capsys: pytest.CaptureFixture[str]) -> None:
    """UPS1 fails; 60 s: host1 starts entering maintenance; power returns mid-migration:
    the migration completes, host1 exits maintenance immediately, nothing shuts down."""
    entries = run_json("2-return-during-migration", capsys)
    assert steps(entries) == [
        (0, "UPS1", "power failed"),
        (0, "mgmt", "notify ONBATT"),
        (60, "host1", "enter maintenance"),
        (70, "UPS1", "power restored"),
        (70, "mgmt", "notify ONLINE"),
        (70, "host1", "cancel shut down"),
        (80, "vm1", "moved"),
        (100, "vm2", "moved"),
        (100, "host1", "in maintenance"),
        (100, "host1", "exit maintenance"),
        (100, "host1", "out of maintenance"),
        (120, "vm1", "moved back"),
        (140, "vm2", "moved back"),
    ]
    assert detail(entries, 70, "host1", "cancel shut down") == (
        "UPS1 back on line after 70 s, before the step due at 120 s")
    assert detail(entries, 100, "host1", "exit maintenance") == (
        "UPS1 back on line after 70 s during the migration, which has completed")


def test_scenario_3_both_ups_fail(capsys: pytest.CaptureFixture[str]) -> None:
    """UPS1 and UPS2 fail together. host1 enters maintenance (VMs to host2), host2's
    maintenance fails (nowhere to go). 120 s: host1 shuts down; host2 shuts its VMs down,
    then itself. Power returns: host1 exits maintenance; host2 runs normally."""
    entries = run_json("3-both-ups", capsys)
    assert steps(entries) == [
        (0, "UPS1", "power failed"),
        (0, "mgmt", "notify ONBATT"),
        (0, "UPS2", "power failed"),
        (0, "mgmt", "notify ONBATT"),
        (60, "host1", "enter maintenance"),
        (70, "vm1", "moved"),
        (80, "vm2", "moved"),
        (80, "host1", "in maintenance"),
        (80, "host2", "enter maintenance"),
        (80, "host2", "maintenance failed"),
        (120, "host1", "shut down"),
        (120, "host1", "shutting down"),
        (120, "host2", "shut down VMs"),
        (130, "vm1", "shut down"),
        (130, "vm2", "shut down"),
        (130, "vm3", "shut down"),
        (130, "vm4", "shut down"),
        (130, "host2", "VMs stopped"),
        (130, "host2", "shut down"),
        (130, "host2", "shutting down"),
        (180, "UPS1", "countdown started"),
        (180, "UPS2", "countdown started"),
        (180, "host1", "down"),
        (190, "host2", "down"),
        (300, "UPS1", "output off"),
        (300, "UPS2", "output off"),
        (420, "UPS1", "power restored"),
        (420, "mgmt", "notify ONLINE"),
        (420, "host1", "exit maintenance"),
        (420, "UPS2", "power restored"),
        (420, "mgmt", "notify ONLINE"),
        (420, "UPS1", "output on"),
        (420, "UPS2", "output on"),
        (480, "host1", "booted"),
        (480, "host1", "out of maintenance"),
        (480, "host2", "booted"),
    ]
    assert detail(entries, 80, "host2", "maintenance failed") == (
        "no host can take vm1, vm2, vm3, vm4")
    assert detail(entries, 120, "host2", "shut down VMs") == (
        "UPS2 on battery for 120 s; maintenance failed: no host can take vm1, vm2, vm3, vm4")


def test_scenario_1b_vcenter_unreachable_at_the_shutdown(
        capsys: pytest.CaptureFixture[str]) -> None:
    """vCenter does not answer from 110 s to 160 s: host1's shutdown fails at 120 s and is
    tried again 10 s, then 20 s, then 40 s after each failure (rules R6); the attempt at
    190 s works and host1 is down before UPS1's output goes off."""
    entries = run_json("1b-vcenter-unreachable", capsys)
    host1 = [(t, event) for t, subject, event in steps(entries) if subject == "host1"]
    assert host1 == [
        (60, "enter maintenance"), (80, "in maintenance"),
        (120, "shut down"), (120, "shutdown failed"),
        (130, "shut down"), (130, "shutdown failed"),
        (150, "shut down"), (150, "shutdown failed"),
        (190, "shut down"), (190, "shutting down"), (250, "down"),
        (420, "exit maintenance"), (480, "booted"), (480, "out of maintenance")]
    assert detail(entries, 190, "host1", "shut down") == (
        "UPS1 on battery for 120 s; attempt 4, the last one failed: vcenter does not answer")
    assert [s for s in steps(entries) if s[1] == "vcenter"] == [
        (110, "vcenter", "manager unreachable"), (160, "vcenter", "manager answers again")]
    assert not any(e["subject"] == "host2" for e in entries)
    assert main(["1b-vcenter-unreachable"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "# OK: no host or VM lost power while running")


def test_a_cluster_event_needs_a_defined_cluster_and_reachable() -> None:
    base = '[[ups]]\nname = "U"\n[[cluster]]\nname = "vc"\n'
    with pytest.raises(ScenarioError, match="a cluster event needs reachable"):
        loads(base + events('t = 1\ncluster = "vc"'))
    with pytest.raises(ScenarioError, match="cluster 'vc2' is not defined"):
        loads(base + events('t = 1\ncluster = "vc2"\nreachable = false'))
    with pytest.raises(ScenarioError, match="reachable must be true or false"):
        loads(base + events('t = 1\ncluster = "vc"\nreachable = 0'))


def test_vcenter_unreachable_at_the_vms_step_stops_them_at_the_next_attempt() -> None:
    """simulate: vCenter does not answer from 50 s to 75 s; the VMs' step fails at 60 s
    and at the attempt of 70 s, each a failed attempt of the host's shutdown (which is not
    issued: vCenter is gone); the attempt of 90 s stops the VM first, then the host:
    nothing loses power while running."""
    text = ('[[ups]]\nname = "UPS1"\n[[cluster]]\nname = "vc"\nkind = "vsphere"\n'
            'vm_shutdown_time = 10\n[[host]]\nname = "esx1"\ncluster = "vc"\n'
            'powered_by = ["UPS1"]\nshutdown_after = 60\nvms = ["vm1"]\n'
            + events('t = 0\nups = "UPS1"\nstatus = "OB"',
                     't = 50\ncluster = "vc"\nreachable = false',
                     't = 75\ncluster = "vc"\nreachable = true'))
    entries = run(text)
    assert actions(entries, "esx1") == [
        (60, "esx1", "shut down VMs"), (60, "esx1", "VM shutdown failed"),
        (70, "esx1", "shut down VMs"), (70, "esx1", "VM shutdown failed"),
        (90, "esx1", "shut down VMs"), (100, "esx1", "VMs stopped"),
        (100, "esx1", "shut down"), (100, "esx1", "shutting down"), (160, "esx1", "down")]
    assert (100, "vm1", "shut down") in actions(entries, "vm1")
    assert not any(e.event == "crashed" for e in entries)


def test_scenario_4_xenserver_pool(capsys: pytest.CaptureFixture[str]) -> None:
    """XenServer: host1 is pool master on UPS1; UPS2 and UPS3 fail. 60 s: host2 then host3
    enter maintenance, all VMs end on host1. 120 s: host2 and host3 shut down. The master
    is untouched."""
    entries = run_json("4-xenserver-pool", capsys)
    assert steps(entries) == [
        (0, "UPS2", "power failed"),
        (0, "mgmt", "notify ONBATT"),
        (0, "UPS3", "power failed"),
        (0, "mgmt", "notify ONBATT"),
        (60, "host2", "enter maintenance"),
        (70, "vm2", "moved"),
        (80, "vm3", "moved"),
        (80, "host2", "in maintenance"),
        (80, "host3", "enter maintenance"),
        (90, "vm4", "moved"),
        (100, "vm5", "moved"),
        (100, "host3", "in maintenance"),
        (120, "host2", "shut down"),
        (120, "host2", "shutting down"),
        (120, "host3", "shut down"),
        (120, "host3", "shutting down"),
        (180, "UPS2", "countdown started"),
        (180, "UPS3", "countdown started"),
        (180, "host2", "down"),
        (180, "host3", "down"),
        (300, "UPS2", "output off"),
        (300, "UPS3", "output off"),
        (420, "UPS2", "power restored"),
        (420, "mgmt", "notify ONLINE"),
        (420, "host2", "exit maintenance"),
        (420, "UPS3", "power restored"),
        (420, "mgmt", "notify ONLINE"),
        (420, "host3", "exit maintenance"),
        (420, "UPS2", "output on"),
        (420, "UPS3", "output on"),
        (480, "host2", "booted"),
        (480, "host2", "out of maintenance"),
        (480, "host3", "booted"),
        (480, "host3", "out of maintenance"),
    ]
    moved = [e["detail"] for e in entries if e["event"] == "moved"]
    assert moved == ["host2 → host1", "host2 → host1", "host3 → host1", "host3 → host1"]
    assert not [e for e in entries if e["subject"] in ("host1", "vm1")]


def test_scenario_4b_the_pool_master_last_under_its_own_agent(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Every UPS fails: the management agent evacuates host2 and host3 to the pool master
    and shuts them down, never touching host1; host1's own agent (kind xenmaster) then
    stops the five VMs left on it and shuts itself down, before UPS1's output goes off."""
    entries = run_json("4b-xenserver-master-last", capsys)
    master = [(t, s, e) for t, s, e in steps(entries)
              if s in ("host1", "vm1", "vm2", "vm3", "vm4", "vm5") and e != "moved"
              and not str(e).startswith("notify") and t < 480]
    assert master == [
        (200, "host1", "shut down VMs"),
        (210, "vm1", "shut down"), (210, "vm2", "shut down"), (210, "vm3", "shut down"),
        (210, "vm4", "shut down"), (210, "vm5", "shut down"),
        (210, "host1", "VMs stopped"),
        (210, "host1", "shut down"),
        (210, "host1", "shutting down"),
        (270, "host1", "down"),
    ]
    assert (120, "host2", "shutting down") in steps(entries)
    assert (420, "UPS1", "output off") in steps(entries)
    mgmt = [e for e in entries if e["subject"] == "host1" and "mgmt" in str(e["detail"])]
    assert mgmt == []


def test_scenario_5_poweract(capsys: pytest.CaptureFixture[str]) -> None:
    """PowerAct Pro: after the wait time (600 s) the master orders shutdown; each slave
    waits its start delay, runs its external command, shuts down; the SSH hosts go down;
    the master shuts itself down; the UPS switches off."""
    entries = run_json("5-poweract", capsys)
    assert steps(entries) == [
        (0, "UPS", "power failed"),
        (0, "master", "notify ONBATT"),
        (0, "esxi", "notify ONBATT"),
        (600, "master", "set FSD on UPS"),
        (600, "UPS", "FSD set"),
        (600, "esxi", "notify FSD"),
        (600, "esxi", "notify SHUTDOWN"),
        (600, "esxi", "warn users"),
        (600, "linux1", "shut down"),
        (600, "linux1", "shutting down"),
        (600, "linux2", "shut down"),
        (600, "linux2", "shutting down"),
        (600, "master", "notify FSD"),
        (630, "linux1", "down"),
        (630, "linux2", "down"),
        (720, "esxi", "run command"),
        (740, "esxi", "command done"),
        (740, "esxi", "shut down"),
        (740, "vm1", "shut down"),
        (740, "vm2", "shut down"),
        (740, "esxi", "shutting down"),
        (740, "master", "secondaries gone"),
        (740, "master", "notify SHUTDOWN"),
        (740, "master", "shut down"),
        (740, "master", "shutting down"),
        (800, "esxi", "down"),
        (800, "master", "down"),
        (830, "UPS", "output off"),
        (1000, "UPS", "power restored"),
        (1000, "UPS", "output on"),
        (1060, "master", "booted"),
        (1060, "master", "agent started"),
        (1060, "linux1", "booted"),
        (1060, "linux2", "booted"),
        (1060, "esxi", "booted"),
        (1060, "esxi", "agent started"),
    ]
    assert detail(entries, 600, "esxi", "warn users") == (
        '"UPS on battery: this host shuts down" (shutdown in 120 s: UPS: FSD set by the '
        'primary)')
    assert detail(entries, 720, "esxi", "run command") == (
        "/opt/ups/before-shutdown.sh (budget 60 s): UPS: FSD set by the primary")
    assert detail(entries, 830, "UPS", "output off") == "killpower: 30 s after master stopped"


def test_scenario_5_power_returns_within_the_wait_time(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Power returns within the master's wait time: nothing happens."""
    entries = run_json("5b-poweract-return", capsys)
    assert steps(entries) == [
        (0, "UPS", "power failed"),
        (0, "master", "notify ONBATT"),
        (0, "esxi", "notify ONBATT"),
        (300, "UPS", "power restored"),
        (300, "master", "notify ONLINE"),
        (300, "master", "cancel shut down"),
        (300, "esxi", "notify ONLINE"),
    ]


def test_text_output_and_list(capsys: pytest.CaptureFixture[str]) -> None:
    """The text timeline aligns its columns; --list names the built-in scenarios."""
    assert main(["1-maintenance"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("# 1-maintenance: ")
    assert " 60 s  host1  enter maintenance: UPS1 on battery for 60 s" in out
    assert "300 s  UPS1   output off: countdown ended" in out
    assert out[-1] == "# OK: no host or VM lost power while running"
    assert main(["--list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed[:7] == ["1-maintenance", "1b-vcenter-unreachable",
                          "2-return-during-migration", "3-both-ups", "4-xenserver-pool",
                          "4b-xenserver-master-last", "5-poweract"]


def test_bad_scenarios_are_refused_with_the_place(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A typo is an error naming the table and the key; exit status 2."""
    with pytest.raises(ScenarioError, match=r"host\[0\]: unknown key 'shutdown_afer'"):
        loads('[[ups]]\nname = "U"\n[[host]]\nname = "h"\npowered_by = ["U"]\n'
              "shutdown_afer = 10\n")
    with pytest.raises(ScenarioError, match="UPS 'U2' is not defined"):
        loads('[[ups]]\nname = "U"\n[[event]]\nt = 0\nups = "U2"\nstatus = "OB"\n')
    with pytest.raises(ScenarioError, match="host\\[0\\]: command must be a list of strings"):
        loads('[[ups]]\nname = "U"\n[[host]]\nname = "h"\npowered_by = "U"\n'
              'command = "/sbin/shutdown -h now"\n')
    single = loads('[[ups]]\nname = "U"\n[[host]]\nname = "h"\npowered_by = "U"\n')
    assert [s.ups for s in single.hosts[0].plan.powered_by] == ["U"]
    bad = tmp_path / "bad.toml"
    bad.write_text("[[ups]]\nname = 3\n")
    assert main([str(bad)]) == 2
    assert "ups[0]: name must be a string" in capsys.readouterr().err
    assert main(["no-such-scenario"]) == 2


def test_twenty_simulated_minutes_take_well_under_a_second() -> None:
    """The whole world on a Clock: 1200 simulated seconds in a fraction of a second."""
    scenario = builtin("5-poweract")
    assert scenario.duration == 1200
    start = time.perf_counter()
    simulate(scenario)
    assert time.perf_counter() - start < 1.0


def test_scenarios_are_package_data(tmp_path: Path) -> None:
    """setup.cfg ships scenarios/*.toml with upsagent.simulator, and a built copy finds them."""
    build = tmp_path / "lib"
    subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()", "-q",
                    "build_py", "--build-lib", str(build)], cwd=ROOT, check=True,
                   capture_output=True)
    code = ("import upsagent.simulator.scenario as s, sys; "
            "assert s.__file__.startswith(sys.argv[1]), s.__file__; "
            "print(' '.join(s.builtin_names()))")
    out = subprocess.run([sys.executable, "-c", code, str(build)], cwd=tmp_path,
                         env={"PYTHONPATH": str(build)}, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == builtin_names() and "1-maintenance" in out


# -- variants ----------------------------------------------------------------------------

CLUSTER = """
[[ups]]
name = "UPS1"
warning_period = 180
shutdown_delay = 120

[[ups]]
name = "UPS2"
warning_period = 180
shutdown_delay = 120

[[cluster]]
name = "c"
kind = "vsphere"

[[host]]
name = "host1"
cluster = "c"
agent = "mgmt"
powered_by = ["UPS1"]
maintenance_after = 60
shutdown_after = 120
vms = ["vm1", "vm2"]

[[host]]
name = "host2"
cluster = "c"
agent = "mgmt"
powered_by = ["UPS2"]
maintenance_after = 60
shutdown_after = 120
vms = ["vm3"]
"""


def events(*items: str) -> str:
    return "".join(f"\n[[event]]\n{item}\n" for item in items)


def run(text: str) -> list[Entry]:
    return simulate(loads(text))


def actions(entries: list[Entry], subject: str | None = None) -> list[Step]:
    """Steps of hosts and the world, without notifications and VM details."""
    return [(e.t, e.subject, e.event) for e in entries
            if not e.event.startswith("notify") and (subject is None or e.subject == subject)]


def test_flickers_shorter_than_the_debounce_do_nothing() -> None:
    """Five 2 s outages in a row: ONBATT/ONLINE each time, no step, no countdown."""
    flicker = [f't = {t}\nups = "UPS1"\nstatus = "{s}"'
               for n in range(5) for t, s in ((10 * n, "OB"), (10 * n + 2, "OL"))]
    entries = run(CLUSTER + events(*flicker))
    hosts = [e for e in entries if e.subject.startswith(("host", "vm"))]
    assert hosts == []
    assert [e.event for e in entries if e.subject == "mgmt"] == [
        "notify ONBATT", "notify ONLINE"] * 5


def test_a_failure_longer_than_the_debounce_runs_the_steps_from_its_start() -> None:
    """After flickers, a real outage: the timers count from its own start (t = 50)."""
    entries = run(CLUSTER + events('t = 0\nups = "UPS1"\nstatus = "OB"',
                                   't = 3\nups = "UPS1"\nstatus = "OL"',
                                   't = 50\nups = "UPS1"\nstatus = "OB"'))
    first = [e for e in entries if e.subject == "host1"][0]
    assert (first.t, first.event, first.detail) == (
        110, "enter maintenance", "UPS1 on battery for 60 s")   # t counts from the blip


def test_redundant_host_on_two_ups() -> None:
    """A host on UPS1 and UPS2 (min_supplies 1): one failure does nothing; when both fail
    its timers start from the second failure; the countdown of the later UPS counts."""
    text = """
[[ups]]
name = "UPS1"
warning_period = 180
shutdown_delay = 120
[[ups]]
name = "UPS2"
warning_period = 180
shutdown_delay = 120
[[host]]
name = "db"
agent = "db"
backend = "local"
powered_by = ["UPS1", "UPS2"]
shutdown_after = 60
shutdown_duration = 30
""" + events('t = 0\nups = "UPS1"\nstatus = "OB"', 't = 100\nups = "UPS2"\nstatus = "OB"')
    entries = run(text)
    assert actions(entries, "db") == [(160, "db", "shut down"), (160, "db", "shutting down"),
                                      (190, "db", "down")]
    assert [e.detail for e in entries if e.event == "shut down"] == [
        "UPS1 and UPS2 on battery for 60 s"]
    assert not [e for e in entries if e.event == "crashed"]


def test_redundant_host_survives_one_ups_cutting_its_output() -> None:
    """Only UPS1 fails and cycles its output: the host on UPS1+UPS2 never notices."""
    text = CLUSTER.replace('powered_by = ["UPS1"]', 'powered_by = ["UPS1", "UPS2"]')
    entries = run(text + events('t = 0\nups = "UPS1"\nstatus = "OB"'))
    assert actions(entries, "host1") == []
    assert (300, "UPS1", "output off") in actions(entries)
    assert not [e for e in entries if e.event == "crashed"]


def test_short_runtime_shuts_down_early() -> None:
    """A UPS whose runtime drains: the host shuts down when the runtime left is below what
    its shutdown needs (60 s of VMs + 60 s of OS), long before its 600 s timer."""
    text = """
[[ups]]
name = "UPS1"
runtime = 300
[[host]]
name = "esx"
backend = "vsphere"
powered_by = ["UPS1"]
shutdown_after = 600
vms = ["vm1"]
""" + events('t = 0\nups = "UPS1"\nstatus = "OB"')
    entries = run(text)
    order = [e for e in entries if e.subject == "esx" and e.event == "shut down VMs"]
    # 120 s of steps + a margin of two 5 s polls + 0.25 x 120 s: at 160 s left, at 140 s
    assert [(e.t, e.detail) for e in order] == [
        (140, "UPS1 runtime 160 s <= 160 s (120 s the remaining steps need + 40 s margin)")]
    assert (300, "UPS1", "output off") in actions(entries)
    assert not [e for e in entries if e.event == "crashed"]


RUNTIME_120 = """
[[ups]]
name = "UPS1"
runtime = 300
[[host]]
name = "pc"
agent = "pc"
powered_by = ["UPS1"]
shutdown_after = 600
shutdown_duration = 120
""" + events('t = 0\nups = "UPS1"\nstatus = "OB"')


def test_runtime_trigger_leaves_room_for_the_polls_and_the_estimate() -> None:
    """A host whose shutdown needs 120 s on a UPS with 300 s of runtime: acting at the last
    reading below 120 s (115 s at 185 s) lost the host 5 s before it was down.  The margin
    (two 5 s polls + 0.25 x 120 s) makes it act at 160 s left: down at 260 s, 40 s before
    the battery is empty."""
    entries = run(RUNTIME_120)
    assert actions(entries) == [
        (0, "UPS1", "power failed"), (140, "pc", "shut down"), (140, "pc", "shutting down"),
        (260, "pc", "down"), (300, "UPS1", "output off")]
    [order] = [e for e in entries if e.event == "shut down"]
    assert order.detail == ("UPS1 runtime 160 s <= 160 s (120 s the remaining steps need + "
                            "40 s margin)")


def test_runtime_margin_and_poll_of_a_scenario() -> None:
    """An [[agent]]'s runtime_margin and the scenario's poll set the margin: 120 s + two
    10 s polls + 0.5 x 120 s = 200 s left, read at 100 s; a share above 1 is refused."""
    text = "poll = 10\n" + RUNTIME_120 + '\n[[agent]]\nname = "pc"\nruntime_margin = 0.5\n'
    entries = run(text)
    assert actions(entries, "pc")[:1] == [(100, "pc", "shut down")]
    assert [e.detail for e in entries if e.event == "shut down"] == [
        "UPS1 runtime 200 s <= 200 s (120 s the remaining steps need + 80 s margin)"]
    with pytest.raises(ScenarioError, match=r"agent\[0\]: runtime_margin must be a share of "
                                            r"the need from 0 to 1 \(0.25 adds 25 %\)"):
        loads(text.replace("runtime_margin = 0.5", "runtime_margin = 25"))


def test_low_battery_reported_by_the_ups() -> None:
    """LB from the UPS at 30 s: a secondary waits HOSTSYNC (from its last reading that was
    not OB+LB), then shuts its local host down."""
    text = """
[[ups]]
name = "UPS1"
[[host]]
name = "pc"
powered_by = ["UPS1"]
shutdown_duration = 20
""" + events('t = 0\nups = "UPS1"\nstatus = "OB"', 't = 32\nups = "UPS1"\nstatus = "OB LB"')
    entries = run(text)
    assert actions(entries, "pc") == [(45, "pc", "shut down"), (45, "pc", "shutting down"),
                                      (65, "pc", "down")]
    [order] = [e for e in entries if e.event == "shut down"]
    assert order.detail == ("UPS1 on battery and low battery and no FSD from the primary "
                            "within HOSTSYNC 15")


def test_contact_lost_while_on_battery() -> None:
    """The monitors stop hearing from UPS1 at 32 s (last reading 30 s): DEADTIME 15 later
    the UPS counts as OB+LB and host1 is shut down at once, VMs first."""
    entries = run(CLUSTER + events('t = 0\nups = "UPS1"\nstatus = "OB"',
                                   't = 32\nups = "UPS1"\ncomm = "lost"'))
    host1 = actions(entries, "host1")
    assert host1[:4] == [(45, "host1", "cancel enter maintenance"),
                         (45, "host1", "shut down VMs"), (55, "host1", "VMs stopped"),
                         (55, "host1", "shut down")]
    [order] = [e for e in entries if e.event == "shut down VMs"]
    assert order.detail == "no contact with UPS1 for 15 s while on battery (DEADTIME 15)"
    assert [e.event for e in entries if e.subject == "mgmt"][:2] == [
        "notify ONBATT", "notify COMMBAD"]


def test_contact_lost_while_on_line_changes_nothing() -> None:
    """Last seen on line: unreachable for ten minutes changes nothing but notifications."""
    entries = run("duration = 700\n" + CLUSTER + events('t = 0\nups = "UPS1"\ncomm = "lost"'))
    assert actions(entries, "host1") == []
    assert [(e.t, e.event) for e in entries if e.subject == "mgmt"] == [
        (0, "notify COMMBAD"), (300, "notify NOCOMM"), (600, "notify NOCOMM")]


def test_fsd_from_the_master() -> None:
    """The master sets FSD at 30 s (its own decision): every host shuts down at once."""
    entries = run(CLUSTER + events('t = 0\nups = "UPS1"\nstatus = "OB"',
                                   't = 30\nups = "UPS1"\nfsd = true'))
    assert actions(entries, "host1")[:2] == [(30, "host1", "cancel enter maintenance"),
                                             (30, "host1", "shut down VMs")]
    assert [e.detail for e in entries if e.event == "shut down VMs"] == [
        "UPS1: FSD set by the primary"]


def test_agent_restart_mid_sequence() -> None:
    """The agent restarts during the migration (65 s, down 10 s) and again before the
    shutdown (100 s, down 30 s): the migration is followed to its end, host1 is still shut
    down (at 130 s, when the agent is back) and taken out of maintenance after the power
    returns."""
    entries = run(CLUSTER + events('t = 0\nups = "UPS1"\nstatus = "OB"',
                                   't = 65\nagent = "mgmt"\nrestart = 10',
                                   't = 100\nagent = "mgmt"\nrestart = 30',
                                   't = 400\nups = "UPS1"\nstatus = "OL"'))
    host1 = [(e.t, e.event) for e in entries if e.subject == "host1"]
    assert host1 == [
        (60, "enter maintenance"), (75, "enter maintenance"), (80, "in maintenance"),
        (130, "shut down"), (130, "shutting down"), (190, "down"),
        (400, "exit maintenance"), (460, "booted"), (460, "out of maintenance")]
    resumed = [e.detail for e in entries if e.subject == "host1"][1]
    assert resumed == "resumed after a restart: UPS1 on battery for 60 s"


def test_power_back_before_the_countdown_leaves_a_shut_down_host_off(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """host1 is down at 180 s; mains return at 170 s, before UPS1's countdown starts: the
    UPS never cycles, nothing switches host1 on again, and the timeline says so at the end
    of the run (770 s), when that is what happened.  The host was shut down safely: not a
    failure of the policy (exit status 1) but a host left off (exit status 3)."""
    text = CLUSTER + events('t = 0\nups = "UPS1"\nstatus = "OB"',
                            't = 170\nups = "UPS1"\nstatus = "OL"')
    entries = run(text)
    assert actions(entries)[-1] == (770, "host1", "stays off")
    assert entries[-1].detail == ("down since 180 s with power present: UPS1 did not cycle "
                                  "its output, and nothing switches host1 on again")
    assert (180, "UPS1", "countdown started") not in actions(entries)
    path = tmp_path / "left-off.toml"
    path.write_text(text)
    assert main([str(path)]) == 3
    assert capsys.readouterr().out.splitlines()[-1] == (
        "# LEFT OFF: no host or VM lost power while running, but 1 host stays off: host1")


def test_hosts_down_before_a_killpower_are_not_reported_off(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Scenario 5 with the mains back at 650 s, after FSD: the SSH hosts are down at 630 s
    while the primary still waits for the ESXi slave; its killpower then cycles the UPS
    (830 s) and every host boots (890 s).  Nothing is reported "stays off", exit status 0."""
    text = (ROOT / "upsagent/simulator/scenarios/5-poweract.toml").read_text()
    path = tmp_path / "back-at-650.toml"
    path.write_text(text.replace("t = 1000", "t = 650"))
    assert main([str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert not [line for line in out if "stays off" in line]
    assert "830 s  UPS     output off: killpower: 30 s after master stopped" in out
    assert "890 s  linux1  booted" in out and "890 s  linux2  booted" in out
    assert out[-1] == "# OK: no host or VM lost power while running"


def test_exit_status_is_documented_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    """--help states the exit codes: 0 safe, 1 policy failure, 2 usage, 3 left off."""
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for words in ("0 every host came through", "1 a policy failure",
                  "2 a usage error or a scenario that cannot be read",
                  "3 no policy failure, but a host stays off"):
        assert words in text


def test_nut_default_hostsync_cuts_the_slave(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Scenario 5 with NUT's default HOSTSYNC (15 s): the master stops waiting while the
    ESXi slave still waits its start delay; the killpower cuts it: exit status 1."""
    text = (ROOT / "upsagent/simulator/scenarios/5-poweract.toml").read_text()
    path = tmp_path / "short-hostsync.toml"
    path.write_text(text.replace("hostsync = 300", "hostsync = 15"))
    assert main([str(path)]) == 1
    out = capsys.readouterr().out
    assert "615 s  master  FSD wait over: 1 still logged in after HOSTSYNC 15 s" in out
    assert "720 s  esxi    crashed: lost power while running" in out
    assert out.splitlines()[-1].startswith("# FAILED: 3 problem(s): esxi crashed")


def test_timers_that_do_not_fit_the_countdown(capsys: pytest.CaptureFixture[str],
                                             tmp_path: Path) -> None:
    """A shutdown at 250 s that needs 120 s more: check-config says so before the run, and
    the run shows the crash."""
    path = tmp_path / "late.toml"
    path.write_text(CLUSTER.replace("shutdown_after = 120\nvms = [\"vm1\", \"vm2\"]",
                                    "shutdown_after = 250\nvms = [\"vm1\", \"vm2\"]")
                    + events('t = 0\nups = "UPS1"\nstatus = "OB"'))
    assert main([str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[1] == ("  0 s  mgmt   check-config error: host host1: shutdown finishes at "
                      "370 s, 70 s after UPS1 cuts its output at 300 s (shutdown at 250 s + "
                      "VMs 60 s + OS 60 s)")
    assert any("host1  crashed: lost power while shutting down, 10 s before it was down"
               in line for line in out)


def test_battery_exhausted_without_any_timer() -> None:
    """A vSphere host with no timer on a draining UPS: nothing is done (kept up on purpose
    "off/off: nothing") and the host dies with the battery: the timeline says so."""
    text = """
[[ups]]
name = "UPS1"
runtime = 100
[[host]]
name = "esx"
backend = "vsphere"
powered_by = ["UPS1"]
vms = ["vm1"]
""" + events('t = 0\nups = "UPS1"\nstatus = "OB"')
    entries = run(text)
    assert actions(entries) == [(0, "UPS1", "power failed"),
                                (100, "UPS1", "output off"), (100, "esx", "crashed"),
                                (100, "vm1", "crashed")]


def test_format_text_is_aligned() -> None:
    """Times right-aligned, subjects padded: columns line up."""
    lines = format_text([Entry(0, "UPS1", "power failed", "status OB"),
                         Entry(120, "host1", "down")])
    assert lines == ["  0 s  UPS1   power failed: status OB", "120 s  host1  down"]


VM_GROUPS = """
[[ups]]
name = "UPS1"
[[cluster]]
name = "vc"
kind = "vsphere"
vm_shutdown_time = 10
[[agent]]
name = "mgmt"
[[host]]
name = "esx1"
cluster = "vc"
agent = "mgmt"
powered_by = ["UPS1"]
shutdown_after = 60
vm_shutdown_timeout = 60
vm_groups = [{patterns = ["db*"], timeout = 20}, {patterns = ["web*"], timeout = 15}]
vms = ["mail", "web1", {name = "db1", shutdown_time = 30}, "db2"]
""" + events('t = 0\nups = "UPS1"\nstatus = "OB"')


def test_vm_groups_are_stopped_in_order() -> None:
    """simulate plays vm_groups: the db group first (db1 powered off at the group's 20 s),
    then web, then the VMs of no group, before the host shuts down."""
    entries = run(VM_GROUPS)
    vms = [(e.t, e.subject, e.event) for e in entries if e.subject in
           ("db1", "db2", "web1", "mail")]
    assert vms == [
        (70, "db2", "shut down (VM group 1 of 3)"),
        (80, "db1", "powered off after 20 s (guest still running) (VM group 1 of 3)"),
        (90, "web1", "shut down (VM group 2 of 3)"),
        (100, "mail", "shut down (no VM group: last)"),
    ]
    assert (100, "esx1", "shut down") in actions(entries, "esx1")
    with pytest.raises(ScenarioError, match=r"vm_groups\[2\]\.wait: unknown key"):
        loads(VM_GROUPS.replace("timeout = 15", "wait = 15"))


def test_power_on_vms_starts_them_again_in_reverse_group_order() -> None:
    """simulate plays power_on_vms: the host boots when the output is back, then the VMs
    it stopped start again, the VMs of no group first, the first group last."""
    text = VM_GROUPS.replace('name = "UPS1"\n', 'name = "UPS1"\nwarning_period = 180\n'
                             'shutdown_delay = 60\n', 1).replace(
        "vm_shutdown_timeout = 60\n", "vm_shutdown_timeout = 60\npower_on_vms = true\n")
    entries = run(text + events('t = 300\nups = "UPS1"\nstatus = "OL"'))
    after = [(e.t, e.subject, e.event) for e in entries if e.t >= 300 and e.subject != "mgmt"]
    assert after == [
        (300, "UPS1", "power restored"),
        (300, "esx1", "power on VMs"),
        (300, "UPS1", "output on"),
        (360, "esx1", "booted"),
        (360, "mail", "powered on (no VM group: first)"),
        (370, "web1", "powered on (VM group 2 of 3)"),
        (380, "db1", "powered on (VM group 1 of 3)"),
        (380, "db2", "powered on (VM group 1 of 3)"),
        (390, "esx1", "VMs started"),
    ]


def test_vcenter_and_agent_vm_hosts_go_last() -> None:
    """simulate: three hosts due together; the host running the vCenter VM stops its VMs
    once the other is down, the host running the agent's VM after both."""
    host = ('[[host]]\nname = "{}"\ncluster = "vc"\nagent = "mgmt"\npowered_by = ["UPS1"]\n'
            'shutdown_after = 60\nvms = ["{}"]\n')
    text = ('[[ups]]\nname = "UPS1"\n[[cluster]]\nname = "vc"\nkind = "vsphere"\n'
            'vm_shutdown_time = 10\n[[agent]]\nname = "mgmt"\n'
            + host.format("esx1", "vcsa") + "runs_vcenter = true\n"
            + host.format("esx2", "agentvm") + "runs_agent = true\n"
            + host.format("esx3", "app") + events('t = 0\nups = "UPS1"\nstatus = "OB"'))
    entries = run(text)
    starts = [(e.t, e.subject) for e in entries if e.event == "shut down VMs"]
    assert starts == [(60, "esx3"), (70, "esx1"), (80, "esx2")]
    downs = [(e.t, e.subject) for e in entries if e.event == "down"]
    assert downs == [(130, "esx3"), (140, "esx1"), (150, "esx2")]
