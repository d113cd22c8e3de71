"""IPv4/IPv6 headers around VRRP messages: validation on receive, building for tests/tools.

Raw IPv4 sockets deliver the IP header with each datagram; raw IPv6 sockets deliver the
payload only (hop limit via ancillary data), so the IPv6 helpers serve captures and tests.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from pyvrrpd.vrrp.packet_checksum import IPPROTO_VRRP, internet_checksum
from pyvrrpd.vrrp.packet_errors import DropReason, PacketError

IPPROTO_AH = 51
DEFAULT_TOS = 0xC0  # precedence "internetwork control", as keepalived sends
VRRP_TTL = 255

_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_IPV6 = struct.Struct("!IHBB16s16s")
_IP_MF = 0x2000
_IP_DF = 0x4000
_IP_OFFMASK = 0x1FFF


@dataclass(frozen=True, slots=True)
class IPv4Header:
    """The fields of a received (or built) IPv4 header."""

    src: IPv4Address
    dst: IPv4Address
    ttl: int
    protocol: int
    total_length: int
    header_length: int
    tos: int = 0
    ident: int = 0
    flags_fragment: int = 0
    header_checksum: int = 0
    options: bytes = b""

    @property
    def dont_fragment(self) -> bool:
        """The DF bit."""
        return bool(self.flags_fragment & _IP_DF)


@dataclass(frozen=True, slots=True)
class IPv6Header:
    """The fields of a received (or built) fixed IPv6 header."""

    src: IPv6Address
    dst: IPv6Address
    hop_limit: int
    next_header: int
    payload_length: int
    traffic_class: int = 0
    flow_label: int = 0


def parse_ipv4(data: bytes) -> tuple[IPv4Header, bytes]:
    """Validate an IPv4 header; return it and the bytes it carries (up to total length).

    Bytes past the total length (link-layer padding) are ignored.  Raises
    :class:`PacketError` for short buffers, bad version/IHL/length, and fragments.
    """
    n = len(data)
    if n < 20:
        raise PacketError(DropReason.TRUNCATED, f"{n} bytes, shorter than an IPv4 header")
    vihl, tos, total, ident, frag, ttl, proto, csum, src, dst = _IPV4.unpack_from(data)
    if vihl >> 4 != 4:
        raise PacketError(DropReason.BAD_IP_HEADER, f"IP version {vihl >> 4}, expected 4")
    hlen = (vihl & 0x0F) * 4
    if hlen < 20:
        raise PacketError(DropReason.BAD_IP_HEADER, f"IPv4 header length {hlen} < 20")
    if hlen > n:
        raise PacketError(DropReason.TRUNCATED, f"IPv4 header length {hlen} > {n} bytes")
    if total < hlen:
        raise PacketError(DropReason.BAD_IP_HEADER, f"total length {total} < header {hlen}")
    if total > n:
        raise PacketError(DropReason.TRUNCATED, f"total length {total} > {n} bytes received")
    if frag & (_IP_MF | _IP_OFFMASK):
        raise PacketError(DropReason.FRAGMENT, f"fragment (flags/offset {frag:#06x})")
    header = IPv4Header(
        src=IPv4Address(src),
        dst=IPv4Address(dst),
        ttl=ttl,
        protocol=proto,
        total_length=total,
        header_length=hlen,
        tos=tos,
        ident=ident,
        flags_fragment=frag,
        header_checksum=csum,
        options=bytes(data[20:hlen]),
    )
    return header, bytes(data[hlen:total])


def strip_ah(data: bytes) -> tuple[bytes, bytes]:
    """Split an IPsec AH header (RFC 4302) carrying VRRP from what follows it.

    Returns ``(ah_header, vrrp_message)``; raises :class:`PacketError` if the AH
    header is short or does not carry VRRP.
    """
    if len(data) < 12:
        raise PacketError(DropReason.TRUNCATED, "AH header truncated")
    ah_len = (data[1] + 2) * 4
    if ah_len < 12 or ah_len > len(data):
        raise PacketError(DropReason.TRUNCATED, f"AH length {ah_len} > {len(data)} bytes")
    if data[0] != IPPROTO_VRRP:
        raise PacketError(DropReason.BAD_PROTOCOL, f"AH next header {data[0]}, not VRRP")
    return bytes(data[:ah_len]), bytes(data[ah_len:])


def parse_ipv6(data: bytes) -> tuple[IPv6Header, bytes]:
    """Validate a fixed IPv6 header; return it and its payload (up to payload length).

    Extension headers are not walked: the next header must be VRRP (112).
    """
    n = len(data)
    if n < 40:
        raise PacketError(DropReason.TRUNCATED, f"{n} bytes, shorter than an IPv6 header")
    vtcfl, plen, nh, hlim, src, dst = _IPV6.unpack_from(data)
    if vtcfl >> 28 != 6:
        raise PacketError(DropReason.BAD_IP_HEADER, f"IP version {vtcfl >> 28}, expected 6")
    if plen == 0:
        raise PacketError(DropReason.BAD_IP_HEADER, "zero payload length (jumbogram)")
    if plen > n - 40:
        raise PacketError(DropReason.TRUNCATED, f"payload length {plen} > {n - 40} bytes")
    if nh != IPPROTO_VRRP:
        raise PacketError(DropReason.BAD_PROTOCOL, f"next header {nh}, not VRRP")
    header = IPv6Header(
        src=IPv6Address(src),
        dst=IPv6Address(dst),
        hop_limit=hlim,
        next_header=nh,
        payload_length=plen,
        traffic_class=(vtcfl >> 20) & 0xFF,
        flow_label=vtcfl & 0xFFFFF,
    )
    return header, bytes(data[40 : 40 + plen])


def build_ipv4_header(
    src: IPv4Address,
    dst: IPv4Address,
    payload_length: int,
    *,
    ttl: int = VRRP_TTL,
    tos: int = DEFAULT_TOS,
    ident: int = 0,
    dont_fragment: bool = False,
    protocol: int = IPPROTO_VRRP,
) -> bytes:
    """A 20-byte IPv4 header (no options) with its header checksum filled in."""
    total = 20 + payload_length
    if total > 0xFFFF:
        raise ValueError(f"IPv4 datagram of {total} bytes is too long")
    frag = _IP_DF if dont_fragment else 0
    hdr = _IPV4.pack(0x45, tos, total, ident, frag, ttl, protocol, 0, src.packed, dst.packed)
    csum = internet_checksum(hdr)
    return hdr[:10] + csum.to_bytes(2, "big") + hdr[12:]


def build_ipv6_header(
    src: IPv6Address,
    dst: IPv6Address,
    payload_length: int,
    *,
    hop_limit: int = VRRP_TTL,
    traffic_class: int = DEFAULT_TOS,
    flow_label: int = 0,
    next_header: int = IPPROTO_VRRP,
) -> bytes:
    """A 40-byte fixed IPv6 header."""
    if not 0 < payload_length <= 0xFFFF:
        raise ValueError(f"IPv6 payload length {payload_length} out of range")
    first = (6 << 28) | ((traffic_class & 0xFF) << 20) | (flow_label & 0xFFFFF)
    return _IPV6.pack(first, payload_length, next_header, hop_limit, src.packed, dst.packed)
