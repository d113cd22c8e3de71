"""Programs the LVS labs run in their namespaces; standard library only, run by path.

``python -S -u tests/ipvs/lvsprogs.py serve|client ...`` (no site, no package import: it
starts fast in the slow guest).

- ``serve NAME tcp:PORT... udp:PORT...``: answers every TCP connection that sends an HTTP
  request with ``200 OK`` and the body ``NAME:PORT``, every UDP datagram with
  ``NAME:PORT``; listens on ``::`` (IPv4 too). Prints ``ready`` once every socket is bound.
- ``watch PERIOD``: samples /proc/net/ip_vs (see :func:`watch`).
- ``client``: reads commands from stdin, one a line, answers one JSON line each:
  ``tcp HOST PORT COUNT TIMEOUT`` (HTTP requests, each on a new connection),
  ``udp HOST PORT COUNT TIMEOUT [SRC]`` (datagrams from one socket bound to SRC),
  ``load HOST PORT RATE TIMEOUT``: HTTP requests at RATE per second until stdin says
  ``stop`` (or closes), then one JSON line with every outcome (start, duration, answer).
"""

from __future__ import annotations

import json
import select
import socket
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any


def _answer_tcp(conn: socket.socket, body: bytes) -> None:
    with conn:
        conn.settimeout(3)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return  # a TCP_CHECK: connect and close
                data += chunk
            head = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
            head += b"Content-Length: %d\r\n\r\n" % len(body)
            conn.sendall(head + body)
        except OSError:
            return


def _tcp_loop(sock: socket.socket, body: bytes) -> None:
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=_answer_tcp, args=(conn, body), daemon=True).start()


def _udp_loop(sock: socket.socket, body: bytes) -> None:
    while True:
        _, peer = sock.recvfrom(2048)
        sock.sendto(body, peer)


def serve(name: str, specs: Sequence[str]) -> None:
    """Listen on every ``tcp:PORT``/``udp:PORT`` of `specs`, answering with ``NAME:PORT``."""
    threads = []
    for spec in specs:
        proto, port_text = spec.split(":")
        port = int(port_text)
        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        sock = socket.socket(socket.AF_INET6, kind)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("::", port))
        body = f"{name}:{port}".encode()
        if proto == "tcp":
            sock.listen(128)
            target: Any = _tcp_loop
        else:
            target = _udp_loop
        threads.append(threading.Thread(target=target, args=(sock, body), daemon=True))
    for t in threads:
        t.start()
    print("ready", flush=True)
    while True:
        time.sleep(3600)


def http_get(host: str, port: int, timeout: float) -> str:
    """One HTTP request on a new connection: the body, or ``!error``."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect((host, port))
            s.sendall(b"GET / HTTP/1.0\r\nHost: lab\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.0 200"):
            return "!bad reply " + repr(data[:40])
        return body.decode()
    except OSError as exc:
        return f"!{type(exc).__name__}: {exc}"


def udp_ask(host: str, port: int, count: int, timeout: float, src: str | None) -> list[str]:
    """`count` datagrams from one socket (bound to `src`): the answers, or ``!error``."""
    out = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.bind((src or "0.0.0.0", 0))
        s.connect((host, port))
        for i in range(count):
            try:
                s.send(b"query %d" % i)
                out.append(s.recv(2048).decode())
            except OSError as exc:
                out.append(f"!{type(exc).__name__}: {exc}")
    return out


def load(host: str, port: int, rate: float, timeout: float) -> dict[str, Any]:
    """HTTP requests at `rate`/s until stdin says stop: every outcome with its time."""
    period = 1.0 / rate
    results: list[tuple[float, float, str]] = []
    start = time.monotonic()
    nxt = start
    while True:
        wait = max(0.0, nxt - time.monotonic())
        ready, _, _ = select.select([sys.stdin], [], [], wait)
        if ready:
            line = sys.stdin.readline()
            if not line or line.strip() == "stop":
                break
        if time.monotonic() < nxt:
            continue
        t0 = time.monotonic()
        answer = http_get(host, port, timeout)
        results.append((round(t0 - start, 3), round(time.monotonic() - t0, 3), answer))
        nxt += period
        if nxt < time.monotonic():
            nxt = time.monotonic()  # fell behind: do not burst
    return {"results": results, "seconds": round(time.monotonic() - start, 3)}


def _table(text: str) -> str:
    """/proc/net/ip_vs without the connection counters (they move with traffic)."""
    lines = []
    for line in text.splitlines():
        words = line.split()
        lines.append(" ".join(words[:-2] if words[:1] == ["->"] else words))
    return "\n".join(lines)


def watch(period: float) -> None:
    """Read /proc/net/ip_vs every `period` s until stdin says stop; report what changed.

    Prints one JSON line: samples, the longest gap between samples, the first table, and
    up to 5 tables that differed from it (with the second they were seen at).
    """
    start = time.monotonic()
    first: str | None = None
    samples = 0
    last = start
    max_gap = 0.0
    changes: list[tuple[float, str]] = []
    print("ready", flush=True)
    while not select.select([sys.stdin], [], [], period)[0]:
        with open("/proc/net/ip_vs") as fh:
            table = _table(fh.read())
        now = time.monotonic()
        samples += 1
        max_gap = max(max_gap, now - last)
        last = now
        if first is None:
            first = table
        elif table != first and len(changes) < 5:
            changes.append((round(now - start, 3), table))
    report = {"samples": samples, "max_gap": round(max_gap, 3), "first": first}
    print(json.dumps({**report, "changes": changes}), flush=True)


def client() -> None:
    """The command loop of the client namespace (see the module docstring)."""
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        cmd, host, port = words[0], words[1], int(words[2])
        reply: Any
        if cmd == "tcp":
            count, timeout = int(words[3]), float(words[4])
            reply = [http_get(host, port, timeout) for _ in range(count)]
        elif cmd == "udp":
            count, timeout = int(words[3]), float(words[4])
            reply = udp_ask(host, port, count, timeout, words[5] if len(words) > 5 else None)
        elif cmd == "load":
            reply = load(host, port, float(words[3]), float(words[4]))
        else:
            reply = {"error": f"unknown command {cmd}"}
        print(json.dumps(reply), flush=True)


def main(argv: Sequence[str]) -> int:
    """``serve NAME SPEC...`` or ``client``."""
    if argv and argv[0] == "serve":
        serve(argv[1], argv[2:])
        return 0
    if argv and argv[0] == "client":
        client()
        return 0
    if argv and argv[0] == "watch":
        watch(float(argv[1]))
        return 0
    print(
        "usage: lvsprogs serve NAME tcp:PORT|udp:PORT... | lvsprogs client | lvsprogs watch PERIOD",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
