"""Raw IP protocol-112 sockets for VRRP: one per interface and address family.

asyncio has no datagram endpoint for raw sockets, so the socket is non-blocking and read
with ``loop.add_reader`` and ``recvmsg``. IPv4 raw sockets hand over the whole IP datagram
(header included: the TTL is read from it); IPv6 ones hand over the payload only and the
hop limit and destination come as ancillary data. The socket is never bound to an address
(that would hide multicast from it): the source address of sent packets is chosen per
packet with IP_PKTINFO / IPV6_PKTINFO. Each datagram carries the kernel's receive time
(SO_TIMESTAMPNS), so the state machine's timers count from the advert's arrival, not from
when the loop got round to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

IPPROTO_VRRP = 112
VRRP_GROUP4 = ipaddress.IPv4Address("224.0.0.18")
VRRP_GROUP6 = ipaddress.IPv6Address("ff02::12")

_SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
_IP_MULTICAST_ALL = 49
_IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
_IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
_IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
_IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
_IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)
_IPV6_TCLASS = getattr(socket, "IPV6_TCLASS", 67)
_IPV6_MULTICAST_ALL = 29
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_SCM_TIMESTAMPNS = _SO_TIMESTAMPNS

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Datagram:
    """One received VRRP datagram.

    For IPv4 ``data`` is the whole IP packet (header included) and ``hop_limit`` is
    None (the codec reads the TTL from the header); for IPv6 ``data`` is the VRRP
    message and ``hop_limit`` comes from ancillary data.
    """

    data: bytes
    family: int
    src: IPAddress
    dst: IPAddress | None
    hop_limit: int | None
    ifindex: int | None
    rx_time: float | None = None  # arrival, on the loop's clock (time.monotonic)


@dataclass(frozen=True, slots=True)
class SocketOptions:
    """How to open a VRRP socket on one interface."""

    family: int  # socket.AF_INET or socket.AF_INET6
    ifname: str
    ifindex: int
    group: IPAddress | None  # multicast group to join (None: unicast only)
    src: IPAddress | None = None  # source address of what we send (set per packet)
    ttl: int = 255
    tos: int = 0xC0
    rcvbuf: int | None = None


def open_socket(opts: SocketOptions) -> socket.socket:
    """Open and configure a non-blocking raw VRRP socket."""
    sock = socket.socket(opts.family, socket.SOCK_RAW, IPPROTO_VRRP)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, _SO_BINDTODEVICE, opts.ifname.encode())
        with contextlib.suppress(OSError):  # without it, arrival is when the loop reads
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        if opts.rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, opts.rcvbuf)
        if opts.family == socket.AF_INET:
            _setup_v4(sock, opts)
        else:
            _setup_v6(sock, opts)
    except BaseException:
        sock.close()
        raise
    return sock


def _setup_v4(sock: socket.socket, opts: SocketOptions) -> None:
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, opts.ttl)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, opts.ttl)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, opts.tos)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
    sock.setsockopt(socket.IPPROTO_IP, _IP_MULTICAST_ALL, 0)
    sock.setsockopt(socket.IPPROTO_IP, _IP_PKTINFO, 1)
    src = opts.src.packed if opts.src is not None else b"\0" * 4
    mreqn = struct.pack("=4s4si", b"\0" * 4, src, opts.ifindex)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
    if opts.group is not None:
        join = struct.pack("=4s4si", opts.group.packed, b"\0" * 4, opts.ifindex)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, join)


def _setup_v6(sock: socket.socket, opts: SocketOptions) -> None:
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, opts.ttl)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, opts.ttl)
    sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_TCLASS, opts.tos)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, opts.ifindex)
    sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVHOPLIMIT, 1)
    sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVPKTINFO, 1)
    with contextlib.suppress(OSError):  # older kernels lack it
        sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_MULTICAST_ALL, 0)
    if opts.group is not None:
        join = opts.group.packed + struct.pack("=I", opts.ifindex)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, join)


def parse_ancillary(
    family: int, ancdata: list[tuple[int, int, bytes]]
) -> tuple[IPAddress | None, int | None, int | None]:
    """Destination address, hop limit and interface index from recvmsg ancillary data."""
    dst: IPAddress | None = None
    hop: int | None = None
    ifindex: int | None = None
    for level, kind, data in ancdata:
        if family == socket.AF_INET and level == socket.IPPROTO_IP and kind == _IP_PKTINFO:
            if len(data) >= 12:
                ifindex = struct.unpack_from("=i", data, 0)[0]
                dst = ipaddress.IPv4Address(data[8:12])
        elif family == socket.AF_INET6 and level == socket.IPPROTO_IPV6:
            if kind == _IPV6_PKTINFO and len(data) >= 20:
                dst = ipaddress.IPv6Address(data[:16])
                ifindex = struct.unpack_from("=I", data, 16)[0]
            elif kind == _IPV6_HOPLIMIT and len(data) >= 4:
                hop = struct.unpack_from("=i", data, 0)[0]
    return dst, hop, ifindex


def rx_timestamp(ancdata: list[tuple[int, int, bytes]]) -> float | None:
    """The kernel's receive time (CLOCK_REALTIME seconds) from SCM_TIMESTAMPNS, or None."""
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == _SCM_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = struct.unpack_from("=qq", data, 0)
            return float(sec) + float(nsec) * 1e-9
    return None


def _pktinfo(opts: SocketOptions, src: IPAddress | None = None) -> list[tuple[int, int, bytes]]:
    """Ancillary data choosing the source address and interface of sent packets."""
    src = src if src is not None else opts.src
    if src is None:
        return []
    if opts.family == socket.AF_INET6:
        return [(socket.IPPROTO_IPV6, _IPV6_PKTINFO, src.packed + struct.pack("=I", opts.ifindex))]
    return [
        (socket.IPPROTO_IP, _IP_PKTINFO, struct.pack("=i4s4s", opts.ifindex, src.packed, b"\0" * 4))
    ]


class VrrpTransport:
    """A raw VRRP socket bound to an asyncio loop, calling ``on_datagram`` per packet."""

    _ANC_SIZE = socket.CMSG_SPACE(20) + socket.CMSG_SPACE(4) + socket.CMSG_SPACE(16) + 64

    def __init__(
        self,
        opts: SocketOptions,
        on_datagram: Callable[[Datagram], None],
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.opts = opts
        self.on_datagram = on_datagram
        self.loop = loop or asyncio.get_running_loop()
        self.sock = open_socket(opts)
        self.rx_errors = 0
        self.tx_errors = 0
        self._anc = _pktinfo(opts)
        self.loop.add_reader(self.sock.fileno(), self._readable)

    def _readable(self) -> None:
        v4 = self.opts.family == socket.AF_INET
        for _ in range(256):  # bounded so one busy socket cannot starve the loop
            try:
                data, anc, _flags, addr = self.sock.recvmsg(65535, self._ANC_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.rx_errors += 1
                log.warning("VRRP receive error on %s: %s", self.opts.ifname, exc)
                return
            try:
                stamp = rx_timestamp(anc)
                at = None
                if stamp is not None:  # realtime -> monotonic, both read now
                    at = time.monotonic() - max(0.0, time.time() - stamp)
                if v4 and len(data) >= 20:
                    # The codec takes both addresses from the IP header; this source only
                    # names the sender of a datagram too broken to decode.
                    src4 = ipaddress.IPv4Address(data[12:16])
                    dgram = Datagram(data, socket.AF_INET, src4, None, None, None, at)
                else:
                    src = ipaddress.ip_address(addr[0].split("%", 1)[0])
                    dst, hop, ifindex = parse_ancillary(self.opts.family, anc)
                    dgram = Datagram(data, self.opts.family, src, dst, hop, ifindex, at)
                self.on_datagram(dgram)
            except Exception:  # the receive loop must never die on one packet
                self.rx_errors += 1
                log.exception("VRRP receive handler failed on %s", self.opts.ifname)

    def send(self, payload: bytes, dst: IPAddress, src: IPAddress | None = None) -> bool:
        """Send one VRRP message to ``dst`` (from ``src`` if given, else the socket's source).

        Returns False (and counts it) when the kernel refuses.
        """
        anc = self._anc if src is None else _pktinfo(self.opts, src)
        try:
            if self.opts.family == socket.AF_INET6:
                self.sock.sendmsg([payload], anc, 0, (str(dst), 0, 0, self.opts.ifindex))
            else:
                self.sock.sendmsg([payload], anc, 0, (str(dst), 0))
            return True
        except OSError as exc:
            self.tx_errors += 1
            log.warning("VRRP send to %s on %s failed: %s", dst, self.opts.ifname, exc)
            return False

    def close(self) -> None:
        """Stop reading and close the socket."""
        try:
            self.loop.remove_reader(self.sock.fileno())
        finally:
            self.sock.close()
