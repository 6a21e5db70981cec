"""The snmp-ups driver against snmpsim serving real walks on loopback UDP (v1, v2c, v3).

Each test runs the driver on a fresh epoll reactor in this process, with pysnmp in its own
thread as in the master; the reactor runs until the scenario's conditions are met, each
polled with a bounded deadline (nothing sleeps for time to pass).  Options and the pure
parts use a ``Clock``.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.epollreactor import EPollReactor
from twisted.internet.task import Clock

from tests.snmpsim import Snmpsim, sorted_walk
from upsagent.config.schema import UpsConfig
from upsagent.drivers import registry
from upsagent.drivers.base import Result
from upsagent.drivers.snmp.driver import SnmpDriver
from upsagent.drivers.snmp.settings import SettingsError, parse_port, settings_from
from upsagent.model import UPS, Availability

SNMP = Path(__file__).parent / "data" / "snmp"
MINUTEMAN = (SNMP / "minuteman-e1500rtxl2u_ietf.snmprec").read_text()
INVT = (SNMP / "invt-netagent2_ppc.snmprec").read_text()
GALAXY = (SNMP / "apc-galaxy-vs-40kw_powernet.snmprec").read_text()
#: RFC 1628 control objects made writable (snmpsim's writecache), added to the Minuteman walk
CONTROL = """\
1.3.6.1.2.1.33.1.8.2.0|2:writecache|value=-1
1.3.6.1.2.1.33.1.8.3.0|2:writecache|value=-1
1.3.6.1.2.1.33.1.8.5.0|2:writecache|value=1
1.3.6.1.2.1.33.1.9.8.0|2:writecache|value=2
"""


def avail(ups: UPS) -> Availability:
    return ups.availability


class Run:
    """A fresh reactor driving one scenario: steps of (what, condition, action)."""

    def __init__(self) -> None:
        self.reactor = EPollReactor()  # type: ignore[no-untyped-call]

    def until(self, steps: list[tuple[str, Callable[[], object], Callable[[], object]]],
              bound: float = 20.0) -> None:
        reactor = self.reactor
        todo = list(steps)
        failed: list[str] = []
        deadline = time.monotonic() + bound

        def tick() -> None:
            while todo and todo[0][1]():
                todo.pop(0)[2]()
            if not todo:
                reactor.stop()
            elif time.monotonic() > deadline:
                failed.append(todo[0][0])
                reactor.stop()
            else:
                reactor.callLater(0.02, tick)

        reactor.callWhenRunning(tick)
        saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            reactor.run()
        finally:
            for sig, handler in saved.items():
                signal.signal(sig, handler)
        assert not failed, f"timed out after {bound} s waiting for: {failed[0]}"


def driver_for(reactor: Any, sim: Snmpsim, **options: str) -> tuple[SnmpDriver, UPS]:
    opts = {"port": f"{sim.host}:{sim.port}", "snmp_timeout": "0.5", "snmp_retries": "1",
            "pollfreq": "0.5", **options}
    config = UpsConfig("card", "snmp-ups", port=opts["port"], options=opts)
    ups = UPS("card")
    return SnmpDriver(config, ups, reactor), ups


def nothing() -> None:
    return None


# -- options ---------------------------------------------------------------------------


def test_port_forms() -> None:
    assert parse_port("10.0.0.5") == ("10.0.0.5", 161)
    assert parse_port("ups.example:1161") == ("ups.example", 1161)
    assert parse_port("[fe80::1]:162") == ("fe80::1", 162)
    assert parse_port("[::1]") == ("::1", 161)
    with pytest.raises(SettingsError, match="not a UDP port"):
        parse_port("host:x")


def test_v3_options_checked_and_secrets_from_files(tmp_path: Path) -> None:
    (tmp_path / "auth").write_text("s3cret-auth\n")
    config = UpsConfig("u", "snmp-ups", port="127.0.0.1", confdir=str(tmp_path), options={
        "port": "127.0.0.1", "snmp_version": "v3", "secLevel": "authPriv",
        "secName": "simulator", "authPassword_file": "auth", "privPassword": "privatus",
        "authProtocol": "sha256", "privProtocol": "AES"})
    settings = settings_from(config)
    assert (settings.auth_password, settings.auth_protocol) == ("s3cret-auth", "SHA256")
    assert "s3cret" not in repr(settings) and "privatus" not in repr(settings)
    bad = UpsConfig("u", "snmp-ups", port="h", options={"snmp_version": "v3",
                                                        "secLevel": "authPriv",
                                                        "secName": "x", "authPassword": "y"})
    with pytest.raises(SettingsError, match="privPassword is required"):
        settings_from(bad)
    with pytest.raises(SettingsError, match="snmp_version 'v4'"):
        settings_from(UpsConfig("u", "snmp-ups", port="h", options={"snmp_version": "v4"}))


def test_registered_for_snmp_ups() -> None:
    assert registry.driver_class("snmp-ups") is SnmpDriver
    assert registry.available("snmp-ups")


def test_bad_options_and_missing_pysnmp_leave_it_not_connected(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong option or a missing pysnmp: not connected, saying why; never a crash."""
    ups = UPS("u")
    SnmpDriver(UpsConfig("u", "snmp-ups", port="h:x"), ups, Clock()).start()
    assert avail(ups) is Availability.NOT_CONNECTED and "not a UDP port" in ups.reason
    monkeypatch.setitem(sys.modules, "pysnmp.hlapi.v3arch.asyncio", None)
    ups = UPS("u")
    SnmpDriver(UpsConfig("u", "snmp-ups", port="127.0.0.1"), ups, Clock()).start()
    assert avail(ups) is Availability.NOT_CONNECTED
    assert ups.reason == "the snmp-ups driver needs pysnmp: install upsagent[snmp]"


# -- against snmpsim --------------------------------------------------------------------


def test_v2c_card_is_published(tmp_path: Path) -> None:
    """RFC 1628 walk over v2c: variables, device.* copies, driver.*, no secret published."""
    run = Run()
    with Snmpsim(tmp_path, {"ups-ietf": MINUTEMAN}) as sim:
        driver, ups = driver_for(run.reactor, sim, snmp_version="v2c", community="ups-ietf")
        started: list[object] = []
        run.until([("start", lambda: True, lambda: driver.start().addCallback(started.append)),
                   ("first read", lambda: started, nothing),
                   ("a second poll", lambda: len(driver.polls) >= 2 and not driver._polling,
                    lambda: driver.stop())])
    assert ups.value("battery.voltage") == "41.20"
    assert ups.value("ups.status") == "OL" and ups.value("ups.mfr") == "Minuteman"
    assert ups.value("device.mfr") == "Minuteman" and ups.value("device.type") == "ups"
    assert ups.value("driver.name") == "snmp-ups"
    assert ups.value("driver.version.data") == "ietf MIB 1.55"
    assert ups.value("driver.parameter.snmp_version") == "v2c"
    assert ups.value("driver.parameter.community") is None
    var = ups.get("ups.mfr")
    assert var is not None and var.type_words() == ["STRING:128"]
    assert ups.commands() == []


def test_v1_card_with_missing_objects(tmp_path: Path) -> None:
    """v1: a GET with absent OIDs fails whole with noSuchName; the driver drops them."""
    run = Run()
    with Snmpsim(tmp_path, {"ppc": INVT}) as sim:
        driver, ups = driver_for(run.reactor, sim, community="ppc")  # v1 is the default
        run.until([("start", lambda: True, driver.start),
                   ("data", lambda: avail(ups) is Availability.OK, driver.stop)])
    assert ups.value("driver.version.data") == "xppc MIB 0.41"
    assert ups.value("input.L3-N.voltage") == "237.90"
    assert ups.value("ups.status") == "OL TRIM"


@pytest.mark.parametrize("auth, priv", [("SHA256", "AES"), ("SHA512", "AES256"),
                                        ("MD5", "DES")])
def test_v3_auth_priv(tmp_path: Path, auth: str, priv: str) -> None:
    """SNMPv3 authPriv with SHA-2 and AES (and the MD5/DES default) against snmpsim."""
    run = Run()
    with Snmpsim(tmp_path, {"self": GALAXY}, auth_proto=auth, priv_proto=priv) as sim:
        driver, ups = driver_for(run.reactor, sim, snmp_version="v3", secLevel="authPriv",
                                 secName="simulator", authPassword="auctoritas",
                                 privPassword="privatus", authProtocol=auth,
                                 privProtocol=priv)
        run.until([("start", lambda: True, driver.start),
                   ("data", lambda: avail(ups) is Availability.OK, driver.stop)])
    assert ups.value("ups.model") == "Galaxy VS 40kW"
    assert ups.value("battery.runtime") == "6108"
    for secret in ("authPassword", "privPassword", "secName"):
        assert ups.value(f"driver.parameter.{secret}") is None


def test_v3_wrong_password_never_connects(tmp_path: Path) -> None:
    run = Run()
    with Snmpsim(tmp_path, {"self": GALAXY}) as sim:
        driver, ups = driver_for(run.reactor, sim, snmp_version="v3", secLevel="authPriv",
                                 secName="simulator", authPassword="wrong-pass",
                                 privPassword="privatus", authProtocol="SHA256",
                                 privProtocol="AES")
        run.until([("start", lambda: True, driver.start),
                   ("two attempts", lambda: len(driver.polls) >= 2, driver.stop)])
    assert avail(ups) is Availability.NOT_CONNECTED


def test_silent_card_is_stale_and_comes_back(tmp_path: Path) -> None:
    """The card stops answering: stale at the next poll; it answers again: OK again."""
    run = Run()
    sim = Snmpsim(tmp_path, {"public": MINUTEMAN}).start()
    try:
        driver, ups = driver_for(run.reactor, sim, snmp_timeout="0.2", snmp_retries="0",
                                 pollfreq="0.3")
        run.until([("start", lambda: True, driver.start),
                   ("data", lambda: avail(ups) is Availability.OK, sim.stop),
                   ("stale", lambda: avail(ups) is Availability.STALE, sim.start),
                   ("back", lambda: avail(ups) is Availability.OK, driver.stop)])
    finally:
        sim.stop()
    assert ups.value("battery.charge") == "100"


def test_commands_and_writable_variables(tmp_path: Path) -> None:
    """Commands the card's objects allow, SETs accepted and refused, enum SET published."""
    run = Run()
    results: dict[str, object] = {}

    def record(name: str, d: "Deferred[Result]") -> None:
        d.addCallback(lambda r: results.__setitem__(name, r))

    files = {"ctl": sorted_walk(MINUTEMAN, CONTROL), "apc": GALAXY}
    with Snmpsim(tmp_path, files) as sim:
        driver, ups = driver_for(run.reactor, sim, snmp_version="v2c", community="ctl",
                                 offdelay="45")
        apc, apc_ups = driver_for(run.reactor, sim, snmp_version="v2c", community="apc")

        def act() -> None:
            record("return", driver.instcmd("shutdown.return"))
            record("beeper", driver.instcmd("beeper.mute"))
            record("bad-delay", driver.instcmd("load.off.delay", "soon"))
            record("unknown", driver.instcmd("bypass.start"))
            record("set", driver.setvar("ups.start.auto", "no"))
            record("set-bad", driver.setvar("ups.start.auto", "maybe"))
            record("set-ro", driver.setvar("battery.charge", "50"))
            record("refused", apc.instcmd("test.battery.start"))

        run.until([("start", lambda: True, lambda: (driver.start(), apc.start())),
                   ("data", lambda: avail(ups) is Availability.OK
                    and avail(apc_ups) is Availability.OK, act),
                   ("answers", lambda: len(results) == 8, nothing),
                   ("polled after", lambda: ups.value("ups.timer.shutdown") == "45"
                    and ups.value("ups.beeper.status") == "muted",
                    lambda: (driver.stop(), apc.stop()))])
    assert results == {"return": Result.SUCCESS, "beeper": Result.SUCCESS,
                       "bad-delay": Result.INVALID_ARGUMENT, "unknown": Result.UNKNOWN,
                       "set": Result.SUCCESS, "set-bad": Result.INVALID_ARGUMENT,
                       "set-ro": Result.UNKNOWN, "refused": Result.FAILED}
    assert {"shutdown.return", "shutdown.stayoff", "shutdown.stop", "load.off",
            "load.off.delay", "load.on", "beeper.mute"} <= set(ups.commands())
    var = ups.get("ups.start.auto")
    assert var is not None and var.type_words() == ["RW", "ENUM", "STRING:128"]
    assert var.enum == ["yes", "no"]
    # shutdown.return wrote upsAutoRestart on(1) before the delay; the SET of "no" after
    assert ups.value("ups.start.auto") == "no"
