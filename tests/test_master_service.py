"""Tests for upsagent.master.service: drivers, MAXAGE, reload (MemoryReactorClock)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from twisted.internet.testing import MemoryReactorClock

from upsagent.config.schema import ListenAddress, MasterConfig, UpsConfig, UserConfig
from upsagent.master.service import Master
from upsagent.model import Availability
from upsagent.nut.server import ServerSession

ADMIN = UserConfig("admin", "pw", frozenset({"set", "fsd"}))
MON = UserConfig("mon", "pw", frozenset({"login", "master", "fsd"}))


def config(tmp_path: Path, *names: str, **kw: object) -> MasterConfig:
    ups = []
    for name in names:
        (tmp_path / f"{name}.dev").write_text("ups.status: OL\nbattery.charge: 90\n")
        ups.append(UpsConfig(name, "dummy-ups", port=str(tmp_path / f"{name}.dev"),
                             options={"port": str(tmp_path / f"{name}.dev")}))
    return MasterConfig(listen=(ListenAddress("127.0.0.1", 0),), ups=tuple(ups),
                        users=(ADMIN, MON), **kw)  # type: ignore[arg-type]


def talk(master: Master, *lines: str) -> list[str]:
    session = ServerSession(master.state, "127.0.0.1")
    session.receive_data("".join(line + "\n" for line in lines).encode())
    out = session.data_to_send().decode().splitlines()
    session.connection_lost()
    return out


def test_start_listens_and_serves_driver_data(tmp_path: Path) -> None:
    """start() listens on each address and the replay driver's data is served."""
    reactor = MemoryReactorClock()
    master = Master(config(tmp_path, "a", "b"), reactor)
    master.start()
    assert [(p[0], p[3]) for p in reactor.tcpServers] == [(0, "127.0.0.1")]
    assert talk(master, "GET VAR a battery.charge", "LIST UPS") == [
        'VAR a battery.charge "90"', "BEGIN LIST UPS", 'UPS a "Description unavailable"',
        'UPS b "Description unavailable"', "END LIST UPS"]


def test_unsupported_driver_is_not_connected(tmp_path: Path) -> None:
    """A NUT driver family we do not have is read from NUT's driver socket; while that is
    not there, DRIVER-NOT-CONNECTED."""
    reactor = MemoryReactorClock()
    conf = replace(config(tmp_path), ups=(UpsConfig("usb", "bcmxcp_usb", port="auto"),))
    master = Master(conf, reactor)
    master.start()
    assert talk(master, "GET VAR usb ups.status", "GET UPSDESC usb") == [
        "ERR DRIVER-NOT-CONNECTED", 'UPSDESC usb "Unavailable"']


def test_maxage_marks_a_silent_driver_stale(tmp_path: Path) -> None:
    """A driver that stops reporting goes stale after MAXAGE; a live one never does."""
    reactor = MemoryReactorClock()
    master = Master(config(tmp_path, "a", "b", maxage=15), reactor)
    master.start()
    reactor.advance(0)
    for _ in range(30):
        reactor.advance(1)
    assert talk(master, "GET VAR a ups.status") == ['VAR a ups.status "OL"']
    hung = master.drivers["a"]
    for call in reactor.getDelayedCalls():  # the driver hangs: its poll never comes back
        if getattr(call.func, "__self__", None) is hung:
            call.cancel()
    for _ in range(25):
        reactor.advance(1)
    assert talk(master, "GET VAR a ups.status", "GET VAR b ups.status") == [
        "ERR DATA-STALE", 'VAR b ups.status "OL"']


def test_reload_keeps_clients_latch_and_applies_changes(tmp_path: Path) -> None:
    """SIGHUP reload: users replaced, UPS added/removed, FSD latch and logins kept."""
    reactor = MemoryReactorClock()
    conf = config(tmp_path, "a", "b")
    master = Master(conf, reactor)
    master.start()
    client = ServerSession(master.state, "127.0.0.1")
    client.receive_data(b"USERNAME mon\nPASSWORD pw\nLOGIN a\nFSD a\n")
    assert client.data_to_send() == b"OK\nOK\nOK\nOK FSD-SET\n"
    new = config(tmp_path, "a", "c")
    new = replace(new, users=(replace(MON, password="new"),), ups=(
        replace(new.ups[0], desc="renamed"), new.ups[1]))
    master.reload(new)
    assert talk(master, "LIST UPS", "GET VAR a ups.status", "GET NUMLOGINS a",
                "GET VAR b ups.status", "GET VAR c ups.status") == [
        "BEGIN LIST UPS", 'UPS a "renamed"', 'UPS c "Description unavailable"',
        "END LIST UPS", 'VAR a ups.status "FSD OL"', "NUMLOGINS a 1", "ERR UNKNOWN-UPS",
        'VAR c ups.status "OL"']
    assert talk(master, "USERNAME mon", "PASSWORD pw", "PRIMARY a") == [
        "OK", "OK", "ERR ACCESS-DENIED"]


def test_connection_slot_limits_from_the_configuration(tmp_path: Path) -> None:
    """The factory gets maxconn and the per-address and monitor-slot limits (their
    defaults from maxconn when not set); a reload applies new ones."""
    reactor = MemoryReactorClock()
    master = Master(config(tmp_path, "a", maxconn=40), reactor)
    master.start()
    factory = master.factory
    assert (factory.maxconn, factory.max_conn_per_address,
            factory.reserved_monitor_slots) == (40, 10, 8)
    master.reload(replace(master.config, maxconn=100, max_conn_per_address=7,
                          reserved_monitor_slots=0))
    assert (factory.maxconn, factory.max_conn_per_address,
            factory.reserved_monitor_slots) == (100, 7, 0)
    assert factory.admission.regular_slots == 100


def test_reload_restarts_a_changed_driver(tmp_path: Path) -> None:
    """A UPS whose driver settings changed gets a fresh driver reading the new file."""
    reactor = MemoryReactorClock()
    conf = config(tmp_path, "a")
    master = Master(conf, reactor)
    master.start()
    other = tmp_path / "other.dev"
    other.write_text("ups.status: OB\n")
    master.reload(replace(conf, ups=(replace(conf.ups[0], port=str(other),
                                             options={"port": str(other)}),)))
    assert talk(master, "GET VAR a ups.status") == ['VAR a ups.status "OB"']
    assert master.state.find("a") is not None
    slot = master.state.find("a")
    assert slot is not None and slot.ups.availability is Availability.OK


def test_no_listening_socket_is_an_error(tmp_path: Path) -> None:
    """If no address can be bound, start() says which and why."""

    class Refusing(MemoryReactorClock):
        def listenTCP(self, *args: object, **kw: object) -> object:  # type: ignore[override]
            raise OSError("Address already in use")

    master = Master(config(tmp_path, "a"), Refusing())
    with pytest.raises(RuntimeError, match="127.0.0.1 port 0: Address already in use"):
        master.start()
