"""``upsagent scan snmp``: a loopback range with several simulated cards (snmpsim on
127.0.0.x) and many silent addresses; only 127.0.0.x is ever probed."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.snmpsim import Snmpsim, free_udp_port
from upsagent.cli.scan import config_snippets
from upsagent.cli.scan_snmp import main
from upsagent.drivers.snmp.discover import addresses

SNMP = Path(__file__).parent / "data" / "snmp"


def test_address_ranges() -> None:
    assert list(addresses("127.0.0.254", "127.0.1.1")) == [
        "127.0.0.254", "127.0.0.255", "127.0.1.0", "127.0.1.1"]
    with pytest.raises(ValueError, match="comes before"):
        list(addresses("127.0.0.5", "127.0.0.1"))
    with pytest.raises(ValueError, match="more than 65536"):
        list(addresses("10.0.0.0", "10.2.0.0"))


def test_config_snippets_quote() -> None:
    nut, native = config_snippets("ups-1", "snmp-ups", "127.0.0.2:16150",
                                  [("community", 'a b"c')], desc="APC Galaxy")
    assert nut == ('[ups-1]\n\tdriver = snmp-ups\n\tport = 127.0.0.2:16150\n'
                   '\tdesc = "APC Galaxy"\n\tcommunity = "a b\\"c"\n')
    assert native == ('[[ups]]\nname = "ups-1"\ndriver = "snmp-ups"\nport = "127.0.0.2:16150"\n'
                      'desc = "APC Galaxy"\n[ups.options]\ncommunity = "a b\\"c"\n')


def test_scan_a_loopback_slash_24(tmp_path: Path) -> None:
    """Three cards on 127.0.0.2, .3 and .5 among 254 addresses, found in seconds."""
    port = free_udp_port()
    cards = {"127.0.0.2": "minuteman-e1500rtxl2u_ietf", "127.0.0.3": "apc-galaxy-vs-40kw_powernet",
             "127.0.0.5": "invt-netagent2_ppc"}
    sims = [Snmpsim(tmp_path, {"public": (SNMP / f"{walk}.snmprec").read_text()}, host=host,
                    port=port) for host, walk in cards.items()]
    try:
        for sim in sims:
            sim.start()
        out, err = io.StringIO(), io.StringIO()
        began = time.monotonic()
        status = main(["127.0.0.1", "127.0.0.254", "--port", str(port), "--snmp-version",
                       "v2c", "--timeout", "0.5", "--retries", "0"], stdout=out, stderr=err)
        took = time.monotonic() - began
    finally:
        for sim in sims:
            sim.stop()
    text = out.getvalue()
    assert status == 0, text + err.getvalue()
    assert text.splitlines()[0].startswith("3 UPS card(s) found between 127.0.0.1 and "
                                           "127.0.0.254 (254 addresses, ")
    table = text.split("\n\n")[1].splitlines()
    assert table[0].split() == ["ADDRESS", "MIB", "MANUFACTURER", "MODEL", "DESCRIPTION"]
    assert table[1].split()[:3] == [f"127.0.0.2:{port}", "ietf", "Minuteman"]
    assert table[2].split()[:5] == [f"127.0.0.3:{port}", "apcc", "APC", "Galaxy", "VS"]
    assert table[3].split()[:2] == [f"127.0.0.5:{port}", "xppc"]
    assert (f"[ups-127-0-0-3]\n\tdriver = snmp-ups\n\tport = 127.0.0.3:{port}\n"
            '\tdesc = "APC Galaxy VS 40kW"\n\tmibs = apcc\n\tsnmp_version = v2c\n'
            "\tcommunity = public\n") in text
    assert (f'[[ups]]\nname = "ups-127-0-0-5"\ndriver = "snmp-ups"\n'
            f'port = "127.0.0.5:{port}"\n') in text
    print(f"\nscan of 254 loopback addresses with 3 cards: {took:.2f} s")
    assert took < 30


def test_nothing_found_and_usage() -> None:
    port = free_udp_port()
    out = io.StringIO()
    assert main(["127.0.0.9", "127.0.0.12", "--port", str(port), "--timeout", "0.2",
                 "--retries", "0"], stdout=out, stderr=io.StringIO()) == 1
    assert out.getvalue().startswith("0 UPS card(s) found between 127.0.0.9 and 127.0.0.12")
    done = subprocess.run([sys.executable, "-m", "upsagent", "scan", "snmp", "127.0.0.5",
                           "127.0.0.1"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "comes before" in done.stderr
    done = subprocess.run([sys.executable, "-m", "upsagent", "scan", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "snmp" in done.stdout
