"""drivers/nutsock.py on a Clock and a scripted endpoint: connecting, the dump,
availability, requests and tracking, reconnecting, PING, cut-offs, killpower.

The same driver against Debian's real dummy-ups processes is tests/test_nut_drivers.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.application.internet import backoffPolicy
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from zope.interface import implementer

from upsagent.config.schema import MasterConfig, UpsConfig
from upsagent.drivers import registry
from upsagent.drivers.base import Driver, Result
from upsagent.drivers.nutsock import NutSocketDriver, socket_path, statepath
from upsagent.master.service import Master
from upsagent.model import UPS, Availability
from upsagent.nut.sockproto import Limits

DUMP = (b'SETINFO ups.status "OL"\nSETFLAGS ups.status RW STRING\nSETAUX ups.status 32\n'
        b'SETINFO battery.charge "100"\nADDCMD load.off\nDATAOK\nDUMPDONE\n')


class Link:
    """One accepted connection: what the driver wrote, and a way to answer."""

    def __init__(self, proto: Any, transport: StringTransport) -> None:
        self.proto = proto
        self.transport = transport

    def sent(self) -> bytes:
        data = self.transport.value()
        self.transport.clear()
        return bytes(data)

    def say(self, data: bytes) -> None:
        self.proto.dataReceived(data)

    def close(self) -> None:
        self.proto.connectionLost(Failure(ConnectionDone()))


class AbortableTransport(StringTransport):
    aborted = False

    def abortConnection(self) -> None:
        self.aborted = True
        self.loseConnection()


@implementer(IStreamClientEndpoint)
class ScriptedEndpoint:
    """Connect attempts wait until the test accepts or refuses them."""

    def __init__(self) -> None:
        self.pending: list[tuple[Deferred[Any], Any]] = []

    def connect(self, factory: Any) -> Deferred[Any]:
        attempt: Deferred[Any] = Deferred()
        self.pending.append((attempt, factory))
        return attempt

    def accept(self) -> Link:
        attempt, factory = self.pending.pop(0)
        proto = factory.buildProtocol(None)
        transport = AbortableTransport()
        proto.makeConnection(transport)
        attempt.callback(proto)
        return Link(proto, transport)

    def refuse(self) -> None:
        attempt, _ = self.pending.pop(0)
        attempt.errback(ConnectionRefusedError("Connection refused"))


class Rig:
    def __init__(self, **kw: Any) -> None:
        self.clock = Clock()
        self.endpoint = ScriptedEndpoint()
        self.ups = UPS("dummy")
        self.ids = iter(f"ID-{n}" for n in range(1, 100))
        conf = UpsConfig("dummy", "dummy-ups", serve="nut-driver", statepath="/nut/state")
        self.driver = NutSocketDriver(conf, self.ups, self.clock, endpoint=self.endpoint,
                                      retry_policy=backoffPolicy(0.5, 2.0, jitter=lambda: 0.0),
                                      new_id=lambda: next(self.ids), **kw)
        self.started = self.driver.start()

    def connected(self) -> Link:
        link = self.endpoint.accept()
        assert link.sent() == b"DUMPALL\n"
        link.say(DUMP)
        return link


def test_socket_path_and_statepath(monkeypatch: pytest.MonkeyPatch) -> None:
    """STATEPATH of the config, then $NUT_STATEPATH, then /run/nut; <driver>-<ups>."""
    conf = UpsConfig("myups", "usbhid-ups")
    monkeypatch.delenv("NUT_STATEPATH", raising=False)
    assert socket_path(conf) == "/run/nut/usbhid-ups-myups"
    monkeypatch.setenv("NUT_STATEPATH", "/tmp/nut")
    assert statepath(conf) == "/tmp/nut"
    assert socket_path(UpsConfig("myups", "usbhid-ups", statepath="/x")) == \
        "/x/usbhid-ups-myups"


def test_not_connected_until_the_dump_is_done() -> None:
    rig = Rig()
    assert rig.ups.availability is Availability.NOT_CONNECTED
    link = rig.endpoint.accept()
    assert link.sent() == b"DUMPALL\n"
    link.say(DUMP[:60])
    assert rig.ups.availability is Availability.NOT_CONNECTED and not rig.started.called
    link.say(DUMP[60:])
    assert rig.ups.availability is Availability.OK and rig.started.called
    assert rig.ups.value("ups.status") == "OL" and rig.ups.commands() == ["load.off"]
    var = rig.ups.get("ups.status")
    assert var is not None and var.type_words() == ["RW", "STRING:32"]


def test_stale_when_the_driver_says_so() -> None:
    rig = Rig()
    link = rig.endpoint.accept()
    link.say(DUMP.replace(b"DATAOK\n", b"DATASTALE\n"))
    assert rig.ups.availability is Availability.STALE
    link.say(b"DATAOK\n")
    assert rig.ups.availability is Availability.OK
    link.say(b'SETINFO ups.status "OB"\nDATASTALE\n')
    assert rig.ups.availability is Availability.STALE
    link.say(b"DATAOK\n")
    assert rig.ups.value("ups.status") == "OB"


def test_changes_are_committed_once_per_chunk() -> None:
    rig = Rig()
    link = rig.connected()
    seen: list[frozenset[str]] = []
    rig.ups.add_observer(lambda change: seen.append(change.variables))
    link.say(b'SETINFO ups.status "OB"\nSETINFO battery.charge "90"\n')
    assert seen == [frozenset({"ups.status", "battery.charge"})]
    before = rig.ups.updates
    link.say(b"PONG\n")
    assert rig.ups.updates == before + 1  # heard: the MAXAGE watchdog is content
    link.say(b"garbage here\n")
    assert rig.ups.updates == before + 1


def test_requests_carry_the_clients_tracking_id() -> None:
    """Tracked requests go with the client's id and wait for the driver's answer;
    untracked ones go without TRACKING, as upsd sends them."""
    rig = Rig()
    link = rig.connected()
    link.sent()
    results: list[Result] = []
    rig.driver.request("set", "ups.status", "OB LB", "C0FFEE").addCallback(results.append)
    assert link.sent() == b'SET ups.status "OB LB" TRACKING C0FFEE\n'
    link.say(b"TRACKING c0ffee -1\n")
    assert results == []
    link.say(b"TRACKING C0FFEE 0\nTRACKING nobody 1\n")
    assert results == [Result.SUCCESS]
    rig.driver.request("instcmd", "load.off", None, None).addCallback(results.append)
    assert link.sent() == b"INSTCMD load.off\n" and results[-1] is Result.SUCCESS
    rig.driver.instcmd("load.off", "5").addCallback(results.append)
    assert link.sent() == b"INSTCMD load.off 5 TRACKING ID-1\n"
    link.say(b"TRACKING ID-1 1\n")
    rig.driver.setvar("ups.id", "x").addCallback(results.append)
    link.say(b"TRACKING ID-2 3\n")
    assert results[-2:] == [Result.UNKNOWN, Result.FAILED]


def test_a_request_without_a_connection_is_refused() -> None:
    rig = Rig()
    with pytest.raises(ConnectionError, match="not connected to NUT's driver"):
        rig.driver.request("instcmd", "load.off", None, None)


def test_lost_socket_means_not_connected_then_a_fresh_dump() -> None:
    """upsd's sstate_disconnect: everything forgotten at once; reconnect with backoff."""
    rig = Rig()
    link = rig.connected()
    answer = rig.driver.request("instcmd", "load.off", None, "T1")
    link.close()
    assert rig.ups.availability is Availability.NOT_CONNECTED
    assert rig.ups.variables() == [] and rig.ups.commands() == []
    assert not answer.called
    rig.clock.advance(0.74)
    assert rig.endpoint.pending == []
    rig.clock.advance(0.01)  # backoffPolicy(0.5, 2): 0.75 s
    rig.endpoint.refuse()
    assert "Connection refused" in rig.ups.reason
    rig.clock.advance(0.75)
    assert rig.endpoint.pending == []
    rig.clock.advance(0.4)  # 1.125 s
    link = rig.endpoint.accept()
    assert link.sent() == b"DUMPALL\n"
    link.say(b'SETINFO ups.status "OB"\nDATAOK\nDUMPDONE\n')
    assert rig.ups.availability is Availability.OK and rig.ups.value("ups.status") == "OB"
    assert rig.ups.get("battery.charge") is None


def test_backoff_stops_growing_at_two_seconds() -> None:
    """As upsd, which tries at every turn of its 2-second loop."""
    rig = Rig()
    for _ in range(10):
        rig.endpoint.refuse()
        rig.clock.advance(2.0)
    assert len(rig.endpoint.pending) == 1


def test_poke_pings_a_connected_driver() -> None:
    rig = Rig()
    rig.driver.poke()  # nothing to ping yet
    link = rig.connected()
    link.sent()
    rig.driver.poke()
    assert link.sent() == b"PING\n"


def test_a_flooding_driver_is_cut_off_and_held_off(caplog: Any) -> None:
    rig = Rig(limits=Limits(max_line=64), fault_delay=30.0)
    link = rig.connected()
    link.say(b"SETINFO x " + b"y" * 100)
    assert isinstance(link.transport, AbortableTransport) and link.transport.aborted
    assert rig.ups.availability is Availability.NOT_CONNECTED
    assert "cut off" in rig.ups.reason and "longer than 64 bytes" in rig.ups.reason
    link.close()
    rig.clock.advance(29.9)
    assert rig.endpoint.pending == []
    rig.clock.advance(0.1)
    link = rig.connected()
    link.say(b"SETINFO x " + b"y" * 100)
    link.close()
    rig.clock.advance(59.9)
    assert rig.endpoint.pending == []  # doubled
    rig.clock.advance(0.1)
    assert len(rig.endpoint.pending) == 1


def test_stop_closes_and_stops_retrying() -> None:
    rig = Rig()
    link = rig.connected()
    rig.driver.stop()
    link.close()
    assert rig.ups.availability is Availability.NOT_CONNECTED
    rig.clock.advance(60)
    assert rig.endpoint.pending == []
    rig2 = Rig()
    rig2.driver.stop()  # while the first attempt is pending: cancelled
    rig2.clock.advance(60)


def test_killpower_runs_upsdrvctl_shutdown(tmp_path: Any, monkeypatch: Any) -> None:
    """NUT's way: upsdrvctl shutdown <ups> (the driver's -k), NUT_CONFPATH when the
    configuration directory has ups.conf; success is exit status 0."""
    calls: list[tuple[Any, ...]] = []

    class Ran:
        def __init__(self, ok: bool) -> None:
            self.ok = ok

    class Runner:
        ok = True

        def run(self, argv: Any, budget: Any, *, env: Any = None, name: str = "") -> Any:
            calls.append((list(argv), env))
            return succeed(Ran(self.ok))

    tool = tmp_path / "upsdrvctl"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    (tmp_path / "ups.conf").write_text("[u]\n")
    runner = Runner()
    conf = UpsConfig("u", "usbhid-ups", confdir=str(tmp_path))
    driver = NutSocketDriver(conf, UPS("u"), Clock(), endpoint=ScriptedEndpoint(),
                             runner=runner)
    assert not driver.killpower_needs_device
    results: list[Result] = []
    driver.killpower().addCallback(results.append)
    runner.ok = False
    driver.killpower().addCallback(results.append)
    assert calls[0] == ([str(tool), "shutdown", "u"], {"NUT_CONFPATH": str(tmp_path)})
    assert results == [Result.SUCCESS, Result.FAILED]


def test_master_watchdog_pokes_a_quiet_driver(monkeypatch: Any) -> None:
    """After a third of MAXAGE without news the master pokes the driver (upsd's PING);
    after MAXAGE the data is stale."""
    pokes: list[float] = []
    clock = Clock()

    class Quiet(Driver):
        def start(self) -> Deferred[None]:
            self.ups.set("ups.status", "OL")
            self.ups.data_ok()
            return succeed(None)

        def poke(self) -> None:
            pokes.append(clock.seconds())

    monkeypatch.setattr(registry, "create_driver", lambda c, u, r: Quiet(c, u, r))

    class Reactor(Clock):
        def listenTCP(self, *a: Any, **kw: Any) -> Any:
            class Port:
                def getHost(self) -> Any:
                    return type("H", (), {"port": 1})()
            return Port()

    clock = Reactor()
    from upsagent.config.schema import ListenAddress
    master = Master(MasterConfig(listen=(ListenAddress("127.0.0.1", 0),), maxage=15,
                                 ups=(UpsConfig("q", "x"),)), clock)
    master.start()
    for _ in range(30):
        clock.advance(1)
    slot = master.state.find("q")
    assert slot is not None
    assert pokes[:2] == [10.0, 15.0]  # first noticed at 5, then quiet for >= 5 s
    assert slot.ups.availability is Availability.STALE
