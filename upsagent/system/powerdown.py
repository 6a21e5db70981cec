# -*- test-case-name: tests.test_killpower -*-
"""The power-down flag: the shutdown sequence writes it, ``upsagent killpower`` reads it.

It is NUT's POWERDOWNFLAG, with NUT's content, so that NUT's own ``upsmon -K`` accepts ours
and we accept NUT's: the first line is ``upsmon-shutdown-file`` (upsmon 2.8.0 writes it with
a newline and accepts it with or without one, and whatever follows).

Stale flags (NUT #2935: a flag left behind turned every later reboot into a UPS power-off).
A flag is only acted on when:

* its first line is the magic line (anything else is "not ours": refused and left alone,
  as upsmon refuses it);
* it was written since the system booted (its mtime is not older than the boot time in
  ``/proc/stat``; where that cannot be read, this check is skipped).  A flag from an
  earlier boot is stale: it is refused, and removed, because a stale flag is ours but
  worthless.

The master and the slave agent remove a stale flag of ours when they start
(:func:`clear_stale_flag`; upsmon removes its flag at every start), and ``killpower``
removes the flag once it has acted on it.  A flag written since this boot is kept: the agent
was restarted while the shutdown it ordered is under way.  Writing is atomic (a temporary
file renamed over the flag).
"""

from __future__ import annotations

import enum
import os

__all__ = ["FlagState", "MAGIC", "boot_time", "check_flag", "clear_stale_flag", "remove_flag",
           "write_flag"]

#: NUT upsmon's SDMAGIC
MAGIC = "upsmon-shutdown-file"
#: a flag written this many seconds before the computed boot time still counts as this
#: boot's (the boot time is derived from the uptime, rounded to whole seconds)
_SLACK = 2.0


class FlagState(enum.Enum):
    """What a power-down flag path holds."""

    ABSENT = "no power-down flag"
    OURS = "power-down flag set"
    FOREIGN = "the file does not hold the upsmon magic line; not ours, left alone"
    STALE = "the flag was written before the system booted (stale)"


def boot_time(stat_path: str = "/proc/stat") -> float | None:
    """When the system booted (seconds since the epoch), or None when unknown."""
    try:
        with open(stat_path, encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_flag(path: str, booted: float | None = None) -> FlagState:
    """The state of the flag at ``path``; ``booted`` as from :func:`boot_time`."""
    try:
        with open(path, "rb") as handle:
            first = handle.readline(256)
            mtime = os.fstat(handle.fileno()).st_mtime
    except FileNotFoundError:
        return FlagState.ABSENT
    except OSError:
        return FlagState.FOREIGN
    if first.rstrip(b"\r\n") != MAGIC.encode():
        return FlagState.FOREIGN
    if booted is not None and mtime < booted - _SLACK:
        return FlagState.STALE
    return FlagState.OURS


def write_flag(path: str) -> None:
    """Write the flag atomically (raises OSError)."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="ascii") as handle:
            handle.write(MAGIC + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def remove_flag(path: str) -> bool:
    """Remove the flag if it is there and ours (any age); True if removed."""
    if check_flag(path) is not FlagState.OURS:
        return False
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def clear_stale_flag(path: str, booted: float | None = None) -> tuple[FlagState, str]:
    """At start: remove the flag at ``path`` if it is ours and from before this boot
    (``booted``: :func:`boot_time` by default).  Returns its state and what to log (a
    warning; empty when there is no flag)."""
    state = check_flag(path, boot_time() if booted is None else booted)
    if state is FlagState.STALE and remove_flag(path):
        return state, (f"Removed the power-down flag {path}: it was written before this boot "
                       "and would have switched the UPS off at the next shutdown")
    if state is FlagState.OURS:
        return state, (f"The power-down flag {path} is set (written since boot): the UPS "
                       "output will be switched off when this host shuts down")
    if state is FlagState.FOREIGN:
        return state, (f"{path} exists but is not a power-down flag (it lacks the upsmon "
                       "magic line); upsagent killpower will refuse it")
    return state, ""
