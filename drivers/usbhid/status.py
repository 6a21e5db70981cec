# -*- test-case-name: tests.test_usbhid_decode -*-
"""``ups.status`` and ``ups.alarm`` from the status bits, as data; pure.

The ``BOOL`` rows of the tables only *collect* status bits (``online``, ``offline``,
``dischrg``, ``lowbatt``, ...): a bit is set by its word and cleared by ``!word``, and it
keeps its value until a later report changes it, because no report carries every flag.
:data:`RULES` then turns the bits into NUT's words, in NUT's order (``ups_status_set()`` in
NUT's ``drivers/usbhid-ups.c``); a word appears once.

A rule's conditions are bit names, plus two kinds of pseudo-bits:

* ``opt:<name>``: the ups.conf flag ``<name>`` is set (``onlinedischarge_onbattery``, or its
  old name ``onlinedischarge``; ``onlinedischarge_calibration``);
* ``charge:partial``: ``battery.charge`` is published and strictly between 0 and 100 (NUT
  reports ``CHRG`` from a bare Charging flag only then, unless the UPS says whether it is
  fully charged).

Why these rules (NUT's reasons): a UPS with no ACPresent but Discharging is on battery; one
that says ACPresent *and* Discharging is taken as on line (NUT logs a warning) unless the
user says that model means on battery (CyberPower UT) or calibration (some APC); LB is any
of BelowRemainingCapacityLimit, RemainingTimeLimitExpired, ShutdownImminent; RB is
NeedReplacement or a missing battery; a depleted battery is not "discharging".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

__all__ = ["ALARMS", "RULES", "Rule", "alarm_texts", "apply_word", "status_words"]


@dataclass(frozen=True)
class Rule:
    """``token`` is set when every ``all_of``, at least one ``any_of`` (if given) and no
    ``none_of`` condition holds."""

    token: str
    all_of: frozenset[str] = frozenset()
    any_of: frozenset[str] = frozenset()
    none_of: frozenset[str] = frozenset()

    def holds(self, facts: set[str]) -> bool:
        return (self.all_of <= facts and not (self.none_of & facts)
                and (not self.any_of or bool(self.any_of & facts)))


def _r(token: str, all_of: Iterable[str] = (), any_of: Iterable[str] = (),
       none_of: Iterable[str] = ()) -> Rule:
    return Rule(token, frozenset(all_of), frozenset(any_of), frozenset(none_of))


ONBATTERY = "opt:onlinedischarge_onbattery"
CALIBRATION = "opt:onlinedischarge_calibration"

#: NUT's ups_status_set(), one line per case, in the order the words appear
RULES: tuple[Rule, ...] = (
    _r("CAL", any_of=["cal"]),
    _r("CAL", all_of=["online", "dischrg", CALIBRATION]),
    _r("OB", all_of=["offline"]),
    _r("OB", all_of=["dischrg"], none_of=["online", "offline"]),
    _r("OB", all_of=["online", "dischrg", ONBATTERY]),
    _r("OL", all_of=["online"], none_of=["dischrg"]),
    _r("OL", all_of=["online", "dischrg"], none_of=[ONBATTERY, CALIBRATION]),
    _r("DISCHRG", all_of=["dischrg"], none_of=["depleted"]),
    _r("CHRG", all_of=["chrg", "notfullycharged"]),
    _r("CHRG", all_of=["chrg", "charge:partial"],
       none_of=["fullycharged", "notfullycharged"]),
    _r("LB", any_of=["lowbatt", "timelimitexp", "shutdownimm"]),
    _r("OVER", any_of=["overload"]),
    _r("RB", any_of=["replacebatt", "nobattery"]),
    _r("TRIM", any_of=["trim"]),
    _r("BOOST", any_of=["boost"]),
    _r("BYPASS", any_of=["bypassauto", "bypassman"]),
    _r("OFF", any_of=["off"]),
)

#: status bit -> ups.alarm text (NUT's ups_alarm_set())
ALARMS: tuple[tuple[str, str], ...] = (
    ("replacebatt", "Replace battery!"), ("shutdownimm", "Shutdown imminent!"),
    ("fanfail", "Fan failure!"), ("nobattery", "No battery installed!"),
    ("battvoltlo", "Battery voltage too low!"), ("battvolthi", "Battery voltage too high!"),
    ("chargerfail", "Battery charger fail!"), ("overheat", "Temperature too high!"),
    ("commfault", "Internal UPS fault!"), ("awaitingpower", "Awaiting power!"),
    ("bypassauto", "Automatic bypass mode!"), ("bypassman", "Manual bypass mode!"),
)

#: setting one of these words clears its opposite (NUT's process_boolean_info())
_OPPOSITES = {"online": "offline", "offline": "online",
              "fullycharged": "notfullycharged", "notfullycharged": "fullycharged"}


def apply_word(bits: set[str], word: str) -> None:
    """Remember one status word: ``word`` sets a bit, ``!word`` clears it."""
    opposite = _OPPOSITES.get(word)
    if opposite is not None:
        bits.discard(opposite)
    if word.startswith("!"):
        bits.discard(word[1:])
    else:
        bits.add(word)


def status_words(bits: set[str], options: Mapping[str, str] | Iterable[str],
                 charge: str | None) -> list[str]:
    """The words of ``ups.status`` for these bits, flags and published battery.charge."""
    facts = set(bits)
    for option in options:
        name = option.lower()
        facts.add(f"opt:{'onlinedischarge_onbattery' if name == 'onlinedischarge' else name}")
    if charge is not None:
        try:
            level = int(float(charge))
        except ValueError:
            level = 0
        if 0 < level < 100:
            facts.add("charge:partial")
    words: list[str] = []
    for rule in RULES:
        if rule.token not in words and rule.holds(facts):
            words.append(rule.token)
    return words


def alarm_texts(bits: set[str]) -> list[str]:
    """The ``ups.alarm`` texts the status bits raise, in NUT's order."""
    return [text for bit, text in ALARMS if bit in bits]
