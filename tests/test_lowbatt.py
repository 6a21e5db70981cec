"""Tests for upsagent.master.lowbatt: LB from the operator's charge and runtime limits."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from twisted.internet.testing import MemoryReactorClock

from tests.test_master_service import config, talk
from upsagent.config import ConfigError, load_toml
from upsagent.master.lowbatt import LowBattery, with_low_battery
from upsagent.master.service import Master
from upsagent.model import UPS
from upsagent.nut.server import ServerSession


@pytest.mark.parametrize(("status", "charge", "runtime", "expected"), [
    ("OB DISCHRG", "19", "900", "OB DISCHRG LB"),       # charge below
    ("OB DISCHRG", "20", "900", None),                  # not strictly below
    ("OB DISCHRG", "80", "299", "OB DISCHRG LB"),       # runtime below
    ("OB DISCHRG", "80.5", "300.0", None),
    ("OB DISCHRG", "19.9", None, "OB DISCHRG LB"),      # decimals, runtime missing
    ("OL CHRG", "5", "10", None),                       # on line: never
    ("OB DISCHRG CAL", "5", "10", None),                # calibration: never
    ("OB DISCHRG LB", "5", "10", None),                 # already there
    ("OB", "n/a", "", None),                            # not numbers: not below
    ("", "5", "10", None),
])
def test_with_low_battery(status: str, charge: str | None, runtime: str | None,
                          expected: str | None) -> None:
    """OB and (charge < 20 % or runtime < 300 s), not during CAL, LB appended once."""
    assert with_low_battery(status, charge, runtime, 20, 300) == expected


def test_no_limits_never_add_lb() -> None:
    assert with_low_battery("OB", "1", "1", None, None) is None


def test_observer_adds_lb_once_per_change_and_never_removes_it() -> None:
    """Observers after the LB one see the final status; LB stays until the driver
    publishes a new status, which is then judged again."""
    ups = UPS("u")
    limits: list[tuple[float | None, int | None]] = [(50.0, None)]
    LowBattery(ups, lambda: limits[0]).start()
    seen: list[str | None] = []
    ups.add_observer(lambda change: seen.append(ups.value("ups.status")))
    ups.set("ups.status", "OB DISCHRG")
    ups.set("battery.charge", "60")
    ups.data_ok()
    assert ups.value("ups.status") == "OB DISCHRG"
    ups.set("battery.charge", "49")
    ups.commit()
    assert ups.value("ups.status") == "OB DISCHRG LB"
    assert seen[-1] == "OB DISCHRG LB"
    ups.set("battery.charge", "70")  # a charge that bounces back does not undo it
    ups.commit()
    assert ups.value("ups.status") == "OB DISCHRG LB"
    ups.set("ups.status", "OL CHRG")  # the driver's new status: judged again
    ups.commit()
    assert ups.value("ups.status") == "OL CHRG"
    limits[0] = (None, 600)
    ups.set("ups.status", "OB")
    ups.set("battery.runtime", "599")
    ups.commit()
    assert ups.value("ups.status") == "OB LB"


def test_stale_data_is_left_alone() -> None:
    """While the data is stale nothing is judged; when it returns, it is."""
    ups = UPS("u")
    LowBattery(ups, lambda: (50.0, None)).start()
    ups.set("ups.status", "OL")
    ups.set("battery.charge", "10")
    ups.data_ok()
    ups.data_stale("lost")
    ups.set("ups.status", "OB")
    ups.commit()
    assert ups.value("ups.status") == "OB"
    ups.data_ok()
    assert ups.value("ups.status") == "OB LB"


def test_master_serves_lb_from_thresholds(tmp_path: Path) -> None:
    """Through the master: GET VAR and a watcher both see LB when charge falls below the
    UPS's lowbatt_charge; the other UPS, without limits, is untouched; a reload with new
    limits applies at once."""
    reactor = MemoryReactorClock()
    conf = config(tmp_path, "a", "b")
    conf = replace(conf, ups=(replace(conf.ups[0], lowbatt_charge=30.0), conf.ups[1]))
    master = Master(conf, reactor)
    master.start()
    watcher = ServerSession(master.state, "127.0.0.1")
    watcher.receive_data(b"WATCH a\n")
    assert watcher.data_to_send() == b"OK WATCHING a\n"
    admin = ServerSession(master.state, "127.0.0.1")
    admin.receive_data(b"USERNAME admin\nPASSWORD pw\nSET VAR a battery.charge 25\n"
                       b'SET VAR a ups.status "OB DISCHRG"\nSET VAR b battery.charge 25\n'
                       b'SET VAR b ups.status "OB DISCHRG"\n')
    assert admin.data_to_send() == b"OK\nOK\nOK\nOK\nOK\nOK\n"
    assert talk(master, "GET VAR a ups.status", "GET VAR b ups.status") == [
        'VAR a ups.status "OB DISCHRG LB"', 'VAR b ups.status "OB DISCHRG"']
    assert watcher.data_to_send().decode().splitlines() == [
        'NOTIFY a VAR battery.charge "25"', 'NOTIFY a VAR ups.status "OB DISCHRG LB"']
    master.reload(replace(conf, ups=(conf.ups[0], replace(conf.ups[1], lowbatt_runtime=10,
                                                          lowbatt_charge=26))))
    assert talk(master, "GET VAR b ups.status") == ['VAR b ups.status "OB DISCHRG LB"']


@pytest.mark.parametrize(("line", "expected"), [
    ("lowbatt_charge = 0", "ups[1].lowbatt_charge: 0 is not a percentage above 0 and at most 100"),
    ("lowbatt_charge = 101", "ups[1].lowbatt_charge: 101 is not a percentage"),
    ('lowbatt_charge = "20"', "ups[1].lowbatt_charge: must be a number (percent), not a string"),
    ("lowbatt_charge = true", "ups[1].lowbatt_charge: must be a number (percent), not a boolean"),
    ("lowbatt_runtime = 0", "ups[1].lowbatt_runtime: 0 is below the minimum of 1 (seconds)"),
    ("lowbatt_runtime = 1.5", "ups[1].lowbatt_runtime: must be a whole number, not a float"),
    ("lowbat_runtime = 5", 'ups[1].lowbat_runtime: unknown key (did you mean "lowbatt_runtime"?)'),
])
def test_threshold_config_errors(tmp_path: Path, line: str, expected: str) -> None:
    """Bad thresholds are refused with the key and the reason."""
    path = tmp_path / "upsagent.toml"
    path.write_text(f'[[ups]]\nname = "u"\ndriver = "replay"\n{line}\n')
    with pytest.raises(ConfigError) as info:
        load_toml(path)
    assert str(info.value).removeprefix(f"{path}: ") .startswith(expected)


def test_threshold_config_round_trip(tmp_path: Path) -> None:
    """Both keys are read (an integer charge too) and written back by to_toml."""
    from upsagent.config import loads_toml, to_toml

    path = tmp_path / "upsagent.toml"
    path.write_text('[[ups]]\nname = "u"\ndriver = "replay"\nlowbatt_charge = 25\n'
                    "lowbatt_runtime = 300\n")
    config = load_toml(path)
    ups = config.master.ups[0]
    assert (ups.lowbatt_charge, ups.lowbatt_runtime) == (25.0, 300)
    assert loads_toml(to_toml(config), source=config.source) == config
