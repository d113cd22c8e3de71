"""Where a checker connects to and from, and the sockets that honour it (asyncio)."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from errno import EINPROGRESS, EINTR
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
    # Derived once (checks run often): family, socket address and the ``describe`` text.
    _family: socket.AddressFamily = field(init=False, repr=False, compare=False)
    _sockaddr: tuple[str, int] = field(init=False, repr=False, compare=False)
    _text: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        host = str(self.address)
        v6 = self.address.version == 6
        object.__setattr__(self, "_family", socket.AF_INET6 if v6 else socket.AF_INET)
        object.__setattr__(self, "_sockaddr", (host, self.port))
        object.__setattr__(self, "_text", f"[{host}]:{self.port}" if v6 else f"{host}:{self.port}")

    @property
    def family(self) -> socket.AddressFamily:
        """AF_INET or AF_INET6, from the target address."""
        return self._family

    @property
    def sockaddr(self) -> tuple[str, int]:
        """The target as a socket address."""
        return self._sockaddr

    def describe(self) -> str:
        """``ip:port`` (``[ip]:port`` for IPv6), for causes and logs."""
        return self._text


def make_socket(ep: Endpoint, kind: int, proto: int = 0) -> socket.socket:
    """A non-blocking socket with the endpoint's mark, device and source bound."""
    sock = socket.socket(ep._family, kind | socket.SOCK_NONBLOCK, proto)
    try:
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


ConnectDone = Callable[[socket.socket | None, Exception | None], None]


class PendingConnect:
    """A TCP connect waiting for the handshake; :meth:`cancel` aborts it without a callback."""

    __slots__ = ("_done", "_ep", "_fd", "_loop", "_sock", "_timer")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, sock: socket.socket, ep: Endpoint, done: ConnectDone
    ) -> None:
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._ep = ep
        self._done = done
        loop.add_writer(self._fd, self._writable)
        self._timer = loop.call_later(ep.connect_timeout, self._expired)

    def _finish(self) -> ConnectDone:
        self._loop.remove_writer(self._fd)
        self._timer.cancel()
        done, self._done = self._done, _ignore
        return done

    def _writable(self) -> None:
        done = self._finish()
        try:
            err = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        except OSError as exc:  # pragma: no cover - the socket is ours and open
            self._sock.close()
            done(None, exc)
            return
        if err:
            self._sock.close()
            done(None, _connect_error(err, self._ep))
        else:
            done(self._sock, None)

    def _expired(self) -> None:
        done = self._finish()
        self._sock.close()
        done(None, CheckFailed(f"connect to {self._ep.describe()} timed out"))

    def cancel(self) -> None:
        """Stop waiting and close the socket; the callback is never called."""
        if self._done is not _ignore:
            self._finish()
            self._sock.close()


def _ignore(sock: socket.socket | None, exc: Exception | None) -> None:
    if sock is not None:  # pragma: no cover - only after cancel, which closes first
        sock.close()


def _connect_error(err: int, ep: Endpoint) -> OSError:
    return OSError(err, f"{os.strerror(err)} (connecting to {ep.describe()})")


def start_connect(
    ep: Endpoint, loop: asyncio.AbstractEventLoop, done: ConnectDone
) -> PendingConnect | None:
    """Start a TCP connect to ``ep``; ``done(sock, None)`` or ``done(None, exc)`` follows once.

    When the outcome is known at once (errors, or a handshake that completed inside
    ``connect()`` as it does on loopback) ``done`` is called before this returns and the
    result is None; otherwise the returned handle waits for writability (one loop callback)
    and fails with :class:`CheckFailed` after ``connect_timeout``. ``done`` must not raise.
    The caller owns (and must close) the socket it receives.
    """
    try:
        sock = make_socket(ep, socket.SOCK_STREAM)
    except Exception as exc:
        done(None, exc)
        return None
    try:
        err = sock.connect_ex(ep._sockaddr)
        if err in (EINPROGRESS, EINTR):
            try:
                sock.getpeername()  # established already (the handshake ran inside connect)?
                err = 0
            except OSError:
                return PendingConnect(loop, sock, ep, done)
    except Exception as exc:
        sock.close()
        done(None, exc)
        return None
    except BaseException:
        sock.close()
        raise
    if err:
        sock.close()
        done(None, _connect_error(err, ep))
        return None
    done(sock, None)
    return None


async def connect_tcp(ep: Endpoint) -> socket.socket:
    """A connected TCP socket, within ``connect_timeout``."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[socket.socket] | None = None
    now: list[tuple[socket.socket | None, Exception | None]] = []

    def done(sock: socket.socket | None, exc: Exception | None) -> None:
        if fut is None:
            now.append((sock, exc))
        elif fut.cancelled():  # cancelled, but this callback was already on its way
            if sock is not None:
                sock.close()
        elif exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(sock)  # type: ignore[arg-type]

    pending = start_connect(ep, loop, done)
    if pending is None:
        sock, exc = now[0]
        if exc is not None:
            raise exc
        assert sock is not None
        return sock
    fut = loop.create_future()
    try:
        return await fut
    except asyncio.CancelledError:
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            fut.result().close()  # connected just as we were cancelled
        pending.cancel()
        raise


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
