"""The hand-made rtnetlink codec: round trips, bounds checks, and pyroute2 as the oracle.

pyroute2 (the library the backend used for every address change) is the reference: the
bytes it would send for the backend's old AsyncIPRoute.addr() arguments must carry the
same header, fixed fields and attributes as ours, its message classes must read our
messages to the same fields, and ours must read messages it encodes.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyvrrpd.net import rtnl
from pyvrrpd.net.backend import AddressSpec, Scope
from pyvrrpd.net.rtnl import pyroute2_addr_args

V4 = "10.1.2.3/24"


def spec(text: str = V4, **kw: Any) -> AddressSpec:
    return AddressSpec(address=ipaddress.ip_interface(text), dev="eth0", **kw)


#: Every AddressSpec variant the keyword table can produce.
VARIANTS = [
    spec(),
    spec("10.1.2.3/32"),
    spec(label="eth0:vip", broadcast="+"),
    spec(broadcast="-", scope=Scope.LINK),
    spec(broadcast=ipaddress.IPv4Address("10.1.2.200"), scope=Scope.HOST),
    spec("10.1.2.3/32", peer=ipaddress.ip_address("10.9.9.9")),
    spec(noprefixroute=True),
    spec("239.1.1.1/32", autojoin=True),
    spec("fd00::1/64"),
    spec("fd00::1/128"),
    spec("fd00::1/64", nodad=False),
    spec("fd00::1/64", home=True, mngtmpaddr=True, noprefixroute=True),
    spec("fd00::1/64", preferred_lft=30),
    spec("fd00::1/128", preferred_lft=0xFFFFFFFF),
    spec("fd00::1/128", peer=ipaddress.ip_address("fd00::99")),
    spec("fe80::5/64", scope=Scope.LINK),
]


IDS = [f"{i}:{s.address}" for i, s in enumerate(VARIANTS)]


def one(data: bytes) -> rtnl.NlMsg:
    (msg,) = rtnl.split(data)
    return msg


def fields(data: bytes) -> tuple[tuple[int, ...], bytes, dict[int, bytes]]:
    """Header (len, type, flags), fixed ifaddrmsg bytes and attributes by type."""
    size, kind, flags, _seq, _pid = struct.unpack_from("=IHHII", data)
    return (size, kind, flags), data[16:24], rtnl.attrs(data[16:], 8)


# -- our own round trip --------------------------------------------------------------


@pytest.mark.parametrize("s", VARIANTS, ids=IDS)
def test_add_round_trip(s: AddressSpec) -> None:
    msg = one(rtnl.address_message(rtnl.RTM_NEWADDR, s, 7, 42))
    assert (msg.type, msg.seq) == (rtnl.RTM_NEWADDR, 42)
    assert msg.flags == rtnl.NLM_F_REQUEST | rtnl.NLM_F_ACK | rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL
    got = rtnl.decode_address(msg)
    assert (got.index, got.prefixlen, got.flags) == (7, s.address.network.prefixlen, 0)
    assert got.family == (rtnl.AF_INET if s.version == 4 else rtnl.AF_INET6)
    ip = str(s.address.ip)
    if s.peer is not None:
        assert (got.local, got.address) == (ip, str(s.peer))
    elif s.version == 4:
        assert (got.local, got.address) == (ip, ip)
    else:
        assert (got.local, got.address) == (None, ip)
    info = got.info()
    assert info.address == s.address and info.ifindex == 7
    if s.version == 4:
        assert got.scope == int(s.scope)
        brd = s.broadcast_address()
        assert got.broadcast == (str(brd) if brd is not None else None)
        assert got.label == s.label and got.preferred is None
    else:
        assert got.scope == 0 and got.broadcast is None and got.label is None
        lft = s.effective_preferred_lft()
        assert got.preferred == (None if lft == 0xFFFFFFFF else lft)
        assert got.valid == (None if lft == 0xFFFFFFFF else 0xFFFFFFFF)
    expect = 0
    if s.version == 6:
        expect |= rtnl.IFA_F_NODAD if s.nodad else 0
        expect |= rtnl.IFA_F_HOMEADDRESS if s.home else 0
        expect |= rtnl.IFA_F_MANAGETEMPADDR if s.mngtmpaddr else 0
    expect |= rtnl.IFA_F_NOPREFIXROUTE if s.noprefixroute else 0
    expect |= rtnl.IFA_F_MCAUTOJOIN if s.autojoin else 0
    assert got.ifa_flags == (expect or None)


@pytest.mark.parametrize("s", VARIANTS, ids=IDS)
def test_delete_carries_only_the_address(s: AddressSpec) -> None:
    msg = one(rtnl.address_message(rtnl.RTM_DELADDR, s, 3, 9))
    assert msg.flags == rtnl.NLM_F_REQUEST | rtnl.NLM_F_ACK
    got = rtnl.decode_address(msg)
    assert set(rtnl.attrs(msg.payload, 8)) <= {rtnl.IFA_LOCAL, rtnl.IFA_ADDRESS}
    assert got.info().address == s.address and got.scope == 0


def test_requests_for_dumps_and_links() -> None:
    msg = one(rtnl.address_dump(5, rtnl.AF_INET6))
    assert (msg.type, msg.flags, msg.seq) == (rtnl.RTM_GETADDR, 0x301, 5)
    assert msg.payload[0] == rtnl.AF_INET6
    msg = one(rtnl.link_dump(6))
    assert (msg.type, msg.flags, len(msg.payload)) == (rtnl.RTM_GETLINK, 0x301, 16)
    msg = one(rtnl.link_get(8, "eth0"))
    assert (msg.type, msg.flags) == (rtnl.RTM_GETLINK, rtnl.NLM_F_REQUEST | rtnl.NLM_F_ACK)
    assert rtnl.attrs(msg.payload, 16) == {rtnl.IFLA_IFNAME: b"eth0\0"}


def test_error_and_done() -> None:
    request = rtnl.link_get(4, "nope")
    capped = rtnl.nlmsg(
        rtnl.NLMSG_ERROR, rtnl.NLM_F_CAPPED, 4, struct.pack("=i", -19) + request[:16]
    )
    assert rtnl.decode_error(one(capped)) == rtnl.NlError(19, None)
    text = rtnl.nla(rtnl.NLMSGERR_ATTR_MSG, b"Unknown device\0")
    full = struct.pack("=i", -22) + request + text  # not capped: the whole request echoed
    err = one(rtnl.nlmsg(rtnl.NLMSG_ERROR, rtnl.NLM_F_ACK_TLVS, 4, full))
    assert rtnl.decode_error(err) == rtnl.NlError(22, "Unknown device")
    ack = one(rtnl.nlmsg(rtnl.NLMSG_ERROR, 0, 4, struct.pack("=i", 0) + request[:16]))
    assert rtnl.decode_error(ack).code == 0
    done = rtnl.split(rtnl.nlmsg(rtnl.NLMSG_DONE, 2, 4, b"\0" * 4) + capped)
    assert [m.type for m in done] == [rtnl.NLMSG_DONE, rtnl.NLMSG_ERROR]


MALFORMED = [
    b"\x10\0\0",  # shorter than a header
    struct.pack("=IHHII", 15, 20, 0, 0, 0),  # nlmsg_len below the header
    struct.pack("=IHHII", 40, 20, 0, 0, 0) + b"\0" * 8,  # runs past the datagram
]


@pytest.mark.parametrize("data", MALFORMED)
def test_malformed_datagrams_raise_one_error(data: bytes) -> None:
    with pytest.raises(rtnl.RtnlDecodeError):
        rtnl.split(data)


def test_malformed_messages_raise_one_error() -> None:
    good = rtnl.address_message(rtnl.RTM_NEWADDR, spec(label="x"), 1, 1)
    bad_attr = bytearray(good)
    struct.pack_into("=H", bad_attr, 24, 200)  # first attribute claims 200 bytes
    cases = [
        rtnl.NlMsg(rtnl.RTM_NEWADDR, 0, 0, 0, b"\0" * 7),  # short ifaddrmsg
        rtnl.NlMsg(rtnl.RTM_NEWADDR, 0, 0, 0, bytes(bad_attr[16:])),
        rtnl.NlMsg(rtnl.RTM_NEWADDR, 0, 0, 0, b"\0" * 8 + rtnl.nla(rtnl.IFA_LOCAL, b"\1\2\3")),
        rtnl.NlMsg(rtnl.RTM_NEWADDR, 0, 0, 0, b"\2" + b"\0" * 7 + rtnl.nla(rtnl.IFA_FLAGS, b"")),
        rtnl.NlMsg(rtnl.RTM_NEWADDR, 0, 0, 0, b"\0" * 8 + rtnl.nla(rtnl.IFA_CACHEINFO, b"\0")),
    ]
    for msg in cases:
        with pytest.raises(rtnl.RtnlDecodeError):
            rtnl.decode_address(msg)
    with pytest.raises(rtnl.RtnlDecodeError):
        rtnl.decode_address(rtnl.NlMsg(rtnl.RTM_NEWADDR, 0, 0, 0, b"\2" + b"\0" * 7)).info()
    with pytest.raises(rtnl.RtnlDecodeError):
        rtnl.decode_link(rtnl.NlMsg(rtnl.RTM_NEWLINK, 0, 0, 0, b"\0" * 15))
    mtu = b"\0" * 16 + rtnl.nla(rtnl.IFLA_MTU, b"\1\0")
    with pytest.raises(rtnl.RtnlDecodeError):
        rtnl.decode_link(rtnl.NlMsg(rtnl.RTM_NEWLINK, 0, 0, 0, mtu))
    with pytest.raises(rtnl.RtnlDecodeError):
        rtnl.decode_error(rtnl.NlMsg(rtnl.NLMSG_ERROR, 0, 0, 0, b"\0\0"))
    with pytest.raises(rtnl.RtnlDecodeError):
        rtnl.decode_error(rtnl.NlMsg(rtnl.NLMSG_ERROR, rtnl.NLM_F_ACK_TLVS, 0, 0, b"\0" * 8))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_garbage_decodes_or_raises_the_one_error(data: bytes) -> None:
    try:
        for msg in rtnl.split(data):
            rtnl.decode_address(msg)
            rtnl.decode_link(msg)
            rtnl.decode_error(msg)
    except rtnl.RtnlDecodeError:
        pass


# -- pyroute2 as the oracle ------------------------------------------------------------


class _Captured(Exception):
    pass


async def pyroute2_request(command: str, args: dict[str, Any]) -> bytes:
    """The bytes AsyncIPRoute.addr(command, **args) would send (nothing reaches a kernel)."""
    from pyroute2 import AsyncIPRoute

    ipr = AsyncIPRoute()
    sent: list[bytes] = []

    def spy(data: bytes, *rest: object) -> int:
        sent.append(bytes(data))
        raise _Captured

    ipr.send = spy
    try:
        with pytest.raises(_Captured):
            await ipr.addr(command, **args)
    finally:
        ipr.close()
    (data,) = sent
    return data


@pytest.mark.parametrize("s", VARIANTS, ids=IDS)
@pytest.mark.parametrize("add", [True, False], ids=["add", "del"])
async def test_same_request_as_pyroute2_sent(s: AddressSpec, add: bool) -> None:
    theirs = await pyroute2_request("add" if add else "del", pyroute2_addr_args(s, 7, add))
    ours = rtnl.address_message(rtnl.RTM_NEWADDR if add else rtnl.RTM_DELADDR, s, 7, 1)
    assert fields(ours) == fields(theirs)


@pytest.mark.parametrize("s", VARIANTS, ids=IDS)
def test_pyroute2_reads_our_messages(s: AddressSpec) -> None:
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg

    msg = ifaddrmsg(rtnl.address_message(rtnl.RTM_NEWADDR, s, 7, 42))
    msg.decode()
    ours = rtnl.decode_address(one(msg.data))
    assert msg["header"]["type"] == rtnl.RTM_NEWADDR and msg["header"]["sequence_number"] == 42
    assert (msg["family"], msg["prefixlen"], msg["scope"], msg["index"]) == (
        ours.family,
        ours.prefixlen,
        ours.scope,
        7,
    )
    assert msg.get_attr("IFA_LOCAL") == ours.local
    assert msg.get_attr("IFA_ADDRESS") == ours.address
    assert msg.get_attr("IFA_BROADCAST") == ours.broadcast
    assert msg.get_attr("IFA_LABEL") == ours.label
    assert msg.get_attr("IFA_FLAGS") == ours.ifa_flags
    cache = msg.get_attr("IFA_CACHEINFO")
    assert (cache["ifa_preferred"] if cache else None) == ours.preferred


ADDRS = st.one_of(
    st.ip_addresses(v=4).map(lambda a: (2, str(a), 32)),
    st.ip_addresses(v=6).map(lambda a: (10, a.compressed, 128)),
)
LABELS = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=15)


@settings(max_examples=150, deadline=None)
@given(
    addr=ADDRS,
    local=st.booleans(),
    prefixlen=st.integers(0, 128),
    flags=st.integers(0, 255),
    scope=st.sampled_from([0, 200, 253, 254]),
    index=st.integers(1, 2**31 - 1),
    label=st.none() | LABELS,
    ifa_flags=st.none() | st.integers(0, 2**32 - 1),
    lft=st.none() | st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
)
def test_we_read_pyroute2_addresses(
    addr: tuple[int, str, int],
    local: bool,
    prefixlen: int,
    flags: int,
    scope: int,
    index: int,
    label: str | None,
    ifa_flags: int | None,
    lft: tuple[int, int] | None,
) -> None:
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg

    family, text, maxlen = addr
    msg = ifaddrmsg()
    msg["family"], msg["prefixlen"] = family, min(prefixlen, maxlen)
    msg["flags"], msg["scope"], msg["index"] = flags, scope, index
    nlas: list[tuple[str, Any]] = [("IFA_ADDRESS", text)]
    if local:
        nlas.append(("IFA_LOCAL", text))
    if label is not None:
        nlas.append(("IFA_LABEL", label))
    if ifa_flags is not None:
        nlas.append(("IFA_FLAGS", ifa_flags))
    if lft is not None:
        cache = {"ifa_preferred": lft[0], "ifa_valid": lft[1], "cstamp": 0, "tstamp": 0}
        nlas.append(("IFA_CACHEINFO", cache))
    msg["attrs"] = nlas
    msg["header"]["type"] = rtnl.RTM_NEWADDR
    msg.encode()
    got = rtnl.decode_address(one(msg.data))
    assert (got.family, got.prefixlen, got.flags, got.scope, got.index) == (
        family,
        min(prefixlen, maxlen),
        flags,
        scope,
        index,
    )
    assert got.address == text and got.local == (text if local else None)
    assert got.label == label and got.ifa_flags == ifa_flags
    assert (got.preferred, got.valid) == (lft if lft is not None else (None, None))
    info = got.info()
    assert info.flags == (ifa_flags if ifa_flags is not None else flags)
    assert str(info.address.ip) == text and info.label == label


@settings(max_examples=150, deadline=None)
@given(
    index=st.integers(1, 2**31 - 1),
    flags=st.integers(0, 2**32 - 1),
    name=st.none() | LABELS,
    mac=st.none() | st.binary(min_size=6, max_size=6),
    mtu=st.none() | st.integers(0, 2**32 - 1),
    link=st.none() | st.integers(0, 2**32 - 1),
    kind=st.none() | st.sampled_from(["macvlan", "veth", "dummy", "bridge"]),
    deleted=st.booleans(),
)
def test_we_read_pyroute2_links(
    index: int,
    flags: int,
    name: str | None,
    mac: bytes | None,
    mtu: int | None,
    link: int | None,
    kind: str | None,
    deleted: bool,
) -> None:
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    msg = ifinfmsg()
    msg["index"], msg["flags"] = index, flags
    nlas: list[tuple[str, Any]] = []
    if name is not None:
        nlas.append(("IFLA_IFNAME", name))
    if mac is not None:
        nlas.append(("IFLA_ADDRESS", ":".join(f"{b:02x}" for b in mac)))
    if mtu is not None:
        nlas.append(("IFLA_MTU", mtu))
    if link is not None:
        nlas.append(("IFLA_LINK", link))
    if kind is not None:
        nlas.append(("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", kind)]}))
    msg["attrs"] = nlas
    msg["header"]["type"] = rtnl.RTM_DELLINK if deleted else rtnl.RTM_NEWLINK
    msg.encode()
    parsed = one(msg.data)
    got = rtnl.decode_link(parsed)
    assert parsed.type == (rtnl.RTM_DELLINK if deleted else rtnl.RTM_NEWLINK)
    assert (got.index, got.flags, got.name) == (index, flags, name or "")
    assert got.mac == (mac or b"")
    assert (got.mtu, got.parent, got.kind) == (mtu or 0, link, kind)
    assert got.up == ((flags & 0x41) == 0x41)


def test_nested_attribute_bits_are_ignored() -> None:
    info = rtnl.nla(rtnl.IFLA_LINKINFO | 0x8000, rtnl.nla(rtnl.IFLA_INFO_KIND, b"veth\0"))
    msg = rtnl.NlMsg(rtnl.RTM_NEWLINK, 0, 0, 0, b"\0" * 16 + info)
    assert rtnl.decode_link(msg).kind == "veth"


def test_link_address_other_than_a_mac_is_no_mac() -> None:
    tunnel = b"\0" * 16 + rtnl.nla(rtnl.IFLA_ADDRESS, b"\x0a\0\0\1")  # an ipip endpoint
    assert rtnl.decode_link(rtnl.NlMsg(rtnl.RTM_NEWLINK, 0, 0, 0, tunnel)).mac == b""
