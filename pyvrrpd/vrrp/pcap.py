"""Minimal pure pcap (libpcap classic format) reader/writer, for captures and tests.

Reads little/big-endian, micro/nanosecond files; strips Ethernet (with stacked VLAN
tags), Linux cooked (SLL), raw-IP and Cisco-style Frame Relay link headers down to the
IP datagram.  Writes microsecond little-endian files.  Works on bytes, not files.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_FRELAY = 107
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
_VLAN_TYPES = (0x8100, 0x88A8, 0x9100)

_MAGIC_US = 0xA1B2C3D4
_MAGIC_NS = 0xA1B23C4D


class PcapError(ValueError):
    """The pcap data is malformed."""


@dataclass(frozen=True, slots=True)
class PcapRecord:
    """One captured frame: timestamp, original length and the captured bytes."""

    ts_sec: int
    ts_frac: int
    orig_len: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Pcap:
    """A parsed capture file."""

    linktype: int
    snaplen: int
    nanoseconds: bool
    records: tuple[PcapRecord, ...]


def read_pcap(data: bytes) -> Pcap:
    """Parse a classic pcap file's bytes; raise :class:`PcapError` if malformed."""
    if len(data) < 24:
        raise PcapError("shorter than a pcap global header")
    for order in ("<", ">"):
        (magic,) = struct.unpack_from(order + "I", data)
        if magic in (_MAGIC_US, _MAGIC_NS):
            break
    else:
        raise PcapError(f"not a pcap file (magic {data[:4].hex()})")
    _maj, _min, _zone, _sigfigs, snaplen, linktype = struct.unpack_from(order + "HHiIII", data, 4)
    rec = struct.Struct(order + "IIII")
    records = []
    pos = 24
    while pos < len(data):
        if pos + 16 > len(data):
            raise PcapError(f"truncated record header at offset {pos}")
        sec, frac, caplen, orig = rec.unpack_from(data, pos)
        pos += 16
        if pos + caplen > len(data):
            raise PcapError(f"truncated record data at offset {pos}")
        records.append(PcapRecord(sec, frac, orig, bytes(data[pos : pos + caplen])))
        pos += caplen
    return Pcap(linktype & 0xFFFF, snaplen, magic == _MAGIC_NS, tuple(records))


def _ethertype_payload(ethertype: int, rest: bytes) -> tuple[int, bytes] | None:
    while ethertype in _VLAN_TYPES and len(rest) >= 4:
        ethertype = int.from_bytes(rest[2:4], "big")
        rest = rest[4:]
    if ethertype == ETH_P_IP:
        return 4, rest
    if ethertype == ETH_P_IPV6:
        return 6, rest
    return None


def ip_datagram(linktype: int, frame: bytes) -> tuple[int, bytes] | None:
    """``(ip_version, bytes from the IP header on)`` of a frame, or None if not IP."""
    if linktype == LINKTYPE_ETHERNET:
        if len(frame) < 14:
            return None
        return _ethertype_payload(int.from_bytes(frame[12:14], "big"), frame[14:])
    if linktype == LINKTYPE_LINUX_SLL:
        if len(frame) < 16:
            return None
        return _ethertype_payload(int.from_bytes(frame[14:16], "big"), frame[16:])
    if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6):
        if not frame:
            return None
        return frame[0] >> 4, frame
    if linktype == LINKTYPE_FRELAY:
        # Q.922 address: octets up to the one with the EA (low) bit set.
        for end in range(min(len(frame), 4)):
            if frame[end] & 1:
                rest = frame[end + 1 :]
                if len(rest) >= 2 and rest[0] == 0x03 and rest[1] in (0xCC, 0x8E):
                    return (4 if rest[1] == 0xCC else 6), rest[2:]  # RFC 2427 NLPID
                if len(rest) >= 2:  # Cisco HDLC style: an ethertype
                    return _ethertype_payload(int.from_bytes(rest[:2], "big"), rest[2:])
                return None
        return None
    return None


def ethernet_frame(
    payload: bytes,
    *,
    ethertype: int = ETH_P_IP,
    dst_mac: bytes = bytes.fromhex("01005e000012"),
    src_mac: bytes = bytes.fromhex("00005e000101"),
) -> bytes:
    """An Ethernet II frame around ``payload`` (no FCS, no padding)."""
    return dst_mac + src_mac + ethertype.to_bytes(2, "big") + payload


def write_pcap(
    frames: Iterable[bytes], *, linktype: int = LINKTYPE_ETHERNET, snaplen: int = 65535
) -> bytes:
    """A little-endian microsecond pcap file holding ``frames`` (timestamps 1 s apart)."""
    out = [struct.pack("<IHHiIII", _MAGIC_US, 2, 4, 0, 0, snaplen, linktype)]
    for i, frame in enumerate(frames):
        out.append(struct.pack("<IIII", i, 0, len(frame), len(frame)))
        out.append(frame)
    return b"".join(out)
