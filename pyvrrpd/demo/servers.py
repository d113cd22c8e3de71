"""The demo's real servers: tiny HTTP servers and DNS responders that answer their name.

They run inside the demo's process, all served by one thread: each listening socket is
created in its real server's namespace (:func:`pyvrrpd.net.netns.run_in_netns`) and stays
there, so no interpreter is started per server (under emulation a Python start costs
seconds). Stopping a server closes its sockets: from the network, the service is gone
(connections refused, queries unanswered), as when its process dies.

The DNS responder binds each address separately so that replies to queries sent to the
VIP (LVS-DR: the VIP is on the real server's ``lo``) leave from the VIP.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..net.netns import run_in_netns
from .dnswire import reply

IDLE_S = 5.0  # an HTTP connection silent this long is dropped


def http_response(name: str) -> bytes:
    """The whole HTTP/1.0 response naming this server."""
    body = f"{name}\n".encode()
    head = (
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nServer: pyvrrpd-demo/{name}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


@dataclass
class _Conn:
    name: str
    since: float
    data: bytes = b""


@dataclass
class _Server:
    name: str
    kind: str  # "http" or "dns"
    socks: list[socket.socket]
    conns: set[socket.socket] = field(default_factory=set)


class ServerPool:
    """HTTP servers and DNS responders in several namespaces, served by one thread."""

    def __init__(self) -> None:
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._servers: dict[str, _Server] = {}
        self._pending: list[tuple[Callable[[], None], threading.Event]] = []
        self._lock = threading.Lock()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="demo-servers", daemon=True)
        self._thread.start()

    # -- control (any thread) -------------------------------------------------------

    def _call(self, fn: Callable[[], None]) -> None:
        """Run `fn` on the serving thread and wait for it."""
        done = threading.Event()
        with self._lock:
            self._pending.append((fn, done))
        self._wake_w.send(b"x")
        if not done.wait(10):
            raise TimeoutError("the demo's server thread does not respond")

    def add_http(self, name: str, ns: str, port: int) -> None:
        """Listen on `port` (every address) in namespace `ns`."""

        def listen() -> socket.socket:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("", port))
            s.listen(64)
            s.setblocking(False)
            return s

        sock = run_in_netns(ns, listen)
        self._call(lambda: self._add(_Server(name, "http", [sock])))

    def add_dns(self, name: str, ns: str, addrs: Sequence[str], port: int) -> None:
        """Answer DNS on `port` of each of `addrs` in namespace `ns`."""

        def bind() -> list[socket.socket]:
            socks = []
            for addr in addrs:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind((addr, port))
                s.setblocking(False)
                socks.append(s)
            return socks

        socks = run_in_netns(ns, bind)
        self._call(lambda: self._add(_Server(name, "dns", socks)))

    def stop(self, name: str) -> None:
        """Close the server's sockets (and its open connections)."""
        self._call(lambda: self._remove(name))

    def running(self) -> list[str]:
        """Names of the servers being served."""
        return sorted(self._servers)

    def close(self) -> None:
        """Stop every server and the thread."""
        if self._stopping:
            return

        def stop_all() -> None:
            for name in list(self._servers):
                self._remove(name)
            self._stopping = True

        with contextlib.suppress(TimeoutError, OSError):
            self._call(stop_all)
        self._thread.join(5)
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()

    # -- the serving thread ---------------------------------------------------------

    def _add(self, server: _Server) -> None:
        self._servers[server.name] = server
        for s in server.socks:
            self._sel.register(s, selectors.EVENT_READ, server)

    def _remove(self, name: str) -> None:
        server = self._servers.pop(name, None)
        if server is None:
            return
        for s in [*server.socks, *server.conns]:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(s)
            s.close()

    def _loop(self) -> None:
        while not self._stopping:
            for key, _ in self._sel.select(timeout=1.0):
                try:
                    self._ready(key)
                except OSError:
                    continue
            self._expire()

    def _ready(self, key: selectors.SelectorKey) -> None:
        if key.data is None:
            self._run_pending()
            return
        sock: socket.socket = key.fileobj  # type: ignore[assignment]
        if isinstance(key.data, _Conn):
            self._read_conn(sock, key.data)
            return
        server: _Server = key.data
        if server.kind == "dns":
            data, peer = sock.recvfrom(4096)
            sock.sendto(reply(data, server.name), peer)
            return
        conn, _ = sock.accept()
        conn.setblocking(False)
        server.conns.add(conn)
        self._sel.register(conn, selectors.EVENT_READ, _Conn(server.name, time.monotonic()))

    def _run_pending(self) -> None:
        with contextlib.suppress(BlockingIOError):
            self._wake_r.recv(4096)
        with self._lock:
            pending, self._pending = self._pending, []
        for fn, done in pending:
            try:
                fn()
            finally:
                done.set()

    def _read_conn(self, conn: socket.socket, state: _Conn) -> None:
        chunk = conn.recv(4096)
        state.data += chunk
        if chunk and b"\r\n\r\n" not in state.data and len(state.data) < 65536:
            return
        if chunk:
            with contextlib.suppress(OSError):
                conn.send(http_response(state.name))
        self._close_conn(conn, state.name)  # an empty read: a health check that connected

    def _close_conn(self, conn: socket.socket, name: str) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(conn)
        server = self._servers.get(name)
        if server is not None:
            server.conns.discard(conn)
        conn.close()

    def _expire(self) -> None:
        now = time.monotonic()
        for key in list(self._sel.get_map().values()):
            if isinstance(key.data, _Conn) and now - key.data.since > IDLE_S:
                self._close_conn(key.fileobj, key.data.name)  # type: ignore[arg-type]
