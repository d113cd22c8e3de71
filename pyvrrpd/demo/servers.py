"""The demo's real servers: a tiny HTTP server and a tiny DNS responder, each naming itself.

Run in a real server's namespace (the demo starts them with ``ip netns exec``)::

    python -m pyvrrpd.demo.servers http web1 --port 80
    python -m pyvrrpd.demo.servers dns dns1 --bind 192.0.2.21 --bind 192.0.2.100

The HTTP server answers every request with its name. The DNS responder binds each address
separately so that replies to queries sent to the VIP (LVS-DR: the VIP is on ``lo``) leave
from the VIP, as the client expects.
"""

from __future__ import annotations

import argparse
import select
import socket
import sys
import threading
from collections.abc import Sequence

from .dnswire import reply


def http_response(name: str) -> bytes:
    """The whole HTTP/1.0 response naming this server."""
    body = f"{name}\n".encode()
    head = (
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nServer: pyvrrpd-demo/{name}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def _serve_http_conn(conn: socket.socket, name: str) -> None:
    with conn:
        conn.settimeout(5)
        data = b""
        try:
            while b"\r\n\r\n" not in data and len(data) < 65536:
                chunk = conn.recv(4096)
                if not chunk:
                    return  # a health check: connect and close
                data += chunk
            conn.sendall(http_response(name))
        except OSError:
            return


def serve_http(name: str, port: int) -> None:
    """Accept forever, one thread per connection."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as srv:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("", port))
        srv.listen(64)
        print(f"{name}: HTTP on port {port}", flush=True)
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=_serve_http_conn, args=(conn, name), daemon=True).start()


def serve_dns(name: str, binds: Sequence[str], port: int) -> None:
    """Answer queries on each bound address from that same address."""
    socks = []
    for addr in binds:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((addr, port))
        socks.append(s)
    print(f"{name}: DNS on {', '.join(binds)} port {port}", flush=True)
    while True:
        ready, _, _ = select.select(socks, [], [])
        for s in ready:
            try:
                data, peer = s.recvfrom(4096)
                s.sendto(reply(data, name), peer)
            except OSError:
                continue


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``http NAME [--port P]`` or ``dns NAME --bind ADDR... [--port P]``."""
    p = argparse.ArgumentParser(prog="python -m pyvrrpd.demo.servers")
    p.add_argument("kind", choices=["http", "dns"])
    p.add_argument("name")
    p.add_argument("--port", type=int)
    p.add_argument("--bind", action="append", default=[])
    args = p.parse_args(argv)
    try:
        if args.kind == "http":
            serve_http(args.name, args.port or 80)
        else:
            serve_dns(args.name, args.bind or ["0.0.0.0"], args.port or 53)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
