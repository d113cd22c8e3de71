"""The one exception the VRRP packet codec raises, and why a packet was dropped."""

from __future__ import annotations

from enum import StrEnum


class DropReason(StrEnum):
    """Why a received packet was dropped; the receive loop counts drops by this."""

    TRUNCATED = "truncated"
    """Fewer bytes than the headers claim."""
    BAD_LENGTH = "bad_length"
    """A length that does not fit the message (trailing bytes, odd sizes)."""
    BAD_VERSION = "bad_version"
    """Not VRRPv2/VRRPv3 (or VRRPv2 over IPv6)."""
    BAD_TYPE = "bad_type"
    """VRRP type other than 1 (advertisement)."""
    BAD_ADDR_COUNT = "bad_addr_count"
    """The address count disagrees with the addresses carried."""
    BAD_CHECKSUM = "bad_checksum"
    """The VRRP checksum verifies under no accepted form (set by the receiver)."""
    BAD_IP_HEADER = "bad_ip_header"
    """Malformed IPv4/IPv6 header (version, IHL, total length)."""
    BAD_PROTOCOL = "bad_protocol"
    """IP protocol / next header is not VRRP (112), nor AH carrying VRRP."""
    FRAGMENT = "fragment"
    """An IPv4 fragment (MF set or non-zero offset); VRRP is never fragmented."""
    BAD_TTL = "bad_ttl"
    """TTL / hop limit not 255 (set by the receiver, which knows about unicast)."""


class PacketError(Exception):
    """A received packet is malformed; the only exception the decoders raise."""

    def __init__(self, reason: DropReason, message: str) -> None:
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason
        self.message = message
