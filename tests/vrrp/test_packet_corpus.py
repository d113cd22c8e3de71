"""The VRRP codec against outside truth: tcpdump's capture corpus and Wireshark's decode."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

import pytest

from pyvrrpd.vrrp.packet import (
    Advert,
    ChecksumForm,
    DropReason,
    PacketError,
    checksum_form,
    decode_advert,
    decode_ipv4_packet,
    decode_ipv6_packet,
    encode_advert,
    encode_ipv4_packet,
    encode_ipv6_packet,
    verify_checksum,
)
from pyvrrpd.vrrp.pcap import LINKTYPE_ETHERNET, LINKTYPE_FRELAY, ip_datagram, read_pcap

PCAP_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "pcap"

pytestmark = pytest.mark.skipif(
    not (PCAP_DIR / "vrrp.pcap").is_file(),
    reason=f"conformance corpus not found at {PCAP_DIR} (needs ../shared/corpus)",
)


@dataclass(frozen=True)
class Frame:
    number: int
    ip_version: int
    ip: bytes  # from the IP header on


def load_frames(name: str, linktype: int) -> list[Frame]:
    cap = read_pcap((PCAP_DIR / name).read_bytes())
    assert cap.linktype == linktype
    frames = []
    for i, rec in enumerate(cap.records, 1):
        found = ip_datagram(cap.linktype, rec.data)
        assert found is not None, f"{name} frame {i} is not IP"
        frames.append(Frame(i, found[0], found[1]))
    return frames


IPAddr = IPv4Address | IPv6Address


def decode_frame(frame: Frame) -> tuple[bytes, Advert, IPAddr, IPAddr, int]:
    if frame.ip_version == 4:
        h4, payload, advert, ah = decode_ipv4_packet(frame.ip)
        assert ah == b""
        return payload, advert, h4.src, h4.dst, h4.ttl
    h6, payload, advert = decode_ipv6_packet(frame.ip)
    return payload, advert, h6.src, h6.dst, h6.hop_limit


def tshark_rows() -> dict[int, dict[str, str]]:
    with open(PCAP_DIR / "vrrp.pcap.tshark.tsv", newline="") as f:
        return {int(r["frame.number"]): r for r in csv.DictReader(f, delimiter="\t")}


def test_corpus_has_all_frames() -> None:
    frames = load_frames("vrrp.pcap", LINKTYPE_ETHERNET)
    assert len(frames) == 165
    assert sorted(tshark_rows()) == list(range(1, 166))


def test_every_frame_decodes_to_wiresharks_fields() -> None:
    rows = tshark_rows()
    seen = set()
    for frame in load_frames("vrrp.pcap", LINKTYPE_ETHERNET):
        row = rows[frame.number]
        _payload, advert, src, dst, ttl = decode_frame(frame)
        where = f"frame {frame.number}"
        fam = "ip" if frame.ip_version == 4 else "ipv6"
        assert str(src) == row[f"{fam}.src"], where
        assert str(dst) == row[f"{fam}.dst"], where
        assert str(ttl) == row["ip.ttl" if fam == "ip" else "ipv6.hlim"], where
        assert advert.family == frame.ip_version, where
        assert advert.version == int(row["vrrp.version"]), where
        assert advert.type == int(row["vrrp.type"]), where
        assert advert.vrid == int(row["vrrp.virt_rtr_id"]), where
        assert advert.priority == int(row["vrrp.prio"]), where
        assert advert.count == int(row["vrrp.addr_count"]), where
        assert advert.checksum == int(row["vrrp.checksum"], 16), where
        addr_col = "vrrp.ip_addr" if fam == "ip" else "vrrp.ipv6_addr"
        expected = tuple(ip_address(a) for a in row[addr_col].split(","))
        assert advert.addresses == expected, where
        if advert.version == 2:
            assert advert.auth_type == int(row["vrrp.auth_type"]), where
            assert advert.max_adver_int == 100 * int(row["vrrp.adver_int"]), where
            if advert.auth_type == 1:
                assert advert.auth_data.rstrip(b"\0").decode() == row["vrrp.auth_string"], where
        else:
            assert advert.max_adver_int == int(row["vrrp.short_adver_int"]), where
            assert row["vrrp.auth_type"] == "", where
        seen.add((advert.version, advert.family, advert.auth_type, advert.count))
    # The corpus covers what it promises: v2 with and without PASS, v3 over both families.
    assert {(2, 4, 1, 3), (2, 4, 0, 1), (3, 4, 0, 2), (3, 6, 0, 2), (3, 6, 0, 5)} <= seen


def test_every_checksum_verifies_in_the_form_wireshark_used() -> None:
    rows = tshark_rows()
    forms = {}
    for frame in load_frames("vrrp.pcap", LINKTYPE_ETHERNET):
        payload, advert, src, dst, _ttl = decode_frame(frame)
        assert rows[frame.number]["vrrp.checksum.status"] == "1"
        form = checksum_form(payload, src, dst)
        expected = ChecksumForm.MESSAGE if advert.version == 2 else ChecksumForm.PSEUDO_HEADER
        assert form is expected, f"frame {frame.number}: {form}"
        forms[(advert.version, advert.family)] = form
        if advert.version == 3 and advert.family == 4:
            # As the corpus notes say: bad when read as Wireshark's "v3 checksum as in v2".
            assert not verify_checksum(payload, src, dst, ChecksumForm.MESSAGE)
        # A corrupted checksum verifies under no form.
        bad = payload[:6] + bytes([payload[6] ^ 0x01]) + payload[7:]
        assert checksum_form(bad, src, dst) is None, f"frame {frame.number}"
    assert len(forms) == 3


def test_every_frame_reencodes_byte_for_byte() -> None:
    for frame in load_frames("vrrp.pcap", LINKTYPE_ETHERNET):
        payload, advert, src, dst, _ttl = decode_frame(frame)
        form = checksum_form(payload, src, dst)
        assert form is not None
        where = f"frame {frame.number}"
        assert encode_advert(advert, src=src, dst=dst, checksum_form=form) == payload, where
        assert encode_advert(advert, raw_checksum=True) == payload, where
        if frame.ip_version == 4:
            h4 = decode_ipv4_packet(frame.ip).header
            assert isinstance(src, IPv4Address) and isinstance(dst, IPv4Address)
            rebuilt = encode_ipv4_packet(
                advert,
                src=src,
                dst=dst,
                ttl=h4.ttl,
                tos=h4.tos,
                ident=h4.ident,
                checksum_form=form,
            )
            assert rebuilt == frame.ip[: h4.total_length], where
        else:
            h6 = decode_ipv6_packet(frame.ip).header
            assert isinstance(src, IPv6Address) and isinstance(dst, IPv6Address)
            rebuilt = encode_ipv6_packet(
                advert,
                src=src,
                dst=dst,
                hop_limit=h6.hop_limit,
                traffic_class=h6.traffic_class,
                flow_label=h6.flow_label,
            )
            assert rebuilt == frame.ip[: 40 + h6.payload_length], where


MALFORMED = [
    ("vrrp-vrrp_print-oobr.pcap", LINKTYPE_FRELAY, 3),
    ("vrrp-vrrp_print-oobr-2.pcap", LINKTYPE_ETHERNET, 10),
]


@pytest.mark.parametrize(("name", "linktype", "count"), MALFORMED)
def test_malformed_captures_raise_only_packet_error(name: str, linktype: int, count: int) -> None:
    frames = load_frames(name, linktype)
    assert len(frames) == count
    for frame in frames:
        with pytest.raises(PacketError) as info:
            decode_ipv4_packet(frame.ip)
        assert isinstance(info.value.reason, DropReason)
        # The VRRP bytes as the IP total length delimits them are rejected too
        # (tcpdump marks each "[|vrrp]" or prints a bogus version).
        ihl = (frame.ip[0] & 0x0F) * 4
        total = int.from_bytes(frame.ip[2:4], "big")
        src, dst = IPv4Address(frame.ip[12:16]), IPv4Address(frame.ip[16:20])
        for family in (4, 6):
            with pytest.raises(PacketError):
                decode_advert(frame.ip[ihl:total], family=family)
            # Everything captured after the IP header may happen to be well formed,
            # but then it fails every checksum form: nothing gets through.
            rest = frame.ip[ihl:]
            try:
                decode_advert(rest, family=family)
            except PacketError:
                continue
            assert checksum_form(rest, src, dst) is None


def test_malformed_reasons_match_tcpdumps_view() -> None:
    # oobr: IPv4 with options; total length cuts VRRPv2 short ("length 6 [|vrrp]").
    reasons = [_reason(f.ip) for f in load_frames("vrrp-vrrp_print-oobr.pcap", LINKTYPE_FRELAY)]
    assert reasons == [DropReason.TRUNCATED] * 3
    # oobr-2: every datagram has MF set ("flags [+, DF, rsvd]").
    reasons = [_reason(f.ip) for f in load_frames("vrrp-vrrp_print-oobr-2.pcap", LINKTYPE_ETHERNET)]
    assert reasons == [DropReason.FRAGMENT] * 10


def _reason(ip: bytes) -> DropReason:
    try:
        decode_ipv4_packet(ip)
    except PacketError as exc:
        return exc.reason
    raise AssertionError("decoded a malformed datagram")
