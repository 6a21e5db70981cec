# -*- test-case-name: tests.test_replay -*-
"""NUT dump files (``.dev`` / ``.seq``) as a list of entries, sans-IO.

A dump file is what ``upsc`` prints, read through NUT's config tokenizer
(:func:`upsagent.nut.tokenizer.tokenize_text`): quoting, backslash escapes and ``#``
comments work as in every NUT file.  The rules below are those of NUT 2.8.0's
``dummy-ups`` (``drivers/dummy-ups.c``, ``parse_data_file``), with its unsafe corners made
safe:

* ``name: value words...`` becomes :class:`SetVar`.  The name is the first word up to its
  first ``:`` (dummy-ups cuts it there, so ``a:b`` names ``a``); the value is the remaining
  words joined by single spaces, so unquoted runs of spaces collapse (``ups.firmware:  6.5.I``
  gives ``6.5.I``).  A quoted empty value (``ups.id: ""``) is kept as ``""``: the driver
  treats an empty value as "delete this variable", as dummy-ups does.
* ``TIMER <seconds>`` becomes :class:`Timer`: playback pauses there.  As in dummy-ups, a
  first word *starting* with ``TIMER`` makes a TIMER line; its argument must be one whole,
  non-negative number of seconds.  dummy-ups ``atoi``\\ s whatever follows (``TIMER`` alone
  crashes it); we report a bad argument as an error and skip the line.
* Lines whose name starts with ``driver.`` are skipped silently: the driver publishes its own
  ``driver.*`` values.
* A name with no value (``battery.charge:``) is an error and the line is skipped.
  dummy-ups reuses whatever value the previous line left in its buffer, which invents
  data; we never do.  ``ups.status:`` alone is the exception: dummy-ups sets each word as a
  status word, so no word means an empty status, which is what the line says.
* A line the tokenizer rejects (an unescaped ``#`` inside quotes) is an error and skipped.

Errors never stop parsing: each one is returned as a :class:`DumpError` naming the file and
the line (the line on which the logical line started), and the rest of the file is used.
Parsing is linear in the size of the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Union

from upsagent.nut.tokenizer import ParseError, tokenize_text

__all__ = ["Dump", "DumpError", "Entry", "SetVar", "Timer", "parse_dump"]

_SECONDS = re.compile(r"[0-9]+\Z")


@dataclass(frozen=True)
class SetVar:
    """Set variable ``name`` to ``value`` (an empty value deletes it)."""

    name: str
    value: str
    #: line of the file it came from (for messages; not part of equality)
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Timer:
    """Pause playback for ``seconds`` before going on with the next entry."""

    seconds: int
    line: int = field(default=0, compare=False)


Entry = Union[SetVar, Timer]


@dataclass(frozen=True)
class DumpError:
    """A line that was skipped, with where it is and why."""

    filename: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.filename}:{self.line}: {self.message}"


@dataclass(frozen=True)
class Dump:
    """A parsed dump file: what to play and what was skipped."""

    entries: list[Entry]
    errors: list[DumpError]
    #: how many ``driver.*`` lines were skipped on purpose
    skipped_driver_lines: int = 0

    def names(self) -> set[str]:
        """Lower-case names of the variables the file sets to a non-empty value."""
        return {e.name.lower() for e in self.entries if isinstance(e, SetVar) and e.value}


def parse_dump(text: str | bytes, filename: str = "<dump>") -> Dump:
    """Parse the text of a ``.dev`` or ``.seq`` file (see the module docstring)."""
    entries: list[Entry] = []
    errors: list[DumpError] = []
    skipped = 0
    for lineno, item in tokenize_text(text):
        if isinstance(item, ParseError):
            errors.append(DumpError(filename, lineno, item.message))
            continue
        entry = _entry(item, lineno)
        if isinstance(entry, str):
            errors.append(DumpError(filename, lineno, entry))
        elif entry is None:
            skipped += 1
        else:
            entries.append(entry)
    return Dump(entries, errors, skipped)


def _entry(words: list[str], lineno: int) -> Entry | str | None:
    """One tokenized line as an entry, an error message, or None for a skipped line."""
    head = words[0]
    if head.startswith("TIMER"):
        if len(words) != 2 or not _SECONDS.match(words[1]):
            got = " ".join(words[1:]) or "nothing"
            return f"TIMER needs one whole number of seconds, got {got!r}"
        return Timer(int(words[1]), lineno)
    name = head.partition(":")[0]
    if not name:
        return f"missing variable name before {head!r}"
    if name.lower().startswith("driver."):
        return None
    if len(words) < 2:
        if name.lower() == "ups.status":
            return SetVar(name, "", lineno)
        return f"no value for {name!r} (line skipped)"
    return SetVar(name, " ".join(words[1:]), lineno)
