"""Inputs for fuzzing: valid adverts and configurations, and mutators that break them.

Shared by the hypothesis tests (``tests/stress/test_fuzz_*.py``, which hand in a
``random.Random`` drawn by hypothesis) and the long mode ``bench/fuzz.py`` (a seeded
``random.Random`` per worker). Everything here is deterministic given the generator.
"""

from __future__ import annotations

import random
import re
import socket
import struct
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from pyvrrpd.vrrp.packet import (
    Advert,
    AuthType,
    ChecksumForm,
    IPAddress,
    checksum_form,
    compute_checksum,
    encode_advert,
    encode_ipv4_packet,
    internet_checksum,
)
from pyvrrpd.vrrp.packet_ip import build_ipv4_header
from pyvrrpd.vrrp.rx_filter import Accepted, Dropped, PeerTtl, RxPolicy, inspect

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / ".." / "shared" / "corpus" / "keepalived-samples"

GROUP4 = IPv4Address("224.0.0.18")
GROUP6 = IPv6Address("ff02::12")
SRC4 = IPv4Address("10.0.0.2")
PEER4 = IPv4Address("10.0.0.3")
OWN4 = IPv4Address("10.0.0.1")
VIP4 = IPv4Address("10.0.0.100")
SRC6 = IPv6Address("fe80::2")
VIP6 = IPv6Address("2001:db8::100")

# ------------------------------------------------------------------ receive path

POLICIES: dict[str, RxPolicy] = {
    "v2-pass": RxPolicy(
        vrid=51,
        version=2,
        family=4,
        advert_int_cs=100,
        checksum=ChecksumForm.MESSAGE,
        mcast_group=GROUP4,
        auth_type=AuthType.PASS,
        auth_data=b"secret",
        own_addresses=frozenset({OWN4}),
        vips=frozenset({VIP4}),
        check_adv_addr=True,
    ),
    "v3-mcast": RxPolicy(
        vrid=51,
        version=3,
        family=4,
        advert_int_cs=10,
        mcast_group=GROUP4,
        own_addresses=frozenset({OWN4}),
        vips=frozenset({VIP4}),
    ),
    "v3-unicast": RxPolicy(
        vrid=51,
        version=3,
        family=4,
        advert_int_cs=10,
        unicast=True,
        peers={SRC4: PeerTtl(), PEER4: PeerTtl(200, 255)},
        check_unicast_src=True,
        own_addresses=frozenset({OWN4}),
        vips=frozenset({VIP4}),
    ),
    "v3-ipv6": RxPolicy(
        vrid=51, version=3, family=6, advert_int_cs=10, mcast_group=GROUP6, vips=frozenset({VIP6})
    ),
}


@dataclass(frozen=True)
class RxCase:
    """One datagram as the transport hands it over, and the policy it meets."""

    policy: str
    data: bytes
    family: int  # socket.AF_INET / AF_INET6
    src: IPAddress
    dst: IPAddress | None
    hop_limit: int | None

    def run(self) -> Accepted | Dropped:
        """The receive filters on this case (the VRID matters: only 51 is known)."""
        pol = POLICIES[self.policy]
        return inspect(
            self.data,
            self.family,
            self.src,
            self.dst,
            self.hop_limit,
            lambda vrid: pol if vrid == pol.vrid else None,
        )


def valid_case(policy: str, rng: random.Random) -> RxCase:
    """A datagram the policy accepts (priority and address list varied)."""
    pol = POLICIES[policy]
    prio = rng.choice((0, 1, 100, 254, 255, rng.randrange(256)))
    if pol.family == 6:
        adv = Advert(3, 51, prio, pol.advert_int_cs, (VIP6,), family=6)
        src, dst = SRC6, GROUP6
        data = encode_advert(adv, src=src, dst=dst)
        return RxCase(policy, data, socket.AF_INET6, src, dst, 255)
    if pol.version == 2:
        adv = Advert(2, 51, prio, 100, (VIP4,), auth_type=AuthType.PASS, auth_data=b"secret")
    else:
        adv = Advert(3, 51, prio, pol.advert_int_cs, (VIP4,))
    src4 = rng.choice((SRC4, PEER4)) if pol.unicast else SRC4
    dst4 = OWN4 if pol.unicast else GROUP4
    form = pol.checksum
    if pol.unicast and pol.version == 3 and rng.random() < 0.3:
        form = ChecksumForm.OLD_UNICAST
    data = encode_ipv4_packet(adv, src=src4, dst=dst4, checksum_form=form, mcast_group=GROUP4)
    return RxCase(policy, data, socket.AF_INET, src4, dst4, None)


def _fix_checksums(case: RxCase, data: bytes) -> bytes:
    """Recompute the VRRP (and IPv4 header) checksums so a mutation reaches deeper filters."""
    if case.family == socket.AF_INET6:
        if len(data) < 8:
            return data
        try:
            c = compute_checksum(data, src=case.src, dst=case.dst, form=ChecksumForm.PSEUDO_HEADER)
        except ValueError:
            return data
        return data[:6] + struct.pack("!H", c) + data[8:]
    if len(data) < 28 or data[0] >> 4 != 4:
        return data
    hlen = (data[0] & 0x0F) * 4
    if hlen < 20 or hlen + 8 > len(data):
        return data
    payload = data[hlen:]
    form = POLICIES[case.policy].checksum
    src = IPv4Address(data[12:16])
    dst = IPv4Address(data[16:20])
    c = compute_checksum(payload, src=src, dst=dst, form=form, mcast_group=GROUP4)
    payload = payload[:6] + struct.pack("!H", c) + payload[8:]
    head = data[:10] + b"\0\0" + data[12:hlen]
    head = head[:10] + struct.pack("!H", internet_checksum(head)) + head[12:]
    return head + payload


_INTERESTING = (0, 1, 2, 3, 4, 8, 15, 16, 20, 0x1F, 0x20, 0x3F, 0x40, 0x7F, 0x80, 0xFE, 0xFF)


def _field_offsets(case: RxCase) -> list[int]:
    """Byte offsets of interesting header fields (IP and VRRP)."""
    vrrp = 0 if case.family == socket.AF_INET6 else 20
    ip = [] if case.family == socket.AF_INET6 else [0, 2, 3, 6, 7, 8, 9, 12, 15, 16, 19]
    return ip + [vrrp + k for k in range(8)] + [vrrp + 8, vrrp + 12, vrrp + 15]


def mutate_rx(case: RxCase, rng: random.Random, rounds: int | None = None) -> RxCase:
    """Apply 1-4 random structure-aware mutations (sometimes with checksums fixed)."""
    data = bytearray(case.data)
    for _ in range(rounds if rounds is not None else rng.randint(1, 4)):
        op = rng.randrange(10)
        n = len(data)
        if op == 0 and n:
            i = rng.randrange(n)
            data[i] ^= 1 << rng.randrange(8)
        elif op == 1 and n:
            data[rng.randrange(n)] = rng.randrange(256)
        elif op == 2:
            offs = [o for o in _field_offsets(case) if o < n]
            if offs:
                data[rng.choice(offs)] = rng.choice(_INTERESTING)
        elif op == 3:
            del data[rng.randrange(n + 1) :]
        elif op == 4:
            data += rng.randbytes(rng.choice((1, 2, 4, 8, 16, rng.randrange(64))))
        elif op == 5 and n:
            i = rng.randrange(n)
            data[i:i] = rng.randbytes(rng.randrange(1, 9))
        elif op == 6 and n:
            i = rng.randrange(n)
            del data[i : i + rng.randrange(1, 9)]
        elif op == 7 and n > 1:  # a nibble in the version/type or IHL byte
            off = 20 if case.family == socket.AF_INET and n > 20 else 0
            data[off] = (rng.randrange(16) << 4) | (data[off] & 0x0F)
        elif op == 8 and n > 23 and case.family == socket.AF_INET:
            data[23] = rng.choice((0, 1, 2, 16, 64, 255))  # VRRP address count
        elif op == 9 and n > 4 and case.family == socket.AF_INET:
            data[2:4] = struct.pack("!H", rng.choice((0, 19, 20, 27, 28, n - 1, n, n + 1, 0xFFFF)))
    out = bytes(data)
    if rng.random() < 0.5:
        out = _fix_checksums(case, out)
    ttl = case.hop_limit
    if case.family == socket.AF_INET6 and rng.random() < 0.2:
        ttl = rng.choice((0, 1, 64, 254, 255))
    return replace(case, data=out, hop_limit=ttl)


def random_case(rng: random.Random) -> RxCase:
    """A mutated valid datagram (most of the time) or plain random bytes."""
    policy = rng.choice(tuple(POLICIES))
    base = valid_case(policy, rng)
    if rng.random() < 0.05:  # another instance's advert (other version, other checksum)
        other = rng.choice([p for p, v in POLICIES.items() if v.family == POLICIES[policy].family])
        base = replace(valid_case(other, rng), policy=policy)
    if rng.random() < 0.15:
        return replace(base, data=rng.randbytes(rng.randrange(80)))
    return mutate_rx(base, rng)


def check_rx_result(case: RxCase, result: object) -> None:
    """What any result must satisfy; an Accepted one must really pass every filter."""
    assert isinstance(result, Accepted | Dropped), f"{type(result).__name__} from inspect"
    if isinstance(result, Dropped):
        assert result.detail
        return
    pol = POLICIES[case.policy]
    adv = result.advert
    src: IPAddress
    dst: IPAddress | None
    ttl: int | None
    assert result.vrid == adv.vrid == pol.vrid
    assert adv.version == pol.version
    assert adv.type == 1
    if case.family == socket.AF_INET:
        assert case.data[0] >> 4 == 4
        hlen = (case.data[0] & 0x0F) * 4
        total = struct.unpack_from("!H", case.data, 2)[0]
        payload = case.data[hlen:total]
        if case.data[9] == 51:  # behind an AH header
            payload = payload[(payload[1] + 2) * 4 :]
        src, dst = IPv4Address(case.data[12:16]), IPv4Address(case.data[16:20])
        ttl = case.data[8]
        assert case.data[9] in (112, 51)
    else:
        payload, src, dst, ttl = case.data, case.src, case.dst, case.hop_limit
    assert dst is not None
    assert src not in pol.own_addresses
    if not pol.unicast:
        assert ttl == 255, f"accepted with TTL {ttl}"
    else:
        assert src in pol.peers or not pol.check_unicast_src
        if src in pol.peers and ttl is not None:
            assert pol.peers[src].min_ttl <= ttl <= pol.peers[src].max_ttl
    form = checksum_form(payload, src, dst, expected=pol.checksum, mcast_group=GROUP4)
    assert form is not None and form is result.checksum
    if pol.version == 2:
        assert adv.auth_type == pol.auth_type
        assert adv.auth_data == pol.auth_data.ljust(8, b"\0")
        assert adv.max_adver_int == pol.advert_int_cs
    else:
        assert adv.max_adver_int > 0
    if pol.check_adv_addr and adv.priority:
        assert frozenset(adv.addresses) == pol.vips
    assert result.event.priority == adv.priority


# ------------------------------------------------------------------ configuration

_TOKEN = re.compile(r"[^\s{}]+|[{}]")
EDGE_VALUES = (
    "0", "-1", "1", "255", "256", "65535", "65536", "4294967296", "99999999999999999999",
    "1e400", "nan", "inf", "-0", "0x", "0x10", "1.5", "0.001", ".", "", "\"", "'", "\\",
    "{", "}", "}}", "{{", "#", "!", "$X", "${X}", "@main", "~SEQ(I,1,3)", "include x",
    "10.0.0.1/33", "10.0.0.256", "::/129", "fe80::1%eth0", "224.0.0.18", "eth0", "lo",
    "\u00e9", "\u202e", "\0", "\t", "\r", "\x7f", "a" * 300,
)  # fmt: skip


def corpus_configs() -> list[tuple[str, str]]:
    """(name, text) of the real configurations: etc/ and the keepalived samples if present."""
    out = []
    for p in sorted((REPO / "etc").iterdir()):
        if p.suffix in (".conf", ".yaml"):
            out.append((p.name, p.read_text()))
    if SAMPLES.is_dir():
        for p in sorted(SAMPLES.iterdir()):
            out.append((p.name, p.read_text(errors="replace")))
    return out


def corpus_tokens(configs: list[tuple[str, str]]) -> list[str]:
    """Every distinct word in the corpus (keywords, values), for token swaps."""
    seen: dict[str, None] = {}
    for _, text in configs:
        for tok in _TOKEN.findall(text):
            seen.setdefault(tok, None)
    return list(seen)


def mutate_config(text: str, rng: random.Random, tokens: list[str]) -> str:
    """1-5 line-, token- and byte-level mutations of a configuration text."""
    lines = text.split("\n")
    for _ in range(rng.randint(1, 5)):
        op = rng.randrange(11)
        i = rng.randrange(len(lines)) if lines else 0
        if op == 0 and lines:
            del lines[i]
        elif op == 1 and lines:
            lines.insert(i, lines[rng.randrange(len(lines))])
        elif op == 2 and len(lines) > 1:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif op in (3, 4, 5) and lines:
            toks = _TOKEN.findall(lines[i])
            if toks:
                k = rng.randrange(len(toks))
                new = rng.choice(EDGE_VALUES) if op == 3 else rng.choice(tokens)
                if op == 5:  # keep the statement, change its value
                    new = rng.choice(EDGE_VALUES + tuple(tokens[:50]))
                toks[k] = new
                indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
                lines[i] = indent + " ".join(toks)
        elif op == 6:
            lines.insert(i, rng.choice(("{", "}", "}", "{ }", "")))
        elif op == 7 and lines:
            lines[i] = lines[i] + " " + " ".join(rng.choices(tokens, k=rng.randint(1, 3)))
        elif op == 8:  # a block from elsewhere pasted in
            j = rng.randrange(len(lines)) if lines else 0
            lines[i:i] = lines[j : j + rng.randint(1, 8)]
        elif op == 9:
            del lines[rng.randrange(len(lines) + 1) :]
        elif op == 10 and lines:
            s = lines[i]
            k = rng.randrange(len(s) + 1)
            lines[i] = s[:k] + "".join(chr(rng.randrange(0x20, 0x7F)) for _ in range(3)) + s[k:]
    return "\n".join(lines)


def mutate_config_bytes(data: bytes, rng: random.Random) -> bytes:
    """Byte flips, random bytes and truncation of an encoded configuration."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        n = len(buf)
        op = rng.randrange(4)
        if op == 0 and n:
            buf[rng.randrange(n)] ^= 1 << rng.randrange(8)
        elif op == 1 and n:
            buf[rng.randrange(n)] = rng.randrange(256)
        elif op == 2:
            i = rng.randrange(n + 1)
            buf[i:i] = rng.randbytes(rng.randrange(1, 6))
        else:
            del buf[rng.randrange(n + 1) :]
    return bytes(buf)


def raw_ipv4(
    payload: bytes, *, src: IPv4Address, dst: IPv4Address, ttl: int = 255, proto: int = 112
) -> bytes:
    """An IPv4 header + ``payload`` (the VRRP message as given, unchecked)."""
    return build_ipv4_header(src, dst, len(payload), ttl=ttl, protocol=proto) + payload
