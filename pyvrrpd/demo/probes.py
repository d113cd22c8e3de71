"""Observations and traffic inside the lab's namespaces, from this process.

Each call runs on a short-lived thread that joins the namespace (:mod:`pyvrrpd.net.netns`):
sockets made there belong to it and ``/proc/thread-self/net`` shows its tables, with no
process started per request (that matters under emulation, ~20x slower).
"""

from __future__ import annotations

import contextlib
import errno
import random
import socket
from dataclasses import dataclass
from pathlib import Path

from ..net.netns import run_in_netns
from .dnswire import TYPE_TXT, decode_txt_answer, encode_query


@dataclass(frozen=True, slots=True)
class Answer:
    """Who answered a request (None on error), why not, and the client's source port."""

    who: str | None
    error: str = ""
    port: int = 0


def http_get(ns: str, addr: str, port: int, timeout: float, src: str = "") -> Answer:
    """GET / from `addr`:`port`; the body's first line names the server."""

    def body() -> Answer:
        sport = 0
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.settimeout(timeout)
                s.bind((src, 0))
                sport = s.getsockname()[1]
                s.connect((addr, port))
                s.sendall(f"GET / HTTP/1.0\r\nHost: {addr}\r\n\r\n".encode("ascii"))
                data = b""
                while chunk := s.recv(4096):
                    data += chunk
        except OSError as exc:
            return Answer(None, _why(exc), sport)
        head, _, text = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.") or b" 200 " not in head.split(b"\r\n")[0]:
            return Answer(None, f"bad response {head[:40]!r}", sport)
        return Answer(text.decode("utf-8", "replace").strip() or None, "", sport)

    return run_in_netns(ns, body)


def dns_whoami(ns: str, addr: str, port: int, timeout: float, src: str = "") -> Answer:
    """A TXT query for ``whoami.demo`` to `addr`:`port` from `src`; the TXT names the server."""

    def body() -> Answer:
        ident = random.randrange(1 << 16)
        sport = 0
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(timeout)
                s.bind((src, 0))
                sport = s.getsockname()[1]
                s.connect((addr, port))
                s.send(encode_query(ident, "whoami.demo", TYPE_TXT))
                while True:
                    who = decode_txt_answer(s.recv(4096), ident)
                    if who is not None:
                        return Answer(who, "", sport)
        except OSError as exc:
            return Answer(None, _why(exc), sport)

    return run_in_netns(ns, body)


def _why(exc: OSError) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    return errno.errorcode.get(exc.errno or 0, "") or str(exc)


def holds(ns: str, addr: str) -> bool:
    """Whether `addr` is a local address in `ns` (binding to it succeeds)."""

    def body() -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind((addr, 0))
            except OSError:
                return False
            return True

    return run_in_netns(ns, body)


def read_net(ns: str, name: str) -> str:
    """``/proc/net/<name>`` as seen in `ns` ("" when absent, e.g. no IPVS)."""

    def body() -> str:
        try:
            return Path("/proc/thread-self/net", name).read_text()
        except OSError:
            return ""

    return run_in_netns(ns, body)


def write_sysctl(ns: str, key: str, value: str) -> None:
    """Set ``net.*`` sysctl `key` (dotted) in `ns`."""
    path = Path("/proc/sys", *key.split("."))
    run_in_netns(ns, lambda: path.write_text(value))


def poke(ns: str, addr: str, port: int = 9) -> None:
    """Send one UDP datagram to `addr` (makes the kernel resolve its MAC)."""

    def body() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s, contextlib.suppress(OSError):
            s.sendto(b"arp?", (addr, port))

    run_in_netns(ns, body)
