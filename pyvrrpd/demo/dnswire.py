"""Just enough DNS wire format for the demo's responders and client (pure: no I/O).

A responder answers TXT queries with its own name (so the client sees which real server
answered), A queries with a fixed address (so the directors' ``DNS_CHECK type A`` passes)
and anything else with an empty NOERROR answer.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

HEADER = struct.Struct("!HHHHHH")
RR_FIXED = struct.Struct("!HHIH")  # type, class, ttl, rdlength
TYPE_A = 1
TYPE_TXT = 16
CLASS_IN = 1
FLAG_QR = 0x8000
FLAG_RD = 0x0100
FLAG_AA = 0x0400
RCODE_FORMERR = 1


class DnsFormatError(ValueError):
    """The bytes are not a DNS message we can read."""


@dataclass(frozen=True, slots=True)
class Question:
    """The header ID and flags and the first question of a message."""

    ident: int
    flags: int
    name: str
    qtype: int
    qclass: int
    end: int  # offset just past the question


def encode_name(name: str) -> bytes:
    """``www.example.org`` as length-prefixed labels ending in the root label."""
    out = bytearray()
    for label in name.strip(".").split("."):
        if not label:
            continue
        raw = label.encode("ascii")
        if len(raw) > 63:
            raise ValueError(f"label too long: {label!r}")
        out += bytes([len(raw)]) + raw
    return bytes(out + b"\0")


def encode_query(ident: int, name: str, qtype: int) -> bytes:
    """A query with recursion desired and one question."""
    return (
        HEADER.pack(ident, FLAG_RD, 1, 0, 0, 0)
        + encode_name(name)
        + struct.pack("!HH", qtype, CLASS_IN)
    )


def _skip_name(data: bytes, offset: int) -> tuple[str, int]:
    """Read a name at `offset` (a compression pointer ends it); return it and the next offset."""
    labels: list[str] = []
    while True:
        if offset >= len(data):
            raise DnsFormatError("name runs past the end")
        length = data[offset]
        if length & 0xC0 == 0xC0:
            return ".".join(labels), offset + 2
        if length & 0xC0:
            raise DnsFormatError("bad label type")
        offset += 1
        if length == 0:
            return ".".join(labels), offset
        labels.append(data[offset : offset + length].decode("ascii", "replace"))
        offset += length


def decode_question(data: bytes) -> Question:
    """The header and first question of `data`; raises DnsFormatError."""
    if len(data) < HEADER.size:
        raise DnsFormatError("shorter than a header")
    ident, flags, qdcount, _an, _ns, _ar = HEADER.unpack_from(data)
    if qdcount < 1:
        raise DnsFormatError("no question")
    name, offset = _skip_name(data, HEADER.size)
    if offset + 4 > len(data):
        raise DnsFormatError("question runs past the end")
    qtype, qclass = struct.unpack_from("!HH", data, offset)
    return Question(ident, flags, name.lower(), qtype, qclass, offset + 4)


def txt_rdata(text: str) -> bytes:
    """TXT record data holding one string."""
    raw = text.encode("utf-8")[:255]
    return bytes([len(raw)]) + raw


def reply(data: bytes, who: str, a_answer: str = "192.0.2.100") -> bytes:
    """The responder's answer to the query `data` (FORMERR when it cannot be read)."""
    try:
        q = decode_question(data)
    except DnsFormatError:
        ident = struct.unpack_from("!H", data)[0] if len(data) >= 2 else 0
        return HEADER.pack(ident, FLAG_QR | RCODE_FORMERR, 0, 0, 0, 0)
    question = data[HEADER.size : q.end]
    rdata = b""
    if q.qclass == CLASS_IN and q.qtype == TYPE_TXT:
        rdata = txt_rdata(who)
    elif q.qclass == CLASS_IN and q.qtype == TYPE_A:
        rdata = ipaddress.IPv4Address(a_answer).packed
    flags = FLAG_QR | FLAG_AA | (q.flags & FLAG_RD)
    header = HEADER.pack(q.ident, flags, 1, 1 if rdata else 0, 0, 0)
    answer = b""
    if rdata:
        answer = struct.pack("!H", 0xC000 | HEADER.size) + RR_FIXED.pack(
            q.qtype, CLASS_IN, 0, len(rdata)
        )
        answer += rdata
    return header + question + answer


def decode_txt_answer(data: bytes, ident: int) -> str | None:
    """The first TXT string of the answer to query `ident`; None if `data` is not that answer."""
    try:
        q = decode_question(data)
    except DnsFormatError:
        return None
    if q.ident != ident or not q.flags & FLAG_QR:
        return None
    ancount = HEADER.unpack_from(data)[3]
    offset = q.end
    for _ in range(ancount):
        _name, offset = _skip_name(data, offset)
        if offset + RR_FIXED.size > len(data):
            return None
        rtype, _cls, _ttl, rdlen = RR_FIXED.unpack_from(data, offset)
        offset += RR_FIXED.size
        rdata = data[offset : offset + rdlen]
        offset += rdlen
        if rtype == TYPE_TXT and rdata:
            return rdata[1 : 1 + rdata[0]].decode("utf-8", "replace")
    return None
