# -*- test-case-name: tests.test_query_tools -*-
"""``upsagent cmd``: a drop-in for NUT 2.8.0's ``upscmd``, and what it shares with ``rw``.

Arguments are upscmd's exactly: ``-l ups`` lists the instant commands (``LIST CMD`` and one
``GET CMDDESC`` each); ``[-u user] [-p password] [-w] [-t timeout] ups command [value]`` runs
one.  Output, streams and exit status are upscmd's: the server's ``OK`` (or, with ``-w``, the
tracking result such as ``SUCCESS`` or ``ERR UNKNOWN``) goes to **stderr** with status 0;
any other answer is ``Unexpected response from upsd: <line>`` with status 1.  Like upscmd
it does not STARTTLS, reads the USERNAME and PASSWORD answers without judging them (a bad
password shows up on the INSTCMD), and checks the command name for a dot only after the
connection succeeded.

Prompts: without ``-u`` it prints ``Username (<login>): `` on stdout and reads a line from
stdin (end of input is "Error reading from stdin!"; an empty line means the login name);
without ``-p`` it asks ``Password: `` like glibc's getpass: on the controlling terminal with
echo off, or, with no terminal, on stderr reading stdin (end of input is an empty password).

Deliberate differences: ``-h``/``-V`` texts are ours (same streams and status); a user
name, password or command value that upsd's tokenizer would split or alter (spaces, ``"``,
``\\``, ``#``, ``=``) is sent quoted, so it arrives intact, where upscmd sends it raw; empty
ones are sent as no argument at all, as upscmd does.
"""

from __future__ import annotations

import errno
import os
import pwd
import re
import time

from upsagent import __version__
from upsagent.cli.query import Tool
from upsagent.transport.blocking import BlockingClient
from upsagent.nut.client import ClientError, OkReply, Request, TrackingReply

__all__ = ["main", "ask_username", "send_credentials", "enable_tracking", "run_and_report",
           "parse_timeout"]

PROG = "upsagent cmd"
VERSION = f"{PROG} {__version__}"
DEFAULT_TRACKING_TIMEOUT = 10
#: strlen("OK TRACKING ") + a 36-character UUID: how the tools recognise a tracking id.
TRACKING_REPLY_LEN = 48
BAD_UPS = "Error: invalid UPS definition.  Required format: upsname[@hostname[:port]]"

USAGE = f"""\
{VERSION} (compatible with upscmd)

usage: {PROG} [-h]
       {PROG} [-l <ups>]
       {PROG} [-u <username>] [-p <password>] [-w] [-t <timeout>] <ups> <command> [<value>]

Run an instant command on a UPS through a NUT server, as upscmd does.

  -h\t\tshow this help
  -l <ups>\tlist the instant commands of <ups>
  -u <username>\tuser name (asked for when missing)
  -p <password>\tpassword (asked for when missing)
  -w            wait until the driver reports the result
                and print it
  -t <timeout>\ttimeout for -w, in seconds (default: {DEFAULT_TRACKING_TIMEOUT})

  <ups>\t\t<upsname>[@<hostname>[:<port>]]
  <command>\tinstant command name, e.g. test.battery.start.quick
  [<value>]\toptional parameter of the command
"""


def main(argv: list[str]) -> int:
    """``upsagent cmd [upscmd arguments]``; returns the exit status."""
    tool = Tool(PROG)
    return tool.run(lambda: _upscmd(tool, argv))


def _upscmd(tool: Tool, argv: list[str]) -> None:
    """upscmd's main(), step for step."""
    cmdlist = tracking = False
    username = password = None
    timeout = DEFAULT_TRACKING_TIMEOUT
    options = tool.options(argv, "+lhu:p:t:wV")
    for option, value in options:
        if option == "l":
            cmdlist = True
        elif option == "u":
            username = value
        elif option == "p":
            password = value
        elif option == "t":
            timeout = parse_timeout(tool, value or "")
        elif option == "w":
            tracking = True
        elif option == "V":
            tool.fatal(VERSION, status=0)
        else:
            tool.usage(USAGE)
    args = options.rest
    if not args:
        tool.usage(USAGE)
    target = tool.target(args[0], BAD_UPS)
    assert target.ups is not None
    client = tool.connect(target.host, target.port)
    if cmdlist:
        _list_commands(tool, client, target.ups)
        return
    if len(args) < 2:
        tool.usage(USAGE)
    if "." not in args[1]:
        tool.fatal("Error: old command names are not supported")
    user = username if username is not None else ask_username(tool, eof_is_fatal=True)
    secret = password if password is not None else tool.getpass("Password: ")
    send_credentials(tool, client, user, secret)
    if tracking:
        enable_tracking(tool, client, "command")
    param = args[2] if len(args) > 2 and args[2] else None
    run_and_report(tool, client, Request.instcmd(target.ups, args[1], param), tracking, timeout,
                   "Can't send instant command", "Instant command failed")


def _list_commands(tool: Tool, client: BlockingClient, ups: str) -> None:
    """listcmds: read every name first, then ``name - description`` (or just the name)."""
    names = [item[2] for item in tool.items(tool.listing(Request.list("CMD", ups)))]
    tool.out(f"Instant commands supported on UPS [{ups}]:\n\n")
    for name in names:
        try:
            reply = client.request(Request.get("CMDDESC", ups, name))
        except ClientError:
            tool.out(f"{name}\n")
            continue
        tool.out(f"{name} - {getattr(reply, 'text', '')}\n")


# ------------------------------------------------------------------------------------------
# shared with upsagent rw


def parse_timeout(tool: Tool, text: str) -> int:
    """NUT's ``str_to_uint(optarg, &timeout, 10)`` or die as upsrw/upscmd die."""
    value = text.strip(" \t\n\v\f\r")
    problem = 0
    if not re.fullmatch(r"[0-9]+", value):
        problem = errno.EINVAL
    elif int(value) > 0xFFFFFFFF:
        problem = errno.ERANGE
    if problem:
        tool.fatal("Could not convert the provided value for timeout ('-t' option) to "
                   f"unsigned int: {os.strerror(problem)}")
    return int(value)


def ask_username(tool: Tool, *, eof_is_fatal: bool) -> str:
    """Prompt ``Username (<login>): `` on stdout and read stdin, as upsrw/upscmd do."""
    try:
        login: str | None = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        login = None
    tool.out(f"Username ({login}): " if login is not None else "Username: ")
    line = tool.read_stdin_line(512)
    if line is None and eof_is_fatal:
        tool.fatal("Error reading from stdin!")
    if line is not None and len(line) > 1:
        return line[:-1].decode("utf-8", "surrogateescape")  # the tools cut the last byte
    if login is None:
        tool.fatal("No username available - even tried getpwuid")
    return login


def _credential(command: str, value: str) -> Request:
    """USERNAME/PASSWORD; an empty value is sent as no argument, as the NUT tools do."""
    return Request.of(command, value) if value else Request.of(command)


def exchange(tool: Tool, client: BlockingClient, request: Request, cant_send: str,
             failed: str, timeout: float | None = None) -> str:
    """upscli_sendline + upscli_readline: the raw answer line, or die on a transport error."""
    try:
        client.send(request)
    except ClientError as error:
        tool.fatal(f"{cant_send}: {error.message}")
    try:
        reply = client.receive(timeout)
    except ClientError as error:
        if error.line is None:
            tool.fatal(f"{failed}: {error.message}")
        return error.line
    if isinstance(reply, (OkReply, TrackingReply)):
        return reply.text
    return str(reply)


def send_credentials(tool: Tool, client: BlockingClient, user: str, password: str) -> None:
    """USERNAME and PASSWORD, answers read but not judged (upsd checks them later)."""
    exchange(tool, client, _credential("USERNAME", user),
             "Can't set username", "Set username failed")
    exchange(tool, client, _credential("PASSWORD", password),
             "Can't set password", "Set password failed")


def enable_tracking(tool: Tool, client: BlockingClient, what: str) -> None:
    """``SET TRACKING ON`` for -w; ``what`` is "command" or "set variable"."""
    line = exchange(tool, client, Request.of("SET", "TRACKING", "ON"),
                    f"Can't enable {what} status tracking",
                    f"Enabling {what} status tracking failed")
    if not line.startswith("OK"):
        tool.fatal(f"Enabling {what} status tracking failed. upsd answered: {line}")


def run_and_report(tool: Tool, client: BlockingClient, request: Request, tracking: bool,
                   timeout: int, cant_send: str, failed: str) -> None:
    """Send SET VAR / INSTCMD and print the answer (or the tracking result) on stderr."""
    line = exchange(tool, client, request, cant_send, failed)
    if not line.startswith("OK"):
        tool.fatal(f"Unexpected response from upsd: {line}")
    if not tracking or len(line) != TRACKING_REPLY_LEN:
        tool.err(line + "\n")
        return
    tracking_id = line[len("OK TRACKING "):]
    start = int(time.time())
    while True:
        if int(time.time()) - start >= timeout:
            tool.fatal("Can't receive status tracking information: timeout")
        line = exchange(tool, client, Request.get_tracking(tracking_id),
                        "Can't send status tracking request",
                        "Can't receive status tracking information", timeout=timeout)
        if not line.startswith("PENDING"):
            break
        time.sleep(1)
    tool.err(line + "\n")
