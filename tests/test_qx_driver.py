"""The Q1 driver as the master serves it, and as ``upsagent killpower`` uses it.

* Real processes: our master (``upsagent master --nut-config``, its thread-pool seam, the
  real pyserial) reads a NUT ``ups.conf`` with ``driver = blazer_ser`` on a pty whose other
  end is the UPS emulator of tests/qxkit.py, answering the Santak Castle C1K replies
  reconstructed from NUT's dump; Debian's ``upsc`` reads it back.  A separate
  ``upsagent killpower --force`` process then orders the shutdown on the same wire.
* In process, with a ``Clock``: ``default.*`` / ``override.*``, and fuzzed replies at the
  wire (bytes below the codec) that never crash the driver and never publish a value that
  no valid reply carried.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

from upsagent.config.schema import UpsConfig
from upsagent.drivers.qx.codec import number
from upsagent.drivers.qx.driver import QxDriver
from upsagent.system.threads import inline as direct
from upsagent.drivers.qx.transport import Transport
from upsagent.model import UPS, Availability

from tests.ourmaster import OurMaster, ask, wait_for
from tests.qxkit import DATA, SILENT, PtyUps, recorded

SANTAK = recorded("reconstructed-santak-castle-c1k_serial.q1log")["Q1\r"]
VULTECH = recorded("vultech-v2000_armac-usb.q1log")


def nut_dump(name: str) -> dict[str, str]:
    out = {}
    for line in (DATA / name).read_text().splitlines():
        if line and not line.startswith("#") and ": " in line:
            key, _, value = line.partition(": ")
            out[key] = value
    return out


@pytest.mark.skipif(shutil.which("upsc") is None, reason="needs Debian's nut-client (upsc)")
def test_blazer_ser_through_the_master_and_upsc() -> None:
    pytest.importorskip("serial")
    emulator = PtyUps({"Q1\r": SANTAK})
    ups_conf = f'[castle]\n  driver = blazer_ser\n  port = {emulator.path}\n  desc = "Santak"\n'
    try:
        with OurMaster(ups_conf) as master:
            target = f"castle@127.0.0.1:{master.port}"

            def listed() -> str | None:
                done = subprocess.run(["upsc", target], capture_output=True, text=True)
                return done.stdout if "ups.status" in done.stdout else None

            out = wait_for(listed, 30, "upsc to list the Q1 UPS")
            ours = dict(line.split(": ", 1) for line in out.splitlines())
            nut = nut_dump("Santak__Castle_C1K__blazer_ser__2.7.4__01.dev")
            differ = {key: (ours.get(key), nut.get(key)) for key in set(ours) | set(nut)
                      if not key.startswith("driver.") and ours.get(key) != nut.get(key)}
            assert differ == {"battery.voltage.high": (None, "-1.08"),
                              "battery.voltage.low": (None, "-0.87")}
            assert ours["driver.name"] == "blazer_ser"
            emulator.set("T\r", SILENT)
            answer = ask(master.port, "USERNAME admin", "PASSWORD adminpass",
                         "INSTCMD castle test.battery.start.quick")
            assert answer.splitlines()[-1] == "OK"
            wait_for(lambda: "T\r" in emulator.commands(), 10, "the T command on the wire")
    finally:
        emulator.close()


def test_killpower_process_on_the_wire(tmp_path: Path) -> None:
    pytest.importorskip("serial")
    emulator = PtyUps({"Q1\r": SANTAK, "C\r": SILENT, "S.5R0003\r": SILENT})
    try:
        (tmp_path / "ups.conf").write_text(
            f"[castle]\n  driver = blazer_ser\n  port = {emulator.path}\n")
        (tmp_path / "upsd.users").write_text("")
        (tmp_path / "upsd.users").chmod(0o600)
        done = subprocess.run([sys.executable, "-m", "upsagent", "killpower", "--nut-config",
                               str(tmp_path), "--force", "--timeout", "20"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.splitlines()[-1] == "castle: shutdown.return acknowledged"
        assert emulator.commands()[-2:] == ["C\r", "S.5R0003\r"]
    finally:
        emulator.close()


# -- in process ---------------------------------------------------------------------------


class Wire(Transport):
    """Bytes as they come off the wire, in order (below the codec: no parsing here)."""

    description = "test wire"

    def __init__(self, replies: dict[str, list[bytes | None]]) -> None:
        self.replies = replies

    def open(self) -> dict[str, str]:
        return {}

    def close(self) -> None:
        pass

    def exchange(self, command: str) -> bytes | None:
        queue = self.replies.get(command)
        if not queue:
            return command.encode()  # an unknown command is echoed
        return queue.pop(0) if len(queue) > 1 else queue[0]


def driver_for(replies: dict[str, list[bytes | None]], **options: str) -> tuple[QxDriver, UPS, Clock]:
    conf = UpsConfig("q1", "nutdrv_qx", port="/dev/ttyS0", options=options)
    ups, clock = UPS("q1"), Clock()
    driver = QxDriver(conf, ups, clock, transport=Wire(replies), blocking=direct)
    return driver, ups, clock


def test_default_and_override_values() -> None:
    driver, ups, clock = driver_for(
        {"Q1\r": [VULTECH["Q1\r"]], "F\r": [VULTECH["F\r"]]},
        **{"default.ups.mfr": "Vultech", "default.input.voltage": "1",
           "override.battery.voltage.low": "22.0", "override.battery.voltage.high": "27.0",
           "override.ups.load": "99"})
    driver.start()
    assert ups.value("ups.mfr") == "Vultech"             # the UPS does not say
    assert ups.value("input.voltage") == "233.0"         # the UPS says: default loses
    assert ups.value("ups.load") == "99"                 # override wins
    assert ups.value("battery.voltage.low") == "22.0"    # no guess over the user's limits
    assert ups.value("battery.charge") == "100"          # (27.0 - 22) / (27 - 22)
    driver.stop()


def test_a_field_that_turns_to_at_signs_goes_away() -> None:
    driver, ups, clock = driver_for({"Q1\r": [VULTECH["Q1\r"]], "F\r": [VULTECH["F\r"]]})
    driver.start()
    assert ups.value("ups.temperature") == "20.8"
    assert isinstance(driver.transport, Wire)
    driver.transport.replies["Q1\r"] = [b"(233.0 000.0 233.0 014 49.0 27.0 @@.@ 00001001\r"]
    clock.advance(2)
    assert ups.get("ups.temperature") is None and ups.availability is Availability.OK
    driver.stop()


_GOOD = VULTECH["Q1\r"]
_FUZZ = st.one_of(
    st.binary(max_size=60),
    st.just(_GOOD),
    st.builds(lambda i, b: _GOOD[:i] + bytes([b]) + _GOOD[i + 1:],
              st.integers(0, len(_GOOD) - 1), st.integers(0, 255)),
    st.builds(lambda i: _GOOD[:i], st.integers(0, len(_GOOD))),
    st.none())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_FUZZ, min_size=1, max_size=8))
def test_fuzzed_wire_never_crashes_and_never_invents(replies: list[bytes | None]) -> None:
    """Whatever comes off the wire: no exception, and every published status and voltage
    is one a reply with a valid status field carried (its field read as NUT reads it,
    :func:`~upsagent.drivers.qx.codec.number`: a blank field is 0, as strtod makes it)."""
    driver, ups, clock = driver_for({"Q1\r": [_GOOD, *replies, _GOOD], "F\r": [VULTECH["F\r"]]})
    driver.start()
    good_inputs = {"233.0"} | {
        f"{value:.1f}" for r in replies
        if r and r[:1] == b"(" and b"\r" in r
        and (value := number(r[1:6].decode("latin-1"))) is not None}
    for _ in range(len(replies) + 1):
        clock.advance(2)
        if ups.availability is Availability.OK:
            assert ups.value("input.voltage") in good_inputs | {None}
            assert ups.status and ups.status[0] in ("OL", "OB", "ALARM")
    driver.stop()


NATIVE = """\
[master]
listen = ["127.0.0.1:{{port}}"]

[[ups]]
name = "castle"
driver = "nutdrv_qx"
port = "{tty}"
desc = "Santak"
[ups.options]
protocol = "q1"

[[user]]
name = "admin"
password = "adminpass"
actions = ["set"]
instcmds = ["all"]
"""


def test_nutdrv_qx_from_the_native_config() -> None:
    """The same UPS from upsagent.toml (``driver = "nutdrv_qx"``, NUT's options under
    [ups.options]): the master reads it and an instant command reaches the wire."""
    pytest.importorskip("serial")
    emulator = PtyUps({"Q1\r": SANTAK})
    try:
        with OurMaster("", toml=NATIVE.format(tty=emulator.path)) as master:
            def status() -> str | None:
                reply = ask(master.port, "GET VAR castle ups.status").strip()
                return reply if reply.startswith("VAR ") else None

            assert wait_for(status, 30, "the Q1 UPS's status") == 'VAR castle ups.status "OL"'
            assert ask(master.port, "GET VAR castle driver.name").strip() == (
                'VAR castle driver.name "nutdrv_qx"')
            emulator.set("T\r", SILENT)
            answer = ask(master.port, "USERNAME admin", "PASSWORD adminpass",
                         "INSTCMD castle test.battery.start.quick")
            assert answer.splitlines()[-1] == "OK"
            wait_for(lambda: "T\r" in emulator.commands(), 10, "the T command on the wire")
    finally:
        emulator.close()
