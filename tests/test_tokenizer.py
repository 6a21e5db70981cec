"""Tests for upsagent.nut.tokenizer: NUT's parseconf rules, rule by rule."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from upsagent.nut.tokenizer import (MAX_WORD_LEN, MAX_WORDS, ParseError, RequestReader,
                                    quote, tokenize_line, tokenize_text)


def feed(data: bytes) -> list[object]:
    return list(RequestReader().feed(data))


def test_plain_words() -> None:
    """Space, TAB, CR, VT and FF separate words; LF ends the request."""
    assert feed(b"GET\tVAR \x0bdummy\x0c ups.status\r\n") == [
        ["GET", "VAR", "dummy", "ups.status"]]


def test_quotes_and_escapes() -> None:
    """Quoted words keep spaces; backslash escapes work inside and outside quotes."""
    assert feed(b'SET VAR u v "a \\"b\\" \\\\c \\#d"\n') == [
        ["SET", "VAR", "u", "v", 'a "b" \\c #d']]
    assert feed(b"GET VAR dummy ups.sta\\tus\n") == [["GET", "VAR", "dummy", "ups.status"]]


def test_quote_inside_word_is_ordinary() -> None:
    """A quote in the middle of an unquoted word is kept as a character."""
    assert feed(b'ab"cd x\n') == [['ab"cd', "x"]]


def test_comment_ends_line_and_word() -> None:
    """``#`` outside quotes starts a comment and ends the word in progress."""
    assert feed(b"NETVER # x\nGET VAR dummy ups.status#c\n") == [
        ["NETVER"], ["GET", "VAR", "dummy", "ups.status"]]


def test_hash_in_quotes_is_a_parse_error_that_drops_the_read() -> None:
    """``#`` inside quotes: no request, and the rest of that 512-byte read is dropped."""
    reader = RequestReader()
    assert reader.feed(b'GET "a#b"\nNETVER\n') == [
        ParseError("Unbalanced word due to unescaped # in quotes")]
    assert reader.feed(b"NETVER\n") == [["NETVER"]]


def test_parse_error_drops_only_its_own_block() -> None:
    """Bytes past the 512-byte read that held the error are parsed normally."""
    data = b'GET "#"\n' + b" " * (512 - 8) + b"NETVER\n"
    assert feed(data) == [ParseError("Unbalanced word due to unescaped # in quotes"),
                          ["NETVER"]]


def test_equals_is_a_word_of_its_own() -> None:
    """``=`` outside quotes always makes its own word."""
    assert feed(b"GET VAR dummy=ups.status\n") == [
        ["GET", "VAR", "dummy", "=", "ups.status"]]
    assert feed(b'x "a=b"\n') == [["x", "a=b"]]


def test_newline_inside_quotes_continues_the_word() -> None:
    """An LF inside an open quote is dropped and the word goes on."""
    assert feed(b'GET VAR dummy "ups.status\nNETVER\n"\n') == [
        ["GET", "VAR", "dummy", "ups.statusNETVER"]]


def test_backslash_newline_continues_the_line() -> None:
    """A backslash before LF is a line continuation."""
    assert feed(b"GET VAR \\\ndummy x\n") == [["GET", "VAR", "dummy", "x"]]


def test_control_and_high_bytes_dropped_but_start_a_word() -> None:
    """Bytes < 0x20 and > 0x7F vanish from words but still begin one; 0x7F is kept."""
    assert feed(b"\x00\x01\x02\xff\xfe NETVER\n") == [["", "NETVER"]]
    assert feed(b"N\x00ET\x07VER\n") == [["NETVER"]]
    assert feed(b"a\x7fb\n") == [["a\x7fb"]]


def test_limits() -> None:
    """More than 32 words are dropped; a word is cut to 512 characters."""
    words = feed(b" ".join(b"w%d" % i for i in range(40)) + b"\n")[0]
    assert isinstance(words, list) and len(words) == MAX_WORDS and words[-1] == "w31"
    long = feed(b"x" * 2000 + b" y\n")[0]
    assert isinstance(long, list) and long == ["x" * MAX_WORD_LEN, "y"]


def test_empty_lines() -> None:
    """Empty, blank and comment-only lines are requests with no words."""
    assert feed(b"\n \t\n# only a comment\n") == [[], [], []]


def test_fragments_reassemble() -> None:
    """A request split over many writes comes out once the LF arrives."""
    reader = RequestReader()
    assert reader.feed(b"NET") == []
    assert reader.pending
    assert reader.feed(b"VER") == []
    assert reader.feed(b"\n") == [["NETVER"]]
    assert not reader.pending


def test_huge_line_bounded() -> None:
    """A 1 MB line is tokenized in bounded memory and still yields its request."""
    out = feed(b"GET VAR dummy " + b"x" * 1_000_000 + b"\n")
    assert out == [["GET", "VAR", "dummy", "x" * MAX_WORD_LEN]]


def test_file_flavour() -> None:
    """Files: line numbers, ``key=value``, a last line without LF."""
    text = '[dummy]\n  driver=dummy-ups\n\n  desc = "A \\"B\\""  # c\nport x'
    assert list(tokenize_text(text)) == [
        (1, ["[dummy]"]), (2, ["driver", "=", "dummy-ups"]),
        (4, ["desc", "=", 'A "B"']), (5, ["port", "x"])]


def test_file_parse_error_reports_line() -> None:
    """A parse error in a file names its line and the next line is read normally."""
    items = list(tokenize_text('a "#"\nb c\n'))
    assert items[0][0] == 1 and isinstance(items[0][1], ParseError)
    assert items[1] == (2, ["b", "c"])


def test_quote_escapes() -> None:
    """Replies escape backslash, double quote and hash."""
    assert quote('say "hi" C:\\x #4') == '"say \\"hi\\" C:\\\\x \\#4"'


printable = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E),
                    max_size=200)


@given(printable)
def test_quote_round_trip(value: str) -> None:
    """Whatever printable value we quote, parseconf reads back unchanged."""
    assert tokenize_line("X " + quote(value)) == ["X", value]


@settings(max_examples=300)
@given(st.binary(max_size=3000), st.lists(st.integers(1, 700), max_size=10))
def test_chunking_does_not_matter_without_errors(data: bytes, cuts: list[int]) -> None:
    """Feeding the same bytes in different chunks gives the same requests (no errors)."""
    data = data.replace(b"#", b"")  # parse errors depend on read() boundaries, by design
    whole = RequestReader().feed(data)
    reader, pieces, pos = RequestReader(), [], 0
    for cut in cuts:
        pieces.extend(reader.feed(data[pos:pos + cut]))
        pos += cut
    pieces.extend(reader.feed(data[pos:]))
    assert pieces == whole


@settings(max_examples=300)
@given(st.binary(max_size=5000))
def test_junk_never_raises_and_words_are_bounded(data: bytes) -> None:
    """Arbitrary bytes never raise; every word is printable ASCII within the limits."""
    for item in RequestReader().feed(data):
        if isinstance(item, list):
            assert len(item) <= MAX_WORDS
            for word in item:
                assert len(word) <= MAX_WORD_LEN
                assert all(0x20 <= ord(c) <= 0x7F for c in word)


@settings(max_examples=300)
@given(st.lists(st.text(alphabet=st.sampled_from(list(' \t\r\x0b\x0cabc=#"\\\x00\x7f\xe9')),
                        max_size=40), max_size=8))
def test_fast_path_agrees_with_the_state_machine(lines: list[str]) -> None:
    """Whole plain lines take a fast path; fed byte by byte they take the state machine:
    both give the same words."""
    data = "\n".join(lines).replace("#", "").encode("latin-1") + b"\n"
    whole = RequestReader().feed(data)
    slow = RequestReader()
    one_by_one = [item for i in range(len(data)) for item in slow.feed(data[i:i + 1])]
    assert whole == one_by_one
