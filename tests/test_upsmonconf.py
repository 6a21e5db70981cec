"""Tests for upsagent.config.upsmonconf: NUT's upsmon.conf as upsmon 2.8.0 reads it.

The sample is NUT's own (tests/data/nut-conf/upsmon.conf.sample, see SOURCES.md); every
directive is read into the dataclasses; errors name file:line, the key and the reason.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from upsagent.config.schema import ConfigError
from upsagent.config.notify import NotifySettings
from upsagent.config.upsmonconf import (
    CertHost, Monitor, ShellLine, TlsConfig, UpsmonConf, load_upsmon_conf, parse_upsmon_conf)

SAMPLE = Path(__file__).parent / "data" / "nut-conf" / "upsmon.conf.sample"
MON = "MONITOR dummy@127.0.0.1:3493 1 monuser monpass primary\n"


def parse(text: str) -> UpsmonConf:
    """Parse ``text`` as /etc/nut/upsmon.conf."""
    return parse_upsmon_conf(text, "/etc/nut/upsmon.conf")


def error(text: str) -> str:
    """The ConfigError message ``text`` raises."""
    with pytest.raises(ConfigError) as info:
        parse(text)
    return str(info.value)


def test_nut_sample_with_a_monitor_line(tmp_path: Path) -> None:
    """NUT's sample file (no MONITOR in it) plus one MONITOR: upsmon's defaults, no warning."""
    path = tmp_path / "upsmon.conf"
    shutil.copyfile(SAMPLE, path)
    with open(path, "a") as handle:
        handle.write(MON)
    os.chmod(path, 0o640)
    conf = load_upsmon_conf(path)
    assert conf == UpsmonConf(
        path=str(path),
        monitors=(Monitor("dummy@127.0.0.1:3493", "dummy", "127.0.0.1", 3493, 1, "monuser",
                          "monpass", True, 454),),
        shutdown_cmd=ShellLine("/sbin/shutdown -h +0"), powerdown_flag="/etc/killpower")
    assert conf.warnings == ()
    assert "monpass" not in repr(conf)


def test_nut_sample_alone_has_insufficient_power(tmp_path: Path) -> None:
    """The sample as shipped monitors nothing, which upsmon refuses (MINSUPPLIES 1)."""
    path = tmp_path / "upsmon.conf"
    shutil.copyfile(SAMPLE, path)
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError) as info:
        load_upsmon_conf(path)
    assert str(info.value) == (
        f"{path}:135: MINSUPPLIES: 1 power supplies must be fed but no MONITOR line gives any "
        "power: insufficient power configured (upsmon refuses to start too)")


def test_every_directive() -> None:
    """Each directive upsmon 2.8.0 knows lands in its field."""
    conf = parse(
        "MONITOR ups1@nas:3500 2 mon1 pw1 master\n"
        "MONITOR ups2@[::1] 1 mon2 \"p w 2\" SLAVE\n"
        "MONITOR ups3 0 mon3 pw3 secondary\n"
        "MINSUPPLIES 2\nPOLLFREQ 10\nPOLLFREQALERT 2\nDEADTIME 30\nHOSTSYNC 20\n"
        "FINALDELAY 0\nRBWARNTIME 3600\nNOCOMMWARNTIME 60\n"
        "SHUTDOWNCMD \"/sbin/shutdown -h now && logger bye\"\n"
        "POWERDOWNFLAG /run/killpower\n"
        "NOTIFYCMD \"/usr/sbin/upssched --flag\"\n"
        "NOTIFYMSG onbatt \"Power out on %s (100%%)\"\n"
        "NOTIFYMSG SHUTDOWN \"Going down\"\n"
        "NOTIFYFLAG ONBATT SYSLOG+WALL+EXEC\n"
        "NOTIFYFLAG cal IGNORE\n"
        "RUN_AS_USER nutmon\n"
        "CERTPATH /etc/nut/ca\nCERTVERIFY 1\nFORCESSL 1\n"
        "CERTIDENT \"my monitor\" dbpass\n"
        "CERTHOST nas \"nas.example\" 1 0\n"
        "CERTHOST nas \"nas.example.org\" 1 1\n"
        "CERTHOST other other.example 0 0\n"
        "debug_min 3\n")
    assert conf.monitors == (
        Monitor("ups1@nas:3500", "ups1", "nas", 3500, 2, "mon1", "pw1", True, 1),
        Monitor("ups2@[::1]", "ups2", "::1", 3493, 1, "mon2", "p w 2", False, 2),
        Monitor("ups3", "ups3", "localhost", 3493, 0, "mon3", "pw3", False, 3))
    assert (conf.min_supplies, conf.poll_freq, conf.poll_freq_alert, conf.dead_time,
            conf.host_sync, conf.final_delay, conf.rb_warn_time,
            conf.nocomm_warn_time) == (2, 10, 2, 30, 20, 0, 3600, 60)
    assert conf.shutdown_cmd == ShellLine("/sbin/shutdown -h now && logger bye")
    assert conf.powerdown_flag == "/run/killpower"
    assert conf.notify == NotifySettings(
        ShellLine("/usr/sbin/upssched --flag"),
        (("ONBATT", "Power out on %s (100%%)"), ("SHUTDOWN", "Going down")),
        (("ONBATT", frozenset({"SYSLOG", "WALL", "EXEC"})), ("CAL", frozenset({"IGNORE"}))))
    assert conf.run_as_user == "nutmon"
    assert conf.debug_min == 3
    assert conf.tls == TlsConfig("/etc/nut/ca", True, True, ("my monitor", "dbpass"), (
        CertHost("other", "other.example", False, False),
        CertHost("nas", "nas.example.org", True, True)))
    assert conf.tls.for_host("nas") == CertHost("nas", "nas.example.org", True, True)
    assert conf.tls.for_host("NAS") is None
    assert "dbpass" not in repr(conf)
    assert conf.warnings == (
        "/etc/nut/upsmon.conf:19: RUN_AS_USER: upsagent runs as the user its service sets; "
        "ignored",
        "/etc/nut/upsmon.conf:23: CERTIDENT: client certificates from an NSS database are "
        "not supported by upsagent; ignored")


def test_shell_lines_are_the_operators_own() -> None:
    """SHUTDOWNCMD runs as sh -c <line>; NOTIFYCMD gets the message as a real argument."""
    line = ShellLine("/sbin/shutdown -h +0")
    assert line.argv() == ("/bin/sh", "-c", "/sbin/shutdown -h +0")
    argv = ShellLine("notify --to ops").argv('on "battery" $(x)')
    assert argv[:3] == ("/bin/sh", "-c", 'line=$1; shift; eval "$line \\"\\$@\\""')
    assert argv[3:] == ("upsagent", "notify --to ops", 'on "battery" $(x)')


@pytest.mark.parametrize("text, message", [
    ("MONITOR ups@h 1 pw primary\n",
     "/etc/nut/upsmon.conf:1: MONITOR: old-style MONITOR line without a user name; upsmon "
     "2.8.0 refuses it too: write MONITOR <system> <powervalue> <user> <password> "
     "primary|secondary and give the user 'upsmon primary' or 'upsmon secondary' in "
     "upsd.users"),
    ("MONITOR ups@h 1 user\n",
     "/etc/nut/upsmon.conf:1: MONITOR: needs 5 values (MONITOR <system> <powervalue> <user> "
     "<password> primary|secondary)"),
    ("MONITOR ups@h one u p primary\n",
     '/etc/nut/upsmon.conf:1: MONITOR: power value "one" is not a whole number (how many of '
     "this host's power supplies the UPS feeds; 0 to monitor only)"),
    ("MONITOR ups@h -1 u p primary\n",
     '/etc/nut/upsmon.conf:1: MONITOR: power value "-1" is not a whole number (how many of '
     "this host's power supplies the UPS feeds; 0 to monitor only)"),
    ("MONITOR ups@h 1 u p secondry\n",
     '/etc/nut/upsmon.conf:1: MONITOR: "secondry" must be primary or secondary (or the old '
     "names master, slave); upsmon would take it as secondary"),
    ("MONITOR ups@h: 1 u p primary\n",
     '/etc/nut/upsmon.conf:1: MONITOR: cannot split "ups@h:" into ups@host[:port]: '
     "upscli_splitaddr: no port specified after ':' separator"),
    ("\n\nPOLLFREQ five\n", '/etc/nut/upsmon.conf:3: POLLFREQ: "five" is not a whole number'),
    ("POLLFREQ 0\n", "/etc/nut/upsmon.conf:1: POLLFREQ: must be at least 1 (got 0)"),
    ("POLLFREQALERT 0\n", "/etc/nut/upsmon.conf:1: POLLFREQALERT: must be at least 1 (got 0)"),
    ("DEADTIME -5\n", '/etc/nut/upsmon.conf:1: DEADTIME: "-5" is not a whole number'),
    ("HOSTSYNC\n", "/etc/nut/upsmon.conf:1: HOSTSYNC: needs 1 value (HOSTSYNC <value>)"),
    ("SHUTDOWNCMD /sbin/shutdown -h +0\n",
     '/etc/nut/upsmon.conf:1: SHUTDOWNCMD: the command is not quoted, so upsmon would run '
     'only "/sbin/shutdown" and drop "-h +0"; write SHUTDOWNCMD "/sbin/shutdown -h +0"'),
    ('NOTIFYCMD ""\n', "/etc/nut/upsmon.conf:1: NOTIFYCMD: the command is empty"),
    ('NOTIFYMSG ONBATT "UPS %s at %d%%"\n',
     '/etc/nut/upsmon.conf:1: NOTIFYMSG: ONBATT: "UPS %s at %d%%": %d is not allowed: the '
     "text is a printf format with the UPS name as its only argument, so use %s for it and "
     "%% for a %"),
    ('NOTIFYMSG ONBATT "%s and %s"\n',
     '/etc/nut/upsmon.conf:1: NOTIFYMSG: ONBATT: "%s and %s": more than one %s (upsmon passes '
     "only the UPS name); write %% for a %"),
    ('NOTIFYMSG ONBATT "100%"\n',
     '/etc/nut/upsmon.conf:1: NOTIFYMSG: ONBATT: "100%": a lone % at the end; write %% for '
     "a %"),
    ("NOTIFYFLAG ONBATT\n",
     "/etc/nut/upsmon.conf:1: NOTIFYFLAG: needs 2 values (NOTIFYFLAG <type> "
     "<flag>[+<flag>...])"),
    ("CERTVERIFY yes\n", '/etc/nut/upsmon.conf:1: CERTVERIFY: "yes" must be 0 or 1'),
    ("FORCESSL 2\n", '/etc/nut/upsmon.conf:1: FORCESSL: "2" must be 0 or 1'),
    ("CERTHOST h n 1 x\n", '/etc/nut/upsmon.conf:1: CERTHOST (forcessl): "x" must be 0 or 1'),
    ("CERTHOST h n 1\n",
     "/etc/nut/upsmon.conf:1: CERTHOST: needs 4 values (CERTHOST <hostname> <certificate "
     "name> <certverify> <forcessl>)"),
    (MON + "CERTVERIFY 1\n",
     "/etc/nut/upsmon.conf:2: CERTVERIFY: set, but CERTPATH is not: there is nothing to "
     "verify the server's certificate against (upsmon refuses to connect too)"),
    (MON + "MINSUPPLIES 2\n",
     "/etc/nut/upsmon.conf:2: MINSUPPLIES: 2 power supplies must be fed but the MONITOR power "
     "values add up to 1: insufficient power configured (upsmon refuses to start too)"),
    ("MONITOR ups@h 0 u p primary\n",
     "/etc/nut/upsmon.conf: MINSUPPLIES: 1 power supplies must be fed but the MONITOR power "
     "values add up to 0: insufficient power configured (upsmon refuses to start too)"),
    ('SHUTDOWNCMD "a # b\n',
     "/etc/nut/upsmon.conf:1: SHUTDOWNCMD: parse error: Unbalanced word due to unescaped # "
     "in quotes (write \\# for a # inside quotes)"),
])
def test_errors(text: str, message: str) -> None:
    """Each refused line gives file:line, the key and the reason, word for word."""
    assert error(text) == message


def test_warnings_for_what_upsmon_ignores() -> None:
    """Unknown directives, types and flags, extra words, duplicates: warnings, as upsmon logs."""
    conf = parse(MON + "SHUTDOWNCMD halt\n"
                 "monitor x@y 1 u p primary\n"
                 "POLLFREQ 5 seconds\n"
                 "NOTIFYMSG ONBAT \"x\"\n"
                 "NOTIFYFLAG ONBATT SYSLOG+WAL\n"
                 "NOTIFYFLAG lowbatt IGNORE+WALL\n"
                 "OFFDURATION 30\n"
                 + MON.replace("primary", "secondary") +
                 "DEBUG_MIN x\n")
    assert conf.notify.flags == (("ONBATT", frozenset({"SYSLOG"})),
                                 ("LOWBATT", frozenset({"IGNORE", "WALL"})))
    assert len(conf.monitors) == 1 and conf.monitors[0].primary
    assert conf.debug_min is None
    assert conf.warnings == (
        '/etc/nut/upsmon.conf:3: monitor: invalid directive, ignored as upsmon ignores it '
        '(did you mean "MONITOR"? names are case-sensitive)',
        "/etc/nut/upsmon.conf:4: POLLFREQ: extra words 'seconds' ignored, as upsmon ignores "
        "them",
        '/etc/nut/upsmon.conf:5: NOTIFYMSG: "ONBAT" is not a valid notify event name; ignored,'
        ' as upsmon ignores it (did you mean "ONBATT"?)',
        '/etc/nut/upsmon.conf:6: NOTIFYFLAG ONBATT: invalid notify flag "WAL" counts as '
        'nothing, as in upsmon (did you mean "WALL"?)',
        "/etc/nut/upsmon.conf:7: NOTIFYFLAG LOWBATT: IGNORE wins over WALL (nothing is sent)",
        "/etc/nut/upsmon.conf:8: OFFDURATION: a directive of NUT releases after 2.8.0; "
        "upsagent reads upsmon.conf as 2.8.0 does and ignores it",
        "/etc/nut/upsmon.conf:9: MONITOR: duplicate UPS dummy@127.0.0.1:3493 ignored; the one "
        "of line 1 counts, as in upsmon",
        '/etc/nut/upsmon.conf:10: DEBUG_MIN: "x" is not a whole number; ignored, as upsmon '
        "ignores it")


def test_no_shutdowncmd_and_short_deadtime_are_warnings() -> None:
    """upsmon warns without SHUTDOWNCMD; a DEADTIME below a poll interval makes false deaths."""
    conf = parse(MON + "POLLFREQ 30\n")
    assert conf.warnings == (
        "/etc/nut/upsmon.conf: no SHUTDOWNCMD: the agent shuts this host down with "
        "/sbin/shutdown -h +0 (upsmon would run nothing and only warns); set SHUTDOWNCMD to "
        "choose the command",
        "/etc/nut/upsmon.conf: DEADTIME 15 is shorter than a poll interval (30 s): a UPS on "
        "battery will be declared dead between two polls (NUT's advice: three times the "
        "larger of POLLFREQ and POLLFREQALERT)")


def test_later_lines_override_earlier_ones() -> None:
    """A directive given twice: the later value counts (upsmon overwrites its globals)."""
    conf = parse(MON + 'SHUTDOWNCMD "a"\nSHUTDOWNCMD "b"\nPOLLFREQ 3\nPOLLFREQ 4\n'
                 'NOTIFYFLAG ONBATT EXEC\nNOTIFYFLAG onbatt WALL\n')
    assert conf.shutdown_cmd == ShellLine("b")
    assert conf.poll_freq == 4
    assert conf.notify.flags_for("ONBATT") == frozenset({"WALL"})


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o666])
def test_world_readable_file_is_refused(tmp_path: Path, mode: int) -> None:
    """upsmon.conf holds passwords: readable by others is refused with the chmod that fixes it."""
    path = tmp_path / "upsmon.conf"
    path.write_text(MON + 'SHUTDOWNCMD "halt"\n')
    os.chmod(path, mode)
    with pytest.raises(ConfigError) as info:
        load_upsmon_conf(path)
    assert str(info.value) == (
        f"{path}: mode {mode:04o} lets every local user read the passwords it holds; run "
        f'"chmod 640 {path}" (and check its owner); group-readable (0640, root:nut as Debian '
        "ships it) is fine")


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o660])
def test_owner_or_group_readable_file_is_read(tmp_path: Path, mode: int) -> None:
    """0600 and Debian's 0640 root:nut are fine."""
    path = tmp_path / "upsmon.conf"
    path.write_text(MON + 'SHUTDOWNCMD "halt"\n')
    os.chmod(path, mode)
    assert load_upsmon_conf(path).monitors[0].user == "monuser"


def test_missing_file(tmp_path: Path) -> None:
    """A missing file is named."""
    with pytest.raises(ConfigError) as info:
        load_upsmon_conf(tmp_path / "nope.conf")
    assert str(info.value) == f"{tmp_path / 'nope.conf'}: no such file"
