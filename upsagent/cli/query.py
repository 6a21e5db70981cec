# -*- test-case-name: tests.test_query_tools -*-
"""``upsagent query``: a drop-in for NUT 2.8.0's ``upsc``, and the plumbing all three tools share.

It takes exactly upsc's arguments (``-l``/``-L [host[:port]]``, ``-c ups``, ``ups[@host[:port]]
[var]``, ``-h``, ``-V``, parsed by a copy of glibc's ``getopt`` in ``+`` mode) and prints what
upsc prints, on the same stream, with the same exit status: values on stdout, every error as
``Error: <libupsclient message>`` on stderr with status 1, the ``upscli_split*:`` diagnostic
before ``Error: invalid UPS definition.``, and so on.  It sends what upsc sends: ``STARTTLS``
first, then one GET/LIST, then ``LOGOUT``.  Quirks kept on purpose because scripts see them:
an error in the middle of a list ends the list quietly with status 0; an item with too few
words is ``Error: insufficient data (got N args, need at least M)``; a variable name without
a dot is refused only after the connection succeeded.

**The "Init SSL without certificate database" line.**  NUT 2.8.0's upsc (an NSS build)
writes it to stderr on every call that reaches a server, before STARTTLS.  We reproduce it,
at the same moment and on the same stream, so that stderr is identical too (the issue asks
for "exactly what upsc prints, on the same stream"), and the line is true for us: we try TLS
without any certificate database.  ``NUT_QUIET_INIT_SSL=true`` silences it, as it silences
NUT 2.8.1 and later.  The TLS progress lines libupsclient logs after an ``OK STARTTLS`` are
reproduced as well.

Deliberate differences: ``-h`` and ``-V`` print our own text (same streams and status:
upsc's ``-V`` goes to stderr); glibc's option errors name our program (``upsagent query:
invalid option -- 'x'``); an address that crashes upsc (``upsc @``) is reported as an
invalid UPS definition; a GET reply without its value is "Protocol error" where upsc
crashes (SIGSEGV); control bytes in replies are dropped silently, where
libupsclient also prints ``addchar: discarding invalid character``; ``NUT_DEBUG_LEVEL`` is
ignored.

Like upsrw and upscmd, which do not load NSS and so do not ignore SIGPIPE, ``rw`` and
``cmd`` die of SIGPIPE (silently, unflushed output lost) when they write to a connection
the server closed; ``query``, like upsc, reports "Write error: Broken pipe" instead.
"""

from __future__ import annotations

import os
import signal
import sys
import termios
from typing import BinaryIO, Callable, Iterator, NoReturn

from upsagent import __version__
from upsagent.nut.target import BadTarget, Target, split_addr, split_name
from upsagent.transport.blocking import BlockingClient
from upsagent.nut.client import (
    ClientError,
    IncompleteList,
    InsufficientData,
    ListReply,
    NutError,
    Request,
    VarReply,
)

__all__ = ["GetOpt", "Tool", "ToolExit", "main"]

EXIT_FAILURE = 1
_BUFSIZ = 4096


class ToolExit(Exception):
    """Leave the tool with ``status`` (what NUT's ``exit()``/``fatalx()`` do)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class GetOpt:
    """glibc ``getopt`` with a ``+`` optstring: iterate for ``(option, argument)`` pairs.

    Options stop at the first non-option or after ``--``; ``rest`` then holds the operands.
    Errors are reported like glibc and yield ``("?", None)``.
    """

    def __init__(self, tool: Tool, argv: list[str], optstring: str) -> None:
        self.tool = tool
        self.argv = argv
        self.optstring = optstring.lstrip("+")
        self.rest: list[str] = []

    def __iter__(self) -> Iterator[tuple[str, str | None]]:
        index = 0
        while index < len(self.argv):
            arg = self.argv[index]
            if arg == "--":
                index += 1
                break
            if not arg.startswith("-") or arg == "-":
                break
            index += 1
            chars = arg[1:]
            while chars:
                char, chars = chars[0], chars[1:]
                spec = self.optstring.find(char)
                if spec < 0 or char in ":;":
                    self.tool.err(f"{self.tool.prog}: invalid option -- '{char}'\n")
                    yield "?", None
                    continue
                if not self.optstring[spec + 1:spec + 2] == ":":
                    yield char, None
                    continue
                if chars:
                    value, chars = chars, ""
                elif index < len(self.argv):
                    value = self.argv[index]
                    index += 1
                else:
                    self.tool.err(f"{self.tool.prog}: option requires an argument -- '{char}'\n")
                    yield "?", None
                    continue
                yield char, value
        self.rest = self.argv[index:]


class Tool:
    """Streams, prompts, fatal exits and the connection of one tool run, NUT style.

    stdout is block-buffered (4096 bytes) unless it is a terminal, like C's stdio, so that
    a combined ``2>&1`` stream interleaves as NUT's does; stderr is written at once.
    """

    def __init__(self, prog: str, *, stdout: BinaryIO | None = None,
                 stderr: BinaryIO | None = None, stdin: BinaryIO | None = None) -> None:
        self.prog = prog
        self.stdout = stdout if stdout is not None else sys.stdout.buffer
        self.stderr = stderr if stderr is not None else sys.stderr.buffer
        self.stdin = stdin if stdin is not None else (sys.stdin.buffer if sys.stdin else None)
        self.client: BlockingClient | None = None
        self._stdout_dead = False
        self._pending = bytearray()
        self._line_buffered = _isatty(self.stdout)

    # -- output ------------------------------------------------------------------------

    def out(self, text: str) -> None:
        """Write to stdout through the C-like buffer."""
        self._pending += text.encode("utf-8", "surrogateescape")
        if self._line_buffered:
            cut = self._pending.rfind(b"\n") + 1
        else:
            cut = len(self._pending) - len(self._pending) % _BUFSIZ
        if cut:
            data = bytes(self._pending[:cut])
            del self._pending[:cut]
            self._emit(data)

    def flush(self) -> None:
        """``fflush(stdout)``."""
        data = bytes(self._pending)
        self._pending.clear()
        self._emit(data)

    def _emit(self, data: bytes) -> None:
        """Write to the real stdout; a closed pipe is handled as C would see it."""
        if self._stdout_dead:
            return
        try:
            if data:
                self.stdout.write(data)
            self.stdout.flush()
        except BrokenPipeError:
            self.broken_pipe()
            self._stdout_dead = True  # upsc's later writes fail quietly too
            try:  # and keep Python's own exit-time flush quiet
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self.stdout.fileno())
                os.close(devnull)
            except (OSError, ValueError, AttributeError):
                pass

    def err(self, text: str) -> None:
        """Write to (unbuffered) stderr."""
        self.stderr.write(text.encode("utf-8", "surrogateescape"))
        self.stderr.flush()

    def fatal(self, message: str, status: int = EXIT_FAILURE) -> NoReturn:
        """NUT's ``fatalx``: the message and a newline on stderr, then exit."""
        self.err(message + "\n")
        raise ToolExit(status)

    @property
    def sigpipe_ignored(self) -> bool:
        """upsc loads NSS once connected, and NSS ignores SIGPIPE; upsrw/upscmd never do."""
        return self.client is not None and self.client.tls_initialised

    def broken_pipe(self) -> None:
        """A write hit a closed pipe or socket.  upsrw/upscmd (and upsc before it connects)
        do not ignore SIGPIPE, so they die of it silently, losing what stdio still buffered;
        upsc, with NSS loaded, just sees the write fail."""
        if self.sigpipe_ignored:
            return
        self._die_of(signal.SIGPIPE)

    def _die_of(self, signum: signal.Signals) -> NoReturn:
        """End the process by ``signum`` with its default action, like an unhandled C signal."""
        self._pending.clear()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        raise ToolExit(128 + signum)  # pragma: no cover - the signal ends us first

    def usage(self, text: str) -> NoReturn:
        """Print the usage text on stdout and exit 0 (what the tools do for -h and errors)."""
        self.out(text)
        raise ToolExit(0)

    def run(self, body: Callable[[], None]) -> int:
        """Run the tool; always LOGOUT and flush at the end, as NUT's atexit handler does."""
        status = 0
        try:
            body()
        except ToolExit as done:
            status = done.status
        except KeyboardInterrupt:
            self._die_of(signal.SIGINT)  # like C: no LOGOUT, no flush
        if self.client is not None:
            self.client.close()
        self.flush()
        return status

    # -- arguments and connection --------------------------------------------------------

    def options(self, argv: list[str], optstring: str) -> GetOpt:
        """Iterate ``argv``'s options the way the NUT tool's getopt call does."""
        return GetOpt(self, argv, optstring)

    def target(self, text: str | None, error: str) -> Target:
        """``upscli_splitname`` or die with its diagnostic and ``error``."""
        try:
            return split_name(text)
        except BadTarget as bad:
            if bad.diagnostic:
                self.err(bad.diagnostic + "\n")
            self.fatal(error)

    def address(self, text: str) -> tuple[str, int]:
        """``upscli_splitaddr`` or die (the host-only forms of upsc)."""
        try:
            return split_addr(text)
        except BadTarget as bad:
            if bad.diagnostic:
                self.err(bad.diagnostic + "\n")
            self.fatal("Error: invalid hostname.\nRequired format: [hostname[:port]]")

    def connect(self, host: str, port: int, *, try_tls: bool = False) -> BlockingClient:
        """Connect or die with ``Error: <reason>``."""
        client = BlockingClient(notice=lambda text: self.err(text + "\n"),
                                on_broken_pipe=self.broken_pipe)
        self.client = client
        try:
            client.connect(host, port, try_tls=try_tls)
        except ClientError as error:
            self.fatal(f"Error: {error.message}")
        return client

    def listing(self, request: Request) -> ListReply:
        """``upscli_list_start`` + the ``list_next`` loop: fatal at the start, quiet after."""
        assert self.client is not None
        try:
            reply = self.client.request(request)
        except IncompleteList as cut:
            return cut.partial
        except NutError as error:
            if error.code.startswith("UNKNOWN-COMMAND"):
                self.fatal("Error: upsd is too old to support this query")
            self.fatal(f"Error: {error.message}")
        except ClientError as error:
            self.fatal(f"Error: {error.message}")
        assert isinstance(reply, ListReply)
        return reply

    def items(self, listing: ListReply, need_text: int | None = None) -> Iterator[tuple[str, ...]]:
        """The items, dying at a short one with the tools' "insufficient data" message."""
        try:
            yield from listing.checked_items()
        except InsufficientData as short:
            need = short.need if need_text is None else need_text
            self.fatal(f"Error: insufficient data (got {short.got} args, need at least {need})")

    # -- prompts -------------------------------------------------------------------------

    def read_stdin_line(self, size: int = 512) -> bytes | None:
        """C ``fgets(buf, size, stdin)``: at most size-1 bytes; None at end of input."""
        if self._line_buffered:
            self.flush()
        if self.stdin is None:
            return None
        try:
            data = self.stdin.readline(size - 1)
        except OSError:
            return None
        return data or None

    def getpass(self, prompt: str) -> str:
        """glibc ``getpass``: prompt and read on /dev/tty with echo off, else stderr/stdin."""
        try:
            fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
        except OSError:
            fd = -1
        in_fd = fd if fd >= 0 else _fileno(self.stdin)
        saved = None
        if in_fd is not None:
            try:
                saved = termios.tcgetattr(in_fd)
                quiet = list(saved)
                quiet[3] &= ~(termios.ECHO | termios.ISIG)
                termios.tcsetattr(in_fd, termios.TCSAFLUSH, quiet)
            except (termios.error, OSError):
                saved = None
        try:
            if fd >= 0:
                os.write(fd, prompt.encode("utf-8", "surrogateescape"))
                line = _read_fd_line(fd)
            else:
                self.err(prompt)
                line = b""
                if self.stdin is not None:
                    try:
                        line = self.stdin.readline()
                    except OSError:
                        pass
            if line.endswith(b"\n"):
                line = line[:-1]
                if saved is not None:
                    if fd >= 0:
                        os.write(fd, b"\n")
                    else:
                        self.err("\n")
        finally:
            if saved is not None and in_fd is not None:
                termios.tcsetattr(in_fd, termios.TCSAFLUSH, saved)
            if fd >= 0:
                os.close(fd)
        return line.decode("utf-8", "surrogateescape")


def _isatty(stream: BinaryIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def _fileno(stream: BinaryIO | None) -> int | None:
    try:
        return stream.fileno() if stream is not None else None
    except (AttributeError, ValueError, OSError):
        return None


def _read_fd_line(fd: int) -> bytes:
    """One line from a terminal, byte by byte (nothing read past the newline)."""
    line = bytearray()
    while not line.endswith(b"\n"):
        chunk = os.read(fd, 1)
        if not chunk:
            break
        line += chunk
    return bytes(line)


# ------------------------------------------------------------------------------------------
# upsc

PROG = "upsagent query"
VERSION = f"{PROG} {__version__}"
USAGE = f"""\
{VERSION} (compatible with upsc)

usage: {PROG} -l | -L [<hostname>[:port]]
       {PROG} <ups> [<variable>]
       {PROG} -c <ups>

Show the data a NUT server publishes, as upsc does.

List the UPSes of a server:
  -l         - one UPS name per line.
  -L         - each UPS name followed by its description.
               Default hostname: localhost

Show variables:
  <ups>      - <upsname>[@<hostname>[:<port>]]
  <variable> - print only this variable's value.
               Default: every variable of <ups>, one "name: value" per line

Show the clients logged in to a UPS:
  -c         - one client address per line.
  <ups>      - <upsname>[@<hostname>[:<port>]]
"""
BAD_UPS = "Error: invalid UPS definition.\nRequired format: upsname[@hostname[:port]]"


def main(argv: list[str]) -> int:
    """``upsagent query [upsc arguments]``; returns the exit status."""
    tool = Tool(PROG)
    return tool.run(lambda: _upsc(tool, argv))


def _upsc(tool: Tool, argv: list[str]) -> None:
    """upsc's main(), step for step."""
    varlist = clientlist = verbose = False
    options = tool.options(argv, "+hlLcV")
    for option, _ in options:
        if option == "L":
            verbose = varlist = True
        elif option == "l":
            varlist = True
        elif option == "c":
            clientlist = True
        elif option == "V":
            tool.fatal(VERSION, status=0)
        else:
            tool.usage(USAGE)
    args = options.rest
    if varlist:
        host, port = tool.address(args[0] if args else "localhost")
        tool.connect(host, port, try_tls=True)
        for item in tool.items(tool.listing(Request.list("UPS"))):
            tool.out(f"{item[1]}: {item[2]}\n" if verbose else f"{item[1]}\n")
        return
    target = tool.target(args[0] if args else None, BAD_UPS)
    assert target.ups is not None
    client = tool.connect(target.host, target.port, try_tls=True)
    if clientlist:
        for item in tool.items(tool.listing(Request.list("CLIENT", target.ups))):
            tool.out(f"{item[2]}\n")
        return
    if len(args) > 1:
        name = args[1]
        if "." not in name:
            tool.fatal("Error: old-style variable names are not supported")
        try:
            reply = client.request(Request.get("VAR", target.ups, name))
        except NutError as error:
            if error.code.startswith("UNKNOWN-COMMAND"):
                tool.fatal("Error: variable unknown (old upsd detected)")
            tool.fatal(f"Error: {error.message}")
        except ClientError as error:
            tool.fatal(f"Error: {error.message}")
        assert isinstance(reply, VarReply)
        tool.out(f"{reply.value}\n")
        return
    for item in tool.items(tool.listing(Request.list("VAR", target.ups))):
        tool.out(f"{item[2]}: {item[3]}\n")
