"""The policy engine where upsmon's behaviour decides: the agent's own machine after its
shutdown (rules R9: a new boot) and FINALDELAY (rules R7: upsmon never calls it off).

upsmon starts from nothing at every boot and, once it has decided to shut down, goes through
with it (upsmon.c: ``forceshutdown`` / ``doshutdown``: SHUTDOWN notification, FINALDELAY,
SHUTDOWNCMD, exit).  The engine keeps its state across restarts (R9) and has timed plans
whose start delay can be called off (R7); these tests pin down where each applies.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from upsagent.config.slaveconf import MonitorConfig, SlaveConfig
from upsagent.policy.actions import (
    Cancel, EnterMaintenance, ExitMaintenance, Notify, SetFsd, ShutdownHost, WarnUsers,
)
from upsagent.agent.daemon import SlaveDaemon
from upsagent.policy.events import CommLost, CommOk, Event
from upsagent.policy.plan import HostPlan, Plan, Supply, UpsPlan, upsmon_plan
from upsagent.policy.policy import PolicyEngine
from upsagent.policy.rules import OnPowerBack, Phase, final_delay_commits, on_power_back
from tests.test_policy import Drive, state, vsphere
from tests.test_slave_daemon import FakeMonitor, FakeRunner, Rig, on_battery_since_1001, timed_config


def restarted(plan: Plan, d: Drive, at: float) -> Drive:
    """The agent started again at ``at`` from ``d``'s last snapshot (through JSON)."""
    saved = json.loads(json.dumps(d.engine.snapshot()))
    return Drive(plan, at, PolicyEngine.restore(plan, saved, at))


def primary_shutting_down() -> tuple[Plan, Drive]:
    """An upsmon primary: OB+LB at 10 s, FSD set and the secondaries gone at 12 s,
    FINALDELAY 5 s: the shutdown command is started at 17 s (still in flight)."""
    plan = upsmon_plan([("ups@nas", 1, "primary")], final_delay=5)
    d = Drive(plan)
    d.event(0, state("ups@nas", "OL"))
    d.event(10, state("ups@nas", "OB LB"))
    d.done(12, d.last(SetFsd))
    d.until(17)
    assert d.steps(since=12) == [(17, "localhost", "shut down")]
    return plan, d


def primary_with_a_host_in_maintenance_all_down() -> tuple[Plan, Drive]:
    """A primary's machine with a vSphere host, UPS1 on battery from 0 s: host1 enters
    maintenance at 60 s and is shut down at 120 s; FSD and the own host's shutdown at
    300 s, both done."""
    plan = Plan(ups=(UpsPlan("UPS1", "primary"),), hosts=(
        HostPlan("mgmt", "local", (Supply("UPS1"),), shutdown_after=300),
        vsphere("host1", "UPS1")), name="mgmt")
    d = Drive(plan)
    d.event(0, state("UPS1", "OL"))
    d.event(0, state("UPS1", "OB"))
    d.until(60)
    d.done(70, d.last(EnterMaintenance))
    d.until(120)
    d.done(121, d.last(ShutdownHost, "host1"))
    d.until(300)
    d.done(301, d.last(SetFsd))
    d.done(302, d.last(ShutdownHost, "mgmt"))
    return plan, d


def assert_protected_again(d: Drive, at: float) -> None:
    """A new failure at ``at`` shuts the primary's host down again, as upsmon would."""
    d.event(at, state("ups@nas", "OB"))
    d.event(at + 100, state("ups@nas", "OB LB"))
    fsd = d.last(SetFsd)
    assert fsd.reason == "ups@nas on battery and low battery: this agent is the primary"
    d.done(at + 101, fsd)
    d.until(at + 110)
    assert d.steps(since=at) == [(at + 100, "localhost", "set FSD"),
                                 (at + 106, "localhost", "shut down")]
    assert [a.type for _, a in d.of(Notify, since=at)] == ["ONBATT", "LOWBATT", "SHUTDOWN"]


# -- R9: the agent's own shutdown was carried out: a new boot ---------------------------


def test_a_primary_is_protected_again_after_its_own_shutdown() -> None:
    """The shutdown command ran (its result recorded); the machine boots again later: the
    engine starts as upsmon does, its FSD latch cleared and its host idle, and a new OB+LB
    shuts it down again."""
    plan, d = primary_shutting_down()
    d.done(18, d.last(ShutdownHost))
    assert d.engine.phase("localhost") is Phase.DOWN
    again = restarted(plan, d, 5000)
    again.until(5000)
    assert again.log == []
    assert again.engine.phase("localhost") is Phase.IDLE
    assert again.engine.snapshot()["ups"]["ups@nas"]["fsd_by_us"] is False  # type: ignore
    again.event(5001, state("ups@nas", "OL"))      # the first reading: no ONLINE
    again.until(5900)
    assert again.log == []
    assert_protected_again(again, 6000)


def test_the_shutdown_command_in_flight_at_the_snapshot_is_not_run_again() -> None:
    """The machine went down before the command's result was recorded (systemd stops the
    agent on the way down): after the boot the shutdown is not issued again -- the
    operator's command is not run twice -- and the host is protected again."""
    plan, d = primary_shutting_down()
    again = restarted(plan, d, 5000)
    again.until(5100)
    assert again.log == []
    again.event(5101, state("ups@nas", "OL"))
    again.until(5900)
    assert again.log == []
    assert_protected_again(again, 6000)


def test_fsd_still_on_the_ups_after_the_boot_is_critical_again() -> None:
    """upsd keeps FSD until the driver restarts: upsmon, started afresh, shuts down again;
    so does the engine -- because the UPS says FSD, not because of its own old latch."""
    plan, d = primary_shutting_down()
    d.done(18, d.last(ShutdownHost))
    again = restarted(plan, d, 5000)
    again.event(5001, state("ups@nas", "OL FSD"))
    assert again.steps() == [(5001, "localhost", "set FSD")]
    assert [a.type for _, a in again.of(Notify)] == ["FSD"]


def test_a_restart_before_the_own_shutdown_ran_continues_the_sequence() -> None:
    """Restarted during FINALDELAY: FSD stays latched (the UPS will be switched off), the
    shutdown comes at the end of FINALDELAY, FSD is not set again."""
    plan = upsmon_plan([("ups@nas", 1, "primary")], final_delay=5)
    d = Drive(plan)
    d.event(0, state("ups@nas", "OL"))
    d.event(10, state("ups@nas", "OB LB"))
    d.done(12, d.last(SetFsd))
    again = restarted(plan, d, 14)
    assert again.engine.phase("localhost") is Phase.DELAY
    again.event(14.5, state("ups@nas", "OL"))       # power back: still critical (our FSD)
    again.until(30)
    assert again.steps() == [(17, "localhost", "shut down")]
    assert again.engine.snapshot()["ups"]["ups@nas"]["fsd_by_us"] is True  # type: ignore


def test_a_restart_during_finaldelay_does_not_wait_for_the_ups() -> None:
    """Restarted during FINALDELAY with the UPS unreadable: a committed shutdown needs no
    fresh reading, so it comes at the end of FINALDELAY, not DEADTIME after the restart."""
    plan = upsmon_plan([("ups@nas", 1, "secondary")], final_delay=5)
    d = Drive(plan)
    d.event(0, state("ups@nas", "OB"))
    d.event(10, state("ups@nas", "OB LB"))
    d.until(15.5)                   # HOSTSYNC 15 from the last OB reading: SHUTDOWN at 15
    again = restarted(plan, d, 16)
    assert again.engine.phase("localhost") is Phase.DELAY
    again.event(16.5, CommLost("ups@nas", "connection refused"))
    again.until(60)
    assert again.steps() == [(20, "localhost", "shut down")]


def test_a_restart_while_fsd_is_being_set_sets_it_again() -> None:
    """Restarted while waiting for the secondaries: FSD is set again (R9: operations in
    flight are issued again), then the sequence goes on."""
    plan = upsmon_plan([("ups@nas", 1, "primary")], final_delay=5)
    d = Drive(plan)
    d.event(0, state("ups@nas", "OL"))
    d.event(10, state("ups@nas", "OB LB"))
    again = restarted(plan, d, 11)
    [fsd] = again.engine.tick(11)
    assert isinstance(fsd, SetFsd) and fsd.reason.startswith("resumed after a restart: ")
    again.event(11.5, state("ups@nas", "OB LB"))
    again.done(12, fsd)
    again.until(30)
    assert again.steps() == [(17, "localhost", "shut down")]


def test_our_fsd_is_forgotten_when_the_plan_no_longer_has_its_sequence() -> None:
    """The state says this agent set FSD, but the agent's own host was renamed since: the
    latch belonged to a sequence that is gone, and the new host is not shut down for it."""
    plan = upsmon_plan([("ups@nas", 1, "primary")], final_delay=5)
    d = Drive(plan)
    d.event(0, state("ups@nas", "OL"))
    d.event(10, state("ups@nas", "OB LB"))
    d.done(12, d.last(SetFsd))
    renamed = upsmon_plan([("ups@nas", 1, "primary")], final_delay=5, name="me")
    again = restarted(renamed, d, 14)
    again.event(15, state("ups@nas", "OL"))
    again.until(1000)
    assert again.steps() == []


def test_after_the_boot_maintenance_we_entered_is_still_exited() -> None:
    """A primary's machine with a vSphere host: host1 was put into maintenance and shut
    down, then the agent's own host.  After the boot, host1 is taken out of maintenance
    once the UPS reads OL (R9); every host's timers run again at the next failure."""
    plan, d = primary_with_a_host_in_maintenance_all_down()
    assert (d.engine.phase("mgmt"), d.engine.phase("host1")) == (Phase.DOWN, Phase.DOWN)

    again = restarted(plan, d, 5000)
    again.until(5010)
    assert again.log == []                      # waits for the UPS to be read
    again.event(5011, state("UPS1", "OL"))
    exit_ = again.last(ExitMaintenance)
    assert exit_.host == "host1"
    assert exit_.reason == ("power is back; this agent had put it into maintenance before "
                            "its own host was shut down")
    again.done(5200, exit_)
    assert again.engine.phase("host1") is Phase.IDLE
    again.event(6000, state("UPS1", "OB"))
    again.until(6100)
    assert again.steps(since=6000) == [(6060, "host1", "enter maintenance")]
    again.done(6100, again.last(EnterMaintenance))
    again.until(6120)
    again.done(6121, again.last(ShutdownHost, "host1"))
    again.until(6300)
    assert again.steps(since=6101) == [(6120, "host1", "shut down"),
                                       (6300, "mgmt", "set FSD")]


def test_after_the_boot_a_host_left_in_maintenance_is_still_protected() -> None:
    """Power fails again before the UPS reads OL after the boot: host1, still in the
    maintenance we put it in, is shut down by its timer (not forgotten as "down")."""
    plan, d = primary_with_a_host_in_maintenance_all_down()
    again = restarted(plan, d, 5000)
    again.event(5001, state("UPS1", "OB"))
    again.until(5121)
    assert again.steps() == [(5121, "host1", "shut down")]
    assert again.of(EnterMaintenance) == []     # already in maintenance: VMs are away


class PrimaryMonitor(FakeMonitor):
    """A fake monitor of a primary: FSD accepted, the secondaries gone at once."""

    def set_fsd(self) -> Deferred[None]:
        return succeed(None)

    def numlogins(self) -> Deferred[int]:
        return succeed(1)


def test_daemon_shuts_down_again_after_a_reboot(tmp_path: Path) -> None:
    """The daemon: the host shut down at 60 s on battery; the machine boots, the agent
    starts from its state file, and the next failure shuts it down again."""
    config, rig = on_battery_since_1001(tmp_path)
    rig.until(1070)
    assert rig.runner.ran == [("/sbin/poweroff",)]
    rig.daemon.stop(logout=False)

    rig.clock.advance(5000)
    booted = Rig(config, rig.clock)
    booted.status(6100, "OL")
    booted.status(6200, "OB DISCHRG")
    booted.until(6259)
    assert booted.runner.ran == []
    booted.until(6261)
    assert booted.runner.ran == [("/sbin/poweroff",)]


class PrimaryRig(Rig):
    """:class:`Rig` with monitors that can set FSD."""

    def __init__(self, config: SlaveConfig, clock: Clock) -> None:
        self.clock, self.runner = clock, FakeRunner()
        self.monitors: list[FakeMonitor] = []

        def factory(settings: Any, on_event: Callable[[Event], None]) -> FakeMonitor:
            self.monitors.append(PrimaryMonitor(settings, on_event))
            return self.monitors[-1]
        self.daemon = SlaveDaemon(config, clock, runner=self.runner, monitor_factory=factory)
        self.daemon.start()


def test_daemon_primary_shuts_down_again_after_a_reboot(tmp_path: Path) -> None:
    """The same for an upsmon primary, which set FSD before its shutdown."""
    plan = upsmon_plan([("UPS1@nas", 1, "primary")], final_delay=0, name="me")
    config = SlaveConfig(plan, (MonitorConfig("UPS1@nas", "mon", "pw", primary=True),),
                         state_file=str(tmp_path / "state.json"),
                         shutdown_command=("/sbin/poweroff",))
    clock = Clock()
    clock.advance(1000)
    rig = PrimaryRig(config, clock)
    rig.status(1000, "OL")
    rig.status(1001, "OB LB")
    rig.until(1005)
    assert rig.runner.ran == [("/sbin/poweroff",)]
    rig.daemon.stop(logout=False)

    clock.advance(5000)
    booted = PrimaryRig(config, clock)
    booted.status(6100, "OL")
    booted.until(6200)
    assert booted.runner.ran == []
    booted.status(6200, "OB LB")
    booted.until(6205)
    assert booted.runner.ran == [("/sbin/poweroff",)]


# -- R7: FINALDELAY is upsmon's: never called off ----------------------------------------


def test_power_back_during_finaldelay_does_not_call_the_shutdown_off() -> None:
    """upsmon secondary: OB+LB, HOSTSYNC, SHUTDOWN; the power returns during FINALDELAY:
    upsmon is already sleeping FINALDELAY before SHUTDOWNCMD, and so is the engine."""
    d = Drive(upsmon_plan([("ups@m", 1, "secondary")], final_delay=5))
    d.event(0, state("ups@m", "OB"))
    d.event(10, state("ups@m", "OB LB"))
    d.until(15)
    assert [(t, a.type) for t, a in d.of(Notify)][-1] == (15, "SHUTDOWN")
    d.event(17, state("ups@m", "OL"))
    d.until(100)
    assert d.of(Cancel) == [] and d.of(WarnUsers) == []
    assert d.steps() == [(20, "localhost", "shut down")]


def test_contact_back_during_finaldelay_does_not_call_the_shutdown_off() -> None:
    """DEADTIME made the UPS critical; contact comes back, on line, during FINALDELAY:
    the shutdown still happens at its end."""
    d = Drive(upsmon_plan([("u", 1, "secondary")], final_delay=10))
    d.event(0, state("u", "OB"))
    d.event(3, CommLost("u", "connection refused"))
    d.until(15)
    d.event(18, CommOk("u"))
    d.event(18, state("u", "OL"))
    d.until(100)
    assert d.steps() == [(25, "localhost", "shut down")]


def test_a_native_start_delay_is_still_called_off() -> None:
    """PowerAct Pro's slave ([[host]], local, no timer, a start delay): the same low
    battery and the same power back during the delay call the shutdown off."""
    plan = Plan(ups=(UpsPlan("ups@m"),), hosts=(HostPlan(
        "esxi", "local", (Supply("ups@m"),), shutdown_delay=120,
        message="UPS on battery: this host shuts down"),), name="esxi")
    d = Drive(plan)
    d.event(0, state("ups@m", "OB"))
    d.event(10, state("ups@m", "OB LB"))
    d.until(15)
    d.event(60, state("ups@m", "OL"))
    d.until(1000)
    assert d.steps() == [(15, "esxi", "warn users"), (60, "esxi", "cancel shut down"),
                         (60, "esxi", "warn users")]
    assert d.last(Cancel).reason == "ups@m back on line after 60 s, during the start delay"
    assert d.engine.phase("esxi") is Phase.IDLE


def test_which_start_delays_are_upsmons_finaldelay() -> None:
    """Only the host upsmon_plan makes (upsmon.conf, or [slave] without [[host]]) has
    upsmon's FINALDELAY; any other plan's start delay can be called off."""
    upsmon_host = upsmon_plan([("a", 1, "primary"), ("b", 2, "secondary")],
                              min_supplies=2, final_delay=7, name="me").hosts[0]
    assert final_delay_commits(upsmon_host)
    assert on_power_back(Phase.DELAY, upsmon_host) is OnPowerBack.COMMITTED
    native = HostPlan("me", "local", upsmon_host.powered_by, 2, shutdown_delay=7)
    assert not final_delay_commits(native)
    assert on_power_back(Phase.DELAY, native) is OnPowerBack.CALL_OFF
    timed = HostPlan("me", "local", upsmon_host.powered_by, 2, shutdown_after=60,
                     shutdown_delay=7, debounce=0.0, shutdown_on_critical=True)
    assert not final_delay_commits(timed)
    for phase in Phase:
        if phase is not Phase.DELAY:
            assert on_power_back(phase, upsmon_host) is on_power_back(phase, native)
