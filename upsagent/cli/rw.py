# -*- test-case-name: tests.test_query_tools -*-
"""``upsagent rw``: a drop-in for NUT 2.8.0's ``upsrw``.

Arguments are upsrw's exactly: ``[-l] ups`` lists the writable variables; ``-s VAR[=VALUE]
[-u user] [-p password] [-w] [-t timeout] ups`` sets one.  ``-l`` and ``-s`` override each
other in the order given.  Output, streams and exit status are upsrw's:

* the listing (stdout) is, per variable of ``LIST RW``: ``[name]``, its description
  (``GET DESC``, or "Description unavailable"), then by ``GET TYPE``: ``Type: STRING`` +
  ``Maximum length: n`` + ``Value: v``; ``Type: NUMBER`` + ``Value: v``; ``Type: ENUM …`` +
  one ``Option: "x"`` per ``LIST ENUM`` value (`` SELECTED`` on the current one); ``Type:
  RANGE NUMBER`` + ``Option: "min-max"`` per range; ``Unknown type`` when GET TYPE fails;
  then an empty line.  The names are read in full before the first one is printed.
* setting sends USERNAME, PASSWORD (answers not judged), then ``SET VAR ups var "value"``;
  the server's ``OK`` (or the tracking result with ``-w``) goes to **stderr**, status 0;
  any other answer is ``Unexpected response from upsd: <line>``, status 1.  A variable name
  without a dot is refused after the credentials were sent, as upsrw does.

Prompts (user name on stdout, password like getpass, ``Enter new value for VAR: `` on stdout
when no ``=VALUE`` was given) are those of :mod:`upsagent.cli.cmd`; at end of input upsrw
falls back to the login name instead of failing.  Deliberate differences, besides those of
``upsagent cmd``: at end of input at the value prompt we send an empty value (upsrw sends
whatever its uninitialised buffer held), and ``-h``/``-V`` texts are ours (``-V`` on stdout
like upsrw's).
"""

from __future__ import annotations

from upsagent import __version__
from upsagent.cli.cmd import (
    ask_username,
    enable_tracking,
    parse_timeout,
    run_and_report,
    send_credentials,
)
from upsagent.cli.query import Tool
from upsagent.transport.blocking import BlockingClient
from upsagent.nut.client import (
    ClientError,
    DescReply,
    Request,
    TypeReply,
    VarReply,
    c_strtol,
)

__all__ = ["main"]

PROG = "upsagent rw"
VERSION = f"{PROG} {__version__}"
DEFAULT_TRACKING_TIMEOUT = 10
BAD_UPS = "Error: invalid UPS definition.  Required format: upsname[@hostname[:port]]"

USAGE = f"""\
{VERSION} (compatible with upsrw)

usage: {PROG} [-h]
       {PROG} [-s <variable>] [-u <username>] [-p <password>] [-w] [-t <timeout>] <ups>

List or change the writable variables of a UPS through a NUT server, as upsrw does.

  -h            show this help
  -s <variable>\tvariable to change
\t\twrite -s VAR=VALUE to give the value without being asked
  -l            list the writable variables (the default)
  -u <username> user name (asked for when missing)
  -p <password> password (asked for when missing)
  -w            wait until the driver reports the result
                and print it
  -t <timeout>\ttimeout for -w, in seconds (default: {DEFAULT_TRACKING_TIMEOUT})

  <ups>         <upsname>[@<hostname>[:<port>]]

Without -s the writable variables are listed (same as -l).
"""


def main(argv: list[str]) -> int:
    """``upsagent rw [upsrw arguments]``; returns the exit status."""
    tool = Tool(PROG)
    return tool.run(lambda: _upsrw(tool, argv))


def _upsrw(tool: Tool, argv: list[str]) -> None:
    """upsrw's main() and do_setvar(), step for step."""
    setvar: str | None = None
    username = password = None
    tracking = False
    timeout = DEFAULT_TRACKING_TIMEOUT
    options = tool.options(argv, "+hls:p:t:u:wV")
    for option, value in options:
        if option == "s":
            setvar = value
        elif option == "l":
            if setvar is not None:
                tool.err("Listing mode requested, overriding setvar specified earlier!\n")
                setvar = None
        elif option == "p":
            password = value
        elif option == "t":
            timeout = parse_timeout(tool, value or "")
        elif option == "u":
            username = value
        elif option == "w":
            tracking = True
        elif option == "V":
            tool.out(VERSION + "\n")
            return
        else:
            tool.usage(USAGE)
    args = options.rest
    if not args:
        tool.usage(USAGE)
    target = tool.target(args[0], BAD_UPS)
    assert target.ups is not None
    client = tool.connect(target.host, target.port)
    if setvar is None:
        _list_rw(tool, client, target.ups)
        return
    user = username if username is not None else ask_username(tool, eof_is_fatal=False)
    secret = password if password is not None else tool.getpass("Password: ")
    name, equals, value = setvar.partition("=")
    if not equals:
        tool.out(f"Enter new value for {name}: ")
        tool.flush()
        line = tool.read_stdin_line(512) or b""
        value = line[:-1].decode("utf-8", "surrogateescape")
    send_credentials(tool, client, user, secret)
    if "." not in name:
        tool.fatal("Error: old variable names are not supported")
    if tracking:
        enable_tracking(tool, client, "set variable")
    run_and_report(tool, client, Request.set_var(target.ups, name, value), tracking, timeout,
                   "Can't set variable", "Set variable failed")


# ------------------------------------------------------------------------------------------
# listing


def _get(client: BlockingClient, what: str, ups: str, name: str) -> object | None:
    """upsrw's get_data: the reply, or None on any failure."""
    try:
        return client.request(Request.get(what, ups, name))
    except ClientError:
        return None


def _current(tool: Tool, client: BlockingClient, ups: str, name: str, who: str) -> str:
    """The current value, or die as upsrw's do_string/do_number/do_enum/do_range die."""
    reply = _get(client, "VAR", ups, name)
    if not isinstance(reply, VarReply):
        tool.fatal(f"{who}: can't get current value of {name}")
    return reply.value


def _list_rw(tool: Tool, client: BlockingClient, ups: str) -> None:
    """print_rwlist: read every name first, then print each one."""
    names = [item[2] for item in tool.items(tool.listing(Request.list("RW", ups)))]
    for name in names:
        tool.out(f"[{name}]\n")
        desc = _get(client, "DESC", ups, name)
        tool.out(f"{desc.text}\n" if isinstance(desc, DescReply) else "Description unavailable\n")
        _print_type(tool, client, ups, name)
        tool.out("\n")


def _print_type(tool: Tool, client: BlockingClient, ups: str, name: str) -> None:
    """upsrw's do_type: walk the TYPE flags in order."""
    reply = _get(client, "TYPE", ups, name)
    if not isinstance(reply, TypeReply):
        tool.out("Unknown type\n")
        return
    is_enum = False
    for flag in reply.flags:
        upper = flag.upper()
        if upper == "ENUM":
            is_enum = True
        elif upper == "RANGE":
            _print_range(tool, client, ups, name)
            return
        elif upper.startswith("STRING:"):
            length = c_strtol(flag[7:])
            if is_enum:
                _print_enum(tool, client, ups, name, "STRING", length)
            else:
                value = _current(tool, client, ups, name, "do_string")
                tool.out(f"Type: STRING\nMaximum length: {length}\nValue: {value}\n")
            return
        elif upper == "NUMBER":
            if is_enum:
                _print_enum(tool, client, ups, name, "NUMBER", 0)
            else:
                value = _current(tool, client, ups, name, "do_number")
                tool.out(f"Type: NUMBER\nValue: {value}\n")
            return
        elif upper != "RW":
            tool.out(f"Type: {flag} (unrecognized)\n")
    if is_enum:
        _print_enum(tool, client, ups, name, None, 0)


def _print_enum(tool: Tool, client: BlockingClient, ups: str, name: str,
                kind: str | None, length: int) -> None:
    """do_enum: header after the list arrived, then each option (current one SELECTED)."""
    current = _current(tool, client, ups, name, "do_enum")
    listing = tool.listing(Request.list("ENUM", ups, name))
    tool.out(f"Type: ENUM {kind}\n" if kind else "Type: ENUM\n")
    if kind == "STRING":
        tool.out(f"Maximum length: {length}\n")
    for item in tool.items(listing):
        selected = " SELECTED" if item[3] == current else ""
        tool.out(f'Option: "{item[3]}"{selected}\n')


def _c_atoi(text: str) -> int:
    """C ``atoi`` on a 64-bit system: strtol, then the low 32 bits as a signed int."""
    value = c_strtol(text) & 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def _print_range(tool: Tool, client: BlockingClient, ups: str, name: str) -> None:
    """do_range: each range as ``"min-max"``, SELECTED when atoi(value) falls inside."""
    current = _c_atoi(_current(tool, client, ups, name, "do_range"))
    listing = tool.listing(Request.list("RANGE", ups, name))
    tool.out("Type: RANGE NUMBER\n")
    for item in tool.items(listing, need_text=4):  # upsrw checks 5 words, says 4
        low, high = _c_atoi(item[3]), _c_atoi(item[4])
        selected = " SELECTED" if low <= current <= high else ""
        tool.out(f'Option: "{low}-{high}"{selected}\n')
