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
XPPC) are named in the log.

SNMPv3 traps (USM) are acted on for a v3 card polled at the sending address when they come
with that card's user: the same ``secName``, ``secLevel``, ``authProtocol`` /
``authPassword`` and ``privProtocol`` / ``privPassword`` as its polls.  For a trap the card's
engine is authoritative, so the keys are localized with the engine ID the trap carries; the
card's ``snmp_trap_engine_id`` option (hex), when set, is the only engine ID accepted.  The
digest proves the password either way; engine boots/time are not checked (a replayed trap
only causes one more poll).

Traps from an address no SNMP UPS polls, with a community or v3 user no such UPS uses, that
fail v3 authentication or decryption, and undecodable datagrams are counted
(:attr:`TrapReceiver.ignored`) and logged once per source and reason, never acted on.

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
    from upsagent.drivers.snmp.settings import SnmpSettings

__all__ = ["EVENTS", "TrapReceiver", "V3Trap", "decode_trap", "decode_v3_trap",
           "event_name", "listen", "register", "registered", "unregister"]

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


class V3Trap(Exception):
    """An SNMPv3 message: :func:`decode_trap` cannot read it without a user's keys."""

    def __init__(self, data: bytes) -> None:
        super().__init__("v3")
        self.data = data


_AUTH = {"MD5": (1, 3, 6, 1, 6, 3, 10, 1, 1, 2), "SHA": (1, 3, 6, 1, 6, 3, 10, 1, 1, 3),
         "SHA224": (1, 3, 6, 1, 6, 3, 10, 1, 1, 4), "SHA256": (1, 3, 6, 1, 6, 3, 10, 1, 1, 5),
         "SHA384": (1, 3, 6, 1, 6, 3, 10, 1, 1, 6), "SHA512": (1, 3, 6, 1, 6, 3, 10, 1, 1, 7)}
_PRIV = {"DES": (1, 3, 6, 1, 6, 3, 10, 1, 2, 2), "AES": (1, 3, 6, 1, 6, 3, 10, 1, 2, 4),
         "AES192": (1, 3, 6, 1, 4, 1, 9, 12, 6, 1, 1),
         "AES256": (1, 3, 6, 1, 4, 1, 9, 12, 6, 1, 2)}
_keys: dict[tuple[str, ...], tuple[Any, Any]] = {}


def decode_v3_trap(data: bytes, settings: "SnmpSettings") -> tuple[str, str, str, Any]:
    """("v3", user, trap OID, None) of an SNMPv3 trap that ``settings``' user (USM:
    secName, secLevel, protocols, passwords) authenticates (and decrypts).

    The keys are localized with the engine ID the trap carries (the sender is authoritative
    for a trap), which must equal ``settings.trap_engine_id`` when that is set.  Raises
    ValueError naming what failed (wrong user, level, digest, engine ID, undecryptable)."""
    from pyasn1.codec.ber import decoder
    from pyasn1.type.univ import OctetString
    from pysnmp.proto import api
    from pysnmp.proto.mpmod.rfc3412 import ScopedPDU, SNMPv3Message
    from pysnmp.proto.secmod.rfc3414.service import SnmpUSMSecurityModel, UsmSecurityParameters

    try:
        message, _ = decoder.decode(data, asn1Spec=SNMPv3Message())
        params, _ = decoder.decode(bytes(message["msgSecurityParameters"]),
                                   asn1Spec=UsmSecurityParameters())
        flags = bytes(message["msgGlobalData"]["msgFlags"])[0]
        model = int(message["msgGlobalData"]["msgSecurityModel"])
    except Exception:
        raise ValueError("undecodable SNMPv3 message") from None
    if model != 3:
        raise ValueError(f"SNMPv3 security model {model} (only USM)")
    engine_id = bytes(params["msgAuthoritativeEngineId"])
    user = bytes(params["msgUserName"]).decode("utf-8", "replace")
    if user != settings.sec_name:
        raise ValueError("unknown SNMPv3 user")
    want_auth = settings.sec_level != "noAuthNoPriv"
    want_priv = settings.sec_level == "authPriv"
    if bool(flags & 1) != want_auth or bool(flags & 2) != want_priv:
        raise ValueError(f"SNMPv3 security level differs from secLevel {settings.sec_level}")
    if settings.trap_engine_id is not None and engine_id != settings.trap_engine_id:
        raise ValueError(f"SNMPv3 engine ID {engine_id.hex()} is not snmp_trap_engine_id")
    auth_id, priv_id = _AUTH[settings.auth_protocol], _PRIV[settings.priv_protocol]
    auth_svc = SnmpUSMSecurityModel.AUTH_SERVICES[auth_id]
    priv_svc = SnmpUSMSecurityModel.PRIV_SERVICES[priv_id]
    if want_auth:
        cache = (settings.sec_name or "", settings.auth_protocol, settings.priv_protocol,
                 settings.auth_password or "", settings.priv_password or "", engine_id.hex())
        if cache not in _keys:
            if len(_keys) >= 64:  # unpinned engine IDs are the sender's choice: bound them
                _keys.clear()
            engine = OctetString(engine_id)
            auth_key = auth_svc.localize_key(
                auth_svc.hash_passphrase(OctetString(settings.auth_password or "")), engine)
            priv_key = None
            if want_priv:
                priv_key = priv_svc.localize_key(
                    auth_id, priv_svc.hash_passphrase(
                        auth_id, OctetString(settings.priv_password or "")), engine)
            _keys[cache] = (auth_key, priv_key)
        auth_key, priv_key = _keys[cache]
        try:
            auth_svc.authenticate_incoming_message(
                auth_key, params["msgAuthenticationParameters"], data)
        except Exception:
            raise ValueError("SNMPv3 authentication failed") from None
    scoped = message["msgData"]
    try:
        if want_priv:
            plain = priv_svc.decrypt_data(
                priv_key, (params["msgAuthoritativeEngineBoots"],
                           params["msgAuthoritativeEngineTime"],
                           params["msgPrivacyParameters"]),
                scoped["encryptedPDU"])
            pdu_seq, _ = decoder.decode(bytes(plain), asn1Spec=ScopedPDU())
        else:
            pdu_seq = scoped["plaintext"]
        pdu = pdu_seq["data"].getComponent()
    except Exception:
        raise ValueError("SNMPv3 decryption failed") from None
    module = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
    if not pdu.isSameTypeWith(module.SNMPv2TrapPDU()):
        raise ValueError("not a trap")
    for name, value in module.apiPDU.get_varbinds(pdu):
        if tuple(int(x) for x in name) == SNMP_TRAP_OID:
            return "v3", user, format_oid(int(x) for x in value), None
    raise ValueError("a v3 trap without snmpTrapOID")


def decode_trap(data: bytes) -> tuple[str, str, str, Any]:
    """(version, community, trap OID, reply-or-None) of a v1/v2c trap or inform.

    Raises :class:`V3Trap` for SNMPv3 (read with :func:`decode_v3_trap` and a card's user)
    and ValueError for anything else."""
    from pyasn1.codec.ber import decoder, encoder
    from pysnmp.proto import api

    try:
        version = int(api.decodeMessageVersion(data))
    except Exception:
        raise ValueError("not an SNMP message") from None
    if version == 3:
        raise V3Trap(data)
    if version not in api.PROTOCOL_MODULES:
        raise ValueError(f"SNMP version {version}")
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
        except V3Trap:
            self._v3(datagram, source)
            return
        except ValueError as exc:
            self._ignore(source, str(exc))
            return
        if reply is not None and self.transport is not None:
            self.transport.write(reply, addr)
        cards = self._cards(source)
        if not cards:
            self._ignore(source, "no SNMP UPS is polled at this address")
            return
        matching = [d for d in cards if d.settings is not None
                    and d.settings.version != "v3" and d.settings.community == community]
        if not matching:
            self._ignore(source, "wrong community")
            return
        self._act(matching, version, trap_oid, source)

    def _cards(self, source: str) -> list["SnmpDriver"]:
        return [d for d in _drivers if d.settings is not None
                and _address_of(d.settings.host) == source]

    def _v3(self, datagram: bytes, source: str) -> None:
        """An SNMPv3 trap: acted on only when a v3 card polled at ``source`` authenticates
        it with its own user (and decrypts it, authPriv)."""
        cards = [d for d in self._cards(source)
                 if d.settings is not None and d.settings.version == "v3"]
        if not cards:
            self._ignore(source, "SNMPv3 trap, and no SNMPv3 UPS is polled at this address")
            return
        matching, why = [], ""
        oid = ""
        for driver in cards:
            assert driver.settings is not None
            try:
                _, _, oid, _ = decode_v3_trap(datagram, driver.settings)
            except ValueError as exc:
                why = why or str(exc)
                continue
            matching.append(driver)
        if not matching:
            self._ignore(source, why)
            return
        self._act(matching, "v3", oid, source)

    def _act(self, matching: list["SnmpDriver"], version: str, trap_oid: str,
             source: str) -> None:
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
