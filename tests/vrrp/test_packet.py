"""Unit and property tests of the pure VRRP codec (pyvrrpd.vrrp.packet*)."""

from __future__ import annotations

import dataclasses
import struct
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyvrrpd.vrrp.packet import (
    VRRP_MCAST_GROUP4,
    VRRP_MCAST_GROUP6,
    Advert,
    AuthType,
    ChecksumForm,
    DropReason,
    PacketError,
    checksum_form,
    compute_checksum,
    decode_advert,
    decode_ipv4_packet,
    decode_ipv6_packet,
    encode_advert,
    encode_ipv4_packet,
    encode_ipv6_packet,
    internet_checksum,
    verify_checksum,
)

SRC4 = IPv4Address("192.0.2.1")
PEER4 = IPv4Address("192.0.2.2")
SRC6 = IPv6Address("fe80::1")


def ref_checksum(data: bytes) -> int:
    """RFC 1071 by the book: add 16-bit words with end-around carry, complement."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def v2(**kw: object) -> Advert:
    base: dict[str, object] = dict(
        version=2, vrid=51, priority=150, max_adver_int=100,
        addresses=(IPv4Address("10.0.0.100"),), auth_type=AuthType.PASS, auth_data=b"secret\0\0",
    )  # fmt: skip
    base.update(kw)
    return Advert(**base)  # type: ignore[arg-type]


def v3(family: int = 4, **kw: object) -> Advert:
    addrs = (IPv4Address("10.0.0.100"),) if family == 4 else (IPv6Address("2001:db8::100"),)
    base: dict[str, object] = dict(
        version=3, vrid=51, priority=150, max_adver_int=100, addresses=addrs, family=family
    )
    base.update(kw)
    return Advert(**base)  # type: ignore[arg-type]


# --- checksum arithmetic ------------------------------------------------------------------


def test_internet_checksum_rfc1071_example() -> None:
    # RFC 1071 section 3 sums 0001 f203 f4f5 f6f7 to 0xddf2; the checksum is its complement.
    assert internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D


@given(st.binary(max_size=300))
def test_internet_checksum_matches_reference(data: bytes) -> None:
    assert internet_checksum(data) == ref_checksum(data)


# --- encoding layout ----------------------------------------------------------------------


def test_v2_layout() -> None:
    msg = encode_advert(v2(addresses=(IPv4Address("10.0.0.100"), IPv4Address("10.0.0.101"))))
    assert msg[:6] == bytes([0x21, 51, 150, 2, AuthType.PASS, 1])
    assert msg[8:16] == bytes([10, 0, 0, 100, 10, 0, 0, 101])
    assert msg[16:] == b"secret\0\0"
    assert len(msg) == 24
    assert int.from_bytes(msg[6:8], "big") == ref_checksum(msg[:6] + b"\0\0" + msg[8:])


def test_v2_short_password_is_zero_padded() -> None:
    msg = encode_advert(v2(auth_data=b"pw"))
    assert msg[-8:] == b"pw\0\0\0\0\0\0"
    assert decode_advert(msg).auth_data == b"pw\0\0\0\0\0\0"


def test_v3_layout_and_interval_bits() -> None:
    msg = encode_advert(v3(max_adver_int=4095, rsvd=0), src=SRC4, dst=VRRP_MCAST_GROUP4)
    assert msg[:6] == bytes([0x31, 51, 150, 1, 0x0F, 0xFF])
    assert msg[8:] == bytes([10, 0, 0, 100])
    assert decode_advert(msg).max_adver_int == 4095


def test_v3_reserved_bits_survive_a_round_trip() -> None:
    msg = bytearray(encode_advert(v3(), src=SRC4, dst=VRRP_MCAST_GROUP4))
    msg[4] |= 0xA0
    advert = decode_advert(bytes(msg))
    assert advert.rsvd == 0xA and advert.max_adver_int == 100
    assert encode_advert(advert, raw_checksum=True) == bytes(msg)


def test_v3_ipv6_checksum_is_pseudo_header_and_matches_reference() -> None:
    advert = v3(6, addresses=(IPv6Address("fe80::1:2"), IPv6Address("2001:db8::9")))
    msg = encode_advert(advert, src=SRC6, dst=VRRP_MCAST_GROUP6)
    phdr = SRC6.packed + VRRP_MCAST_GROUP6.packed + struct.pack("!I3xB", len(msg), 112)
    assert int.from_bytes(msg[6:8], "big") == ref_checksum(phdr + msg[:6] + b"\0\0" + msg[8:])
    assert checksum_form(msg, SRC6, VRRP_MCAST_GROUP6) is ChecksumForm.PSEUDO_HEADER
    # A message-only checksum is never accepted over IPv6.
    plain = encode_advert(advert, checksum_form=ChecksumForm.MESSAGE)
    assert plain != msg
    assert checksum_form(plain, SRC6, VRRP_MCAST_GROUP6) is None


# --- the three IPv4 VRRPv3 checksum forms -------------------------------------------------


def test_three_forms_differ_and_are_told_apart_unicast() -> None:
    advert = v3()
    msgs = {
        form: encode_advert(advert, src=SRC4, dst=PEER4, checksum_form=form)
        for form in ChecksumForm
    }
    assert len({m[6:8] for m in msgs.values()}) == 3
    for form, msg in msgs.items():
        assert checksum_form(msg, SRC4, PEER4) is form
        assert verify_checksum(msg, SRC4, PEER4, form)
        for other in set(ChecksumForm) - {form}:
            assert not verify_checksum(msg, SRC4, PEER4, other)


def test_old_unicast_uses_the_multicast_group_as_pseudo_destination() -> None:
    advert = v3()
    old = encode_advert(advert, src=SRC4, dst=PEER4, checksum_form=ChecksumForm.OLD_UNICAST)
    as_mcast = encode_advert(advert, src=SRC4, dst=VRRP_MCAST_GROUP4)
    assert old == as_mcast
    # keepalived's vrrp_mcast_group4 moves the group, and the old checksum with it.
    group = IPv4Address("224.0.0.99")
    moved = encode_advert(
        advert, src=SRC4, dst=PEER4, checksum_form=ChecksumForm.OLD_UNICAST, mcast_group=group
    )
    assert moved == encode_advert(advert, src=SRC4, dst=group)
    assert checksum_form(moved, SRC4, PEER4) is None
    assert checksum_form(moved, SRC4, PEER4, mcast_group=group) is ChecksumForm.OLD_UNICAST


def test_expected_form_wins_when_two_forms_verify() -> None:
    # Multicast: the old unicast form and the pseudo-header form coincide.
    msg = encode_advert(v3(), src=SRC4, dst=VRRP_MCAST_GROUP4)
    assert checksum_form(msg, SRC4, VRRP_MCAST_GROUP4) is ChecksumForm.PSEUDO_HEADER
    got = checksum_form(msg, SRC4, VRRP_MCAST_GROUP4, expected=ChecksumForm.OLD_UNICAST)
    assert got is ChecksumForm.OLD_UNICAST


def test_v2_verifies_only_as_message() -> None:
    msg = encode_advert(v2())
    assert checksum_form(msg, SRC4, PEER4) is ChecksumForm.MESSAGE
    assert checksum_form(msg, SRC4, PEER4, expected=ChecksumForm.PSEUDO_HEADER) is (
        ChecksumForm.MESSAGE
    )
    assert not verify_checksum(msg, SRC4, PEER4, ChecksumForm.PSEUDO_HEADER)


def test_compute_checksum_ignores_the_carried_checksum() -> None:
    msg = encode_advert(v3(), src=SRC4, dst=PEER4)
    dirty = msg[:6] + b"\xde\xad" + msg[8:]
    carried = int.from_bytes(msg[6:8], "big")
    assert compute_checksum(dirty, src=SRC4, dst=PEER4, form=ChecksumForm.PSEUDO_HEADER) == carried
    with pytest.raises(ValueError):
        compute_checksum(msg, form=ChecksumForm.PSEUDO_HEADER)


# --- decode errors ------------------------------------------------------------------------


def reason_of(data: bytes, family: int = 4) -> DropReason:
    with pytest.raises(PacketError) as info:
        decode_advert(data, family=family)
    return info.value.reason


def test_decode_drop_reasons() -> None:
    good2 = encode_advert(v2())
    good3 = encode_advert(v3(), src=SRC4, dst=PEER4)
    assert reason_of(b"") is DropReason.TRUNCATED
    assert reason_of(good3[:7]) is DropReason.TRUNCATED
    assert reason_of(bytes([0x11]) + good3[1:]) is DropReason.BAD_VERSION
    assert reason_of(good2, family=6) is DropReason.BAD_VERSION  # VRRPv2 has no IPv6
    assert reason_of(bytes([0x32]) + good3[1:]) is DropReason.BAD_TYPE
    assert reason_of(good3 + b"\0\0\0\0") is DropReason.BAD_ADDR_COUNT  # one address too many
    assert reason_of(good3[:3] + b"\x02" + good3[4:]) is DropReason.BAD_ADDR_COUNT
    assert reason_of(good3[:3] + b"\x05" + good3[4:] + b"\0\0") is DropReason.TRUNCATED
    assert reason_of(good3 + b"\0") is DropReason.BAD_LENGTH
    assert reason_of(good2[:-1]) is DropReason.TRUNCATED  # auth data cut short
    assert reason_of(good3, family=6) is DropReason.TRUNCATED  # 4-byte address read as IPv6


def test_decoders_accept_bytearray_and_memoryview() -> None:
    pkt = encode_ipv6_packet(v3(6), src=SRC6, dst=VRRP_MCAST_GROUP6)
    want = decode_ipv6_packet(pkt)
    for buf in (bytearray(pkt), memoryview(pkt)):
        assert decode_ipv6_packet(buf) == want  # type: ignore[arg-type]
        assert decode_advert(buf[40:], family=6) == want.advert  # type: ignore[arg-type]
    pkt4 = encode_ipv4_packet(v2(), src=SRC4, dst=PEER4)
    assert decode_ipv4_packet(bytearray(pkt4)) == decode_ipv4_packet(pkt4)  # type: ignore[arg-type]


def test_packet_error_carries_reason_and_message() -> None:
    with pytest.raises(PacketError) as info:
        decode_advert(b"\x31")
    assert info.value.reason is DropReason.TRUNCATED
    assert str(info.value).startswith("truncated: ")


# --- IPv4 / IPv6 headers ------------------------------------------------------------------


def ipv4(payload: bytes) -> bytearray:
    advert = decode_advert(payload)
    return bytearray(encode_ipv4_packet(advert, src=SRC4, dst=PEER4, raw_checksum=True))


def test_encode_ipv4_packet_defaults() -> None:
    pkt = encode_ipv4_packet(v3(), src=SRC4, dst=VRRP_MCAST_GROUP4)
    assert pkt[0] == 0x45 and pkt[1] == 0xC0 and pkt[8] == 255 and pkt[9] == 112
    assert int.from_bytes(pkt[2:4], "big") == len(pkt) == 32
    assert ref_checksum(pkt[:20]) == 0  # header checksum verifies
    header, payload, advert, ah = decode_ipv4_packet(pkt)
    assert (header.src, header.dst, header.ttl, header.tos) == (SRC4, VRRP_MCAST_GROUP4, 255, 0xC0)
    assert advert == dataclasses.replace(v3(), checksum=advert.checksum)
    assert ah == b"" and payload == pkt[20:]
    assert checksum_form(payload, header.src, header.dst) is ChecksumForm.PSEUDO_HEADER


def test_ipv4_padding_past_total_length_is_ignored() -> None:
    pkt = encode_ipv4_packet(v2(), src=SRC4, dst=VRRP_MCAST_GROUP4)
    assert decode_ipv4_packet(pkt + b"\0" * 6).payload == pkt[20:]


def test_ipv4_options_are_skipped() -> None:
    payload = encode_advert(v2())
    hdr = bytearray(ipv4(payload)[:20])
    hdr[0] = 0x46
    hdr[2:4] = (24 + len(payload)).to_bytes(2, "big")
    got = decode_ipv4_packet(bytes(hdr) + b"\x94\x04\0\0" + payload)  # router alert
    assert got.header.options == b"\x94\x04\0\0" and got.payload == payload


def ip_reason(data: bytes | bytearray) -> DropReason:
    with pytest.raises(PacketError) as info:
        decode_ipv4_packet(bytes(data))
    return info.value.reason


def test_ipv4_drop_reasons() -> None:
    payload = encode_advert(v2())
    good = ipv4(payload)
    assert ip_reason(good[:19]) is DropReason.TRUNCATED
    assert ip_reason(good[:-1]) is DropReason.TRUNCATED  # total length > buffer
    assert ip_reason(bytes([0x65]) + good[1:]) is DropReason.BAD_IP_HEADER
    assert ip_reason(bytes([0x44]) + good[1:]) is DropReason.BAD_IP_HEADER
    assert ip_reason(bytes([0x4F]) + good[1:]) is DropReason.TRUNCATED  # IHL 60 > 36 bytes
    assert ip_reason(good[:2] + b"\0\x10" + good[4:]) is DropReason.BAD_IP_HEADER
    assert ip_reason(good[:6] + b"\x20\x00" + good[8:]) is DropReason.FRAGMENT  # MF
    assert ip_reason(good[:6] + b"\x00\x01" + good[8:]) is DropReason.FRAGMENT  # offset
    assert ip_reason(good[:9] + b"\x11" + good[10:]) is DropReason.BAD_PROTOCOL
    assert decode_ipv4_packet(bytes(good[:6] + b"\x40\x00" + good[8:])).header.dont_fragment


def test_ipv4_ah_carrying_vrrp() -> None:
    payload = encode_advert(v2(auth_type=AuthType.AH, auth_data=b""))
    ah = bytes([112, 4, 0, 0]) + (0x100).to_bytes(4, "big") + (7).to_bytes(4, "big") + b"\0" * 12
    pkt = ipv4(payload)
    pkt[9] = 51
    pkt[2:4] = (len(pkt) + len(ah)).to_bytes(2, "big")
    got = decode_ipv4_packet(bytes(pkt[:20]) + ah + payload)
    assert got.ah == ah and got.payload == payload
    assert got.advert.auth_type == AuthType.AH
    bad_next = bytes([17]) + ah[1:]
    assert ip_reason(bytes(pkt[:20]) + bad_next + payload) is DropReason.BAD_PROTOCOL
    short = bytes(pkt[:20]) + ah[:10]
    short = short[:2] + len(short).to_bytes(2, "big") + short[4:]
    assert ip_reason(short) is DropReason.TRUNCATED


def test_ipv6_packet_round_trip_and_drop_reasons() -> None:
    advert = v3(6)
    pkt = encode_ipv6_packet(advert, src=SRC6, dst=VRRP_MCAST_GROUP6)
    assert pkt[0] >> 4 == 6 and pkt[6] == 112 and pkt[7] == 255
    header, payload, got = decode_ipv6_packet(pkt)
    assert header.traffic_class == 0xC0 and header.payload_length == len(payload) == 24
    assert got == dataclasses.replace(advert, checksum=got.checksum)
    assert checksum_form(payload, header.src, header.dst) is ChecksumForm.PSEUDO_HEADER

    def reason(data: bytes) -> DropReason:
        with pytest.raises(PacketError) as info:
            decode_ipv6_packet(data)
        return info.value.reason

    assert reason(pkt[:39]) is DropReason.TRUNCATED
    assert reason(pkt[:-1]) is DropReason.TRUNCATED
    assert reason(b"\x40" + pkt[1:]) is DropReason.BAD_IP_HEADER
    assert reason(pkt[:4] + b"\0\0" + pkt[6:]) is DropReason.BAD_IP_HEADER
    assert reason(pkt[:6] + b"\x00" + pkt[7:]) is DropReason.BAD_PROTOCOL  # hop-by-hop


# --- encode validation --------------------------------------------------------------------


@pytest.mark.parametrize(
    "advert",
    [
        v2(max_adver_int=150),  # v2 intervals are whole seconds
        v2(max_adver_int=25600),
        v2(auth_data=b"123456789"),
        v2(family=6, addresses=()),
        v2(rsvd=1),
        v3(max_adver_int=4096),
        v3(auth_type=1),
        v3(rsvd=16),
        v3(vrid=256),
        v3(priority=-1),
        v3(version=1),
        v3(family=5, addresses=()),
        v3(addresses=(IPv6Address("::1"),)),
        v3(addresses=tuple(IPv4Address(i) for i in range(256))),
    ],
)
def test_encode_rejects_invalid_adverts(advert: Advert) -> None:
    with pytest.raises(ValueError):
        encode_advert(advert, src=SRC4, dst=PEER4)


# --- properties ---------------------------------------------------------------------------

IPAddr = IPv4Address | IPv6Address
ipv4s: st.SearchStrategy[IPAddr] = st.builds(IPv4Address, st.integers(0, 2**32 - 1))
ipv6s: st.SearchStrategy[IPAddr] = st.builds(IPv6Address, st.integers(0, 2**128 - 1))


@st.composite
def adverts(draw: st.DrawFn) -> tuple[Advert, IPAddr, ChecksumForm]:
    version = draw(st.sampled_from([2, 3]))
    family = 4 if version == 2 else draw(st.sampled_from([4, 6]))
    addrs = ipv4s if family == 4 else ipv6s
    common = dict(
        vrid=draw(st.integers(0, 255)),
        priority=draw(st.integers(0, 255)),
        addresses=tuple(draw(st.lists(addrs, max_size=255))),
        family=family,
    )
    if version == 2:
        advert = Advert(
            version=2,
            max_adver_int=100 * draw(st.integers(0, 255)),
            auth_type=draw(st.integers(0, 255)),
            auth_data=draw(st.binary(min_size=8, max_size=8)),
            **common,  # type: ignore[arg-type]
        )
        form = ChecksumForm.MESSAGE
    else:
        advert = Advert(
            version=3,
            max_adver_int=draw(st.integers(0, 4095)),
            rsvd=draw(st.integers(0, 15)),
            **common,  # type: ignore[arg-type]
        )
        form = (
            draw(st.sampled_from(list(ChecksumForm))) if family == 4 else ChecksumForm.PSEUDO_HEADER
        )
    return advert, draw(addrs), form


@settings(max_examples=300)
@given(adverts(), st.data())
def test_round_trip(case: tuple[Advert, IPAddr, ChecksumForm], data: st.DataObject) -> None:
    advert, src, form = case
    dst = data.draw(ipv4s if advert.family == 4 else ipv6s)
    msg = encode_advert(advert, src=src, dst=dst, checksum_form=form)
    assert len(msg) == advert.length
    got = decode_advert(msg, family=advert.family)
    assert got == dataclasses.replace(advert, checksum=int.from_bytes(msg[6:8], "big"))
    assert encode_advert(got, raw_checksum=True) == msg
    assert checksum_form(msg, src, dst, expected=form) is form
    assert verify_checksum(msg, src, dst, form)
    if advert.family == 4:
        assert isinstance(src, IPv4Address) and isinstance(dst, IPv4Address)
        pkt = encode_ipv4_packet(advert, src=src, dst=dst, checksum_form=form)
        assert decode_ipv4_packet(pkt) == (decode_ipv4_packet(pkt).header, msg, got, b"")
    else:
        assert isinstance(src, IPv6Address) and isinstance(dst, IPv6Address)
        pkt = encode_ipv6_packet(advert, src=src, dst=dst)
        assert decode_ipv6_packet(pkt).advert == got


def only_packet_errors(data: bytes) -> None:
    for family in (4, 6):
        try:
            advert = decode_advert(data, family=family)
        except PacketError as exc:
            assert isinstance(exc.reason, DropReason)
        else:  # anything that decodes re-encodes to the same bytes
            assert encode_advert(advert, raw_checksum=True) == data
    for decode in (decode_ipv4_packet, decode_ipv6_packet):
        try:
            decode(data)
        except PacketError as exc:
            assert isinstance(exc.reason, DropReason)
    checksum_form(data, SRC4, PEER4)
    checksum_form(data, SRC6, VRRP_MCAST_GROUP6, expected=ChecksumForm.OLD_UNICAST)


@settings(max_examples=1000)
@given(st.binary(max_size=120))
def test_arbitrary_bytes_raise_only_packet_error(data: bytes) -> None:
    only_packet_errors(data)


@settings(max_examples=500)
@given(adverts(), st.data())
def test_mutated_packets_raise_only_packet_error(
    case: tuple[Advert, IPAddr, ChecksumForm], data: st.DataObject
) -> None:
    advert, src, _form = case
    if advert.family == 4:
        assert isinstance(src, IPv4Address)
        pkt = bytearray(encode_ipv4_packet(advert, src=src, dst=VRRP_MCAST_GROUP4))
    else:
        assert isinstance(src, IPv6Address)
        pkt = bytearray(encode_ipv6_packet(advert, src=src, dst=VRRP_MCAST_GROUP6))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(pkt) - 1))
        pkt[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(pkt)))
    for blob in (bytes(pkt), bytes(pkt[:cut])):
        only_packet_errors(blob)
        hlen = 20 if advert.family == 4 else 40
        only_packet_errors(blob[hlen:])
