"""Tests for upsagent.agent.monitor: the upsmon-style session, push and poll, events.

Scripted half: a fake endpoint (like Twisted's ``endpointForTesting``) hands each connection a
``StringTransport``; a ``Clock`` drives every timer; the test plays the server line by line and
checks each request the monitor sends.

Real half: NUT 2.8.0's upsd + dummy-ups (tests/nutreal.py) and our master (tests/ourmaster.py)
as real daemons; the monitor runs on a private reactor (a ``SelectReactor`` that is never
installed globally) which the waits iterate, so nothing sleeps for time to pass.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from twisted.application.internet import backoffPolicy
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone, ConnectionLost, ConnectionRefusedError
from twisted.internet.interfaces import IStreamClientEndpoint, ITLSTransport
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from zope.interface import implementer

from upsagent.nut.client import NutError, TransportError
from upsagent.policy.events import CommLost, CommOk, Event, UpsState
from upsagent.agent.monitor import UpsMonitor
from upsagent.config.monitoring import MonitorSettings, TlsSettings
from upsagent.transport import nutproto
from upsagent.config.upsmonconf import parse_upsmon_conf

from tests import nutreal
from tests.certs import self_signed as _certificate
from tests.ourmaster import OurMaster, wait_for

SYSTEM = "dummy@nas:3493"


@implementer(ITLSTransport)
class TLSStringTransport(StringTransport):
    """A StringTransport that records ``startTLS``."""

    def __init__(self) -> None:
        super().__init__()
        self.tls_options: list[Any] = []

    def startTLS(self, contextFactory: Any, normal: bool = True) -> None:
        self.tls_options.append(contextFactory)


class Server:
    """The server end of one scripted connection."""

    def __init__(self, proto: Any, transport: StringTransport) -> None:
        self.proto = proto
        self.transport = transport

    def sent(self) -> list[str]:
        """The request lines written since the last call."""
        data = self.transport.value().decode()
        self.transport.clear()
        return data.splitlines()

    def expect(self, *requests: str) -> None:
        """Assert exactly these request lines were written (and nothing else)."""
        assert self.sent() == list(requests)

    def reply(self, *lines: str) -> None:
        """Deliver these lines to the client in one segment."""
        self.proto.dataReceived("".join(line + "\n" for line in lines).encode())

    def talk(self, request: str, *answer: str) -> None:
        """Expect ``request`` and answer it."""
        self.expect(request)
        self.reply(*answer)

    def drop(self, reason: Failure | None = None) -> None:
        """The connection ends (the server closed it, by default)."""
        self.proto.connectionLost(reason or Failure(ConnectionDone()))


@implementer(IStreamClientEndpoint)
class ScriptedEndpoint:
    """Queues connect attempts; the test accepts or refuses each one."""

    def __init__(self, tls: bool = False) -> None:
        self.pending: list[tuple[Deferred[Any], Any]] = []
        self.tls = tls

    def connect(self, factory: Any) -> Deferred[Any]:
        attempt: Deferred[Any] = Deferred()
        self.pending.append((attempt, factory))
        return attempt

    def accept(self) -> Server:
        attempt, factory = self.pending.pop(0)
        proto = factory.buildProtocol(None)
        transport = TLSStringTransport() if self.tls else StringTransport()
        proto.makeConnection(transport)
        attempt.callback(proto)
        return Server(proto, transport)  # ClientService's proxy: it must see the loss

    def refuse(self) -> None:
        attempt, _ = self.pending.pop(0)
        attempt.errback(ConnectionRefusedError("Connection refused"))


class Rig:
    """A monitor on a Clock and a scripted endpoint, with the events it emitted."""

    def __init__(self, tls_transport: bool = False, **settings: Any) -> None:
        self.clock = Clock()
        self.endpoint = ScriptedEndpoint(tls_transport)
        self.events: list[Event] = []
        options: dict[str, Any] = {"user": "monuser", "password": "monpass"}
        options.update(settings)
        self.monitor = UpsMonitor(MonitorSettings(SYSTEM, **options), self.events.append,
                                  clock=self.clock, endpoint=self.endpoint,
                                  retry_policy=backoffPolicy(jitter=lambda: 0.0))
        self.monitor.start()

    def take(self) -> list[Event]:
        """The events emitted since the last call."""
        events, self.events[:] = list(self.events), []
        return events

    def session(self, primary: bool = False, watch: str | None = "ERR UNKNOWN-COMMAND",
                status: str = "OL") -> Server:
        """Accept the pending connect and play upsmon's session up to the first read."""
        server = self.endpoint.accept()
        server.talk("STARTTLS", "ERR FEATURE-NOT-CONFIGURED")
        server.talk("USERNAME monuser", "OK")
        server.talk("PASSWORD monpass", "OK")
        server.talk("LOGIN dummy", "OK")
        if primary:
            server.talk("PRIMARY dummy", "OK PRIMARY-GRANTED")
        if watch is not None:
            server.talk("WATCH dummy", watch)
        server.talk("GET VAR dummy ups.status", f'VAR dummy ups.status "{status}"')
        return server


def state(status: str, charge: float | None = None, runtime: float | None = None) -> UpsState:
    return UpsState(SYSTEM, frozenset(status.split()), charge, runtime)


def test_secondary_session_is_upsmons_and_polls_at_pollfreq() -> None:
    """STARTTLS (ERR: plain text), USERNAME, PASSWORD, LOGIN, then GET every POLLFREQ."""
    rig = Rig(watch=False, poll_freq=7, poll_freq_alert=2)
    server = rig.session(watch=None)
    assert rig.take() == [state("OL")]
    assert rig.monitor.logged_in and not rig.monitor.pushing and not rig.monitor.tls
    rig.clock.advance(6.9)
    server.expect()
    rig.clock.advance(0.1)
    server.talk("GET VAR dummy ups.status", 'VAR dummy ups.status "OB DISCHRG"')
    assert rig.take() == [state("OB DISCHRG")]
    rig.clock.advance(1.9)
    server.expect()
    rig.clock.advance(0.1)  # on battery: POLLFREQALERT
    server.talk("GET VAR dummy ups.status", 'VAR dummy ups.status "OL CHRG"')
    rig.clock.advance(2)
    server.expect()
    rig.clock.advance(5)  # back on line: POLLFREQ
    server.expect("GET VAR dummy ups.status")


def test_primary_asks_primary_then_master() -> None:
    """A primary sends PRIMARY, and MASTER after any non-OK answer (a NUT 2.7 upsd)."""
    rig = Rig(primary=True, watch=False)
    server = rig.endpoint.accept()
    for request, answer in [("STARTTLS", "ERR UNKNOWN-COMMAND"), ("USERNAME monuser", "OK"),
                            ("PASSWORD monpass", "OK"), ("LOGIN dummy", "OK"),
                            ("PRIMARY dummy", "ERR UNKNOWN-COMMAND"),
                            ("MASTER dummy", "OK MASTER-GRANTED")]:
        server.talk(request, answer)
    server.talk("GET VAR dummy ups.status", 'VAR dummy ups.status "OL"')
    assert rig.monitor.primary_granted
    assert rig.take() == [state("OL")]


def test_primary_rights_refused_still_monitors() -> None:
    """PRIMARY and MASTER refused: logged, and the status is still read."""
    rig = Rig(primary=True, watch=False)
    server = rig.endpoint.accept()
    for request, answer in [("STARTTLS", "ERR FEATURE-NOT-CONFIGURED"),
                            ("USERNAME monuser", "OK"), ("PASSWORD monpass", "OK"),
                            ("LOGIN dummy", "OK"), ("PRIMARY dummy", "ERR ACCESS-DENIED"),
                            ("MASTER dummy", "ERR ACCESS-DENIED")]:
        server.talk(request, answer)
    server.talk("GET VAR dummy ups.status", 'VAR dummy ups.status "OL"')
    assert rig.monitor.logged_in and not rig.monitor.primary_granted
    assert rig.take() == [state("OL")]


def test_login_refused_keeps_reading_like_upsmon() -> None:
    """A refused LOGIN stops the login (no PRIMARY) but not the monitoring."""
    rig = Rig(primary=True, watch=False)
    server = rig.endpoint.accept()
    for request, answer in [("STARTTLS", "ERR FEATURE-NOT-CONFIGURED"),
                            ("USERNAME monuser", "OK"), ("PASSWORD monpass", "OK"),
                            ("LOGIN dummy", "ERR ACCESS-DENIED")]:
        server.talk(request, answer)
    server.talk("GET VAR dummy ups.status", 'VAR dummy ups.status "OL"')
    assert not rig.monitor.logged_in
    assert rig.take() == [state("OL")]


def test_watch_accepted_pushes_and_polls_slowly() -> None:
    """OK WATCHING: pushed lines become events at once; liveness reads every watch_interval,
    every POLLFREQALERT while on battery."""
    rig = Rig(poll_freq=5, poll_freq_alert=2, watch_interval=30)
    server = rig.session(watch="OK WATCHING dummy")
    assert rig.monitor.pushing
    assert rig.take() == [state("OL")]
    rig.clock.advance(29)
    server.expect()
    server.reply('NOTIFY dummy VAR battery.charge "97"')
    assert rig.take() == []          # battery values only with read_battery
    server.reply('NOTIFY dummy VAR ups.status "OB DISCHRG"')
    assert rig.take() == [state("OB DISCHRG")]
    rig.clock.advance(2)  # on battery: liveness every POLLFREQALERT
    server.talk("GET VAR dummy ups.status", 'VAR dummy ups.status "OB DISCHRG"')
    assert rig.take() == [state("OB DISCHRG")]
    server.reply('NOTIFY DUMMY VAR ups.status "OL CHRG"')  # names match case-insensitively
    assert rig.take() == [state("OL CHRG")]
    rig.clock.advance(2)  # the read planned while on battery still happens ...
    server.talk("GET VAR dummy ups.status", 'VAR dummy ups.status "OL CHRG"')
    rig.clock.advance(29.9)  # ... then the slow pace again
    server.expect()
    rig.clock.advance(0.1)
    server.expect("GET VAR dummy ups.status")


def test_watch_liveness_reads_default_to_pollfreq() -> None:
    """Without watch_interval, a pushed-to monitor still reads every POLLFREQ on line, so a
    connection that died silently is noticed as soon as upsmon would (POLLFREQ + timeout)."""
    rig = Rig(poll_freq=5, poll_freq_alert=2)
    server = rig.session(watch="OK WATCHING dummy")
    assert rig.monitor.pushing
    rig.clock.advance(4.9)
    server.expect()
    rig.clock.advance(0.1)
    server.expect("GET VAR dummy ups.status")   # ... and no answer comes
    rig.clock.advance(9.9)
    assert not server.transport.disconnecting
    rig.clock.advance(0.1)
    assert server.transport.disconnecting        # aborted: no reply within the timeout
    server.drop()
    assert rig.take() == [state("OL"), CommLost(
        SYSTEM, "connection to nas port 3493 lost: no reply within 10 s")]


def test_pushed_battery_values_only_when_asked_for() -> None:
    """An upsmon-style monitor (no read_battery) ignores pushed battery.runtime, as upsmon
    never reads it: our master's pushes must not arm a runtime trigger upsmon has not."""
    rig = Rig(poll_freq=5)
    server = rig.session(watch="OK WATCHING dummy")
    assert rig.take() == [state("OL")]
    server.reply('NOTIFY dummy VAR battery.runtime "50"')
    server.reply('NOTIFY dummy VAR ups.status "OB DISCHRG"')
    assert rig.take() == [state("OB DISCHRG")]


def test_watch_refused_falls_back_to_polling() -> None:
    """ERR UNKNOWN-COMMAND to WATCH (NUT's upsd): POLLFREQ, POLLFREQALERT on battery."""
    rig = Rig(poll_freq=10, poll_freq_alert=3, watch_interval=30)
    server = rig.session(watch="ERR UNKNOWN-COMMAND", status="OB")
    assert not rig.monitor.pushing
    rig.clock.advance(3)
    server.talk("GET VAR dummy ups.status", 'VAR dummy ups.status "OL"')
    rig.clock.advance(9.9)
    server.expect()
    rig.clock.advance(0.1)
    server.expect("GET VAR dummy ups.status")
    assert rig.take() == [state("OB"), state("OL")]


def test_pushed_lines_interleave_with_replies_in_order() -> None:
    """NOTIFY lines between replies are told apart by their prefix and applied in order."""
    rig = Rig(read_battery=True, watch_interval=30)
    server = rig.endpoint.accept()
    for request, answer in [("STARTTLS", "ERR FEATURE-NOT-CONFIGURED"),
                            ("USERNAME monuser", "OK"), ("PASSWORD monpass", "OK"),
                            ("LOGIN dummy", "OK"), ("WATCH dummy", "OK WATCHING dummy")]:
        server.talk(request, answer)
    server.expect("GET VAR dummy ups.status", "GET VAR dummy battery.charge",
                  "GET VAR dummy battery.runtime")
    server.reply('NOTIFY dummy VAR battery.charge "80"',
                 'VAR dummy ups.status "OL"',
                 'NOTIFY dummy VAR ups.status "OB DISCHRG"',
                 'VAR dummy battery.charge "79"',
                 'NOTIFY other VAR ups.status "OL"',
                 'NOTIFY dummy VAR battery.runtime "1200"',
                 'VAR dummy battery.runtime "1190"')
    assert rig.take() == [
        state("OB DISCHRG", 80.0),              # pushed while the read was under way
        state("OB DISCHRG", 79.0, 1200.0),      # the read's charge, then a pushed runtime
        state("OB DISCHRG", 79.0, 1190.0)]      # the read completes: every value as last seen


def test_battery_values_missing_or_odd() -> None:
    """VAR-NOT-SUPPORTED gives None; a value that is not a number too."""
    rig = Rig(read_battery=True, watch=False)
    server = rig.endpoint.accept()
    for request, answer in [("STARTTLS", "ERR FEATURE-NOT-CONFIGURED"),
                            ("USERNAME monuser", "OK"), ("PASSWORD monpass", "OK"),
                            ("LOGIN dummy", "OK")]:
        server.talk(request, answer)
    server.sent()
    server.reply('VAR dummy ups.status "OL"', "ERR VAR-NOT-SUPPORTED",
                 'VAR dummy battery.runtime "n/a"')
    assert rig.take() == [state("OL")]


def test_stale_and_driver_not_connected_are_comm_lost_on_the_same_session() -> None:
    """ERR DATA-STALE / DRIVER-NOT-CONNECTED: CommLost once, the session stays, CommOk after."""
    rig = Rig(watch=False, poll_freq=5)
    server = rig.session(watch=None)
    rig.take()
    rig.clock.advance(5)
    server.talk("GET VAR dummy ups.status", "ERR DATA-STALE")
    assert rig.take() == [CommLost(SYSTEM, "reading ups.status: ERR DATA-STALE")]
    rig.clock.advance(5)
    server.talk("GET VAR dummy ups.status", "ERR DRIVER-NOT-CONNECTED")
    assert rig.take() == []  # still lost: reported once
    rig.clock.advance(5)
    server.talk("GET VAR dummy ups.status", 'VAR dummy ups.status "OL"')
    assert rig.take() == [CommOk(SYSTEM), state("OL")]
    assert rig.endpoint.pending == []  # no reconnect for a data problem


def test_pushed_errors_and_recovery() -> None:
    """NOTIFY <ups> ERR DATA-STALE is CommLost; reads go fast until the data is back."""
    rig = Rig(poll_freq=5, poll_freq_alert=2, watch_interval=30)
    server = rig.session(watch="OK WATCHING dummy")
    rig.take()
    server.reply("NOTIFY dummy ERR DATA-STALE")
    assert rig.take() == [CommLost(SYSTEM, "the master reports ERR DATA-STALE")]
    rig.clock.advance(2)  # data unavailable: POLLFREQALERT, not the slow liveness read
    server.talk("GET VAR dummy ups.status", "ERR DATA-STALE")
    server.reply('NOTIFY dummy VAR ups.status "OL"', 'NOTIFY dummy VAR battery.charge "90"')
    assert rig.take() == [CommOk(SYSTEM), state("OL")]   # no read_battery: charge ignored
    server.reply("NOTIFY dummy ERR DRIVER-NOT-CONNECTED")
    assert rig.take() == [CommLost(SYSTEM, "the master reports ERR DRIVER-NOT-CONNECTED")]


def test_empty_status_is_comm_lost() -> None:
    """upsmon treats an empty ups.status as a dead UPS."""
    rig = Rig(watch=False)
    rig.session(watch=None, status="")
    assert rig.take() == [CommLost(SYSTEM, "the server gave an empty ups.status")]


def test_reconnect_with_backoff_after_a_drop() -> None:
    """A drop is CommLost; retries back off (1.5 s, 2.25 s, ...); the next session is CommOk."""
    rig = Rig(watch=False, poll_freq=5)
    server = rig.session(watch=None)
    rig.take()
    server.drop(Failure(ConnectionLost("Connection reset by peer")))
    assert rig.take() == [CommLost(
        SYSTEM, "connection to nas port 3493 lost: Connection to the other side was lost in a "
        "non-clean fashion: Connection reset by peer.")]
    assert rig.endpoint.pending == []
    rig.clock.advance(1.5)  # backoffPolicy(): 1 * 1.5 ** 1
    rig.endpoint.refuse()
    rig.clock.advance(2.24)
    assert rig.endpoint.pending == []
    rig.clock.advance(0.01)  # 1.5 ** 2
    rig.endpoint.refuse()
    rig.clock.advance(3.375)
    rig.endpoint.refuse()
    rig.clock.advance(5)  # 1.5 ** 4 = 5.06, but never longer than one poll interval
    server = rig.session(watch=None, status="OB")
    assert rig.take() == [CommOk(SYSTEM), state("OB")]


def test_connect_refused_at_start() -> None:
    """The first connect fails: CommLost (upsmon's COMMBAD), then CommOk when it works."""
    rig = Rig(watch=False)
    rig.endpoint.refuse()
    assert rig.take() == [CommLost(
        SYSTEM, "cannot connect to nas port 3493: Connection was refused by other side: "
        "Connection refused.")]
    rig.clock.advance(1.5)
    rig.session(watch=None)
    assert rig.take() == [CommOk(SYSTEM), state("OL")]


def test_sessions_that_fail_before_a_read_back_off_too() -> None:
    """TLS required but refused: the connection is dropped and retries grow."""
    rig = Rig(tls=TlsSettings(required=True), poll_freq=30)
    delays = []
    for _ in range(3):
        server = rig.endpoint.accept()
        server.talk("STARTTLS", "ERR FEATURE-NOT-CONFIGURED")
        assert server.transport.disconnecting
        server.drop()
        start = rig.clock.seconds()
        for _ in range(100):
            if rig.endpoint.pending:
                break
            rig.clock.advance(0.25)
        delays.append(rig.clock.seconds() - start)
    assert delays == [1.5, 2.25, 3.5]  # 1.5**1, 1.5**2, 1.5**3=3.375 rounded up to a tick
    assert rig.take() == [CommLost(
        SYSTEM, "TLS is required but nas answered 'ERR FEATURE-NOT-CONFIGURED' to STARTTLS")]


def test_starttls_accepted_switches_to_tls() -> None:
    """OK STARTTLS: TLS starts on the socket, then the login goes through it."""
    rig = Rig(tls_transport=True, watch=False)
    server = rig.endpoint.accept()
    server.talk("STARTTLS", "OK STARTTLS")
    assert len(server.transport.tls_options) == 1  # type: ignore[attr-defined]
    assert rig.monitor.tls
    server.expect("USERNAME monuser")


def test_without_pyopenssl_optional_tls_is_not_attempted(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """As upsmon built without SSL: no STARTTLS, the session goes on in plain text; when
    TLS is required it is still asked for, and the failure says what is missing."""
    monkeypatch.setattr(nutproto, "tls_available", lambda: False)
    rig = Rig(tls_transport=True, watch=False)
    server = rig.endpoint.accept()
    server.expect("USERNAME monuser")
    assert TlsSettings(required=True).attempted and TlsSettings(verify=True).attempted
    assert not TlsSettings(try_tls=False).attempted


def test_starttls_with_verification_needs_a_ca(tmp_path: Any) -> None:
    """Verification without a CA file cannot start: CommLost and a new attempt."""
    rig = Rig(tls_transport=True, watch=False, tls=TlsSettings(verify=True, required=True))
    server = rig.endpoint.accept()
    server.talk("STARTTLS", "OK STARTTLS")
    assert server.transport.disconnecting
    assert rig.take() == [CommLost(SYSTEM, "cannot start TLS: certificate verification "
                                           "needs a CA file (CERTPATH)")]


def test_no_reply_in_time_drops_the_connection() -> None:
    """A reply must come within the timeout (upsmon's NET_TIMEOUT, 10 s)."""
    rig = Rig(watch=False, poll_freq=5)
    server = rig.session(watch=None)
    rig.take()
    rig.clock.advance(5)
    server.expect("GET VAR dummy ups.status")
    rig.clock.advance(9.9)
    assert not server.transport.disconnecting
    rig.clock.advance(0.1)
    assert server.transport.disconnecting
    server.drop(Failure(ConnectionLost("aborted")))
    assert rig.take() == [CommLost(
        SYSTEM, "connection to nas port 3493 lost: no reply within 10 s")]


def test_set_fsd_and_numlogins() -> None:
    """FSD <ups> -> OK FSD-SET; GET NUMLOGINS; both refuse before a session is up."""
    rig = Rig(primary=True, watch=False)
    failures: list[Failure] = []
    rig.monitor.set_fsd().addErrback(failures.append)
    assert failures and failures[0].check(TransportError)
    server = rig.session(primary=True, watch=None)
    done: list[Any] = []
    rig.monitor.set_fsd().addCallback(done.append)
    server.talk("FSD dummy", "OK FSD-SET")
    rig.monitor.numlogins().addCallback(done.append)
    server.talk("GET NUMLOGINS dummy", "NUMLOGINS dummy 2")
    assert done == [None, 2]
    rig.monitor.numlogins().addErrback(failures.append)
    server.talk("GET NUMLOGINS dummy", "ERR DRIVER-NOT-CONNECTED")
    assert isinstance(failures[-1].value, NutError)
    assert failures[-1].value.code == "DRIVER-NOT-CONNECTED"


@pytest.mark.parametrize("logout", [True, False])
def test_stop_with_and_without_logout(logout: bool) -> None:
    """stop(logout=False) just closes the socket (upsmon shutting down); nothing is emitted."""
    rig = Rig(watch=False)
    server = rig.session(watch=None)
    rig.take()
    stopped = rig.monitor.stop(logout=logout)
    server.expect(*(["LOGOUT"] if logout else []))
    assert server.transport.disconnecting
    assert not stopped.called
    server.drop()
    assert stopped.called
    rig.clock.advance(100)
    assert rig.take() == [] and rig.endpoint.pending == []


def test_comm_events_alternate() -> None:
    """Whatever happens, CommLost and CommOk alternate and UpsState only follows good comm."""
    rig = Rig(watch=False, poll_freq=5)
    rig.endpoint.refuse()
    rig.clock.advance(1.5)
    server = rig.session(watch=None)
    for answer in ["ERR DATA-STALE", "ERR DATA-STALE", 'VAR dummy ups.status "OB"',
                   'VAR dummy ups.status "OB LB"']:
        rig.clock.advance(5)
        server.talk("GET VAR dummy ups.status", answer)
    server.drop()
    rig.clock.advance(1.5)
    rig.session(watch=None)
    kinds = [type(event).__name__ for event in rig.take()]
    assert kinds == ["CommLost", "CommOk", "UpsState", "CommLost", "CommOk", "UpsState",
                     "UpsState", "CommLost", "CommOk", "UpsState"]


def test_settings_from_upsmon_conf() -> None:
    """A MONITOR line and the global/CERTHOST TLS rules become MonitorSettings."""
    conf = parse_upsmon_conf(
        "MONITOR ups@nas:3500 1 mon pw primary\nMONITOR ups@other 1 mon pw slave\n"
        "POLLFREQ 7\nPOLLFREQALERT 3\nCERTPATH /etc/nut/ca.pem\nFORCESSL 1\n"
        "CERTHOST nas nas.example 1 1\n")
    first = MonitorSettings.from_upsmon(conf, conf.monitors[0], read_battery=True)
    assert first == MonitorSettings(
        "ups@nas:3500", "mon", "pw", True, 7.0, 3.0, read_battery=True,
        tls=TlsSettings(required=True, verify=True, ca_path="/etc/nut/ca.pem",
                        hostname="nas.example"))
    assert (first.ups, first.host, first.port) == ("ups", "nas", 3500)
    second = MonitorSettings.from_upsmon(conf, conf.monitors[1])
    assert second.tls == TlsSettings(required=True, ca_path="/etc/nut/ca.pem")
    assert not second.primary
    with pytest.raises(ValueError):
        MonitorSettings("ups@nas", "u", "p", poll_freq=0)


# ------------------------------------------------------------------------------------------
# real daemons

DEV = """\
device.mfr: Eaton
device.model: 5PX 2000
device.type: ups
ups.mfr: Eaton
ups.model: 5PX 2000
ups.status: OL
battery.charge: 100
battery.runtime: 2400
"""
UPS_CONF = "[dummy]\n  driver = dummy-ups\n  port = ups.dev\n"
USERS = """\
[admin]
  password = adminpass
  actions = SET
[monuser]
  password = monpass
  upsmon primary
"""


class Live:
    """A monitor on a private reactor, and the events it emitted with their times."""

    def __init__(self, settings: MonitorSettings) -> None:
        from twisted.internet.selectreactor import SelectReactor
        self.reactor = SelectReactor()
        self.reactor.startRunning()
        self.events: list[tuple[float, Event]] = []
        self.monitor = UpsMonitor(settings, self._event, reactor=self.reactor)

    def _event(self, event: Event) -> None:
        self.events.append((time.monotonic(), event))

    def wait(self, check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
        """Iterate the reactor until ``check()`` is truthy."""
        def spin() -> Any:
            self.reactor.iterate(0.01)
            return check()
        return wait_for(spin, timeout, what)

    def state(self, word: str) -> tuple[float, UpsState] | None:
        """The first UpsState whose status holds ``word``, with its time."""
        for when, event in self.events:
            if isinstance(event, UpsState) and word in event.status:
                return when, event
        return None

    def close(self) -> None:
        stopped = self.monitor.stop(logout=False)
        self.wait(lambda: stopped.called, "the monitor to stop")
        self.reactor.stop()
        for _ in range(5):
            self.reactor.iterate(0.01)


def ask(port: int, *lines: str) -> str:
    """Send request lines on one connection; everything the server answered, LOGOUT's excepted."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall("".join(line + "\n" for line in lines).encode() + b"LOGOUT\n")
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    return b"".join(chunks).decode().removesuffix("OK Goodbye\n")


def set_status(port: int, status: str) -> None:
    """SET VAR dummy ups.status as the admin (actions = SET)."""
    answer = ask(port, "USERNAME admin", "PASSWORD adminpass",
                 f'SET VAR dummy ups.status "{status}"')
    assert answer == "OK\nOK\nOK\n", answer


def numlogins(port: int) -> str:
    return ask(port, "GET NUMLOGINS dummy").strip()


def test_real_nut_upsd_polls_ol_to_ob_and_logs_in() -> None:
    """Against NUT's upsd: WATCH refused, polling sees OL then OB, NUMLOGINS 1, and
    stop(logout=False) drops it to 0."""
    nutreal.require_nut()
    with nutreal.nut_server(UPS_CONF, upsd_users=USERS, files={"ups.dev": DEV}) as nut:
        live = Live(MonitorSettings(nut.address("dummy"), "monuser", "monpass", primary=True,
                                    poll_freq=1, poll_freq_alert=1, read_battery=True))
        try:
            live.monitor.start()
            _, first = live.wait(lambda: live.state("OL"), "OL from upsd")
            assert first == UpsState(nut.address("dummy"), frozenset({"OL"}), 100.0, 2400.0)
            assert not live.monitor.pushing  # upsd: ERR UNKNOWN-COMMAND to WATCH
            assert live.monitor.logged_in and live.monitor.primary_granted
            assert numlogins(nut.port) == "NUMLOGINS dummy 1"
            set_status(nut.port, "OB DISCHRG")
            _, ob = live.wait(lambda: live.state("OB"), "OB from upsd")
            assert ob.status == frozenset({"OB", "DISCHRG"})
            done: list[Any] = []
            live.monitor.set_fsd().addCallback(done.append)
            live.wait(lambda: done, "FSD to be set")
            live.wait(lambda: live.state("FSD"), "the FSD latch in ups.status")
        finally:
            live.close()
        wait_for(lambda: numlogins(nut.port) == "NUMLOGINS dummy 0", 10,
                 "NUMLOGINS to drop after stop(logout=False)")
        assert [type(e).__name__ for _, e in live.events if not isinstance(e, UpsState)] == []


@pytest.fixture
def master() -> Iterator[OurMaster]:
    with OurMaster(UPS_CONF, upsd_users=USERS, files={"ups.dev": DEV}) as m:
        wait_for(lambda: ask(m.port, "GET VAR dummy ups.status").startswith("VAR"), 15,
                 "the UPS to have data")
        yield m


def test_our_master_polls_and_logs_in(master: OurMaster) -> None:
    """Against our master without WATCH: the same as against upsd."""
    live = Live(MonitorSettings(f"dummy@127.0.0.1:{master.port}", "monuser", "monpass",
                                watch=False, poll_freq=1, poll_freq_alert=1))
    try:
        live.monitor.start()
        live.wait(lambda: live.state("OL"), "OL from our master")
        assert numlogins(master.port) == "NUMLOGINS dummy 1"
        set_status(master.port, "OB DISCHRG")
        live.wait(lambda: live.state("OB"), "OB by polling")
    finally:
        live.close()
    wait_for(lambda: numlogins(master.port) == "NUMLOGINS dummy 0", 10,
             "NUMLOGINS to drop after stop(logout=False)")


def test_our_master_pushes_a_change_at_once(master: OurMaster) -> None:
    """WATCH accepted: a status change arrives by push, long before any poll could."""
    live = Live(MonitorSettings(f"dummy@127.0.0.1:{master.port}", "monuser", "monpass",
                                poll_freq=30, poll_freq_alert=30, watch_interval=30))
    try:
        live.monitor.start()
        live.wait(lambda: live.state("OL"), "OL from our master")
        assert live.monitor.pushing
        start = time.monotonic()
        set_status(master.port, "OB DISCHRG")
        when, ob = live.wait(lambda: live.state("OB"), "OB by push", timeout=5)
        latency = when - start
        assert latency < 1.0, latency  # the next read is 30 s away
        print(f"pushed OB arrived {latency * 1000:.1f} ms after SET VAR was sent")
    finally:
        live.close()


@pytest.mark.parametrize("hostname, works", [(None, True), ("nas.example", False)])
def test_our_master_over_verified_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      hostname: str | None, works: bool) -> None:
    """STARTTLS with the certificate checked against the CA file: the right name works, a
    wrong one is CommLost and never a read."""
    pem = _certificate(tmp_path)
    # Twisted's TLS layer flushes small writes on a timer of the *global* reactor, which
    # the private reactor of these tests never runs: give it the private one.
    import twisted.protocols.tls
    clock: list[Any] = []
    monkeypatch.setattr(twisted.protocols.tls, "_get_default_clock", lambda: clock[0])
    with OurMaster(UPS_CONF, upsd_users=USERS, files={"ups.dev": DEV},
                   upsd_conf=f"LISTEN 127.0.0.1 {{port}}\nCERTFILE {pem}\n") as m:
        wait_for(lambda: ask(m.port, "GET VAR dummy ups.status").startswith("VAR"), 15,
                 "the UPS to have data")
        tls = TlsSettings(required=True, verify=True, ca_path=str(pem), hostname=hostname)
        live = Live(MonitorSettings(f"dummy@127.0.0.1:{m.port}", "monuser", "monpass",
                                    tls=tls))
        clock.append(live.reactor)
        try:
            live.monitor.start()
            if works:
                live.wait(lambda: live.state("OL"), "OL over TLS")
                assert live.monitor.tls and live.monitor.pushing
            else:
                live.wait(lambda: live.events, "the TLS failure")
                _, event = live.events[0]
                assert isinstance(event, CommLost) and "TLS failure" in event.reason, event
        finally:
            live.close()
