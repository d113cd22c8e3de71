"""Pure VRRP codec: VRRPv2 (RFC 3768) and VRRPv3 (RFC 5798/9568) over IPv4 and IPv6.

Receive path::

    header, payload, advert, _ = decode_ipv4_packet(buf)   # raw IPv4 socket: IP header included
    advert = decode_advert(buf, family=6)                  # raw IPv6 socket: payload only
    form = checksum_form(payload, src, dst, expected=configured_form)   # None -> bad checksum

Decoding never verifies the checksum (so the receiver can tell which form a peer uses)
and raises nothing but :class:`PacketError`, whose ``reason`` names the drop.  Send path:
``encode_advert(advert, src=..., dst=..., checksum_form=...)`` returns the VRRP message.

Decoded adverts keep every field as seen (raw v2 auth data, the v3 reserved bits, the
checksum), so ``encode_advert(decode_advert(p), raw_checksum=True) == p``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv4Address, IPv6Address
from typing import NamedTuple

from pyvrrpd.vrrp.packet_checksum import (
    IPPROTO_VRRP,
    VRRP_MCAST_GROUP4,
    VRRP_MCAST_GROUP6,
    ChecksumForm,
    IPAddress,
    candidate_forms,
    checksum_form,
    compute_checksum,
    internet_checksum,
    verify_checksum,
)
from pyvrrpd.vrrp.packet_errors import DropReason, PacketError
from pyvrrpd.vrrp.packet_ip import (
    DEFAULT_TOS,
    IPPROTO_AH,
    VRRP_TTL,
    IPv4Header,
    IPv6Header,
    build_ipv4_header,
    build_ipv6_header,
    parse_ipv4,
    parse_ipv6,
    strip_ah,
)

__all__ = [
    "DEFAULT_TOS",
    "IPPROTO_VRRP",
    "VRRP_MCAST_GROUP4",
    "VRRP_MCAST_GROUP6",
    "VRRP_TTL",
    "Advert",
    "AuthType",
    "ChecksumForm",
    "DropReason",
    "IPAddress",
    "IPv4Header",
    "IPv4Packet",
    "IPv6Header",
    "IPv6Packet",
    "PacketError",
    "candidate_forms",
    "checksum_form",
    "compute_checksum",
    "decode_advert",
    "decode_ipv4_packet",
    "decode_ipv6_packet",
    "encode_advert",
    "encode_ipv4_packet",
    "encode_ipv6_packet",
    "internet_checksum",
    "verify_checksum",
]

VRRP_TYPE_ADVERT = 1
V2_AUTH_LEN = 8
_HDR = struct.Struct("!BBBBHH")


class AuthType(IntEnum):
    """VRRPv2 authentication types (RFC 2338; types 1 and 2 reserved by RFC 3768)."""

    NONE = 0
    PASS = 1
    AH = 2


@dataclass(frozen=True, slots=True)
class Advert:
    """One VRRP advertisement.

    ``max_adver_int`` is in centiseconds for both versions (VRRPv2's 8-bit seconds
    field times 100).  ``auth_type``/``auth_data`` exist in VRRPv2 only (``auth_data``
    is the raw 8-byte field; shorter values are zero-padded on encode); ``rsvd`` is
    VRRPv3's 4 reserved bits.  ``checksum`` is the value seen on decode.
    """

    version: int
    vrid: int
    priority: int
    max_adver_int: int
    addresses: tuple[IPAddress, ...] = ()
    family: int = 4
    type: int = VRRP_TYPE_ADVERT
    auth_type: int = AuthType.NONE
    auth_data: bytes = b""
    rsvd: int = 0
    checksum: int = 0

    @property
    def count(self) -> int:
        """The address count field."""
        return len(self.addresses)

    @property
    def length(self) -> int:
        """Length in bytes of the encoded message."""
        alen = 4 if self.family == 4 else 16
        return 8 + alen * len(self.addresses) + (V2_AUTH_LEN if self.version == 2 else 0)


class IPv4Packet(NamedTuple):
    """A decoded IPv4 datagram: header, the VRRP message bytes, the advert, AH header."""

    header: IPv4Header
    payload: bytes
    advert: Advert
    ah: bytes


class IPv6Packet(NamedTuple):
    """A decoded IPv6 packet: header, the VRRP message bytes and the advert."""

    header: IPv6Header
    payload: bytes
    advert: Advert


def decode_advert(payload: bytes, *, family: int = 4) -> Advert:
    """Decode a VRRP message (no checksum verification); raise only :class:`PacketError`.

    ``payload`` must be exactly the message (the IP payload): trailing bytes are an
    error.  ``family`` (4 or 6) gives the address size.  Any bytes-like object is
    accepted (a ``bytearray`` from ``recv_into`` is copied once).
    """
    if type(payload) is not bytes:
        payload = bytes(payload)
    n = len(payload)
    if n < 8:
        raise PacketError(DropReason.TRUNCATED, f"{n} bytes, shorter than a VRRP header")
    vt, vrid, prio, count, word, csum = _HDR.unpack_from(payload)
    version = vt >> 4
    if version == 3:
        trailer = 0
    elif version == 2 and family == 4:
        trailer = V2_AUTH_LEN
    else:
        raise PacketError(DropReason.BAD_VERSION, f"VRRP version {version} over IPv{family}")
    if vt & 0x0F != VRRP_TYPE_ADVERT:
        raise PacketError(DropReason.BAD_TYPE, f"VRRP type {vt & 0x0F}, not advertisement")
    if family == 4:
        alen = 4
    elif family == 6:
        alen = 16
    else:
        raise ValueError(f"family must be 4 or 6, not {family!r}")
    expected = 8 + count * alen + trailer
    if n != expected:
        room = n - 8 - trailer
        if room >= 0 and room % alen == 0:
            raise PacketError(
                DropReason.BAD_ADDR_COUNT, f"count {count} but {room // alen} addresses"
            )
        if n < expected:
            raise PacketError(DropReason.TRUNCATED, f"{n} bytes, count {count} needs {expected}")
        raise PacketError(DropReason.BAD_LENGTH, f"{n} bytes, count {count} needs {expected}")
    addresses: tuple[IPAddress, ...]
    if family == 4:
        addresses = tuple(map(IPv4Address, struct.unpack_from(f"!{count}I", payload, 8)))
    else:
        addresses = tuple(IPv6Address(payload[i : i + 16]) for i in range(8, 8 + 16 * count, 16))
    if version == 2:
        return Advert(
            version=2,
            vrid=vrid,
            priority=prio,
            max_adver_int=(word & 0xFF) * 100,
            addresses=addresses,
            family=4,
            auth_type=word >> 8,
            auth_data=bytes(payload[n - V2_AUTH_LEN :]),
            checksum=csum,
        )
    return Advert(
        version=3,
        vrid=vrid,
        priority=prio,
        max_adver_int=word & 0x0FFF,
        addresses=addresses,
        family=family,
        rsvd=word >> 12,
        checksum=csum,
    )


def _check_range(name: str, value: int, top: int) -> None:
    if not 0 <= value <= top:
        raise ValueError(f"{name} {value} out of range 0..{top}")


def encode_advert(
    advert: Advert,
    *,
    src: IPAddress | None = None,
    dst: IPAddress | None = None,
    checksum_form: ChecksumForm | None = None,
    raw_checksum: bool = False,
    mcast_group: IPAddress | None = None,
) -> bytes:
    """Encode ``advert`` as a VRRP message, computing its checksum.

    ``checksum_form`` defaults to ``MESSAGE`` for VRRPv2 and ``PSEUDO_HEADER`` for
    VRRPv3 (which then need ``src``/``dst``).  ``raw_checksum=True`` writes
    ``advert.checksum`` unchanged instead.  Invalid field values raise ``ValueError``.
    """
    version, family, naddr = advert.version, advert.family, len(advert.addresses)
    if family not in (4, 6):
        raise ValueError(f"family must be 4 or 6, not {family!r}")
    _check_range("vrid", advert.vrid, 255)
    _check_range("priority", advert.priority, 255)
    _check_range("type", advert.type, 15)
    _check_range("address count", naddr, 255)
    if any(a.version != family for a in advert.addresses):
        raise ValueError(f"addresses {advert.addresses} are not all IPv{family}")
    if version == 2:
        if family != 4:
            raise ValueError("VRRPv2 runs over IPv4 only")
        secs, rest = divmod(advert.max_adver_int, 100)
        if rest:
            raise ValueError(f"VRRPv2 interval {advert.max_adver_int}cs is not whole seconds")
        _check_range("VRRPv2 interval (s)", secs, 255)
        _check_range("auth type", advert.auth_type, 255)
        if len(advert.auth_data) > V2_AUTH_LEN or advert.rsvd:
            raise ValueError("VRRPv2 auth data is at most 8 bytes and it has no reserved bits")
        word = (advert.auth_type << 8) | secs
        trailer = advert.auth_data.ljust(V2_AUTH_LEN, b"\0")
    elif version == 3:
        _check_range("VRRPv3 interval (cs)", advert.max_adver_int, 0x0FFF)
        _check_range("reserved bits", advert.rsvd, 15)
        if advert.auth_type or advert.auth_data:
            raise ValueError("VRRPv3 has no authentication")
        word = (advert.rsvd << 12) | advert.max_adver_int
        trailer = b""
    else:
        raise ValueError(f"VRRP version {version} is not 2 or 3")
    head = bytes((version << 4 | advert.type, advert.vrid, advert.priority, naddr))
    body = b"".join(a.packed for a in advert.addresses) + trailer
    if raw_checksum:
        csum = advert.checksum & 0xFFFF
    else:
        if checksum_form is None:
            checksum_form = ChecksumForm.MESSAGE if version == 2 else ChecksumForm.PSEUDO_HEADER
        zeroed = head + word.to_bytes(2, "big") + b"\0\0" + body
        csum = compute_checksum(
            zeroed, src=src, dst=dst, form=checksum_form, mcast_group=mcast_group
        )
    return head + struct.pack("!HH", word, csum) + body


def decode_ipv4_packet(data: bytes) -> IPv4Packet:
    """Decode a whole IPv4 datagram carrying VRRP (directly, or behind an AH header).

    Validates the IP header (version, IHL, total length against the buffer, no
    fragments, protocol 112 or 51) before the VRRP message; bytes past the total
    length are ignored.  Raises only :class:`PacketError`; checksums are not verified.
    """
    header, upper = parse_ipv4(data)
    if header.protocol == IPPROTO_VRRP:
        ah, payload = b"", upper
    elif header.protocol == IPPROTO_AH:
        ah, payload = strip_ah(upper)
    else:
        raise PacketError(DropReason.BAD_PROTOCOL, f"IP protocol {header.protocol}, not VRRP")
    return IPv4Packet(header, payload, decode_advert(payload, family=4), ah)


def decode_ipv6_packet(data: bytes) -> IPv6Packet:
    """Decode a whole IPv6 packet (fixed header, next header 112) carrying VRRPv3."""
    header, payload = parse_ipv6(data)
    return IPv6Packet(header, payload, decode_advert(payload, family=6))


def encode_ipv4_packet(
    advert: Advert,
    *,
    src: IPv4Address,
    dst: IPv4Address,
    ttl: int = VRRP_TTL,
    tos: int = DEFAULT_TOS,
    ident: int = 0,
    dont_fragment: bool = False,
    checksum_form: ChecksumForm | None = None,
    raw_checksum: bool = False,
    mcast_group: IPAddress | None = None,
) -> bytes:
    """A whole IPv4 datagram (20-byte header, protocol 112) carrying ``advert``."""
    payload = encode_advert(
        advert,
        src=src,
        dst=dst,
        checksum_form=checksum_form,
        raw_checksum=raw_checksum,
        mcast_group=mcast_group,
    )
    header = build_ipv4_header(
        src, dst, len(payload), ttl=ttl, tos=tos, ident=ident, dont_fragment=dont_fragment
    )
    return header + payload


def encode_ipv6_packet(
    advert: Advert,
    *,
    src: IPv6Address,
    dst: IPv6Address,
    hop_limit: int = VRRP_TTL,
    traffic_class: int = DEFAULT_TOS,
    flow_label: int = 0,
    raw_checksum: bool = False,
) -> bytes:
    """A whole IPv6 packet (fixed header, next header 112) carrying ``advert``."""
    payload = encode_advert(advert, src=src, dst=dst, raw_checksum=raw_checksum)
    header = build_ipv6_header(
        src,
        dst,
        len(payload),
        hop_limit=hop_limit,
        traffic_class=traffic_class,
        flow_label=flow_label,
    )
    return header + payload
