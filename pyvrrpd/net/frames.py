"""Ethernet frames announcing a virtual address: gratuitous ARP and unsolicited NA (pure).

Frames are built byte by byte so that the shell only has to hand them to an AF_PACKET
socket. The layouts follow RFC 826 (ARP), RFC 5227 section 3 (ARP announcement),
RFC 4861 sections 4.4 and 7.2.6 (unsolicited Neighbour Advertisement) and RFC 2464
section 7 (IPv6 multicast over Ethernet).
"""

from __future__ import annotations

import ipaddress
import struct

ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
BROADCAST_MAC = b"\xff" * 6
ALL_NODES = ipaddress.IPv6Address("ff02::1")
ALL_NODES_MAC = b"\x33\x33\x00\x00\x00\x01"

ARPHRD_ETHER = 1
ARPOP_REQUEST = 1
ARPOP_REPLY = 2

ICMPV6 = 58
ND_NEIGHBOR_ADVERT = 136
ND_OPT_TARGET_LINKADDR = 2
NA_FLAG_ROUTER = 0x80000000
NA_FLAG_SOLICITED = 0x40000000
NA_FLAG_OVERRIDE = 0x20000000
NDISC_HOP_LIMIT = 255

VRRP_MAC_PREFIX = b"\x00\x00\x5e\x00"


def parse_mac(text: str) -> bytes:
    """``"00:00:5e:00:01:0a"`` (or ``-`` separated) -> 6 bytes; ValueError otherwise."""
    parts = text.replace("-", ":").split(":")
    if len(parts) != 6 or not all(1 <= len(p) <= 2 for p in parts):
        raise ValueError(f"not a MAC address: {text!r}")
    return bytes(int(p, 16) for p in parts)


def format_mac(mac: bytes) -> str:
    """6 bytes -> ``"00:00:5e:00:01:0a"``."""
    if len(mac) != 6:
        raise ValueError(f"a MAC address has 6 bytes, got {len(mac)}")
    return ":".join(f"{b:02x}" for b in mac)


def vrrp_mac(vrid: int, version: int = 4) -> bytes:
    """The virtual router MAC of RFC 5798 section 7.3: 00-00-5E-00-01-VRID (02 for IPv6)."""
    if not 1 <= vrid <= 255:
        raise ValueError(f"VRID out of range 1..255: {vrid}")
    if version not in (4, 6):
        raise ValueError(f"IP version must be 4 or 6, got {version}")
    return VRRP_MAC_PREFIX + bytes((1 if version == 4 else 2, vrid))


def link_local_from_mac(mac: bytes) -> ipaddress.IPv6Address:
    """The modified EUI-64 link-local address (RFC 4291 appendix A) for a MAC."""
    if len(mac) != 6:
        raise ValueError("a MAC address has 6 bytes")
    iid = bytes((mac[0] ^ 0x02, mac[1], mac[2], 0xFF, 0xFE, mac[3], mac[4], mac[5]))
    return ipaddress.IPv6Address(b"\xfe\x80" + b"\x00" * 6 + iid)


def ipv6_multicast_mac(group: ipaddress.IPv6Address) -> bytes:
    """33-33 followed by the group's low 32 bits (RFC 2464 section 7)."""
    return b"\x33\x33" + group.packed[12:]


def inet_checksum(data: bytes) -> int:
    """The 16-bit ones' complement checksum of RFC 1071."""
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _check_mac(mac: bytes) -> None:
    if len(mac) != 6:
        raise ValueError(f"a MAC address has 6 bytes, got {len(mac)}")


def build_garp(sender_mac: bytes, address: ipaddress.IPv4Address, *, reply: bool = False) -> bytes:
    """A gratuitous ARP for `address` from `sender_mac`, broadcast.

    As keepalived sends it: an ARP request (or a reply with ``reply=True``) whose sender
    and target protocol addresses are both the announced address, the target hardware
    address being the broadcast address. No Ethernet padding is added.
    """
    _check_mac(sender_mac)
    eth = BROADCAST_MAC + sender_mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack(
        "!HHBBH",
        ARPHRD_ETHER,
        0x0800,
        6,
        4,
        ARPOP_REPLY if reply else ARPOP_REQUEST,
    )
    arp += sender_mac + address.packed + BROADCAST_MAC + address.packed
    return eth + arp


def build_unsolicited_na(
    sender_mac: bytes,
    target: ipaddress.IPv6Address,
    *,
    router: bool = False,
    source: ipaddress.IPv6Address | None = None,
    destination: ipaddress.IPv6Address = ALL_NODES,
) -> bytes:
    """An unsolicited Neighbour Advertisement for `target` (override flag set).

    The IPv6 source is `source` or the target itself (as keepalived does); the
    destination defaults to all-nodes ff02::1 with its multicast MAC; hop limit 255; a
    target link-layer address option carries `sender_mac`; the ICMPv6 checksum covers
    the pseudo-header of RFC 8200 section 8.1.
    """
    _check_mac(sender_mac)
    src = source if source is not None else target
    flags = NA_FLAG_OVERRIDE | (NA_FLAG_ROUTER if router else 0)
    option = struct.pack("!BB", ND_OPT_TARGET_LINKADDR, 1) + sender_mac
    body = struct.pack("!I", flags) + target.packed + option
    pseudo = src.packed + destination.packed + struct.pack("!I3xB", 4 + len(body), ICMPV6)
    icmp_unsummed = struct.pack("!BBH", ND_NEIGHBOR_ADVERT, 0, 0) + body
    csum = inet_checksum(pseudo + icmp_unsummed)
    icmp = struct.pack("!BBH", ND_NEIGHBOR_ADVERT, 0, csum) + body
    ip6 = struct.pack("!IHBB", 6 << 28, len(icmp), ICMPV6, NDISC_HOP_LIMIT)
    ip6 += src.packed + destination.packed
    if destination.is_multicast:
        dst_mac = ipv6_multicast_mac(destination)
    else:
        raise ValueError("an unsolicited NA goes to a multicast destination")
    eth = dst_mac + sender_mac + struct.pack("!H", ETH_P_IPV6)
    return eth + ip6 + icmp
