"""rtnetlink messages for addresses and links, encoded and decoded by hand (no sockets).

The VRRP hot path (a VIP added on takeover, the link lookups at start) only needs a few
message kinds; building them with :mod:`struct` costs microseconds, where pyroute2's
generic message objects cost a millisecond or more, and importing pyroute2 costs more
than the daemon's whole start. Requests are encoded exactly as
:class:`pyvrrpd.net.linux.LinuxBackend` expressed an :class:`AddressSpec` through
pyroute2 (same attributes, same flags); replies are decoded with bounds checks, and a
malformed message raises :class:`RtnlDecodeError`.

Layouts (``linux/netlink.h``, ``linux/rtnetlink.h``, ``linux/if_addr.h``,
``linux/if_link.h``): a message is ``nlmsghdr`` (len u32, type u16, flags u16, seq u32,
pid u32), a fixed header (``ifaddrmsg``: family, prefixlen, flags, scope u8, index u32;
``ifinfomsg``: family u8, pad u8, type u16, index i32, flags u32, change u32) and
attributes (len u16, type u16, payload padded to 4 bytes).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Any

from pyvrrpd.net.backend import INFINITY_LIFETIME, AddressInfo, AddressSpec, LinkInfo

AF_INET = 2
AF_INET6 = 10
AF_UNSPEC = 0

NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSG_OVERRUN = 4
RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_GETLINK = 18
RTM_NEWADDR = 20
RTM_DELADDR = 21
RTM_GETADDR = 22

NLM_F_REQUEST = 0x01
NLM_F_MULTI = 0x02
NLM_F_ACK = 0x04
NLM_F_DUMP = 0x300
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_CAPPED = 0x100  # on NLMSG_ERROR: the request's payload is not echoed
NLM_F_ACK_TLVS = 0x200  # on NLMSG_ERROR: extended-ack attributes follow

NLMSGERR_ATTR_MSG = 1
RTMGRP_LINK = 0x1

IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_LABEL = 3
IFA_BROADCAST = 4
IFA_CACHEINFO = 6
IFA_FLAGS = 8

IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_LINK = 5
IFLA_LINKINFO = 18
IFLA_INFO_KIND = 1

IFA_F_NODAD = 0x02
IFA_F_HOMEADDRESS = 0x10
IFA_F_MANAGETEMPADDR = 0x100
IFA_F_NOPREFIXROUTE = 0x200
IFA_F_MCAUTOJOIN = 0x400

NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED and NLA_F_NET_BYTEORDER

_NLMSGHDR = struct.Struct("=IHHII")
_IFADDRMSG = struct.Struct("=BBBBI")
_IFINFOMSG = struct.Struct("=BxHiII")
_NLA = struct.Struct("=HH")
_CACHEINFO = struct.Struct("=IIII")
_U32 = struct.Struct("=I")
_I32 = struct.Struct("=i")


class RtnlDecodeError(ValueError):
    """A netlink message that does not fit its declared layout."""


@dataclass(frozen=True, slots=True)
class NlMsg:
    """One netlink message: header fields and the payload after ``nlmsghdr``."""

    type: int
    flags: int
    seq: int
    pid: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class NlError:
    """An NLMSG_ERROR: ``code`` is a positive errno (0: an acknowledgement)."""

    code: int
    message: str | None = None


@dataclass(frozen=True, slots=True)
class AddrMsg:
    """An ifaddrmsg with the attributes this project uses (addresses as text)."""

    family: int
    prefixlen: int
    flags: int
    scope: int
    index: int
    address: str | None = None
    local: str | None = None
    broadcast: str | None = None
    label: str | None = None
    ifa_flags: int | None = None
    preferred: int | None = None
    valid: int | None = None

    def info(self) -> AddressInfo:
        """The :class:`AddressInfo` the backend reports (IFA_LOCAL first, then IFA_ADDRESS)."""
        addr = self.local or self.address
        if addr is None:
            raise RtnlDecodeError("RTM_NEWADDR without IFA_LOCAL or IFA_ADDRESS")
        try:
            iface = ipaddress.ip_interface(f"{addr}/{self.prefixlen}")
        except ValueError as exc:
            raise RtnlDecodeError(f"RTM_NEWADDR: {exc}") from None
        flags = self.ifa_flags if self.ifa_flags is not None else self.flags
        return AddressInfo(
            address=iface, ifindex=self.index, label=self.label, scope=self.scope, flags=flags
        )


# -- encoding ------------------------------------------------------------------------


def _align(n: int) -> int:
    return (n + 3) & ~3


def nla(kind: int, value: bytes) -> bytes:
    """One attribute, padded to 4 bytes."""
    size = _NLA.size + len(value)
    return _NLA.pack(size, kind) + value + b"\0" * (_align(size) - size)


def nlmsg(kind: int, flags: int, seq: int, body: bytes, pid: int = 0) -> bytes:
    """One message: ``nlmsghdr`` + `body` (already 4-byte aligned)."""
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), kind, flags, seq, pid) + body


def _ip_bytes(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bytes:
    return address.packed


def address_message(kind: int, spec: AddressSpec, index: int, seq: int) -> bytes:
    """RTM_NEWADDR (create, exclusive: EEXIST when present) or RTM_DELADDR for `spec`.

    IPv4: IFA_LOCAL is the address and IFA_ADDRESS the peer (the address itself without
    one); IPv6: IFA_ADDRESS alone unless there is a peer. The add also carries scope,
    broadcast and label (IPv4), IFA_CACHEINFO when the preferred lifetime is not forever
    (IPv6), and IFA_FLAGS; ``ifa_flags`` stays 0 as pyroute2 sent it.
    """
    if kind not in (RTM_NEWADDR, RTM_DELADDR):
        raise ValueError(f"not an address message type: {kind}")
    family = AF_INET if spec.version == 4 else AF_INET6
    ip = spec.address.ip
    attrs = []
    if spec.peer is not None:
        attrs.append(nla(IFA_LOCAL, _ip_bytes(ip)))
        attrs.append(nla(IFA_ADDRESS, _ip_bytes(spec.peer)))
    elif family == AF_INET:
        attrs.append(nla(IFA_LOCAL, _ip_bytes(ip)))
        attrs.append(nla(IFA_ADDRESS, _ip_bytes(ip)))
    else:
        attrs.append(nla(IFA_ADDRESS, _ip_bytes(ip)))
    scope = 0
    if kind == RTM_DELADDR:
        flags = NLM_F_REQUEST | NLM_F_ACK
    else:
        flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
        ifa_flags = 0
        if family == AF_INET6:
            ifa_flags |= IFA_F_NODAD if spec.nodad else 0
            ifa_flags |= IFA_F_HOMEADDRESS if spec.home else 0
            ifa_flags |= IFA_F_MANAGETEMPADDR if spec.mngtmpaddr else 0
            lft = spec.effective_preferred_lft()
            if lft != INFINITY_LIFETIME:
                attrs.append(nla(IFA_CACHEINFO, _CACHEINFO.pack(lft, INFINITY_LIFETIME, 0, 0)))
        else:
            scope = int(spec.scope)
            brd = spec.broadcast_address()
            if brd is not None:
                attrs.append(nla(IFA_BROADCAST, brd.packed))
            if spec.label is not None:
                attrs.append(nla(IFA_LABEL, spec.label.encode() + b"\0"))
        ifa_flags |= IFA_F_NOPREFIXROUTE if spec.noprefixroute else 0
        ifa_flags |= IFA_F_MCAUTOJOIN if spec.autojoin else 0
        if ifa_flags:
            attrs.append(nla(IFA_FLAGS, _U32.pack(ifa_flags)))
    prefixlen = spec.address.network.prefixlen
    body = _IFADDRMSG.pack(family, prefixlen, 0, scope, index) + b"".join(attrs)
    return nlmsg(kind, flags, seq, body)


def address_dump(seq: int, family: int = AF_UNSPEC) -> bytes:
    """RTM_GETADDR dump of every address (of one family unless AF_UNSPEC)."""
    return nlmsg(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, seq, _IFADDRMSG.pack(family, 0, 0, 0, 0))


def link_get(seq: int, ifname: str) -> bytes:
    """RTM_GETLINK of one interface by name (acknowledged: the reply, then an ACK)."""
    body = _IFINFOMSG.pack(AF_UNSPEC, 0, 0, 0, 0) + nla(IFLA_IFNAME, ifname.encode() + b"\0")
    return nlmsg(RTM_GETLINK, NLM_F_REQUEST | NLM_F_ACK, seq, body)


def link_dump(seq: int) -> bytes:
    """RTM_GETLINK dump of every interface."""
    body = _IFINFOMSG.pack(AF_UNSPEC, 0, 0, 0, 0)
    return nlmsg(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, seq, body)


def pyroute2_addr_args(spec: AddressSpec, index: int, add: bool) -> dict[str, Any]:
    """pyroute2's ``AsyncIPRoute.addr()`` arguments for `spec` (the backend's path when not
    ``fast``); :func:`address_message` sends what pyroute2 makes of them."""
    args: dict[str, Any] = {
        "index": index,
        "family": AF_INET if spec.version == 4 else AF_INET6,
        "prefixlen": spec.address.network.prefixlen,
    }
    if spec.peer is not None:
        args["local"] = str(spec.address.ip)
        args["address"] = str(spec.peer)
    else:
        args["address"] = str(spec.address.ip)
    if not add:
        return args
    flags = 0
    if spec.version == 6:
        flags |= IFA_F_NODAD if spec.nodad else 0
        flags |= IFA_F_HOMEADDRESS if spec.home else 0
        flags |= IFA_F_MANAGETEMPADDR if spec.mngtmpaddr else 0
        lft = spec.effective_preferred_lft()
        if lft != INFINITY_LIFETIME:
            args["preferred_lft"] = lft
    else:
        args["scope"] = int(spec.scope)
        brd = spec.broadcast_address()
        if brd is not None:
            args["broadcast"] = str(brd)
        if spec.label is not None:
            args["label"] = spec.label
    flags |= IFA_F_NOPREFIXROUTE if spec.noprefixroute else 0
    flags |= IFA_F_MCAUTOJOIN if spec.autojoin else 0
    if flags:
        args["flags"] = flags
    return args


# -- decoding ------------------------------------------------------------------------


def split(data: bytes) -> list[NlMsg]:
    """The messages of one datagram."""
    out = []
    offset, end = 0, len(data)
    while offset < end:
        if end - offset < _NLMSGHDR.size:
            raise RtnlDecodeError(f"truncated nlmsghdr at {offset}")
        size, kind, flags, seq, pid = _NLMSGHDR.unpack_from(data, offset)
        if size < _NLMSGHDR.size or offset + size > end:
            raise RtnlDecodeError(f"bad nlmsg_len {size} at {offset} of {end}")
        out.append(
            NlMsg(kind, flags, seq, pid, bytes(data[offset + _NLMSGHDR.size : offset + size]))
        )
        offset += _align(size)
    return out


def attrs(data: bytes, offset: int = 0) -> dict[int, bytes]:
    """Attributes from `offset` on, by type (the last one wins; nesting bits dropped)."""
    out: dict[int, bytes] = {}
    end = len(data)
    while offset < end:
        if end - offset < _NLA.size:
            if not any(data[offset:]):  # trailing padding
                break
            raise RtnlDecodeError(f"truncated attribute header at {offset}")
        size, kind = _NLA.unpack_from(data, offset)
        if size < _NLA.size or offset + size > end:
            raise RtnlDecodeError(f"bad nla_len {size} at {offset} of {end}")
        out[kind & NLA_TYPE_MASK] = bytes(data[offset + _NLA.size : offset + size])
        offset += _align(size)
    return out


def _text(value: bytes) -> str:
    return value.split(b"\0", 1)[0].decode(errors="replace")


def _u32(value: bytes, what: str) -> int:
    if len(value) < 4:
        raise RtnlDecodeError(f"{what}: {len(value)} bytes, expected 4")
    return int(_U32.unpack_from(value)[0])


def _ip_text(value: bytes, what: str) -> str:
    if len(value) == 4:
        return str(ipaddress.IPv4Address(value))
    if len(value) == 16:
        return str(ipaddress.IPv6Address(value))
    raise RtnlDecodeError(f"{what}: {len(value)} bytes is not an IP address")


def decode_error(msg: NlMsg) -> NlError:
    """An NLMSG_ERROR's errno and the kernel's extended-ack text, if any."""
    data = msg.payload
    if len(data) < 4:
        raise RtnlDecodeError("truncated NLMSG_ERROR")
    code = -_I32.unpack_from(data)[0]
    text = None
    if msg.flags & NLM_F_ACK_TLVS:
        offset = 4
        if len(data) < offset + _NLMSGHDR.size:
            raise RtnlDecodeError("NLMSG_ERROR without the request's header")
        echoed = _NLMSGHDR.unpack_from(data, offset)[0]
        offset += _NLMSGHDR.size if msg.flags & NLM_F_CAPPED else _align(echoed)
        if offset > len(data):
            raise RtnlDecodeError("NLMSG_ERROR shorter than the echoed request")
        found = attrs(data, offset).get(NLMSGERR_ATTR_MSG)
        text = _text(found) if found else None
    return NlError(code, text)


def decode_address(msg: NlMsg) -> AddrMsg:
    """An RTM_NEWADDR/RTM_DELADDR."""
    data = msg.payload
    if len(data) < _IFADDRMSG.size:
        raise RtnlDecodeError("truncated ifaddrmsg")
    family, prefixlen, flags, scope, index = _IFADDRMSG.unpack_from(data)
    found = attrs(data, _IFADDRMSG.size)
    address = found.get(IFA_ADDRESS)
    local = found.get(IFA_LOCAL)
    brd = found.get(IFA_BROADCAST)
    label = found.get(IFA_LABEL)
    ifa_flags = found.get(IFA_FLAGS)
    cache = found.get(IFA_CACHEINFO)
    preferred = valid = None
    if cache is not None:
        if len(cache) < _CACHEINFO.size:
            raise RtnlDecodeError(f"IFA_CACHEINFO: {len(cache)} bytes")
        preferred, valid, _, _ = _CACHEINFO.unpack_from(cache)
    return AddrMsg(
        family=family,
        prefixlen=prefixlen,
        flags=flags,
        scope=scope,
        index=index,
        address=_ip_text(address, "IFA_ADDRESS") if address is not None else None,
        local=_ip_text(local, "IFA_LOCAL") if local is not None else None,
        broadcast=_ip_text(brd, "IFA_BROADCAST") if brd is not None else None,
        label=_text(label) if label is not None else None,
        ifa_flags=_u32(ifa_flags, "IFA_FLAGS") if ifa_flags is not None else None,
        preferred=preferred,
        valid=valid,
    )


def decode_link(msg: NlMsg) -> LinkInfo:
    """An RTM_NEWLINK/RTM_DELLINK as :class:`LinkInfo` (MAC only when 6 bytes long)."""
    data = msg.payload
    if len(data) < _IFINFOMSG.size:
        raise RtnlDecodeError("truncated ifinfomsg")
    _family, _type, index, flags, _change = _IFINFOMSG.unpack_from(data)
    found = attrs(data, _IFINFOMSG.size)
    mac = found.get(IFLA_ADDRESS, b"")
    name = found.get(IFLA_IFNAME)
    mtu = found.get(IFLA_MTU)
    link = found.get(IFLA_LINK)
    kind = None
    info = found.get(IFLA_LINKINFO)
    if info is not None:
        raw_kind = attrs(info).get(IFLA_INFO_KIND)
        kind = _text(raw_kind) if raw_kind is not None else None
    return LinkInfo(
        index=index,
        name=_text(name) if name is not None else "",
        mac=mac if len(mac) == 6 else b"",
        flags=flags,
        mtu=_u32(mtu, "IFLA_MTU") if mtu is not None else 0,
        kind=kind,
        parent=_u32(link, "IFLA_LINK") if link is not None else None,
    )
