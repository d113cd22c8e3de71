"""Sending gratuitous ARPs and unsolicited Neighbour Advertisements over AF_PACKET.

One raw packet socket (protocol 0, so it receives nothing) sends whole Ethernet frames
built by :mod:`pyvrrpd.net.frames` on any interface of its network namespace.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from pyvrrpd.net.frames import ETH_P_ARP, ETH_P_IPV6, build_garp, build_unsolicited_na
from pyvrrpd.net.netns import call_in_netns


def _open_packet_socket() -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    sock.setblocking(False)
    return sock


class Announcer:
    """Sends announcement frames; created with :meth:`open`, released with :meth:`close`."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.sent = 0
        self._garps: dict[tuple[bytes, ipaddress.IPv4Address], bytes] = {}

    @classmethod
    async def open(cls, netns: str | None = None) -> Announcer:
        """An announcer whose socket lives in network namespace `netns` (None: ours)."""
        return cls(await call_in_netns(netns, _open_packet_socket))

    def close(self) -> None:
        """Close the socket."""
        self._sock.close()

    async def send_frame(self, ifname: str, frame: bytes, ethertype: int) -> None:
        """Send one complete Ethernet frame out of `ifname` (at once unless the socket's
        buffer is full)."""
        try:
            self._sock.sendto(frame, (ifname, ethertype))
        except (BlockingIOError, InterruptedError):
            loop = asyncio.get_running_loop()
            await loop.sock_sendto(self._sock, frame, (ifname, ethertype))
        self.sent += 1

    def garp_frame(self, mac: bytes, address: ipaddress.IPv4Address) -> bytes:
        """The gratuitous ARP of `address` from `mac` (built once: a takeover resends it)."""
        key = (mac, address)
        frame = self._garps.get(key)
        if frame is None:
            if len(self._garps) >= 4096:
                self._garps.clear()
            frame = self._garps[key] = build_garp(mac, address)
        return frame

    async def garp(self, ifname: str, mac: bytes, address: ipaddress.IPv4Address) -> None:
        """Broadcast a gratuitous ARP request for `address` from `mac`."""
        await self.send_frame(ifname, self.garp_frame(mac, address), ETH_P_ARP)

    async def unsolicited_na(
        self, ifname: str, mac: bytes, address: ipaddress.IPv6Address, *, router: bool = False
    ) -> None:
        """Send an unsolicited NA for `address` (override flag, target link-layer `mac`)."""
        frame = build_unsolicited_na(mac, address, router=router)
        await self.send_frame(ifname, frame, ETH_P_IPV6)
