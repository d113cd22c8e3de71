"""The VRRP codec against independent implementations: scapy and Wireshark (tshark)."""

from __future__ import annotations

import shutil
import subprocess
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyvrrpd.vrrp.packet import (
    VRRP_MCAST_GROUP4,
    VRRP_MCAST_GROUP6,
    Advert,
    ChecksumForm,
    decode_ipv4_packet,
    decode_ipv6_packet,
    encode_ipv4_packet,
    encode_ipv6_packet,
)
from pyvrrpd.vrrp.pcap import ETH_P_IPV6, ethernet_frame, write_pcap

scapy_inet = pytest.importorskip("scapy.layers.inet")
scapy_inet6 = pytest.importorskip("scapy.layers.inet6")
scapy_vrrp = pytest.importorskip("scapy.layers.vrrp")

v4 = st.builds(IPv4Address, st.integers(0, 2**32 - 1))
v6 = st.builds(IPv6Address, st.integers(0, 2**128 - 1))
small = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@small
@given(
    src=v4,
    dst=v4,
    vrid=st.integers(0, 255),
    prio=st.integers(0, 255),
    secs=st.integers(0, 255),
    auth_type=st.integers(0, 2),
    auth=st.binary(min_size=8, max_size=8),
    addrs=st.lists(v4, max_size=20),
)
def test_v2_matches_scapy(
    src: IPv4Address,
    dst: IPv4Address,
    vrid: int,
    prio: int,
    secs: int,
    auth_type: int,
    auth: bytes,
    addrs: list[IPv4Address],
) -> None:
    advert = Advert(2, vrid, prio, secs * 100, tuple(addrs), auth_type=auth_type, auth_data=auth)
    ours = encode_ipv4_packet(advert, src=src, dst=dst)
    theirs = bytes(
        scapy_inet.IP(src=str(src), dst=str(dst), ttl=255, tos=0xC0, id=0)
        / scapy_vrrp.VRRP(
            vrid=vrid,
            priority=prio,
            adv=secs,
            authtype=auth_type,
            addrlist=[str(a) for a in addrs],
            auth1=int.from_bytes(auth[:4], "big"),
            auth2=int.from_bytes(auth[4:], "big"),
        )
    )
    assert ours == theirs
    parsed = scapy_inet.IP(ours)[scapy_vrrp.VRRP]
    assert parsed.chksum == decode_ipv4_packet(ours).advert.checksum
    assert parsed.addrlist == [str(a) for a in addrs]


@small
@given(
    src=v4,
    dst=v4,
    vrid=st.integers(0, 255),
    prio=st.integers(0, 255),
    interval=st.integers(0, 4095),
    addrs=st.lists(v4, max_size=20),
)
def test_v3_ipv4_pseudo_header_matches_scapy(
    src: IPv4Address,
    dst: IPv4Address,
    vrid: int,
    prio: int,
    interval: int,
    addrs: list[IPv4Address],
) -> None:
    advert = Advert(3, vrid, prio, interval, tuple(addrs))
    ours = encode_ipv4_packet(advert, src=src, dst=dst, checksum_form=ChecksumForm.PSEUDO_HEADER)
    theirs = bytes(
        scapy_inet.IP(src=str(src), dst=str(dst), ttl=255, tos=0xC0, id=0)
        / scapy_vrrp.VRRPv3(
            vrid=vrid, priority=prio, adv=interval, addrlist=[str(a) for a in addrs]
        )
    )
    assert ours == theirs


@small
@given(
    src=v6,
    dst=v6,
    vrid=st.integers(0, 255),
    prio=st.integers(0, 255),
    interval=st.integers(0, 4095),
    addrs=st.lists(v6, max_size=20),
)
def test_v3_ipv6_matches_scapy(
    src: IPv6Address,
    dst: IPv6Address,
    vrid: int,
    prio: int,
    interval: int,
    addrs: list[IPv6Address],
) -> None:
    advert = Advert(3, vrid, prio, interval, tuple(addrs), family=6)
    ours = encode_ipv6_packet(advert, src=src, dst=dst)
    theirs = bytes(
        scapy_inet6.IPv6(src=str(src), dst=str(dst), hlim=255, tc=0xC0)
        / scapy_vrrp.VRRPv3(
            vrid=vrid, priority=prio, adv=interval, addrlist=[str(a) for a in addrs]
        )
    )
    assert ours == theirs
    parsed = scapy_inet6.IPv6(ours)[scapy_vrrp.VRRPv3]
    assert parsed.chksum == decode_ipv6_packet(ours).advert.checksum


# --- tshark ---------------------------------------------------------------------------------

TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")

SRC4 = IPv4Address("192.0.2.10")
PEER4 = IPv4Address("192.0.2.20")
SRC6 = IPv6Address("fe80::10")
ADDRS4 = (IPv4Address("10.1.2.3"), IPv4Address("10.1.2.4"))
ADDRS6 = (IPv6Address("fe80::200:5eff:fe00:201"), IPv6Address("2001:db8::1"))


def sample_frames(form4: ChecksumForm) -> list[bytes]:
    """v2 without/with PASS, v3/IPv4 multicast and unicast in ``form4``, v3/IPv6."""
    v2a = Advert(2, 7, 100, 100, ADDRS4)
    v2b = Advert(2, 8, 200, 300, ADDRS4[:1], auth_type=1, auth_data=b"pyvrrpd")
    v3a = Advert(3, 9, 150, 100, ADDRS4)
    v3b = Advert(3, 10, 255, 25, ())
    v36 = Advert(3, 11, 120, 100, ADDRS6, family=6)
    ip4 = [
        encode_ipv4_packet(v2a, src=SRC4, dst=VRRP_MCAST_GROUP4),
        encode_ipv4_packet(v2b, src=SRC4, dst=PEER4),
        encode_ipv4_packet(v3a, src=SRC4, dst=VRRP_MCAST_GROUP4, checksum_form=form4),
        encode_ipv4_packet(v3b, src=SRC4, dst=PEER4, checksum_form=form4),
    ]
    ip6 = encode_ipv6_packet(v36, src=SRC6, dst=VRRP_MCAST_GROUP6)
    return [ethernet_frame(p) for p in ip4] + [
        ethernet_frame(ip6, ethertype=ETH_P_IPV6, dst_mac=bytes.fromhex("333300000012"))
    ]


def tshark_fields(path: Path, *options: str) -> list[list[str]]:
    assert TSHARK is not None
    fields = ["vrrp.version", "vrrp.virt_rtr_id", "vrrp.prio", "vrrp.addr_count"]
    fields += ["vrrp.checksum.status", "vrrp.ip_addr", "vrrp.ipv6_addr", "vrrp.auth_string"]
    cmd = [TSHARK, "-n", "-r", str(path), "-T", "fields", *options]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


@needs_tshark
def test_tshark_finds_our_checksums_good(tmp_path: Path) -> None:
    path = tmp_path / "ours.pcap"
    path.write_bytes(write_pcap(sample_frames(ChecksumForm.PSEUDO_HEADER)))
    rows = tshark_fields(path)
    assert rows == [
        ["2", "7", "100", "2", "1", "10.1.2.3,10.1.2.4", "", ""],
        ["2", "8", "200", "1", "1", "10.1.2.3", "", "pyvrrpd"],
        ["3", "9", "150", "2", "1", "10.1.2.3,10.1.2.4", "", ""],
        ["3", "10", "255", "0", "1", "", "", ""],
        ["3", "11", "120", "2", "1", "", "fe80::200:5eff:fe00:201,2001:db8::1", ""],
    ]


@needs_tshark
def test_tshark_agrees_on_the_message_only_form(tmp_path: Path) -> None:
    path = tmp_path / "as_v2.pcap"
    path.write_bytes(write_pcap(sample_frames(ChecksumForm.MESSAGE)))
    as_v2 = ("-o", "vrrp.v3_checksum_as_in_v2:TRUE")
    # 1 = good, 0 = bad: v3/IPv4 message-only checksums are good only with the option;
    # v2 is unaffected and IPv6 always keeps its pseudo-header.
    assert [r[4] for r in tshark_fields(path, *as_v2)] == ["1", "1", "1", "1", "1"]
    assert [r[4] for r in tshark_fields(path)] == ["1", "1", "0", "0", "1"]
