"""Where our master spends its time under a scenario: py-spy samples, summarised.

``py-spy record --format raw`` writes one line per distinct stack: frames from the outermost
to the innermost, separated by ``;``, then the number of samples.  A frame reads
``function (file:line)``.  From that we compute, per function (file and name, lines merged):

* **self**: share of samples in which it is the innermost frame (the time spent in its own
  code, including C functions it calls, which py-spy does not show without ``--native``);
* **total** (our functions only): share of samples in which it is anywhere on the stack
  (itself and its callees).

py-spy runs pinned to the generator's core, in its default (blocking) mode: it stops the
master ~200 times a second to read a consistent stack, which costs the master a little; the
figures say where the time goes, and the measured runs are done without it.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from servers import GENERATOR_CPU

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]*?)(?::\d+)?\)$")


@dataclass
class Profile:
    """Summary of one py-spy recording."""

    samples: int
    self_pct: list[tuple[str, float]]
    total_pct: list[tuple[str, float]]
    areas: list[tuple[str, float]]


def frame_name(frame: str) -> str:
    """``func (path/file.py:12)`` -> ``file.py:func`` (short, line number dropped)."""
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match.group("file")
    return f"{path.rsplit('/', 1)[-1]}:{match.group('func')}"


def area(frame: str) -> str:
    """Which part of the stack a frame belongs to, for the coarse breakdown."""
    match = _FRAME.match(frame.strip())
    path = match.group("file") if match else frame
    if path.startswith("upsagent/") or "/upsagent/" in path or path.startswith("drivers/"):
        return "upsagent (" + path.split("upsagent/")[-1].split("/")[0] + ")"
    if "twisted/" in path:
        return "twisted"
    return "other"


def summarise(raw: str, top: int = 15) -> Profile:
    """Summarise py-spy raw (collapsed stack) output."""
    selfc: Counter[str] = Counter()
    totalc: Counter[str] = Counter()
    areac: Counter[str] = Counter()
    samples = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        samples += count
        leaf = frames[-1]
        selfc[frame_name(leaf)] += count
        areac[area(leaf)] += count
        for name in {frame_name(f) for f in frames if area(f).startswith("upsagent")}:
            totalc[name] += count
    def pct(counter: Counter[str]) -> list[tuple[str, float]]:
        # frames on every stack (the entry point, main, the reactor loop) say nothing
        return [(name, 100.0 * n / samples) for name, n in counter.most_common()
                if n < samples][:top]
    if not samples:
        return Profile(0, [], [], [])
    return Profile(samples, pct(selfc), pct(totalc), pct(areac))


def record(pyspy: str, pid: int, seconds: float, out: Path, rate: int = 200) -> Profile:
    """Record ``pid`` for ``seconds`` with py-spy and summarise it."""
    cmd = ["taskset", "-c", str(GENERATOR_CPU), pyspy, "record", "--pid", str(pid),
           "--duration", str(max(1, int(seconds))), "--rate", str(rate), "--format", "raw",
           "--output", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=seconds + 60)
    return summarise(out.read_text())
