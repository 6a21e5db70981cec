"""snmp-ups served through the real master daemon and ``upsagent killpower``, against
snmpsim on loopback: a NUT ``ups.conf`` section with NUT's options, the native config with
a secret in a file, and the shutdown order sent by the separate killpower process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from tests.ourmaster import OurMaster, ask, wait_for
from tests.snmpsim import Snmpsim, sorted_walk
from tests.test_snmp_driver import CONTROL, MINUTEMAN


def get_int(host: str, port: int, community: str, oid: str) -> int:
    """One v2c GET with pysnmp (independent of the driver), for checking the card."""
    from pysnmp.hlapi.v3arch import asyncio as hl

    async def get() -> int:
        engine = hl.SnmpEngine()
        target = await hl.UdpTransportTarget.create((host, port), timeout=1, retries=2)
        _, _, _, binds = await hl.get_cmd(engine, hl.CommunityData(community), target,
                                          hl.ContextData(), hl.ObjectType(hl.ObjectIdentity(oid)))
        engine.close_dispatcher()
        return int(binds[0][1])

    return asyncio.run(get())


def test_nut_ups_conf_section_is_served(tmp_path: Path) -> None:
    """driver = snmp-ups with port host:port, community, snmp_version, pollfreq."""
    with Snmpsim(tmp_path, {"rack-card": MINUTEMAN}) as sim:
        conf = (f"[card]\n driver = snmp-ups\n port = {sim.host}:{sim.port}\n"
                " community = rack-card\n snmp_version = v2c\n pollfreq = 1\n"
                " desc = \"UPS network card\"\n")
        with OurMaster(ups_conf=conf) as master:
            status = wait_for(lambda: "OL" in ask(master.port, "GET VAR card ups.status")
                              and ask(master.port, "GET VAR card ups.status"), 20,
                              "ups.status from the card")
            listing = ask(master.port, "LIST VAR card")
    assert status == 'VAR card ups.status "OL"\n'
    assert 'VAR card battery.voltage "41.20"\n' in listing
    assert 'VAR card driver.name "snmp-ups"\n' in listing
    assert f'VAR card driver.parameter.port "{sim.host}:{sim.port}"\n' in listing
    assert "rack-card" not in listing            # the community is a secret


def test_killpower_process_orders_shutdown_return(tmp_path: Path) -> None:
    """``upsagent killpower --force`` with the native config (community from a file):
    upsAutoRestart on, then upsShutdownAfterDelay = offdelay, on the card."""
    with Snmpsim(tmp_path, {"ctl": sorted_walk(MINUTEMAN, CONTROL)}) as sim:
        secret = tmp_path / "community"
        secret.write_text("ctl\n")
        os.chmod(secret, 0o600)
        config = tmp_path / "upsagent.toml"
        config.write_text(
            f'[master]\npowerdown_flag = "{tmp_path}/killpower"\n'
            f'[[ups]]\nname = "card"\ndriver = "snmp-ups"\nport = "{sim.host}:{sim.port}"\n'
            f'[ups.options]\nsnmp_version = "v2c"\ncommunity_file = "{secret}"\n'
            'offdelay = "120"\n')
        os.chmod(config, 0o600)
        assert get_int(sim.host, sim.port, "ctl", "1.3.6.1.2.1.33.1.8.2.0") == -1
        done = subprocess.run([sys.executable, "-m", "upsagent", "killpower", "--config",
                               str(config), "--force", "--timeout", "20"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.splitlines()[-1] == "card: shutdown.return acknowledged"
        assert get_int(sim.host, sim.port, "ctl", "1.3.6.1.2.1.33.1.8.2.0") == 120
        assert get_int(sim.host, sim.port, "ctl", "1.3.6.1.2.1.33.1.8.5.0") == 1
