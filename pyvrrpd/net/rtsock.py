"""A NETLINK_ROUTE socket for asyncio: requests by sequence number, and link events.

The kernel handles an rtnetlink request inside ``sendmsg``, so its acknowledgement is
usually queued by the time ``send`` returns: :meth:`RtSocket.request` first reads without
blocking and only registers with the event loop (``add_reader``) when the reply is not
there yet. Replies are dispatched by sequence number, so several tasks may have requests
in flight on one socket. A socket opened with ``groups`` also receives notifications
(sequence 0), queued for :meth:`RtSocket.next_event`.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import os
import socket
from collections.abc import Callable

from pyvrrpd.net import rtnl
from pyvrrpd.net.backend import NetError
from pyvrrpd.net.netns import call_in_netns

SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
RECV_SIZE = 65536
RCVBUF = 1 << 20


def _open(groups: int) -> socket.socket:
    sock = socket.socket(
        socket.AF_NETLINK,
        socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
        socket.NETLINK_ROUTE,
    )
    try:
        sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        if groups:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        sock.bind((0, groups))
    except BaseException:
        sock.close()
        raise
    return sock


class _Pending:
    __slots__ = ("future", "replies")

    def __init__(self, future: asyncio.Future[list[rtnl.NlMsg]]) -> None:
        self.future = future
        self.replies: list[rtnl.NlMsg] = []


#: An entry of the event queue meaning "events were lost" (the socket overran).
OVERRUN = None


class RtSocket:
    """One rtnetlink socket; open with :meth:`open`, release with :meth:`close`."""

    def __init__(self, sock: socket.socket, groups: int = 0, portid: int | None = None) -> None:
        self._sock = sock
        self._groups = groups
        if portid is None and sock.family == socket.AF_NETLINK:
            portid = sock.getsockname()[0]
        self._portid = portid  # replies carry it; notifications carry 0 or another's
        self._seq = 0
        self._pending: dict[int, _Pending] = {}
        self._events: collections.deque[rtnl.NlMsg | None] = collections.deque()
        self._event_waiter: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reading = False
        self.closed = False

    @classmethod
    async def open(cls, netns: str | None = None, groups: int = 0) -> RtSocket:
        """A socket in network namespace `netns` (None: ours), subscribed to `groups`."""
        if netns is None:
            sock = _open(groups)
        else:
            sock = await call_in_netns(netns, lambda: _open(groups))
        self = cls(sock, groups)
        if groups:
            self._want_reader(True)
        return self

    def close(self) -> None:
        """Close the socket; requests in flight fail with NetError(EBADF)."""
        if self.closed:
            return
        self._want_reader(False)
        self.closed = True
        self._sock.close()
        self._fail_all(NetError("netlink socket closed", errno.EBADF))
        self._wake_events()

    # -- requests ------------------------------------------------------------------

    def next_seq(self) -> int:
        """A fresh sequence number (never 0, which notifications carry)."""
        self._seq = self._seq % 0xFFFFFFFF + 1
        return self._seq

    async def request(self, seq: int, data: bytes) -> list[rtnl.NlMsg]:
        """Send `data` (a request numbered `seq`) and return its replies but the last.

        A request ends with NLMSG_DONE (dumps) or NLMSG_ERROR (acks); an error code raises
        NetError(strerror, errno), the text pyroute2 gave (extended acks are not asked for).
        """
        if self.closed:
            raise NetError("netlink socket closed", errno.EBADF)
        loop = asyncio.get_running_loop()
        self._loop = loop
        pending = _Pending(loop.create_future())
        self._pending[seq] = pending
        try:
            try:
                self._sock.send(data)
            except OSError as exc:
                raise NetError(f"netlink send: {os.strerror(exc.errno or 0)}", exc.errno) from None
            self._drain()  # the fast path: the reply is usually there already
            if not pending.future.done():
                self._want_reader(True)
            return await pending.future
        finally:
            self._pending.pop(seq, None)
            if not self._pending and not self._groups:
                self._want_reader(False)

    async def ask(self, build: Callable[[int], bytes]) -> list[rtnl.NlMsg]:
        """:meth:`request` of ``build(seq)`` with a fresh sequence number."""
        seq = self.next_seq()
        return await self.request(seq, build(seq))

    def touch(self, build: Callable[[int], bytes]) -> None:
        """Send a request nobody waits for; its replies are read now and dropped.

        A read-only request sent just before a burst of real ones warms the kernel's
        rtnetlink path (after milliseconds of idling it runs several times slower).
        """
        if self.closed:
            return
        try:
            self._sock.send(build(self.next_seq()))
        except OSError:
            return
        self._drain()

    # -- notifications -------------------------------------------------------------

    async def next_event(self) -> rtnl.NlMsg | None:
        """The next notification; None (:data:`OVERRUN`) when some were lost."""
        while not self._events:
            if self.closed:
                raise NetError("netlink socket closed", errno.EBADF)
            self._drain()
            if self._events:
                break
            self._event_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._event_waiter
            finally:
                self._event_waiter = None
        return self._events.popleft()

    # -- reading -------------------------------------------------------------------

    def _want_reader(self, on: bool) -> None:
        if on == self._reading or self.closed:
            return
        loop = self._loop or asyncio.get_running_loop()
        self._loop = loop
        if on:
            loop.add_reader(self._sock.fileno(), self._drain)
        else:
            loop.remove_reader(self._sock.fileno())
        self._reading = on

    def _drain(self) -> None:
        """Read every queued datagram and dispatch its messages."""
        while not self.closed:
            try:
                data = self._sock.recv(RECV_SIZE)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:  # the kernel dropped messages for us
                    self._fail_all(NetError("netlink replies lost (ENOBUFS)", exc.errno))
                    if self._groups:
                        self._events.append(OVERRUN)
                        self._wake_events()
                    continue
                self._fail_all(NetError(f"netlink recv: {os.strerror(exc.errno or 0)}", exc.errno))
                return
            try:
                messages = rtnl.split(data)
            except rtnl.RtnlDecodeError as exc:
                self._fail_all(NetError(f"netlink reply: {exc}", errno.EBADMSG))
                continue
            for msg in messages:
                self._dispatch(msg)

    def _dispatch(self, msg: rtnl.NlMsg) -> None:
        # A notification caused by another socket's request carries that socket's port
        # id and sequence number (address changes do): only our port id marks a reply.
        ours = msg.seq != 0 and (self._portid is None or msg.pid == self._portid)
        if not ours:
            if self._groups and msg.type not in (rtnl.NLMSG_ERROR, rtnl.NLMSG_DONE):
                self._events.append(msg)
                self._wake_events()
            return
        pending = self._pending.get(msg.seq)
        if pending is None or pending.future.done():
            return  # a reply to a request given up on
        if msg.type == rtnl.NLMSG_DONE:
            pending.future.set_result(pending.replies)
        elif msg.type == rtnl.NLMSG_ERROR:
            try:
                err = rtnl.decode_error(msg)
            except rtnl.RtnlDecodeError as exc:
                pending.future.set_exception(NetError(f"netlink reply: {exc}", errno.EBADMSG))
                return
            if err.code:
                pending.future.set_exception(NetError(os.strerror(err.code), err.code))
            else:
                pending.future.set_result(pending.replies)
        elif msg.type != rtnl.NLMSG_NOOP:
            pending.replies.append(msg)

    def _fail_all(self, exc: NetError) -> None:
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(exc)

    def _wake_events(self) -> None:
        if self._event_waiter is not None and not self._event_waiter.done():
            self._event_waiter.set_result(None)
