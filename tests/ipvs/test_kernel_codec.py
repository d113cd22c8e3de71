"""The netlink encoding of writes (wire.py) and decoding of dumps (kernel.py), on the host.

Each op is encoded by wire.py, decoded by pyroute2 with kernel.py's message layout and
read back with the dump decoder; the byte layouts the kernel expects (from ip_vs_ctl.c)
are checked directly, including the pyroute2 traps (update = delete, IPv6 netmask,
tun_port byte order) and the ack parser.
"""

from __future__ import annotations

import ipaddress
import struct
import sys
from typing import Any

import pytest

from pyvrrpd.ipvs.kernel import _IpvsMsg
from pyvrrpd.ipvs.model import (
    Dest,
    DestKey,
    Family,
    FwdMethod,
    Protocol,
    Service,
    ServiceFlags,
    ServiceKey,
    TunFlags,
    TunType,
)
from pyvrrpd.ipvs.plan import AddDest, AddService, DelDest, DelService, EditDest, EditService, Op
from pyvrrpd.ipvs.wire import (
    CMD_DEL_DEST,
    CMD_DEL_SERVICE,
    CMD_NEW_DEST,
    CMD_NEW_SERVICE,
    CMD_SET_DEST,
    CMD_SET_SERVICE,
    decode_dest,
    decode_service,
    encode_op,
    parse_acks,
)

V6 = Service(
    ServiceKey.of(Protocol.UDP, "2001:db8::1", 53),
    "sh",
    ServiceFlags.PERSISTENT | ServiceFlags.SH_PORT | ServiceFlags.ONEPACKET,
    300,
    netmask=64,
    pe_name="sip",
)
V4 = Service(ServiceKey.of(Protocol.SCTP, "192.0.2.1", 5060), "rr", netmask=24)
FWM = Service(ServiceKey.for_fwmark(0xDEADBEEF, Family.INET6), "mh", ServiceFlags.MH_PORT)
GUE = Dest(
    ipaddress.ip_address("10.0.0.5"),
    8080,
    FwdMethod.TUN,
    weight=7,
    u_threshold=100,
    l_threshold=9,
    tun_type=TunType.GUE,
    tun_port=0x1234,
    tun_flags=TunFlags.CSUM | TunFlags.REMCSUM,
)


def wire(op: Op) -> bytes:
    return encode_op(op, family_id=0x20, seq=77)


def roundtrip(op: Op) -> tuple[int, Any]:
    data = wire(op)
    back = _IpvsMsg(data)
    back.decode()
    assert back["header"]["length"] == len(data)
    assert (back["header"]["type"], back["header"]["sequence_number"]) == (0x20, 77)
    return int(back["cmd"]), back


def raw_attr(data: bytes, path: list[int]) -> bytes:
    """The payload of a nested attribute, found by type numbers in the wire bytes."""
    offset, end = 16 + 4, len(data)  # nlmsghdr + genlmsghdr
    for i, want in enumerate(path):
        while offset < end:
            length, atype = struct.unpack_from("=HH", data, offset)
            if atype & 0x3FFF == want:
                if i == len(path) - 1:
                    return data[offset + 4 : offset + length]
                offset, end = offset + 4, offset + length
                break
            offset += (length + 3) & ~3
        else:
            raise AssertionError(f"attribute {path} not found")
    raise AssertionError("empty path")


@pytest.mark.parametrize("svc", [V6, V4, FWM], ids=["ipv6", "ipv4-sctp", "fwmark6"])
def test_service_round_trips(svc: Service) -> None:
    cmd, back = roundtrip(AddService(svc))
    assert cmd == CMD_NEW_SERVICE
    assert decode_service(wire(AddService(svc))[16:]) == svc
    # pyroute2's generic decoder, independent of wire.py, reads the same values
    a = dict(back.get_attr("IPVS_CMD_ATTR_SERVICE")["attrs"])
    assert a["IPVS_SVC_ATTR_AF"] == svc.key.family
    assert a["IPVS_SVC_ATTR_SCHED_NAME"] == svc.scheduler
    assert a["IPVS_SVC_ATTR_FLAGS"] == {"flags": int(svc.flags), "mask": 0xFFFFFFFF}
    assert a["IPVS_SVC_ATTR_TIMEOUT"] == svc.timeout
    assert a.get("IPVS_SVC_ATTR_PE_NAME") == svc.pe_name
    if svc.key.fwmark:
        assert a["IPVS_SVC_ATTR_FWMARK"] == svc.key.fwmark
        assert "IPVS_SVC_ATTR_PORT" not in a
    else:
        assert a["IPVS_SVC_ATTR_PORT"] == svc.key.port
        assert a["IPVS_SVC_ATTR_PROTOCOL"] == svc.key.protocol


def test_dest_round_trips() -> None:
    cmd, back = roundtrip(AddDest(V6.key, GUE))
    assert cmd == CMD_NEW_DEST
    assert decode_dest(wire(AddDest(V6.key, GUE))[16:], Family.INET6) == GUE
    a = dict(back.get_attr("IPVS_CMD_ATTR_DEST")["attrs"])
    assert a["IPVS_DEST_ATTR_PORT"] == 8080
    assert a["IPVS_DEST_ATTR_FWD_METHOD"] == FwdMethod.TUN
    assert (a["IPVS_DEST_ATTR_WEIGHT"], a["IPVS_DEST_ATTR_U_THRESH"]) == (7, 100)
    assert a["IPVS_DEST_ATTR_L_THRESH"] == 9
    assert a["IPVS_DEST_ATTR_TUN_PORT"] == 0x1234
    assert a["IPVS_DEST_ATTR_ADDR_FAMILY"] == Family.INET


def test_decoders_reject_what_the_model_cannot_hold() -> None:
    data = bytearray(wire(AddService(V4)))
    # protocol attribute (u16 at a known spot) -> 51 (AH): not TCP/UDP/SCTP
    proto = bytes(struct.pack("=HHH", 6, 2, Protocol.SCTP))
    at = data.index(proto)
    data[at + 4 : at + 6] = struct.pack("=H", 51)
    with pytest.raises(ValueError):
        decode_service(bytes(data[16:]))
    with pytest.raises(ValueError):
        decode_dest(wire(AddService(V4))[16:], Family.INET)


def test_edit_sends_set_never_delete() -> None:
    """pyroute2's "update" maps to IPVS_CMD_DEL_*; our edits must be IPVS_CMD_SET_*."""
    assert roundtrip(EditService(V6))[0] == CMD_SET_SERVICE
    assert roundtrip(EditDest(V6.key, GUE))[0] == CMD_SET_DEST
    assert roundtrip(DelService(V6.key))[0] == CMD_DEL_SERVICE
    assert roundtrip(DelDest(V6.key, GUE.key))[0] == CMD_DEL_DEST


def test_every_field_is_sent_explicitly() -> None:
    _, back = roundtrip(AddService(Service(ServiceKey.of(Protocol.TCP, "::1", 80))))
    names = {n for n, _ in back.get_attr("IPVS_CMD_ATTR_SERVICE")["attrs"]}
    assert {"IPVS_SVC_ATTR_SCHED_NAME", "IPVS_SVC_ATTR_FLAGS", "IPVS_SVC_ATTR_TIMEOUT"} <= names
    assert "IPVS_SVC_ATTR_NETMASK" in names  # pyroute2 omits it for IPv6: EINVAL
    _, back = roundtrip(AddDest(V6.key, Dest(ipaddress.ip_address("::2"), 1, FwdMethod.NAT)))
    dnames = {n for n, _ in back.get_attr("IPVS_CMD_ATTR_DEST")["attrs"]}
    assert dnames >= {
        "IPVS_DEST_ATTR_FWD_METHOD",  # pyroute2 defaults to DR when left out
        "IPVS_DEST_ATTR_WEIGHT",
        "IPVS_DEST_ATTR_U_THRESH",
        "IPVS_DEST_ATTR_L_THRESH",
        "IPVS_DEST_ATTR_ADDR_FAMILY",
        "IPVS_DEST_ATTR_TUN_TYPE",
        "IPVS_DEST_ATTR_TUN_PORT",
        "IPVS_DEST_ATTR_TUN_FLAGS",
    }


def test_wire_layout_matches_the_kernel() -> None:
    svc = 1  # IPVS_CMD_ATTR_SERVICE
    v6 = wire(AddService(V6))
    # IPv6 netmask: host-order u32 prefix length in the be32 slot
    assert raw_attr(v6, [svc, 9]) == struct.pack("=I", 64)
    # flags struct: flags then a full mask, host order
    assert raw_attr(v6, [svc, 7]) == struct.pack("=II", 0x1 | 0x10 | 0x4, 0xFFFFFFFF)
    assert raw_attr(v6, [svc, 3]) == ipaddress.ip_address("2001:db8::1").packed
    assert raw_attr(v6, [svc, 4]) == struct.pack(">H", 53)
    assert raw_attr(v6, [svc, 11]) == b"sip\0"
    # IPv4 netmask: network-order mask; address padded to 16 bytes like ipvsadm
    v4 = wire(AddService(V4))
    assert raw_attr(v4, [svc, 9]) == bytes([255, 255, 255, 0])
    assert raw_attr(v4, [svc, 3]) == bytes([192, 0, 2, 1]) + bytes(12)
    # fwmark services carry af + fwmark only as the key
    fw = wire(DelService(FWM.key))
    assert raw_attr(fw, [svc, 5]) == struct.pack("=I", 0xDEADBEEF)
    with pytest.raises(AssertionError):
        raw_attr(fw, [svc, 2])
    # destination: tunnel port big-endian (pyroute2 sends it host-order)
    d = wire(AddDest(V6.key, GUE))
    dest = 2  # IPVS_CMD_ATTR_DEST
    assert raw_attr(d, [dest, 14]) == b"\x12\x34"
    assert raw_attr(d, [dest, 3]) == struct.pack("=I", 2)  # TUN
    assert raw_attr(d, [dest, 13]) == b"\x01"  # GUE
    assert raw_attr(d, [dest, 15]) == struct.pack("=H", 3)
    assert raw_attr(d, [dest, 11]) == struct.pack("=H", 2)  # AF_INET dest in a v6 service
    key_only = wire(DelDest(V6.key, DestKey(GUE.address, GUE.port)))
    with pytest.raises(AssertionError):
        raw_attr(key_only, [dest, 3])


@pytest.mark.skipif(sys.byteorder != "little", reason="checks x86's host order")
def test_ipv6_netmask_matches_the_documented_workaround() -> None:
    # docs/kernel-ipvs.md: pyroute2 needs netmask=inet_ntoa(pack("=I", 128)) == "128.0.0.0"
    full = wire(AddService(Service(ServiceKey.of(Protocol.TCP, "::1", 80))))
    assert raw_attr(full, [1, 9]) == bytes([128, 0, 0, 0])


def test_parse_acks_reads_errors_and_acks() -> None:
    def err(seq: int, code: int, pad: bytes = b"") -> bytes:
        body = struct.pack("=i", -code) + struct.pack("=IHHII", 20, 0x20, 5, seq, 0) + pad
        return struct.pack("=IHHII", 16 + len(body), 2, 0x100, seq, 1234) + body

    data = err(5, 0) + err(6, 17, b"abc\0") + struct.pack("=IHHII", 16, 3, 0, 7, 0) + err(8, 3)
    assert parse_acks(data) == [(5, 0), (6, 17), (8, 3)]
    assert parse_acks(b"") == [] and parse_acks(b"\0" * 16) == []
