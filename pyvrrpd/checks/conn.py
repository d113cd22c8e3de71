"""Where a checker connects to and from, and the sockets that honour it (asyncio)."""

from __future__ import annotations

import asyncio
import socket
import ssl
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from .base import CheckFailed

IPAddr = IPv4Address | IPv6Address

# Linux socket options not always exported by the socket module.
SO_MARK = getattr(socket, "SO_MARK", 36)
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """The effective target of a check (``connect_ip``/``connect_port`` already resolved).

    ``bindto``/``bind_port`` set the source, ``bind_if`` binds to a device
    (SO_BINDTODEVICE), ``fwmark`` marks the packets (SO_MARK); ``connect_timeout`` bounds
    the connection and each later read.
    """

    address: IPAddr
    port: int = 0
    bindto: IPAddr | None = None
    bind_port: int | None = None
    bind_if: str | None = None
    fwmark: int | None = None
    connect_timeout: float = 5.0

    @property
    def family(self) -> socket.AddressFamily:
        """AF_INET or AF_INET6, from the target address."""
        return socket.AF_INET6 if self.address.version == 6 else socket.AF_INET

    @property
    def sockaddr(self) -> tuple[str, int]:
        """The target as a socket address."""
        return (str(self.address), self.port)

    def describe(self) -> str:
        """``ip:port`` (``[ip]:port`` for IPv6), for causes and logs."""
        if self.address.version == 6:
            return f"[{self.address}]:{self.port}"
        return f"{self.address}:{self.port}"


def make_socket(ep: Endpoint, kind: int, proto: int = 0) -> socket.socket:
    """A non-blocking socket with the endpoint's mark, device and source bound."""
    sock = socket.socket(ep.family, kind, proto)
    try:
        sock.setblocking(False)
        if ep.fwmark:
            sock.setsockopt(socket.SOL_SOCKET, SO_MARK, ep.fwmark)
        if ep.bind_if:
            sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, ep.bind_if.encode() + b"\0")
        if ep.bindto is not None or ep.bind_port:
            if ep.bindto is not None and ep.bindto.version != ep.address.version:
                raise CheckFailed(f"bindto {ep.bindto} is not of the family of {ep.address}")
            source = str(ep.bindto) if ep.bindto is not None else ""
            sock.bind((source, ep.bind_port or 0))
    except BaseException:
        sock.close()
        raise
    return sock


async def connect_tcp(ep: Endpoint) -> socket.socket:
    """A connected TCP socket, within ``connect_timeout``."""
    loop = asyncio.get_running_loop()
    sock = make_socket(ep, socket.SOCK_STREAM)
    try:
        async with asyncio.timeout(ep.connect_timeout):
            await loop.sock_connect(sock, ep.sockaddr)
    except TimeoutError:
        sock.close()
        raise CheckFailed(f"connect to {ep.describe()} timed out") from None
    except BaseException:
        sock.close()
        raise
    return sock


async def open_stream(
    ep: Endpoint, tls: ssl.SSLContext | None = None, server_hostname: str | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect (and do the TLS handshake if ``tls``) within ``connect_timeout`` each."""
    sock = await connect_tcp(ep)
    try:
        async with asyncio.timeout(ep.connect_timeout):
            if tls is None:
                return await asyncio.open_connection(sock=sock)
            return await asyncio.open_connection(
                sock=sock,
                ssl=tls,
                server_hostname=server_hostname or "",
                ssl_handshake_timeout=ep.connect_timeout,
            )
    except TimeoutError:
        sock.close()
        raise CheckFailed(f"handshake with {ep.describe()} timed out") from None
    except BaseException:
        sock.close()
        raise


async def close_writer(writer: asyncio.StreamWriter) -> None:
    """Close a stream without waiting long for the peer (TLS close_notify may never come)."""
    writer.close()
    try:
        async with asyncio.timeout(1.0):
            await writer.wait_closed()
    except (OSError, TimeoutError, ssl.SSLError):
        pass
