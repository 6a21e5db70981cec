"""Poll cost of the snmp-ups driver: CPU per poll cycle per card, and how many cards one
master polls at NUT's default pollfreq (30 s) before a cycle overruns.

Runs N drivers (each its own card: a v2c community of one snmpsim on loopback serving the
Minuteman RFC 1628 walk, 24 OIDs per poll) in this process on an epoll reactor with pysnmp
in its thread, exactly as the master does, lets each poll C times back to back
(pollfreq 0.05 s), and reads this process's CPU time (reactor + pysnmp thread; snmpsim's is
not counted).  ``python bench/snmp_poll.py [--cards N] [--cycles C]``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twisted.internet.epollreactor import EPollReactor  # noqa: E402

from tests.snmpsim import Snmpsim  # noqa: E402
from upsagent.config.schema import UpsConfig  # noqa: E402
from upsagent.drivers.snmp.driver import SnmpDriver  # noqa: E402
from upsagent.model import UPS  # noqa: E402

WALK = (ROOT / "tests" / "data" / "snmp" / "minuteman-e1500rtxl2u_ietf.snmprec").read_text()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cards", type=int, default=20)
    parser.add_argument("--cycles", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = {f"card{i}": WALK for i in range(args.cards)}
        with Snmpsim(Path(tmp), files) as sim:
            reactor = EPollReactor()  # type: ignore[no-untyped-call]
            drivers = []
            for i in range(args.cards):
                opts = {"port": f"{sim.host}:{sim.port}", "community": f"card{i}",
                        "snmp_version": "v2c", "pollfreq": "0.05"}
                drivers.append(SnmpDriver(UpsConfig(f"c{i}", "snmp-ups", port=opts["port"],
                                                    options=opts), UPS(f"c{i}"), reactor))
            marks: dict[str, float] = {}

            def check() -> None:
                polls = [len(d.polls) for d in drivers]
                if "warm" not in marks and min(polls) >= 2:  # selection and first read done
                    marks["warm"], marks["cpu0"] = time.monotonic(), time.process_time()
                    marks["base"] = sum(polls)
                if "warm" in marks and sum(polls) - marks["base"] >= args.cards * args.cycles:
                    marks["cpu1"], marks["end"] = time.process_time(), time.monotonic()
                    marks["n"] = sum(polls) - marks["base"]
                    for d in drivers:
                        d.stop()
                    reactor.stop()
                    return
                reactor.callLater(0.01, check)

            cpu_start = time.process_time()
            reactor.callWhenRunning(lambda: [d.start() for d in drivers])
            reactor.callWhenRunning(check)
            reactor.run()
    start_cost = (marks["cpu0"] - cpu_start) / args.cards
    per_poll = (marks["cpu1"] - marks["cpu0"]) / marks["n"]
    wall = (marks["end"] - marks["warm"]) / marks["n"]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"cards {args.cards}, polls measured {int(marks['n'])}")
    print(f"CPU per poll cycle per card: {per_poll * 1000:.2f} ms "
          f"(wall {wall * 1000:.2f} ms per poll with {args.cards} cards polling at once)")
    print(f"CPU to start a card (engine, MIB selection, first read): {start_cost * 1000:.0f} ms")
    print(f"cards per 30 s pollfreq before a cycle overruns one core: "
          f"{int(30 / per_poll)}")
    print(f"peak RSS: {rss:.0f} MB")


if __name__ == "__main__":
    main()
