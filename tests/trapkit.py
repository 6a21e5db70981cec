"""Real SNMP trap datagrams (v1, v2c, inform) for the trap tests, encoded with pysnmp's
message codec, and sending them over UDP from a chosen loopback address."""

from __future__ import annotations

import socket
from typing import Any

__all__ = ["send", "v1_trap", "v2c_trap"]


def v2c_trap(community: str, trap_oid: str, inform: bool = False) -> bytes:
    from pyasn1.codec.ber import encoder
    from pysnmp.proto import api

    m: Any = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
    pdu = m.InformRequestPDU() if inform else m.SNMPv2TrapPDU()
    m.apiTrapPDU.set_defaults(pdu)
    m.apiTrapPDU.set_varbinds(pdu, [
        (m.ObjectIdentifier("1.3.6.1.2.1.1.3.0"), m.TimeTicks(12345)),
        (m.ObjectIdentifier("1.3.6.1.6.3.1.1.4.1.0"), m.ObjectIdentifier(trap_oid))])
    msg = m.Message()
    m.apiMessage.set_defaults(msg)
    m.apiMessage.set_community(msg, community)
    m.apiMessage.set_pdu(msg, pdu)
    data: bytes = encoder.encode(msg)
    return data


def v1_trap(community: str, enterprise: str, specific: int, generic: int = 6) -> bytes:
    from pyasn1.codec.ber import encoder
    from pysnmp.proto import api

    m: Any = api.PROTOCOL_MODULES[api.SNMP_VERSION_1]
    pdu = m.TrapPDU()
    m.apiTrapPDU.set_defaults(pdu)
    m.apiTrapPDU.set_enterprise(pdu, tuple(int(x) for x in enterprise.split(".")))
    m.apiTrapPDU.set_generic_trap(pdu, generic)
    m.apiTrapPDU.set_specific_trap(pdu, specific)
    msg = m.Message()
    m.apiMessage.set_defaults(msg)
    m.apiMessage.set_community(msg, community)
    m.apiMessage.set_pdu(msg, pdu)
    data: bytes = encoder.encode(msg)
    return data


def send(data: bytes, port: int, source: str = "127.0.0.1", target: str = "127.0.0.1") -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.sendto(data, (target, port))


def send_v3(port: int, trap_oid: str, engine_id: str, user: str, auth_password: str | None,
            priv_password: str | None = None, auth: str = "SHA256", priv: str = "AES") -> None:
    """Send one SNMPv3 trap (USM, this engine authoritative) with pysnmp's own engine and
    notification originator, over UDP from 127.0.0.1 to ``port``."""
    import asyncio

    from pysnmp.hlapi.v3arch import asyncio as hl
    from pysnmp.proto import rfc1902

    auth_ids = {"MD5": hl.usmHMACMD5AuthProtocol, "SHA": hl.usmHMACSHAAuthProtocol,
                "SHA256": hl.usmHMAC192SHA256AuthProtocol}
    priv_ids = {"DES": hl.usmDESPrivProtocol, "AES": hl.usmAesCfb128Protocol}
    if auth_password is None:
        user_data = hl.UsmUserData(user)
    elif priv_password is None:
        user_data = hl.UsmUserData(user, auth_password, authProtocol=auth_ids[auth])
    else:
        user_data = hl.UsmUserData(user, auth_password, priv_password,
                                   authProtocol=auth_ids[auth], privProtocol=priv_ids[priv])

    async def go() -> None:
        engine = hl.SnmpEngine(rfc1902.OctetString(hexValue=engine_id))
        target = await hl.UdpTransportTarget.create(("127.0.0.1", port), timeout=1, retries=0)
        result = await hl.send_notification(
            engine, user_data, target, hl.ContextData(), "trap",
            hl.NotificationType(hl.ObjectIdentity(trap_oid)))
        engine.close_dispatcher()
        assert not result[0], result[0]

    asyncio.run(go())
