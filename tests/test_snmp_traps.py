"""The SNMP trap receiver: real trap datagrams over loopback UDP, a trap as a poll hint,
unknown sources and wrong communities counted, SNMPv3 traps with the card's USM user, and the
on-battery latency to a WATCH client of the real master (under 100 ms, measured)."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest

from tests.ourmaster import OurMaster, ask, wait_for
from tests.snmpsim import Snmpsim, free_udp_port, sorted_walk
from tests.test_snmp_driver import MINUTEMAN, Run, avail, driver_for
from tests.trapkit import send, send_v3, v1_trap, v2c_trap
from upsagent.drivers.snmp import traps
from upsagent.model import Availability

#: upsOutputSource made writable, so the test can put the simulated UPS on battery
SOURCE = "1.3.6.1.2.1.33.1.4.1.0"
WALK = sorted_walk("\n".join(line for line in MINUTEMAN.splitlines()
                             if not line.startswith(SOURCE + "|")),
                   f"{SOURCE}|2:writecache|value=3\n")


def set_int(port: int, community: str, oid: str, value: int) -> None:
    from pysnmp.hlapi.v3arch import asyncio as hl

    async def put() -> None:
        engine = hl.SnmpEngine()
        target = await hl.UdpTransportTarget.create(("127.0.0.1", port), timeout=1, retries=2)
        result = await hl.set_cmd(engine, hl.CommunityData(community), target,
                                  hl.ContextData(),
                                  hl.ObjectType(hl.ObjectIdentity(oid), hl.Integer32(value)))
        engine.close_dispatcher()
        assert not result[0] and not result[1]

    asyncio.run(put())


def test_decoding_both_versions_and_forms() -> None:
    assert traps.decode_trap(v2c_trap("c", "1.3.6.1.2.1.33.2.1"))[:3] == (
        "v2c", "c", "1.3.6.1.2.1.33.2.1")
    # a v1 RFC 1628 trap is named as RFC 3584 converts it: enterprise.0.specific
    version, community, oid, reply = traps.decode_trap(v1_trap("c", "1.3.6.1.2.1.33.2", 1))
    assert (version, community, oid, reply) == ("v1", "c", "1.3.6.1.2.1.33.2.0.1", None)
    assert traps.event_name(oid) == traps.event_name("1.3.6.1.2.1.33.2.1") == \
        "RFC 1628 upsTrapOnBattery"
    assert traps.event_name(traps.decode_trap(v1_trap("c", "1.3.6.1.4.1.318", 5))[2]) == \
        "APC upsOnBattery"
    assert traps.event_name("1.3.6.1.4.1.534.1.11.4.1.0.3") == "XUPS xupstdOnBattery"
    assert traps.decode_trap(v1_trap("c", "1.3.6.1.4.1.9", 0, generic=0))[2] == "coldStart"
    assert traps.decode_trap(v2c_trap("c", "1.3.6.1.4.1.935.0.5", inform=True))[3]


def test_trap_triggers_a_poll_others_are_counted(tmp_path: Path) -> None:
    """Over real UDP: a trap from the card polls it at once (pollfreq is 60 s); a wrong
    community, an unknown source and garbage are counted and never acted on."""
    run = Run()
    trap_port = free_udp_port()
    receiver, listening = traps.listen(run.reactor, f"127.0.0.1:{trap_port}")
    with Snmpsim(tmp_path, {"public": WALK}) as sim:
        driver, ups = driver_for(run.reactor, sim, pollfreq="60", snmp_version="v2c")
        sent: list[float] = []

        def on_battery() -> None:
            set_int(sim.port, "public", SOURCE, 5)
            send(v2c_trap("wrong", "1.3.6.1.2.1.33.2.1"), trap_port)
            send(v2c_trap("public", "1.3.6.1.2.1.33.2.1"), trap_port, source="127.0.0.9")
            send(b"garbage", trap_port)
            sent.append(time.monotonic())
            send(v1_trap("public", "1.3.6.1.2.1.33.2", 1), trap_port)

        run.until([("start", lambda: True, driver.start),
                   ("data", lambda: avail(ups) is Availability.OK
                    and ups.value("ups.status") == "OL", on_battery),
                   ("OB after the trap", lambda: ups.value("ups.status") == "OB",
                    lambda: (driver.stop(), listening.stopListening()))])
        latency = time.monotonic() - sent[0]
    assert [why for (_, why) in receiver.ignored] == [
        "wrong community", "no SNMP UPS is polled at this address", "not an SNMP message"]
    assert receiver.accepted == 1
    assert [why for _, why in driver.polls] == ["start", "trap RFC 1628 upsTrapOnBattery"]
    print(f"\ntrap to ups.status OB in the driver: {latency * 1000:.1f} ms")


def test_on_battery_reaches_a_watch_client_in_under_100_ms(tmp_path: Path) -> None:
    """The real master with [master] snmp_traps: trap sent -> NOTIFY ups.status OB read."""
    with Snmpsim(tmp_path, {"public": WALK}) as sim:
        trap_port = free_udp_port()
        toml = (f'[master]\nlisten = ["127.0.0.1:{{port}}"]\n'
                f'snmp_traps = "127.0.0.1:{trap_port}"\n'
                f'[[ups]]\nname = "card"\ndriver = "snmp-ups"\nport = "127.0.0.1:{sim.port}"\n'
                '[ups.options]\nsnmp_version = "v2c"\npollfreq = "60"\n')
        with OurMaster(ups_conf="", toml=toml) as master:
            watcher = socket.create_connection(("127.0.0.1", master.port), timeout=5)
            reader = watcher.makefile("rb")
            watcher.sendall(b"WATCH card\n")
            assert reader.readline() == b"OK WATCHING card\n"

            def status() -> str:
                watcher.sendall(b"GET VAR card ups.status\n")
                return reader.readline().decode()

            wait_for(lambda: status() == 'VAR card ups.status "OL"\n', 20, "the card's OL")
            set_int(sim.port, "public", SOURCE, 5)
            began = time.monotonic()
            send(v2c_trap("public", "1.3.6.1.2.1.33.2.1"), trap_port)
            while True:
                try:
                    line = reader.readline().decode()
                except TimeoutError:
                    raise AssertionError(f"no NOTIFY; master log:\n{master.log()}") from None
                if line == 'NOTIFY card VAR ups.status "OB"\n':
                    break
            latency = time.monotonic() - began
            watcher.close()
    print(f"\ntrap to NOTIFY ups.status OB at a WATCH client: {latency * 1000:.1f} ms")
    assert latency < 0.1


ENGINE = "8000000001020304"


@pytest.mark.parametrize("level", ["authPriv", "authNoPriv"])
def test_v3_trap_with_the_cards_user_polls_others_counted(tmp_path: Path, level: str) -> None:
    """The real master with a v3 card: a v3 trap pysnmp sends with the card's user (USM,
    SHA-256/AES, this engine ID) makes it poll; a wrong password, another engine ID than
    ``snmp_trap_engine_id`` and another security level are counted, logged once each,
    never acted on."""
    with Snmpsim(tmp_path, {"self": WALK}) as sim:
        trap_port = free_udp_port()
        priv = 'privPassword = "privatus"\nprivProtocol = "AES"\n' if level == "authPriv" else ""
        toml = (f'[master]\nlisten = ["127.0.0.1:{{port}}"]\n'
                f'snmp_traps = "127.0.0.1:{trap_port}"\n'
                f'[[ups]]\nname = "card"\ndriver = "snmp-ups"\nport = "127.0.0.1:{sim.port}"\n'
                '[ups.options]\nsnmp_version = "v3"\npollfreq = "60"\n'
                f'secLevel = "{level}"\nsecName = "simulator"\nauthPassword = "auctoritas"\n'
                f'authProtocol = "SHA256"\n{priv}snmp_trap_engine_id = "0x{ENGINE}"\n')
        good = ("simulator", "auctoritas", "privatus" if level == "authPriv" else None)
        with OurMaster(ups_conf="", toml=toml) as master:
            wait_for(lambda: "SNMP trap receiver on" in master.log(), 20, "the receiver")
            if level == "authPriv":  # snmpsim's user is authPriv: only then does it answer
                wait_for(lambda: ask(master.port, "GET VAR card ups.status")
                         == 'VAR card ups.status "OL"\n', 20, "the card's OL")
            else:
                time.sleep(1.0)  # the driver registers with the receiver as it starts
            acted = "v3 trap RFC 1628 upsTrapOnBattery from 127.0.0.1: polling now"
            for _ in range(2):
                send_v3(trap_port, "1.3.6.1.2.1.33.2.1", ENGINE, good[0], "wrong-pass",
                        good[2] and "wrong-priv")
            send_v3(trap_port, "1.3.6.1.2.1.33.2.1", "8000000009090909", *good)
            send_v3(trap_port, "1.3.6.1.2.1.33.2.1", ENGINE, good[0], None)  # noAuthNoPriv
            send_v3(trap_port, "1.3.6.1.2.1.33.2.1", ENGINE, *good)
            wait_for(lambda: acted in master.log(), 10, "the v3 trap acted on")
            time.sleep(0.3)
            log = master.log()
    assert log.count(acted) == 1, log
    assert log.count("SNMPv3 authentication failed") == 1, log
    assert log.count("is not snmp_trap_engine_id") == 1, log
    assert log.count("SNMPv3 security level differs") == 1, log
    assert "auctoritas" not in log and "privatus" not in log


def test_trap_engine_id_option() -> None:
    from upsagent.config.schema import UpsConfig
    from upsagent.drivers.snmp.settings import SettingsError, settings_from

    def engine(text: str) -> bytes | None:
        return settings_from(UpsConfig("u", "snmp-ups", port="h", options={
            "snmp_trap_engine_id": text})).trap_engine_id

    assert engine("0x80:00:1f:88:80") == bytes.fromhex("80001f8880")
    assert settings_from(UpsConfig("u", "snmp-ups", port="h")).trap_engine_id is None
    for bad in ("xyz", "0x0102"):
        with pytest.raises(SettingsError):
            engine(bad)
