"""Receive filters between the socket and the state machine (pure).

A datagram is decoded, matched to an instance by VRID and checked against that instance's
policy: TTL, version, checksum form, authentication, advert interval, unicast peer list,
our own packets, and the advertised address list. Every drop has a reason, counted by the
caller; a datagram that passes becomes an :class:`AdvertReceived` event.
"""

from __future__ import annotations

import enum
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from .fsm_types import AdvertReceived
from .packet import (
    Advert,
    AuthType,
    ChecksumForm,
    IPAddress,
    PacketError,
    checksum_form,
    decode_advert,
    decode_ipv4_packet,
)


class Rx(enum.StrEnum):
    """Why a received datagram was not handed to an instance (codec reasons included)."""

    TRUNCATED = "truncated"
    BAD_LENGTH = "bad_length"
    BAD_VERSION = "bad_version"
    BAD_TYPE = "bad_type"
    BAD_ADDR_COUNT = "bad_addr_count"
    BAD_IP_HEADER = "bad_ip_header"
    BAD_PROTOCOL = "bad_protocol"
    FRAGMENT = "fragment"
    BAD_TTL = "bad_ttl"
    BAD_CHECKSUM = "bad_checksum"
    CHECKSUM_FORM = "checksum_form"  # valid, but under another form than configured
    UNKNOWN_VRID = "unknown_vrid"
    VERSION_MISMATCH = "version_mismatch"
    AUTH_TYPE = "auth_type"
    AUTH_FAILURE = "auth_failure"
    INTERVAL_MISMATCH = "interval_mismatch"
    NOT_A_PEER = "not_a_peer"
    OWN_PACKET = "own_packet"
    ADDR_LIST = "addr_list"
    BAD_PRIORITY = "bad_priority"


@dataclass(frozen=True, slots=True)
class PeerTtl:
    """Accepted TTL range of a unicast peer (keepalived's min_ttl / max_ttl)."""

    min_ttl: int = 0
    max_ttl: int = 255


@dataclass(frozen=True, slots=True)
class RxPolicy:
    """What one instance accepts."""

    vrid: int
    version: int
    family: int  # 4 or 6
    advert_int_cs: int  # our advert interval in centiseconds
    checksum: ChecksumForm = ChecksumForm.PSEUDO_HEADER
    accept_old_unicast: bool = True  # keepalived switches to the old form unless "never"
    mcast_group: IPAddress | None = None
    unicast: bool = False
    peers: dict[IPAddress, PeerTtl] = field(default_factory=dict)
    check_unicast_src: bool = False
    auth_type: int = AuthType.NONE
    auth_data: bytes = b""
    own_addresses: frozenset[IPAddress] = frozenset()
    vips: frozenset[IPAddress] = frozenset()
    check_adv_addr: bool = False


@dataclass(frozen=True, slots=True)
class Accepted:
    """A datagram that passed every filter."""

    vrid: int
    event: AdvertReceived
    advert: Advert
    checksum: ChecksumForm


@dataclass(frozen=True, slots=True)
class Dropped:
    """A datagram that did not pass; ``vrid`` is known once it decoded."""

    reason: Rx
    detail: str
    vrid: int | None = None
    src: IPAddress | None = None


def inspect(
    data: bytes,
    family: int,
    src: IPAddress,
    dst: IPAddress | None,
    hop_limit: int | None,
    policy_for: Callable[[int], RxPolicy | None],
) -> Accepted | Dropped:
    """Decode one datagram and run it through the filters of the instance it is for.

    IPv4 ``data`` includes the IP header (the TTL, addresses come from it); IPv6 ``data`` is
    the VRRP message and ``hop_limit`` comes from ancillary data.
    """
    try:
        if family == socket.AF_INET:
            pkt = decode_ipv4_packet(data)
            payload, advert = pkt.payload, pkt.advert
            ttl: int | None = pkt.header.ttl
            src, dst = pkt.header.src, pkt.header.dst
        else:
            payload = data
            advert = decode_advert(data, family=6)
            ttl = hop_limit
    except PacketError as exc:
        return Dropped(Rx(exc.reason.value), exc.message, None, src)
    policy = policy_for(advert.vrid)
    if policy is None:
        return Dropped(
            Rx.UNKNOWN_VRID, f"VRID {advert.vrid} is not configured here", advert.vrid, src
        )
    reason = _check(payload, advert, src, dst, ttl, policy)
    if isinstance(reason, Dropped):
        return reason
    event = AdvertReceived(src, advert.priority, advert.max_adver_int / 100.0, advert.version)
    return Accepted(advert.vrid, event, advert, reason)


def _drop(reason: Rx, detail: str, advert: Advert, src: IPAddress) -> Dropped:
    return Dropped(reason, detail, advert.vrid, src)


def _check(
    payload: bytes,
    advert: Advert,
    src: IPAddress,
    dst: IPAddress | None,
    ttl: int | None,
    p: RxPolicy,
) -> ChecksumForm | Dropped:
    if src in p.own_addresses:
        return _drop(Rx.OWN_PACKET, "our own advert", advert, src)
    if advert.version != p.version:
        return _drop(
            Rx.VERSION_MISMATCH,
            f"VRRPv{advert.version} advert, instance speaks VRRPv{p.version}",
            advert,
            src,
        )
    if p.unicast:
        peer = p.peers.get(src)
        if peer is None and p.check_unicast_src:
            return _drop(Rx.NOT_A_PEER, f"{src} is not in unicast_peer", advert, src)
        if peer is not None and ttl is not None and not peer.min_ttl <= ttl <= peer.max_ttl:
            return _drop(
                Rx.BAD_TTL, f"TTL {ttl} outside {peer.min_ttl}-{peer.max_ttl}", advert, src
            )
    elif ttl is not None and ttl != 255:
        return _drop(Rx.BAD_TTL, f"TTL/hop limit {ttl}, must be 255", advert, src)
    form = checksum_form(payload, src, dst or src, expected=p.checksum, mcast_group=p.mcast_group)
    if form is None:
        return _drop(Rx.BAD_CHECKSUM, "checksum verifies under no form", advert, src)
    if form is not p.checksum and not (
        form is ChecksumForm.OLD_UNICAST and p.unicast and p.accept_old_unicast
    ):
        return _drop(
            Rx.CHECKSUM_FORM,
            f"checksum is valid in the {form.value} form, configured {p.checksum.value}",
            advert,
            src,
        )
    if advert.version == 2:
        if advert.auth_type != p.auth_type:
            return _drop(
                Rx.AUTH_TYPE,
                f"auth type {advert.auth_type}, configured {int(p.auth_type)}",
                advert,
                src,
            )
        if p.auth_type == AuthType.PASS and advert.auth_data != p.auth_data.ljust(8, b"\0")[:8]:
            return _drop(Rx.AUTH_FAILURE, "wrong auth_pass", advert, src)
        if advert.max_adver_int != p.advert_int_cs:
            return _drop(
                Rx.INTERVAL_MISMATCH,
                f"advert_int {advert.max_adver_int // 100} s, configured "
                f"{p.advert_int_cs // 100} s",
                advert,
                src,
            )
    if advert.max_adver_int == 0 and advert.version == 3:
        return _drop(Rx.INTERVAL_MISMATCH, "advert interval 0", advert, src)
    if p.check_adv_addr and advert.priority != 0 and frozenset(advert.addresses) != p.vips:
        return _drop(
            Rx.ADDR_LIST, "advertised addresses differ from virtual_ipaddress", advert, src
        )
    return form


class AcceptedCache:
    """Adverts already accepted, by their bytes: a master sends the same one every interval.

    Keyed by the socket and the whole IPv4 datagram but the IP header's identification and
    checksum (TTL, addresses and payload included), for one receive policy table: when the
    engine's table is replaced (start, reload) the cache empties. IPv6 datagrams (header
    fields come as ancillary data) and dropped ones are not cached.
    """

    MAX = 4096

    def __init__(self) -> None:
        self._accepted: dict[tuple[object, bytes], Accepted] = {}
        self._policies: object = None

    def key(
        self, sock: object, family: int, data: bytes, policies: object
    ) -> tuple[object, bytes] | None:
        """The cache key of a datagram (None: not cacheable); a new ``policies`` table
        (compared by identity) empties the cache first."""
        if family != socket.AF_INET or len(data) < 20:
            return None
        if policies is not self._policies:
            self._accepted.clear()
            self._policies = policies
        return sock, data[:4] + data[6:10] + data[12:]

    def get(self, key: tuple[object, bytes]) -> Accepted | None:
        """The earlier verdict on the same datagram, or None."""
        return self._accepted.get(key)

    def remember(self, key: tuple[object, bytes], accepted: Accepted) -> None:
        """Keep a verdict (the cache is emptied when it reaches :attr:`MAX`)."""
        if len(self._accepted) >= self.MAX:
            self._accepted.clear()
        self._accepted[key] = accepted

    def __len__(self) -> int:
        return len(self._accepted)
