"""Frame builders of pyvrrpd.net.frames, checked against scapy as an oracle."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.utils6 import in6_getnsmac, in6_mactoifaceid

from pyvrrpd.net import frames

macs = st.binary(min_size=6, max_size=6)
ipv4s = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
ipv6s = st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)


def test_garp_fields_decoded_by_scapy() -> None:
    mac = bytes.fromhex("00005e00010a")
    frame = frames.build_garp(mac, ipaddress.IPv4Address("10.9.0.254"))
    pkt = Ether(frame)
    assert pkt.dst == "ff:ff:ff:ff:ff:ff"
    assert pkt.src == "00:00:5e:00:01:0a"
    assert pkt.type == 0x0806
    arp = pkt[ARP]
    assert (arp.hwtype, arp.ptype, arp.hwlen, arp.plen) == (1, 0x0800, 6, 4)
    assert arp.op == 1  # who-has: a request, as keepalived sends
    assert arp.hwsrc == "00:00:5e:00:01:0a"
    assert arp.psrc == arp.pdst == "10.9.0.254"
    assert arp.hwdst == "ff:ff:ff:ff:ff:ff"
    assert len(frame) == 42


@given(mac=macs, ip=ipv4s, reply=st.booleans())
def test_garp_equals_scapy_built_frame(mac: bytes, ip: ipaddress.IPv4Address, reply: bool) -> None:
    smac = frames.format_mac(mac)
    want = Ether(dst="ff:ff:ff:ff:ff:ff", src=smac) / ARP(
        op=2 if reply else 1, hwsrc=smac, psrc=str(ip), hwdst="ff:ff:ff:ff:ff:ff", pdst=str(ip)
    )
    assert frames.build_garp(mac, ip, reply=reply) == bytes(want)


def test_na_fields_decoded_by_scapy() -> None:
    mac = bytes.fromhex("00005e00020a")
    target = ipaddress.IPv6Address("fd00:9::fe")
    pkt = Ether(frames.build_unsolicited_na(mac, target))
    assert pkt.dst == "33:33:00:00:00:01"
    assert pkt.src == "00:00:5e:00:02:0a"
    ip6 = pkt[IPv6]
    assert ip6.src == "fd00:9::fe"
    assert ip6.dst == "ff02::1"
    assert ip6.hlim == 255
    assert ip6.nh == 58
    na = pkt[ICMPv6ND_NA]
    assert (na.R, na.S, na.O) == (0, 0, 1)
    assert na.tgt == "fd00:9::fe"
    assert pkt[ICMPv6NDOptDstLLAddr].lladdr == "00:00:5e:00:02:0a"
    assert ip6.plen == 32


def test_na_router_flag_and_explicit_source() -> None:
    mac = bytes.fromhex("020000000001")
    pkt = Ether(
        frames.build_unsolicited_na(
            mac,
            ipaddress.IPv6Address("2001:db8::1"),
            router=True,
            source=ipaddress.IPv6Address("fe80::1"),
        )
    )
    assert pkt[ICMPv6ND_NA].R == 1
    assert pkt[ICMPv6ND_NA].O == 1
    assert pkt[IPv6].src == "fe80::1"


@given(mac=macs, target=ipv6s, router=st.booleans())
def test_na_equals_scapy_built_frame(
    mac: bytes, target: ipaddress.IPv6Address, router: bool
) -> None:
    smac = frames.format_mac(mac)
    want = (
        Ether(dst="33:33:00:00:00:01", src=smac)
        / IPv6(src=str(target), dst="ff02::1", hlim=255)
        / ICMPv6ND_NA(R=int(router), S=0, O=1, tgt=str(target))
        / ICMPv6NDOptDstLLAddr(lladdr=smac)
    )
    # scapy computes the ICMPv6 checksum itself: equal bytes prove ours.
    assert frames.build_unsolicited_na(mac, target, router=router) == bytes(want)


def test_na_checksum_verifies_under_scapy_recompute() -> None:
    frame = frames.build_unsolicited_na(bytes(6), ipaddress.IPv6Address("fe80::abcd"))
    pkt = Ether(frame)
    ours = pkt[ICMPv6ND_NA].cksum
    del pkt[ICMPv6ND_NA].cksum
    assert Ether(bytes(pkt))[ICMPv6ND_NA].cksum == ours


def test_na_rejects_unicast_destination() -> None:
    with pytest.raises(ValueError, match="multicast"):
        frames.build_unsolicited_na(
            bytes(6), ipaddress.IPv6Address("fd00::1"), destination=ipaddress.IPv6Address("fd00::2")
        )


def test_inet_checksum_rfc1071_example() -> None:
    # RFC 1071 section 3: the sum of 0001 f203 f4f5 f6f7 is ddf2 (folded).
    assert frames.inet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0xFFFF - 0xDDF2
    assert frames.inet_checksum(b"\x01") == 0xFFFF - 0x0100


@pytest.mark.parametrize(
    ("vrid", "version", "text"),
    [(1, 4, "00:00:5e:00:01:01"), (10, 4, "00:00:5e:00:01:0a"), (255, 6, "00:00:5e:00:02:ff")],
)
def test_vrrp_mac(vrid: int, version: int, text: str) -> None:
    assert frames.format_mac(frames.vrrp_mac(vrid, version)) == text


@pytest.mark.parametrize(("vrid", "version"), [(0, 4), (256, 4), (1, 5)])
def test_vrrp_mac_rejects(vrid: int, version: int) -> None:
    with pytest.raises(ValueError):
        frames.vrrp_mac(vrid, version)


@given(mac=macs)
def test_mac_text_round_trip(mac: bytes) -> None:
    assert frames.parse_mac(frames.format_mac(mac)) == mac
    assert frames.parse_mac(frames.format_mac(mac).upper().replace(":", "-")) == mac


@pytest.mark.parametrize("bad", ["", "00:11:22:33:44", "00:11:22:33:44:55:66", "0:1:2:3:4:xyz"])
def test_parse_mac_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        frames.parse_mac(bad)


@given(mac=macs)
def test_link_local_matches_scapy_eui64(mac: bytes) -> None:
    iid = in6_mactoifaceid(frames.format_mac(mac))
    assert frames.link_local_from_mac(mac) == ipaddress.IPv6Address(f"fe80::{iid}")


@given(group=ipv6s.map(lambda a: ipaddress.IPv6Address(int(a) | (0xFF << 120))))
def test_multicast_mac_matches_scapy(group: ipaddress.IPv6Address) -> None:
    assert frames.format_mac(frames.ipv6_multicast_mac(group)) == in6_getnsmac(group.packed)
