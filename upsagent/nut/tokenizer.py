# -*- test-case-name: tests.test_tokenizer -*-
"""The NUT "parseconf" tokenizer, sans-IO.

NUT reads every request line, every config file and every dummy-ups data file through one
character-driven state machine (``common/parseconf.c``).  Clients depend on its exact
behaviour, so this module reproduces it rule for rule:

* space, TAB, CR, VT and FF separate words; LF ends the line;
* ``"..."`` is one word (may hold spaces); a ``\\`` escapes the next character, inside or
  outside quotes; a ``\\`` before LF is a line continuation;
* ``#`` outside quotes starts a comment (it also ends a word in progress); ``#`` *inside*
  quotes is a parse error;
* ``=`` outside quotes is always a word of its own;
* a ``"`` in the middle of an unquoted word is an ordinary character;
* bytes below 0x20 (other than the whitespace above) and above 0x7F are dropped from the
  word, but such a byte still *starts* a word;
* at most 32 words per line are kept and each word is cut to 512 characters.

Complexity and memory: the reader never keeps a line, only the words it has accepted, so
memory per reader is bounded by ``max_words * max_word_len`` however long a line is, and
every byte is looked at once.  Runs of ordinary characters are consumed with one regular
expression match instead of one Python step per byte, which keeps long lines cheap.

:class:`RequestReader` is the network flavour: bytes arrive in chunks of any size, and NUT's
habit of throwing away the rest of a 512-byte ``read()`` after a parse error is kept.
:func:`tokenize_text` is the file flavour (a trailing line without LF still counts).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator, Union

__all__ = [
    "ParseError",
    "RequestReader",
    "Words",
    "quote",
    "tokenize_line",
    "tokenize_text",
]

MAX_WORDS = 32
MAX_WORD_LEN = 512
#: upsd reads its sockets 512 bytes at a time; a parse error discards the rest of that read.
READ_SIZE = 512


@dataclass(frozen=True)
class ParseError:
    """A line that could not be tokenized (an unescaped ``#`` inside quotes)."""

    message: str


Words = list[str]
Item = Union[Words, ParseError]

# States, named as in parseconf.c.
_FINDWORDSTART = 1
_FINDEOL = 2
_QUOTECOLLECT = 3
_QC_LITERAL = 4
_COLLECT = 5
_COLLECTLITERAL = 6

_LF = 0x0A
_SPACES = frozenset(b" \t\r\x0b\x0c")
# A complete line of plain words: whitespace (TAB..CR, space) and 0x21-0x7F other than
# '"', '#', '=', '\\', ending at LF.  By far the most common request shape.
_PLAIN_LINE = re.compile(rb'[\t\x0b\x0c\r !$-<>-\[\]-\x7f]*\n')
# Runs that need no per-byte decision: ordinary word characters outside quotes ...
_COLLECT_RUN = re.compile(rb'[^#=\\\x00-\x20\x80-\xff]+')
# ... and inside quotes (space is ordinary there; control bytes are not).
_QUOTE_RUN = re.compile(rb'[^#"\\\x00-\x1f\x80-\xff]+')


def _valid(ch: int) -> bool:
    """Whether parseconf's ``addchar`` keeps this byte (it keeps 0x20..0x7F)."""
    return 0x20 <= ch <= 0x7F


class _Machine:
    """The parseconf state machine with the word and argument limits of upsd."""

    def __init__(self, max_words: int = MAX_WORDS, max_word_len: int = MAX_WORD_LEN) -> None:
        self.max_words = max_words
        self.max_word_len = max_word_len
        self.state = _FINDWORDSTART
        self.words: Words = []
        self._word = bytearray()

    # -- word building ---------------------------------------------------------------

    def _add(self, chunk: bytes) -> None:
        room = self.max_word_len - len(self._word)
        if room > 0:
            self._word += chunk[:room]

    def _end_word(self) -> None:
        if len(self.words) < self.max_words:
            self.words.append(self._word.decode("ascii"))
        self._word = bytearray()

    def _reset_line(self) -> None:
        self.words = []
        self._word = bytearray()
        self.state = _FINDWORDSTART

    # -- the machine -----------------------------------------------------------------

    def run(self, data: bytes, pos: int, end: int) -> tuple[int, Item | None]:
        """Consume ``data[pos:end]`` until a line or an error completes.

        Returns the position after the last byte consumed and the finished item, or
        ``(end, None)`` when more bytes are needed.
        """
        state = self.state
        if state == _FINDWORDSTART and not self.words and not self._word:
            # Fast path: a whole line of plain words (no quote, backslash, '#', '=' or
            # control byte) splits on whitespace exactly as the state machine would.
            m = _PLAIN_LINE.match(data, pos, end)
            if m is not None:
                limit = self.max_word_len
                return m.end(), [w[:limit].decode("ascii")
                                 for w in m.group().split()[:self.max_words]]
        while pos < end:
            if state == _COLLECT:
                m = _COLLECT_RUN.match(data, pos, end)
                if m is not None:
                    self._add(m.group())
                    pos = m.end()
                    continue
            elif state == _QUOTECOLLECT:
                m = _QUOTE_RUN.match(data, pos, end)
                if m is not None:
                    self._add(m.group())
                    pos = m.end()
                    continue
            elif state == _FINDEOL:
                nl = data.find(b"\n", pos, end)
                if nl < 0:
                    return end, None
                pos = nl
            ch = data[pos]
            pos += 1
            state = self._step(state, ch)
            if state < 0:
                words = self.words
                self._reset_line()
                if state == -1:
                    return pos, words
                return pos, ParseError("Unbalanced word due to unescaped # in quotes")
        self.state = state
        return pos, None

    def _step(self, state: int, ch: int) -> int:
        """One byte through parseconf's rules; -1 means end of line, -2 parse error."""
        if state == _FINDWORDSTART:
            return self._find_word_start(ch)
        if state == _FINDEOL:
            return -1 if ch == _LF else _FINDEOL
        if state == _QUOTECOLLECT:
            if ch == 0x23:  # '#'
                self._end_word()
                return -2
            if ch == 0x22:  # '"'
                self._end_word()
                return _FINDWORDSTART
            if ch == 0x5C:  # '\\'
                return _QC_LITERAL
            if _valid(ch):
                self._add(bytes((ch,)))
            return _QUOTECOLLECT
        if state == _QC_LITERAL:
            if ch != _LF and _valid(ch):
                self._add(bytes((ch,)))
            return _QUOTECOLLECT
        if state == _COLLECT:
            return self._collect(ch)
        # _COLLECTLITERAL
        if ch != _LF and _valid(ch):
            self._add(bytes((ch,)))
        return _COLLECT

    def _find_word_start(self, ch: int) -> int:
        if ch == _LF:
            return -1
        if ch == 0x23:
            return _FINDEOL
        if ch in _SPACES:
            return _FINDWORDSTART
        if ch == 0x5C:
            return _COLLECTLITERAL
        if ch == 0x22:
            return _QUOTECOLLECT
        if _valid(ch):
            self._add(bytes((ch,)))
        if ch == 0x3D:  # '=' is a word of its own
            self._end_word()
            return _FINDWORDSTART
        return _COLLECT

    def _collect(self, ch: int) -> int:
        if ch == 0x23:
            self._end_word()
            return _FINDEOL
        if ch == _LF:
            self._end_word()
            return -1
        if ch in _SPACES:
            self._end_word()
            return _FINDWORDSTART
        if ch == 0x3D:
            self._end_word()
            self._add(b"=")
            self._end_word()
            return _FINDWORDSTART
        if ch == 0x5C:
            return _COLLECTLITERAL
        if _valid(ch):
            self._add(bytes((ch,)))
        return _COLLECT

    def finish(self) -> Words | None:
        """End of input (files only): tie off a word in progress, as pconf_file_next does."""
        if self.state in (_COLLECT, _COLLECTLITERAL, _QUOTECOLLECT, _QC_LITERAL) and self._word:
            self._end_word()
        words = self.words
        self._reset_line()
        return words or None


class RequestReader:
    """Split a client's byte stream into requests exactly as upsd does.

    Feed it whatever the transport delivered; it returns the complete requests (word
    lists) and parse errors, in order.  ``line_bytes`` counts the bytes of the line in
    progress so that a server can enforce its own line-length limit.
    """

    def __init__(self, max_words: int = MAX_WORDS, max_word_len: int = MAX_WORD_LEN) -> None:
        self._machine = _Machine(max_words, max_word_len)
        self.line_bytes = 0

    def feed(self, data: bytes) -> list[Item]:
        """Consume ``data`` and return every request it completed."""
        machine = self._machine
        if not self.line_bytes and len(data) <= READ_SIZE and _PLAIN_LINE.fullmatch(data):
            # Fast path: exactly one whole line of plain words, starting a fresh line (a
            # poller's GET).  Its words are those of the state machine's fast path; the
            # decoded text splits the same way, as it holds no other whitespace.
            words = data.decode("ascii").split()
            if len(words) > machine.max_words:
                del words[machine.max_words:]
            limit = machine.max_word_len
            if len(data) > limit:
                words = [w[:limit] for w in words]
            return [words]
        items: list[Item] = []
        for block in range(0, len(data), READ_SIZE):
            end = min(block + READ_SIZE, len(data))
            pos = block
            while pos < end:
                start = pos
                pos, item = machine.run(data, pos, end)
                self.line_bytes += pos - start
                if item is None:
                    continue
                self.line_bytes = 0
                items.append(item)
                if isinstance(item, ParseError):
                    break  # upsd drops the rest of this read()
        return items

    @property
    def pending(self) -> bool:
        """True while a line has started but not ended."""
        return self.line_bytes > 0


def tokenize_text(text: str | bytes) -> Iterator[tuple[int, Item]]:
    """Tokenize a config or data file; yield ``(line_number, words_or_error)``.

    Empty and comment-only lines are skipped.  The line number is that of the line on
    which the logical line *started* (continuations and quoted newlines span lines).
    """
    data = text.encode("latin-1", "replace") if isinstance(text, str) else text
    machine = _Machine(max_words=10_000, max_word_len=1 << 20)
    pos, end, lineno = 0, len(data), 1
    while pos < end:
        start = pos
        pos, item = machine.run(data, pos, end)
        first = lineno
        lineno += data.count(b"\n", start, pos)
        if item is None:
            break
        if isinstance(item, ParseError) or item:
            yield first, item
        if isinstance(item, ParseError):
            # Like pconf_file_next, carry on after the offending byte on a fresh line.
            machine.state = _FINDEOL
    rest = machine.finish()
    if rest:
        yield lineno, rest


def tokenize_line(line: str) -> Item:
    """Tokenize one complete line (no LF needed), as ``pconf_line`` does."""
    for _, item in tokenize_text(line.rstrip("\n") + "\n"):
        return item
    return []


_ESCAPE = re.compile(r'([\\"#])')


def quote(value: str) -> str:
    """Quote a value for a reply: ``"`` around it, ``\\`` before each ``\\``, ``"``, ``#``."""
    if '"' in value or "\\" in value or "#" in value:
        return '"' + _ESCAPE.sub(r"\\\1", value) + '"'
    return '"' + value + '"'
