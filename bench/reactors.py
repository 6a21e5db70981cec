"""Our master on the default (epoll) reactor against our master on Twisted's asyncio reactor.

Issue 11 asks how pysnmp (asyncio) meets the reactor to be chosen by measurement.  This
starts two of our masters on the same dummy-ups data (one ``python -m upsagent``, one
``bench/asyncio_master.py``) and runs ``bench/load.py``'s scenarios against them in
alternating A/B pairs (epoll first in odd pairs, asyncio first in even ones), with
``bench/run.py``'s measurement (server CPU over the load window, requests/s).  NUT is not
started.  ``python bench/reactors.py [--scenario list-var-100] [--pairs 3] [--seconds 5]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import DEV_FILE, run_load, wait_quiet  # noqa: E402
from servers import REPO, free_port, start_ours, write_config  # noqa: E402

REACTORS = ("epoll", "asyncio")


def rate(res: dict[str, Any]) -> float:
    """Requests answered per second in the window."""
    answered = res.get("completed", res.get("replies", 0))
    return float(answered) / float(res["window_seconds"])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenario", action="append",
                        choices=("list-var-100", "get-var-100"))
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--quiet-wait", type=float, default=60.0)
    args = parser.parse_args()
    scenarios = args.scenario or ["list-var-100", "get-var-100"]
    with tempfile.TemporaryDirectory(prefix="upsagent-reactors-") as name:
        tmp = Path(name)
        dev = tmp / DEV_FILE.name
        dev.write_bytes(DEV_FILE.read_bytes())
        servers = {}
        try:
            for reactor in REACTORS:
                port = free_port()
                conf = write_config(tmp / reactor, dev, port)
                servers[reactor], _ = start_ours(
                    conf, port, REPO, reactor="asyncio" if reactor == "asyncio" else "default")
            log = (tmp / "asyncio" / "master.log").read_text()
            assert "asyncioreactor" in log, log[-2000:]
            for scenario in scenarios:
                runs: dict[str, list[dict[str, Any]]] = {r: [] for r in REACTORS}
                for i in range(args.pairs):
                    order = REACTORS if i % 2 == 0 else REACTORS[::-1]
                    for reactor in order:
                        wait_quiet(args.quiet_wait)
                        res = run_load(servers[reactor], scenario, args.seconds, 1.0)
                        runs[reactor].append(res)
                        print(f"{scenario} pair {i + 1} {reactor:7}: {rate(res):9.0f} req/s, "
                              f"{res['server_cpu_us_per_request']:7.1f} us CPU/request, "
                              f"server CPU {res['server_cpu_pct']:5.1f} %, generator "
                              f"{res['generator_cpu_pct']:5.1f} %", flush=True)
                        time.sleep(0.5)
                summary = {r: (median(rate(x) for x in runs[r]),
                               median(x["server_cpu_us_per_request"] for x in runs[r]))
                           for r in REACTORS}
                (er, ec), (ar, ac) = summary["epoll"], summary["asyncio"]
                print(f"{scenario} median: epoll {er:.0f} req/s {ec:.1f} us/req; asyncio "
                      f"{ar:.0f} req/s {ac:.1f} us/req; asyncio/epoll rate {ar / er:.2f}x, "
                      f"CPU per request {ac / ec:.2f}x", flush=True)
        finally:
            for server in servers.values():
                server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
