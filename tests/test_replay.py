"""Tests for the replay driver (NUT dummy-ups), its dump-file parser and the driver registry.

All timing runs on ``twisted.internet.task.Clock``; files live in ``tmp_path`` or
``tests/data`` (copies of public dumps, see ``tests/data/SOURCES.md``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent

from upsagent.config.schema import UpsConfig
from upsagent.drivers import registry
from upsagent.drivers.base import Result, UnavailableDriver
from upsagent.drivers.dumpfile import DumpError, SetVar, Timer, parse_dump
from upsagent.drivers.replay import ReplayDriver
from upsagent.model import UPS, Availability, Change
from upsagent.nut.tokenizer import tokenize_line

DATA = Path(__file__).parent / "data"
DEMO = Path(__file__).parent.parent / "contrib" / "demo"
GOLDEN = [
    "APC__Back-UPS_CS_500__usbhid-ups__2.8.0__01",
    "Eaton__5PX_2000__usbhid-ups__2.7.4__01",
]


def make(path: Path, driver: str = "dummy-ups", options: dict[str, str] | None = None,
         flags: tuple[str, ...] = (), port: str | None = None,
         ) -> tuple[ReplayDriver, UPS, Clock]:
    """A ReplayDriver on ``path`` (found through ``_confdir``), with a Clock."""
    port = path.name if port is None else port
    opts = {"port": port, "_confdir": str(path.parent)}
    opts.update(options or {})
    config = UpsConfig("dummy", driver, port=port, options=opts, flags=flags)
    ups = UPS("dummy")
    clock = Clock()
    return ReplayDriver(config, ups, clock), ups, clock


def started(d: Deferred[None]) -> bool:
    """Whether ``start()``'s Deferred has fired."""
    fired: list[None] = []
    d.addCallback(fired.append)
    return bool(fired)


def type_of(ups: UPS, name: str) -> str:
    """What ``GET TYPE`` would answer for ``name``."""
    var = ups.get(name)
    assert var is not None, name
    return " ".join(var.type_words())


def avail(ups: UPS) -> Availability:
    """The UPS's availability (a call, so that type checkers do not narrow it)."""
    return ups.availability


def set_mtime(path: Path, when: float) -> None:
    """Give ``path`` this modification (and access) time."""
    os.utime(path, (when, when))


# -- the parser -------------------------------------------------------------------------


def test_parse_values_quotes_escapes_comments() -> None:
    """Colon stripped, words joined by one space, quoting/escapes/comments as parseconf."""
    text = (
        '# a comment\n'
        '\n'
        'ups.firmware:  6.5.I   # trailing comment\n'
        'ups.id: "say \\"hi\\" to the UPS"\n'
        'ups.contacts: C:\\\\UPS\\\\path\n'
        'device.location: "Rack \\#4, row \\"B\\""\n'
        'ups.model: Back-UPS   500 FW\n'
    )
    dump = parse_dump(text, "x.dev")
    assert dump.errors == []
    assert dump.entries == [
        SetVar("ups.firmware", "6.5.I"),
        SetVar("ups.id", 'say "hi" to the UPS'),
        SetVar("ups.contacts", "C:\\UPS\\path"),
        SetVar("device.location", 'Rack #4, row "B"'),
        SetVar("ups.model", "Back-UPS 500 FW"),
    ]
    assert [e.line for e in dump.entries] == [3, 4, 5, 6, 7]


def test_parse_timer_and_driver_lines() -> None:
    """TIMER lines become pauses; driver.* lines are skipped without an error."""
    dump = parse_dump("ups.status: OL\ndriver.name: usbhid-ups\ndriver.state:\n"
                      "TIMER 30\nups.status: OB DISCHRG\n", "p.seq")
    assert dump.errors == []
    assert dump.entries == [SetVar("ups.status", "OL"), Timer(30),
                            SetVar("ups.status", "OB DISCHRG")]
    assert dump.skipped_driver_lines == 2


def test_parse_errors_name_file_and_line_and_are_skipped() -> None:
    """Bad TIMERs, names without value and tokenizer errors are reported, never fatal."""
    text = ("battery.charge: 55\n"
            "battery.charge.low\n"
            "TIMER\n"
            "TIMER abc\n"
            "TIMER -1\n"
            "TIMER 1.5\n"
            "TIMER 1 2\n"
            'ups.id: "a#b"\n'
            "TIMERX\n"
            ": orphan\n"
            "battery.runtime: 300\n")
    dump = parse_dump(text, "bad.dev")
    assert dump.entries == [SetVar("battery.charge", "55"), SetVar("battery.runtime", "300")]
    assert [(e.filename, e.line) for e in dump.errors] == [
        ("bad.dev", n) for n in (2, 3, 4, 5, 6, 7, 8, 9, 10)]
    assert str(dump.errors[0]) == "bad.dev:2: no value for 'battery.charge.low' (line skipped)"
    assert "TIMER needs one whole number of seconds" in dump.errors[1].message
    assert isinstance(dump.errors[6], DumpError) and "#" in dump.errors[6].message


def test_parse_name_without_value_does_not_reuse_previous_value() -> None:
    """dummy-ups 2.8.0 gives a bare name the previous line's value; we give it nothing.

    A bare ``ups.status:`` is an empty status, exactly as dummy-ups publishes it.
    """
    dump = parse_dump("battery.charge: 55\nbattery.charge.low:\nups.status:\n")
    assert dump.entries == [SetVar("battery.charge", "55"), SetVar("ups.status", "")]
    assert dump.names() == {"battery.charge"}
    assert len(dump.errors) == 1


def test_parse_odd_names_like_dummy_ups() -> None:
    """The name ends at its first colon; a quoted empty value is kept (it deletes)."""
    dump = parse_dump('weird:colon: value  with spaces\n"quoted.name": x\nups.id: ""\n')
    assert dump.entries == [SetVar("weird", "value with spaces"),
                            SetVar("quoted.name", ": x"), SetVar("ups.id", "")]
    assert dump.errors == []


# -- looking like NUT's dummy-ups --------------------------------------------------------


def golden(name: str) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """Values, types and commands that real upsd 2.8.0 + dummy-ups reported (tests/data)."""
    values: dict[str, str] = {}
    types: dict[str, str] = {}
    commands: list[str] = []
    for line in (DATA / f"{name}.upsd-2.8.0.txt").read_text().splitlines():
        words = tokenize_line(line)
        assert isinstance(words, list)
        if words[0] == "VAR":
            values[words[2]] = words[3]
        elif words[0] == "TYPE":
            types[words[2]] = " ".join(words[3:])
        elif words[0] == "CMD":
            commands.append(words[2])
    return values, types, commands


@pytest.mark.parametrize("name", GOLDEN)
def test_same_variables_types_and_commands_as_real_dummy_ups(name: str) -> None:
    """LIST VAR / GET TYPE / LIST CMD match NUT 2.8.0's upsd+dummy-ups on a real dump,
    values included (as dummy-ups the driver reports NUT's driver versions)."""
    driver, ups, _ = make(DATA / f"{name}.dev")
    assert started(driver.start())
    values, types, commands = golden(name)
    ours = {var.name: var.value for var in ups.variables()}
    assert ours == values
    assert {var.name: " ".join(var.type_words()) for var in ups.variables()} == types
    assert ups.commands() == commands
    assert avail(ups) is Availability.OK


def test_placeholders_core_variables_and_types(tmp_path: Path) -> None:
    """Without ups.mfr/model/status the placeholders appear; core variables are read-only."""
    dev = tmp_path / "small.dev"
    dev.write_text("battery.charge: 55\nups.firmware: 1.0\ninput.sensitivity: H\n"
                   "input.quality: good\nmy.own: x\nups.id: \"\"\n")
    driver, ups, _ = make(dev)
    driver.start()
    assert {v.name: v.value for v in ups.variables()} == {
        "battery.charge": "55", "device.mfr": "Dummy Manufacturer",
        "device.model": "Dummy UPS", "device.type": "ups", "driver.name": "dummy-ups",
        "driver.parameter.mode": "dummy-once", "driver.parameter.pollinterval": "2",
        "driver.parameter.port": "small.dev", "driver.parameter.synchronous": "auto",
        "driver.version": "2.8.0",
        "driver.version.internal": "0.15",
        "input.quality": "good", "input.sensitivity": "H", "my.own": "x",
        "ups.firmware": "1.0", "ups.mfr": "Dummy Manufacturer", "ups.model": "Dummy UPS",
        "ups.status": "OL"}
    expected = {"battery.charge": "RW NUMBER", "ups.firmware": "RW STRING:16",
                "input.sensitivity": "RW STRING:1", "input.quality": "RW STRING:6",
                "my.own": "RW STRING:32", "ups.status": "RW STRING:32",
                "ups.mfr": "RW STRING:32", "device.mfr": "NUMBER", "device.type": "NUMBER",
                "driver.name": "NUMBER", "driver.parameter.port": "NUMBER"}
    assert {name: type_of(ups, name) for name in expected} == expected
    assert ups.commands() == ["load.off"]


def test_device_copies_overwrite_file_values_as_2_8_0(tmp_path: Path) -> None:
    """At the first read device.mfr is copied from ups.mfr even if the file set it."""
    dev = tmp_path / "a.dev"
    dev.write_text("device.mfr: Some Other\nups.mfr: APC\nups.serial: 42\n")
    driver, ups, _ = make(dev)
    driver.start()
    assert ups.value("device.mfr") == "APC"
    assert type_of(ups, "device.mfr") == "RW STRING:32"   # loaded from the file
    assert ups.value("device.serial") == "42"
    assert type_of(ups, "device.serial") == "NUMBER"      # created by the core


def test_options_flags_overrides_and_defaults(tmp_path: Path) -> None:
    """driver.parameter.* and override./default. as measured with dummy-ups 2.8.0."""
    dev = tmp_path / "b.txt"
    dev.write_text("battery.charge: 5\nups.mfr: APC\nups.status: OL LB\n")
    driver, ups, _ = make(dev, options={
        "pollinterval": "5", "synchronous": "yes", "sdorder": "1", "mode": "dummy",
        "default.battery.charge.low": "20", "override.ups.mfr": "Foo"}, flags=("ignorelb",))
    driver.start()
    params = {v.name: v.value for v in ups.variables() if v.name.startswith("driver.")}
    assert params == {
        "driver.flag.ignorelb": "enabled", "driver.name": "dummy-ups",
        "driver.parameter.mode": "dummy-loop", "driver.parameter.pollinterval": "5",
        "driver.parameter.port": "b.txt", "driver.parameter.synchronous": "yes",
        "driver.version": "2.8.0",
        "driver.version.internal": "0.15"}
    assert (ups.value("ups.mfr"), type_of(ups, "ups.mfr")) == ("Foo", "NUMBER")
    assert (ups.value("battery.charge.low"), type_of(ups, "battery.charge.low")) == (
        "20", "NUMBER")
    assert ups.value("ups.status") == "OL LB"  # LB dropped, then re-added: 5 < 20
    assert result_of(driver.setvar("ups.mfr", "Bar")) is Result.UNKNOWN
    assert ups.value("ups.mfr") == "Foo"


def result_of(d: Deferred[Result]) -> Result:
    """The result a Deferred already holds."""
    out: list[Result] = []
    d.addCallback(out.append)
    assert out, "the Deferred has not fired"
    return out[0]


def test_ignorelb_drops_device_lb_and_computes_it(tmp_path: Path) -> None:
    """With the ignorelb flag the core ignores LB words and adds LB from charge.low."""
    seq = tmp_path / "lb.seq"
    seq.write_text("battery.charge.low: 20\nbattery.charge: 50\nups.status: OB LB\nTIMER 5\n"
                   "battery.charge: 10\nups.status: OB\n")
    driver, ups, clock = make(seq, flags=("ignorelb",))
    driver.start()
    assert ups.value("ups.status") == "OB"
    clock.advance(5)
    assert ups.value("ups.status") == "OB LB"


# -- playback and timing -----------------------------------------------------------------

POWERCUT = """\
ups.status: OL
battery.charge: 100
TIMER 10
ups.status: OB DISCHRG
battery.charge: 80
TIMER 20
ups.status: OB LB
battery.charge: 20
TIMER 5
"""


def watch(ups: UPS, clock: Clock) -> list[tuple[float, str, str | None]]:
    """Record (time, ups.status, battery.charge) at every commit that changed something."""
    seen: list[tuple[float, str, str | None]] = []

    def observer(change: Change) -> None:
        seen.append((clock.seconds(), ups.value("ups.status") or "",
                     ups.value("battery.charge")))
    ups.add_observer(observer)
    return seen


def test_seq_plays_a_power_cut_with_exact_times_and_loops(tmp_path: Path) -> None:
    """OL -> OB DISCHRG at 10 s -> OB LB at 30 s; end at 35 s, from the top at 37 s."""
    seq = tmp_path / "cut.seq"
    seq.write_text(POWERCUT)
    driver, ups, clock = make(seq)
    seen = watch(ups, clock)
    assert started(driver.start())
    assert ups.value("driver.parameter.mode") == "dummy-loop"
    clock.advance(9.99)
    assert ups.value("ups.status") == "OL"
    clock.advance(0.01)
    assert ups.value("ups.status") == "OB DISCHRG"
    clock.pump([19.99, 0.01, 5, 1.99, 0.01, 10])
    assert [s for s in seen if s[1] or s[2]] == [
        (0.0, "OL", "100"), (10.0, "OB DISCHRG", "80"), (30.0, "OB LB", "20"),
        (37.0, "OL", "100"), (47.0, "OB DISCHRG", "80")]
    assert avail(ups) is Availability.OK


def test_dev_with_timer_plays_once(tmp_path: Path) -> None:
    """A .dev file is played to its end once and then stays as it is."""
    dev = tmp_path / "once.dev"
    dev.write_text(POWERCUT)
    driver, ups, clock = make(dev)
    driver.start()
    clock.pump([10, 20, 5, 100])
    assert ups.value("ups.status") == "OB LB"
    assert ups.value("driver.parameter.mode") == "dummy-once"


def test_dev_is_reread_when_its_mtime_changes(tmp_path: Path) -> None:
    """A changed .dev replaces the values; variables it no longer has disappear."""
    dev = tmp_path / "ups.dev"
    dev.write_text("ups.status: OL\nbattery.charge: 100\nups.load: 20\n")
    set_mtime(dev, 1_000_000)
    driver, ups, clock = make(dev)
    driver.start()
    assert result_of(driver.setvar("my.note", "kept until the file changes")) is Result.SUCCESS
    clock.advance(10)
    assert ups.value("my.note") == "kept until the file changes"  # unchanged file: no re-read
    changes: list[Change] = []
    ups.add_observer(changes.append)
    dev.write_text("ups.status: OB\nbattery.charge: 100\n")
    set_mtime(dev, 1_000_100)
    clock.advance(2)
    assert ups.value("ups.status") == "OB"
    assert ups.get("ups.load") is None and ups.get("my.note") is None
    assert ups.value("driver.name") == "dummy-ups"
    assert avail(ups) is Availability.OK
    assert len(changes) == 1   # the replacement is one commit
    assert changes[0].variables == {"ups.status", "ups.load", "my.note"}


def test_file_lost_makes_data_stale_then_ok_again(tmp_path: Path) -> None:
    """A file that disappears gives STALE (not NOT_CONNECTED); back, it is re-read: OK."""
    dev = tmp_path / "ups.dev"
    dev.write_text("ups.status: OL\n")
    driver, ups, clock = make(dev)
    driver.start()
    assert avail(ups) is Availability.OK
    dev.unlink()
    clock.advance(2)
    assert avail(ups) is Availability.STALE
    assert str(dev) in ups.reason
    clock.advance(20)
    assert avail(ups) is Availability.STALE
    dev.write_text("ups.status: OB\n")
    clock.advance(2)
    assert avail(ups) is Availability.OK
    assert ups.value("ups.status") == "OB"


def test_seq_lost_during_a_timer_stops_playing(tmp_path: Path) -> None:
    """A looping file that vanishes is stale and not played on until it is back."""
    seq = tmp_path / "cut.seq"
    seq.write_text(POWERCUT)
    driver, ups, clock = make(seq)
    driver.start()
    seq.unlink()
    clock.advance(12)
    assert avail(ups) is Availability.STALE
    assert ups.value("ups.status") == "OL"       # kept, but not served while stale
    seq.write_text(POWERCUT)
    clock.advance(2)                              # t=14: back, played from the top
    assert (avail(ups), ups.value("ups.status")) == (Availability.OK, "OL")
    clock.advance(10)
    assert ups.value("ups.status") == "OB DISCHRG"


def test_missing_file_at_start_is_not_connected_until_it_appears(tmp_path: Path) -> None:
    """No file: NOT_CONNECTED, start() pending, retried every pollinterval; then OK."""
    dev = tmp_path / "later.dev"
    driver, ups, clock = make(dev, options={"pollinterval": "3"})
    with capturedLogs() as events:
        d = driver.start()
        clock.advance(30)
    assert avail(ups) is Availability.NOT_CONNECTED
    assert not started(d)
    assert str(dev) in ups.reason
    assert sum("data is stale" in formatEvent(e) for e in events) == 1  # logged once
    dev.write_text("ups.status: OL\n")
    clock.advance(2.9)
    assert not started(d)
    clock.advance(0.1)
    assert started(d) and avail(ups) is Availability.OK


def test_parse_errors_are_logged_with_file_and_line(tmp_path: Path) -> None:
    """A bad line is logged (file:line) and skipped; the rest is served."""
    dev = tmp_path / "bad.dev"
    dev.write_text("ups.status: OL\nbattery.charge:\nTIMER x\n")
    driver, ups, _ = make(dev)
    with capturedLogs() as events:
        driver.start()
    text = "\n".join(formatEvent(e) for e in events)
    assert f"{dev}:2: no value for 'battery.charge'" in text
    assert f"{dev}:3: TIMER needs" in text
    assert ups.get("battery.charge") is None and ups.value("ups.status") == "OL"


# -- SET, INSTCMD, killpower, stop -------------------------------------------------------


def test_setvar_and_instcmd_as_dummy_ups(tmp_path: Path) -> None:
    """SET ups.status replaces the status, "" deletes, values are kept exactly."""
    dev = tmp_path / "ups.dev"
    dev.write_text("ups.status: OL\nbattery.charge: 100\ndevice.location: here\n")
    driver, ups, _ = make(dev)
    driver.start()
    changes: list[Change] = []
    ups.add_observer(changes.append)
    assert result_of(driver.setvar("ups.status", "OB LB")) is Result.SUCCESS
    assert ups.status == ["OB", "LB"] and changes[-1].variables == {"ups.status"}
    assert result_of(driver.setvar("battery.charge", "")) is Result.SUCCESS
    assert ups.get("battery.charge") is None
    tricky = 'a "q" b\\c #1'
    assert result_of(driver.setvar("device.location", tricky)) is Result.SUCCESS
    assert ups.value("device.location") == tricky
    assert result_of(driver.setvar("new.var", "7")) is Result.SUCCESS
    assert type_of(ups, "new.var") == "RW STRING:32"
    assert result_of(driver.setvar("driver.name", "x")) is Result.UNKNOWN
    assert result_of(driver.instcmd("load.off")) is Result.UNKNOWN
    assert result_of(driver.instcmd("load.on")) is Result.UNKNOWN


def test_native_replay_name_is_the_same_driver(tmp_path: Path) -> None:
    """As driver "replay" it behaves the same; only driver.name differs."""
    dev = tmp_path / "ups.dev"
    dev.write_text("ups.status: OL\nbattery.charge: 100\n")
    driver, ups, _ = make(dev, driver="replay")
    assert started(driver.start())
    assert ups.value("driver.name") == "replay"
    assert type_of(ups, "battery.charge") == "RW NUMBER"
    assert result_of(driver.setvar("ups.status", "OB")) is Result.SUCCESS


def test_killpower_is_recorded(tmp_path: Path) -> None:
    """killpower records shutdown.return with the reactor's time and succeeds."""
    dev = tmp_path / "ups.dev"
    dev.write_text("ups.status: OB LB\n")
    driver, _, clock = make(dev)
    driver.start()
    clock.advance(42)
    assert result_of(driver.killpower()) is Result.SUCCESS
    assert driver.shutdown_log == [(42.0, "shutdown.return")]


def test_stop_cancels_every_pending_call(tmp_path: Path) -> None:
    """After stop() nothing is scheduled and the UPS is not connected."""
    seq = tmp_path / "cut.seq"
    seq.write_text(POWERCUT)
    driver, ups, clock = make(seq)
    driver.start()
    assert clock.getDelayedCalls()
    driver.stop()
    assert clock.getDelayedCalls() == []
    assert avail(ups) is Availability.NOT_CONNECTED


def test_a_new_driver_on_the_same_ups_replaces_everything(tmp_path: Path) -> None:
    """After a config reload the new driver's state holds nothing of the old one's."""
    old_file, new_file = tmp_path / "old.dev", tmp_path / "new.dev"
    old_file.write_text("ups.status: OL\nold.only: 1\n")
    new_file.write_text("ups.status: OB\n")
    old, ups, _ = make(old_file, options={"old.option": "x"})
    old.start()
    old.stop()
    config = UpsConfig("dummy", "replay", port="new.dev",
                       options={"port": "new.dev", "_confdir": str(tmp_path)})
    ReplayDriver(config, ups, Clock()).start()
    assert ups.get("old.only") is None and ups.get("driver.parameter.old.option") is None
    assert (ups.value("driver.name"), ups.value("ups.status")) == ("replay", "OB")
    assert avail(ups) is Availability.OK


def test_modes_paths_and_repeater(tmp_path: Path) -> None:
    """mode overrides the name; other names loop as "dummy"; '@' means unsupported repeater."""
    (tmp_path / "x.txt").write_text("ups.status: OL\n")
    assert make(tmp_path / "x.txt")[0].mode == "dummy"
    assert make(tmp_path / "x.seq", options={"mode": "dummy-once"})[0].mode == "dummy-once"
    driver, ups, _ = make(tmp_path / "x.txt", port="ups@otherhost")
    with capturedLogs() as events:
        d = driver.start()
    assert not started(d) and avail(ups) is Availability.NOT_CONNECTED
    assert "repeater" in ups.reason and ups.value("driver.parameter.mode") == "repeater"
    assert any("not supported" in formatEvent(e) for e in events)
    sub = tmp_path / "conf"
    sub.mkdir()
    (sub / "rel.dev").write_text("ups.status: OB\n")
    config = UpsConfig("u", "dummy-ups", port="rel.dev",
                       options={"port": "rel.dev", "_confdir": str(sub)})
    assert ReplayDriver(config, UPS("u"), Clock()).path == str(sub / "rel.dev")
    config = UpsConfig("u", "dummy-ups", port="rel.dev", options={"port": "rel.dev"},
                       confdir=str(sub))
    assert ReplayDriver(config, UPS("u"), Clock()).path == str(sub / "rel.dev")


def test_demo_files_play_a_power_cut_in_under_a_minute() -> None:
    """contrib/demo parses cleanly; powercut.seq goes OL -> OB -> OB LB -> OL in < 60 s."""
    assert parse_dump((DEMO / "ups.dev").read_bytes()).errors == []
    driver, ups, clock = make(DEMO / "powercut.seq")
    seen = watch(ups, clock)
    driver.start()
    clock.pump([1] * 60)
    statuses = [s for _, s, _ in seen]
    first = {status: statuses.index(status) for status in dict.fromkeys(statuses)}
    assert list(first)[:4] == ["OL", "OB DISCHRG", "OB DISCHRG LB", "OL CHRG"]
    assert max(t for t, s, _ in seen if s == "OL CHRG") < 60


# -- the registry -------------------------------------------------------------------------


def test_registry_table() -> None:
    """Known names map to drivers or to a clear "not supported yet" reason."""
    assert registry.known_driver("dummy-ups") and registry.known_driver("usbhid-ups")
    assert not registry.known_driver("nosuch")
    assert registry.driver_class("replay") is ReplayDriver
    assert registry.driver_class("dummy-ups") is ReplayDriver
    assert registry.describe("usbhid-ups") == (
        "driver 'usbhid-ups': USB HID Power Device "
        "(upsagent.drivers.usbhid.driver.UsbHidDriver)")
    assert registry.available("usbhid-ups")
    assert "unknown driver 'nosuch'" in registry.describe("nosuch")
    assert registry.available("replay") and registry.available("snmp-ups")
    assert "dump player" in registry.describe("dummy-ups")


def test_create_driver_gives_unavailable_driver_with_reason(tmp_path: Path) -> None:
    """create_driver never fails: with serve = "upsagent", unknown names stay NOT_CONNECTED,
    saying why (snmp-ups, once the example of a recognised name without a driver, has one
    now: tests/test_snmp_driver.py)."""
    for name in ("nosuch",):
        ups = UPS("u")
        driver = registry.create_driver(UpsConfig("u", name, serve="upsagent"), ups, Clock())
        assert isinstance(driver, UnavailableDriver)
        driver.start()
        assert avail(ups) is Availability.NOT_CONNECTED
        assert ups.reason == registry.describe(name) + "; the UPS is reported as not connected"
    config = UpsConfig("u", "replay", port=str(tmp_path / "u.dev"))
    assert isinstance(registry.create_driver(config, UPS("u"), Clock()), ReplayDriver)


def test_create_driver_chooses_who_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    """serve: auto takes ours when we have one and NUT's driver socket otherwise;
    nut-driver always NUT's; upsagent always ours.  usbhid-ups is ours only with a USB
    library to reach the device (otherwise auto keeps NUT's usbhid-ups)."""
    from upsagent.drivers.nutsock import NutSocketDriver
    from upsagent.drivers.usbhid import transport
    from upsagent.drivers.usbhid.driver import UsbHidDriver

    def no_library(choice: str = "auto") -> object:
        raise transport.MissingLibrary(f"no hidapi, no pyusb: {transport.INSTALL}")

    monkeypatch.setattr(transport, "backend", no_library)

    def made(driver: str, serve: str = "auto") -> type:
        return type(registry.create_driver(UpsConfig("u", driver, serve=serve), UPS("u"),
                                           Clock()))

    assert made("dummy-ups") is ReplayDriver
    assert made("usbhid-ups") is NutSocketDriver
    # check-config says why NUT's driver serves it, and what to install
    said = registry.serving(UpsConfig("u", "usbhid-ups"))
    assert "NUT's driver usbhid-ups through its socket" in said
    assert "install upsagent[usb]" in said and "no hidapi, no pyusb" in said
    assert made("apcsmart") is NutSocketDriver
    assert made("dummy-ups", "nut-driver") is NutSocketDriver
    assert made("usbhid-ups", "upsagent") is UsbHidDriver
    monkeypatch.setattr(transport, "backend", lambda choice="auto": object())
    assert made("usbhid-ups") is UsbHidDriver
    assert made("dummy-ups", "upsagent") is ReplayDriver
    repeater = UpsConfig("u", "dummy-ups", port="ups@host", options={"port": "ups@host"})
    assert type(registry.create_driver(repeater, UPS("u"), Clock())) is NutSocketDriver
    assert "has no repeater mode" in registry.serving(repeater)
