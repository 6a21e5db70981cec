"""USB HID driver benchmark: decode time, and the CPU of serving one polled USB UPS.

::

    .venv/bin/python bench/usbhid.py [--seconds 60]     # writes bench/usbhid.md

1. **Decode time** of the largest fixture descriptor (SANTAK TG-BOX 850, 926 bytes): the
   parser alone, and the whole decode (parse, pick the table, map it, decode the recorded
   reports: what ``upsagent decode usbhid`` does).
2. **CPU of our master serving one USB UPS at NUT's default intervals** (pollinterval 2 s,
   pollfreq 30 s, interrupt pipe on with 500 ms reads): the real master, the real driver and
   its thread seam, on a real reactor in a child process, with the lowest layer faked (the
   ``hid`` module serving the Back-UPS CS 500's recorded descriptor and reports; an interrupt
   read sleeps its timeout like a device with nothing to say; a GET_REPORT returns at once,
   where real USB would wait about a millisecond without using CPU).  CPU = the child's
   user + system time over the window, after a warm-up, as a share of one core.
3. **NUT's equivalent without the hardware**: Debian's NUT 2.8.0 ``dummy-ups`` replaying the
   NUT dump of the same unit, plus ``upsd`` (both processes), over the same window.  NUT's
   ``usbhid-ups`` itself needs a real UPS; the replayed pair is the closest we can run.

Both servers run with no client connected.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from bench.servers import free_port, start_nut, write_config  # noqa: E402
from tests.fakehid import FakeHidModule, FakeUps  # noqa: E402
from tests.usbhidkit import BACKUPS, SANTAK, descriptor_bytes, recorded_reports  # noqa: E402

DUMP = REPO / "tests" / "data" / "APC__Back-UPS_CS_500__usbhid-ups__2.8.0__01.dev"


def decode_times() -> dict[str, float]:
    """Microseconds per parse and per full decode (best of 5 runs)."""
    from upsagent.drivers.usbhid import vendors
    from upsagent.drivers.usbhid.decoder import HidState, Mode
    from upsagent.drivers.usbhid.hidparser import parse_descriptor
    from upsagent.drivers.usbhid.tables import DeviceInfo

    data, reports = descriptor_bytes(SANTAK), recorded_reports(SANTAK)

    def full() -> None:
        desc = parse_descriptor(data)
        sub = vendors.by_descriptor(desc)
        state = HidState(desc, sub, DeviceInfo(0x0463, 0xFFFF))
        state.walk(Mode.INIT, reports)
        state.published()

    out = {}
    for name, func in (("parse", lambda: parse_descriptor(data)), ("decode", full)):
        number = 200
        best = min(timeit.repeat(func, number=number, repeat=5)) / number
        out[name] = best * 1e6
    out["bytes"] = len(data)
    return out


class SleepyUps(FakeUps):
    """A fake device whose interrupt read waits its timeout, as real hardware does."""

    def interrupt(self, length: int) -> bytes:
        if self.interrupts:
            return super().interrupt(length)
        time.sleep(0.5)
        return b""


def serve(seconds: float, warmup: float) -> None:
    """Child: run the master with one usbhid-ups UPS; print its CPU over the window."""
    from twisted.internet import reactor

    from upsagent.config.schema import ListenAddress, MasterConfig, UpsConfig
    from upsagent.drivers.usbhid import transport
    from upsagent.master.service import Master

    dev = SleepyUps(descriptor_bytes(BACKUPS), recorded_reports(BACKUPS))
    module = FakeHidModule(dev)
    transport.backend = lambda choice="auto": transport.HidapiBackend(module)  # type: ignore
    master = Master(MasterConfig(listen=(ListenAddress("127.0.0.1", free_port()),),
                                 ups=(UpsConfig("usb", "usbhid-ups", "auto"),)), reactor)
    master.start()
    marks: dict[str, float] = {}

    def mark(name: str) -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        marks[name] = usage.ru_utime + usage.ru_stime
        marks[name + "_wall"] = time.monotonic()
        marks[name + "_reads"] = len(dev.reads)

    reactor.callLater(warmup, mark, "start")  # type: ignore[attr-defined]
    reactor.callLater(warmup + seconds, mark, "end")  # type: ignore[attr-defined]
    reactor.callLater(warmup + seconds + 0.1, reactor.stop)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]
    status = master.state.find("usb").ups.value("ups.status")  # type: ignore[union-attr]
    print(json.dumps({"cpu": marks["end"] - marks["start"],
                      "wall": marks["end_wall"] - marks["start_wall"],
                      "feature_reads": marks["end_reads"] - marks["start_reads"],
                      "interrupt_reads": dev.interrupt_reads, "status": status}))


def ours(seconds: float, warmup: float) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, __file__, "--child", str(seconds), str(warmup)],
                         capture_output=True, text=True, env=env, cwd=REPO, check=True,
                         timeout=seconds + warmup + 60)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def nut(seconds: float, warmup: float) -> dict[str, float] | str:
    if not Path("/lib/nut/upsd").exists():
        return "NUT's upsd is not installed here"
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        confdir = write_config(Path(tmp), DUMP, port)
        server, _ = start_nut(confdir, port)
        try:
            procs = [server.stats(), *server.helper_stats()]
            time.sleep(warmup)
            start, wall = sum(p.cpu_seconds() for p in procs), time.monotonic()
            time.sleep(seconds)
            cpu = sum(p.cpu_seconds() for p in procs) - start
            return {"cpu": cpu, "wall": time.monotonic() - wall}
        finally:
            server.stop()


def report(decode: dict[str, float], mine: dict[str, float], theirs: dict[str, float] | str,
           seconds: float) -> str:
    def share(result: dict[str, float]) -> str:
        if result["cpu"] <= 0:       # /proc counts clock ticks (1/100 s)
            tick = 1 / os.sysconf("SC_CLK_TCK")
            return f"< {100 * tick / result['wall']:.3f} % (under one clock tick)"
        return f"{100 * result['cpu'] / result['wall']:.3f} %"

    lines = [
        "## USB HID driver (`bench/usbhid.py`)", "",
        f"Command `.venv/bin/python bench/usbhid.py --seconds {seconds:g}`; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; "
        f"load average before: {', '.join(f'{x:.2f}' for x in os.getloadavg())}.", "",
        "| | figure |", "|---|---:|",
        f"| parse the largest fixture descriptor ({int(decode['bytes'])} bytes, SANTAK "
        f"TG-BOX 850) | {decode['parse']:.0f} us |",
        f"| full decode of it (parse, table, INIT walk of the recorded reports, publish) | "
        f"{decode['decode']:.0f} us |",
        f"| our master serving one USB UPS (fake hidapi, pollinterval 2, pollfreq 30, "
        f"interrupt pipe on), CPU over {mine['wall']:.0f} s | {share(mine)} of a core |",
        f"| of which Feature reports read / interrupt reads in the window | "
        f"{mine['feature_reads']:.0f} / ~{2 * mine['wall']:.0f} |"]
    if isinstance(theirs, str):
        lines.append(f"| NUT dummy-ups + upsd replaying the same unit | ({theirs}) |")
    else:
        lines.append(f"| NUT 2.8.0 dummy-ups + upsd replaying the same unit's dump, CPU over "
                     f"{theirs['wall']:.0f} s | {share(theirs)} of a core |")
    lines += ["", "CPU is user + system time of the processes over the window, after a "
              "5 s warm-up, divided by the wall time.  NUT's usbhid-ups needs a real UPS; "
              "dummy-ups + upsd is the replayed equivalent.  Our figure includes the "
              "thread hops of every USB call (reactor thread pool).", ""]
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        serve(float(sys.argv[2]), float(sys.argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    decode = decode_times()
    mine = ours(args.seconds, 5.0)
    theirs = nut(args.seconds, 5.0)
    text = report(decode, mine, theirs, args.seconds)
    (HERE / "usbhid.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
