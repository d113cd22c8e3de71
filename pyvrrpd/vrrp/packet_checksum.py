"""VRRP checksums: the Internet checksum and the three forms met in the field.

* ``MESSAGE``: over the VRRP message only.  VRRPv2 always; VRRPv3 over IPv4 with
  keepalived's ``v3_checksum_as_v2`` (what RFC 9568 asks for IPv4).
* ``PSEUDO_HEADER``: the VRRP message prefixed by the IP pseudo-header (source,
  destination, protocol 112, length).  VRRPv3 over IPv6 always; VRRPv3 over IPv4 by
  default in keepalived, FRR, Wireshark and tcpdump.
* ``OLD_UNICAST``: keepalived <= 1.3.6 in unicast mode (``old_unicast_checksum``):
  the IPv4 pseudo-header but with the multicast group (224.0.0.18 unless
  ``vrrp_mcast_group4`` says otherwise) as destination instead of the unicast peer.
"""

from __future__ import annotations

from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address

IPPROTO_VRRP = 112
VRRP_MCAST_GROUP4 = IPv4Address("224.0.0.18")
VRRP_MCAST_GROUP6 = IPv6Address("ff02::12")

IPAddress = IPv4Address | IPv6Address


class ChecksumForm(StrEnum):
    """How a VRRP checksum is computed (see the module docstring)."""

    MESSAGE = "message"
    PSEUDO_HEADER = "pseudo_header"
    OLD_UNICAST = "old_unicast"


_PROTO4 = IPPROTO_VRRP.to_bytes(2, "big")  # zero byte + protocol
_NH6 = IPPROTO_VRRP.to_bytes(4, "big")  # three zero bytes + next header


def internet_checksum(data: bytes) -> int:
    """RFC 1071 checksum of ``data`` (odd lengths padded with a zero byte).

    Uses 2**16 == 1 (mod 0xffff): the big-endian integer of the data is congruent to
    the sum of its 16-bit words, so one big-int modulo replaces a per-word loop.
    """
    if len(data) & 1:
        data += b"\0"
    x = int.from_bytes(data, "big")
    if x == 0:
        return 0xFFFF
    return (0xFFFF - x % 0xFFFF) % 0xFFFF


def _sums_to_zero(data: bytes) -> bool:
    """True if ``data`` (checksum field included) verifies."""
    if len(data) & 1:
        data += b"\0"
    x = int.from_bytes(data, "big")
    return x != 0 and x % 0xFFFF == 0


def pseudo_header(src: IPAddress, dst: IPAddress, length: int) -> bytes:
    """The IPv4 (RFC 791/768 style) or IPv6 (RFC 8200) pseudo-header for VRRP."""
    if src.version != dst.version:
        raise ValueError(f"address families differ: {src} and {dst}")
    if src.version == 4:
        return src.packed + dst.packed + _PROTO4 + (length & 0xFFFF).to_bytes(2, "big")
    return src.packed + dst.packed + length.to_bytes(4, "big") + _NH6


def _prefix(
    form: ChecksumForm, src: IPAddress, dst: IPAddress, length: int, mcast_group: IPAddress | None
) -> bytes:
    if form is ChecksumForm.MESSAGE:
        return b""
    if form is ChecksumForm.OLD_UNICAST:
        if src.version != 4:
            raise ValueError("the old unicast checksum exists for IPv4 only")
        dst = VRRP_MCAST_GROUP4 if mcast_group is None else mcast_group
    return pseudo_header(src, dst, length)


def compute_checksum(
    payload: bytes,
    *,
    src: IPAddress | None = None,
    dst: IPAddress | None = None,
    form: ChecksumForm = ChecksumForm.MESSAGE,
    mcast_group: IPAddress | None = None,
) -> int:
    """Checksum of a VRRP message, treating its checksum field (bytes 6-7) as zero.

    ``src``/``dst`` are needed for the pseudo-header forms; ``mcast_group`` overrides
    the destination used by ``OLD_UNICAST`` (default 224.0.0.18).
    """
    if form is not ChecksumForm.MESSAGE and (src is None or dst is None):
        raise ValueError(f"checksum form {form} needs src and dst")
    body = payload[:6] + b"\0\0" + payload[8:]
    if form is ChecksumForm.MESSAGE:
        return internet_checksum(body)
    assert src is not None and dst is not None
    return internet_checksum(_prefix(form, src, dst, len(payload), mcast_group) + body)


def verify_checksum(
    payload: bytes,
    src: IPAddress,
    dst: IPAddress,
    form: ChecksumForm,
    *,
    mcast_group: IPAddress | None = None,
) -> bool:
    """True if the checksum carried in ``payload`` is right under ``form``."""
    return _sums_to_zero(_prefix(form, src, dst, len(payload), mcast_group) + payload)


_V3_IPV4_ORDER = (ChecksumForm.PSEUDO_HEADER, ChecksumForm.MESSAGE, ChecksumForm.OLD_UNICAST)
_V3_IPV6_ORDER = (ChecksumForm.PSEUDO_HEADER,)
_V2_ORDER = (ChecksumForm.MESSAGE,)


def candidate_forms(version: int, family: int) -> tuple[ChecksumForm, ...]:
    """The checksum forms a VRRP ``version`` message over IP ``family`` may use."""
    if version == 3:
        return _V3_IPV4_ORDER if family == 4 else _V3_IPV6_ORDER
    return _V2_ORDER


def checksum_form(
    payload: bytes,
    src: IPAddress,
    dst: IPAddress,
    *,
    expected: ChecksumForm | None = None,
    mcast_group: IPAddress | None = None,
) -> ChecksumForm | None:
    """Which checksum form ``payload`` verifies under, or None if none does.

    VRRPv2 is tried with ``MESSAGE`` only, VRRPv3/IPv6 with ``PSEUDO_HEADER`` only,
    VRRPv3/IPv4 with all three; ``expected`` (the receiver's configured form) is
    tried first, so it wins when a message happens to verify under two forms.
    Never raises for any payload bytes.
    """
    version = payload[0] >> 4 if payload else 0
    forms = candidate_forms(version, src.version)
    if expected is not None and expected in forms and forms[0] is not expected:
        forms = (expected, *(f for f in forms if f is not expected))
    for form in forms:
        if verify_checksum(payload, src, dst, form, mcast_group=mcast_group):
            return form
    return None
