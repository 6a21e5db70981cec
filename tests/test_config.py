"""Tests for upsagent.config: NUT's files, upsagent.toml, validation, export and the CLI."""

from __future__ import annotations

import io
import os
import re
import stat
import tomllib
import types
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from upsagent.cli import configcmds
from upsagent.cli.main import main as cli_main
from upsagent.config import (
    Config, ConfigError, ListenAddress, MasterConfig, UpsConfig, UserConfig, load_config,
    load_nut_dir, load_toml, loads_toml, to_toml)
from upsagent.config import native, validate
from upsagent.config.export import toml_string

DATA = Path(__file__).parent / "data" / "nut-conf"
KNOWN_DRIVERS = {"dummy-ups", "usbhid-ups", "blazer_ser", "mydriver", "snmp-ups", "replay"}
REAL_DRIVER_CHECKS = {name: getattr(validate, name)
                      for name in ("driver_known", "driver_unavailable", "driver_names")}


@pytest.fixture(autouse=True)
def fixed_drivers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pin the set of known drivers so these tests do not depend on drivers/registry.py."""
    monkeypatch.setattr(validate, "driver_known", lambda name: name in KNOWN_DRIVERS)
    monkeypatch.setattr(validate, "driver_unavailable", lambda name: None)
    monkeypatch.setattr(validate, "driver_names", lambda: sorted(KNOWN_DRIVERS))


def write(path: Path, text: str, mode: int = 0o640) -> Path:
    """Write ``text`` to ``path`` and give it ``mode`` explicitly."""
    path.write_text(text, encoding="utf-8")
    os.chmod(path, mode)
    return path


UPS_DUMMY = "[dummy]\n  driver = dummy-ups\n  port = ref.dev\n"


def nut_dir(tmp_path: Path, ups: str = UPS_DUMMY, upsd: str | None = "",
            users: str | None = "", users_mode: int = 0o640) -> Path:
    """A NUT configuration directory holding the given files (None: file left out)."""
    write(tmp_path / "ups.conf", ups)
    if upsd is not None:
        write(tmp_path / "upsd.conf", upsd)
    if users is not None:
        write(tmp_path / "upsd.users", users, users_mode)
    return tmp_path


def nut_error(tmp_path: Path, **files: Any) -> str:
    """The message of the ConfigError that loading these NUT files raises."""
    with pytest.raises(ConfigError) as info:
        load_nut_dir(nut_dir(tmp_path, **files))
    return str(info.value)


def uncomment(text: str, first: str, count: int) -> str:
    """Remove the leading ``#`` from the sample line ``first`` and the ``count`` after it."""
    lines = text.split("\n")
    start = lines.index(first)
    for i in range(start, start + count + 1):
        lines[i] = lines[i][1:]
    return "\n".join(lines)


def sample(name: str) -> str:
    """NUT 2.8.0's conf/<name>.sample (as Debian installs it in /etc/nut)."""
    return (DATA / f"{name}.sample").read_text(encoding="utf-8")


# -- NUT's sample files -------------------------------------------------------------------


def test_debian_samples_as_shipped_are_refused_like_upsd(tmp_path: Path) -> None:
    """The samples define no UPS, so upsd refuses to start; so do we, naming ups.conf."""
    message = nut_error(tmp_path, ups=sample("ups.conf"), upsd=sample("upsd.conf"),
                        users=sample("upsd.users"))
    assert message.startswith(f"{tmp_path}/ups.conf: no UPS is defined")
    assert "ALLOW_NO_DEVICE" in message


def test_debian_samples_with_allow_no_device(tmp_path: Path) -> None:
    """With ALLOW_NO_DEVICE the samples load: defaults everywhere, maxretry noted as ignored."""
    config = load_nut_dir(nut_dir(tmp_path, ups=sample("ups.conf"),
                                  upsd=sample("upsd.conf") + "ALLOW_NO_DEVICE true\n",
                                  users=sample("upsd.users")))
    assert config.master == MasterConfig(allow_no_device=True)
    assert config.master.listen == (ListenAddress("127.0.0.1", 3493), ListenAddress("::1", 3493))
    assert config.source == str(tmp_path)
    assert len(config.warnings) == 1
    assert config.warnings[0].startswith(f"{tmp_path}/ups.conf:80: global option maxretry")


def test_debian_samples_with_their_examples_uncommented(tmp_path: Path) -> None:
    """The examples the samples document, uncommented, mean what their comments say."""
    ups = uncomment(uncomment(sample("ups.conf"), "# [powerpal]", 3), "# [myups]", 4)
    users = sample("upsd.users")
    for first, count in (("#\t[admin]", 3), ("#\t[testuser]", 3), ("#   [upsmon]", 2)):
        users = uncomment(users, first, count)
    upsd = uncomment(sample("upsd.conf"), "# LISTEN 127.0.0.1 3493", 1)
    upsd = uncomment(uncomment(upsd, "# MAXAGE 15", 0), "# TRACKINGDELAY 3600", 0)
    config = load_nut_dir(nut_dir(tmp_path, ups=ups, upsd=upsd, users=users))
    master = config.master
    assert master.listen == (ListenAddress("127.0.0.1"), ListenAddress("::1"))
    assert (master.maxage, master.tracking_delay) == (15, 3600)
    assert master.ups == (
        UpsConfig("powerpal", "blazer_ser", "/dev/ttyS0", "Web server",
                  {"port": "/dev/ttyS0"}, confdir=str(tmp_path)),
        UpsConfig("myups", "mydriver", "/dev/ttyS1", "Something descriptive",
                  {"port": "/dev/ttyS1", "cable": "1234"}, confdir=str(tmp_path)))
    assert master.users == (
        UserConfig("admin", "mypass", frozenset({"set"}), frozenset({"all"})),
        UserConfig("testuser", "pass", frozenset(),
                   frozenset({"test.battery.start", "test.battery.stop"})),
        UserConfig("upsmon", "pass", frozenset({"login", "master", "fsd"})))


def test_sample_listen_example_with_bad_port_is_refused(tmp_path: Path) -> None:
    """upsd.conf.sample's own 'LISTEN myhostname 83493' is not a port: file, line, key, why."""
    upsd = uncomment(sample("upsd.conf"), "# LISTEN myhostname 83493", 0)
    message = nut_error(tmp_path, upsd=upsd)
    assert message == (f'{tmp_path}/upsd.conf:58: LISTEN: port "83493" is not a port number '
                       "(1-65535)")


# -- NAS defaults ------------------------------------------------------------------------


def test_synology_style_setup(tmp_path: Path) -> None:
    """Synology's fixed client settings: UPS 'ups', user monuser/secret with 'upsmon slave'."""
    config = load_nut_dir(nut_dir(
        tmp_path, ups="[ups]\n\tdriver = usbhid-ups\n\tport = auto\n",
        upsd="LISTEN 0.0.0.0 3493\n",
        users="[monuser]\n\tpassword = secret\n\tupsmon slave\n"))
    assert config.master.ups[0].name == "ups"
    assert config.master.listen == (ListenAddress("0.0.0.0"),)
    assert config.master.users == (UserConfig("monuser", "secret", frozenset({"login"})),)
    assert config.warnings == ()


def test_qnap_style_setup(tmp_path: Path) -> None:
    """QNAP's fixed client settings: UPS 'qnapups', user admin/123456 with 'upsmon slave'."""
    config = load_nut_dir(nut_dir(
        tmp_path, ups='[qnapups]\n driver = "usbhid-ups"\n port = "auto"\n desc = "QNAP"\n',
        users="[admin]\n password = 123456\n upsmon slave\n", users_mode=0o600))
    assert config.master.ups == (UpsConfig("qnapups", "usbhid-ups", "auto", "QNAP",
                                           {"port": "auto"}, confdir=str(tmp_path)),)
    assert config.master.users == (UserConfig("admin", "123456", frozenset({"login"})),)


# -- upsd.users ----------------------------------------------------------------------------


def test_upsmon_role_spellings(tmp_path: Path) -> None:
    """upsmon primary/master give login+master+fsd, secondary/slave login, in every form."""
    users = ("[a]\n password = x\n upsmon primary\n"
             "[b]\n password = x\n upsmon = master\n"
             "[c]\n password = x\n upsmon=secondary\n"
             '[d]\n password = x\n "upsmon=slave"\n'
             "[e]\n password = x\n UPSMON Primary\n")
    users_by_name = {u.name: u.actions for u in load_nut_dir(
        nut_dir(tmp_path, users=users)).master.users}
    primary, secondary = frozenset({"login", "master", "fsd"}), frozenset({"login"})
    assert users_by_name == {"a": primary, "b": primary, "c": secondary, "d": secondary,
                             "e": primary}


def test_actions_and_instcmds_accumulate_lower_case(tmp_path: Path) -> None:
    """Several values per line and repeated lines add up; names are stored lower-case."""
    users = ("[admin]\n password = p\n actions = SET FSD\n actions = Login\n"
             " instcmds = Test.Battery.Start test.battery.start\n instcmds=ALL\n")
    (user,) = load_nut_dir(nut_dir(tmp_path, users=users)).master.users
    assert user.actions == {"set", "fsd", "login"}
    assert user.instcmds == {"test.battery.start", "all"}


def test_duplicate_user_keeps_the_first_definition(tmp_path: Path) -> None:
    """The second [name] section is ignored entirely, with a warning that says what upsd
    would do instead (give its lines to the user above it: a NUT 2.8.0 bug)."""
    users = ("[mon]\n password = first\n upsmon secondary\n"
             "[other]\n password = o\n"
             "[mon]\n password = second\n actions = SET\n")
    config = load_nut_dir(nut_dir(tmp_path, users=users))
    assert config.master.users == (UserConfig("mon", "first", frozenset({"login"})),
                                   UserConfig("other", "o"))
    assert f"{tmp_path}/upsd.users:6: user [mon] is defined again (first at line 1); this " \
        "section is ignored (upsd 2.8.0 would give its lines to user [other] above it, a " \
        "NUT bug)" in config.warnings


def test_user_file_quirks_are_warned_about(tmp_path: Path) -> None:
    """Second password, allowfrom, unknown keys and actions, stray lines: ignored, warned."""
    users = ("password = orphan\n"
             "[u]\n password = one two\n allowfrom = localhost\n colour = blue\n"
             " actions = SET REBOOT\n upsmon boss\n password\n")
    config = load_nut_dir(nut_dir(tmp_path, users=users))
    assert config.master.users == (UserConfig("u", "one", frozenset({"set"})),)
    path = f"{tmp_path}/upsd.users"
    expected = [f"{path}:1: password outside any [user] section",
                f"{path}:3: [u] second password ignored",
                f"{path}:4: [u] allowfrom is no longer used",
                f"{path}:5: [u] unknown setting colour ignored",
                f'{path}:6: [u] actions: unknown action "REBOOT" ignored',
                f'{path}:7: [u] upsmon: unknown type "boss"',
                f"{path}:8: 'password' ignored"]
    assert len(config.warnings) == len(expected)
    for warning, start in zip(config.warnings, expected):
        assert warning.startswith(start)


def test_world_readable_upsd_users_is_refused(tmp_path: Path) -> None:
    """upsd.users readable by others is refused with its mode and the chmod that fixes it."""
    message = nut_error(tmp_path, users="[u]\n password = p\n", users_mode=0o644)
    path = f"{tmp_path}/upsd.users"
    assert message.startswith(f"{path}: mode 0644 lets every local user read the passwords")
    assert f'chmod 640 {path}' in message


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o660])
def test_group_readable_upsd_users_is_accepted(tmp_path: Path, mode: int) -> None:
    """Debian ships upsd.users root:nut 0640, so group-readable NUT files are accepted."""
    config = load_nut_dir(nut_dir(tmp_path, users="[u]\n password = p\n", users_mode=mode))
    assert config.master.users == (UserConfig("u", "p"),)


def test_missing_upsd_conf_and_users_mean_defaults(tmp_path: Path) -> None:
    """Without upsd.conf and upsd.users: defaults and no users, each with a warning."""
    config = load_nut_dir(nut_dir(tmp_path, upsd=None, users=None))
    assert config.master == MasterConfig(ups=config.master.ups)
    assert [w.split(":")[0] for w in config.warnings] == [
        f"{tmp_path}/upsd.conf", f"{tmp_path}/upsd.users"]


def test_user_without_password_is_a_warning(tmp_path: Path) -> None:
    """A user without a password can never log in; upsd accepts it, we warn."""
    config = load_nut_dir(nut_dir(tmp_path, users="[nopass]\n upsmon secondary\n"))
    assert config.master.users == (UserConfig("nopass", None, frozenset({"login"})),)
    assert config.warnings == (f'{tmp_path}/upsd.users:1: [nopass]: user "nopass" has no '
                               "password and can never log in",)


def test_upsmon_password_that_upsmon_cannot_send_is_a_warning(tmp_path: Path) -> None:
    """upsmon sends its password unquoted, so a space or # in it breaks the login."""
    config = load_nut_dir(nut_dir(tmp_path, users='[m]\n password = "a b"\n upsmon primary\n'))
    assert config.warnings[0].startswith(f"{tmp_path}/upsd.users:2: [m] password:")
    assert "upsmon sends it unquoted" in config.warnings[0]


# -- ups.conf --------------------------------------------------------------------------------


def test_ups_conf_options_flags_and_order(tmp_path: Path) -> None:
    """Every option but driver/desc is kept in file order (port too), lone words are flags."""
    ups = ("pollinterval = 5\nuser = nut\n"
           "[rack]\n vendorid=0764\n driver =usbhid-ups\n port= auto\n ignorelb\n"
           ' desc = "Rack \\"A\\" \\#1"\n override.battery.charge.low = 30\n nolock\n ignorelb\n'
           "[other]\n driver = dummy-ups\n port = x.seq\n pollinterval = 1\n")
    config = load_nut_dir(nut_dir(tmp_path, ups=ups))
    rack, other = config.master.ups
    assert (rack.driver, rack.port, rack.desc) == ("usbhid-ups", "auto", 'Rack "A" #1')
    assert list(rack.options.items()) == [("vendorid", "0764"), ("port", "auto"),
                                          ("override.battery.charge.low", "30"),
                                          ("pollinterval", "5")]
    assert rack.flags == ("ignorelb", "nolock")
    assert other.options == {"port": "x.seq", "pollinterval": "1"}
    assert rack.confdir == str(tmp_path)
    assert rack.driver_parameters() == {"vendorid": "0764", "port": "auto"}
    assert len(config.warnings) == 1 and "global option user ignored" in config.warnings[0]


def test_repeated_section_is_merged_with_a_warning(tmp_path: Path) -> None:
    """A [name] seen again adds to the first section, later values winning, as NUT does."""
    ups = "[a]\n driver = dummy-ups\n port = one.dev\n[a]\n port = two.dev\n cable = 1\n"
    config = load_nut_dir(nut_dir(tmp_path, ups=ups))
    assert config.master.ups == (UpsConfig("a", "dummy-ups", "two.dev", None,
                                           {"port": "two.dev", "cable": "1"},
                                           confdir=str(tmp_path)),)
    assert config.warnings[0].startswith(f"{tmp_path}/ups.conf:4: [a] appears again")
    assert config.warnings[1].startswith(f"{tmp_path}/ups.conf:5: [a] port set again")


def test_lines_nut_ignores_are_warned_about(tmp_path: Path) -> None:
    """'key value' without '=' and extra words are ignored by NUT; we warn about them."""
    ups = "[a] trailing\n driver = dummy-ups\n port = ref.dev extra\n desc Lounge\n"
    config = load_nut_dir(nut_dir(tmp_path, ups=ups))
    assert config.master.ups[0].desc is None
    assert [w.split(": ")[0] for w in config.warnings] == [
        f"{tmp_path}/ups.conf:1", f"{tmp_path}/ups.conf:3", f"{tmp_path}/ups.conf:4"]


@pytest.mark.parametrize(("ups", "expected"), [
    ("[a]\n driver = dummy-ups\n port = x\n desc = \"Rack #4\"\n",
     ":4: desc: parse error: Unbalanced word due to unescaped # in quotes"),
    ("[a]\n driver = dummy-ups\n port\n", ":3: [a] port: needs a value"),
    ("[a]\n driver = dummy-ups\n port = x\n pollinterval = soon\n",
     ':4: [a] pollinterval: "soon" is not a whole number'),
    ("pollinterval = 0\n[a]\n driver = dummy-ups\n port = x\n",
     ":1: pollinterval: must be at least 1"),
    ('"[my ups]"\n driver = dummy-ups\n port = x\n', ':1: [my ups]: "my ups" holds " "'),
    ("[a@b]\n driver = dummy-ups\n port = x\n", ':1: [a@b]: "a@b" holds "@"'),
])
def test_ups_conf_errors_name_file_line_key_reason(tmp_path: Path, ups: str,
                                                    expected: str) -> None:
    """Each ups.conf error names the file, the line, the section/key and the reason."""
    assert nut_error(tmp_path, ups=ups).startswith(f"{tmp_path}/ups.conf{expected}")


def test_sections_upsd_would_skip_are_warnings(tmp_path: Path) -> None:
    """As upsd: no driver skips the section, no port serves it as not connected, and a
    name differing only in case is skipped; each says so in a warning, never a refusal."""
    ups = ("[a]\n port = auto\n[b]\n driver = dummy-ups\n"
           "[UPS]\n driver = dummy-ups\n port = x\n[ups]\n driver = dummy-ups\n port = y\n")
    config = load_nut_dir(nut_dir(tmp_path, ups=ups))
    assert [(u.name, u.port) for u in config.master.ups] == [("b", None), ("UPS", "x")]
    path = f"{tmp_path}/ups.conf"
    assert config.warnings == (
        f"{path}:1: [a] ignored: no driver (as upsd ignores it; e.g. driver = usbhid-ups)",
        f"{path}:3: [b]: no port, so its driver cannot start and the UPS is reported as not "
        "connected, as with NUT (e.g. port = auto)",
        f"{path}:8: [ups] ignored: the same name as [UPS] but for case")


def test_unknown_nut_driver_is_a_warning(tmp_path: Path) -> None:
    """A driver upsagent does not have is NUT's (upsd reads its socket): a warning saying
    so, not a refusal."""
    config = load_nut_dir(nut_dir(tmp_path, ups="[a]\n driver = dummy_ups\n port = x\n"))
    assert config.master.ups[0].driver == "dummy_ups"
    assert config.warnings == (f'{tmp_path}/ups.conf:2: [a] driver: upsagent has no driver '
                               'called "dummy_ups" (did you mean "dummy-ups"?); NUT\'s own '
                               "dummy_ups will be read through its socket (NUT's driver must "
                               "run)",)


def test_missing_ups_conf_or_directory(tmp_path: Path) -> None:
    """ups.conf is required (upsd exits without it); the directory must exist."""
    with pytest.raises(ConfigError, match=re.escape(f"{tmp_path}/ups.conf: no such file")):
        load_nut_dir(tmp_path)
    with pytest.raises(ConfigError, match="not a directory"):
        load_nut_dir(tmp_path / "nowhere")


# -- upsd.conf -------------------------------------------------------------------------------


def test_upsd_conf_directives(tmp_path: Path) -> None:
    """Every upsd.conf directive of 2.8.0 is accepted; unused ones are noted; STATEPATH is
    where NUT's driver sockets are, copied into every UPS."""
    upsd = ("LISTEN 0.0.0.0\nLISTEN ::1 3494\nLISTEN 0.0.0.0 3493\nMAXCONN 10\nMAXAGE 30\n"
            "TRACKINGDELAY 60\nCERTFILE /etc/nut/upsd.pem\nALLOW_NO_DEVICE yes\n"
            "DISABLE_WEAK_SSL on\nSTATEPATH /run/nut\nDATAPATH /usr/share/nut\ndebug_min 2\n"
            "CERTPATH /etc/nut/cert\nCERTIDENT \"my server\" pw\nCERTREQUEST 1\n"
            "ACCEPT all\nREJECT none\nACL all 0.0.0.0/0\n")
    config = load_nut_dir(nut_dir(tmp_path, upsd=upsd))
    assert config.master == MasterConfig(
        listen=(ListenAddress("0.0.0.0"), ListenAddress("::1", 3494)), maxconn=10, maxage=30,
        tracking_delay=60, certfile="/etc/nut/upsd.pem", allow_no_device=True,
        disable_weak_ssl=True, statepath="/run/nut", ups=config.master.ups)
    assert [ups.statepath for ups in config.master.ups] == ["/run/nut"]
    lines = [int(w.split(":")[1]) for w in config.warnings]
    assert lines == [3, 11, 12, 13, 14, 15, 16, 17, 18]
    assert "upsagent uses CERTFILE" in config.warnings[4]
    assert "no longer supported" in config.warnings[7]


@pytest.mark.parametrize(("upsd", "expected"), [
    ("MAXCONN 10\n\nMAXCONN abc\n", ': MAXCONN: "abc" is not a whole number'),
    ("MAXCON 10\n", ': MAXCON: unknown directive (did you mean "MAXCONN"?)'),
    ("maxage 10\n", ': maxage: unknown directive (did you mean "MAXAGE"? names are '
                    "case-sensitive)"),
    ("LISTEN 127.0.0.1 http\n", ': LISTEN: port "http" is not a port number (1-65535)'),
    ("LISTEN 127.0.0.1 0\n", ': LISTEN: port "0" is not a port number (1-65535)'),
    ("LISTEN\n", ": LISTEN: needs a value"),
    ("MAXCONN 0\n", ": MAXCONN: 0 is below the minimum of 1"),
    ("MAXAGE -1\n", ': MAXAGE: "-1" is not a whole number'),
    ("ALLOW_NO_DEVICE maybe\n", ': ALLOW_NO_DEVICE: "maybe" is not a boolean'),
    ("DISABLE_WEAK_SSL 2\n", ': DISABLE_WEAK_SSL: "2" is not a boolean'),
    ("CERTIDENT name\n", ": CERTIDENT: needs two values"),
    ("CERTREQUEST REQUIRE\n", ': CERTREQUEST: "REQUIRE" is not a whole number'),
    ('CERTFILE "/etc/nut/#.pem"\n', ": CERTFILE: parse error: Unbalanced word"),
])
def test_upsd_conf_errors_name_file_line_key_reason(tmp_path: Path, upsd: str,
                                                     expected: str) -> None:
    """Each upsd.conf error names the file, the line, the directive and the reason."""
    message = nut_error(tmp_path, upsd=upsd)
    line = upsd.count("\n")
    assert message.startswith(f"{tmp_path}/upsd.conf:{line}{expected}"), message


@pytest.mark.parametrize(("maxconn", "per_address", "reserved"), [
    (1024, 256, 8), (20, 5, 5), (40, 10, 8), (3, 1, 0), (1, 1, 0), (20000, 5000, 8)])
def test_connection_slot_defaults_follow_maxconn(tmp_path: Path, maxconn: int,
                                                 per_address: int, reserved: int) -> None:
    """upsd.conf has no say in them: max_conn_per_address is a quarter of MAXCONN (at
    least 1) and reserved_monitor_slots 8, or a quarter of MAXCONN when fewer."""
    config = load_nut_dir(nut_dir(tmp_path, upsd=f"MAXCONN {maxconn}\n"))
    master = config.master
    assert (master.max_conn_per_address, master.reserved_monitor_slots) == (None, None)
    assert (master.conn_per_address, master.monitor_slots) == (per_address, reserved)
    explicit = MasterConfig(maxconn=maxconn, max_conn_per_address=maxconn,
                            reserved_monitor_slots=0)
    assert (explicit.conn_per_address, explicit.monitor_slots) == (maxconn, 0)


# -- upsagent.toml -------------------------------------------------------------------------

FULL_TOML = """\
[master]
listen = ["0.0.0.0", "[::]:3494", "localhost:3495", "::1"]
maxconn = 50
certfile = "/etc/upsagent/cert.pem"
keyfile = "/etc/upsagent/key.pem"
maxage = 20
tracking_delay = 600
idle_timeout = 120
max_line_length = 65536
max_send_buffer = 262144
max_conn_per_address = 10
reserved_monitor_slots = 4
powerdown_flag = "/etc/killpower"
allow_no_device = false
disable_weak_ssl = true

[[ups]]
name = "ups"
driver = "usbhid-ups"
port = "auto"
desc = "Rack UPS — ünïcode"
aliases = ["qnapups"]
flags = ["ignorelb"]
[ups.options]
vendorid = "0764"
pollinterval = 5
"override.battery.charge.low" = "30"

[[ups]]
name = "sim"
driver = "replay"
port = "power-cut.seq"
confdir = "/srv/seq"

[[user]]
name = "monuser"
password = "secret"
upsmon = "secondary"

[[user]]
name = "admin"
password = "123456"
upsmon = "Primary"
actions = ["SET"]
instcmds = ["ALL"]
"""


def toml_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    """upsagent.toml in ``tmp_path`` with ``mode``."""
    return write(tmp_path / "upsagent.toml", text, mode)


def toml_error(tmp_path: Path, text: str, mode: int = 0o600) -> str:
    """The ConfigError message for this upsagent.toml, without the leading file name."""
    path = toml_file(tmp_path, text, mode)
    with pytest.raises(ConfigError) as info:
        load_toml(path)
    return str(info.value).removeprefix(f"{path}: ")


def test_native_full_example(tmp_path: Path) -> None:
    """Every key of upsagent.toml lands in the Config objects."""
    path = toml_file(tmp_path, FULL_TOML)
    config = load_toml(path)
    assert config.source == str(path)
    assert config.master == MasterConfig(
        listen=(ListenAddress("0.0.0.0"), ListenAddress("::", 3494),
                ListenAddress("localhost", 3495), ListenAddress("::1")),
        maxconn=50, certfile="/etc/upsagent/cert.pem", keyfile="/etc/upsagent/key.pem",
        maxage=20, tracking_delay=600, idle_timeout=120, max_line_length=65536,
        max_send_buffer=262144, max_conn_per_address=10, reserved_monitor_slots=4,
        powerdown_flag="/etc/killpower", disable_weak_ssl=True,
        ups=(UpsConfig("ups", "usbhid-ups", "auto", "Rack UPS — ünïcode",
                       {"port": "auto", "vendorid": "0764", "pollinterval": "5",
                        "override.battery.charge.low": "30"},
                       ("ignorelb",), ("qnapups",), str(tmp_path)),
             UpsConfig("sim", "replay", "power-cut.seq", None, {"port": "power-cut.seq"},
                       confdir="/srv/seq")),
        users=(UserConfig("monuser", "secret", frozenset({"login"})),
               UserConfig("admin", "123456", frozenset({"login", "master", "fsd", "set"}),
                          frozenset({"all"}))))
    assert config.warnings == ()


def test_native_minimal_file_uses_defaults(tmp_path: Path) -> None:
    """One [[ups]] is enough; everything else takes the defaults of MasterConfig."""
    config = load_toml(toml_file(tmp_path, '[[ups]]\nname = "u"\ndriver = "replay"\n', 0o644))
    assert config.master == MasterConfig(ups=(UpsConfig("u", "replay", confdir=str(tmp_path)),))


@pytest.mark.parametrize(("text", "expected"), [
    ('[[ups]]\nname = "u"\ndrvier = "replay"\n',
     'ups[1].drvier: unknown key (did you mean "driver"?)'),
    ('[master]\nmaxconn = "10"\n', "master.maxconn: must be a whole number, not a string"),
    ("[master]\nmaxage = true\n", "master.maxage: must be a whole number, not a boolean"),
    ("[master]\nallow_no_device = 1\n",
     "master.allow_no_device: must be true or false, not an integer"),
    ("[master]\nmaxconn = 0\n", "master.maxconn: 0 is below the minimum of 1"),
    ("[master]\nmax_line_length = 100\n",
     "master.max_line_length: 100 is below the minimum of 512"),
    ("[master]\nmax_conn_per_address = 0\n",
     "master.max_conn_per_address: 0 is below the minimum of 1"),
    ("[master]\nmaxconn = 20\nmax_conn_per_address = 21\n",
     "master.max_conn_per_address: 21 is more than maxconn (20), so it would limit nothing"),
    ('[master]\nmax_conn_per_address = "8"\n',
     "master.max_conn_per_address: must be a whole number, not a string"),
    ("[master]\nreserved_monitor_slots = -1\n",
     "master.reserved_monitor_slots: -1 is below the minimum of 0"),
    ("[master]\nmaxconn = 20\nreserved_monitor_slots = 20\n",
     "master.reserved_monitor_slots: 20 is not below maxconn (20): no slot would be left "
     "for clients that do not log in"),
    ("[master]\nreserved_monitor_slots = 2.5\n",
     "master.reserved_monitor_slots: must be a whole number, not a float"),
    ('[master]\nkeyfile = "/k.pem"\n', "master.keyfile: a keyfile needs a certfile"),
    ('[master]\nlisten = ["1.2.3.4:70000"]\n',
     'master.listen[1]: port "70000" is not a port number (1-65535)'),
    ('[master]\nlisten = ["[::1"]\n', 'master.listen[1]: "[::1" is not [address] or'),
    ("[master]\nlisten = []\n", "master.listen: must name at least one address"),
    ('[master]\nlisten = ["a", "a:3493"]\n', "master.listen: lists the same address"),
    ("[master]\nlisten = 3493\n", "master.listen: must be a list of strings"),
    ("[master]\nmaxcon = 1\n", 'master.maxcon: unknown key (did you mean "maxconn"?)'),
    ("[mastr]\n", 'mastr: unknown key (did you mean "master"?)'),
    ("", "ups: no UPS is defined (set allow_no_device"),
    ('[ups]\nname = "u"\n', "ups: must be an array of tables: write [[ups]], not [ups]"),
    ('[[ups]]\nname = "u"\n', "ups[1].driver: missing (it is required)"),
    ('[[ups]]\nname = "u"\ndriver = "replya"\n',
     'ups[1].driver: upsagent has no driver called "replya" (did you mean "replay"?)'),
    ('[[ups]]\nname = "u"\ndriver = "replay"\n[[ups]]\nname = "U"\ndriver = "replay"\n',
     'ups[2].name: "U" is already the name of UPS "u"'),
    ('[[ups]]\nname = "u"\ndriver = "replay"\naliases = ["ups"]\n[[ups]]\nname = "UPS"\n'
     'driver = "replay"\n', 'ups[2].name: "UPS" is already the name of an alias of UPS "u"'),
    ('[[ups]]\nname = "u"\ndriver = "replay"\naliases = ["a", "A"]\n',
     "ups[1].aliases: lists the same name twice"),
    ('[[ups]]\nname = "u"\ndriver = "replay"\n[ups.options]\nport = "x"\n',
     "ups[1].options.port: write port in the [[ups]] table itself"),
    ('[[ups]]\nname = "u"\ndriver = "replay"\n[ups.options]\nignorelb = true\n',
     "ups[1].options.ignorelb: must be a string or a whole number, not a boolean (a flag"),
    ('[[ups]]\nname = "u"\ndriver = "replay"\n[ups.options]\n"default.x" = 1.5\n',
     'ups[1].options."default.x": must be a string or a whole number, not a float'),
    ('[[ups]]\nname = "u"\ndriver = "replay"\ndesc = "two\\nlines"\n',
     'ups[1].desc: "two\nlines" holds the control character U+000A'),
    ('[[ups]]\nname = "u"\ndriver = "replay"\n[[user]]\nname = "a"\n[[user]]\nname = "a"\n',
     'user[2].name: user "a" is defined twice'),
    ('[[ups]]\nname = "u"\ndriver = "replay"\n[[user]]\nname = "a"\nupsmon = "boss"\n',
     'user[1].upsmon: unknown upsmon role "boss" (primary or secondary)'),
    ('[[ups]]\nname = "u"\ndriver = "replay"\n[[user]]\nname = "a"\nactions = ["sett"]\n',
     'user[1].actions: unknown action "sett" (did you mean "set"?)'),
    ('[[ups]]\nname = "u"\ndriver = "replay"\n[[user]]\nname = "a"\npassword = "pässword"\n',
     "user[1].password: holds characters outside printable ASCII"),
    ('[[ups]]\nname = "u"\ndriver = "replay"\n[[user]]\nname = "bjørn"\n',
     'user[1].name: "bjørn" is not printable ASCII'),
    ('[[ups]]\nname = "u"\ndriver = "replay"\n[[user]]\npassword = "x"\n',
     "user[1].name: missing (it is required)"),
])
def test_native_errors_name_key_and_reason(tmp_path: Path, text: str, expected: str) -> None:
    """Each upsagent.toml error names the file, the key as a path and the reason."""
    assert toml_error(tmp_path, text).startswith(expected)


def test_native_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    """A TOML syntax error is a ConfigError with the file, line and column."""
    assert toml_error(tmp_path, "[master\n").startswith("Expected ']' at the end of a table")


def test_native_slave_sections_are_checked(tmp_path: Path) -> None:
    """[slave] and [[host]] are the slave agent's, checked key by key like the rest."""
    with pytest.raises(ConfigError, match=r"slave\.x: unknown key"):
        load_toml(toml_file(tmp_path, '[slave]\nx = 1\n[[host]]\n[[ups]]\nname = "u"\n'
                                      'driver = "replay"\n'))


def test_serve_and_statepath_in_upsagent_toml(tmp_path: Path) -> None:
    """[[ups]] serve says who serves the UPS (with nut-driver any NUT driver name will do);
    [master] statepath, where NUT's driver sockets are, is copied into every UPS; both are
    written back by to_toml."""
    config = load_toml(toml_file(tmp_path, '[master]\nstatepath = "/srv/nut"\n'
                                 '[[ups]]\nname = "u"\ndriver = "apcsmart"\n'
                                 'serve = "nut-driver"\n'
                                 '[[ups]]\nname = "v"\ndriver = "replay"\nserve = "upsagent"\n'
                                 '[[ups]]\nname = "w"\ndriver = "replay"\n'))
    assert config.warnings == ()
    assert config.master.statepath == "/srv/nut"
    assert [(u.serve, u.statepath) for u in config.master.ups] == [
        ("nut-driver", "/srv/nut"), ("upsagent", "/srv/nut"), ("auto", "/srv/nut")]
    assert loads_toml(to_toml(config)).master == config.master
    assert toml_error(tmp_path, BASE + 'serve = "nut-drivers"\n') == (
        'ups[1].serve: "nut-drivers" is not one of "auto", "upsagent", "nut-driver" '
        '(did you mean "nut-driver"?)')
    assert toml_error(tmp_path, '[[ups]]\nname = "u"\ndriver = "a/b"\nserve = "nut-driver"\n'
                      ) == ('ups[1].driver: "a/b": a NUT driver\'s socket is named '
                            '<driver>-<ups>, so the driver name cannot hold /')


def test_nut_drivers_flag_serves_every_ups_from_nut(tmp_path: Path) -> None:
    """upsagent master --nut-config DIR --nut-drivers: every UPS is NUT's driver's."""
    from upsagent.cli import master as master_cli

    nut = nut_dir(tmp_path, ups=UPS_DUMMY + "[usb]\n driver = usbhid-ups\n port = auto\n",
                  upsd="STATEPATH /srv/nut\n")
    plain = master_cli.load(master_cli.build_parser().parse_args(["--nut-config", str(nut)]))
    assert [u.serve for u in plain.master.ups] == ["auto", "auto"]
    args = master_cli.build_parser().parse_args(["--nut-config", str(nut), "--nut-drivers"])
    config = master_cli.load(args)
    assert [(u.serve, u.statepath) for u in config.master.ups] == [
        ("nut-driver", "/srv/nut"), ("nut-driver", "/srv/nut")]


def test_missing_toml_file(tmp_path: Path) -> None:
    """A missing upsagent.toml is a ConfigError naming it."""
    with pytest.raises(ConfigError, match=re.escape(f"{tmp_path}/no.toml: no such file")):
        load_toml(tmp_path / "no.toml")


# -- secrets in upsagent.toml --------------------------------------------------------------

BASE = '[[ups]]\nname = "u"\ndriver = "replay"\n'


def test_secrets_file_provides_passwords(tmp_path: Path) -> None:
    """secrets_file (relative to upsagent.toml) maps user names to passwords."""
    write(tmp_path / "secrets.toml", 'monuser = "secret"\n"odd name" = "p#w\\"d"\n', 0o600)
    text = ('[master]\nsecrets_file = "secrets.toml"\n' + BASE +
            '[[user]]\nname = "monuser"\nupsmon = "secondary"\n[[user]]\nname = "odd name"\n')
    config = load_toml(toml_file(tmp_path, text, 0o644))
    assert [(u.name, u.password) for u in config.master.users] == [
        ("monuser", "secret"), ("odd name", 'p#w"d')]


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_group_or_world_readable_secrets_file_is_refused(tmp_path: Path, mode: int) -> None:
    """A secrets_file that others than its owner can read is refused: file, mode and fix."""
    secrets = write(tmp_path / "secrets.toml", 'u = "p"\n', mode)
    toml = toml_file(tmp_path, '[master]\nsecrets_file = "secrets.toml"\n' + BASE)
    with pytest.raises(ConfigError) as info:
        load_toml(toml)
    assert str(info.value) == (
        f"{secrets}: mode {mode:04o} lets users other than its owner read the passwords it "
        f'holds; run "chmod 600 {secrets}" (and check its owner)')


def test_password_file(tmp_path: Path) -> None:
    """password_file holds the password; one trailing newline is not part of it."""
    write(tmp_path / "mon.pw", "s3cret \n", 0o600)
    config = load_toml(toml_file(tmp_path, BASE + '[[user]]\nname = "m"\n'
                                 'password_file = "mon.pw"\n', 0o644))
    assert config.master.users[0].password == "s3cret "


def test_readable_password_file_is_refused(tmp_path: Path) -> None:
    """A password_file readable by its group is refused, naming file, mode and fix."""
    pw = write(tmp_path / "mon.pw", "x\n", 0o640)
    toml = toml_file(tmp_path, BASE + '[[user]]\nname = "m"\npassword_file = "mon.pw"\n')
    with pytest.raises(ConfigError, match=f'^{re.escape(str(pw))}: mode 0640 .*chmod 600'):
        load_toml(toml)


def test_password_given_twice_is_refused(tmp_path: Path) -> None:
    """A password comes from exactly one place."""
    write(tmp_path / "s.toml", 'm = "a"\n', 0o600)
    text = ('[master]\nsecrets_file = "s.toml"\n' + BASE +
            '[[user]]\nname = "m"\npassword = "b"\n')
    assert toml_error(tmp_path, text) == ('user[1]: the password of "m" is given twice '
                                          "(user[1].password and master.secrets_file); keep one")


def test_inline_password_in_world_readable_file_is_refused(tmp_path: Path) -> None:
    """Passwords inside upsagent.toml need a file others cannot read."""
    path = toml_file(tmp_path, BASE + '[[user]]\nname = "m"\npassword = "p"\n', 0o644)
    with pytest.raises(ConfigError) as info:
        load_toml(path)
    assert str(info.value) == (
        f"{path}: mode 0644 lets every local user read the passwords it holds; run "
        f'"chmod 640 {path}" (and check its owner) (user[1].password); or move the '
        "passwords to a secrets_file")


def test_inline_snmp_pass_phrase_in_world_readable_file_is_refused(tmp_path: Path) -> None:
    """SNMP v3 pass phrases among the options count as inline secrets too."""
    text = BASE + '[ups.options]\nauthPassword = "x"\n'
    assert "(ups[1].options.authPassword)" in toml_error(tmp_path, text, 0o604)


def test_inline_password_in_group_readable_file_is_accepted(tmp_path: Path) -> None:
    """Group-readable (0640, root:upsagent) is private enough for inline passwords."""
    config = load_toml(toml_file(tmp_path, BASE + '[[user]]\nname = "m"\npassword = "p"\n',
                                 0o640))
    assert config.master.users[0].password == "p"


def test_unused_secret_is_a_warning(tmp_path: Path) -> None:
    """A secrets_file entry for no [[user]] is noted."""
    write(tmp_path / "s.toml", 'ghost = "boo"\n', 0o600)
    config = load_toml(toml_file(tmp_path, '[master]\nsecrets_file = "s.toml"\n' + BASE))
    assert config.warnings == (f'{tmp_path}/upsagent.toml: master.secrets_file: "ghost" is '
                               "not a [[user]]; its password is unused",)


# -- export and round trips ----------------------------------------------------------------

RICH_UPS = ('pollinterval = 3\n'
            '[ups]\n driver = usbhid-ups\n port = auto\n desc = "Rack \\"A\\" \\\\ \\#1 \'q\'"\n'
            ' vendorid = 0764\n override.battery.charge.low = 30\n ignorelb\n'
            '[dummy]\n driver = dummy-ups\n port = "data/ref.dev"\n')
RICH_UPSD = "LISTEN 0.0.0.0 3493\nLISTEN ::1 3494\nMAXCONN 64\nCERTFILE /etc/nut/u.pem\n" \
            "ALLOW_NO_DEVICE 1\nDISABLE_WEAK_SSL true\nMAXAGE 25\nTRACKINGDELAY 10\n"
RICH_USERS = ('[monuser]\n password = secret\n upsmon slave\n'
              '[admin]\n password = "12 3\\#4\\"5\\\\6"\n actions = SET FSD\n instcmds = ALL\n'
              '[mon]\n password = pw\n upsmon primary\n actions = set\n'
              '[nopass]\n instcmds = beeper.toggle\n')


def test_round_trip_nut_to_toml_to_config(tmp_path: Path) -> None:
    """load_toml(to_toml(load_nut_dir(d))) describes exactly the same master."""
    from_nut = load_nut_dir(nut_dir(tmp_path, ups=RICH_UPS, upsd=RICH_UPSD, users=RICH_USERS))
    assert from_nut.master.users[1].password == '12 3#4"5\\6'
    text = to_toml(from_nut)
    assert text.startswith("# This file contains passwords: save it with mode 0600")
    back = load_toml(write(tmp_path / "out.toml", text, 0o600))
    assert back.master == from_nut.master
    assert back == Config(from_nut.master, source=back.source)


def test_to_toml_of_defaults_is_minimal() -> None:
    """A default master is written as its listen line only; no secrets comment."""
    assert to_toml(Config()) == '[master]\nlisten = ["127.0.0.1:3493", "[::1]:3493"]\n'


@pytest.mark.parametrize("value", ["", 'q"uote', "back\\slash", "#hash", "tab\there",
                                   "nl\ncr\r", "\x00\x1f\x7f", "ünï€😀", "'single'"])
def test_toml_string_is_read_back_by_tomllib(value: str) -> None:
    """Every string survives toml_string -> tomllib unchanged."""
    assert tomllib.loads(f"k = {toml_string(value)}")["k"] == value


def test_every_master_setting_is_read_and_written() -> None:
    """Each MasterConfig field has a TOML key and an export rule (guards schema drift)."""
    from upsagent.config import export
    from upsagent.config.schema import ShutdownConfig
    names = {f.name for f in fields(MasterConfig)} - {"ups", "users"}
    assert names <= set(native._MASTER_KEYS)
    # [master.shutdown] is a table of its own, written field by field
    assert names == set(export._MASTER_ORDER) | {"listen", "shutdown"}
    assert {f.name for f in fields(ShutdownConfig)} == set(native._SHUTDOWN_KEYS)


UPS_NAME = st.text(st.sampled_from(
    [chr(c) for c in range(0x21, 0x7F) if chr(c) not in '@"\\#=[]']), min_size=1, max_size=10)
ASCII = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=16)
TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=24)
OPTION = st.text(st.sampled_from("abcxyz._-ABC019"), min_size=1, max_size=12).filter(
    lambda k: k not in ("port", "driver", "desc"))


@st.composite
def configs(draw: st.DrawFn) -> Config:
    """Arbitrary valid Configs: odd names, descriptions, passwords, options."""
    names = draw(st.lists(UPS_NAME, min_size=1, max_size=6, unique_by=str.lower))
    split = draw(st.integers(1, len(names)))
    upses = []
    for i, name in enumerate(names[:split]):
        port = draw(st.none() | TEXT)
        options = {"port": port} if port is not None else {}
        options.update(draw(st.dictionaries(OPTION, TEXT, max_size=3)))
        aliases = tuple(names[split:]) if i == 0 else ()
        upses.append(UpsConfig(name, "dummy-ups", port, draw(st.none() | TEXT), options,
                               tuple(draw(st.lists(OPTION, max_size=2, unique_by=str.lower))),
                               aliases, draw(st.none() | st.just("/etc/nut"))))
    users = []
    for name in draw(st.lists(ASCII.filter(bool), max_size=4, unique=True)):
        users.append(UserConfig(
            name, draw(st.none() | ASCII),
            frozenset(draw(st.sets(st.sampled_from(sorted(validate.KNOWN_ACTIONS))))),
            frozenset(draw(st.sets(st.sampled_from(["all", "beeper.toggle", "load.off"]))))))
    listen = draw(st.lists(st.sampled_from([ListenAddress("127.0.0.1"), ListenAddress("::"),
                                            ListenAddress("fe80::1%eth0", 1),
                                            ListenAddress("nas.local", 65535)]),
                           min_size=1, unique=True))
    master = MasterConfig(listen=tuple(listen), maxconn=draw(st.integers(1, 10**6)),
                          certfile=draw(st.none() | TEXT.filter(bool)),
                          allow_no_device=draw(st.booleans()), ups=tuple(upses),
                          users=tuple(users), powerdown_flag=draw(st.none() | TEXT))
    return Config(master)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(configs())
def test_property_to_toml_round_trips(config: Config) -> None:
    """to_toml then loads_toml gives back an equal Config for arbitrary valid content."""
    assert loads_toml(to_toml(config), source=config.source) == config


# -- validation helpers ---------------------------------------------------------------------


def test_driver_checks_are_skipped_until_the_registry_exists(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Without drivers/registry.py every driver passes; with it, the registry decides."""
    known, unavailable, names = REAL_DRIVER_CHECKS.values()

    def missing(name: str) -> types.ModuleType:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    monkeypatch.setattr(validate, "_import_module", missing)
    assert (known("anything"), unavailable("anything"), names()) == (None, None, [])
    registry = types.SimpleNamespace(
        known_driver=lambda name: name in ("replay", "usbhid-ups"),
        available=lambda name: name == "replay", describe=lambda name: f"{name} is not here",
        DRIVERS={"replay": 1, "usbhid-ups": 2})
    monkeypatch.setattr(validate, "_import_module", lambda name: registry)
    assert (known("replay"), known("nope")) == (True, False)
    assert (unavailable("replay"), unavailable("usbhid-ups")) == (None, "usbhid-ups is not here")
    assert names() == ["replay", "usbhid-ups"]


def test_known_but_unavailable_driver_is_a_warning(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A driver the registry knows but this version cannot run yet is noted, not refused."""
    monkeypatch.setattr(validate, "driver_unavailable",
                        lambda name: "not supported yet" if name == "usbhid-ups" else None)
    config = load_toml(toml_file(tmp_path, '[[ups]]\nname = "u"\ndriver = "usbhid-ups"\n'))
    assert config.warnings == (f"{tmp_path}/upsagent.toml: ups[1].driver: not supported yet; "
                               "NUT's own usbhid-ups will be read through its socket (NUT's "
                               "driver must run)",)
    config = load_toml(toml_file(tmp_path, '[[ups]]\nname = "u"\ndriver = "usbhid-ups"\n'
                                           'serve = "upsagent"\n'))
    assert config.warnings == (f"{tmp_path}/upsagent.toml: ups[1].driver: not supported yet; "
                               "the UPS will be reported as not connected",)


def test_real_registry_knows_replay_and_dummy_ups(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """With the real drivers/registry.py: replay and dummy-ups pass, a typo is refused."""
    for name, func in REAL_DRIVER_CHECKS.items():
        monkeypatch.setattr(validate, name, func)
    config = load_toml(toml_file(tmp_path, '[[ups]]\nname = "a"\ndriver = "replay"\n'
                                           '[[ups]]\nname = "b"\ndriver = "dummy-ups"\n'))
    assert config.warnings == ()
    assert toml_error(tmp_path, '[[ups]]\nname = "a"\ndriver = "dummyups"\n') == (
        'ups[1].driver: upsagent has no driver called "dummyups" (did you mean "dummy-ups"?) '
        '(or set serve = "nut-driver" to read NUT\'s own driver of that name)')


def test_driver_parameters_follow_nut_main_c() -> None:
    """override.*, default.* and the options the driver core consumes are not published."""
    ups = UpsConfig("u", "usbhid-ups", "auto", options={
        "port": "auto", "sdorder": "1", "Override.x": "1", "default.y": "2", "user": "nut",
        "vendorid": "0764", "pollinterval": "5"})
    assert ups.driver_parameters() == {"port": "auto", "vendorid": "0764"}


def test_load_config_chooses_the_front_end(tmp_path: Path) -> None:
    """load_config reads a TOML file, or a NUT directory when nut_dir is given, not both."""
    (tmp_path / "nut").mkdir()
    nut = nut_dir(tmp_path / "nut")
    assert load_config(nut_dir=nut).source == str(nut)
    toml = toml_file(tmp_path, BASE)
    assert load_config(toml).source == str(toml)
    with pytest.raises(ConfigError, match="not both"):
        load_config(toml, nut)


# -- the CLI --------------------------------------------------------------------------------


def run(func: Callable[[list[str]], int], *argv: str) -> tuple[int, str, str]:
    """Run a subcommand function; return (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = func(list(argv))
    return status, out.getvalue(), err.getvalue()


def test_check_config_ok_with_nut_files(tmp_path: Path) -> None:
    """check-config prints the warnings, then one OK line with counts and addresses."""
    nut = nut_dir(tmp_path, upsd="LISTEN 0.0.0.0\nSTATEPATH /run/nut\nDATAPATH /x\n",
                  users="[a]\n password = b\n")
    status, out, err = run(cli_main, "check-config", "--nut-config", str(nut))
    assert (status, err) == (0, "")
    assert out.splitlines() == [
        f"warning: {tmp_path}/upsd.conf:3: DATAPATH is not used by upsagent (its drivers "
        "run in-process and it logs as its command line says); ignored",
        "UPS dummy: served by upsagent's driver for dummy-ups (NUT .dev/.seq dump player)",
        "OK: 1 UPS, 1 user, listening on 0.0.0.0:3493"]
    status, out, err = run(cli_main, "check-config", "--nut-config", str(nut), "--nut-drivers")
    assert (status, err) == (0, "")
    assert out.splitlines()[1:] == [
        "UPS dummy: served by NUT's driver dummy-ups through its socket "
        "/run/nut/dummy-ups-dummy (NUT's driver must be running)",
        "OK: 1 UPS, 1 user, listening on 0.0.0.0:3493"]


def test_check_config_ok_with_toml(tmp_path: Path) -> None:
    """check-config --config FILE checks upsagent.toml."""
    status, out, _ = run(configcmds.check_config, "--config",
                         str(toml_file(tmp_path, FULL_TOML)))
    assert (status, out.splitlines()[-1]) == (
        0, "OK: 2 UPS, 2 users, listening on 0.0.0.0:3493, [::]:3494, localhost:3495, "
           "[::1]:3493")


def test_check_config_error(tmp_path: Path) -> None:
    """An error goes to stderr as 'upsagent: <error>' and the status is 1."""
    nut = nut_dir(tmp_path, upsd="MAXCONN abc\n")
    status, out, err = run(configcmds.check_config, "--nut-config", str(nut))
    assert (status, out) == (1, "")
    assert err == f'upsagent: {tmp_path}/upsd.conf:1: MAXCONN: "abc" is not a whole number\n'


def test_check_config_usage() -> None:
    """--help exits 0 with usage; --config and --nut-config together are a usage error."""
    status, out, _ = run(configcmds.check_config, "--help")
    assert status == 0 and "--nut-config DIR" in out
    status, _, err = run(configcmds.check_config, "--config", "a", "--nut-config", "b")
    assert status == 2 and "not allowed with" in err


def test_import_nut_prints_toml(tmp_path: Path) -> None:
    """import-nut prints upsagent.toml with a secrets warning; warnings go to stderr."""
    nut = nut_dir(tmp_path, ups=RICH_UPS, upsd=RICH_UPSD, users=RICH_USERS)
    status, out, err = run(configcmds.import_nut, str(nut))
    assert status == 0
    assert out.startswith(f"# upsagent.toml converted from {tmp_path} by upsagent import-nut\n"
                          "# This file contains passwords")
    assert "has no password" in err
    assert loads_toml(out).master == load_nut_dir(nut).master


def test_import_nut_prints_upsmon_conf_warnings(tmp_path: Path) -> None:
    """upsmon.conf's warnings reach stderr too (RUN_AS_USER ignored, no SHUTDOWNCMD)."""
    (tmp_path / "upsmon.conf").write_text("MONITOR u@h 1 m p secondary\nRUN_AS_USER nut\n")
    os.chmod(tmp_path / "upsmon.conf", 0o600)
    status, out, err = run(configcmds.import_nut, str(tmp_path))
    assert status == 0 and "[slave]" in out
    assert "RUN_AS_USER" in err and "no SHUTDOWNCMD: the agent shuts this host down" in err


def test_import_nut_output_file_is_private(tmp_path: Path) -> None:
    """--output creates the file with mode 0600 and refuses to overwrite one."""
    nut = nut_dir(tmp_path, users="[a]\n password = b\n")
    target = tmp_path / "upsagent.toml"
    assert run(configcmds.import_nut, "-o", str(target), str(nut))[0] == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert load_toml(target).master.users == (UserConfig("a", "b"),)
    status, _, err = run(configcmds.import_nut, "-o", str(target), str(nut))
    assert status == 1 and "File exists (not overwritten)" in err


def test_import_nut_error(tmp_path: Path) -> None:
    """import-nut exits 1 with 'upsagent: <error>' when the NUT files are wrong."""
    status, out, err = run(configcmds.import_nut, str(tmp_path))
    assert (status, out) == (1, "")
    assert err == f"upsagent: {tmp_path}/ups.conf: no such file\n"


def test_slave_monitor_countdowns_survive_export(tmp_path: Path) -> None:
    """to_toml keeps a full countdown and a warning_period whose delay comes from the UPS."""
    text = """
[slave]
name = "vm"
[[slave.monitor]]
ups = "a@nas"
user = "u"
password = "p"
warning_period = 180
shutdown_delay = 120
[[slave.monitor]]
ups = "b@nas"
user = "u"
password = "p"
warning_period = 300
"""
    first = load_toml(toml_file(tmp_path, text))
    again = loads_toml(to_toml(first), source=first.source)
    assert again.slave is not None and first.slave is not None
    assert again.slave.monitors == first.slave.monitors
    assert [m.delay_from_ups for m in again.slave.monitors] == [None, 300.0]
    assert again.slave.plan.ups == first.slave.plan.ups
