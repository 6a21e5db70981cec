# -*- test-case-name: tests.test_snmp_traps -*-
"""The master's SNMP trap receiver: one UDP port for every SNMP UPS, traps as poll hints.

A card that loses mains sends a trap at once; polling every ``pollfreq`` seconds would notice
up to 30 s later.  So a trap from a card we poll, with that card's community, makes its
driver poll **now** (:meth:`SnmpDriver.poll_now`); the poll, not the trap, says what the UPS
does: a trap is a hint, never data, and polling stays the safety net (UDP traps get lost;
not every card is told to send them).

The receiver is a Twisted ``DatagramProtocol`` in the reactor thread (decoding with pysnmp's
sans-IO message codec; no pysnmp engine, no thread).  SNMPv1 and v2c traps and v2c informs
(answered, as the sender expects) are understood; a v1 trap is named as RFC 3584 converts
it (``enterprise.0.specific``), so RFC 1628's two forms (``1.3.6.1.2.1.33.2.N`` and
``...33.2.0.N``) both match.  Known events (RFC 1628, APC PowerNet, Eaton XUPS, Megatec
XPPC) are named in the log.  Traps from an address no SNMP UPS polls, with a community no
such UPS uses, SNMPv3 traps (not supported: polling continues) and undecodable datagrams are
counted (:attr:`TrapReceiver.ignored`) and logged once per source and reason, never acted on.

Drivers :func:`register` themselves when they start and :func:`unregister` when they stop;
the master starts the receiver (``[master] snmp_traps = "ADDRESS:PORT"``; port 162 needs
root or ``CAP_NET_BIND_SERVICE``).
"""

from __future__ import annotations

import ipaddress
import socket
from collections import Counter
from typing import TYPE_CHECKING, Any

from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from upsagent.drivers.snmp.values import format_oid

if TYPE_CHECKING:
    from upsagent.drivers.snmp.driver import SnmpDriver

__all__ = ["EVENTS", "TrapReceiver", "decode_trap", "event_name", "listen", "register",
           "registered", "unregister"]

_log = Logger()

#: trap OID -> event name (v2 form; v1 traps are converted to it)
EVENTS: dict[str, str] = {}
for _base in ("1.3.6.1.2.1.33.2.", "1.3.6.1.2.1.33.2.0."):
    EVENTS.update({_base + "1": "RFC 1628 upsTrapOnBattery",
                   _base + "2": "RFC 1628 upsTrapTestCompleted",
                   _base + "3": "RFC 1628 upsTrapAlarmEntryAdded",
                   _base + "4": "RFC 1628 upsTrapAlarmEntryRemoved"})
EVENTS.update({f"1.3.6.1.4.1.318.0.{n}": f"APC {name}" for n, name in (
    (1, "communicationLost"), (2, "upsOverload"), (4, "upsDischarged"), (5, "upsOnBattery"),
    (7, "lowBattery"), (9, "powerRestored"), (11, "returnFromLowBattery"),
    (12, "upsTurnedOff"), (17, "upsBatteryNeedsReplacement"))})
EVENTS.update({f"1.3.6.1.4.1.534.1.11.4.1.0.{n}": f"XUPS {name}" for n, name in (
    (1, "xupstdControlOff"), (2, "xupstdControlOn"), (3, "xupstdOnBattery"),
    (4, "xupstdLowBattery"), (5, "xupstdUtilityPowerRestored"),
    (6, "xupstdReturnFromLowBattery"))})
EVENTS.update({f"1.3.6.1.4.1.935.0.{n}": f"XPPC {name}" for n, name in (
    (4, "upsDischarged"), (5, "upsOnBattery"), (7, "lowBattery"), (9, "powerRestored"))})

SNMP_TRAP_OID = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)
_GENERIC = ("coldStart", "warmStart", "linkDown", "linkUp", "authenticationFailure",
            "egpNeighborLoss")

_drivers: list["SnmpDriver"] = []
_addresses: dict[str, str] = {}


def register(driver: "SnmpDriver") -> None:
    """Let traps from ``driver``'s card reach it."""
    if driver not in _drivers:
        _drivers.append(driver)


def unregister(driver: "SnmpDriver") -> None:
    if driver in _drivers:
        _drivers.remove(driver)


def registered() -> list["SnmpDriver"]:
    return list(_drivers)


def event_name(trap_oid: str) -> str:
    """The event a trap OID stands for (the OID itself when unknown)."""
    return EVENTS.get(trap_oid, trap_oid)


def _address_of(host: str) -> str:
    """``host`` as an IP address text (names resolved once, at the first trap)."""
    if host not in _addresses:
        try:
            _addresses[host] = str(ipaddress.ip_address(host))
        except ValueError:
            try:
                _addresses[host] = str(socket.getaddrinfo(host, None)[0][4][0])
            except OSError:
                _addresses[host] = host
    return _addresses[host]


def decode_trap(data: bytes) -> tuple[str, str, str, Any]:
    """(version, community, trap OID, reply-or-None) of a v1/v2c trap or inform.

    Raises ValueError for anything else (``"v3"`` as the message for SNMPv3)."""
    from pyasn1.codec.ber import decoder, encoder
    from pysnmp.proto import api

    try:
        version = int(api.decodeMessageVersion(data))
    except Exception:
        raise ValueError("not an SNMP message") from None
    if version not in api.PROTOCOL_MODULES:
        raise ValueError("v3" if version == 3 else f"SNMP version {version}")
    module = api.PROTOCOL_MODULES[version]
    try:
        message, _ = decoder.decode(data, asn1Spec=module.Message())
    except Exception:
        raise ValueError("undecodable SNMP message") from None
    community = bytes(module.apiMessage.get_community(message)).decode("utf-8", "replace")
    pdu = module.apiMessage.get_pdu(message)
    reply = None
    if version == api.SNMP_VERSION_1:
        if not pdu.isSameTypeWith(module.TrapPDU()):
            raise ValueError("not a trap")
        generic = int(module.apiTrapPDU.get_generic_trap(pdu))
        enterprise = tuple(int(x) for x in module.apiTrapPDU.get_enterprise(pdu))
        if generic == 6:
            oid = enterprise + (0, int(module.apiTrapPDU.get_specific_trap(pdu)))
            return "v1", community, format_oid(oid), None
        name = _GENERIC[generic] if generic < len(_GENERIC) else str(generic)
        return "v1", community, name, None
    if pdu.isSameTypeWith(module.InformRequestPDU()):
        response = module.apiMessage.get_response(message)
        out = module.apiMessage.get_pdu(response)
        module.apiPDU.set_varbinds(out, module.apiPDU.get_varbinds(pdu))
        reply = encoder.encode(response)
    elif not pdu.isSameTypeWith(module.SNMPv2TrapPDU()):
        raise ValueError("not a trap")
    for name, value in module.apiPDU.get_varbinds(pdu):
        if tuple(int(x) for x in name) == SNMP_TRAP_OID:
            return "v2c", community, format_oid(int(x) for x in value), reply
    raise ValueError("a v2c trap without snmpTrapOID")


class TrapReceiver(DatagramProtocol):
    """Receives traps; pokes the drivers of the cards they come from."""

    def __init__(self) -> None:
        #: (source address, reason) -> datagrams not acted on
        self.ignored: Counter[tuple[str, str]] = Counter()
        #: traps that made a driver poll
        self.accepted = 0

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:  # noqa: N802
        source = str(addr[0]).removeprefix("::ffff:")
        try:
            version, community, trap_oid, reply = decode_trap(datagram)
        except ValueError as exc:
            why = str(exc)
            self._ignore(source, "SNMPv3 traps are not supported (polling continues)"
                         if why == "v3" else why)
            return
        if reply is not None and self.transport is not None:
            self.transport.write(reply, addr)
        cards = [d for d in _drivers if d.settings is not None
                 and _address_of(d.settings.host) == source]
        if not cards:
            self._ignore(source, "no SNMP UPS is polled at this address")
            return
        matching = [d for d in cards if d.settings is not None
                    and d.settings.version != "v3" and d.settings.community == community]
        if not matching:
            self._ignore(source, "wrong community")
            return
        self.accepted += 1
        event = event_name(trap_oid)
        for driver in matching:
            _log.info("UPS {ups}: {version} trap {event} from {source}: polling now",
                      ups=driver.config.name, version=version, event=event, source=source)
            driver.poll_now(f"trap {event}")

    def _ignore(self, source: str, why: str) -> None:
        key = (source, why)
        self.ignored[key] += 1
        if self.ignored[key] == 1:
            _log.warn("SNMP trap from {source} ignored: {why} (counted, logged once)",
                      source=source, why=why)


def listen(reactor: Any, address: str) -> tuple[TrapReceiver, Any]:
    """Start a receiver on ``address``: ``host:port``, ``[v6]:port``, ``port`` or a bare
    host (port 162)."""
    from upsagent.drivers.snmp.settings import parse_port

    if address.isdigit():
        host, port = "0.0.0.0", int(address)
    else:
        host, port = parse_port(address)
        bracketed = address.startswith("[")
        if not ((bracketed and "]:" in address) or (not bracketed and address.count(":") == 1)):
            port = 162
    receiver = TrapReceiver()
    listening = reactor.listenUDP(port, receiver, interface=host)
    _log.info("SNMP trap receiver on {host} port {port}", host=host,
              port=listening.getHost().port)
    return receiver, listening
