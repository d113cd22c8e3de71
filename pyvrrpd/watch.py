"""What ``pyvrrpctl watch`` knows: every VRRP speaker heard on a segment (pure, no I/O).

    table = SpeakerTable(vrids={51})            # VRIDs not in the set are "foreign"
    table.observe(ip_datagram, now)             # bytes from the IP header on
    table.observe(advert, now, src=..., dst=..., ttl=255)   # or an already decoded advert
    print(table.render(now))                    # the table and its warnings
    json.dumps(table.to_json(now))

A speaker is one (address family, VRID, source address).  Only a master (or a node
resigning with priority 0) sends adverts, so two live sources of one VRID that keep
sending after hearing of each other are a split brain ("2 masters!").  The capture side
lives in :mod:`pyvrrpd.watch_live`.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from ipaddress import IPv4Address, ip_address
from typing import Any

from pyvrrpd.vrrp.packet import (
    VRRP_MCAST_GROUP4,
    VRRP_MCAST_GROUP6,
    VRRP_TTL,
    Advert,
    AuthType,
    ChecksumForm,
    DropReason,
    IPAddress,
    PacketError,
    checksum_form,
    decode_ipv4_packet,
    decode_ipv6_packet,
    encode_advert,
)
from pyvrrpd.vrrp.packet_ip import parse_ipv4, parse_ipv6

__all__ = [
    "CHECKSUM_BAD",
    "MASTERS",
    "Speaker",
    "SpeakerRow",
    "SpeakerTable",
    "checksum_label",
]

CHECKSUM_BAD = "bad"
MASTERS = "masters!"  # the flag reads "2 masters!" (or 3, ...)
_ARRIVALS = 32  # arrival times kept per speaker, for the rate and split-brain tests
_MAX_SPEAKERS = 4096  # a hostile segment cannot grow the table without bound


def checksum_label(form: ChecksumForm | None, version: int) -> str:
    """Name of a checksum form as the table shows it (``bad`` when none verifies)."""
    if form is None:
        return CHECKSUM_BAD
    if form is ChecksumForm.PSEUDO_HEADER:
        return "pseudo-header"
    if form is ChecksumForm.OLD_UNICAST:
        return "old-unicast"
    return "message-only" if version == 3 else "message"


def _auth_name(auth_type: int) -> str:
    try:
        return AuthType(auth_type).name.lower()
    except ValueError:
        return f"type-{auth_type}"


@dataclass(slots=True)
class Speaker:
    """What was last heard from one source for one VRID, plus counters."""

    family: int
    vrid: int
    src: IPAddress
    version: int = 0
    priority: int = 0
    interval_cs: int = 0
    checksum: str = ""
    auth_type: int = AuthType.NONE
    auth_data: bytes = b""
    addresses: tuple[IPAddress, ...] = ()
    dst: IPAddress | None = None
    ttl: int | None = None
    packets: int = 0
    bad_checksums: int = 0
    bad_ttl: int | None = None  # the last TTL other than 255 seen, if any
    first_seen: float = 0.0
    last_seen: float = 0.0
    stream_start: float = 0.0  # first advert since the last silence
    arrivals: deque[float] = field(default_factory=lambda: deque(maxlen=_ARRIVALS))

    @property
    def key(self) -> tuple[int, int, IPAddress]:
        """(family, VRID, source)."""
        return (self.family, self.vrid, self.src)

    @property
    def interval(self) -> float:
        """The advertised interval in seconds."""
        return self.interval_cs / 100

    def window(self) -> float:
        """Seconds of silence after which the speaker no longer counts as sending."""
        return 3 * max(self.interval, 0.01) + 0.5

    def alive(self, now: float) -> bool:
        """Whether it sent within :meth:`window` of ``now``."""
        return now - self.last_seen <= self.window()

    def rate(self) -> float | None:
        """Adverts per second over the recent arrivals of the current stream."""
        recent = [t for t in self.arrivals if t >= self.stream_start]
        if len(recent) < 2 or recent[-1] <= recent[0]:
            return None
        return (len(recent) - 1) / (recent[-1] - recent[0])

    def sent_since(self, t: float) -> int:
        """Adverts (among the recent ones kept) that arrived after ``t``."""
        return sum(1 for a in self.arrivals if a > t)

    @property
    def password(self) -> bytes | None:
        """The VRRPv2 simple password (trailing NULs removed), or None."""
        if self.version != 2 or self.auth_type != AuthType.PASS:
            return None
        return self.auth_data.rstrip(b"\0")

    def auth_text(self, show_auth: bool) -> str:
        """``none``, ``pass`` (``pass:SECRET`` with ``show_auth``), ``ah``... (``-`` for v3)."""
        if self.version != 2:
            return "-"
        name = _auth_name(self.auth_type)
        pw = self.password
        if pw is None:
            return name
        if not pw:
            return "pass(empty)"
        return f"pass:{pw.decode('ascii', 'backslashreplace')}" if show_auth else name


@dataclass(frozen=True, slots=True)
class SpeakerRow:
    """One line of the table: a speaker as of ``now`` and its flags."""

    speaker: Speaker
    age: float
    rate: float | None
    flags: tuple[str, ...]

    def to_json(self, show_auth: bool = False) -> dict[str, Any]:
        """JSON-ready dict (the password only with ``show_auth``)."""
        s = self.speaker
        out: dict[str, Any] = {
            "vrid": s.vrid,
            "family": s.family,
            "version": s.version,
            "source": str(s.src),
            "destination": None if s.dst is None else str(s.dst),
            "priority": s.priority,
            "advert_int": s.interval,
            "checksum": s.checksum,
            "auth": _auth_name(s.auth_type) if s.version == 2 else None,
            "auth_password_present": bool(s.password),
            "address_count": len(s.addresses),
            "addresses": [str(a) for a in s.addresses],
            "packets": s.packets,
            "bad_checksums": s.bad_checksums,
            "ttl": s.ttl,
            "last_seen_age": round(self.age, 3),
            "rate": None if self.rate is None else round(self.rate, 3),
            "flags": list(self.flags),
        }
        if show_auth and s.password is not None:
            out["auth_password"] = s.password.decode("ascii", "backslashreplace")
        return out


class SpeakerTable:
    """Every VRRP speaker heard, keyed by (family, VRID, source).

    ``vrids``: the VRIDs this segment is meant to carry (others are flagged
    ``foreign VRID``); None flags none.  ``mcast_group4`` is the group used by the old
    unicast checksum (224.0.0.18 unless ``vrrp_mcast_group4`` says otherwise).
    """

    def __init__(
        self,
        *,
        vrids: set[int] | frozenset[int] | None = None,
        mcast_group4: IPv4Address | None = None,
    ) -> None:
        self.vrids = None if vrids is None else frozenset(vrids)
        self.mcast_group4 = mcast_group4
        self.speakers: dict[tuple[int, int, IPAddress], Speaker] = {}
        self.packets = 0  # VRRP adverts decoded
        self.ignored = 0  # not VRRP at all (AH carrying something else)
        self.malformed: Counter[tuple[str, str]] = Counter()  # (source, reason) -> count
        self.malformed_detail: dict[tuple[str, str], str] = {}

    # -- input ---------------------------------------------------------------------

    def observe(
        self,
        packet: bytes | Advert,
        now: float,
        *,
        src: IPAddress | str | None = None,
        dst: IPAddress | str | None = None,
        ttl: int | None = None,
    ) -> Speaker | None:
        """Account for one packet heard at ``now``; return its speaker (None if dropped).

        ``packet`` is an IP datagram (from the IPv4/IPv6 header on; its header gives
        source, destination and TTL) or a decoded :class:`Advert`, for which ``src`` is
        required and ``dst`` defaults to the VRRP multicast group; ``ttl`` None is
        "unknown".  Undecodable datagrams are counted in :attr:`malformed`.
        """
        if isinstance(packet, Advert):
            if src is None:
                raise ValueError("a decoded advert needs src")
            s = ip_address(src) if isinstance(src, str) else src
            group = VRRP_MCAST_GROUP4 if s.version == 4 else VRRP_MCAST_GROUP6
            d = group if dst is None else ip_address(dst) if isinstance(dst, str) else dst
            payload = encode_advert(packet, raw_checksum=True)
            return self._record(packet, payload, s, d, ttl, now)
        data = bytes(packet)
        try:
            if data[:1] and data[0] >> 4 == 6:
                p6 = decode_ipv6_packet(data)
                h6 = p6.header
                return self._record(p6.advert, p6.payload, h6.src, h6.dst, h6.hop_limit, now)
            p4 = decode_ipv4_packet(data)
        except PacketError as exc:
            if exc.reason is DropReason.BAD_PROTOCOL:
                self.ignored += 1
            else:
                self._malformed(data, exc)
            return None
        h4 = p4.header
        return self._record(p4.advert, p4.payload, h4.src, h4.dst, h4.ttl, now)

    def _malformed(self, data: bytes, exc: PacketError) -> None:
        source = "?"
        try:
            head = parse_ipv6(data)[0] if data[:1] and data[0] >> 4 == 6 else parse_ipv4(data)[0]
            source = str(head.src)
        except PacketError:
            pass
        key = (source, exc.reason.value)
        self.malformed[key] += 1
        self.malformed_detail[key] = exc.message

    def _record(
        self,
        advert: Advert,
        payload: bytes,
        src: IPAddress,
        dst: IPAddress,
        ttl: int | None,
        now: float,
    ) -> Speaker:
        self.packets += 1
        key = (src.version, advert.vrid, src)
        sp = self.speakers.get(key)
        if sp is None:
            if len(self.speakers) >= _MAX_SPEAKERS:
                oldest = min(self.speakers.values(), key=lambda x: x.last_seen)
                del self.speakers[oldest.key]
            sp = Speaker(src.version, advert.vrid, src, first_seen=now, stream_start=now)
            self.speakers[key] = sp
        elif not sp.alive(now):
            sp.stream_start = now
        form = checksum_form(payload, src, dst, mcast_group=self.mcast_group4)
        sp.version = advert.version
        sp.priority = advert.priority
        sp.interval_cs = advert.max_adver_int
        sp.checksum = checksum_label(form, advert.version)
        sp.auth_type = advert.auth_type
        sp.auth_data = advert.auth_data
        sp.addresses = advert.addresses
        sp.dst = dst
        sp.ttl = ttl
        sp.packets += 1
        if form is None:
            sp.bad_checksums += 1
        if ttl is not None and ttl != VRRP_TTL:
            sp.bad_ttl = ttl
        sp.last_seen = now
        if advert.priority > 0:
            sp.arrivals.append(now)
        return sp

    # -- analysis ------------------------------------------------------------------

    def _groups(self) -> dict[tuple[int, int], list[Speaker]]:
        groups: dict[tuple[int, int], list[Speaker]] = {}
        for sp in self.speakers.values():
            groups.setdefault((sp.family, sp.vrid), []).append(sp)
        return groups

    @staticmethod
    def _masters(live: list[Speaker]) -> list[Speaker]:
        """Live sources that kept advertising after hearing of another one.

        Each of a pair must have sent at least two adverts (priority > 0) since the
        other's current stream began: a preempted master sends at most one more, so
        a takeover is not reported.
        """
        senders = [s for s in live if s.priority > 0]
        clash: set[IPAddress] = set()
        for i, a in enumerate(senders):
            for b in senders[i + 1 :]:
                if a.sent_since(b.stream_start) >= 2 and b.sent_since(a.stream_start) >= 2:
                    clash.update((a.src, b.src))
        return [s for s in senders if s.src in clash]

    def _analyse(self, now: float) -> tuple[dict[tuple[int, int, IPAddress], list[str]], list[str]]:
        flags: dict[tuple[int, int, IPAddress], list[str]] = {k: [] for k in self.speakers}
        warnings: list[str] = []
        for (family, vrid), members in sorted(self._groups().items()):
            name = f"VRID {vrid} (IPv{family})"
            live = [s for s in members if s.alive(now)]
            masters = self._masters(live)
            if len(masters) >= 2:
                ordered = sorted(masters, key=lambda s: (-s.priority, s.src.packed))
                who = ", ".join(f"{s.src} prio {s.priority}" for s in ordered)
                warnings.append(f"{name}: {len(masters)} masters! {who} all advertising")
                for s in masters:
                    flags[s.key].append(f"{len(masters)} {MASTERS}")
            for label, value, pool in (
                ("version mismatch", _version, live),
                ("interval mismatch", _interval, live),
                ("auth mismatch", _auth, [s for s in live if s.version == 2]),
                ("addresses differ", _addrs, live),
                # a bad checksum is reported on its own
                ("checksum form mismatch", _checksum, [s for s in live if s.checksum != "bad"]),
            ):
                if len({value(s) for s in pool}) < 2:
                    continue
                detail = ", ".join(f"{s.src}: {self._describe(label, s)}" for s in pool)
                warnings.append(f"{name}: {label} ({detail})")
                for s in pool:
                    flags[s.key].append(label)
            for s in members:
                f = flags[s.key]
                if self.vrids is not None and vrid not in self.vrids:
                    f.append("foreign VRID")
                if s.bad_checksums:
                    f.append("bad checksum")
                if s.bad_ttl is not None:
                    f.append(f"TTL {s.bad_ttl}")
                if s.dst is not None and not s.dst.is_multicast:
                    f.append("unicast")
                if s.priority == 0:
                    f.append("resigned")
                if not s.alive(now):
                    f.append("silent")
                else:
                    r = s.rate()
                    if r is not None and s.interval_cs and r * s.interval < 0.6:
                        f.append("late")
        if self.vrids is not None:
            foreign = sorted({s.vrid for s in self.speakers.values()} - self.vrids)
            if foreign:
                warnings.append(f"foreign VRIDs on this segment: {', '.join(map(str, foreign))}")
        for s in self.speakers.values():
            if s.bad_ttl is not None and s.dst is not None and s.dst.is_multicast:
                warnings.append(f"{s.src} (VRID {s.vrid}): TTL {s.bad_ttl}, receivers drop it")
            if s.bad_checksums:
                warnings.append(
                    f"{s.src} (VRID {s.vrid}): {s.bad_checksums} adverts with a bad checksum"
                )
        for (source, reason), n in sorted(self.malformed.items()):
            detail = self.malformed_detail[(source, reason)]
            warnings.append(f"{source}: {n} undecodable VRRP packets ({reason}: {detail})")
        return flags, warnings

    @staticmethod
    def _describe(label: str, s: Speaker) -> str:
        if label == "version mismatch":
            return f"v{s.version}"
        if label == "interval mismatch":
            return f"{s.interval:g}s"
        if label == "auth mismatch":
            return s.auth_text(False)
        if label == "addresses differ":
            return ",".join(map(str, s.addresses)) or "none"
        return s.checksum

    def rows(self, now: float) -> list[SpeakerRow]:
        """The speakers as of ``now``, by family, VRID, priority (highest first), source."""
        return self._rows(now, self._analyse(now)[0])

    def _rows(
        self, now: float, flags: dict[tuple[int, int, IPAddress], list[str]]
    ) -> list[SpeakerRow]:
        order = sorted(
            self.speakers.values(),
            key=lambda s: (s.family, s.vrid, -s.priority, int(s.src)),
        )
        return [
            SpeakerRow(s, max(0.0, now - s.last_seen), s.rate(), tuple(flags[s.key])) for s in order
        ]

    def warnings(self, now: float) -> list[str]:
        """Sentences about what looks wrong (split brain, mismatches, TTL, checksums)."""
        return self._analyse(now)[1]

    def to_json(self, now: float, *, show_auth: bool = False) -> dict[str, Any]:
        """The whole table as a JSON-ready dict."""
        flags, warnings = self._analyse(now)
        return {
            "packets": self.packets,
            "malformed": sum(self.malformed.values()),
            "speakers": [r.to_json(show_auth) for r in self._rows(now, flags)],
            "warnings": warnings,
        }

    # -- output --------------------------------------------------------------------

    def render(self, now: float, *, show_auth: bool = False, title: str | None = None) -> str:
        """The table as text, then its warnings (one ``!`` line each)."""
        flags, warnings = self._analyse(now)
        rows = self._rows(now, flags)
        head = ("VRID", "IP", "VER", "SOURCE", "PRIO", "INT", "CHECKSUM", "AUTH", "PKTS", "AGE",
                "RATE", "ADDRESSES", "FLAGS")  # fmt: skip
        lines: list[tuple[str, ...]] = [head]
        for r in rows:
            s = r.speaker
            lines.append(
                (
                    str(s.vrid),
                    f"v{s.family}",
                    str(s.version),
                    str(s.src),
                    str(s.priority),
                    f"{s.interval:g}s",
                    s.checksum + (" (v3_checksum_as_v2)" if s.checksum == "message-only" else ""),
                    s.auth_text(show_auth),
                    str(s.packets),
                    f"{r.age:.1f}s",
                    "-" if r.rate is None else f"{r.rate:.1f}/s",
                    _addresses(s.addresses),
                    " ".join(r.flags),
                )
            )
        widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
        out = [] if title is None else [title]
        if not rows:
            out.append("no VRRP advert heard yet")
        else:
            out += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
                    for line in lines]  # fmt: skip
        out += [f"! {w}" for w in warnings]
        return "\n".join(out)


def _version(s: Speaker) -> object:
    return s.version


def _interval(s: Speaker) -> object:
    return s.interval_cs


def _auth(s: Speaker) -> object:
    return (s.auth_type, s.auth_data)


def _addrs(s: Speaker) -> object:
    return frozenset(s.addresses)


def _checksum(s: Speaker) -> object:
    return s.checksum


def _addresses(addrs: tuple[IPAddress, ...], shown: int = 3) -> str:
    text = ",".join(str(a) for a in addrs[:shown])
    if len(addrs) > shown:
        text += f",+{len(addrs) - shown}"
    return f"{len(addrs)}:{text}" if addrs else "0"
