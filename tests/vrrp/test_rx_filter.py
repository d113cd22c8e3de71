"""Receive filters: every drop reason, and what passes (pure, crafted packets)."""

from __future__ import annotations

import socket
from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyvrrpd.vrrp.packet import (
    Advert,
    AuthType,
    ChecksumForm,
    encode_advert,
    encode_ipv4_packet,
)
from pyvrrpd.vrrp.rx_filter import Accepted, Dropped, PeerTtl, Rx, RxPolicy, inspect

SRC = IPv4Address("10.0.0.2")
GROUP = IPv4Address("224.0.0.18")
VIP = IPv4Address("10.0.0.100")

V2 = RxPolicy(
    vrid=51,
    version=2,
    family=4,
    advert_int_cs=100,
    checksum=ChecksumForm.MESSAGE,
    mcast_group=GROUP,
    auth_type=AuthType.PASS,
    auth_data=b"secret",
    own_addresses=frozenset({IPv4Address("10.0.0.1")}),
    vips=frozenset({VIP}),
    check_adv_addr=True,
)
V3 = RxPolicy(
    vrid=51,
    version=3,
    family=4,
    advert_int_cs=10,
    checksum=ChecksumForm.PSEUDO_HEADER,
    mcast_group=GROUP,
    vips=frozenset({VIP}),
)


def v2_advert(**kw: object) -> Advert:
    base = Advert(
        version=2,
        vrid=51,
        priority=100,
        max_adver_int=100,
        addresses=(VIP,),
        auth_type=AuthType.PASS,
        auth_data=b"secret",
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def v3_advert(**kw: object) -> Advert:
    return replace(
        Advert(version=3, vrid=51, priority=100, max_adver_int=10, addresses=(VIP,)), **kw
    )  # type: ignore[arg-type]


def run(
    advert: Advert,
    policy: RxPolicy,
    *,
    src: IPv4Address = SRC,
    ttl: int = 255,
    form: ChecksumForm | None = None,
    dst: IPv4Address = GROUP,
) -> Accepted | Dropped:
    data = encode_ipv4_packet(
        advert, src=src, dst=dst, ttl=ttl, checksum_form=form, mcast_group=GROUP
    )
    return inspect(
        data, socket.AF_INET, src, dst, None, lambda vrid: policy if vrid == policy.vrid else None
    )


def reason(result: Accepted | Dropped) -> Rx | None:
    return result.reason if isinstance(result, Dropped) else None


def test_good_v2_and_v3_pass() -> None:
    ok2 = run(v2_advert(), V2)
    assert isinstance(ok2, Accepted) and ok2.event.priority == 100
    assert ok2.event.max_adver_int == 1.0 and ok2.event.src == SRC
    ok3 = run(v3_advert(), V3)
    assert isinstance(ok3, Accepted) and ok3.event.max_adver_int == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("advert", "policy", "kw", "expected"),
    [
        (v2_advert(), V2, {"ttl": 64}, Rx.BAD_TTL),
        (v2_advert(vrid=52), V2, {}, Rx.UNKNOWN_VRID),
        (v2_advert(auth_data=b"wrong"), V2, {}, Rx.AUTH_FAILURE),
        (v2_advert(auth_type=AuthType.NONE, auth_data=b""), V2, {}, Rx.AUTH_TYPE),
        (v2_advert(max_adver_int=200), V2, {}, Rx.INTERVAL_MISMATCH),
        (v2_advert(addresses=(IPv4Address("10.0.0.99"),)), V2, {}, Rx.ADDR_LIST),
        (v2_advert(), V2, {"src": IPv4Address("10.0.0.1")}, Rx.OWN_PACKET),
        (v3_advert(), V2, {}, Rx.VERSION_MISMATCH),
        (v3_advert(), V3, {"form": ChecksumForm.MESSAGE}, Rx.CHECKSUM_FORM),
    ],
)
def test_drop_reasons(
    advert: Advert, policy: RxPolicy, kw: dict[str, object], expected: Rx
) -> None:
    assert reason(run(advert, policy, **kw)) is expected  # type: ignore[arg-type]


def test_priority_zero_skips_address_check() -> None:
    assert isinstance(run(v2_advert(priority=0, addresses=()), V2), Accepted)


def test_bad_checksum_and_truncation() -> None:
    data = bytearray(encode_ipv4_packet(v3_advert(), src=SRC, dst=GROUP))
    data[-1] ^= 0xFF
    r = inspect(bytes(data), socket.AF_INET, SRC, GROUP, None, lambda v: V3)
    assert reason(r) is Rx.BAD_CHECKSUM
    r = inspect(bytes(data[:22]), socket.AF_INET, SRC, GROUP, None, lambda v: V3)
    assert isinstance(r, Dropped) and r.vrid is None


def test_unicast_peers_ttl_and_source_check() -> None:
    peer = IPv4Address("10.0.0.2")
    policy = replace(V3, unicast=True, peers={peer: PeerTtl(250, 255)}, check_unicast_src=True)
    me = IPv4Address("10.0.0.1")
    assert isinstance(run(v3_advert(), policy, dst=me, ttl=255), Accepted)
    assert reason(run(v3_advert(), policy, dst=me, ttl=64)) is Rx.BAD_TTL
    other = IPv4Address("10.0.0.3")
    assert reason(run(v3_advert(), policy, src=other, dst=me)) is Rx.NOT_A_PEER
    # keepalived's old unicast checksum (group address in the pseudo-header) is accepted
    old = run(v3_advert(), policy, dst=me, form=ChecksumForm.OLD_UNICAST)
    assert isinstance(old, Accepted) and old.checksum is ChecksumForm.OLD_UNICAST
    never = replace(policy, accept_old_unicast=False)
    assert reason(run(v3_advert(), never, dst=me, form=ChecksumForm.OLD_UNICAST)) is (
        Rx.CHECKSUM_FORM
    )


def test_ipv6_uses_hop_limit_from_ancillary_data() -> None:
    src, dst = IPv6Address("fe80::2"), IPv6Address("ff02::12")
    policy = RxPolicy(vrid=7, version=3, family=6, advert_int_cs=100, mcast_group=dst)
    payload = encode_advert(
        Advert(
            version=3,
            vrid=7,
            priority=50,
            max_adver_int=100,
            addresses=(IPv6Address("fd00::1"),),
            family=6,
        ),
        src=src,
        dst=dst,
    )
    ok = inspect(payload, socket.AF_INET6, src, dst, 255, lambda v: policy)
    assert isinstance(ok, Accepted)
    assert reason(inspect(payload, socket.AF_INET6, src, dst, 1, lambda v: policy)) is (Rx.BAD_TTL)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=120))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    for fam in (socket.AF_INET, socket.AF_INET6):
        r = inspect(
            data,
            fam,
            ip_address("10.0.0.2") if fam == socket.AF_INET else ip_address("fe80::2"),
            None,
            255,
            lambda v: V3,
        )
        assert isinstance(r, Accepted | Dropped)


def test_accepted_cache_keys_on_everything_but_ip_id_and_checksum() -> None:
    from pyvrrpd.vrrp.rx_filter import AcceptedCache

    cache = AcceptedCache()
    policies = {("eth0", 51): V3}

    def packet(**kw: object) -> bytes:
        return encode_ipv4_packet(v3_advert(), src=SRC, dst=GROUP, mcast_group=GROUP, **kw)  # type: ignore[arg-type]

    first = packet(ident=1)
    key = cache.key("eth0", socket.AF_INET, first, policies)
    assert key is not None and cache.get(key) is None
    verdict = inspect(first, socket.AF_INET, SRC, GROUP, None, lambda vrid: V3)
    assert isinstance(verdict, Accepted)
    cache.remember(key, verdict)
    again = packet(ident=2)  # a new IP ID (and so header checksum): the same advert
    assert again != first
    same = cache.key("eth0", socket.AF_INET, again, policies)
    assert same == key and same is not None and cache.get(same) is verdict
    for other in (packet(ttl=254), packet(ident=1, tos=0)):  # what the filters look at
        differs = cache.key("eth0", socket.AF_INET, other, policies)
        assert differs is not None and differs != key and cache.get(differs) is None
    assert cache.key("eth1", socket.AF_INET, again, policies) != key  # another socket
    assert cache.key("eth0", socket.AF_INET6, again, policies) is None  # IPv6: never
    assert cache.key("eth0", socket.AF_INET, again[:19], policies) is None  # too short
    cache.key("eth0", socket.AF_INET, again, dict(policies))  # a reload's new table
    assert len(cache) == 0
